"""Inference helpers: whole-image and tiled (sliding-window) prediction."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["predict_logits", "tiled_logits"]


def _starts(size: int, tile: int, stride: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile + 1, stride))
    if starts[-1] != size - tile:
        starts.append(size - tile)  # the last tile ends flush with the border
    return starts


@torch.no_grad()
def tiled_logits(model: nn.Module, images: Tensor, tile: int, *, overlap: float = 1 / 3) -> Tensor:
    """Average the logits of overlapping ``tile`` x ``tile`` crops (sliding-tile inference).

    Images smaller than the tile are padded with zeros and the padding is cut
    from the output, so any size works.

    Shape:
        images: (B, 3, H, W). Returns (B, C, H, W).
    """
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    b, _, h, w = images.shape
    pad_h, pad_w = max(0, tile - h), max(0, tile - w)
    x = F.pad(images, (0, pad_w, 0, pad_h))
    hh, ww = x.shape[-2:]
    stride = max(1, int(tile * (1 - overlap)))
    total: Tensor | None = None
    count = torch.zeros((1, 1, hh, ww), device=images.device)
    for top in _starts(hh, tile, stride):
        for left in _starts(ww, tile, stride):
            logits = model(x[:, :, top : top + tile, left : left + tile]).float()
            if total is None:
                total = logits.new_zeros((b, logits.shape[1], hh, ww))
            total[:, :, top : top + tile, left : left + tile] += logits
            count[:, :, top : top + tile, left : left + tile] += 1
    assert total is not None  # at least one tile always exists
    return (total / count)[:, :, :h, :w]


@torch.no_grad()
def predict_logits(model: nn.Module, images: Tensor, tile: int | None = None) -> Tensor:
    """Logits of ``model`` on ``images``, whole, or in overlapping tiles when ``tile`` is set."""
    if tile is None:
        return model(images)
    return tiled_logits(model, images, tile)
