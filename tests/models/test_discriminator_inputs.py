"""soften_one_hot and sharpen: what the discriminator is shown as real and as fake.

Expected values are computed by hand in the comments, or by the plain formulas
``(1 - s) * y + s / C`` and ``p ** (1 / T) / sum(p ** (1 / T))``.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s4seg.models import one_hot_labels
from s4seg.models.discriminator_inputs import sharpen, soften_one_hot

fast = settings(max_examples=25, deadline=None)

IGNORE = 255


def labels_with_ignore(seed: int, c: int = 4, shape: tuple[int, int, int] = (2, 3, 5)):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, c, shape, generator=g)
    labels[torch.rand(shape, generator=g) < 0.25] = IGNORE
    labels[0, 0, 0] = IGNORE  # at least one ignore pixel
    labels[0, 0, 1] = 0  # and at least one valid one
    return labels


def entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp_min(1e-300).log()).sum(dim=1)


# --- soften_one_hot: hand cases -------------------------------------------------------


def test_smoothing_by_hand_and_ignore_pixels_stay_zero():
    # Pixel 0 is class 0, pixel 1 is ignored. C = 3, s = 0.3: 0.7 * 1 + 0.1 = 0.8, 0.1, 0.1.
    y = one_hot_labels(torch.tensor([[[0, IGNORE]]]), 3)
    out = soften_one_hot(y, smoothing=0.3)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.8, 0.1, 0.1]))
    assert torch.equal(out[0, :, 0, 1], torch.zeros(3))


def test_full_smoothing_gives_uniform_maps():
    y = one_hot_labels(torch.tensor([[[2, 1]]]), 4)
    torch.testing.assert_close(soften_one_hot(y, smoothing=1.0), torch.full_like(y, 0.25))


def test_nothing_to_do_returns_the_input():
    y = one_hot_labels(labels_with_ignore(0), 4)
    assert soften_one_hot(y) is y


def test_noise_matches_the_formula_with_the_same_draw():
    y = one_hot_labels(labels_with_ignore(1), 4)
    s, n = 0.1, 0.2
    out = soften_one_hot(y, smoothing=s, noise=n, generator=torch.Generator().manual_seed(7))
    u = torch.rand(y.shape, generator=torch.Generator().manual_seed(7))
    valid = (y.sum(1, keepdim=True) > 0).float()
    expected = (1 - n) * ((1 - s) * y + s / 4 * valid) + n * u / u.sum(1, keepdim=True) * valid
    torch.testing.assert_close(out, expected)


def test_a_seeded_generator_reproduces_the_noise_and_the_global_rng_varies():
    y = one_hot_labels(labels_with_ignore(2), 4)
    a = soften_one_hot(y, noise=0.1, generator=torch.Generator().manual_seed(3))
    b = soften_one_hot(y, noise=0.1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    c, d = soften_one_hot(y, noise=0.1), soften_one_hot(y, noise=0.1)
    assert not torch.equal(c, d)


def test_keeps_the_dtype():
    y = one_hot_labels(labels_with_ignore(3), 4).double()
    assert soften_one_hot(y, smoothing=0.1, noise=0.1).dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cpu_generator_serves_cuda_maps():
    y = one_hot_labels(labels_with_ignore(4), 4)
    cpu = soften_one_hot(y, noise=0.3, generator=torch.Generator().manual_seed(5))
    cuda = soften_one_hot(y.cuda(), noise=0.3, generator=torch.Generator().manual_seed(5))
    assert cuda.device.type == "cuda"
    torch.testing.assert_close(cuda.cpu(), cpu)
    assert soften_one_hot(y.cuda(), noise=0.3).device.type == "cuda"  # global CUDA RNG


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"smoothing": -0.1}, ValueError, "smoothing must be in"),
        ({"smoothing": 1.5}, ValueError, "smoothing must be in"),
        ({"noise": float("nan")}, ValueError, "noise must be in"),
        ({"noise": 2}, ValueError, "noise must be in"),
        ({"smoothing": True}, TypeError, "smoothing must be a float"),
    ],
)
def test_soften_rejects_bad_shares(kwargs, error, match):
    with pytest.raises(error, match=match):
        soften_one_hot(torch.zeros(1, 2, 1, 1), **kwargs)


def test_soften_rejects_integer_labels():
    with pytest.raises(TypeError, match="one_hot_labels"):
        soften_one_hot(torch.zeros(1, 2, 1, 1, dtype=torch.long), smoothing=0.1)


# --- soften_one_hot: properties ---------------------------------------------------------


@fast
@given(
    seed=st.integers(0, 2**16),
    c=st.integers(1, 6),
    s=st.floats(0.0, 1.0),
    n=st.floats(0.0, 1.0),
)
def test_softened_maps_are_distributions_on_valid_pixels_and_zero_elsewhere(seed, c, s, n):
    labels = labels_with_ignore(seed, c)
    y = one_hot_labels(labels, c)
    out = soften_one_hot(y, smoothing=s, noise=n, generator=torch.Generator().manual_seed(seed))
    valid = labels != IGNORE
    assert bool((out >= 0).all())
    torch.testing.assert_close(out.sum(1)[valid], torch.ones(int(valid.sum())))
    assert bool((out.permute(0, 2, 3, 1)[~valid] == 0).all())
    # The labelled class keeps (1 - n)(1 - s + s / C) of the mass at least ...
    kept = out.gather(1, torch.where(valid, labels, 0).unsqueeze(1)).squeeze(1)[valid]
    assert bool((kept >= (1 - n) * (1 - s + s / c) - 1e-6).all())
    # ... and stays the argmax while (1 - n)(1 - s) > n.
    if (1 - n) * (1 - s) > n + 1e-6:
        assert torch.equal(out.argmax(1)[valid], labels[valid])


# --- sharpen ------------------------------------------------------------------------------


def test_sharpen_by_hand():
    # T = 0.5 squares: 0.25, 0.0625, 0.0625, over 0.375 -> 2/3, 1/6, 1/6.
    p = torch.tensor([0.5, 0.25, 0.25]).view(1, 3, 1, 1)
    torch.testing.assert_close(sharpen(p, 0.5).flatten(), torch.tensor([2 / 3, 1 / 6, 1 / 6]))
    # T = 2 takes square roots: 0.6, 0.2 -> sqrt(0.6), sqrt(0.2) renormalised.
    q = torch.tensor([0.6, 0.2, 0.2]).view(1, 3, 1, 1)
    r = torch.tensor([math.sqrt(0.6), math.sqrt(0.2), math.sqrt(0.2)])
    torch.testing.assert_close(sharpen(q, 2.0).flatten(), r / r.sum())


def test_sharpen_at_temperature_one_is_the_identity():
    p = torch.randn(2, 4, 3, 3).softmax(1)
    assert sharpen(p, 1.0) is p


def test_sharpen_matches_the_power_formula_and_survives_zeros():
    p = torch.randn(2, 5, 4, 3, dtype=torch.float64).softmax(1)
    p[0, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    ref = p ** (1 / 0.3) / (p ** (1 / 0.3)).sum(1, keepdim=True)
    out = sharpen(p, 0.3)
    assert bool(torch.isfinite(out).all())
    torch.testing.assert_close(out, ref)


def test_sharpen_keeps_low_precision_dtypes():
    p = torch.randn(1, 3, 2, 2).softmax(1).to(torch.bfloat16)
    out = sharpen(p, 0.5)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float().sum(1), torch.ones(1, 2, 2), atol=1e-2, rtol=0)


@fast
@given(
    grid=st.lists(st.integers(-12, 12), min_size=4 * 6, max_size=4 * 6),
    t=st.floats(0.05, 1.0),
)
def test_sharpen_keeps_the_argmax_and_lowers_the_entropy(grid, t):
    # Logits on a grid of quarters: ties are exact, distinct values well apart.
    p = (torch.tensor(grid, dtype=torch.float64) / 4).view(1, 4, 2, 3).softmax(1)
    out = sharpen(p, t)
    assert torch.equal(out.argmax(1), p.argmax(1))
    assert bool((entropy(out) <= entropy(p) + 1e-9).all())
    torch.testing.assert_close(out.sum(1), torch.ones(1, 2, 3, dtype=torch.float64))


def test_sharpen_gradient():
    p = torch.randn(1, 3, 2, 2, dtype=torch.float64).softmax(1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: sharpen(x, 0.5), (p,))
    # Through a softmax, as in the generator's feature-matching pass.
    logits = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: sharpen(z.softmax(1), 0.4), (logits,))


@pytest.mark.parametrize(
    ("t", "error"),
    [(0.0, ValueError), (-1.0, ValueError), (math.inf, ValueError), (True, TypeError)],
)
def test_sharpen_rejects_bad_temperatures(t, error):
    with pytest.raises(error, match="temperature"):
        sharpen(torch.full((1, 2, 1, 1), 0.5), t)
