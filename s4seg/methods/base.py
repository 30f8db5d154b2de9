"""What a training method sees of the loop (the step context) and what it gives back.

The trainer owns the loop, the generator and its optimizer, the labelled
cross-entropy, the loaders, metrics, the learning-rate schedule, non-finite
handling, callbacks and the assembly of checkpoints. A method owns what differs
between S4GAN, AdvSemiSeg, a mean teacher, FixMatch or UniMatch: its parts (a
discriminator and its optimizer, a teacher, a self-training filter and loss), their
settings, which extra batches it draws, what it adds to the generator's loss and
what it updates after the generator's step. It reaches the loop only through a
:class:`StepContext`, never through the trainer's private members.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

__all__ = ["Method", "StepContext", "StepOutput", "require_feature_dropout"]


@runtime_checkable
class StepContext(Protocol):
    """The loop's public face to a method; :class:`s4seg.training.Trainer` implements it.

    Attributes:
        step: the current step, counted from 0 (the step being computed).
        device: where the models and batches live.
        num_classes: classes the generator predicts.
        ignore_index: the label of pixels that are never learnt.
        check_inputs: whether parts should validate their inputs (host syncs).
        generator: the bare generator (weights, copies such as an EMA teacher).
        train_generator: the module a training step calls: the generator, or its
            DDP / ``torch.compile`` wrapper.
        val_loader: the validation batches (None if the run has none).
    """

    @property
    def step(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def num_classes(self) -> int: ...

    @property
    def ignore_index(self) -> int: ...

    @property
    def check_inputs(self) -> bool: ...

    @property
    def generator(self) -> nn.Module: ...

    @property
    def train_generator(self) -> nn.Module: ...

    @property
    def val_loader(self) -> Iterable[dict[str, Tensor]] | None: ...

    def next_batch(self, name: str) -> dict[str, Tensor]:
        """The next batch of the loader ``name``, its tensors on the device."""
        ...

    def labelled_batch(self, name: str) -> tuple[Tensor, Tensor]:
        """``(images, masks)`` of the next batch of ``name``, on the device, checked."""
        ...

    def supervised_loss(self, logits: Tensor, mask: Tensor) -> Tensor:
        """The trainer's labelled cross-entropy (logged as ``loss_ce``, counted in train mIoU)."""
        ...

    def autocast(self) -> AbstractContextManager[Any]:
        """The run's mixed-precision context (a no-op in fp32)."""
        ...

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A new gradient scaler for another optimizer of the run (enabled under fp16)."""
        ...

    def optimise(
        self,
        loss: Tensor,
        optimizer: torch.optim.Optimizer,
        module: nn.Module,
        scaler: torch.amp.GradScaler,
    ) -> bool:
        """Zero grads, skip a non-finite loss, backward, clip, step; True if it stepped."""
        ...

    def prepare(self, module: nn.Module) -> nn.Module:
        """Put a part on the device (channels-last if the run is); returns what to call
        in a step (its DDP wrapper under torchrun, else the module itself)."""
        ...


@dataclass
class StepOutput:
    """What a method's :meth:`Method.generator_loss` returns to the loop.

    Attributes:
        loss: the generator's whole loss (the cross-entropy and the method's terms).
        logs: detached tensors for the log window (losses, counts, scores).
        carry: what the method's :meth:`Method.update` needs after the generator's
            optimizer step (e.g. the detached predictions a discriminator learns from).
    """

    loss: Tensor
    logs: dict[str, Any] = field(default_factory=dict)
    carry: Any = None


def require_feature_dropout(generator: nn.Module, owner: str) -> None:
    """Raise unless ``generator``'s forward takes ``feature_dropout=`` (UniMatch's stream)."""
    forward = getattr(generator, "forward", None)
    if forward is None or "feature_dropout" not in inspect.signature(forward).parameters:
        raise TypeError(
            f"{owner} perturbs the encoder's features, so the generator's forward must take "
            f"feature_dropout=; {type(generator).__name__} does not. Build it with "
            f"s4seg.create_generator(...)"
        )


class Method:
    """Base of the training methods; every hook but :meth:`generator_loss` may be kept.

    One step of the trainer:

    1. :meth:`generator_loss` ``(ctx, image, mask)``: the labelled batch is drawn by
       the trainer; the method runs the generator, takes the cross-entropy from
       ``ctx.supervised_loss`` and adds its terms;
    2. the generator's optimizer step (the trainer's);
    3. :meth:`update` ``(ctx, output)``: update a discriminator or a teacher.

    Attributes:
        name: the value of ``TrainerConfig.method`` that selects this method.
        loaders: names of the loaders the method draws from besides ``"labelled"``
            (``"unlabelled"``, S4GAN's ``"d"``).
    """

    name: ClassVar[str] = "method"
    loaders: ClassVar[tuple[str, ...]] = ()

    def setup(self, ctx: StepContext) -> None:
        """Called once by the trainer, after the generator is on the device."""

    def labelled_loss(self, ctx: StepContext, image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``(loss_ce, logits)`` of the generator on the labelled batch."""
        with ctx.autocast():
            logits = ctx.train_generator(image)
        return ctx.supervised_loss(logits, mask), logits

    def generator_loss(self, ctx: StepContext, image: Tensor, mask: Tensor) -> StepOutput:
        """The generator's loss for this step, given the labelled batch."""
        loss_ce, _ = self.labelled_loss(ctx, image, mask)
        return StepOutput(loss_ce)

    def update(self, ctx: StepContext, output: StepOutput) -> dict[str, Any]:
        """After the generator's step (discriminator, teacher); returns log values."""
        return {}

    def diagnose(self, ctx: StepContext) -> dict[str, float]:
        """Extra numbers for each evaluation record (e.g. does D's score track correctness)."""
        return {}

    def modules(self) -> dict[str, nn.Module]:
        """The method's own networks by name (a discriminator, a teacher)."""
        return {}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The method's own optimizers by name; the trainer applies its lr schedule to them."""
        return {}

    def settings(self) -> dict[str, Any]:
        """Every setting that changes training, as plain values (for config.json)."""
        return {}

    def parts(self) -> dict[str, Any]:
        """The ``repr`` of every injected part (filter, discriminator, optimizer, views)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Name, class, settings and parts: what a run folder records of the method."""
        return {
            "name": self.name,
            "class": type(self).__name__,
            "settings": self.settings(),
            "parts": self.parts(),
        }

    def state_dict(self) -> dict[str, Any]:
        """What a bit-identical resume needs of the method (tensors and plain Python)."""
        return {}

    def load_state_dict(self, state: dict[str, Any], *, models_only: bool = False) -> None:
        """Restore :meth:`state_dict`; ``models_only``: the networks' weights only."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{type(self).__name__}({args})"
