"""PixelDiscriminator against a plain copy of AdvSemiSeg's FCDiscriminator, shapes, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from s4seg.models.pixel_discriminator import PixelDiscriminator


class PlainFCDiscriminator(nn.Module):
    """AdvSemiSeg's FCDiscriminator written out by hand (hfslyc/AdvSemiSeg,
    model/discriminator.py layout): five k4 s2 p1 convs, LeakyReLU(0.2) after four,
    coarse map out; the training loop upsampled it bilinearly."""

    def __init__(self, num_classes: int, ndf: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_classes, ndf, 4, 2, 1)
        self.conv2 = nn.Conv2d(ndf, ndf * 2, 4, 2, 1)
        self.conv3 = nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1)
        self.conv4 = nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1)
        self.classifier = nn.Conv2d(ndf * 8, 1, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = F.leaky_relu(conv(x), 0.2)
        return self.classifier(x)


@pytest.mark.parametrize("size", [(32, 32), (33, 47), (64, 41)])
def test_matches_the_plain_network_with_its_weights(size) -> None:
    torch.manual_seed(0)
    plain = PlainFCDiscriminator(4, ndf=4).double()
    ours = PixelDiscriminator(4, ndf=4).double()
    assert ours.state_dict().keys() == plain.state_dict().keys()  # weights load unchanged
    ours.load_state_dict(plain.state_dict(), strict=True)
    x = torch.randn(2, 4, *size, dtype=torch.float64).softmax(1)
    with torch.no_grad():
        expected = F.interpolate(plain(x), size=size, mode="bilinear", align_corners=False)
        got = ours(x)
    assert got.shape == (2, *size)
    torch.testing.assert_close(got, expected.squeeze(1))


@pytest.mark.parametrize("size", [(32, 32), (33, 47), (47, 33), (65, 32)])
def test_output_has_the_input_size(size) -> None:
    d = PixelDiscriminator(3, ndf=2)
    assert d(torch.rand(1, 3, *size)).shape == (1, *size)
    assert d.num_classes == 3


def test_gradient_reaches_the_input_and_every_weight() -> None:
    torch.manual_seed(0)
    d = PixelDiscriminator(3, ndf=2)
    x = torch.rand(2, 3, 33, 35, requires_grad=True)
    d(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in d.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert d.classifier.weight.grad.abs().sum() > 0


def test_wrong_channels_say_how_to_fix() -> None:
    d = PixelDiscriminator(5, ndf=2)
    with pytest.raises(ValueError, match=r"expects \(B, 5, H, W\).*got shape \(1, 4, 32, 32\)"):
        d(torch.rand(1, 4, 32, 32))
    with pytest.raises(ValueError, match="drop the image"):
        d(torch.rand(1, 8, 32, 32))  # S4GAN-style input: class maps + RGB
    with pytest.raises(ValueError, match=r"got shape \(5, 32, 32\)"):
        d(torch.rand(5, 32, 32))


def test_too_small_inputs_are_refused() -> None:
    d = PixelDiscriminator(2, ndf=2)
    with pytest.raises(ValueError, match=r"at least 32x32.*got 31x40"):
        d(torch.rand(1, 2, 31, 40))
    with pytest.raises(ValueError, match=r"got 40x16"):
        d(torch.rand(1, 2, 40, 16))
    assert d(torch.rand(1, 2, 32, 32)).shape == (1, 32, 32)  # the real minimum works


def test_bad_construction() -> None:
    with pytest.raises(ValueError, match="num_classes >= 1"):
        PixelDiscriminator(0)
    with pytest.raises(ValueError, match="ndf=0"):
        PixelDiscriminator(3, ndf=0)
