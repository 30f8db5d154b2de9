"""Paired image/mask transforms on tensors, with explicit random generators.

Every transform is called as ``t(image, mask, generator) -> (image, mask)``
where ``mask`` may be ``None`` (unlabelled samples). Randomness comes only from
the ``torch.Generator`` passed in, never from global state, so a sample's
augmentation is a function of its seed: :class:`Augmented` seeds one generator
per ``(seed, epoch, index)``, which makes results independent of the number of
DataLoader workers and lets a resumed run replay the same augmentations.

The scale / crop-with-ignore-padding / flip pipeline follows the training
augmentation of AdvSemiSeg and S4GAN (Mittal et al., TPAMI 2019).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

__all__ = [
    "Augmented",
    "Compose",
    "Normalize",
    "PairedTransform",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomScale",
    "sample_seed",
]

# isinstance targets. Not numbers.Integral/Real: mypy does not see int/float as
# those ABCs and would flag the code after such a check as unreachable.
_INTEGER = (int, np.integer)
_REAL = (int, float, np.integer, np.floating)


class PairedTransform(Protocol):
    """A transform of an image and its (optional) mask driven by ``generator``."""

    def __call__(
        self, image: Tensor, mask: Tensor | None, generator: torch.Generator
    ) -> tuple[Tensor, Tensor | None]: ...


def _check_pair(image: Tensor, mask: Tensor | None, name: str) -> None:
    if not isinstance(image, Tensor) or image.dim() != 3:
        got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"{name}: image must be a (C, H, W) tensor, got {got}")
    if not image.is_floating_point():
        raise TypeError(
            f"{name}: image must be a float tensor, got {image.dtype}; "
            "convert with image.float() / 255 first"
        )
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dim() != 2:
            got = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(f"{name}: mask must be an (H, W) tensor, got {got}")
        if mask.shape != image.shape[1:]:
            raise ValueError(
                f"{name}: image is {tuple(image.shape[1:])} (H, W) but mask is "
                f"{tuple(mask.shape)}; they must match"
            )


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(size, _INTEGER) and not isinstance(size, bool):
        h = w = int(size)
    elif (
        isinstance(size, Sequence)
        and len(size) == 2
        and all(isinstance(s, _INTEGER) and not isinstance(s, bool) for s in size)
    ):
        h, w = int(size[0]), int(size[1])
    else:
        raise TypeError(f"{name} must be an int or a pair of ints (height, width), got {size!r}")
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be positive, got {(h, w)}")
    return h, w


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand((), generator=generator, dtype=torch.float64))


class RandomScale:
    """Resize image and mask by a factor drawn uniformly from ``[min_scale, max_scale]``.

    The image is resized bilinearly (``align_corners=False``), the mask with
    ``nearest-exact`` (labels are never blended, and pixel centres line up with
    the bilinear image; plain ``nearest`` shifts by half a pixel). New sizes are
    ``round(H * s)``, ``round(W * s)``, at least 1.

    Shape:
        image: (C, H, W) float; mask: (H, W) int or None.
    """

    def __init__(self, min_scale: float = 0.5, max_scale: float = 1.5) -> None:
        if not (
            isinstance(min_scale, _REAL)
            and isinstance(max_scale, _REAL)
            and 0 < min_scale <= max_scale
            and math.isfinite(max_scale)
        ):
            raise ValueError(
                f"RandomScale needs 0 < min_scale <= max_scale < inf, got "
                f"min_scale={min_scale!r}, max_scale={max_scale!r}"
            )
        self.min_scale = float(min_scale)
        self.max_scale = float(max_scale)

    def __repr__(self) -> str:
        return f"RandomScale(min_scale={self.min_scale}, max_scale={self.max_scale})"

    def __call__(
        self, image: Tensor, mask: Tensor | None, generator: torch.Generator
    ) -> tuple[Tensor, Tensor | None]:
        _check_pair(image, mask, "RandomScale")
        s = self.min_scale + (self.max_scale - self.min_scale) * _uniform(generator)
        h, w = image.shape[1:]
        size = (max(1, round(h * s)), max(1, round(w * s)))
        if size == (h, w):
            return image, mask
        image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
        if mask is not None:
            # interpolate has no integer kernels; float64 holds any int64 label < 2**53 exactly.
            mask = (
                F.interpolate(mask[None, None].double(), size=size, mode="nearest-exact")[0, 0]
                .round()
                .to(mask.dtype)
            )
        return image, mask


class RandomCrop:
    """Crop a random ``size`` window; pad first when the input is smaller.

    Padding goes to the bottom and right (as in AdvSemiSeg / S4GAN): the image is
    padded with ``fill`` and the mask with ``ignore_index``, so padded pixels add
    nothing to the loss. ``fill=0`` is black before :class:`Normalize` and the
    dataset mean after it; put the crop after ``Normalize`` for mean padding.

    Shape:
        image: (C, H, W) float -> (C, h, w); mask: (H, W) -> (h, w) or None.
    """

    def __init__(
        self, size: int | Sequence[int], *, ignore_index: int = 255, fill: float = 0.0
    ) -> None:
        self.size = _pair(size, "RandomCrop size")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, _INTEGER):
            raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
        self.ignore_index = int(ignore_index)
        self.fill = float(fill)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, ignore_index={self.ignore_index}, fill={self.fill})"

    def __call__(
        self, image: Tensor, mask: Tensor | None, generator: torch.Generator
    ) -> tuple[Tensor, Tensor | None]:
        _check_pair(image, mask, "RandomCrop")
        ch, cw = self.size
        h, w = image.shape[1:]
        pad_h, pad_w = max(ch - h, 0), max(cw - w, 0)
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h), value=self.fill)
            if mask is not None:
                mask = F.pad(mask, (0, pad_w, 0, pad_h), value=self.ignore_index)
            h, w = h + pad_h, w + pad_w
        top = int(torch.randint(0, h - ch + 1, (), generator=generator))
        left = int(torch.randint(0, w - cw + 1, (), generator=generator))
        image = image[:, top : top + ch, left : left + cw]
        if mask is not None:
            mask = mask[top : top + ch, left : left + cw]
        return image, mask


class RandomHorizontalFlip:
    """Mirror image and mask left-right with probability ``p``.

    Shape:
        image: (C, H, W); mask: (H, W) or None.
    """

    def __init__(self, p: float = 0.5) -> None:
        if not isinstance(p, _REAL) or not 0.0 <= p <= 1.0:
            raise ValueError(f"flip probability p must be in [0, 1], got {p!r}")
        self.p = float(p)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"

    def __call__(
        self, image: Tensor, mask: Tensor | None, generator: torch.Generator
    ) -> tuple[Tensor, Tensor | None]:
        _check_pair(image, mask, "RandomHorizontalFlip")
        # Always draw, so that the random stream of later transforms does not
        # depend on p being 0 or 1.
        if _uniform(generator) < self.p:
            image = image.flip(-1)
            mask = mask.flip(-1) if mask is not None else None
        return image, mask


class Normalize:
    """``(image - mean) / std`` per channel; the mask passes through.

    Shape:
        image: (C, H, W) with C == len(mean); mask: (H, W) or None.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean_t.numel() != std_t.numel() or mean_t.numel() == 0:
            raise ValueError(
                f"mean and std need one value per channel and the same length, got "
                f"{len(mean_t)} and {len(std_t)}"
            )
        if not bool((std_t > 0).all()) or not bool(torch.isfinite(std_t).all()):
            raise ValueError(f"std must be positive and finite, got {std_t.tolist()}")
        self.mean = mean_t
        self.std = std_t

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"

    def __call__(
        self, image: Tensor, mask: Tensor | None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        _check_pair(image, mask, "Normalize")
        if image.shape[0] != self.mean.numel():
            raise ValueError(
                f"Normalize has {self.mean.numel()} channel statistics but the image has "
                f"{image.shape[0]} channels"
            )
        mean = self.mean.to(image)[:, None, None]
        std = self.std.to(image)[:, None, None]
        return (image - mean) / std, mask


class Compose:
    """Apply paired transforms in order, sharing one generator."""

    def __init__(self, transforms: Sequence[PairedTransform]) -> None:
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose needs callables t(image, mask, generator), got {t!r}")

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"

    def __call__(
        self, image: Tensor, mask: Tensor | None, generator: torch.Generator
    ) -> tuple[Tensor, Tensor | None]:
        for t in self.transforms:
            image, mask = t(image, mask, generator)
        return image, mask


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for sample ``index`` in ``epoch`` (well mixed by SeedSequence)."""
    state = np.random.SeedSequence([int(seed), int(epoch), int(index)]).generate_state(
        1, dtype=np.uint64
    )
    return int(state[0] >> np.uint64(1))


class Augmented(Dataset):
    """Apply a paired transform to every sample of ``dataset``.

    Sample ``index`` in epoch ``e`` is transformed with a fresh
    ``torch.Generator`` seeded from ``(seed, e, index)``. The result therefore
    does not depend on which worker loads it or on how many workers there are,
    and a resumed run sees the same augmentations. Call :meth:`set_epoch` each
    pass (``InfiniteLoader`` does) to draw new augmentations.

    The epoch lives in a shared-memory tensor: DataLoader workers hold a copy of
    the dataset, and with ``persistent_workers=True`` a plain attribute set in the
    main process would never reach them (every epoch would repeat epoch 0's
    augmentations).

    Args:
        dataset: a dataset of dicts with ``"image"`` and optionally ``"mask"``.
        transform: ``transform(image, mask_or_None, generator) -> (image, mask)``.
        seed: augmentation seed.
    """

    def __init__(
        self,
        dataset: Dataset,
        transform: PairedTransform | Callable[..., Any],
        seed: int = 0,
    ) -> None:
        if not callable(transform):
            raise TypeError(f"transform must be callable, got {transform!r}")
        if isinstance(seed, bool) or not isinstance(seed, _INTEGER) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.dataset = dataset
        self.transform = transform
        self.seed = int(seed)
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Use the augmentations of ``epoch`` from now on (also in running workers)."""
        if isinstance(epoch, bool) or not isinstance(epoch, _INTEGER) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        self._epoch.fill_(int(epoch))
        inner = getattr(self.dataset, "set_epoch", None)
        if callable(inner):
            inner(epoch)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.dataset[index]
        if not isinstance(item, dict) or "image" not in item:
            raise TypeError(
                f"Augmented expects samples like {{'image': ..., 'mask': ...}}, got "
                f"{type(item).__name__} at index {index}"
            )
        generator = torch.Generator()
        generator.manual_seed(sample_seed(self.seed, self.epoch, int(index)))
        # An unlabelled sample's true mask (kept only to measure pseudo-labels) moves with
        # its image exactly as a label would; the draws are the same with or without it.
        key = "mask" if "mask" in item else "true_mask" if "true_mask" in item else None
        image, mask = self.transform(item["image"], item[key] if key else None, generator)
        out = dict(item)
        # Slices are views into the loaded sample; make them contiguous so the
        # default collate does not stack strided memory.
        out["image"] = image.contiguous()
        if key is not None and mask is not None:
            out[key] = mask.contiguous()
        return out

    def __repr__(self) -> str:
        return f"Augmented({self.dataset!r}, {self.transform!r}, seed={self.seed})"
