"""The training loop and what it is made of.

* :class:`Trainer` (:mod:`s4seg.training.trainer`): the loop, which implements the
  step context the methods see, and :class:`TrainerConfig`
  (:mod:`s4seg.training.config`), its range-checked settings;
* :mod:`~s4seg.training.rollback`: what a step changes, kept so it can be undone;
* :mod:`~s4seg.training.arguments`: checks of the loaders, optimizers and files it is given;
* :mod:`~s4seg.training.hooks`: the callback base class and its hooks;
* :mod:`~s4seg.training.log_window`: the numbers between two log lines;
* :mod:`~s4seg.training.optim` and :mod:`~s4seg.training.lr_schedule`: the
  generator's default optimizer and the poly learning-rate factor;
* :mod:`~s4seg.training.checkpoint`: atomic checkpoint files and their safe reading.
"""

from __future__ import annotations

from s4seg.training.checkpoint import read_checkpoint, save_atomic
from s4seg.training.hooks import Callback
from s4seg.training.lr_schedule import poly_lr_factor
from s4seg.training.trainer import Trainer, TrainerConfig

__all__ = [
    "Callback",
    "Trainer",
    "TrainerConfig",
    "poly_lr_factor",
    "read_checkpoint",
    "save_atomic",
]
