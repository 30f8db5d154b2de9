"""Data: the built-in procedural dataset, a folder dataset (and its index cache),
labelled/unlabelled splits, paired augmentations, weak/strong views of an unlabelled
batch with CutMix, and an endless resumable loader.

Samples are dicts: labelled ``{"image": float32 (3, H, W), "mask": int64 (H, W)}``,
unlabelled ``{"image": ...}``; ignore index 255 by default.
"""

from s4seg.data.folder import IMAGE_EXTENSIONS, FolderDataset
from s4seg.data.loader import InfiniteLoader, set_dataset_epoch
from s4seg.data.split import Unlabelled, labelled_count, split_dataset, split_indices
from s4seg.data.synthetic import SyntheticShapes
from s4seg.data.transforms import (
    Augmented,
    Compose,
    Normalize,
    PairedTransform,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    sample_seed,
)
from s4seg.data.views import (
    StrongView,
    Views,
    WeakStrongViews,
    WeakView,
    apply_cutmix,
    cutmix_boxes,
    cutmix_partner,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "Augmented",
    "Compose",
    "FolderDataset",
    "InfiniteLoader",
    "Normalize",
    "PairedTransform",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomScale",
    "StrongView",
    "SyntheticShapes",
    "Unlabelled",
    "Views",
    "WeakStrongViews",
    "WeakView",
    "apply_cutmix",
    "cutmix_boxes",
    "cutmix_partner",
    "labelled_count",
    "sample_seed",
    "set_dataset_epoch",
    "split_dataset",
    "split_indices",
]
