"""Segmentation metrics: confusion matrix, per-class IoU, mIoU, pixel accuracy.

Classes absent from both prediction and ground truth: their IoU is 0/0, reported
as NaN, and :func:`mean_iou` leaves them out of the mean (a nanmean). They are not
counted as 1 (which would reward a model for classes it never saw) nor as 0 (which
would punish it for classes the evaluation data does not contain). A class present
in the ground truth but never predicted, or predicted but absent from the ground
truth, has IoU 0 and does count.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "SegmentationMetric",
    "confusion_matrix",
    "iou_per_class",
    "mean_iou",
    "pixel_accuracy",
    "rank_auc",
]


def _bad_values(values: Tensor) -> str:
    found = torch.unique(values).tolist()
    return ", ".join(str(v) for v in found[:10]) + (", ..." if len(found) > 10 else "")


def confusion_matrix(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = 255
) -> Tensor:
    """Counts of (ground truth, prediction) pairs over the non-ignored pixels.

    Built with one ``bincount`` of ``target * C + pred``.

    Args:
        pred: predicted class indices.
        target: ground-truth class indices; ``ignore_index`` pixels are skipped
            (whatever is predicted there).
        num_classes: C.
        ignore_index: target value to skip.

    Returns:
        int64 (C, C) matrix, rows = ground truth, columns = prediction, on the
        device of the inputs.

    Shape:
        pred, target: any shape, the same for both.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    if pred.shape != target.shape:
        raise ValueError(
            f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}; for logits "
            f"(B, C, H, W) pass logits.argmax(1), or use SegmentationMetric.update"
        )
    for name, x in (("pred", pred), ("target", target)):
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise TypeError(
                f"{name} must hold integer class indices, got {x.dtype}; for logits pass "
                f"logits.argmax(1)"
            )
    c = num_classes
    pred = pred.reshape(-1).long()
    target = target.reshape(-1).long()
    valid = target != ignore_index
    bad_target = valid & ((target < 0) | (target >= c))
    bad_pred = valid & ((pred < 0) | (pred >= c))
    if bool((bad_target | bad_pred).any()):
        if bool(bad_target.any()):
            raise ValueError(
                f"target contains value(s) {_bad_values(target[bad_target])} outside [0, {c}) "
                f"that are not ignore_index={ignore_index}; remap them or raise num_classes"
            )
        raise ValueError(
            f"pred contains value(s) {_bad_values(pred[bad_pred])} outside [0, {c}) at "
            f"non-ignored pixels; pass num_classes={c} to match the model"
        )
    idx = target[valid] * c + pred[valid]
    return torch.bincount(idx, minlength=c * c).reshape(c, c)


def _check_cm(cm: Tensor) -> Tensor:
    cm = torch.as_tensor(cm)
    if cm.dim() != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square (C, C), got shape {tuple(cm.shape)}")
    return cm.double()


def iou_per_class(cm: Tensor) -> Tensor:
    """IoU of each class, ``TP / (TP + FP + FN)``.

    Args:
        cm: confusion matrix, rows = ground truth, columns = prediction.

    Returns:
        float64 (C,); NaN for a class absent from both ground truth and prediction.

    Shape:
        cm: (C, C).
    """
    cm = _check_cm(cm)
    tp = cm.diagonal()
    union = cm.sum(dim=0) + cm.sum(dim=1) - tp
    # 0/0 -> NaN on purpose: "absent" is not "perfect" nor "wrong".
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))


def mean_iou(cm: Tensor) -> float:
    """Mean IoU over the classes present in ground truth or prediction (a nanmean).

    A class absent from both is excluded from the mean, not counted as 1 or 0.
    NaN when no pixel was counted at all.

    Shape:
        cm: (C, C).
    """
    return float(torch.nanmean(iou_per_class(cm)))


def pixel_accuracy(cm: Tensor) -> float:
    """Correct pixels over counted pixels; NaN when no pixel was counted.

    Shape:
        cm: (C, C).
    """
    cm = _check_cm(cm)
    total = float(cm.sum())
    return float(cm.diagonal().sum()) / total if total > 0 else float("nan")


