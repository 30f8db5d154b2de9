"""An endless, resumable iterator of batches over a DataLoader."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["InfiniteLoader", "set_dataset_epoch"]

# isinstance targets. Not numbers.Integral/Real: mypy does not see int/float as
# those ABCs and would flag the code after such a check as unreachable.
_INTEGER = (int, np.integer)


def set_dataset_epoch(dataset: Any, epoch: int) -> None:
    """Call ``set_epoch(epoch)`` on ``dataset`` or on the first wrapped dataset that has it.

    Looks through wrappers that do not forward it themselves (``Subset`` keeps the
    inner dataset in ``.dataset``, ``ConcatDataset`` in ``.datasets``), so that an
    :class:`~s4seg.data.transforms.Augmented` dataset inside a subset still draws
    new augmentations every epoch.
    """
    seen: set[int] = set()
    stack = [dataset]
    while stack:
        d = stack.pop()
        if d is None or id(d) in seen:
            continue
        seen.add(id(d))
        set_epoch = getattr(d, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)  # wrappers with set_epoch forward it inwards themselves
            continue
        stack.append(getattr(d, "dataset", None))
        stack.extend(getattr(d, "datasets", None) or ())


_UNEQUAL_SIZES = "stack expects each tensor to be equal size"


def _first_line(err: BaseException) -> str:
    lines = [ln for ln in str(err).splitlines() if _UNEQUAL_SIZES in ln]
    return (lines or str(err).splitlines() or [type(err).__name__])[0].strip()


def _sources(dataset: Any, indices: list[int], limit: int = 4) -> str:
    """``"; files a.png, b.png"`` when the dataset (through Subset-like wrappers) knows
    its image files, else ``""``."""
    paths = []
    for index in indices[:limit]:
        d, i = dataset, index
        for _ in range(8):  # Augmented(Subset(FolderDataset)) and the like
            if callable(getattr(d, "image_path", None)):
                with contextlib.suppress(IndexError, ValueError, TypeError):
                    paths.append(str(d.image_path(i)))
                break
            sub = getattr(d, "indices", None)
            if sub is not None and getattr(d, "dataset", None) is not None:
                i, d = int(sub[i]), d.dataset
            elif getattr(d, "dataset", None) is not None:
                d = d.dataset
            else:
                break
    if not paths:
        return ""
    more = " ..." if len(indices) > limit else ""
    return "; files " + ", ".join(paths) + more


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, _INTEGER) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


class _ResumableBatchSampler(Sampler[list[int]]):
    """Batches of one epoch's index order, starting at a given batch.

    The order is a permutation seeded from ``(seed, epoch)`` (or the wrapped
    sampler's order after ``sampler.set_epoch(epoch)``). Resuming slices the
    index list, so the skipped samples are never loaded.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        drop_last: bool,
        shuffle: bool,
        seed: int,
        sampler: Sampler[int] | None,
    ) -> None:
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.shuffle = shuffle
        self.seed = seed
        self.sampler = sampler
        self.epoch = 0
        self.start_batch = 0
        self.order: np.ndarray | None = None  # the order of epoch ``order_epoch``
        self.order_epoch = -1

    @property
    def batches_per_epoch(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def indices(self, epoch: int) -> np.ndarray:
        """The sample order of ``epoch``."""
        if self.sampler is not None:
            set_epoch = getattr(self.sampler, "set_epoch", None)
            if callable(set_epoch):
                set_epoch(epoch)
            return np.fromiter((int(i) for i in self.sampler), dtype=np.int64)
        if not self.shuffle:
            return np.arange(self.num_samples, dtype=np.int64)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch]))
        return rng.permutation(self.num_samples).astype(np.int64)

    def __iter__(self) -> Iterator[list[int]]:
        order = self.indices(self.epoch)
        self.order, self.order_epoch = order, self.epoch
        stop = self.batches_per_epoch * self.batch_size if self.drop_last else len(order)
        for start in range(self.start_batch * self.batch_size, stop, self.batch_size):
            yield order[start : min(start + self.batch_size, stop)].tolist()

    def __len__(self) -> int:
        return max(self.batches_per_epoch - self.start_batch, 0)


