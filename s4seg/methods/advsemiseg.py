"""AdvSemiSeg: a pixel discriminator, adversarial loss and self-training on its confidence map.

Hung, Tsai, Liou, Lin and Yang, "Adversarial Learning for Semi-Supervised Semantic
Segmentation", BMVC 2018.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from s4seg.filters import ConfidenceMapFilter, PseudoLabelFilter
from s4seg.losses.adversarial import PixelAdversarialLoss
from s4seg.methods.base import Method
from s4seg.models.discriminator import one_hot_labels
from s4seg.models.pixel_discriminator import PixelDiscriminator

if TYPE_CHECKING:
    from s4seg.training.trainer import Trainer

__all__ = ["AdvSemiSeg"]


class AdvSemiSeg(Method):
    """The AdvSemiSeg step on the trainer's loop.

    Generator loss: ``CE + lambda_adv_labelled * adv(D(p_l)) + lambda_adv_unlabelled *
    adv(D(p_u)) + lambda_semi * ST``, where ``adv`` asks the fully-convolutional
    discriminator to call each pixel of the softmax map "real" (BCE with logits,
    ignore pixels of labelled masks left out), and ST is self-training on the
    unlabelled pixels that the filter keeps; the default
    :class:`~s4seg.filters.ConfidenceMapFilter` keeps pixels whose discriminator
    confidence ``sigmoid(D(p_u))`` is >= mask_T = 0.2 from ``semi_start`` on. The
    discriminator then learns one-hot ground truth (real) against the detached
    labelled and unlabelled predictions (fake), pixel by pixel, its two halves
    averaged; ``TrainerConfig.label_smoothing`` moves the real target to ``1 - s``.

    Defaults are the paper's: lambda_adv 0.01 on labelled and 0.001 on unlabelled
    images, lambda_semi 0.1, mask_T 0.2; its semi_start was 5000 of 20000 steps.

    Args:
        lambda_adv_labelled: weight of the adversarial term on labelled predictions.
        lambda_adv_unlabelled: weight of the adversarial term on unlabelled predictions.
        lambda_semi: weight of the self-training term.
        semi_start: first step of self-training for the default filter.
        mask_t: the default filter's threshold on the discriminator's confidence.
    """

    name = "advsemiseg"
    loaders = ("unlabelled",)

    def __init__(
        self,
        *,
        lambda_adv_labelled: float = 0.01,
        lambda_adv_unlabelled: float = 0.001,
        lambda_semi: float = 0.1,
        semi_start: int = 5000,
        mask_t: float = 0.2,
    ) -> None:
        for label, value in (
            ("lambda_adv_labelled", lambda_adv_labelled),
            ("lambda_adv_unlabelled", lambda_adv_unlabelled),
            ("lambda_semi", lambda_semi),
            ("semi_start", semi_start),
        ):
            if value < 0:
                raise ValueError(f"AdvSemiSeg {label} must be >= 0, got {value}")
        self.lambda_adv_labelled = float(lambda_adv_labelled)
        self.lambda_adv_unlabelled = float(lambda_adv_unlabelled)
        self.lambda_semi = float(lambda_semi)
        self.semi_start, self.mask_t = int(semi_start), float(mask_t)
        self._pending: tuple[Tensor, Tensor, Tensor] | None = None

    def default_discriminator(self, num_classes: int) -> nn.Module:
        return PixelDiscriminator(num_classes)

    def default_filter(self) -> PseudoLabelFilter:
        return ConfidenceMapFilter(self.mask_t, start_step=self.semi_start)

    def setup(self, trainer: Trainer) -> None:
        self.adv = PixelAdversarialLoss(trainer.config.ignore_index)

    def generator_loss(
        self, trainer: Trainer, loss_ce: Tensor, image: Tensor, mask: Tensor, logits: Tensor
    ) -> tuple[Tensor, dict[str, Any]]:
        g, d = trainer._g, trainer._d
        img_u = trainer._to_device(trainer._next("unlabelled")["image"])
        d.train()
        d.requires_grad_(False)  # D is frozen for the generator's pass
        with trainer._autocast():
            logits_u = g(img_u)
            probs_l = logits.float().softmax(dim=1)
            probs_u = logits_u.float().softmax(dim=1)
            loss_adv_l = self.adv(d(probs_l), 1.0, mask)
            d_map_u = d(probs_u)
            loss_adv_u = self.adv(d_map_u, 1.0)
        d_conf = torch.sigmoid(d_map_u.detach().float())  # (B, H, W) per-pixel confidence
        decision = self.pseudo_filter(trainer).decide(
            logits=logits_u.detach(), d_prob=d_conf, step=trainer.step
        )
        loss_st, stats = trainer.st(logits_u, decision)
        loss_adv = self.lambda_adv_labelled * loss_adv_l + self.lambda_adv_unlabelled * loss_adv_u
        loss_g = loss_ce + loss_adv + self.lambda_semi * loss_st
        self._pending = (probs_l.detach(), probs_u.detach(), mask)
        return loss_g, {
            "loss_adv": loss_adv.detach(),
            "loss_st": loss_st.detach(),
            "stats": stats,
            # The mean confidence of each image's map: one score per image, as S4GAN logs.
            "d_fake": d_conf.flatten(1).mean(dim=1),
        }

    def discriminator_step(self, trainer: Trainer) -> dict[str, Any]:
        cfg, d = trainer.config, trainer._d
        pending, self._pending = self._pending, None
        if pending is None or trainer.step % cfg.d_update_interval != 0:
            return {}
        probs_l, probs_u, mask = pending
        real = one_hot_labels(mask, trainer.num_classes, cfg.ignore_index, validate=False)
        d.requires_grad_(True)
        with trainer._autocast():
            real_map = d(real)
            fake = self.adv(d(probs_l), 0.0, mask) + self.adv(d(probs_u), 0.0)
            loss_d = (self.adv(real_map, 1.0 - cfg.label_smoothing, mask) + fake / 2) / 2
        trainer._optimise(trainer.d_optimizer, trainer.d_scaler, loss_d, d)
        d_real = torch.sigmoid(real_map.detach().float())
        return {"loss_d": loss_d.detach(), "d_real": d_real.flatten(1).mean(dim=1)}

    def __repr__(self) -> str:
        return (
            f"AdvSemiSeg(lambda_adv_labelled={self.lambda_adv_labelled}, "
            f"lambda_adv_unlabelled={self.lambda_adv_unlabelled}, lambda_semi="
            f"{self.lambda_semi}, semi_start={self.semi_start}, mask_t={self.mask_t})"
        )
