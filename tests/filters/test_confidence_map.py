"""ConfidenceMapFilter (AdvSemiSeg): keeps the pixels the discriminator's map trusts."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s4seg.filters import ConfidenceMapFilter, PseudoLabelFilter, filter_stats
from s4seg.models.pixel_discriminator import PixelDiscriminator
from s4seg.schedules import Linear

fast = settings(max_examples=25, deadline=None)


def test_keeps_the_pixels_at_or_above_mask_t():
    d_prob = torch.tensor([[[0.1, 0.25], [0.9, 0.19]], [[0.2, 0.0], [1.0, 0.5]]])
    logits = torch.randn(2, 3, 2, 2)
    d = ConfidenceMapFilter(0.2).decide(logits=logits, pixel_scores=d_prob, step=0)
    assert d.pixel_keep.tolist() == [[[False, True], [True, False]], [[True, False], [True, True]]]
    assert d.image_keep.tolist() == [True, True]
    assert d.pixel_threshold.dim() == 0 and float(d.pixel_threshold) == 0.0  # softmax unused
    assert d.image_scores is None and d.image_threshold is None
    assert int(filter_stats(d, logits).pixels_kept) == 5


def test_the_map_is_required():
    with pytest.raises(ValueError, match=r"pass pixel_scores=torch.sigmoid"):
        ConfidenceMapFilter(0.2).decide(logits=torch.randn(2, 3, 4, 4), step=100)


def test_a_per_image_score_is_refused_with_the_fix():
    f = ConfidenceMapFilter()
    with pytest.raises(
        ValueError, match=r"confidence map of shape \(B, H, W\)=\(2, 4, 4\).*\(2,\)"
    ):
        f.decide(logits=torch.zeros(2, 3, 4, 4), pixel_scores=torch.rand(2), step=0)
    with pytest.raises(ValueError, match="PixelDiscriminator"):
        f.decide(logits=torch.zeros(2, 3, 4, 4), pixel_scores=torch.rand(2, 4, 5), step=0)
    with pytest.raises(TypeError, match="float tensor"):
        f.decide(
            logits=torch.zeros(1, 3, 2, 2),
            pixel_scores=torch.ones(1, 2, 2, dtype=torch.long),
            step=0,
        )
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        f.decide(logits=torch.zeros(3, 4, 4), pixel_scores=torch.rand(3, 4), step=0)


def test_check_range_catches_a_logit_map():
    logits, d_logit = torch.zeros(1, 2, 2, 2), torch.tensor([[[-3.0, 2.0], [0.1, 0.5]]])
    ConfidenceMapFilter().decide(logits=logits, pixel_scores=d_logit, step=0)  # off by default
    with pytest.raises(ValueError, match=r"apply torch\.sigmoid"):
        ConfidenceMapFilter(check_range=True).decide(logits=logits, pixel_scores=d_logit, step=0)


def test_scheduled_threshold_and_bad_values():
    f = ConfidenceMapFilter(Linear(0.0, 1.0, steps=10))
    logits, d_prob = torch.zeros(1, 2, 1, 3), torch.tensor([[[0.1, 0.45, 0.8]]])
    assert f.decide(logits=logits, pixel_scores=d_prob, step=5).pixel_keep.tolist() == [
        [[False, False, True]]
    ]
    assert f.decide(logits=logits, pixel_scores=d_prob, step=0).pixel_keep.all()
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\].*got 20.0"):
        ConfidenceMapFilter(20)
    with pytest.raises(ValueError, match=r"at step 3 is 2\.0"):
        ConfidenceMapFilter(lambda step: 2.0).decide(logits=logits, pixel_scores=d_prob, step=3)


def test_says_what_it_thresholds_and_reprs():
    f = ConfidenceMapFilter(0.2)
    assert isinstance(f, PseudoLabelFilter)
    assert f.thresholds.startswith(
        "pixel: discriminator confidence map sigmoid(D) per pixel >= 0.2; "
        "softmax confidence: not used"
    )
    assert repr(f) == "ConfidenceMapFilter(threshold=0.2)"


def test_takes_the_map_of_a_pixel_discriminator():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 33, 35)
    d_prob = torch.sigmoid(PixelDiscriminator(4, ndf=2)(logits.softmax(1)))
    d = ConfidenceMapFilter(0.5).decide(logits=logits, pixel_scores=d_prob, step=0)
    assert torch.equal(d.pixel_keep, d_prob >= 0.5)
    assert not d.pixel_keep.requires_grad


@fast
@given(
    b=st.integers(1, 3),
    h=st.integers(1, 5),
    w=st.integers(1, 5),
    t1=st.floats(0.0, 1.0),
    t2=st.floats(0.0, 1.0),
    seed=st.integers(0, 1000),
)
def test_kept_pixels_are_those_of_the_map_at_or_above_t_and_monotone(b, h, w, t1, t2, seed):
    gen = torch.Generator().manual_seed(seed)
    d_prob = torch.rand(b, h, w, generator=gen, dtype=torch.float64)
    logits = torch.randn(b, 3, h, w, generator=gen)
    lo, hi = min(t1, t2), max(t1, t2)
    keep_lo = ConfidenceMapFilter(lo).decide(logits=logits, pixel_scores=d_prob, step=0).pixel_keep
    keep_hi = ConfidenceMapFilter(hi).decide(logits=logits, pixel_scores=d_prob, step=0).pixel_keep
    # A plain per-pixel reference.
    ref = [[[d_prob[i, y, x].item() >= lo for x in range(w)] for y in range(h)] for i in range(b)]
    assert keep_lo.tolist() == ref
    assert not (keep_hi & ~keep_lo).any()  # a higher mask_T never keeps more
