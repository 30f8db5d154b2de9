"""Tests for s4seg.data.views: weak / strong views and CutMix."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s4seg.data.views import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    StrongView,
    WeakStrongViews,
    WeakView,
    apply_cutmix,
    cutmix_boxes,
    cutmix_partner,
)

fast = settings(max_examples=25, deadline=None)
MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def Strong(*args, **kwargs) -> StrongView:
    """A StrongView for ImageNet-normalized images, as these tests feed it."""
    return StrongView(*args, mean=IMAGENET_MEAN, std=IMAGENET_STD, **kwargs)


NO_PHOTO = Strong(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def normalized(b: int = 2, h: int = 6, w: int = 7, seed: int = 0, dtype=torch.float32):
    """Normalized images whose un-normalized values lie in [0, 1]."""
    x = torch.rand(b, 3, h, w, generator=gen(seed), dtype=torch.float64)
    return ((x - MEAN.double()) / STD.double()).to(dtype)


def unnormalize(x: torch.Tensor) -> torch.Tensor:
    return x * STD.to(x) + MEAN.to(x)


def test_weak_identity_and_flip() -> None:
    x = normalized()
    torch.testing.assert_close(WeakView(flip_p=0.0, scale=(1.0, 1.0))(x, gen()), x)
    flipped = WeakView(flip_p=1.0, scale=(1.0, 1.0))(x, gen())
    torch.testing.assert_close(flipped, torch.flip(x, [-1]))


@pytest.mark.parametrize("flip_p", [0.0, 1.0])
def test_weak_crop_zooms_by_the_side_fraction(flip_p: float) -> None:
    # A ramp in x: the crop of area 1/4 has half the side, so neighbouring output columns
    # near the centre (whose samples are interior, see the crop bounds) differ by 1/2.
    ramp = torch.arange(16.0).expand(3, 2, 16, 16).contiguous()
    out = WeakView(flip_p=flip_p, scale=(0.25, 0.25))(ramp, gen(3))
    step = out[..., 8] - out[..., 7]
    torch.testing.assert_close(step, torch.full_like(step, 0.5 if flip_p == 0 else -0.5))
    torch.testing.assert_close(out, out[:, :, :1].expand_as(out))  # rows stay equal
    centre = out[..., 7:9].mean((1, 2, 3))  # 7.5 + 8 * cx with |cx| <= 1/2
    assert bool(((centre >= 3.5 - 1e-5) & (centre <= 11.5 + 1e-5)).all())


def test_strong_no_ops_is_identity_and_dtype_shape_kept() -> None:
    for dtype in (torch.float32, torch.float64):
        x = normalized(dtype=dtype)
        out = NO_PHOTO(x, gen())
        assert out.dtype == dtype and out.shape == x.shape
        torch.testing.assert_close(out, x)


def test_grayscale_gives_equal_channels_equal_to_luma() -> None:
    x = normalized(dtype=torch.float64)
    out = unnormalize(Strong(jitter_p=0.0, grayscale_p=1.0, blur_p=0.0)(x, gen()))
    rgb = unnormalize(x)
    luma = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    for ch in range(3):
        torch.testing.assert_close(out[:, ch], luma)


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    return 0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]


@pytest.mark.parametrize("which", ["brightness", "contrast", "saturation"])
def test_jitter_matches_hand_computed(which: str) -> None:
    x = normalized(dtype=torch.float64)
    strengths = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, which: 0.5}
    view = Strong(1.0, **strengths, grayscale_p=0.0, blur_p=0.0)
    u = torch.rand(7, 2, generator=gen(5), dtype=torch.float64)  # the draws StrongView makes
    row = 1 + ["brightness", "contrast", "saturation"].index(which)
    f = (0.5 + u[row]).view(2, 1, 1, 1)  # uniform in [1 - 0.5, 1 + 0.5]
    rgb = unnormalize(x)
    base = {
        "brightness": torch.zeros(()),
        "contrast": _luma(rgb).mean((2, 3), keepdim=True),
        "saturation": _luma(rgb),
    }[which]
    expected = (f * rgb + (1 - f) * base).clamp(0, 1)
    torch.testing.assert_close(unnormalize(view(x, gen(5))), expected)


def test_blur_matches_loop_reference() -> None:
    sigma = 0.8
    x = normalized(b=1, h=4, w=5, dtype=torch.float64)
    view = Strong(0.0, grayscale_p=0.0, blur_p=1.0, blur_sigma=(sigma, sigma))
    out = unnormalize(view(x, gen()))
    rgb = unnormalize(x)
    r = math.ceil(3 * sigma)
    k = [math.exp(-(i * i) / (2 * sigma * sigma)) for i in range(-r, r + 1)]
    k = [v / sum(k) for v in k]
    h, w = 4, 5
    for c in range(3):
        for i in range(h):
            for j in range(w):
                acc = 0.0
                for a in range(-r, r + 1):
                    for b in range(-r, r + 1):  # replicate padding: clamp the index
                        ii, jj = min(max(i + a, 0), h - 1), min(max(j + b, 0), w - 1)
                        acc += k[a + r] * k[b + r] * rgb[0, c, ii, jj].item()
                assert out[0, c, i, j].item() == pytest.approx(acc, abs=1e-9)


@fast
@given(st.integers(0, 2**31 - 1), st.integers(1, 4), st.floats(0, 1), st.floats(0, 1))
def test_strong_stays_in_normalized_unit_range(seed: int, b: int, p: float, s: float) -> None:
    x = normalized(b=b, seed=seed)
    view = Strong(p, s, s, s, grayscale_p=p, blur_p=p)
    out = unnormalize(view(x, gen(seed)))
    assert out.shape == x.shape
    assert bool((out >= -1e-5).all() and (out <= 1 + 1e-5).all())


@fast
@given(
    st.integers(0, 2**31 - 1),
    st.integers(1, 5),
    st.integers(1, 12),
    st.integers(1, 12),
    st.floats(0.01, 1.0),
    st.floats(0.0, 1.0),
)
def test_cutmix_boxes_are_rectangles_of_bounded_area(seed, b, h, w, lo, width) -> None:
    hi = lo + width * (1 - lo)
    mask = cutmix_boxes(b, h, w, gen(seed), p=1.0, area=(lo, hi))
    assert mask.shape == (b, h, w) and mask.dtype == torch.bool
    for m in mask:
        rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
        bh, bw = len(rows), len(cols)
        assert bh >= 1 and bw >= 1
        assert int(m.sum()) == bh * bw  # a filled rectangle
        assert rows.max() - rows.min() + 1 == bh and cols.max() - cols.min() + 1 == bw
        # Sides are round(sqrt(a) * side) clamped to [1, side]: within half a pixel.
        assert math.sqrt(lo) * h - 0.5 <= bh <= max(math.sqrt(hi) * h + 0.5, 1)
        assert math.sqrt(lo) * w - 0.5 <= bw <= max(math.sqrt(hi) * w + 0.5, 1)


def test_cutmix_p0_is_noop() -> None:
    assert not cutmix_boxes(4, 5, 6, gen(), p=0.0).any()
    views = WeakStrongViews(cutmix_p=0.0, strong=NO_PHOTO)(normalized(), gen())
    torch.testing.assert_close(views.strong, views.weak)


def test_apply_cutmix_matches_loop_reference() -> None:
    mask = cutmix_boxes(3, 4, 5, gen(2), p=1.0, area=(0.2, 0.5))
    partner = cutmix_partner(3)
    assert partner.tolist() == [1, 2, 0]
    logits = torch.randn(3, 2, 4, 5, generator=gen(1))
    labels = torch.randint(0, 9, (3, 4, 5), generator=gen(1))
    mixed_logits, mixed_labels = apply_cutmix(mask, partner, logits, labels)
    for i in range(3):
        for y in range(4):
            for x in range(5):
                src = int(partner[i]) if mask[i, y, x] else i
                assert torch.equal(mixed_logits[i, :, y, x], logits[src, :, y, x])
                assert mixed_labels[i, y, x] == labels[src, y, x]


def test_views_mix_aligns_teacher_targets_with_strong_images() -> None:
    # With no photometric change the strong view is the mixed weak view, so the
    # "teacher output" weak, mixed the same way, must equal it pixel for pixel.
    views = WeakStrongViews(strong=NO_PHOTO, cutmix_p=1.0)(normalized(b=3), gen(4))
    assert views.mix_mask.any()
    (mixed,) = views.mix(views.weak)
    torch.testing.assert_close(mixed, views.strong)


def test_deterministic_given_seed() -> None:
    x = normalized(b=3, h=8, w=8)
    views = WeakStrongViews(strong=Strong())
    a, b = views(x, gen(7)), views(x, gen(7))
    for name in ("weak", "strong", "mix_mask", "partner"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.strong, views(x, gen(8)).strong)


def test_float64() -> None:
    x = normalized(dtype=torch.float64)
    views = WeakStrongViews(strong=Strong(), cutmix_p=1.0)(x, gen())
    assert views.weak.dtype == views.strong.dtype == torch.float64
    assert views.strong.shape == x.shape


def test_validation() -> None:
    with pytest.raises(ValueError, match=r"flip_p must be a probability in \[0, 1\], got 1.5"):
        WeakView(flip_p=1.5)
    with pytest.raises(ValueError, match=r"scale must be \(low, high\) with 0 < low"):
        WeakView(scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="blur_sigma"):
        StrongView(blur_sigma=(2.0, 1.0))
    with pytest.raises(ValueError, match="cutmix_p"):
        WeakStrongViews(cutmix_p=-0.1)
    with pytest.raises(ValueError, match=r"float \(B, C, H, W\).*\(3, 4, 4\)"):
        WeakView()(torch.zeros(3, 4, 4), gen())
    with pytest.raises(ValueError, match=r"torch\.int64"):
        WeakView()(torch.zeros(1, 3, 4, 4, dtype=torch.long), gen())
    with pytest.raises(ValueError, match=r"3 \(RGB\) channels, got 4"):
        StrongView()(torch.zeros(1, 4, 4, 4), gen())
    with pytest.raises(ValueError, match=r"CPU torch\.Generator"):
        WeakView()(torch.zeros(1, 3, 4, 4), None)  # type: ignore[arg-type]
    mask = torch.zeros(2, 4, 5, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"tensor 0 must be \(B, \.\.\., H, W\)"):
        apply_cutmix(mask, cutmix_partner(2), torch.zeros(2, 3, 8, 10))


def test_by_default_images_are_intensities_in_unit_range() -> None:
    x = torch.rand(2, 3, 8, 8, generator=gen(1))
    out = StrongView(jitter_p=1.0, grayscale_p=0.0, blur_p=0.0)(x, gen())
    assert out.min() >= 0.0 and out.max() <= 1.0
    torch.testing.assert_close(StrongView(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)(x, gen()), x)


def test_a_normalization_mismatch_is_refused_with_the_fix() -> None:
    # ImageNet-normalized images fed to a view that takes them for [0, 1] intensities.
    with pytest.raises(ValueError, match=r"not \[0, 1\].*mean=IMAGENET_MEAN, std=IMAGENET_STD"):
        StrongView()(normalized(), gen())
    Strong()(normalized(), gen())  # told the right normalization: fine
