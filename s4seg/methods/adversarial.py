"""What adversarial methods share: a discriminator, its optimizer and scaler, and its update."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from s4seg.checks import check_count, check_real
from s4seg.methods.base import Method, StepContext, StepOutput

__all__ = ["AdversarialMethod"]


class AdversarialMethod(Method):
    """Base of S4GAN and AdvSemiSeg: owns the discriminator and how it learns.

    The discriminator is built by :meth:`default_discriminator` when none is given;
    its optimizer is Adam at ``lr_d`` with ``betas_d`` (S4GAN's code) when none is
    given. After the generator's step, :meth:`update` runs :meth:`discriminator_loss`
    on what the generator step carried and takes an optimizer step, every
    ``d_update_interval`` steps. The trainer's learning-rate schedule applies to the
    discriminator's optimizer as to the generator's.

    Args:
        discriminator: default: :meth:`default_discriminator`.
        d_optimizer: default: Adam at ``lr_d``.
        lr_d: the discriminator's learning rate (about 0.1x the generator's calms a
            discriminator that wins too hard).
        betas_d: Adam's betas.
        d_update_interval: update the discriminator every N steps.
        label_smoothing: one-sided smoothing of the "real" target, ``1 - s``.
    """

    def __init__(
        self,
        *,
        discriminator: nn.Module | None = None,
        d_optimizer: torch.optim.Optimizer | None = None,
        lr_d: float = 1e-4,
        betas_d: tuple[float, float] = (0.9, 0.99),
        d_update_interval: int = 1,
        label_smoothing: float = 0.0,
    ) -> None:
        owner = type(self).__name__
        self.lr_d = check_real(
            lr_d, "lr_d", low=0.0, owner=owner, hint="0 freezes the discriminator"
        )
        if len(betas_d) != 2:
            raise ValueError(f"{owner} betas_d must be a pair (beta1, beta2), got {betas_d!r}")
        self.betas_d = tuple(
            check_real(b, "betas_d", low=0.0, high=1.0, high_open=True, owner=owner)
            for b in betas_d
        )
        self.d_update_interval = check_count(
            d_update_interval, "d_update_interval", minimum=1, owner=owner
        )
        self.label_smoothing = check_real(
            label_smoothing,
            "label_smoothing",
            low=0.0,
            high=1.0,
            high_open=True,
            owner=owner,
            hint="the real target is 1 - label_smoothing; 0.1 is a common choice",
        )
        self.discriminator = discriminator
        self.d_optimizer = d_optimizer
        self.d_scaler: torch.amp.GradScaler | None = None
        self._train_d: nn.Module | None = None

    def default_discriminator(self, num_classes: int) -> nn.Module:
        """The discriminator built when none is given."""
        raise NotImplementedError

    @property
    def train_discriminator(self) -> nn.Module:
        """The module a step calls: the discriminator, or its DDP wrapper."""
        if self._train_d is None:
            raise RuntimeError(
                f"{type(self).__name__} has no discriminator before a Trainer sets it up; pass "
                f"the method to Trainer(method=...)"
            )
        return self._train_d

    def setup(self, ctx: StepContext) -> None:
        if self.discriminator is None:
            self.discriminator = self.default_discriminator(ctx.num_classes)
        d_classes = getattr(self.discriminator, "num_classes", ctx.num_classes)
        if d_classes != ctx.num_classes:
            raise ValueError(
                f"generator predicts {ctx.num_classes} classes but the discriminator "
                f"expects {d_classes}: build it with num_classes={ctx.num_classes}"
            )
        self._train_d = ctx.prepare(self.discriminator)
        if self.d_optimizer is None:
            self.d_optimizer = torch.optim.Adam(
                self.discriminator.parameters(), lr=self.lr_d, betas=self.betas_d
            )
        self.d_scaler = ctx.grad_scaler()

    def discriminator_loss(self, ctx: StepContext, carry: Any) -> tuple[Tensor, dict[str, Any]]:
        """The discriminator's loss on what the generator step carried, and log values."""
        raise NotImplementedError

    def update(self, ctx: StepContext, output: StepOutput) -> dict[str, Any]:
        if output.carry is None or ctx.step % self.d_update_interval != 0:
            return {}
        assert self.d_optimizer is not None and self.d_scaler is not None  # set by setup()
        self.train_discriminator.requires_grad_(True)
        loss_d, logs = self.discriminator_loss(ctx, output.carry)
        ctx.optimise(loss_d, self.d_optimizer, self.train_discriminator, self.d_scaler)
        return {"loss_d": loss_d.detach(), **logs}

    def modules(self) -> dict[str, nn.Module]:
        return {"discriminator": self.discriminator} if self.discriminator is not None else {}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"d": self.d_optimizer} if self.d_optimizer is not None else {}

    def settings(self) -> dict[str, Any]:
        return {
            "lr_d": self.lr_d,
            "betas_d": list(self.betas_d),
            "d_update_interval": self.d_update_interval,
            "label_smoothing": self.label_smoothing,
        }

    def parts(self) -> dict[str, Any]:
        return {
            "discriminator": repr(self.discriminator) if self.discriminator is not None else None,
            "d_optimizer": repr(self.d_optimizer) if self.d_optimizer is not None else None,
        }

    def state_dict(self) -> dict[str, Any]:
        assert self.discriminator is not None and self.d_optimizer is not None
        assert self.d_scaler is not None
        return {
            "discriminator": self.discriminator.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
            "d_scaler": self.d_scaler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any], *, models_only: bool = False) -> None:
        if "discriminator" not in state:
            raise ValueError(
                f"{type(self).__name__} needs its discriminator's weights, which this checkpoint "
                f"lacks (it was written by another method: {sorted(state)})"
            )
        assert self.discriminator is not None and self.d_optimizer is not None
        assert self.d_scaler is not None
        self.discriminator.load_state_dict(state["discriminator"])
        if models_only:
            return
        self.d_optimizer.load_state_dict(state["d_optimizer"])
        self.d_scaler.load_state_dict(state["d_scaler"])
