"""Tests for s4seg.metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s4seg.metrics import (
    SegmentationMetric,
    confusion_matrix,
    iou_per_class,
    mean_iou,
    pixel_accuracy,
)

fast = settings(max_examples=25, deadline=None)


def test_hand_computed() -> None:
    # 3 classes; class 2 appears nowhere. One ignored pixel (predicted 2: not counted).
    target = torch.tensor([[0, 0, 1, 1, 255]])
    pred = torch.tensor([[0, 1, 1, 1, 2]])
    cm = confusion_matrix(pred, target, num_classes=3)
    # rows = ground truth, cols = prediction
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    assert cm.dtype == torch.int64
    iou = iou_per_class(cm)
    # class 0: TP 1 / (TP 1 + FP 0 + FN 1) = 1/2; class 1: 2 / (2 + 1 + 0) = 2/3; class 2: 0/0.
    assert iou[0].item() == pytest.approx(0.5)
    assert iou[1].item() == pytest.approx(2 / 3)
    assert math.isnan(iou[2].item())
    # Class 2 is absent from both: excluded from the mean, not counted as 0 or 1.
    assert mean_iou(cm) == pytest.approx((0.5 + 2 / 3) / 2)
    assert pixel_accuracy(cm) == pytest.approx(3 / 4)


def test_predicted_but_absent_class_counts_as_zero() -> None:
    target = torch.tensor([0, 0])
    pred = torch.tensor([0, 1])
    cm = confusion_matrix(pred, target, 2)
    # class 0: 1/2; class 1: predicted once, never true -> IoU 0, which counts.
    assert iou_per_class(cm).tolist() == [0.5, 0.0]
    assert mean_iou(cm) == pytest.approx(0.25)


def test_empty_confusion_matrix() -> None:
    cm = confusion_matrix(torch.tensor([1]), torch.tensor([255]), 2)
    assert cm.sum().item() == 0
    assert math.isnan(mean_iou(cm))
    assert math.isnan(pixel_accuracy(cm))


def test_metric_accumulator_hand_computed() -> None:
    m = SegmentationMetric(num_classes=2)
    # logits (B=1, C=2, H=1, W=3): argmax (1, 0, 1)
    logits = torch.tensor([[[[0.0, 2.0, -1.0]], [[1.0, 0.0, 3.0]]]])
    m.update(logits, torch.tensor([[[1, 1, 255]]]))
    m.update(torch.tensor([[[0, 0]]]), torch.tensor([[[0, 1]]]))
    assert m.confusion.tolist() == [[1, 0], [2, 1]]
    out = m.compute()
    # class 0: 1 / (1 + 2) ; class 1: 1 / (1 + 2)
    assert out["iou"] == pytest.approx([1 / 3, 1 / 3])
    assert out["miou"] == pytest.approx(1 / 3)
    assert out["pixel_acc"] == pytest.approx(2 / 4)
    assert "pixels=4" in repr(m)
    m.reset()
    assert m.confusion.sum().item() == 0
    assert math.isnan(m.compute()["miou"])


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"target contains value\(s\) 3, 9 outside \[0, 3\)"):
        confusion_matrix(torch.tensor([0, 0, 0]), torch.tensor([3, 9, 255]), 3)
    with pytest.raises(ValueError, match=r"pred contains value\(s\) -1"):
        confusion_matrix(torch.tensor([-1, 0]), torch.tensor([0, 0]), 3)
    # A wrong prediction at an ignored pixel is not an error: it is not counted.
    assert confusion_matrix(torch.tensor([7]), torch.tensor([255]), 3).sum() == 0
    with pytest.raises(ValueError, match="argmax"):
        confusion_matrix(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), 3)
    with pytest.raises(TypeError, match="integer"):
        confusion_matrix(torch.zeros(2), torch.zeros(2, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="num_classes"):
        confusion_matrix(torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long), 0)
    with pytest.raises(ValueError, match="square"):
        iou_per_class(torch.zeros(2, 3))
    m = SegmentationMetric(3)
    with pytest.raises(ValueError, match="num_classes=4"):
        m.update(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="logits"):
        m.update(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="num_classes"):
        SegmentationMetric(0)


def scipy_miou(pred: np.ndarray, target: np.ndarray, c: int, ignore: int) -> float:
    """mIoU from a scipy.sparse confusion matrix (duplicates summed by COO -> dense)."""
    keep = target != ignore
    t, p = target[keep], pred[keep]
    cm = scipy.sparse.coo_matrix((np.ones_like(t), (t, p)), shape=(c, c)).toarray()
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / union
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else math.nan


@st.composite
def labelled(draw):
    c = draw(st.integers(1, 6))
    n = draw(st.integers(1, 60))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    target = rng.integers(0, c, n)
    target[rng.random(n) < draw(st.floats(0.0, 0.5))] = 255
    pred = rng.integers(0, c, n)
    return pred, target, c


@fast
@given(labelled())
def test_miou_matches_scipy_and_counts(data) -> None:
    pred, target, c = data
    cm = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), c)
    assert cm.sum().item() == int((target != 255).sum())  # every non-ignored pixel once
    expected = scipy_miou(pred, target, c, 255)
    got = mean_iou(cm)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected, rel=1e-12)
    if cm.sum() > 0:
        assert pixel_accuracy(cm) == pytest.approx(
            float((pred == target)[target != 255].mean()), rel=1e-12
        )


@fast
@given(labelled(), st.integers(1, 5))
def test_streaming_equals_one_shot(data, chunks) -> None:
    pred, target, c = data
    m = SegmentationMetric(c)
    for p, t in zip(np.array_split(pred, chunks), np.array_split(target, chunks), strict=True):
        m.update(torch.from_numpy(p).view(1, 1, -1), torch.from_numpy(t).view(1, 1, -1))
    one = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), c)
    assert torch.equal(m.confusion, one)
    out = m.compute()
    assert out["miou"] == pytest.approx(mean_iou(one), nan_ok=True)
    assert len(out["iou"]) == c
