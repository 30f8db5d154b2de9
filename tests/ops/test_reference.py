"""Hand-computed cases for the plain-torch reference of the confidence-masked
cross-entropy, through the public API with ``backend="reference"``, and a comparison
with a naive implementation written here (softmax -> max -> mask -> cross-entropy)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from s4seg.ops import confidence_masked_cross_entropy

fast = settings(max_examples=25, deadline=None)
LOG3, LOG9 = math.log(3.0), math.log(9.0)


def cmce(logits, threshold, **kw):
    return confidence_masked_cross_entropy(logits, threshold, backend="reference", **kw)


def pixels(*per_pixel: list[float]) -> torch.Tensor:
    """(1, C, 1, W) logits from a list of per-pixel logit vectors."""
    return torch.tensor(per_pixel).t().reshape(1, len(per_pixel[0]), 1, len(per_pixel))


def tiny() -> torch.Tensor:
    # Pixel 0: p = (3/4, 1/4) -> class 0, confidence 0.75, CE -log 0.75.
    # Pixel 1: p = (1/10, 9/10) -> class 1, confidence 0.9, CE -log 0.9.
    return pixels([LOG3, 0.0], [0.0, LOG9])


CE_A, CE_B = -math.log(0.75), -math.log(0.9)


def test_hand_computed_1x2x1x2() -> None:
    logits = tiny().requires_grad_()
    assert logits.shape == (1, 2, 1, 2)
    loss, stats = cmce(logits, 0.8)
    assert loss.item() == pytest.approx(CE_B, rel=1e-6)  # only pixel 1 passes 0.8
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert (stats.images_kept.item(), stats.images_total.item()) == (1, 1)
    assert (stats.pixels_kept.item(), stats.pixels_total.item()) == (1, 2)
    loss.backward()
    # d CE / d logits = softmax - onehot(target) on pixel 1 only.
    expected = torch.tensor([[0.0, 0.1], [0.0, -0.1]]).reshape(1, 2, 1, 2)
    torch.testing.assert_close(logits.grad, expected)
    both, stats = cmce(tiny(), 0.7)
    assert both.item() == pytest.approx((CE_A + CE_B) / 2, rel=1e-6)
    assert stats.pixels_kept.item() == 2


@pytest.mark.parametrize(
    "kw",
    [
        {"threshold": 0.95},  # both confidences are below
        {"threshold": 0.0, "image_keep": torch.tensor([False])},  # the image is gated out
        {"threshold": 0.0, "labels": torch.full((1, 1, 2), 255)},  # every label ignored
    ],
)
def test_nothing_selected_gives_zero_loss_zero_grad_no_nan(kw) -> None:
    logits = tiny().requires_grad_()
    threshold = kw.pop("threshold")
    for normalize in ("selected", "valid", "all"):
        loss, stats = cmce(logits, threshold, normalize=normalize, **kw)
        loss.backward()
        assert loss.item() == 0.0
        assert not torch.isnan(logits.grad).any()
        assert torch.equal(logits.grad, torch.zeros_like(logits))
        assert stats.pixels_kept.item() == 0 and stats.images_kept.item() == 0


def test_threshold_equal_to_confidence_is_selected() -> None:
    # Equal logits give exactly representable confidences 1/2 and 1/4.
    for c, conf in ((2, 0.5), (4, 0.25)):
        logits = torch.zeros(1, c, 1, 3)
        _, stats = cmce(logits, conf)
        assert stats.pixels_kept.item() == 3, c
        # The next float32 above (the threshold is compared in float32).
        above = torch.nextafter(torch.tensor(conf), torch.tensor(1.0)).item()
        _, stats = cmce(logits, above)
        assert stats.pixels_kept.item() == 0, c


def test_ties_go_to_the_first_class() -> None:
    # Logits (1, 1, 0): classes 0 and 1 tie. The gradient softmax - onehot(target)
    # shows the target: -(1 - p) on class 0 only.
    logits = pixels([1.0, 1.0, 0.0]).requires_grad_()
    loss, _ = cmce(logits, 0.0)
    loss.backward()
    p = torch.softmax(torch.tensor([1.0, 1.0, 0.0]), 0)
    torch.testing.assert_close(logits.grad.flatten(), p - torch.tensor([1.0, 0.0, 0.0]))


def test_normalizations() -> None:
    # Two images of 2 pixels; labels give one ignored pixel in image 1.
    a = [LOG3, 0.0]  # conf 0.75, class 0
    b = [0.0, LOG9]  # conf 0.9, class 1
    logits = torch.cat([pixels(a, b), pixels(b, a)])
    labels = torch.tensor([[[0, 1]], [[255, 0]]])
    # threshold 0.8 on the confidence: pixel (0,1) conf 0.9 and (1,0) conf 0.9 but ignored.
    expected_sum = CE_B
    for normalize, denom in (("selected", 1), ("valid", 3), ("all", 4)):
        loss, stats = cmce(logits, 0.8, labels=labels, normalize=normalize)
        assert loss.item() == pytest.approx(expected_sum / denom, rel=1e-6), normalize
        assert stats.pixels_kept.item() == 1
    # Without labels every pseudo-label is valid: "valid" divides by all pixels.
    for normalize, denom in (("selected", 2), ("valid", 4), ("all", 4)):
        loss, _ = cmce(logits, 0.8, normalize=normalize)
        assert loss.item() == pytest.approx(2 * CE_B / denom, rel=1e-6), normalize


def test_labels_are_targets_and_confidence_masks() -> None:
    # Pixel 0 is confident for class 0 but labelled 1: the CE is against the label.
    logits = tiny()
    labels = torch.tensor([[[1, 1]]])
    loss, _ = cmce(logits, 0.7, labels=labels)
    assert loss.item() == pytest.approx((-math.log(0.25) + CE_B) / 2, rel=1e-6)


def test_ignore_index_in_labels() -> None:
    logits = tiny()
    loss, stats = cmce(logits, 0.0, labels=torch.tensor([[[255, 1]]]))
    assert stats.pixels_kept.item() == 1
    assert loss.item() == pytest.approx(CE_B, rel=1e-6)
    loss, stats = cmce(logits, 0.0, labels=torch.tensor([[[-1, 1]]]), ignore_index=-1)
    assert stats.pixels_kept.item() == 1
    assert loss.item() == pytest.approx(CE_B, rel=1e-6)


def test_per_class_threshold() -> None:
    # B=1, C=2: (C,) thresholds are per class, indexed by the pseudo-label.
    logits = tiny()
    # class 0 needs 0.7 (pixel 0: 0.75 passes), class 1 needs 0.95 (pixel 1: 0.9 fails).
    loss, stats = cmce(logits, torch.tensor([0.7, 0.95]))
    assert stats.pixels_kept.item() == 1
    assert loss.item() == pytest.approx(CE_A, rel=1e-6)
    loss, stats = cmce(logits, torch.tensor([0.8, 0.85]))
    assert stats.pixels_kept.item() == 1
    assert loss.item() == pytest.approx(CE_B, rel=1e-6)


def test_per_image_threshold() -> None:
    # B=3 images, C=2 classes: a (3,) threshold is per image.
    logits = torch.cat([tiny(), tiny(), tiny()])
    loss, stats = cmce(logits, torch.tensor([0.7, 0.8, 0.95]))
    # image 0 keeps both pixels, image 1 pixel 1 only, image 2 none.
    assert (stats.images_kept.item(), stats.pixels_kept.item()) == (2, 3)
    assert loss.item() == pytest.approx((CE_A + 2 * CE_B) / 3, rel=1e-6)


def test_b_equal_c_is_ambiguous() -> None:
    logits = torch.cat([tiny(), tiny()])  # B = C = 2
    thr = torch.tensor([0.7, 0.95])
    with pytest.raises(ValueError, match=r"B == C == 2.*threshold_kind"):
        cmce(logits, thr)
    _, per_class = cmce(logits, thr, threshold_kind="class")
    _, per_image = cmce(logits, thr, threshold_kind="image")
    assert per_class.pixels_kept.item() == 2  # pixel 0 of each image
    assert per_image.pixels_kept.item() == 2  # both pixels of image 0
    assert per_class.images_kept.item() == 2 and per_image.images_kept.item() == 1


@pytest.mark.parametrize("bad", [1.5, -0.1, 20.0, float("nan")])
def test_threshold_outside_unit_interval(bad) -> None:
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        cmce(tiny(), bad)


@pytest.mark.parametrize("bad", [[0.5, 1.5], [-0.1, 0.5], [float("nan"), 0.5]])
def test_cpu_tensor_threshold_outside_unit_interval(bad) -> None:
    # A per-class threshold given as a CPU tensor is checked too (no device sync there).
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        cmce(tiny(), torch.tensor(bad))


def test_other_bad_input() -> None:
    with pytest.raises(ValueError, match="threshold_kind must be"):
        cmce(tiny(), 0.5, threshold_kind="per_class")
    with pytest.raises(ValueError, match="matches neither"):
        cmce(tiny(), torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="normalize"):
        cmce(tiny(), 0.5, normalize="mean")
    with pytest.raises(ValueError, match="temperature"):
        cmce(tiny(), 0.5, temperature=0.0)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        cmce(torch.zeros(2, 3), 0.5)
    with pytest.raises(ValueError, match="labels"):
        cmce(tiny(), 0.5, labels=torch.zeros(1, 2, 2, dtype=torch.long))


def naive(
    logits,
    threshold,
    *,
    teacher=None,
    labels=None,
    keep=None,
    ignore=255,
    normalize="selected",
    temperature=1.0,
    kind="scalar",
):
    """The op written the obvious way: softmax -> max -> mask -> CE -> sum / count."""
    src = (teacher if teacher is not None else logits).detach().float()
    probs = torch.softmax(src / temperature, dim=1)
    conf, pseudo = probs.max(dim=1)  # max picks the first of equal values
    target = pseudo if labels is None else labels
    if kind == "scalar":
        thr = torch.full_like(conf, float(threshold))
    elif kind == "class":
        thr = threshold[pseudo]
    else:
        thr = threshold.view(-1, 1, 1).expand_as(conf)
    mask = (conf >= thr) & (target != ignore)
    if keep is not None:
        mask = mask & keep.view(-1, 1, 1)
    ce = F.cross_entropy(logits.float(), target.masked_fill(~mask, 0), reduction="none")
    total = (ce * mask).sum()
    count = {"selected": mask.sum(), "valid": (target != ignore).sum(), "all": mask.numel()}[
        normalize
    ]
    return total / max(int(count), 1), mask


@st.composite
def cases(draw):
    b = draw(st.integers(1, 3))
    c = draw(st.sampled_from([2, 3, 5]))
    h, w = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    logits = torch.randn(b, c, h, w, generator=g) * draw(st.floats(0.5, 4.0))
    teacher = torch.randn(b, c, h, w, generator=g) * 2 if draw(st.booleans()) else None
    labels = None
    if draw(st.booleans()):
        labels = torch.randint(0, c, (b, h, w), generator=g)
        labels[torch.rand(b, h, w, generator=g) < 0.3] = 255
    keep = torch.rand(b, generator=g) < 0.7 if draw(st.booleans()) else None
    kind = draw(st.sampled_from(["scalar", "class", "image"]))
    if kind == "scalar":
        threshold = draw(st.floats(0.0, 1.0))
    else:
        threshold = torch.rand(c if kind == "class" else b, generator=g)
    normalize = draw(st.sampled_from(["selected", "valid", "all"]))
    temperature = draw(st.sampled_from([1.0, 0.5, 2.0]))
    return logits, threshold, teacher, labels, keep, kind, normalize, temperature


@fast
@given(cases(), st.floats(0.1, 3.0))
def test_matches_naive_implementation(case, grad_scale) -> None:
    logits, threshold, teacher, labels, keep, kind, normalize, temperature = case
    src = teacher if teacher is not None else logits
    conf = torch.softmax(src / temperature, dim=1).amax(dim=1)
    thr_t = torch.as_tensor(threshold)
    # Skip draws where a confidence sits within rounding of its threshold: the two
    # ways of computing max softmax may disagree by an ulp there.
    if kind == "scalar":
        assume(not ((conf - float(threshold)).abs() < 1e-5).any())
    else:
        pseudo = src.argmax(dim=1)
        full = thr_t[pseudo] if kind == "class" else thr_t.view(-1, 1, 1).expand_as(conf)
        assume(not ((conf - full).abs() < 1e-5).any())
    x = logits.clone().requires_grad_()
    loss, stats = cmce(
        x,
        threshold,
        teacher_logits=teacher,
        labels=labels,
        image_keep=keep,
        normalize=normalize,
        temperature=temperature,
        threshold_kind=kind,
    )
    y = logits.clone().requires_grad_()
    ref, mask = naive(
        y,
        thr_t,
        teacher=teacher,
        labels=labels,
        keep=keep,
        normalize=normalize,
        temperature=temperature,
        kind=kind,
    )
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
    # An incoming gradient that is not 1.
    (loss * grad_scale).backward()
    (ref * grad_scale).backward()
    torch.testing.assert_close(x.grad, y.grad, rtol=1e-5, atol=1e-6)
    assert stats.pixels_kept.item() == int(mask.sum())
    assert stats.images_kept.item() == int(mask.flatten(1).any(1).sum())
    assert stats.pixels_total.item() == mask.numel()
    assert stats.images_total.item() == logits.shape[0]
