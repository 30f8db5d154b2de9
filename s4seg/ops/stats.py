"""Counts that say what a pseudo-label selection kept, in images and in pixels."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PseudoLabelStats:
    """What a pseudo-label selection kept, as tensors (no host sync until logged).

    Images and pixels are separate fields with separate names on purpose: a
    published analysis of a failed S4GAN run read an image count ("3 of 4 images
    passed the discriminator gate") as a pixel count.

    Attributes:
        images_kept: images with at least one selected pixel (0-d int64 tensor).
        images_total: images in the batch (0-d int64 tensor).
        pixels_kept: selected pixels over the whole batch (0-d int64 tensor).
        pixels_total: all pixels of the batch, B*H*W (0-d int64 tensor).
    """

    images_kept: Tensor
    images_total: Tensor
    pixels_kept: Tensor
    pixels_total: Tensor

    @property
    def pixel_fraction(self) -> Tensor:
        """Selected pixels as a fraction of all pixels of the batch."""
        return self.pixels_kept.double() / self.pixels_total.clamp_min(1).double()

    @classmethod
    def from_mask(cls, selected: Tensor) -> PseudoLabelStats:
        """Counts from a boolean selection mask.

        Shape:
            selected: (B, H, W) bool.
        """
        b = selected.shape[0]
        device = selected.device
        return cls(
            images_kept=selected.flatten(1).any(dim=1).sum(),
            images_total=torch.full((), b, device=device, dtype=torch.int64),
            pixels_kept=selected.sum(),
            pixels_total=torch.full((), selected.numel(), device=device, dtype=torch.int64),
        )

    def __add__(self, other: PseudoLabelStats) -> PseudoLabelStats:
        return PseudoLabelStats(
            self.images_kept + other.images_kept,
            self.images_total + other.images_total,
            self.pixels_kept + other.pixels_kept,
            self.pixels_total + other.pixels_total,
        )

    def to_log(self, prefix: str = "st") -> dict[str, float]:
        """Python numbers for a log line (this is the host sync), units in the keys."""
        kept_px = int(self.pixels_kept.item())
        total_px = int(self.pixels_total.item())
        return {
            f"{prefix}_images_kept": int(self.images_kept.item()),
            f"{prefix}_images_total": int(self.images_total.item()),
            f"{prefix}_pixels_kept": kept_px,
            f"{prefix}_pixels_total": total_px,
            f"{prefix}_pixels_frac": kept_px / max(total_px, 1),
        }

    def describe(self) -> str:
        """A human sentence that cannot be misread: '3 of 4 images, 12,034 of 16,384 pixels (73.4%)'."""
        d = self.to_log()
        return (
            f"{d['st_images_kept']} of {d['st_images_total']} images, "
            f"{d['st_pixels_kept']:,} of {d['st_pixels_total']:,} pixels "
            f"({100 * d['st_pixels_frac']:.1f}%)"
        )
