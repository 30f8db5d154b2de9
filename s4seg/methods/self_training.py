"""The self-training part that methods compose: a filter, the loss, when it starts, its weight."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from s4seg.checks import check_count, check_real
from s4seg.filters import DistributionAlignment, FilterDecision, PseudoLabelFilter
from s4seg.filters.base import pseudo_label_selection
from s4seg.losses import SelfTrainingLoss
from s4seg.methods.base import StepContext
from s4seg.ops import PseudoLabelStats
from s4seg.ops.reference import NORMALIZATIONS
from s4seg.schedules import Schedule

__all__ = ["SelfTraining"]


class SelfTraining:
    """Self-training on the pseudo-labels a filter keeps, from ``start_step`` on.

    S4GAN (on its own predictions, gated by its discriminator), AdvSemiSeg (on its
    own predictions, where the discriminator's map trusts them), the mean teacher,
    FixMatch and UniMatch (on a teacher's or the weak view's predictions) all have
    this term; each composes one of these.

    Before ``start_step`` the loss is 0 and nothing is counted as kept, without
    asking the filter. From then on the filter decides on the logits that make the
    pseudo-labels (a teacher's, when given), and
    :class:`~s4seg.losses.SelfTrainingLoss` computes the loss on the student's
    logits through the fused op.

    When the unlabelled batch carries its true masks (``Unlabelled(...,
    keep_masks=True)``, a benchmark or a research split), the part also counts how many
    of the kept pseudo-labels are right: ``st_pixels_correct`` overall,
    ``st_object_pixels_kept`` / ``st_object_pixels_correct`` on pixels whose true class
    is not ``background_index``, and per pseudo-label class ``st_class_pixels_kept`` /
    ``st_class_pixels_correct``. The log window turns them into ``st_kept_accuracy`` and
    ``st_object_kept_accuracy``. The masks never reach the loss.

    Args:
        pseudo_filter: decides which images and pixels teach.
        lambda_st: the weight of the term in the generator's loss (the method applies
            :meth:`weight`).
        start_step: the first step with self-training.
        ramp: a schedule in [0, 1] of the steps since ``start_step`` that multiplies
            ``lambda_st`` (None: the full weight at once). ``schedules.Cosine(0, 1,
            steps=n)`` is the mean teacher's ramp-up: a student that has learnt from
            labels alone is not hit by a full-weight term on its first pseudo-labels.
        normalize: divide the summed loss by the ``"selected"`` pixels (S4GAN), the
            ``"valid"`` pixels (UniMatch and its FixMatch) or ``"all"`` pixels.
        background_index: the class that is not an object, for the object-pixel
            accuracy (None: no object accuracy).
        alignment: a :class:`~s4seg.filters.DistributionAlignment` that shifts the
            pseudo-labels' class probabilities towards the labelled class mix before
            the filter decides (None: off). The methods feed it their labelled masks.
    """

    def __init__(
        self,
        pseudo_filter: PseudoLabelFilter,
        *,
        lambda_st: float = 1.0,
        start_step: int = 0,
        ramp: Schedule | None = None,
        normalize: str = "selected",
        background_index: int | None = 0,
        alignment: DistributionAlignment | None = None,
    ) -> None:
        if not callable(getattr(pseudo_filter, "decide", None)):
            raise TypeError(
                f"pseudo_filter must be a filter with a decide() method (s4seg.filters), got "
                f"{pseudo_filter!r}"
            )
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        self.pseudo_filter = pseudo_filter
        self.lambda_st = check_real(lambda_st, "lambda_st", low=0.0, hint="0 turns it off")
        self.start_step = check_count(start_step, "start_step")
        if ramp is not None and not callable(ramp):
            raise TypeError(f"ramp must be a Schedule (s4seg.schedules) or None, got {ramp!r}")
        self.ramp = ramp
        self.normalize = normalize
        self.background_index = background_index
        self.alignment = alignment
        self.loss: SelfTrainingLoss | None = None

    def setup(self, ctx: StepContext) -> None:
        """Build the loss with the run's ignore index."""
        self.loss = SelfTrainingLoss(ctx.ignore_index, normalize=self.normalize)

    def observe_labels(self, ctx: StepContext, mask: Tensor) -> None:
        """A labelled batch's masks: the class mix that alignment aims at."""
        if self.alignment is not None:
            self.alignment.observe_labels(mask, ctx.num_classes, ctx.ignore_index)

    def active(self, step: int) -> bool:
        """Whether self-training runs at ``step``."""
        return step >= self.start_step

    def weight(self, step: int) -> float:
        """The term's weight at ``step``: ``lambda_st``, times the ramp once active."""
        if self.ramp is None or not self.active(step):
            return self.lambda_st
        factor = float(self.ramp(step - self.start_step))
        if not 0.0 <= factor <= 1.0:  # also rejects NaN
            raise ValueError(
                f"ramp gave {factor} at step {step}; a ramp multiplies lambda_st and must stay "
                f"in [0, 1]"
            )
        return self.lambda_st * factor

    def __call__(
        self,
        ctx: StepContext,
        logits: Tensor,
        *,
        teacher_logits: Tensor | None = None,
        image_scores: Tensor | None = None,
        pixel_scores: Tensor | None = None,
        true_mask: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Any]]:
        """The unweighted loss and its log values (``loss_st``, the counts, thresholds).

        Args:
            ctx: the step context.
            logits: the student's logits; the only input that gets a gradient.
            teacher_logits: logits that make the pseudo-labels instead (no gradient).
            image_scores: one score per image for an image gate (D's probability).
            pixel_scores: one score per pixel for a pixel-mask filter (D's map).
            true_mask: the true labels of the pixels the pseudo-labels describe, only
                to measure them (never a target).

        Shape:
            logits, teacher_logits: (B, C, H, W). image_scores: (B,).
            pixel_scores, true_mask: (B, H, W).
        """
        if self.loss is None:
            raise RuntimeError("SelfTraining.setup(ctx) must run before the first step")
        logs: dict[str, Any] = {}
        if not self.active(ctx.step):
            loss = logits.new_zeros((), dtype=torch.float32)
            stats = PseudoLabelStats.from_mask(torch.zeros_like(logits[:, 0], dtype=torch.bool))
        else:
            source = teacher_logits if teacher_logits is not None else logits.detach()
            if self.alignment is not None:
                # The aligned probabilities make the pseudo-labels and their confidence.
                source = teacher_logits = self.alignment(source)
            decision = self.pseudo_filter.decide(
                logits=source, step=ctx.step, image_scores=image_scores, pixel_scores=pixel_scores
            )
            loss, stats = self.loss(logits, decision, teacher_logits=teacher_logits)
            if true_mask is not None:
                logs.update(self._correctness(ctx, decision, source, true_mask))
            if decision.image_threshold is not None:  # an image gate decided
                logs["gate_threshold"] = decision.image_threshold
                logs["gate_images_passed"] = decision.image_keep.sum()
                logs["gate_images_total"] = decision.image_keep.numel()
            logs["pixel_threshold"] = decision.pixel_threshold.float().mean()
        if self.ramp is not None:
            logs["st_weight"] = self.weight(ctx.step)
        logs.update(loss_st=loss.detach(), stats=stats)
        return loss, logs

    @torch.no_grad()
    def _correctness(
        self, ctx: StepContext, decision: FilterDecision, source: Tensor, true_mask: Tensor
    ) -> dict[str, Tensor]:
        """Counts of kept pseudo-labels that equal the true label (tensors, no host sync)."""
        if true_mask.shape != source.shape[:1] + source.shape[2:]:
            raise ValueError(
                f"true_mask has shape {tuple(true_mask.shape)} but the pseudo-labels are "
                f"{tuple(source.shape[:1] + source.shape[2:])}: transform it with the images"
            )
        pseudo, selected = pseudo_label_selection(decision, source, ignore_index=ctx.ignore_index)
        true = true_mask.to(pseudo.device).long()
        selected = selected & (true != ctx.ignore_index)
        correct = selected & (pseudo == true)
        c = source.shape[1]
        cls = pseudo.clamp(0, c - 1)
        out = {
            "st_pixels_correct": correct.sum(),
            "st_class_pixels_kept": torch.bincount(cls[selected], minlength=c),
            "st_class_pixels_correct": torch.bincount(cls[correct], minlength=c),
        }
        if self.background_index is not None:
            obj = true != self.background_index
            out["st_object_pixels_kept"] = (selected & obj).sum()
            out["st_object_pixels_correct"] = (correct & obj).sum()
        return out

    def settings(self) -> dict[str, Any]:
        """The part's settings, for config.json."""
        return {
            "lambda_st": self.lambda_st,
            "start_step": self.start_step,
            "ramp": repr(self.ramp) if self.ramp is not None else None,
            "normalize": self.normalize,
            "background_index": self.background_index,
            "alignment": repr(self.alignment) if self.alignment is not None else None,
        }

    def parts(self) -> dict[str, Any]:
        """The filter's repr and what it thresholds, in which unit."""
        return {
            "pseudo_filter": repr(self.pseudo_filter),
            "pseudo_filter_thresholds": getattr(self.pseudo_filter, "thresholds", None),
        }

    def state_dict(self) -> dict[str, Any]:
        """The filter's state (adaptive thresholds) and the alignment's, if any."""
        state = getattr(self.pseudo_filter, "state_dict", None)
        out = {"filter": state()} if callable(state) else {}
        if self.alignment is not None:
            out["alignment"] = self.alignment.state_dict()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        if "filter" in state:
            self.pseudo_filter.load_state_dict(state["filter"])  # type: ignore[attr-defined]
        if self.alignment is not None and "alignment" in state:
            self.alignment.load_state_dict(state["alignment"])
