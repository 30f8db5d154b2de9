"""Masks as palette PNGs: pixel values are class indices, the palette gives each a colour.

A palette PNG opens as a coloured picture in any viewer and reads back as class
indices (``FolderDataset`` reads mode ``P`` as its indices), so a predicted mask can
serve as a training mask after correction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["PALETTE", "save_palette_png"]


def _voc_palette() -> list[int]:
    # PASCAL VOC's colour map: class i's bits spread over the high bits of R, G and B,
    # so neighbouring indices get distinct colours; 255 (ignore) is white here.
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    palette[255 * 3 : 256 * 3] = [255, 255, 255]
    return palette


PALETTE: list[int] = _voc_palette()


def save_palette_png(mask: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W) mask of class indices in [0, 255] as a palette PNG."""
    if mask.ndim != 2 or mask.min(initial=0) < 0 or mask.max(initial=0) > 255:
        raise ValueError(
            f"a palette PNG holds an (H, W) mask of values 0..255, got shape {mask.shape} "
            f"with values {mask.min()}..{mask.max()}"
        )
    im = Image.fromarray(mask.astype(np.uint8), mode="P")
    im.putpalette(PALETTE)
    im.save(path)
    return Path(path)
