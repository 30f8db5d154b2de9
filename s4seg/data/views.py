"""Weak and strong views of an unlabelled batch, made on the batch's device.

The weak-to-strong recipe of FixMatch (Sohn et al., NeurIPS 2020) as UniMatch (Yang
et al., CVPR 2023) uses it for segmentation. The strong view is made FROM the weak
view with photometric changes and CutMix only, so teacher and student inputs share
their geometry by construction, once the same CutMix is applied to the teacher's
logits (:meth:`Views.mix`)::

    views = WeakStrongViews()(images, generator)
    (teacher_logits,) = views.mix(teacher(views.weak))
    loss = criterion(student(views.strong), teacher_logits)

All randomness comes from ``generator`` (a CPU ``torch.Generator``): per-image
parameters are drawn on the CPU and sent to the device in one small copy, with no
host sync. Photometric ops work on intensities in [0, 1]: images normalized with a
``mean`` / ``std`` (ImageNet's, with a pretrained backbone) are un-normalized first and
re-normalized after; by default (mean 0, std 1) the images are taken to be in [0, 1],
as the built-in datasets give them. The first call checks that the un-normalized
images do lie in [0, 1], so that a mismatch cannot go unnoticed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "StrongView",
    "Views",
    "WeakStrongViews",
    "WeakView",
    "apply_cutmix",
    "cutmix_boxes",
    "cutmix_partner",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")


def _prob(name: str, p: float) -> float:
    if not 0.0 <= p <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    return float(p)


def _range(name: str, r: Sequence[float], hi: float) -> tuple[float, float]:
    a, b = (float(v) for v in r)
    if not 0.0 < a <= b <= hi:  # also rejects NaN
        raise ValueError(f"{name} must be (low, high) with 0 < low <= high <= {hi}, got {r}")
    return a, b


def _check_images(images: Tensor, rgb: bool) -> None:
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(
            f"images must be a float (B, C, H, W) tensor, got shape {tuple(images.shape)} "
            f"and dtype {images.dtype}"
        )
    if rgb and images.shape[1] != 3:
        raise ValueError(f"photometric ops need 3 (RGB) channels, got {images.shape[1]}")


def _uniform(generator: torch.Generator, rows: int, batch: int) -> Tensor:
    """(rows, batch) float64 uniforms in [0, 1) from a CPU generator, on the CPU."""
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ValueError(
            f"generator must be a CPU torch.Generator (parameters are drawn on the CPU), got "
            f"{generator!r}; use torch.Generator().manual_seed(seed)"
        )
    return torch.rand(rows, batch, generator=generator, dtype=torch.float64)


def _to_device(t: Tensor, device: torch.device | str | None, dtype: torch.dtype) -> Tensor:
    """One small host-to-device copy of per-image parameters, without a host sync.

    A copy from pageable memory waits for the GPU's queue; from pinned memory with
    ``non_blocking`` it does not (the caching host allocator keeps the block alive).
    """
    t = t.to(dtype)
    if torch.device(device or "cpu").type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


@dataclass(frozen=True)
class WeakView:
    """Per-image horizontal flip and random resized crop back to the input size.

    The crop keeps the image's aspect ratio and covers a fraction of its area drawn
    uniformly from ``scale``; it is resampled bilinearly with ``F.grid_sample``.

    Args:
        flip_p: probability of a horizontal flip, per image.
        scale: range of the crop's area as a fraction of the image, within (0, 1].
    """

    flip_p: float = 0.5
    scale: tuple[float, float] = (0.5, 1.0)

    def __post_init__(self) -> None:
        _prob("flip_p", self.flip_p)
        _range("scale", self.scale, 1.0)

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """Shape: images: (B, C, H, W) float; returns the same shape."""
        return self.transform(images, generator)[0]

    def transform(
        self, images: Tensor, generator: torch.Generator, masks: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """The view of ``images`` and, with the same geometry, of ``masks`` (nearest).

        The random draws are the same with or without masks.

        Shape:
            images: (B, C, H, W) float. masks: (B, H, W) int.
        """
        _check_images(images, rgb=False)
        b = images.shape[0]
        u = _uniform(generator, 4, b)
        flip = torch.where(u[0] < self.flip_p, -1.0, 1.0)
        lo, hi = self.scale
        side = (lo + (hi - lo) * u[1]).sqrt()  # crop side / image side
        cx, cy = (2 * u[2:] - 1) * (1 - side)  # crop centre, kept inside the image
        zero = torch.zeros_like(side)
        # theta maps output coords in [-1, 1] to input coords, mirrored when flip = -1.
        theta = torch.stack([flip * side, zero, cx, zero, side, cy], 1).view(b, 2, 3)
        theta = _to_device(theta, images.device, images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        out = F.grid_sample(images, grid, "bilinear", "border", align_corners=False)
        if masks is None:
            return out, None
        if masks.shape != images.shape[:1] + images.shape[2:]:
            raise ValueError(
                f"masks must be (B, H, W) = {tuple(images.shape[:1] + images.shape[2:])}, got "
                f"{tuple(masks.shape)}"
            )
        labels = masks[:, None].to(images.dtype)
        warped = F.grid_sample(labels, grid, "nearest", "border", align_corners=False)
        return out, warped[:, 0].round().to(masks.dtype)


def _gray(x: Tensor) -> Tensor:
    return (x * x.new_tensor(_LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)


@dataclass(frozen=True)
class StrongView:
    """Per-image colour jitter, grayscale and Gaussian blur (photometric only).

    With probability ``jitter_p`` an image gets brightness, contrast and saturation
    factors drawn from ``[1 - s, 1 + s]``, applied in that fixed order; hue is left
    alone. The blur kernel size is fixed by the largest sigma, the sigma is drawn
    per image, so the whole batch is one separable grouped convolution.

    Args:
        jitter_p: probability of the colour jitter, per image.
        brightness: brightness strength s, in [0, 1].
        contrast: contrast strength s, in [0, 1].
        saturation: saturation strength s, in [0, 1].
        grayscale_p: probability of converting to grayscale, per image.
        blur_p: probability of a Gaussian blur, per image.
        blur_sigma: range of the blur's standard deviation in pixels, low > 0.
        mean: per-channel mean the images were normalized with (0: not normalized).
        std: per-channel std the images were normalized with (1: not normalized).

    Raises:
        ValueError: on the first call, when the un-normalized images reach well outside
            [0, 1]: the images were normalized with other values than ``mean`` and
            ``std`` (pass ``mean=IMAGENET_MEAN, std=IMAGENET_STD`` for images
            normalized for a pretrained backbone).
    """

    jitter_p: float = 0.8
    brightness: float = 0.5
    contrast: float = 0.5
    saturation: float = 0.5
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    _checked: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("jitter_p", "grayscale_p", "blur_p", "brightness", "contrast", "saturation"):
            _prob(name, getattr(self, name))
        _range("blur_sigma", self.blur_sigma, math.inf)
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values, std > 0; got {self.mean}, {self.std}")

    def _check_range(self, intensities: Tensor) -> None:
        """Once: the un-normalized images must be intensities in [0, 1] (one host sync)."""
        if self._checked:
            return
        lo, hi = (float(v) for v in torch.aminmax(intensities.detach()))
        # A margin for interpolation overshoot and noise; normalized images reach about
        # -2 to 2.6, far outside.
        if lo < -0.25 or hi > 1.25:
            raise ValueError(
                f"StrongView(mean={self.mean}, std={self.std}) sees intensities in "
                f"[{lo:.2f}, {hi:.2f}], not [0, 1]: the images were normalized with other "
                f"values. Pass the mean and std of the loader's Normalize (ImageNet's: "
                f"mean=IMAGENET_MEAN, std=IMAGENET_STD), or leave both unset for images in "
                f"[0, 1]"
            )
        object.__setattr__(self, "_checked", True)

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """Shape: images: (B, 3, H, W) float, normalized; returns the same shape."""
        _check_images(images, rgb=True)
        b, c, h, w = images.shape
        u = _uniform(generator, 7, b)
        jitter = u[0] < self.jitter_p
        # Factor 1 (no jitter) leaves x exactly unchanged: 1 * x + 0 * base.
        factors = [
            torch.where(jitter, 1 - s + 2 * s * ui, 1.0)
            for s, ui in zip((self.brightness, self.contrast, self.saturation), u[1:4], strict=True)
        ]
        gray = (u[4] < self.grayscale_p).double()
        r = math.ceil(3 * self.blur_sigma[1])
        offsets = torch.arange(-r, r + 1, dtype=torch.float64)
        sigma = self.blur_sigma[0] + (self.blur_sigma[1] - self.blur_sigma[0]) * u[6]
        kernel = torch.exp(-(offsets**2) / (2 * sigma[:, None] ** 2))
        kernel = torch.where(  # the identity kernel for images without blur
            (u[5] < self.blur_p)[:, None], kernel / kernel.sum(1, keepdim=True), offsets == 0
        )
        params = torch.cat([torch.stack([*factors, gray], 1), kernel], 1)
        params = _to_device(params, images.device, images.dtype)
        bright, contrast, sat, gray = params[:, :4, None, None, None].unbind(1)
        mean = images.new_tensor(self.mean).view(1, 3, 1, 1)
        std = images.new_tensor(self.std).view(1, 3, 1, 1)
        x = images * std + mean
        self._check_range(x)
        x = x.clamp(0, 1)
        x = (bright * x).clamp(0, 1)
        x = (contrast * x + (1 - contrast) * _gray(x).mean((2, 3), keepdim=True)).clamp(0, 1)
        x = (sat * x + (1 - sat) * _gray(x)).clamp(0, 1)
        x = torch.where(gray > 0, _gray(x).expand_as(x), x)
        # Blur each channel of each image with its own kernel: channels as conv groups.
        k = params[:, 4:].repeat_interleave(c, 0)  # (B * C, 2r + 1)
        # Replicate padding works for images smaller than the kernel (reflect does not).
        x = F.pad(x.reshape(1, b * c, h, w), (r, r, r, r), mode="replicate")
        x = F.conv2d(x, k.view(b * c, 1, 1, -1), groups=b * c)
        x = F.conv2d(x, k.view(b * c, 1, -1, 1), groups=b * c).view(b, c, h, w)
        return (x.clamp(0, 1) - mean) / std


def cutmix_boxes(
    batch: int,
    height: int,
    width: int,
    generator: torch.Generator,
    p: float = 0.5,
    area: tuple[float, float] = (0.02, 0.4),
    device: torch.device | str | None = None,
) -> Tensor:
    """One random box per image, with probability ``p``: the pixels to take from a partner.

    A box has the image's aspect ratio and covers a fraction of its area drawn
    uniformly from ``area`` (up to rounding the sides to whole pixels).

    Shape:
        Returns (B, H, W) bool, True inside the box.
    """
    _prob("p", p)
    _range("area", area, 1.0)
    if min(batch, height, width) < 1:
        raise ValueError(f"batch, height and width must be >= 1, got {(batch, height, width)}")
    u = _uniform(generator, 4, batch)
    side = (area[0] + (area[1] - area[0]) * u[1]).sqrt()
    bh = (side * height).round().clamp(1, height)
    bw = (side * width).round().clamp(1, width)
    top = (u[2] * (height - bh + 1)).floor()
    left = (u[3] * (width - bw + 1)).floor()
    on = (u[0] < p).double()
    box = _to_device(torch.stack([top, left, bh, bw, on]), device, torch.long)
    top, left, bh, bw, on = box[:, :, None, None]
    rows = torch.arange(height, device=device).view(1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, width)
    inside = (rows >= top) & (rows < top + bh) & (cols >= left) & (cols < left + bw)
    return inside & (on > 0)


def cutmix_partner(batch: int, device: torch.device | str | None = None) -> Tensor:
    """Partner of each image: the next one in the batch, ``(i + 1) % B`` (a roll by one).

    Unlike a random permutation, a roll never pairs an image with itself when B > 1
    (UniMatch mixes with a second unlabelled batch; a roll needs no second batch).
    With B = 1 the partner is the image itself and CutMix changes nothing.

    Shape:
        Returns (B,) int64.
    """
    return torch.arange(1, batch + 1, device=device) % max(batch, 1)


def apply_cutmix(mask: Tensor, partner: Tensor, *tensors: Tensor) -> tuple[Tensor, ...]:
    """``where(mask, t[partner], t)`` for each tensor, broadcast over its middle dims.

    Apply it to the strong images and to everything derived from the unmixed weak
    view (teacher logits, pseudo-labels, confidences) with the same mask and partner.

    Shape:
        mask: (B, H, W) bool. partner: (B,) int. tensors: each (B, ..., H, W).
    """
    if mask.dim() != 3 or mask.dtype != torch.bool:
        raise ValueError(f"mask must be (B, H, W) bool, got {tuple(mask.shape)} {mask.dtype}")
    b, h, w = mask.shape
    if tuple(partner.shape) != (b,):
        raise ValueError(f"partner must have shape ({b},), got {tuple(partner.shape)}")
    out = []
    for i, t in enumerate(tensors):
        if t.dim() < 3 or t.shape[0] != b or tuple(t.shape[-2:]) != (h, w):
            raise ValueError(
                f"tensor {i} must be (B, ..., H, W) with B, H, W = {b}, {h}, {w}, got "
                f"{tuple(t.shape)}; resize logits to the image size before mixing"
            )
        m = mask.view(b, *([1] * (t.dim() - 3)), h, w)
        out.append(torch.where(m, t[partner], t))
    return tuple(out)


@dataclass(frozen=True, eq=False)
class Views:
    """The views of one unlabelled batch and the CutMix that made ``strong``.

    Attributes:
        weak: the teacher's input.
        strong: the student's input: photometric changes of ``weak``, then CutMix.
        mix_mask: pixels taken from the partner image.
        partner: index of each image's partner.

    Shape:
        weak, strong: (B, 3, H, W). mix_mask: (B, H, W) bool. partner: (B,).
        true_mask: (B, H, W), the true labels in the weak view's geometry (None when
        the batch had none); ``mix(true_mask)`` gives them for the strong view.
    """

    weak: Tensor
    strong: Tensor
    mix_mask: Tensor
    partner: Tensor
    true_mask: Tensor | None = None

    def mix(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        """The CutMix of ``strong`` applied to tensors made from ``weak`` (teacher logits)."""
        return apply_cutmix(self.mix_mask, self.partner, *tensors)


@dataclass(frozen=True)
class WeakStrongViews:
    """Weak view, strong view made from it, and CutMix of the strong view.

    Args:
        weak: the geometric view.
        strong: the photometric view applied to the weak one.
        cutmix_p: probability that an image gets a CutMix box.
        cutmix_area: range of the box area as a fraction of the image.
    """

    weak: WeakView = field(default_factory=WeakView)
    strong: StrongView = field(default_factory=StrongView)
    cutmix_p: float = 0.5
    cutmix_area: tuple[float, float] = (0.02, 0.4)

    def __post_init__(self) -> None:
        _prob("cutmix_p", self.cutmix_p)

    def __call__(
        self, images: Tensor, generator: torch.Generator, true_masks: Tensor | None = None
    ) -> Views:
        """Shape: images: (B, 3, H, W) float, normalized. true_masks: (B, H, W) int.

        ``true_masks`` (only to measure pseudo-labels) follow the weak view's geometry;
        the random draws are the same with or without them.
        """
        weak, true_weak = self.weak.transform(images, generator, true_masks)
        strong = self.strong(weak, generator)
        b, _, h, w = images.shape
        mask = cutmix_boxes(b, h, w, generator, self.cutmix_p, self.cutmix_area, images.device)
        partner = cutmix_partner(b, images.device)
        (strong,) = apply_cutmix(mask, partner, strong)
        return Views(weak, strong, mask, partner, true_weak)
