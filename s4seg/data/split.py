"""Seeded labelled/unlabelled splits and the wrapper that hides masks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset, Subset

__all__ = ["Unlabelled", "labelled_count", "split_dataset", "split_indices"]

# isinstance targets. Not numbers.Integral/Real: mypy does not see int/float as
# those ABCs and would flag the code after such a check as unreachable.
_INTEGER = (int, np.integer)
_REAL = (int, float, np.integer, np.floating)


def labelled_count(n: int, labelled: int | float) -> int:
    """How many of ``n`` samples a split labels.

    ``labelled`` follows scikit-learn's ``train_test_split`` convention: an int is
    a count, a float is a fraction. So ``1`` means one image and ``1.0`` means all
    of them. A fraction rounds half up to a count (``0.25`` of 10 is 3) but never
    below 1 (asking for a positive fraction of labels and getting none would
    silently train on nothing).
    """
    if isinstance(n, bool) or not isinstance(n, _INTEGER) or n < 0:
        raise ValueError(f"n must be a non-negative int (the dataset size), got {n!r}")
    n = int(n)
    if n == 0:
        raise ValueError("cannot split an empty dataset (n=0); check the dataset path or size")
    if isinstance(labelled, bool):
        raise TypeError(
            f"labelled must be a count (int) or a fraction (float in (0, 1]), got the bool {labelled}"
        )
    if isinstance(labelled, _INTEGER):
        count = int(labelled)
        if not 1 <= count <= n:
            raise ValueError(
                f"labelled count must be in [1, {n}] for a dataset of {n} samples, got {count}; "
                "pass a float in (0, 1] for a fraction"
            )
        return count
    if isinstance(labelled, _REAL):
        frac = float(labelled)
        if not 0.0 < frac <= 1.0:
            raise ValueError(
                f"labelled fraction must be in (0, 1], got {labelled!r}; "
                "pass an int for a count of labelled samples"
            )
        return max(1, min(n, math.floor(frac * n + 0.5)))
    raise TypeError(
        f"labelled must be a count (int) or a fraction (float in (0, 1]), got {labelled!r}"
    )


def split_indices(n: int, labelled: int | float, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into labelled and unlabelled indices.

    The split is a seeded permutation whose first ``k`` entries are labelled, so
    for a fixed seed the labelled set grows by inclusion: the 32-label split is a
    subset of the 64-label split (experiments over label counts stay nested).

    Args:
        n: number of samples.
        labelled: an int count in [1, n] or a float fraction in (0, 1] (see
            :func:`labelled_count`; ``1`` is one sample, ``1.0`` is all).
        seed: seed of the permutation.

    Returns:
        ``(labelled_idx, unlabelled_idx)``: sorted int64 arrays, disjoint, together
        ``range(n)``. Arrays (not lists) keep 370k indices compact in every worker.
    """
    k = labelled_count(n, labelled)
    if isinstance(seed, bool) or not isinstance(seed, _INTEGER) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    perm = np.random.default_rng(np.random.SeedSequence([int(seed)])).permutation(int(n))
    return np.sort(perm[:k]), np.sort(perm[k:])


class Unlabelled(Dataset):
    """View of a dataset without its ``"mask"`` key (the unlabelled pool).

    Other keys pass through. ``set_epoch`` is forwarded so that an
    :class:`~s4seg.data.transforms.Augmented` dataset inside still reshuffles
    its augmentations per epoch.

    Args:
        dataset: a dataset of ``{"image", "mask", ...}`` dicts.
        keep_masks: keep each mask under ``"true_mask"`` instead of dropping it. No
            part trains on it: the methods use it only to measure how many of the
            pseudo-labels they keep are right (``st_kept_accuracy`` in the logs), as
            researchers do on VOC splits whose "unlabelled" masks exist.
    """

    def __init__(self, dataset: Dataset, *, keep_masks: bool = False) -> None:
        self.dataset = dataset
        self.keep_masks = bool(keep_masks)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.dataset[index]
        if not isinstance(item, dict):
            raise TypeError(
                f"Unlabelled expects a dataset of dicts like {{'image': ..., 'mask': ...}}, "
                f"got {type(item).__name__} at index {index}"
            )
        out = {k: v for k, v in item.items() if k != "mask"}
        if self.keep_masks and "mask" in item:
            out["true_mask"] = item["mask"]
        return out

    def set_epoch(self, epoch: int) -> None:
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)

    def __repr__(self) -> str:
        keep = ", keep_masks=True" if self.keep_masks else ""
        return f"Unlabelled({self.dataset!r}{keep})"


def split_dataset(
    dataset: Dataset, labelled: int | float, *, seed: int = 0
) -> tuple[Subset, Unlabelled]:
    """Labelled subset and unlabelled (mask-free) subset of ``dataset``.

    Uses :func:`split_indices` on ``len(dataset)``; see there for ``labelled``.
    With ``labelled=1.0`` the unlabelled part is empty.
    """
    lab, unl = split_indices(len(dataset), labelled, seed=seed)  # type: ignore[arg-type]
    return Subset(dataset, _IntArray(lab)), Unlabelled(Subset(dataset, _IntArray(unl)))


class _IntArray(Sequence[int]):
    """Read-only int64 array that yields Python ints.

    A list of 357k Python ints costs ~10 MB and, in forked DataLoader workers,
    is slowly copied page by page as reference counts change; an array is one
    buffer. Items come out as ``int`` for datasets that type-check indices.
    """

    def __init__(self, a: np.ndarray) -> None:
        self._a = np.ascontiguousarray(a, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._a)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return _IntArray(self._a[i])
        return int(self._a[i])

    def __repr__(self) -> str:
        return f"indices({self._a.tolist() if len(self._a) <= 8 else f'{len(self._a)} items'})"
