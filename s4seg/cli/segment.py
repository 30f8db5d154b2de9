"""Class probabilities of a trained generator on images of any size: padding, sliding
window, flip test-time augmentation. Shared by ``s4seg eval`` and ``s4seg predict``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from s4seg.cli.errors import CommandError
from s4seg.models import predict_logits

__all__ = ["input_multiple", "load_image", "normalise", "segment"]


def input_multiple(generator: nn.Module) -> int:
    """The side an input is padded to a multiple of: the encoder's output stride.

    A size that is not a multiple of it leaves a partial feature cell at the border,
    which the bilinear upsampling then stretches; padding keeps cells aligned with pixels.
    """
    encoder = getattr(generator, "encoder", None)
    return max(1, int(getattr(encoder, "reduction", 1)))


def load_image(path: str) -> Tensor:
    """An image file as RGB float32 (3, H, W) in [0, 1]."""
    try:
        with Image.open(path) as im:
            rgb = np.array(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as err:
        raise CommandError(f"cannot read image {path!r}: {err}") from err
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)


def normalise(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """``(images - mean) / std`` per channel, as the run's training did.

    Shape:
        images: (B, 3, H, W).
    """
    m = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - m) / s


@torch.inference_mode()
def segment(
    generator: nn.Module, images: Tensor, *, tile: int | None = None, flip: bool = False
) -> Tensor:
    """Softmax class probabilities of normalised images.

    Without ``tile`` the batch is padded (zeros: the mean colour after normalisation) to
    a multiple of the network's output stride and the output cropped back; with it,
    overlapping tiles are averaged (:func:`s4seg.models.tiled_logits`). ``flip`` also
    predicts the mirrored images and averages the two.

    Shape:
        images: (B, 3, H, W). Returns (B, C, H, W) float32.
    """
    h, w = images.shape[-2:]
    if tile is None:
        m = input_multiple(generator)
        images = F.pad(images, (0, -w % m, 0, -h % m))

    def probs(x: Tensor) -> Tensor:
        return predict_logits(generator, x, tile).float().softmax(dim=1)

    out = probs(images)
    if flip:
        out = (out + probs(images.flip(-1)).flip(-1)) / 2
    return out[:, :, :h, :w]
