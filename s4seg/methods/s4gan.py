"""S4GAN's step: feature matching plus self-training gated by a discriminator.

Mittal, Tatarchenko and Brox, "Semi-Supervised Semantic Segmentation with High- and
Low-level Consistency", TPAMI 2019.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from s4seg.filters import DiscriminatorGate, PseudoLabelFilter
from s4seg.methods.base import Method
from s4seg.models.discriminator import (
    FMDiscriminator,
    discriminator_input,
    one_hot_labels,
    sharpen,
    soften_one_hot,
)
from s4seg.ops.stats import PseudoLabelStats

if TYPE_CHECKING:
    from s4seg.training.trainer import Trainer

__all__ = ["S4GAN"]


class S4GAN(Method):
    """The S4GAN step, with options that stop the discriminator winning on softness.

    With the defaults one step is the paper's code: the generator predicts an
    unlabelled batch; the frozen discriminator scores ``[softmax ‖ image]``; the
    filter (default :class:`~s4seg.filters.DiscriminatorGate` at 0.2) decides which
    pseudo-labels teach (none at step 0); feature matching pulls the mean
    discriminator features of the predictions towards those of ``[one-hot ground
    truth ‖ image]`` from a separate labelled batch; the generator's loss is
    ``CE + lambda_fm * FM + lambda_st * ST``; then the discriminator learns real
    one-hot maps against the detached predictions, every ``d_update_interval`` steps.

    A one-hot map has zero entropy and a prediction never does, so a discriminator
    can tell them apart by softness alone, and then its score says little about
    whether a prediction is right (``d_auc_accuracy`` near 0.5 in the evaluation
    records, while ``d_auc_entropy`` is high). The "honest" options take that cue away:

    Args:
        real_smoothing: label smoothing of the one-hot "real" maps, ``(1-s) y + s/C``.
        real_noise: random noise mixed into the "real" maps (still distributions).
        fake_sharpen: temperature T in (0, 1] that sharpens the predicted "fake"
            maps, ``p^(1/T)`` renormalised, before the discriminator sees them (the
            self-training targets are unchanged). 1 is off.
        diagnose: at each evaluation, measure whether the discriminator's score
            tracks correctness on the validation batches (``d_auc_accuracy``,
            ``d_auc_entropy``; see :func:`s4seg.methods.s4gan_diagnostics.discriminator_diagnostics`).
        diagnose_batches: validation batches the diagnostic reads (None: all).
        seed: seed of the generator that draws ``real_noise``.
    """

    name = "s4gan"
    loaders = ("unlabelled", "d")

    def __init__(
        self,
        *,
        real_smoothing: float = 0.0,
        real_noise: float = 0.0,
        fake_sharpen: float = 1.0,
        diagnose: bool = True,
        diagnose_batches: int | None = None,
        seed: int = 0,
    ) -> None:
        for label, value in (("real_smoothing", real_smoothing), ("real_noise", real_noise)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"S4GAN {label} must be a float in [0, 1], got {value!r}")
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"S4GAN {label} must be in [0, 1], got {value}")
        if not 0.0 < fake_sharpen <= 1.0:
            raise ValueError(
                f"S4GAN fake_sharpen is a temperature in (0, 1] (1 is off, 0.5 squares the "
                f"probabilities), got {fake_sharpen}"
            )
        self.real_smoothing, self.real_noise = float(real_smoothing), float(real_noise)
        self.fake_sharpen = float(fake_sharpen)
        self.diagnose_enabled, self.diagnose_batches = diagnose, diagnose_batches
        self.seed = seed
        self._rng = torch.Generator().manual_seed(seed)
        self._pending: tuple[Tensor, Tensor, Tensor] | None = None

    @property
    def honest(self) -> bool:
        """Whether any option hides softness from the discriminator."""
        return self.real_smoothing > 0 or self.real_noise > 0 or self.fake_sharpen < 1

    def default_discriminator(self, num_classes: int) -> nn.Module:
        return FMDiscriminator(num_classes)

    def default_filter(self) -> PseudoLabelFilter:
        # D(fake) comes from a sigmoid, so the gate's range check (a host sync) is moot.
        return DiscriminatorGate(0.2, check_range=False)

    def _real_map(self, trainer: Trainer, mask: Tensor) -> Tensor:
        cfg = trainer.config
        real = one_hot_labels(
            mask, trainer.num_classes, cfg.ignore_index, validate=cfg.check_inputs
        )
        if self.real_smoothing or self.real_noise:
            real = soften_one_hot(
                real, smoothing=self.real_smoothing, noise=self.real_noise, generator=self._rng
            )
        return real

    def _fake_map(self, probs: Tensor) -> Tensor:
        return sharpen(probs, self.fake_sharpen) if self.fake_sharpen < 1 else probs

    def generator_loss(
        self, trainer: Trainer, loss_ce: Tensor, image: Tensor, mask: Tensor, logits: Tensor
    ) -> tuple[Tensor, dict[str, Any]]:
        cfg, g, d, step = trainer.config, trainer._g, trainer._d, trainer.step
        d.train()
        img_u = trainer._to_device(trainer._next("unlabelled")["image"])
        img_d, mask_d = trainer._labelled_batch("d")
        real_in = discriminator_input(self._real_map(trainer, mask_d), img_d)
        d.requires_grad_(False)  # D is frozen for the generator's pass
        with trainer._autocast():
            logits_u = g(img_u)  # prediction on an unlabelled batch
            probs_u = logits_u.float().softmax(dim=1)
            fake_logit, fake_feat = d(discriminator_input(self._fake_map(probs_u), img_u))
            _, real_feat = d(real_in)
            loss_fm = trainer.fm(real_feat, fake_feat)  # feature matching
        d_fake = torch.sigmoid(fake_logit.detach().float())
        out: dict[str, Any] = {}
        if step > 0:  # self-training on what the filter keeps; none at step 0
            decision = self.pseudo_filter(trainer).decide(
                logits=logits_u.detach(), d_prob=d_fake, step=step
            )
            loss_st, stats = trainer.st(logits_u, decision)
            out["gate_threshold"] = decision.image_threshold
            out["gate_images_passed"] = decision.image_keep.sum()
            out["gate_images_total"] = decision.image_keep.numel()
            out["pixel_threshold"] = decision.pixel_threshold.float().mean()
        else:
            loss_st = logits_u.new_zeros((), dtype=torch.float32)
            stats = PseudoLabelStats.from_mask(torch.zeros_like(logits_u[:, 0], dtype=torch.bool))
        loss_g = loss_ce + cfg.lambda_fm * loss_fm + cfg.lambda_st * loss_st
        out.update(loss_fm=loss_fm.detach(), loss_st=loss_st.detach(), stats=stats, d_fake=d_fake)
        self._pending = (probs_u.detach(), img_u, real_in)
        return loss_g, out

    def discriminator_step(self, trainer: Trainer) -> dict[str, Any]:
        cfg, d = trainer.config, trainer._d
        pending, self._pending = self._pending, None
        if pending is None or trainer.step % cfg.d_update_interval != 0:
            return {}
        probs_u, img_u, real_in = pending
        d.requires_grad_(True)
        with trainer._autocast():
            fake_logit, _ = d(discriminator_input(self._fake_map(probs_u), img_u))
            real_logit, _ = d(real_in)
            loss_d = trainer.d_loss(real_logit, fake_logit)
        trainer._optimise(trainer.d_optimizer, trainer.d_scaler, loss_d, d)
        return {"loss_d": loss_d.detach(), "d_real": torch.sigmoid(real_logit.detach().float())}

    def diagnose(self, trainer: Trainer) -> dict[str, float]:
        if not self.diagnose_enabled or trainer.val_loader is None or trainer.discriminator is None:
            return {}
        from s4seg.methods.s4gan_diagnostics import discriminator_diagnostics

        # Iterating a DataLoader draws from the global RNG: fork it, so that turning
        # the diagnostic on or off leaves the training itself unchanged.
        cuda = [trainer.device] if trainer.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            return discriminator_diagnostics(
                trainer.generator,
                trainer.discriminator,
                trainer.val_loader,
                num_classes=trainer.num_classes,
                ignore_index=trainer.config.ignore_index,
                device=trainer.device,
                max_batches=self.diagnose_batches,
                fake_transform=self._fake_map if self.fake_sharpen < 1 else None,
            )

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self._rng.get_state()} if self.real_noise else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "rng" in state:
            self._rng.set_state(state["rng"])

    def __repr__(self) -> str:
        return (
            f"S4GAN(real_smoothing={self.real_smoothing}, real_noise={self.real_noise}, "
            f"fake_sharpen={self.fake_sharpen})"
        )
