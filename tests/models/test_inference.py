"""Whole-image and tiled (sliding-window) inference."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from s4seg.models import predict_logits, tiled_logits


class PerPixel(nn.Module):
    """A 1x1 conv: every pixel's logits depend on that pixel only."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize("size", [(17, 23), (8, 8), (5, 40)])
@pytest.mark.parametrize("tile", [4, 8, 11, 64])
def test_tiles_give_the_whole_image_logits_for_a_per_pixel_model(size, tile):
    model, x = PerPixel(), torch.randn(2, 3, *size)
    torch.testing.assert_close(tiled_logits(model, x, tile), model(x), rtol=1e-5, atol=1e-5)


def test_predict_logits_is_whole_without_a_tile_and_tiled_with_one():
    model, x = PerPixel(), torch.randn(1, 3, 9, 9)
    torch.testing.assert_close(predict_logits(model, x), model(x))
    torch.testing.assert_close(predict_logits(model, x, tile=4), model(x), rtol=1e-5, atol=1e-5)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="tile must be >= 1"):
        tiled_logits(PerPixel(), torch.randn(1, 3, 4, 4), 0)
    with pytest.raises(ValueError, match="overlap"):
        tiled_logits(PerPixel(), torch.randn(1, 3, 4, 4), 2, overlap=1.0)
