"""A decision's per-pixel keep mask reaches the loss, and AndFilter ANDs it with the rest."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s4seg.filters import (
    AndFilter,
    ConfidenceMapFilter,
    DiscriminatorGate,
    EntropyPercentileFilter,
    FilterDecision,
    PixelConfidenceFilter,
    filter_stats,
)
from s4seg.losses import SelfTrainingLoss
from s4seg.ops.reference import confidence_masked_cross_entropy_reference

fast = settings(max_examples=20, deadline=None)


def reference_loss(
    logits: torch.Tensor,
    decision: FilterDecision,
    teacher: torch.Tensor | None = None,
    normalize: str = "selected",
):
    """The reference op on labels = argmax, with 255 where pixel_keep is False."""
    source = logits if teacher is None else teacher
    labels = source.detach().argmax(1)
    labels[~decision.pixel_keep] = 255
    return confidence_masked_cross_entropy_reference(
        logits,
        decision.pixel_threshold,
        "scalar",
        teacher_logits=teacher,
        labels=labels,
        image_keep=decision.image_keep,
        normalize=normalize,
    )


def make(seed: int, shape=(3, 4, 5, 6)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("normalize", ["selected", "valid", "all"])
def test_self_training_loss_with_pixel_keep_equals_the_reference(normalize):
    logits = make(0).requires_grad_(True)
    d = EntropyPercentileFilter(0.3).decide(logits=logits, step=0)
    loss, stats = SelfTrainingLoss(normalize=normalize, backend="reference")(logits, d)
    ref, ref_stats = reference_loss(logits, d, normalize=normalize)
    torch.testing.assert_close(loss, ref)
    assert int(stats.pixels_kept) == int(ref_stats.pixels_kept) == int(d.pixel_keep.sum())
    # Gradients agree too, and vanish on the dropped pixels.
    (g,) = torch.autograd.grad(loss, logits)
    (g_ref,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g, g_ref)
    assert torch.equal(g.abs().sum(1)[~d.pixel_keep], torch.zeros(int((~d.pixel_keep).sum())))


def test_pixel_keep_changes_the_loss():
    # The mask must matter: dropping 40% of the pixels gives another loss than keeping all.
    logits = make(1)
    keep_all = EntropyPercentileFilter(0.0).decide(logits=logits, step=0)
    dropped = EntropyPercentileFilter(0.4).decide(logits=logits, step=0)
    loss = SelfTrainingLoss(backend="reference")
    assert not torch.allclose(loss(logits, keep_all)[0], loss(logits, dropped)[0])


def test_teacher_logits_give_the_labels():
    student, teacher = make(2), make(3)
    d = ConfidenceMapFilter(0.5).decide(
        logits=teacher,
        pixel_scores=torch.rand(3, 5, 6, generator=torch.Generator().manual_seed(4)),
        step=0,
    )
    loss, _ = SelfTrainingLoss(backend="reference")(student, d, teacher_logits=teacher)
    ref, _ = reference_loss(student, d, teacher=teacher)
    torch.testing.assert_close(loss, ref)


def test_and_filter_ands_pixel_keep_with_image_keep():
    logits = make(5)
    d_prob = torch.tensor([0.9, 0.1, 0.6])
    both = AndFilter(DiscriminatorGate(0.5), EntropyPercentileFilter(0.25))
    d = both.decide(logits=logits, image_scores=d_prob, step=0)
    alone = EntropyPercentileFilter(0.25).decide(logits=logits, step=0)
    assert d.image_keep.tolist() == [True, False, True]
    assert torch.equal(d.pixel_keep, alone.pixel_keep)
    assert torch.equal(d.image_scores, d_prob) and d.image_threshold == 0.5
    kept = d.image_keep[:, None, None] & d.pixel_keep
    assert int(filter_stats(d, logits).pixels_kept) == int(kept.sum())
    loss, stats = SelfTrainingLoss(backend="reference")(logits, d)
    ref, _ = reference_loss(logits, d)
    torch.testing.assert_close(loss, ref)
    assert int(stats.images_kept) == 2


def test_and_filter_ands_two_pixel_masks_and_the_softmax_threshold():
    logits = make(6, (2, 3, 4, 4))
    d_prob = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(7))
    both = AndFilter(
        ConfidenceMapFilter(0.3), EntropyPercentileFilter(0.5), PixelConfidenceFilter(0.6)
    )
    d = both.decide(logits=logits, pixel_scores=d_prob, step=0)
    entropy_keep = EntropyPercentileFilter(0.5).decide(logits=logits, step=0)
    assert torch.equal(d.pixel_keep, (d_prob >= 0.3) & entropy_keep.pixel_keep)
    assert float(d.pixel_threshold) == pytest.approx(0.6)
    confident = logits.softmax(1).amax(1) >= 0.6
    assert int(filter_stats(d, logits).pixels_kept) == int((d.pixel_keep & confident).sum())


def test_and_filter_combines_an_image_gate_with_a_confidence_map():
    # Each part reads its own kind of score: the gate (B,) image scores, the map (B, H, W).
    logits = make(8, (3, 3, 4, 4))
    image = torch.tensor([0.9, 0.1, 0.6])
    pixel = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(9))
    both = AndFilter(DiscriminatorGate(0.5), ConfidenceMapFilter(0.4))
    d = both.decide(logits=logits, step=0, image_scores=image, pixel_scores=pixel)
    assert d.image_keep.tolist() == [True, False, True]
    assert torch.equal(d.pixel_keep, pixel >= 0.4)
    kept = d.image_keep[:, None, None] & (pixel >= 0.4)
    assert int(filter_stats(d, logits).pixels_kept) == int(kept.sum())


@fast
@given(drop=st.floats(0.0, 1.0), seed=st.integers(0, 1000))
def test_loss_equals_the_reference_for_any_drop(drop, seed):
    logits = make(seed, (2, 3, 3, 4))
    d = EntropyPercentileFilter(drop).decide(logits=logits, step=0)
    loss, stats = SelfTrainingLoss(backend="reference")(logits, d)
    ref, _ = reference_loss(logits, d)
    torch.testing.assert_close(loss, ref)
    assert int(stats.pixels_kept) == int(d.pixel_keep.sum())
    assert torch.isfinite(loss)
