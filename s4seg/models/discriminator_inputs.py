"""What a discriminator is shown: one-hot "real" maps, softened or sharpened maps, images.

A one-hot map has zero entropy and a prediction never does, so these helpers also make
the "honest" inputs of :class:`s4seg.methods.S4GAN` (softened real maps, sharpened
fake ones) that take that cue away.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

__all__ = ["discriminator_input", "one_hot_labels", "scale_images", "sharpen", "soften_one_hot"]


def one_hot_labels(
    labels: Tensor, num_classes: int, ignore_index: int = 255, *, validate: bool = True
) -> Tensor:
    """One-hot class maps for the discriminator's "real" input.

    Ignored pixels become all-zero vectors, as in the S4GAN code (which compares the
    label with every class index): the discriminator then sees "no class" there rather
    than a guess, and a generator softmax, which always sums to 1, can never match it
    exactly. Ignore regions are thin object borders in VOC, so the cue is small.

    Args:
        labels: integer class indices in [0, num_classes), or ``ignore_index``.
        num_classes: number of classes.
        ignore_index: label of pixels without ground truth.
        validate: raise on out-of-range values. The check costs a host sync; a training
            loop whose dataset already validated its masks can pass False, and any
            out-of-range value then becomes an all-zero vector like an ignore pixel.

    Shape:
        labels: (B, H, W).
        output: (B, num_classes, H, W) float32, on the labels' device.

    Raises:
        TypeError: labels are not integers.
        ValueError: wrong shape, or a value outside [0, num_classes) that is not the
            ignore index (the message names it).
    """
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(
            f"labels must be an integer tensor of class indices, got dtype {labels.dtype}; "
            "convert with labels.long()"
        )
    if labels.ndim != 3:
        raise ValueError(
            f"labels must have shape (B, H, W), got {tuple(labels.shape)}; add a batch "
            "dimension with labels.unsqueeze(0)"
        )
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    in_range = (labels >= 0) & (labels < num_classes)
    valid = in_range & (labels != ignore_index)
    if validate:
        bad = ~in_range & (labels != ignore_index)
        # A host sync, once per labelled batch: a wrong label map must not train silently.
        if bool(bad.any()):
            value = int(labels[bad][0])
            raise ValueError(
                f"label value {value} is outside [0, {num_classes}) and is not ignore_index="
                f"{ignore_index}; check num_classes or remap the mask (e.g. to {ignore_index})"
            )
    index = torch.where(valid, labels, torch.zeros_like(labels)).long().unsqueeze(1)
    out = torch.zeros(
        (labels.shape[0], num_classes, *labels.shape[1:]), dtype=torch.float32, device=labels.device
    )
    return out.scatter_(1, index, valid.unsqueeze(1).to(out.dtype))


def scale_images(images: Tensor) -> Tensor:
    """Rescale a batch to [0, 1] with one min and one max over the whole batch.

    As in the S4GAN code, the discriminator sees images on the scale of the class maps
    (0 to 1) whatever normalisation the generator's input used. One min/max per batch,
    not per image or channel, keeps the relative brightness of images and the colour
    balance within each. A constant batch (max == min) becomes all zeros instead of
    dividing by zero.

    Args:
        images: images on any scale; integer tensors are converted to float32.

    Shape:
        images: (B, C, H, W).
        output: same shape, values in [0, 1].
    """
    if images.ndim != 4:
        raise ValueError(
            f"images must have shape (B, C, H, W), got {tuple(images.shape)}; add a batch "
            "dimension with images.unsqueeze(0)"
        )
    if not images.dtype.is_floating_point:
        images = images.float()
    low, high = images.amin(), images.amax()
    # clamp_min keeps the division finite for a constant batch (numerator 0 -> output 0);
    # for any non-constant batch (x - low) <= (high - low), so values stay in [0, 1].
    return (images - low) / (high - low).clamp_min(torch.finfo(images.dtype).tiny)


def discriminator_input(class_maps: Tensor, images: Tensor, image_channels: int = 3) -> Tensor:
    """Stack class maps on the rescaled images: the input of :class:`FMDiscriminator`.

    Args:
        class_maps: the generator's softmax (fake) or :func:`one_hot_labels` (real).
        images: the images those maps belong to, on any scale (see :func:`scale_images`).
        image_channels: channels ``images`` must have.

    Shape:
        class_maps: (B, C, H, W).
        images: (B, image_channels, H, W).
        output: (B, C + image_channels, H, W), in the class maps' dtype.
    """
    if class_maps.ndim != 4 or images.ndim != 4:
        raise ValueError(
            f"class_maps and images must both be (B, C, H, W), got shapes "
            f"{tuple(class_maps.shape)} and {tuple(images.shape)}"
        )
    if images.shape[1] != image_channels:
        raise ValueError(
            f"images must have {image_channels} channels, got {images.shape[1]} (shape "
            f"{tuple(images.shape)}); pass images channels first, or image_channels="
            f"{images.shape[1]}"
        )
    if class_maps.shape[0] != images.shape[0] or class_maps.shape[-2:] != images.shape[-2:]:
        raise ValueError(
            f"class_maps {tuple(class_maps.shape)} and images {tuple(images.shape)} differ in "
            "batch size or spatial size; upsample the logits to the image size before softmax"
        )
    return torch.cat([class_maps, scale_images(images).to(class_maps.dtype)], dim=1)


def _fraction(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:  # also rejects NaN
        raise ValueError(
            f"{name} must be in [0, 1] (the share of probability mass moved off the labelled "
            f"class), got {value}; 0 turns it off, 0.1 is a usual start"
        )
    return float(value)


def _check_class_maps(name: str, maps: Tensor) -> None:
    if not maps.dtype.is_floating_point:
        raise TypeError(
            f"{name} must be a float class map, got dtype {maps.dtype}; build one-hot maps "
            "with one_hot_labels(labels, num_classes)"
        )
    if maps.ndim < 2:
        raise ValueError(
            f"{name} must have the class dimension at dim 1, (B, C, H, W), got shape "
            f"{tuple(maps.shape)}"
        )


def soften_one_hot(
    one_hot: Tensor,
    *,
    smoothing: float = 0.0,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Make the discriminator's "real" class maps less sharp than exact one-hot vectors.

    A discriminator shown exact one-hot ground truth against softmax predictions can
    tell them apart by their entropy alone, and its score then says little about
    whether a prediction is right (docs/concepts/diagnosing.md, ``d_judges_softness``).
    Softening the real maps takes that cue away.

    Per valid pixel (a pixel whose vector sums to more than 0), with ``C`` classes:

    1. label smoothing: ``y <- (1 - smoothing) * y + smoothing / C``;
    2. noise: ``y <- (1 - noise) * y + noise * u / sum(u)`` with ``u ~ U(0, 1)`` drawn
       per pixel and class, i.e. a share ``noise`` of the mass moves to a random
       distribution, so real maps are not all softened the same way.

    Both steps keep every valid pixel a distribution (entries >= 0, sum 1); the
    labelled class keeps at least ``(1 - noise) * (1 - smoothing + smoothing / C)``
    and stays the argmax whenever ``(1 - noise) * (1 - smoothing) > noise`` (e.g.
    smoothing 0.1 with noise 0.05). Ignore pixels (all-zero
    vectors from :func:`one_hot_labels`) stay all zero. With both at 0 the input is
    returned as is.

    Args:
        one_hot: real class maps, e.g. :func:`one_hot_labels` (any per-pixel
            distribution works the same way).
        smoothing: share of the mass spread uniformly over the classes, in [0, 1].
        noise: share of the mass moved to a random distribution, in [0, 1].
        generator: random generator for the noise. A generator on another device than
            ``one_hot`` (a CPU generator for CUDA maps) draws on its own device and the
            draw is copied over; without one, the global RNG of ``one_hot``'s device draws.

    Shape:
        one_hot: (B, C, H, W).
        output: same shape and dtype.

    Raises:
        TypeError: ``one_hot`` is not a float tensor, or a share is not a number.
        ValueError: a share outside [0, 1], or ``one_hot`` without a class dimension.
    """
    smoothing = _fraction("smoothing", smoothing)
    noise = _fraction("noise", noise)
    _check_class_maps("one_hot", one_hot)
    if smoothing == 0.0 and noise == 0.0:
        return one_hot
    valid = (one_hot.sum(dim=1, keepdim=True) > 0).to(one_hot.dtype)
    out = (1.0 - smoothing) * one_hot + (smoothing / one_hot.shape[1]) * valid
    if noise > 0.0:
        if generator is None:
            u = torch.rand(one_hot.shape, dtype=one_hot.dtype, device=one_hot.device)
        else:
            # A generator draws only on its own device; the copy keeps a CPU generator
            # usable (and reproducible) for maps on an accelerator.
            u = torch.rand(
                one_hot.shape, generator=generator, dtype=one_hot.dtype, device=generator.device
            ).to(one_hot.device)
        # clamp_min: a draw of all zeros (probability ~0) must not divide by zero.
        u = u / u.sum(dim=1, keepdim=True).clamp_min(torch.finfo(u.dtype).tiny)
        out = (1.0 - noise) * out + noise * u * valid
    return out


