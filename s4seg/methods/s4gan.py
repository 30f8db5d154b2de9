"""S4GAN's step: feature matching plus self-training gated by a discriminator.

Mittal, Tatarchenko and Brox, "Semi-Supervised Semantic Segmentation with High- and
Low-level Consistency", TPAMI 2019.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from s4seg.checks import check_probability, check_real
from s4seg.filters import DiscriminatorGate, PseudoLabelFilter
from s4seg.losses import DiscriminatorLoss, FeatureMatchingLoss
from s4seg.methods.adversarial import AdversarialMethod
from s4seg.methods.base import StepContext, StepOutput
from s4seg.methods.self_training import SelfTraining
from s4seg.models import FMDiscriminator
from s4seg.models.discriminator_inputs import (
    discriminator_input,
    one_hot_labels,
    sharpen,
    soften_one_hot,
)

__all__ = ["S4GAN"]


class S4GAN(AdversarialMethod):
    """The S4GAN step, with options that stop the discriminator winning on softness.

    With the defaults one step is the paper's code: the generator predicts an
    unlabelled batch; the frozen discriminator scores ``[softmax ‖ image]``; the
    filter (default :class:`~s4seg.filters.DiscriminatorGate` at 0.2) decides which
    pseudo-labels teach (from ``start_step`` = 1 on); feature matching pulls the mean
    discriminator features of the predictions towards those of ``[one-hot ground
    truth ‖ image]`` from a separate labelled batch (the ``"d"`` loader); the
    generator's loss is ``CE + lambda_fm * FM + lambda_st * ST``; then the
    discriminator learns real one-hot maps against the detached predictions, every
    ``d_update_interval`` steps.

    A one-hot map has zero entropy and a prediction never does, so a discriminator
    can tell them apart by softness alone, and then its score says little about
    whether a prediction is right (``d_auc_accuracy`` near 0.5 in the evaluation
    records, while ``d_auc_entropy`` is high). The "honest" options take that cue away.

    Args:
        pseudo_filter: default: ``DiscriminatorGate(0.2)``.
        lambda_fm: weight of feature matching.
        lambda_st: weight of self-training.
        start_step: first step with self-training (the original code: 1).
        real_smoothing: label smoothing of the one-hot "real" maps, ``(1-s) y + s/C``.
        real_noise: random noise mixed into the "real" maps (still distributions).
        fake_sharpen: temperature T in (0, 1] that sharpens the predicted "fake"
            maps, ``p^(1/T)`` renormalised, before the discriminator sees them (the
            self-training targets are unchanged). 1 is off.
        diagnose: at each evaluation, measure whether the discriminator's score
            tracks correctness on the validation batches (``d_auc_accuracy``,
            ``d_auc_entropy``; see
            :func:`s4seg.methods.s4gan_diagnostics.discriminator_diagnostics`).
        diagnose_batches: validation batches the diagnostic reads (None: all).
        seed: seed of the generator that draws ``real_noise``.
        **adversarial: the discriminator and its training, see
            :class:`~s4seg.methods.adversarial.AdversarialMethod` (``discriminator``,
            ``d_optimizer``, ``lr_d``, ``betas_d``, ``d_update_interval``,
            ``label_smoothing``).
    """

    name = "s4gan"
    loaders = ("unlabelled", "d")

    def __init__(
        self,
        *,
        pseudo_filter: PseudoLabelFilter | None = None,
        lambda_fm: float = 0.1,
        lambda_st: float = 1.0,
        start_step: int = 1,
        real_smoothing: float = 0.0,
        real_noise: float = 0.0,
        fake_sharpen: float = 1.0,
        diagnose: bool = True,
        diagnose_batches: int | None = None,
        seed: int = 0,
        **adversarial: Any,
    ) -> None:
        super().__init__(**adversarial)
        self.real_smoothing = check_probability(real_smoothing, "real_smoothing", owner="S4GAN")
        self.real_noise = check_probability(real_noise, "real_noise", owner="S4GAN")
        self.fake_sharpen = check_real(
            fake_sharpen,
            "fake_sharpen",
            low=0.0,
            high=1.0,
            low_open=True,
            owner="S4GAN",
            hint="a temperature: 1 is off, 0.5 squares the probabilities",
        )
        self.lambda_fm = check_real(lambda_fm, "lambda_fm", low=0.0, owner="S4GAN")
        # D(fake) comes from a sigmoid, so the gate's range check (a host sync) is moot.
        gate = pseudo_filter or DiscriminatorGate(0.2, check_range=False)
        self.self_training = SelfTraining(gate, lambda_st=lambda_st, start_step=start_step)
        self.diagnose_enabled, self.diagnose_batches = diagnose, diagnose_batches
        self.seed = seed
        self._rng = torch.Generator().manual_seed(seed)
        self.fm = FeatureMatchingLoss()
        self.d_loss = DiscriminatorLoss(self.label_smoothing)

    @property
    def pseudo_filter(self) -> PseudoLabelFilter:
        """The filter that decides which pseudo-labels teach."""
        return self.self_training.pseudo_filter

    @property
    def honest(self) -> bool:
        """Whether any option hides softness from the discriminator."""
        return self.real_smoothing > 0 or self.real_noise > 0 or self.fake_sharpen < 1

    def default_discriminator(self, num_classes: int) -> nn.Module:
        return FMDiscriminator(num_classes)

    def setup(self, ctx: StepContext) -> None:
        super().setup(ctx)
        self.self_training.setup(ctx)

    def _real_map(self, ctx: StepContext, mask: Tensor) -> Tensor:
        real = one_hot_labels(mask, ctx.num_classes, ctx.ignore_index, validate=ctx.check_inputs)
        if self.real_smoothing or self.real_noise:
            real = soften_one_hot(
                real, smoothing=self.real_smoothing, noise=self.real_noise, generator=self._rng
            )
        return real

    def _fake_map(self, probs: Tensor) -> Tensor:
        return sharpen(probs, self.fake_sharpen) if self.fake_sharpen < 1 else probs

    def generator_loss(self, ctx: StepContext, image: Tensor, mask: Tensor) -> StepOutput:
        loss_ce, _ = self.labelled_loss(ctx, image, mask)
        g, d = ctx.train_generator, self.train_discriminator
        d.train()
        batch_u = ctx.next_batch("unlabelled")
        img_u = batch_u["image"]
        img_d, mask_d = ctx.labelled_batch("d")
        real_in = discriminator_input(self._real_map(ctx, mask_d), img_d)
        d.requires_grad_(False)  # D is frozen for the generator's pass
        with ctx.autocast():
            logits_u = g(img_u)  # prediction on an unlabelled batch
            probs_u = logits_u.float().softmax(dim=1)
            fake_logit, fake_feat = d(discriminator_input(self._fake_map(probs_u), img_u))
            _, real_feat = d(real_in)
            loss_fm = self.fm(real_feat, fake_feat)  # feature matching
        d_fake = torch.sigmoid(fake_logit.detach().float())
        loss_st, logs = self.self_training(
            ctx, logits_u, image_scores=d_fake, true_mask=batch_u.get("true_mask")
        )
        loss = loss_ce + self.lambda_fm * loss_fm + self.self_training.weight(ctx.step) * loss_st
        logs.update(loss_fm=loss_fm.detach(), d_fake=d_fake)
        return StepOutput(loss, logs, carry=(probs_u.detach(), img_u, real_in))

    def discriminator_loss(self, ctx: StepContext, carry: Any) -> tuple[Tensor, dict[str, Any]]:
        probs_u, img_u, real_in = carry
        d = self.train_discriminator
        with ctx.autocast():
            fake_logit, _ = d(discriminator_input(self._fake_map(probs_u), img_u))
            real_logit, _ = d(real_in)
            loss_d = self.d_loss(real_logit, fake_logit)
        return loss_d, {"d_real": torch.sigmoid(real_logit.detach().float())}

    def diagnose(self, ctx: StepContext) -> dict[str, float]:
        if not self.diagnose_enabled or ctx.val_loader is None or self.discriminator is None:
            return {}
        from s4seg.methods.s4gan_diagnostics import discriminator_diagnostics

        # Iterating a DataLoader draws from the global RNG: fork it, so that turning
        # the diagnostic on or off leaves the training itself unchanged.
        cuda = [ctx.device] if ctx.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            return discriminator_diagnostics(
                ctx.generator,
                self.discriminator,
                ctx.val_loader,
                num_classes=ctx.num_classes,
                ignore_index=ctx.ignore_index,
                device=ctx.device,
                max_batches=self.diagnose_batches,
                fake_transform=self._fake_map if self.fake_sharpen < 1 else None,
            )

    def settings(self) -> dict[str, Any]:
        return {
            "lambda_fm": self.lambda_fm,
            **self.self_training.settings(),
            "real_smoothing": self.real_smoothing,
            "real_noise": self.real_noise,
            "fake_sharpen": self.fake_sharpen,
            "seed": self.seed,
            **super().settings(),
        }

    def parts(self) -> dict[str, Any]:
        return {**super().parts(), **self.self_training.parts()}

    def state_dict(self) -> dict[str, Any]:
        state = {**super().state_dict(), "self_training": self.self_training.state_dict()}
        if self.real_noise:
            state["rng"] = self._rng.get_state()
        return state

    def load_state_dict(self, state: dict[str, Any], *, models_only: bool = False) -> None:
        super().load_state_dict(state, models_only=models_only)
        if models_only:
            return
        self.self_training.load_state_dict(state.get("self_training", {}))
        if "rng" in state:
            self._rng.set_state(state["rng"])
