"""What the trainer asks of a training method: its unlabelled loss and its discriminator step.

The trainer owns the loop, the labelled cross-entropy, the optimizers, the logs and
the checkpoints. A method owns what differs between S4GAN, AdvSemiSeg, a mean
teacher or FixMatch: which extra batches it draws, what it adds to the generator's
loss, and how it updates a discriminator or a teacher afterwards. Methods are small
objects composed of the library's parts (filters, losses, discriminators, views);
none of them copies the loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor, nn

from s4seg.filters import PseudoLabelFilter

if TYPE_CHECKING:
    from s4seg.training.trainer import Trainer

__all__ = ["Method"]


class Method:
    """Base of the training methods; every hook has a do-nothing default.

    One step of :class:`s4seg.Trainer` calls, in order:

    1. the labelled cross-entropy ``loss_ce`` (the trainer's own);
    2. :meth:`generator_loss` ``(trainer, loss_ce, image, mask, logits)``, which
       returns the generator's whole loss and the step's log values;
    3. the generator's optimizer step (the trainer's);
    4. :meth:`discriminator_step` (update a discriminator, if the method has one);
    5. :meth:`after_step` (update a teacher, ...).

    Attributes:
        name: the value of ``TrainerConfig.method`` that selects this method.
        loaders: names of the loaders the method draws from besides ``"labelled"``
            (``"unlabelled"``, ``"d"``).
    """

    name: ClassVar[str] = "method"
    loaders: ClassVar[tuple[str, ...]] = ()

    def default_discriminator(self, num_classes: int) -> nn.Module | None:
        """The discriminator built when the caller passes none (None: the method has none)."""
        return None

    def pseudo_filter(self, trainer: Trainer) -> PseudoLabelFilter:
        """The trainer's filter; a clear error when a method that needs one has none."""
        if trainer.pseudo_filter is None:
            raise ValueError(f"method {self.name!r} needs a pseudo_filter; pass one to the Trainer")
        return trainer.pseudo_filter

    def default_filter(self) -> PseudoLabelFilter | None:
        """The pseudo-label filter built when the caller passes none."""
        return None

    def setup(self, trainer: Trainer) -> None:
        """Called once at the end of the trainer's ``__init__`` (models are on the device)."""

    def generator_loss(
        self, trainer: Trainer, loss_ce: Tensor, image: Tensor, mask: Tensor, logits: Tensor
    ) -> tuple[Tensor, dict[str, Any]]:
        """The generator's loss for this step, given the labelled batch and its CE.

        Returns:
            ``(loss, logs)``: the loss to back-propagate (``loss_ce`` plus the
            method's terms) and detached tensors for the log window.
        """
        return loss_ce, {}

    def discriminator_step(self, trainer: Trainer) -> dict[str, Any]:
        """Update the discriminator after the generator's step; returns log values."""
        return {}

    def after_step(self, trainer: Trainer) -> None:
        """Called after both updates (e.g. to move an EMA teacher)."""

    def diagnose(self, trainer: Trainer) -> dict[str, float]:
        """Extra numbers for each evaluation record (e.g. does D's score track correctness)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What a bit-identical resume needs beyond the trainer's own state."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