def sharpen(probs: Tensor, temperature: float) -> Tensor:
    """Temperature sharpening of class probabilities: ``p ** (1 / T)`` renormalised.

    Used on the discriminator's "fake" input (the generator's softmax) so that
    predictions are closer in entropy to the real one-hot maps; the argmax of every
    pixel is kept. ``temperature`` in (0, 1) sharpens, 1 is the identity (the input is
    returned as is) and above 1 flattens. Computed as ``softmax(log p / T)``, which is
    stable where ``p ** (1 / T)`` would underflow, and differentiable: the generator's
    feature-matching gradient flows through it. Probabilities below the dtype's
    smallest normal number are treated as that number (their gradient is 0); float16
    and bfloat16 inputs are computed in float32 and cast back.

    Args:
        probs: class probabilities (each pixel sums to 1), e.g. ``logits.softmax(1)``.
        temperature: T > 0.

    Shape:
        probs: (B, C, H, W), classes at dim 1.
        output: same shape and dtype.

    Raises:
        TypeError: ``probs`` is not a float tensor, or ``temperature`` is not a number.
        ValueError: ``temperature`` is not a finite number > 0.
    """
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"temperature must be a float > 0, got {temperature!r}")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(
            f"temperature must be a finite number > 0, got {temperature}; values in (0, 1) "
            "sharpen (0.5 squares the probabilities before renormalising), 1 leaves them as is"
        )
    _check_class_maps("probs", probs)
    if temperature == 1:
        return probs
    x = probs if probs.dtype in (torch.float32, torch.float64) else probs.float()
    log_p = x.clamp_min(torch.finfo(x.dtype).tiny).log()
    return torch.softmax(log_p / float(temperature), dim=1).to(probs.dtype)
