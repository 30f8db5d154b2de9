"""Tests for s4seg.losses.SupervisedCrossEntropy."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from s4seg.losses import SupervisedCrossEntropy

fast = settings(max_examples=25, deadline=None)


def test_hand_computed() -> None:
    # Pixel 0: logits (0, 0), label 0 -> -log(1/2) = log 2.
    # Pixel 1: logits (log 3, 0), label 0 -> -log(3/4).
    # Pixel 2: ignored.
    logits = torch.tensor([[0.0, math.log(3.0), 5.0], [0.0, 0.0, -5.0]]).reshape(1, 2, 1, 3)
    labels = torch.tensor([[[0, 0, 255]]])
    loss = SupervisedCrossEntropy()(logits, labels)
    expected = (math.log(2.0) - math.log(0.75)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_all_ignored_gives_zero_and_zero_grad() -> None:
    logits = torch.randn(2, 3, 2, 2, requires_grad=True)
    labels = torch.full((2, 2, 2), 255)
    loss = SupervisedCrossEntropy()(logits, labels)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(logits.grad, torch.zeros_like(logits))
    # F.cross_entropy gives NaN here, which would poison the weights.
    assert math.isnan(F.cross_entropy(logits, labels, ignore_index=255).item())


def test_custom_ignore_index() -> None:
    # Pixel 0: logits (0, 0), label 1 -> log 2; pixel 1: logits (0, 10), ignored.
    logits = torch.tensor([0.0, 0.0, 0.0, 10.0]).reshape(1, 2, 1, 2)
    labels = torch.tensor([[[1, -1]]])
    loss = SupervisedCrossEntropy(ignore_index=-1)(logits, labels)
    assert loss.item() == pytest.approx(math.log(2.0), rel=1e-6)


def test_label_out_of_range_names_value_and_fix() -> None:
    loss = SupervisedCrossEntropy()
    logits = torch.zeros(1, 3, 2, 2)
    with pytest.raises(ValueError, match=r"value\(s\) 3, 7 outside \[0, 3\).*remap"):
        loss(logits, torch.tensor([[[0, 3], [7, 255]]]))
    with pytest.raises(ValueError, match="-1"):
        loss(logits, torch.tensor([[[0, -1], [1, 2]]]))
    # Without the check (no host sync) the error comes from torch instead.
    with pytest.raises((IndexError, RuntimeError)):
        SupervisedCrossEntropy(check_labels=False)(logits, torch.tensor([[[0, 3], [1, 2]]]))


def test_shape_mismatch_proposes_fix() -> None:
    loss = SupervisedCrossEntropy()
    with pytest.raises(ValueError, match=r"F.interpolate\(logits, size=\(8, 8\)"):
        loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"squeeze\(1\)"):
        loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"expected labels of shape \(2, 4, 4\)"):
        loss(torch.zeros(2, 3, 4, 4), torch.zeros(3, 4, 4, dtype=torch.long))
    with pytest.raises(TypeError, match=r"labels.long\(\)"):
        loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="float"):
        loss(torch.zeros(2, 3, 4, 4, dtype=torch.long), torch.zeros(2, 4, 4, dtype=torch.long))


def test_repr() -> None:
    assert repr(SupervisedCrossEntropy()) == "SupervisedCrossEntropy(ignore_index=255)"


def reference(logits: torch.Tensor, labels: torch.Tensor, ignore: int) -> torch.Tensor:
    """Plain formula: mean over valid pixels of -log softmax(logits)[label]."""
    logp = logits.double().log_softmax(dim=1)
    valid = labels != ignore
    safe = torch.where(valid, labels, torch.zeros_like(labels))
    nll = -logp.gather(1, safe.unsqueeze(1)).squeeze(1)
    return nll[valid].sum() / valid.sum()


@fast
@given(
    st.integers(1, 3),
    st.integers(2, 5),
    st.integers(1, 5),
    st.integers(1, 5),
    st.integers(0, 2**31 - 1),
    st.floats(0.0, 0.9),
)
def test_matches_reference_and_grad(b, c, h, w, seed, p_ignore) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(b, c, h, w, generator=g) * 3).requires_grad_()
    labels = torch.randint(0, c, (b, h, w), generator=g)
    labels[torch.rand(b, h, w, generator=g) < p_ignore] = 255
    labels.view(-1)[0] = 0  # at least one valid pixel, so the reference is defined
    loss = SupervisedCrossEntropy()(logits, labels)
    ref_logits = logits.detach().double().requires_grad_()
    ref = reference(ref_logits, labels, 255)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(logits.grad.double(), ref_logits.grad, rtol=1e-4, atol=1e-6)
    # Same as torch's mean reduction whenever some pixel is valid.
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels, ignore_index=255))
    assert loss.item() >= 0
