"""AdvSemiSeg: a pixel discriminator, adversarial loss and self-training on its confidence map.

Hung, Tsai, Liou, Lin and Yang, "Adversarial Learning for Semi-Supervised Semantic
Segmentation", BMVC 2018.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from s4seg.checks import check_real
from s4seg.filters import ConfidenceMapFilter, PseudoLabelFilter
from s4seg.losses import PixelAdversarialLoss
from s4seg.methods.adversarial import AdversarialMethod
from s4seg.methods.base import StepContext, StepOutput
from s4seg.methods.self_training import SelfTraining
from s4seg.models import PixelDiscriminator
from s4seg.models.discriminator_inputs import one_hot_labels

__all__ = ["AdvSemiSeg"]


class AdvSemiSeg(AdversarialMethod):
    """The AdvSemiSeg step on the trainer's loop.

    Generator loss: ``CE + lambda_adv_labelled * adv(D(p_l)) + lambda_adv_unlabelled *
    adv(D(p_u)) + lambda_st * ST``, where ``adv`` asks the fully-convolutional
    discriminator to call each pixel of the softmax map "real" (BCE with logits,
    ignore pixels of labelled masks left out), and ST is self-training on the
    unlabelled pixels that the filter keeps, from ``start_step`` on (the paper's
    ``semi_start``); the default :class:`~s4seg.filters.ConfidenceMapFilter` keeps
    pixels whose discriminator confidence ``sigmoid(D(p_u))`` is >= ``threshold``
    (the paper's ``mask_T``). The discriminator then learns one-hot ground truth
    (real) against the detached labelled and unlabelled predictions (fake), pixel by
    pixel, its two halves averaged; ``label_smoothing`` moves the real target to
    ``1 - s``.

    Defaults are the paper's: lambda_adv 0.01 on labelled and 0.001 on unlabelled
    images, lambda_semi (here ``lambda_st``) 0.1, mask_T 0.2; its semi_start was 5000
    of 20000 steps.

    Args:
        lambda_adv_labelled: weight of the adversarial term on labelled predictions.
        lambda_adv_unlabelled: weight of the adversarial term on unlabelled predictions.
        lambda_st: weight of the self-training term.
        start_step: first step of self-training.
        threshold: the default filter's threshold on the discriminator's confidence.
        pseudo_filter: default: ``ConfidenceMapFilter(threshold)``.
        **adversarial: the discriminator and its training, see
            :class:`~s4seg.methods.adversarial.AdversarialMethod`.
    """

    name = "advsemiseg"
    loaders = ("unlabelled",)

    def __init__(
        self,
        *,
        lambda_adv_labelled: float = 0.01,
        lambda_adv_unlabelled: float = 0.001,
        lambda_st: float = 0.1,
        start_step: int = 5000,
        threshold: float = 0.2,
        pseudo_filter: PseudoLabelFilter | None = None,
        **adversarial: Any,
    ) -> None:
        super().__init__(**adversarial)
        self.lambda_adv_labelled = check_real(
            lambda_adv_labelled, "lambda_adv_labelled", low=0.0, owner="AdvSemiSeg"
        )
        self.lambda_adv_unlabelled = check_real(
            lambda_adv_unlabelled, "lambda_adv_unlabelled", low=0.0, owner="AdvSemiSeg"
        )
        self.threshold = float(threshold)
        self.self_training = SelfTraining(
            pseudo_filter or ConfidenceMapFilter(threshold),
            lambda_st=lambda_st,
            start_step=start_step,
        )
        self.adv: PixelAdversarialLoss | None = None

    @property
    def pseudo_filter(self) -> PseudoLabelFilter:
        """The filter that decides which pseudo-labels teach."""
        return self.self_training.pseudo_filter

    def default_discriminator(self, num_classes: int) -> nn.Module:
        return PixelDiscriminator(num_classes)

    def setup(self, ctx: StepContext) -> None:
        super().setup(ctx)
        self.self_training.setup(ctx)
        self.adv = PixelAdversarialLoss(ctx.ignore_index)

    def generator_loss(self, ctx: StepContext, image: Tensor, mask: Tensor) -> StepOutput:
        assert self.adv is not None  # set by setup()
        loss_ce, logits = self.labelled_loss(ctx, image, mask)
        g, d = ctx.train_generator, self.train_discriminator
        batch_u = ctx.next_batch("unlabelled")
        img_u = batch_u["image"]
        d.train()
        d.requires_grad_(False)  # D is frozen for the generator's pass
        with ctx.autocast():
            logits_u = g(img_u)
            probs_l = logits.float().softmax(dim=1)
            probs_u = logits_u.float().softmax(dim=1)
            loss_adv_l = self.adv(d(probs_l), 1.0, mask)
            d_map_u = d(probs_u)
            loss_adv_u = self.adv(d_map_u, 1.0)
        d_conf = torch.sigmoid(d_map_u.detach().float())  # (B, H, W) per-pixel confidence
        loss_st, logs = self.self_training(
            ctx, logits_u, pixel_scores=d_conf, true_mask=batch_u.get("true_mask")
        )
        loss_adv = self.lambda_adv_labelled * loss_adv_l + self.lambda_adv_unlabelled * loss_adv_u
        loss = loss_ce + loss_adv + self.self_training.weight(ctx.step) * loss_st
        # The mean confidence of each image's map: one score per image, as S4GAN logs.
        logs.update(loss_adv=loss_adv.detach(), d_fake=d_conf.flatten(1).mean(dim=1))
        return StepOutput(loss, logs, carry=(probs_l.detach(), probs_u.detach(), mask))

    def discriminator_loss(self, ctx: StepContext, carry: Any) -> tuple[Tensor, dict[str, Any]]:
        assert self.adv is not None
        probs_l, probs_u, mask = carry
        d = self.train_discriminator
        real = one_hot_labels(mask, ctx.num_classes, ctx.ignore_index, validate=False)
        with ctx.autocast():
            real_map = d(real)
            fake = self.adv(d(probs_l), 0.0, mask) + self.adv(d(probs_u), 0.0)
            loss_d = (self.adv(real_map, 1.0 - self.label_smoothing, mask) + fake / 2) / 2
        d_real = torch.sigmoid(real_map.detach().float())
        return loss_d, {"d_real": d_real.flatten(1).mean(dim=1)}

    def settings(self) -> dict[str, Any]:
        return {
            "lambda_adv_labelled": self.lambda_adv_labelled,
            "lambda_adv_unlabelled": self.lambda_adv_unlabelled,
            **self.self_training.settings(),
            "threshold": self.threshold,
            **super().settings(),
        }

    def parts(self) -> dict[str, Any]:
        return {**super().parts(), **self.self_training.parts()}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "self_training": self.self_training.state_dict()}

    def load_state_dict(self, state: dict[str, Any], *, models_only: bool = False) -> None:
        super().load_state_dict(state, models_only=models_only)
        if not models_only:
            self.self_training.load_state_dict(state.get("self_training", {}))
