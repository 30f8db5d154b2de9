"""The one plain-PyTorch reference of the confidence-masked cross-entropy.

It is the CPU path, the test oracle and the benchmark baseline; nothing else in
the package re-implements it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from s4seg.ops.stats import PseudoLabelStats

NORMALIZATIONS = ("selected", "valid", "all")


def pixel_threshold_map(threshold: Tensor, pseudo_labels: Tensor, kind: str) -> Tensor:
    """Expand a scalar, per-class or per-image threshold to a per-pixel map.

    Args:
        threshold: 0-d, (C,) or (B,) float tensor.
        pseudo_labels: (B, H, W) int64 argmax of the teacher.
        kind: "scalar", "class" or "image".
    """
    if kind == "scalar":
        return threshold.reshape(1, 1, 1).expand_as(pseudo_labels)
    if kind == "class":
        return threshold[pseudo_labels]
    return threshold.reshape(-1, 1, 1).expand_as(pseudo_labels)


@torch.no_grad()
def select_pseudo_labels(
    source_logits: Tensor,
    threshold: Tensor,
    threshold_kind: str,
    *,
    labels: Tensor | None,
    image_keep: Tensor | None,
    ignore_index: int,
    temperature: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Targets, confidence and the selection mask (all constants for autograd).

    The pseudo-label is the first maximum of the source logits; the confidence is
    the largest softmax probability of ``source / temperature``.

    Returns:
        ``(targets, confidence, selected)`` with shapes (B, H, W).
    """
    src = source_logits.float()
    pseudo = src.argmax(dim=1)
    # max p = 1 / sum_c exp((l_c - max) / T): written so that it equals softmax().max()
    # exactly like the kernel computes it (online max, then a sum of exponentials).
    shifted = (src - src.amax(dim=1, keepdim=True)) / temperature
    confidence = 1.0 / shifted.exp().sum(dim=1)
    targets = pseudo if labels is None else labels.long()
    thr = pixel_threshold_map(threshold.float(), pseudo, threshold_kind)
    selected = (confidence >= thr) & (targets != ignore_index)
    if image_keep is not None:
        selected &= image_keep.reshape(-1, 1, 1).bool()
    return targets, confidence, selected


def confidence_masked_cross_entropy_reference(
    logits: Tensor,
    threshold: Tensor,
    threshold_kind: str,
    *,
    teacher_logits: Tensor | None = None,
    labels: Tensor | None = None,
    image_keep: Tensor | None = None,
    ignore_index: int = 255,
    normalize: str = "selected",
    temperature: float = 1.0,
) -> tuple[Tensor, PseudoLabelStats]:
    """Eager reference of :func:`s4seg.ops.confidence_masked_cross_entropy`.

    Arguments are already validated by the public function. Computes in float32
    and returns a float32 loss; the gradient reaches ``logits`` only.
    """
    source = (teacher_logits if teacher_logits is not None else logits).detach()
    targets, _, selected = select_pseudo_labels(
        source,
        threshold,
        threshold_kind,
        labels=labels,
        image_keep=image_keep,
        ignore_index=ignore_index,
        temperature=temperature,
    )
    safe_targets = torch.where(selected, targets, torch.zeros_like(targets))
    per_pixel = F.cross_entropy(logits.float(), safe_targets, reduction="none")
    total = torch.where(selected, per_pixel, torch.zeros_like(per_pixel)).sum()
    if normalize == "selected":
        denom = selected.sum()
    elif normalize == "valid":
        denom = (targets != ignore_index).sum()
    else:
        denom = torch.tensor(targets.numel(), device=targets.device)
    # Nothing selected gives 0 / 1 = 0 and a zero gradient, never NaN.
    loss = total / denom.clamp_min(1).to(total.dtype)
    return loss, PseudoLabelStats.from_mask(selected)