class InfiniteLoader:
    """Batches forever: a DataLoader that reshuffles on every pass, and resumes exactly.

    Epoch ``e`` visits the samples in a permutation seeded from ``(seed, e)``.
    Before each pass it calls ``set_epoch(e)`` on the dataset (or on a wrapped
    :class:`~s4seg.data.transforms.Augmented`) and on ``sampler`` if it has one
    (e.g. ``DistributedSampler``, so every rank reshuffles).

    ``state_dict()`` records the epoch and the batches already returned in it;
    after ``load_state_dict`` the next batch is exactly the one an uninterrupted
    run would return next. Skipped samples are not loaded: the resumed epoch's
    index list is sliced.

    Args:
        dataset: a map-style dataset.
        batch_size: samples per batch.
        shuffle: permute each epoch (ignored when ``sampler`` is given: the
            sampler decides the order).
        seed: seed of the per-epoch permutations and of the DataLoader's worker
            base seed.
        num_workers: passed to :class:`torch.utils.data.DataLoader`.
        pin_memory: passed to :class:`torch.utils.data.DataLoader`.
        persistent_workers: passed to :class:`torch.utils.data.DataLoader`.
        collate_fn: passed to :class:`torch.utils.data.DataLoader`.
        prefetch_factor: passed to :class:`torch.utils.data.DataLoader`.
        drop_last: drop the last incomplete batch of each epoch (default, so
            every batch has ``batch_size`` samples).
        sampler: an index sampler with a fixed length, e.g.
            ``DistributedSampler(dataset, shuffle=True, seed=seed)``.

    Raises:
        ValueError: empty dataset/sampler, or fewer samples than one batch with
            ``drop_last=True``.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        num_workers: int = 0,
        drop_last: bool = True,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        sampler: Sampler[int] | None = None,
        prefetch_factor: int | None = None,
    ) -> None:
        batch_size = _check_int(batch_size, "batch_size", 1)
        seed = _check_int(seed, "seed", 0)
        num_workers = _check_int(num_workers, "num_workers", 0)
        if persistent_workers and num_workers == 0:
            raise ValueError(
                "persistent_workers=True needs worker processes; pass num_workers >= 1 "
                "or persistent_workers=False"
            )
        source = "sampler" if sampler is not None else "dataset"
        n = len(sampler) if sampler is not None else len(dataset)  # type: ignore[arg-type]
        if n == 0:
            raise ValueError(
                f"empty loader: the {source} has 0 samples; check the dataset path/split"
            )
        if drop_last and n < batch_size:
            raise ValueError(
                f"the {source} has {n} samples, fewer than batch_size={batch_size}, so "
                f"drop_last=True yields no batch at all; use batch_size <= {n} or "
                "drop_last=False"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self._batch_sampler = _ResumableBatchSampler(
            n, batch_size, drop_last=drop_last, shuffle=shuffle, seed=seed, sampler=sampler
        )
        extra: dict[str, Any] = {}
        if num_workers > 0 and prefetch_factor is not None:
            extra["prefetch_factor"] = prefetch_factor
        self._loader = DataLoader(
            dataset,
            batch_sampler=self._batch_sampler,
            num_workers=num_workers,
            collate_fn=collate_fn,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers,
            # Seeds the workers' torch/random base seed, so code that does use
            # global randomness inside workers is reproducible too.
            generator=torch.Generator().manual_seed(seed),
            **extra,
        )
        self._epoch = 0
        self._batches_in_epoch = 0
        self._iterator: Iterator[Any] | None = None

    @property
    def epoch(self) -> int:
        """The epoch the next batch comes from (before any roll-over)."""
        return self._epoch

    @property
    def batches_in_epoch(self) -> int:
        """Batches already returned in the current epoch."""
        return self._batches_in_epoch

    @property
    def batches_per_epoch(self) -> int:
        return self._batch_sampler.batches_per_epoch

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """The sample order of ``epoch`` (for inspection and tests)."""
        return self._batch_sampler.indices(epoch)

    def __iter__(self) -> InfiniteLoader:
        return self

    def _start_epoch(self) -> Iterator[Any]:
        if self._batches_in_epoch >= self.batches_per_epoch:
            self._epoch += 1
            self._batches_in_epoch = 0
        set_dataset_epoch(self.dataset, self._epoch)
        self._batch_sampler.epoch = self._epoch
        self._batch_sampler.start_batch = self._batches_in_epoch
        self._iterator = iter(self._loader)
        return self._iterator

    def __next__(self) -> Any:
        iterator = self._iterator if self._iterator is not None else self._start_epoch()
        try:
            batch = self._fetch(iterator)
        except StopIteration:
            self._epoch += 1
            self._batches_in_epoch = 0
            iterator = self._start_epoch()
            try:
                batch = self._fetch(iterator)
            except StopIteration:
                raise RuntimeError(
                    f"epoch {self._epoch} yielded no batch; the sampler returned fewer than "
                    f"batch_size={self.batch_size} indices"
                ) from None
        self._batches_in_epoch += 1
        return batch

    def _fetch(self, iterator: Iterator[Any]) -> Any:
        try:
            return next(iterator)
        except StopIteration:
            raise
        except Exception as err:
            # The failed batch is the next one of this epoch (workers keep the order).
            # The next call starts again at it, e.g. once a bad file is fixed.
            self._iterator = None
            indices = self.batch_indices(self._epoch, self._batches_in_epoch) or []
            where = (
                f"batch {self._batches_in_epoch} of epoch {self._epoch} "
                f"(dataset indices {indices}{_sources(self.dataset, indices)})"
            )
            if _UNEQUAL_SIZES in str(err):
                raise ValueError(
                    f"cannot collate {where}: {_first_line(err)}. The images (and masks) of "
                    "a batch must have one size: crop or resize them in the dataset "
                    "(s4seg.data.Augmented with RandomCrop), or pass batch_size=1"
                ) from err
            if hasattr(err, "add_note"):
                err.add_note(f"while loading {where}")
            raise

    def batch_indices(self, epoch: int, batch: int) -> list[int] | None:
        """The dataset indices of batch ``batch`` (counted from 0) of ``epoch``.

        None for an epoch other than the current one when the order comes from a
        ``sampler`` (drawing it again could change a random sampler's later orders).
        """
        bs = self._batch_sampler
        if bs.order is not None and bs.order_epoch == epoch:
            order = bs.order
        elif bs.sampler is None:
            order = bs.indices(epoch)
        else:
            return None
        start = batch * self.batch_size
        return order[start : start + self.batch_size].tolist()

    @property
    def last_indices(self) -> list[int] | None:
        """The dataset indices of the batch returned last (None before the first)."""
        if self._batches_in_epoch == 0:
            return None
        return self.batch_indices(self._epoch, self._batches_in_epoch - 1)

    def state_dict(self) -> dict[str, int]:
        """Where the iterator stands: ``{"epoch": int, "batches_in_epoch": int}``."""
        return {"epoch": self._epoch, "batches_in_epoch": self._batches_in_epoch}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Continue from ``state``: the next batch is the one after the saved position."""
        missing = {"epoch", "batches_in_epoch"} - set(state)
        if missing:
            raise ValueError(
                f"loader state is missing {sorted(missing)}; expected the dict from "
                f"InfiniteLoader.state_dict(), got keys {sorted(state)}"
            )
        epoch = _check_int(state["epoch"], "state['epoch']", 0)
        done = _check_int(state["batches_in_epoch"], "state['batches_in_epoch']", 0)
        if done > self.batches_per_epoch:
            raise ValueError(
                f"state['batches_in_epoch']={done} exceeds the {self.batches_per_epoch} batches "
                "per epoch of this loader; was it saved with another dataset or batch size?"
            )
        self._epoch = epoch
        self._batches_in_epoch = done
        self._iterator = None  # the next __next__ starts at the saved position

    def __repr__(self) -> str:
        return (
            f"InfiniteLoader(batch_size={self.batch_size}, seed={self.seed}, "
            f"batches_per_epoch={self.batches_per_epoch}, state={self.state_dict()})"
        )