class SegmentationMetric:
    """Streaming confusion matrix for evaluation over many batches.

    ``update`` adds a batch, ``compute`` reads the metrics, ``reset`` starts over.
    The ``confusion`` tensor is the whole state: sum it across processes (e.g.
    ``torch.distributed.all_reduce``) before ``compute`` for distributed evaluation.
    It follows the device of the inputs of the latest ``update``.

    Args:
        num_classes: C.
        ignore_index: ground-truth value to skip.
        device: where ``confusion`` starts.

    Example:
        >>> metric = SegmentationMetric(num_classes=6)
        >>> for batch in loader:  # doctest: +SKIP
        ...     metric.update(model.predict(batch["image"]), batch["mask"])
        >>> metric.compute()["miou"]  # doctest: +SKIP
    """

    def __init__(
        self, num_classes: int, ignore_index: int = 255, device: torch.device | str | None = None
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, pred_or_logits: Tensor, target: Tensor) -> None:
        """Add one batch.

        Args:
            pred_or_logits: class indices, or float logits/probabilities with the class
                dimension at dim 1 (reduced by argmax).
            target: ground-truth class indices.

        Shape:
            pred_or_logits: (B, H, W) int or (B, C, H, W) float. target: (B, H, W).
        """
        pred = pred_or_logits
        if pred.is_floating_point():
            if pred.dim() != target.dim() + 1:
                raise ValueError(
                    f"float predictions are read as logits (B, C, H, W) with target (B, H, W); got "
                    f"shapes {tuple(pred.shape)} and {tuple(target.shape)}. Pass class indices "
                    f"as an integer tensor"
                )
            if pred.shape[1] != self.num_classes:
                raise ValueError(
                    f"logits have {pred.shape[1]} classes at dim 1, the metric "
                    f"{self.num_classes}; build SegmentationMetric(num_classes={pred.shape[1]})"
                )
            pred = pred.argmax(dim=1)
        cm = confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        if self.confusion.device != cm.device:
            self.confusion = self.confusion.to(cm.device)
        self.confusion += cm

    def compute(self) -> dict[str, float | list[float]]:
        """``{"miou": float, "iou": [float per class], "pixel_acc": float}``.

        Per-class IoU is NaN for classes absent from both ground truth and
        prediction; ``miou`` leaves those out.
        """
        cm = self.confusion.cpu()
        return {
            "miou": mean_iou(cm),
            "iou": iou_per_class(cm).tolist(),
            "pixel_acc": pixel_accuracy(cm),
        }

    def reset(self) -> None:
        """Zero the confusion matrix."""
        self.confusion.zero_()

    def __repr__(self) -> str:
        return (
            f"SegmentationMetric(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"pixels={int(self.confusion.sum())})"
        )


def rank_auc(scores: Tensor, positive: Tensor) -> float:
    """ROC AUC of ``scores`` for ``positive`` items, from ranks (Mann-Whitney U).

    ``AUC = U / (n_pos * n_neg)`` with ``U = R_pos - n_pos (n_pos + 1) / 2`` and
    ``R_pos`` the sum of the positives' ranks among all scores. Tied scores share
    their average rank, so a positive-negative pair with equal scores counts 1/2.
    It is the probability that a random positive scores above a random negative.

    Args:
        scores: any real scores (higher: more likely positive); NaN is rejected.
        positive: which items are positive.

    Returns:
        The AUC in [0, 1], or NaN when there is no positive or no negative item.

    Shape:
        scores, positive: any shape, the same for both (flattened).

    Raises:
        TypeError: ``positive`` is not a bool tensor, or ``scores`` is not real.
        ValueError: different shapes, or NaN scores.
    """
    if positive.dtype != torch.bool:
        raise TypeError(
            f"positive must be a bool tensor, got dtype {positive.dtype}; pass e.g. "
            "labels == 1 or labels.bool()"
        )
    if scores.dtype.is_complex or scores.dtype == torch.bool:
        raise TypeError(f"scores must be real numbers, got dtype {scores.dtype}")
    if scores.shape != positive.shape:
        raise ValueError(
            f"scores {tuple(scores.shape)} and positive {tuple(positive.shape)} must have the "
            "same shape (one flag per score)"
        )
    # float64 on the host: ranks are exact integers and half-integers there.
    s = scores.detach().reshape(-1).to("cpu", torch.float64)
    pos = positive.detach().reshape(-1).cpu()
    if bool(torch.isnan(s).any()):
        raise ValueError(
            f"scores contain {int(torch.isnan(s).sum())} NaN value(s); a NaN has no rank, "
            "drop those items first"
        )
    n_pos = int(pos.sum())
    n_neg = pos.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    _, inverse, counts = torch.unique(s, sorted=True, return_inverse=True, return_counts=True)
    # Tied values occupy ranks start+1 .. start+count; their average is start + (count+1)/2.
    start = torch.cumsum(counts, 0) - counts
    avg_rank = start.double() + (counts.double() + 1) / 2
    rank_sum = float(avg_rank[inverse][pos].sum())
    u = rank_sum - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)
