"""FMDiscriminator against the original S4GAN code, and what the discriminator is shown."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from s4seg.models import FMDiscriminator, discriminator_input, one_hot_labels, scale_images


class OriginalS4GANDiscriminator(nn.Module):
    """A plain copy of ``s4GAN_discriminator`` from the S4GAN code (sud0301/semisup-semseg,
    model/discriminator.py): fixed average pool, sigmoid output, 4-d conv4 maps."""

    def __init__(self, num_classes: int, pool: tuple[int, int], ndf: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_classes + 3, ndf, kernel_size=4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(ndf, ndf * 2, kernel_size=4, stride=2, padding=1)
        self.conv3 = nn.Conv2d(ndf * 2, ndf * 4, kernel_size=4, stride=2, padding=1)
        self.conv4 = nn.Conv2d(ndf * 4, ndf * 8, kernel_size=4, stride=2, padding=1)
        self.avgpool = nn.AvgPool2d(pool)
        self.fc = nn.Linear(ndf * 8, 1)
        self.leaky_relu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        self.drop = nn.Dropout2d(0.5)
        self.sigmoid = nn.Sigmoid()

    def conv4_maps(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.leaky_relu(self.conv1(x)))
        x = self.drop(self.leaky_relu(self.conv2(x)))
        x = self.drop(self.leaky_relu(self.conv3(x)))
        return self.leaky_relu(self.conv4(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.avgpool(self.conv4_maps(x))
        out = maps.view(maps.size(0), -1)
        return self.sigmoid(self.fc(out)), maps


@pytest.mark.parametrize(
    ("size", "pool"), [((64, 64), (4, 4)), ((65, 97), (4, 6)), ((320, 320), (20, 20))]
)
def test_matches_the_original_with_its_weights_where_its_pool_fits(size, pool) -> None:
    torch.manual_seed(0)
    original = OriginalS4GANDiscriminator(5, pool, ndf=8).eval()
    ours = FMDiscriminator(5, ndf=8).eval()
    # Same parameter names: the original's weights load unchanged, and ours load back.
    assert ours.state_dict().keys() == original.state_dict().keys()
    ours.load_state_dict(original.state_dict(), strict=True)
    x = torch.randn(2, 8, *size, dtype=torch.float64)
    original, ours = original.double(), ours.double()
    with torch.no_grad():
        prob, maps = original(x)
        logit, features = ours(x)
    torch.testing.assert_close(torch.sigmoid(logit), prob.squeeze(1))
    torch.testing.assert_close(features, maps.view(2, -1))


def test_pools_the_whole_map_where_the_original_read_a_corner() -> None:
    # The original's AvgPool2d((20, 20)) was sized for 321-pixel crops; on a 480 crop
    # (30x30 conv4 map) it averages the top-left 20x20 only. Ours averages all of it.
    torch.manual_seed(0)
    original = OriginalS4GANDiscriminator(2, (20, 20), ndf=2).eval()
    ours = FMDiscriminator(2, ndf=2).eval()
    ours.load_state_dict(original.state_dict())
    x = torch.randn(1, 5, 480, 480)
    with torch.no_grad():
        maps = original.conv4_maps(x)
        _, features = ours(x)
        _, corner = original(x)
    assert maps.shape[-2:] == (30, 30) and corner.shape[-2:] == (1, 1)
    torch.testing.assert_close(features, maps.mean(dim=(2, 3)))
    torch.testing.assert_close(corner.flatten(1), maps[..., :20, :20].mean(dim=(2, 3)))
    assert not torch.allclose(features, corner.flatten(1))


def test_hand_computed_score_from_biases_alone() -> None:
    # Zero conv weights: conv4's output is its bias everywhere, whatever the input.
    # LeakyReLU(0.2) of (-1, 2) is (-0.2, 2); pooled features are the same; the logit
    # with fc weights (1, 1) and bias 0.5 is -0.2 + 2 + 0.5 = 2.3.
    disc = FMDiscriminator(2, image_channels=3, ndf=1).eval()
    with torch.no_grad():
        for conv in (disc.conv1, disc.conv2, disc.conv3, disc.conv4):
            conv.weight.zero_()
        disc.conv4.bias.copy_(torch.tensor([-1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]))
        disc.fc.weight.fill_(0.0)
        disc.fc.weight[0, :2] = 1.0
        disc.fc.bias.fill_(0.5)
        logit, features = disc(torch.randn(3, 5, 16, 16))
    torch.testing.assert_close(features[:, :2], torch.tensor([[-0.2, 2.0]]).expand(3, 2))
    torch.testing.assert_close(logit, torch.full((3,), 2.3))


@settings(max_examples=20, deadline=None)
@given(
    b=st.integers(1, 3),
    h=st.integers(16, 80),
    w=st.integers(16, 80),
    num_classes=st.integers(1, 4),
)
def test_any_crop_of_at_least_16_gives_one_logit_and_feature_vector_per_image(
    b: int, h: int, w: int, num_classes: int
) -> None:
    disc = FMDiscriminator(num_classes, ndf=2)
    logit, features = disc(torch.randn(b, num_classes + 3, h, w))
    assert logit.shape == (b,) and features.shape == (b, 16)
    assert torch.isfinite(logit).all()


@pytest.mark.parametrize("size", [(15, 64), (64, 8)])
def test_too_small_crops_are_refused(size) -> None:
    with pytest.raises(ValueError, match="at least 16x16"):
        FMDiscriminator(2, ndf=2)(torch.randn(1, 5, *size))


def test_wrong_channel_count_says_classes_plus_image_channels() -> None:
    with pytest.raises(ValueError, match=r"\(B, 21\+3=24, H, W\).*got shape \(1, 21, 32, 32\)"):
        FMDiscriminator(21, ndf=2)(torch.randn(1, 21, 32, 32))


def test_dropout_is_active_in_training_only() -> None:
    torch.manual_seed(0)
    disc = FMDiscriminator(2, ndf=4)
    x = torch.randn(2, 5, 32, 32)
    assert not torch.equal(disc(x)[1], disc(x)[1])
    disc.eval()
    torch.testing.assert_close(disc(x)[1], disc(x)[1], rtol=0, atol=0)


# --- one_hot_labels ---------------------------------------------------------------


def test_one_hot_of_a_2x2_map_by_hand() -> None:
    labels = torch.tensor([[[0, 2], [255, 1]]])
    expected = torch.tensor(
        [[[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 0.0]]]]
    )
    out = one_hot_labels(labels, 3)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def _original_one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    # The S4GAN code's loop: channel i is (label == i), so ignore pixels match no class.
    return torch.stack([(labels == i) for i in range(num_classes)], dim=1).float()


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(1, 3),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    num_classes=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    ignore_index=st.sampled_from([255, -1]),
)
def test_one_hot_matches_the_original_and_sums_to_one_off_ignore(
    b: int, h: int, w: int, num_classes: int, seed: int, ignore_index: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (b, h, w), generator=gen)
    ignore = torch.rand(b, h, w, generator=gen) < 0.3
    labels[ignore] = ignore_index
    out = one_hot_labels(labels, num_classes, ignore_index=ignore_index)
    torch.testing.assert_close(out, _original_one_hot(labels, num_classes), rtol=0, atol=0)
    sums = out.sum(dim=1)
    assert torch.equal(sums, (~ignore).float())
    assert torch.equal(out.argmax(dim=1)[~ignore], labels[~ignore])


@pytest.mark.parametrize("value", [3, 7, -2, 254])
def test_one_hot_names_an_out_of_range_value(value: int) -> None:
    labels = torch.tensor([[[0, 1], [value, 255]]])
    with pytest.raises(ValueError, match=rf"label value {value} is outside \[0, 3\)"):
        one_hot_labels(labels, 3)


def test_one_hot_without_validation_zeroes_out_of_range_values() -> None:
    labels = torch.tensor([[[0, 7], [-3, 255]]])
    out = one_hot_labels(labels, 2, validate=False)
    expected = torch.zeros(1, 2, 2, 2)
    expected[0, 0, 0, 0] = 1.0
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_one_hot_accepts_uint8_and_refuses_floats_and_wrong_shapes() -> None:
    out = one_hot_labels(torch.tensor([[[1, 255]]], dtype=torch.uint8), 2)
    torch.testing.assert_close(out, torch.tensor([[[[0.0, 0.0]], [[1.0, 0.0]]]]), rtol=0, atol=0)
    with pytest.raises(TypeError, match=r"labels.long\(\)"):
        one_hot_labels(torch.zeros(1, 2, 2), 2)
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        one_hot_labels(torch.zeros(2, 2, dtype=torch.long), 2)


# --- scale_images / discriminator_input --------------------------------------------


def test_scale_images_uses_one_min_and_max_for_the_whole_batch() -> None:
    # Batch min -1, max 3: image 0 (-1, 1) -> (0, 0.5), image 1 (1, 3) -> (0.5, 1).
    # Per-image scaling would have stretched both to (0, 1).
    images = torch.tensor([-1.0, 1.0, 1.0, 3.0]).reshape(2, 1, 1, 2)
    expected = torch.tensor([0.0, 0.5, 0.5, 1.0]).reshape(2, 1, 1, 2)
    torch.testing.assert_close(scale_images(images), expected, rtol=0, atol=0)


def test_scale_images_maps_a_constant_batch_to_zeros() -> None:
    out = scale_images(torch.full((2, 3, 4, 4), 0.7))
    assert torch.equal(out, torch.zeros(2, 3, 4, 4))
    assert torch.equal(
        scale_images(torch.full((1, 3, 2, 2), 9, dtype=torch.uint8)), torch.zeros(1, 3, 2, 2)
    )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    scale=st.floats(1e-3, 1e3),
    shift=st.floats(-1e3, 1e3),
)
def test_scale_images_matches_the_original_and_ignores_affine_changes(
    seed: int, scale: float, shift: float
) -> None:
    x = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    out = scale_images(x)
    # The S4GAN code: (x - min) / (max - min) over the batch tensor.
    torch.testing.assert_close(out, (x - x.min()) / (x.max() - x.min()))
    assert out.min() == 0 and out.max() == 1
    torch.testing.assert_close(scale_images(x * scale + shift), out)


def test_discriminator_input_stacks_maps_on_scaled_images() -> None:
    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(2, 4, 20, 24, generator=gen), dim=1)
    images = torch.randn(2, 3, 20, 24, generator=gen) * 50 + 100
    out = discriminator_input(probs, images)
    assert out.shape == (2, 7, 20, 24)
    torch.testing.assert_close(out[:, :4], probs, rtol=0, atol=0)
    torch.testing.assert_close(out[:, 4:], scale_images(images), rtol=0, atol=0)
    real = discriminator_input(one_hot_labels(torch.randint(0, 4, (2, 20, 24)), 4), images)
    logit, features = FMDiscriminator(4, ndf=2)(real)
    assert logit.shape == (2,) and features.shape == (2, 16)


def test_discriminator_input_refuses_mismatched_tensors() -> None:
    probs = torch.rand(2, 4, 16, 16)
    with pytest.raises(ValueError, match="images must have 3 channels, got 1"):
        discriminator_input(probs, torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match="differ in batch size or spatial size"):
        discriminator_input(probs, torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="differ in batch size"):
        discriminator_input(probs, torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        discriminator_input(probs[0], torch.rand(3, 16, 16))


def test_gradients_reach_the_class_maps_through_the_discriminator() -> None:
    # Feature matching trains the generator through D's input: the softmax channels.
    logits = torch.randn(1, 3, 16, 16, requires_grad=True)
    x = discriminator_input(F.softmax(logits, dim=1), torch.rand(1, 3, 16, 16))
    _, features = FMDiscriminator(3, ndf=2).eval()(x)
    features.sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
