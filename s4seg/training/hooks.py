"""The callback hooks the trainer calls; named methods, so that a typo fails loudly."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from s4seg.training.trainer import Trainer

__all__ = ["HOOKS", "Callback", "check_callbacks"]

HOOKS = ("on_fit_start", "on_log", "on_eval_end", "on_step_end", "on_fit_end", "on_interrupt")


class Callback:
    """Base class: override any of the hooks below; every hook receives the trainer."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first step of :meth:`Trainer.fit` (also after a resume)."""

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """Every ``log_interval`` steps with the window's numbers (already host values)."""

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """After each evaluation; ``metrics`` has step, miou, iou, pixel_acc, best_miou."""

    def on_step_end(self, trainer: Trainer) -> None:
        """After every step (``trainer.step`` already counts it)."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """When :meth:`Trainer.fit` returns."""

    def on_interrupt(self, trainer: Trainer, error: BaseException) -> None:
        """When an exception or Ctrl-C interrupts :meth:`Trainer.fit`, before it propagates.

        ``trainer.interruption`` tells where the state stands (an
        :class:`s4seg.training.Interruption`): at the end of step
        ``interruption.step`` (``exact``: the interrupted step was rolled back, or it
        came between two steps), part-way through a step, or with non-finite weights
        that must not be saved. An exception raised here is logged and does not hide
        ``error``.
        """


def check_callbacks(callbacks: Sequence[Callback]) -> list[Callback]:
    """Reject objects that are not callbacks and ``on_*`` methods that are no hook."""
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"{cb!r} is not an s4seg.callbacks.Callback subclass instance")
        for name in dir(cb):
            if name.startswith("on_") and name not in HOOKS:
                close = difflib.get_close_matches(name, HOOKS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; hooks are {HOOKS}"
                raise TypeError(f"{type(cb).__name__}.{name} is not a callback hook{hint}")
    return list(callbacks)
