"""Mean teacher: an exponential moving average (EMA) of the student's weights.

Tarvainen and Valpola, "Mean teachers are better role models: Weight-averaged
consistency targets improve semi-supervised deep learning results", NeurIPS 2017.
The teacher predicts pseudo-labels on the weak view; the student learns from them on
the strong view, and after each optimizer step the teacher moves towards the student.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Iterator
from typing import Any, Literal

import torch
from torch import Tensor, nn

from s4seg.checks import check_step
from s4seg.schedules import Schedule, as_schedule

__all__ = ["EMATeacher", "unwrap_model"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside ``torch.compile`` and DDP / DataParallel wrappers.

    Unwraps ``_orig_mod`` (what ``torch.compile`` returns) and ``.module`` when the
    wrapper holds nothing but that module (DDP, DataParallel, or a test double), in
    any nesting. A model whose own code has a submodule called ``module`` next to
    other submodules is left alone.
    """
    while True:
        inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            inner = getattr(model, "module", None)
            if not isinstance(inner, nn.Module):
                return model
            if isinstance(model, nn.Module) and list(model.children()) != [inner]:
                return model
        model = inner


def _pairs(
    kind: str, teacher: Iterator[tuple[str, Tensor]], student: Iterator[tuple[str, Tensor]]
) -> tuple[list[Tensor], list[Tensor]]:
    """Matching (teacher, student) tensor lists, or a ValueError listing what differs."""
    t, s = dict(teacher), dict(student)
    if t.keys() != s.keys():
        missing, extra = sorted(t.keys() - s.keys()), sorted(s.keys() - t.keys())
        raise ValueError(
            f"student and teacher {kind}s differ: missing in the student {missing[:5]}, "
            f"not in the teacher {extra[:5]}; build the EMATeacher from the same architecture "
            f"(an unwrapped copy of this student)"
        )
    for name, tv in t.items():
        sv = s[name]
        if tv.shape != sv.shape or tv.dtype != sv.dtype:
            raise ValueError(
                f"{kind} {name!r}: teacher has shape {tuple(tv.shape)} {tv.dtype}, student has "
                f"{tuple(sv.shape)} {sv.dtype}; the teacher must mirror the student exactly"
            )
    return list(t.values()), [s[n] for n in t]


class EMATeacher(nn.Module):
    """A frozen copy of the student whose weights follow an EMA of the student's.

    After each student step, :meth:`update` sets ``t = d * t + (1 - d) * s`` for every
    parameter, with decay ``d = decay_at(step)``. By default
    ``d = min(1 - 1 / (step + 1), max_decay)``: 0 at step 0 (the teacher becomes the
    student) and then a running mean of the student's weights until it reaches
    ``max_decay`` (the decay ramp of the mean-teacher paper).

    The teacher stays in eval mode (``.train()`` leaves it there) and never needs
    gradients, so batch-norm normalizes with running statistics. Those statistics
    are buffers, not parameters: with ``buffers="copy"`` (the default, as in common
    implementations) every buffer is copied from the student at each update; with
    ``buffers="ema"`` float buffers (running mean / var) are averaged with the same
    decay. Integer buffers (``num_batches_tracked``) are always copied.

    The teacher's state is its weights (``state_dict``); the decay depends only on
    the step the trainer passes in, so resuming needs nothing else.

    Args:
        student: the model to follow; a DDP / ``torch.compile`` wrapper is unwrapped.
        decay: a constant in [0, 1), a schedule ``step -> decay`` (values in [0, 1)),
            or None for the decay ramp above.
        max_decay: cap of the decay ramp, in [0, 1); unused when ``decay`` is given.
        buffers: ``"copy"`` or ``"ema"``, how float buffers follow the student.
    """

    def __init__(
        self,
        student: nn.Module,
        decay: float | Schedule | None = None,
        max_decay: float = 0.999,
        *,
        buffers: Literal["copy", "ema"] = "copy",
    ) -> None:
        super().__init__()
        if not 0.0 <= max_decay < 1.0:  # also rejects NaN
            raise ValueError(f"max_decay must be in [0, 1), got {max_decay}; try 0.999")
        if buffers not in ("copy", "ema"):
            raise ValueError(f"buffers must be 'copy' or 'ema', got {buffers!r}")
        if isinstance(decay, numbers.Real) and not isinstance(decay, bool):
            self._check_decay(float(decay), None)
        self.decay = None if decay is None else as_schedule(decay)
        self.max_decay = float(max_decay)
        self.buffer_mode = buffers
        self.model = copy.deepcopy(unwrap_model(student))
        for p in self.model.parameters():
            p.grad = None  # deepcopy copies the student's .grad too
        self.model.requires_grad_(False)
        self.train(False)

    @staticmethod
    def _check_decay(d: float, step: int | None) -> None:
        if not 0.0 <= d < 1.0:  # also rejects NaN
            at = "" if step is None else f" at step {step}"
            raise ValueError(
                f"EMA decay{at} must be in [0, 1), got {d}: 1 would freeze the teacher; "
                f"typical values are 0.99 to 0.9999"
            )

    def decay_at(self, step: int) -> float:
        """The decay :meth:`update` uses at ``step``."""
        s = check_step(step)
        if self.decay is None:
            return min(1.0 - 1.0 / (s + 1), self.max_decay)
        d = float(self.decay(s))
        self._check_decay(d, s)
        return d

    @torch.no_grad()
    def update(self, student: nn.Module, step: int) -> None:
        """Move the teacher towards ``student`` by ``1 - decay_at(step)``.

        Call after the student's optimizer step. No host sync: all work is on device.
        """
        d = self.decay_at(step)
        source = unwrap_model(student)
        t_params, s_params = _pairs(
            "parameter", self.model.named_parameters(), source.named_parameters()
        )
        if t_params:
            # lerp_(s, w) = t + w * (s - t); exact s at w = 1 (d = 0), one fused kernel.
            torch._foreach_lerp_(t_params, s_params, 1.0 - d)
        t_bufs, s_bufs = _pairs("buffer", self.model.named_buffers(), source.named_buffers())
        for tb, sb in zip(t_bufs, s_bufs, strict=True):
            if self.buffer_mode == "ema" and tb.is_floating_point():
                tb.lerp_(sb, 1.0 - d)
            else:
                tb.copy_(sb)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The teacher's prediction, without autograd history.

        ``no_grad`` rather than ``inference_mode``: the outputs feed losses that save
        them for backward (confidence weights), which inference tensors cannot be.
        """
        with torch.no_grad():
            return self.model(*args, **kwargs)

    def train(self, mode: bool = True) -> EMATeacher:
        """Ignore ``mode``: the teacher always stays in eval mode."""
        self.training = False
        self.model.eval()
        return self

    def extra_repr(self) -> str:
        decay = f"min(1 - 1/(step+1), {self.max_decay})" if self.decay is None else repr(self.decay)
        return f"decay={decay}, buffers={self.buffer_mode!r}"
