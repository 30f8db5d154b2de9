"""Inference helpers: whole-image and sliding-window prediction."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _starts(size: int, window: int, stride: int) -> list[int]:
    if size <= window:
        return [0]
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)  # the last window ends flush with the border
    return starts


@torch.no_grad()
def sliding_window_logits(
    model: nn.Module, images: Tensor, window: int, *, overlap: float = 1 / 3
) -> Tensor:
    """Average the logits of overlapping ``window`` x ``window`` crops.

    Images smaller than the window are padded with zeros and the padding is cut
    from the output, so any size works.

    Shape:
        images: (B, 3, H, W). Returns (B, C, H, W).
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    b, _, h, w = images.shape
    pad_h, pad_w = max(0, window - h), max(0, window - w)
    x = F.pad(images, (0, pad_w, 0, pad_h))
    hh, ww = x.shape[-2:]
    stride = max(1, int(window * (1 - overlap)))
    total: Tensor | None = None
    count = torch.zeros((1, 1, hh, ww), device=images.device)
    for top in _starts(hh, window, stride):
        for left in _starts(ww, window, stride):
            logits = model(x[:, :, top : top + window, left : left + window]).float()
            if total is None:
                total = logits.new_zeros((b, logits.shape[1], hh, ww))
            total[:, :, top : top + window, left : left + window] += logits
            count[:, :, top : top + window, left : left + window] += 1
    assert total is not None  # at least one window always exists
    return (total / count)[:, :, :h, :w]


@torch.no_grad()
def predict_logits(model: nn.Module, images: Tensor, window: int | None = None) -> Tensor:
    """Logits of ``model`` on ``images``, whole or by sliding window when ``window`` is set."""
    if window is None:
        return model(images)
    return sliding_window_logits(model, images, window)
