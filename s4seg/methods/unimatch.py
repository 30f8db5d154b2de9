"""UniMatch: weak-to-strong consistency with two strong views and a feature perturbation.

Yang, Qi, Feng, Zhang and Shi, "Revisiting Weak-to-Strong Consistency in Semi-Supervised
Semantic Segmentation", CVPR 2023.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from s4seg.checks import check_count, check_probability, check_real
from s4seg.data.views import StrongView, WeakView, cutmix_boxes
from s4seg.filters import DistributionAlignment, PixelConfidenceFilter, PseudoLabelFilter
from s4seg.methods.base import Method, StepContext, StepOutput, require_feature_dropout
from s4seg.methods.self_training import SelfTraining
from s4seg.schedules import Schedule

__all__ = ["UniMatch"]


class UniMatch(Method):
    """The UniMatch step: the model teaches itself from its weak view, three ways.

    One step, as in the paper's code (``unimatch.py``):

    1. Two unlabelled batches are drawn: ``u`` and a second one, ``mix``, whose
       regions are pasted into ``u``'s strong views. Each gets a weak view (flip,
       scale-crop) and two strong views (colour jitter, grayscale, blur) of it.
    2. The model in eval mode, without gradients, predicts ``mix``'s weak view.
    3. Each strong view of ``u`` gets its own CutMix box (``cutmix_p``) filled from the
       same strong view of ``mix``.
    4. In train mode the model predicts the labelled batch and ``u``'s weak view in one
       batch (batch norm sees both), and decodes the same encoder features a second
       time after channel dropout (``feature_dropout``, the feature perturbation);
       then the two strong views in one batch.
    5. The weak view's detached prediction (not an EMA teacher: the model itself, in
       train mode) gives pseudo-labels; inside each box, ``mix``'s eval prediction
       does. A pixel teaches when its confidence is >= ``threshold``.
    6. The loss is ``(CE + lambda_strong * (ST_s1 + ST_s2) + lambda_fp * ST_fp) *
       loss_scale``: each ST term a cross-entropy summed over the confident pixels and
       divided by all valid pixels (``normalize="valid"``).

    Defaults are the paper's code: threshold 0.95, 0.25 for each strong view, 0.5 for
    the feature perturbation, the whole halved, dropout 0.5, CutMix with p = 0.5.
    Boxes keep the image's aspect ratio (the paper draws a ratio in [0.3, 3.3]); they
    cover 2% to 40% of the image, as there.

    The generator must accept ``feature_dropout`` (every
    :class:`~s4seg.models.SegmentationGenerator` does).

    Args:
        threshold: the confidence a pseudo-label needs (the default filter's).
        pseudo_filter: default: ``PixelConfidenceFilter(threshold)``; it decides for
            the strong views and the perturbed stream alike.
        lambda_strong: weight of each strong view's term.
        lambda_fp: weight of the feature-perturbation term.
        loss_scale: factor of the whole loss (the paper's ``/ 2``).
        feature_dropout: channel-dropout probability of the perturbed stream.
        start_step: no unlabelled terms before this step (the paper: 0).
        weak: the weak view.
        strong: the strong view (drawn twice, independently).
        cutmix_p: probability that a strong view gets a CutMix box.
        cutmix_area: range of the box area as a fraction of the image.
        seed: seed of the views' random generator (checkpointed).
        alignment: distribution alignment of the pseudo-labels (see
            :class:`~s4seg.filters.DistributionAlignment`; None: off, as in the paper).
        ramp: a schedule in [0, 1] of the steps since ``start_step`` that multiplies the
            three unlabelled terms (as :class:`~s4seg.methods.MeanTeacher`'s; None: the
            full weight from the start, as in the paper).
    """

    name = "unimatch"
    loaders = ("unlabelled",)

    def __init__(
        self,
        *,
        threshold: float = 0.95,
        pseudo_filter: PseudoLabelFilter | None = None,
        lambda_strong: float = 0.25,
        lambda_fp: float = 0.5,
        loss_scale: float = 0.5,
        feature_dropout: float = 0.5,
        start_step: int = 0,
        weak: WeakView | None = None,
        strong: StrongView | None = None,
        cutmix_p: float = 0.5,
        cutmix_area: tuple[float, float] = (0.02, 0.4),
        seed: int = 0,
        alignment: DistributionAlignment | None = None,
        ramp: Schedule | None = None,
    ) -> None:
        owner = "UniMatch"
        self.threshold = check_probability(threshold, "threshold", owner=owner)
        self.lambda_strong = check_real(lambda_strong, "lambda_strong", low=0.0, owner=owner)
        self.lambda_fp = check_real(lambda_fp, "lambda_fp", low=0.0, owner=owner)
        self.loss_scale = check_real(loss_scale, "loss_scale", low=0.0, low_open=True, owner=owner)
        self.feature_dropout = check_real(
            feature_dropout, "feature_dropout", low=0.0, high=1.0, high_open=True, owner=owner
        )
        self.cutmix_p = check_probability(cutmix_p, "cutmix_p", owner=owner)
        self.cutmix_area = (float(cutmix_area[0]), float(cutmix_area[1]))
        self.self_training = SelfTraining(
            pseudo_filter or PixelConfidenceFilter(threshold),
            start_step=check_count(start_step, "start_step", owner=owner),
            ramp=ramp,
            normalize="valid",
        )
        # Aligned once per step for the three streams, so kept here, not in the part.
        self.alignment = alignment
        self.weak = weak or WeakView()
        self.strong = strong or StrongView()
        self.seed = seed
        self._rng = torch.Generator().manual_seed(seed)

    @property
    def pseudo_filter(self) -> PseudoLabelFilter:
        """The filter that decides which pseudo-labels teach."""
        return self.self_training.pseudo_filter

    def setup(self, ctx: StepContext) -> None:
        require_feature_dropout(ctx.generator, "UniMatch")
        self.self_training.setup(ctx)

    def _views(
        self, images: Tensor, true: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        weak, true_weak = self.weak.transform(images, self._rng, true)
        return weak, self.strong(weak, self._rng), self.strong(weak, self._rng), true_weak

    def generator_loss(self, ctx: StepContext, image: Tensor, mask: Tensor) -> StepOutput:
        batch_u, batch_mix = ctx.next_batch("unlabelled"), ctx.next_batch("unlabelled")
        weak, s1, s2, true_w = self._views(batch_u["image"], batch_u.get("true_mask"))
        weak_m, s1_m, s2_m, true_m = self._views(batch_mix["image"], batch_mix.get("true_mask"))
        b, _, h, w = weak.shape
        box1, box2 = (
            cutmix_boxes(b, h, w, self._rng, self.cutmix_p, self.cutmix_area, weak.device)
            for _ in range(2)
        )
        g = ctx.train_generator
        with torch.no_grad(), ctx.autocast():
            g.eval()
            logits_mix = g(weak_m).float()  # the mix batch's pseudo-labels, in eval mode
            g.train()
        s1 = torch.where(box1[:, None], s1_m, s1)
        s2 = torch.where(box2[:, None], s2_m, s2)
        n = image.shape[0]
        with ctx.autocast():
            logits, logits_fp = g(torch.cat([image, weak]), feature_dropout=self.feature_dropout)
            logits_s1, logits_s2 = g(torch.cat([s1, s2])).chunk(2)
        logits_x, logits_w = logits[:n], logits[n:]
        loss_ce = ctx.supervised_loss(logits_x, mask)
        teacher_w = logits_w.detach().float()
        if self.alignment is not None:
            self.alignment.observe_labels(mask, ctx.num_classes, ctx.ignore_index)
            teacher_w, logits_mix = self.alignment(teacher_w), self.alignment(logits_mix)
        # Inside each box the mix batch's prediction is the pseudo-label.
        teacher_1 = torch.where(box1[:, None], logits_mix, teacher_w)
        teacher_2 = torch.where(box2[:, None], logits_mix, teacher_w)
        true_1 = true_2 = None
        if true_w is not None and true_m is not None:
            true_1 = torch.where(box1, true_m, true_w)
            true_2 = torch.where(box2, true_m, true_w)
        st = self.self_training
        loss_s1, _ = st(ctx, logits_s1, teacher_logits=teacher_1, true_mask=true_1)
        loss_s2, _ = st(ctx, logits_s2, teacher_logits=teacher_2, true_mask=true_2)
        # The weak view's own pseudo-labels, as the perturbed stream sees them: the
        # counts UniMatch reports as its mask ratio.
        loss_fp, logs = st(ctx, logits_fp[n:], teacher_logits=teacher_w, true_mask=true_w)
        ramped = st.weight(ctx.step)  # 1.0 without a ramp, so the weights stay exact
        loss = (
            loss_ce
            + self.lambda_strong * ramped * loss_s1
            + self.lambda_strong * ramped * loss_s2
            + self.lambda_fp * ramped * loss_fp
        ) * self.loss_scale
        logs.update(loss_st=((loss_s1 + loss_s2) / 2).detach(), loss_fp=loss_fp.detach())
        return StepOutput(loss, logs)

    def settings(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "lambda_strong": self.lambda_strong,
            "lambda_fp": self.lambda_fp,
            "loss_scale": self.loss_scale,
            "feature_dropout": self.feature_dropout,
            "cutmix_p": self.cutmix_p,
            "cutmix_area": list(self.cutmix_area),
            **self.self_training.settings(),
            "alignment": repr(self.alignment) if self.alignment is not None else None,
            "seed": self.seed,
        }

    def parts(self) -> dict[str, Any]:
        return {"weak": repr(self.weak), "strong": repr(self.strong), **self.self_training.parts()}

    def state_dict(self) -> dict[str, Any]:
        state = {"rng": self._rng.get_state(), "self_training": self.self_training.state_dict()}
        if self.alignment is not None:
            state["alignment"] = self.alignment.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any], *, models_only: bool = False) -> None:
        if models_only:
            return
        if "rng" not in state:
            raise ValueError(
                f"UniMatch needs its views' random state, which this checkpoint lacks (it was "
                f"written by another method: {sorted(state)})"
            )
        self._rng.set_state(state["rng"])
        self.self_training.load_state_dict(state.get("self_training", {}))
        if self.alignment is not None and "alignment" in state:
            self.alignment.load_state_dict(state["alignment"])
