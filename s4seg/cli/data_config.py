"""The ``data:`` section of a run config, and the loaders it gives.

A folder dataset (:class:`s4seg.data.FolderDataset`): ``root/images`` with masks in
``root/masks``; validation images held out of it by a list file or a fraction, or a
folder of their own; unlabelled images from the part of ``root`` that is not labelled
and from further folders of images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from s4seg.cli.errors import CommandError

if TYPE_CHECKING:
    from torch.utils.data import Dataset

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DataConfig",
    "TrainData",
    "build_data",
    "build_loaders",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class DataConfig:
    """Where the images and masks are, how they are split, cropped and batched.

    Args:
        root: folder with ``images/`` and ``masks/`` (PNG class indices, one per image).
        num_classes: classes C; mask values outside ``[0, C)`` other than the ignore
            index are an error that names the file.
        class_names: one name per class, shown by ``s4seg eval``.
        labelled: how many of the training images of ``root`` keep their masks: a count
            (int) or a fraction (float, 1.0 = all); the rest are used as unlabelled.
        unlabelled: further folders of unlabelled images (``DIR/images``).
        val_root: a validation folder of its own (``images/`` and ``masks/``).
        val_list: a text file of image stems of ``root`` held out for validation.
        val_fraction: a fraction of ``root`` held out for validation (seeded).
        image_dir: the image sub-folder name.
        mask_dir: the mask sub-folder name.
        crop_size: side of the square training crops.
        scale: random rescaling range before the crop.
        flip: random horizontal flips in training.
        mean: normalisation mean (RGB, images in [0, 1]); ImageNet's by default.
        std: normalisation standard deviation.
        batch_size: images per training batch (each loader).
        val_batch_size: images per validation batch (1 for images of different sizes).
        workers: loader worker processes.
        cache: keep each folder's index in a cache file (see FolderDataset).
        verify: check the files before training: ``"fast"`` reads headers (missing,
            empty, cut-short files, size mismatches), ``"full"`` decodes every file
            (also mask values outside the classes), ``"off"`` skips the check.
    """

    root: str | None = None
    num_classes: int | None = None
    class_names: list[str] | None = None
    labelled: int | float = 1.0
    unlabelled: list[str] = field(default_factory=list)
    val_root: str | None = None
    val_list: str | None = None
    val_fraction: float | None = None
    image_dir: str = "images"
    mask_dir: str = "masks"
    crop_size: int = 321
    scale: tuple[float, float] = (0.5, 1.5)
    flip: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    batch_size: int = 8
    val_batch_size: int = 1
    workers: int = 2
    cache: bool = False
    verify: Literal["off", "fast", "full"] = "fast"


@dataclass
class TrainData:
    """The datasets of a run, before they become loaders."""

    labelled: Dataset
    unlabelled: Dataset | None
    val: Dataset | None
    folders: list[Any] = field(default_factory=list)  # each FolderDataset, for verify()


def _require(data: DataConfig) -> tuple[Path, int]:
    if data.root is None:
        raise CommandError(
            "data.root is not set: pass --data.root=DIR (a folder with images/ and masks/) "
            "or set it in the config"
        )
    if data.num_classes is None:
        raise CommandError(
            "data.num_classes is not set: pass --data.num_classes=C (masks hold 0..C-1)"
        )
    root = Path(data.root)
    for sub in (data.image_dir, data.mask_dir):
        if not (root / sub).is_dir():
            raise CommandError(
                f"data.root={data.root!r} has no {sub}/ folder ({root / sub} does not exist); "
                f"a dataset folder holds {data.image_dir}/ and {data.mask_dir}/, or set "
                f"data.image_dir / data.mask_dir to its folder names"
            )
    if data.class_names is not None and len(data.class_names) != data.num_classes:
        raise CommandError(
            f"data.class_names has {len(data.class_names)} names but data.num_classes is "
            f"{data.num_classes}: give one name per class"
        )
    splits = {"val_root": data.val_root, "val_list": data.val_list}
    splits["val_fraction"] = data.val_fraction
    given = {f"data.{k}": v for k, v in splits.items() if v is not None}
    if len(given) > 1:
        shown = ", ".join(f"{k}={v!r}" for k, v in given.items())
        raise CommandError(
            f"{shown}: set one validation split only, and the others to null (e.g. "
            f"--{next(iter(given))}=null)"
        )
    return root, data.num_classes


def _val_indices(data: DataConfig, stems: list[str], seed: int) -> list[int]:
    import numpy as np

    if data.val_list is not None:
        path = Path(data.val_list)
        if not path.is_file():
            raise CommandError(f"data.val_list={data.val_list!r}: no such file")
        wanted = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        index = {s: i for i, s in enumerate(stems)}
        missing = [s for s in wanted if Path(s).stem not in index]
        if missing:
            raise CommandError(
                f"data.val_list {data.val_list!r} names {len(missing)} image(s) that are not in "
                f"{data.root}/{data.image_dir}: {missing[:5]}; list one image stem per line"
            )
        return sorted(index[Path(s).stem] for s in wanted)
    if data.val_fraction is not None:
        if not 0.0 < data.val_fraction < 1.0:
            raise CommandError(f"data.val_fraction must be in (0, 1), got {data.val_fraction!r}")
        n = max(1, round(data.val_fraction * len(stems)))
        perm = np.random.default_rng(np.random.SeedSequence([seed, 1])).permutation(len(stems))
        return sorted(int(i) for i in perm[:n])
    return []


def build_data(data: DataConfig, *, ignore_index: int, seed: int) -> TrainData:
    """The labelled, unlabelled and validation datasets the config names.

    Raises:
        CommandError: a key is missing or names a folder or file that is not there.
    """
    from torch.utils.data import ConcatDataset, Subset

    from s4seg.data import FolderDataset, Unlabelled, split_indices

    root, num_classes = _require(data)
    folder: dict[str, Any] = {"image_dir": data.image_dir, "cache": data.cache or None}
    try:
        full = FolderDataset(
            root, num_classes=num_classes, ignore_index=ignore_index, mask_dir=data.mask_dir,
            **folder,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as err:
        raise CommandError(f"data.root: {err}") from err
    stems = [full.stem(i) for i in range(len(full))]
    val_idx = _val_indices(data, stems, seed)
    held = set(val_idx)
    train_idx = [i for i in range(len(full)) if i not in held]
    if not train_idx:
        raise CommandError(f"data.root {data.root!r} has no training images left after the split")
    try:
        lab, unl = split_indices(len(train_idx), data.labelled, seed=seed)
    except (TypeError, ValueError) as err:
        raise CommandError(f"data.labelled={data.labelled!r}: {err}") from err
    labelled = Subset(full, [train_idx[i] for i in lab])
    pools: list[Dataset] = (
        [Unlabelled(Subset(full, [train_idx[i] for i in unl]))] if len(unl) else []
    )
    for extra in data.unlabelled:
        try:
            pools.append(FolderDataset(extra, labelled=False, **folder))
        except FileNotFoundError as err:
            raise CommandError(f"data.unlabelled {extra!r}: {err}") from err
    unlabelled = pools[0] if len(pools) == 1 else ConcatDataset(pools) if pools else None
    folders = [full, *(p for p in pools if isinstance(p, FolderDataset))]
    val: Dataset | None = Subset(full, val_idx) if val_idx else None
    if data.val_root is not None:
        try:
            val = FolderDataset(
                data.val_root, num_classes=num_classes, ignore_index=ignore_index,
                mask_dir=data.mask_dir, **folder,
            )  # fmt: skip
        except (FileNotFoundError, ValueError) as err:
            raise CommandError(f"data.val_root: {err}") from err
        folders.append(val)
    return TrainData(labelled, unlabelled, val, folders)


def build_loaders(
    data: DataConfig, sets: TrainData, *, ignore_index: int, seed: int
) -> dict[str, Any]:
    """The Trainer's loaders: labelled, unlabelled and ``"d"`` (each seeded), and val."""
    from torch.utils.data import DataLoader

    from s4seg.data import (
        Augmented,
        Compose,
        InfiniteLoader,
        Normalize,
        RandomCrop,
        RandomHorizontalFlip,
        RandomScale,
    )

    steps: list[Any] = [
        RandomScale(*data.scale),
        RandomCrop(data.crop_size, ignore_index=ignore_index),
    ]
    if data.flip:
        steps.append(RandomHorizontalFlip())
    augment = Compose([*steps, Normalize(data.mean, data.std)])

    def infinite(dataset: Dataset, s: int) -> InfiniteLoader:
        return InfiniteLoader(
            Augmented(dataset, augment, seed=s), data.batch_size, seed=s,
            num_workers=data.workers, persistent_workers=data.workers > 0,
        )  # fmt: skip

    val = None
    if sets.val is not None:
        val = DataLoader(
            Augmented(sets.val, Normalize(data.mean, data.std)), batch_size=data.val_batch_size
        )
    return {
        "labelled_loader": infinite(sets.labelled, seed),
        "unlabelled_loader": infinite(sets.unlabelled, seed + 1) if sets.unlabelled else None,
        "loaders": {"d": infinite(sets.labelled, seed + 2)},
        "val_loader": val,
    }
