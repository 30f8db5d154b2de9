"""Checks of what a :class:`~s4seg.training.Trainer` is given, with messages that say the fix.

Loaders that cannot resume or never end, optimizers with a non-finite learning rate,
files that are no Trainer checkpoint: refused before the first step, naming the
argument.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

from s4seg.data import InfiniteLoader

__all__ = [
    "batch_position",
    "check_lrs",
    "check_train_loader",
    "is_trainer_state",
    "not_a_checkpoint",
    "optimizer_label",
]


def optimizer_label(name: str) -> str:
    """How messages name an optimizer: ``"g"`` is the generator's."""
    return "the generator's optimizer ('g')" if name == "g" else f"optimizer {name!r}"


def batch_position(loader: Any) -> str:
    """Which batch a loader returned last: epoch, batch and dataset indices if it knows."""
    if not isinstance(loader, InfiniteLoader):
        return "its latest batch"
    indices = loader.last_indices
    shown = f", dataset indices {indices}" if indices is not None else ""
    return f"epoch {loader.epoch} batch {loader.batches_in_epoch - 1}{shown}"


def check_train_loader(name: str, loader: Any) -> None:
    """Refuse a training loader that is not an endless iterator, saying what to pass."""
    label = f"{name}_loader" if name in ("labelled", "unlabelled") else f"loaders[{name!r}]"
    if isinstance(loader, Iterator):
        return
    kind = type(loader).__name__
    if isinstance(loader, Iterable):
        raise TypeError(
            f"{label} is a {kind}, which is not an iterator: a DataLoader ends after one pass "
            f"and cannot resume. Wrap its dataset in s4seg.data.InfiniteLoader(dataset, "
            f"batch_size) (endless, reshuffles each epoch, resumes exactly)"
        )
    raise TypeError(f"{label} must be an iterator of batch dicts (an InfiniteLoader), got {kind}")


def check_lrs(name: str, optimizer: torch.optim.Optimizer) -> None:
    """Refuse an optimizer with a negative or non-finite learning rate in any group."""
    for i, group in enumerate(optimizer.param_groups):
        lr = group.get("lr")
        value = float(lr) if isinstance(lr, (int, float, Tensor)) else None
        if value is None or not (math.isfinite(value) and value >= 0):
            raise ValueError(
                f"{optimizer_label(name)} group {i} has lr={lr!r}: a learning rate is a "
                "finite number >= 0"
            )


def is_trainer_state(state: Any) -> bool:
    """True for what :meth:`Trainer.state_dict` returns (not bare weights)."""
    return isinstance(state, Mapping) and "config" in state and "generator" in state


def not_a_checkpoint(state: Any) -> str:
    """The message for a file that holds something other than a Trainer checkpoint."""
    keys = sorted(map(str, state))[:8] if isinstance(state, Mapping) else type(state).__name__
    return (
        f"not a Trainer checkpoint (keys {keys}): a Trainer checkpoint has 'config', "
        f"'generator', 'step' and more; load bare weights with "
        f"s4seg.models.load_weights(generator, path)"
    )
