"""Self-training on an EMA teacher's pseudo-labels: mean teacher and FixMatch-style views."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from s4seg.checks import check_real
from s4seg.data.views import Views, WeakStrongViews
from s4seg.filters import DistributionAlignment, PixelConfidenceFilter, PseudoLabelFilter
from s4seg.methods.base import Method, StepContext, StepOutput, require_feature_dropout
from s4seg.methods.self_training import SelfTraining
from s4seg.methods.teacher import EMATeacher
from s4seg.metrics import SegmentationMetric
from s4seg.schedules import Schedule

__all__ = ["FixMatch", "MeanTeacher"]


class MeanTeacher(Method):
    """Self-training of the student on an EMA teacher's confident pseudo-labels.

    Each step the teacher (an :class:`~s4seg.methods.teacher.EMATeacher` of the
    generator, in eval mode) predicts the unlabelled batch; the filter (default
    :class:`~s4seg.filters.PixelConfidenceFilter` at ``threshold``) decides which of
    its pseudo-labels teach; the student's loss on them goes through the fused op with
    ``teacher_logits``; after the generator's step the teacher moves towards the
    student. The generator's loss is ``CE + lambda_st * ST``.

    Without ``views`` the teacher and the student see the same batch (the loader's
    augmentation), which is the mean teacher (Tarvainen and Valpola, NeurIPS 2017)
    with hard, thresholded targets, as segmentation codebases use it. With
    :class:`~s4seg.data.views.WeakStrongViews` the teacher sees a weak view and the
    student a strong one of the same geometry, CutMix included: see :class:`FixMatch`.

    Args:
        threshold: the default filter's threshold on the teacher's max softmax
            probability.
        pseudo_filter: default: ``PixelConfidenceFilter(threshold)``.
        lambda_st: weight of self-training.
        start_step: no self-training before this step (the student learns from the
            labels first, so the teacher has something to teach).
        ramp: a schedule in [0, 1] of the steps since ``start_step`` that multiplies
            ``lambda_st`` (see :class:`~s4seg.methods.self_training.SelfTraining`).
        normalize: how the self-training loss is averaged (see
            :class:`~s4seg.methods.self_training.SelfTraining`).
        decay: EMA decay of the teacher (None: ``min(1 - 1/(t+1), max_decay)``).
        max_decay: cap of that decay ramp.
        views: weak/strong views of the unlabelled batch, made on the device.
        seed: seed of the views' random generator (its state is checkpointed).
        alignment: distribution alignment of the pseudo-labels (see
            :class:`~s4seg.filters.DistributionAlignment`; None: off).
        feature_dropout: if given, UniMatch's feature perturbation as a second student
            stream: the student also decodes the teacher's input (with ``views``, CutMixed
            as the strong view) after channel dropout with this probability, and learns
            the same pseudo-labels there. The self-training term is then the mean over
            the two streams (UniMatch splits its unlabelled weight half and half too), and
            its pixel counts cover both streams, each pixel twice. None: off.
    """

    name = "mean_teacher"
    loaders = ("unlabelled",)

    def __init__(
        self,
        *,
        threshold: float = 0.9,
        pseudo_filter: PseudoLabelFilter | None = None,
        lambda_st: float = 1.0,
        start_step: int = 0,
        ramp: Schedule | None = None,
        normalize: str = "selected",
        decay: float | Schedule | None = None,
        max_decay: float = 0.999,
        views: WeakStrongViews | None = None,
        seed: int = 0,
        alignment: DistributionAlignment | None = None,
        feature_dropout: float | None = None,
    ) -> None:
        owner = type(self).__name__
        self.threshold = check_real(threshold, "threshold", low=0.0, high=1.0, owner=owner)
        self.feature_dropout = feature_dropout
        if feature_dropout is not None:
            self.feature_dropout = check_real(
                feature_dropout, "feature_dropout", low=0.0, high=1.0, high_open=True, owner=owner
            )
        self.self_training = SelfTraining(
            pseudo_filter or PixelConfidenceFilter(threshold),
            lambda_st=lambda_st,
            start_step=start_step,
            ramp=ramp,
            normalize=normalize,
            alignment=alignment,
        )
        self.decay, self.max_decay = decay, max_decay
        if views is not None and not isinstance(views, WeakStrongViews):
            raise TypeError(f"views must be a WeakStrongViews or None, got {views!r}")
        self.views = views
        self.seed = seed
        self._rng = torch.Generator().manual_seed(seed)
        self._teacher: EMATeacher | None = None

    @property
    def pseudo_filter(self) -> PseudoLabelFilter:
        """The filter that decides which pseudo-labels teach."""
        return self.self_training.pseudo_filter

    @property
    def teacher(self) -> EMATeacher:
        """The EMA teacher; built from the generator when the Trainer sets the method up."""
        if self._teacher is None:
            raise RuntimeError(
                f"{type(self).__name__} has no teacher before a Trainer sets it up; pass the "
                f"method to Trainer(method=...)"
            )
        return self._teacher

    def setup(self, ctx: StepContext) -> None:
        if self.feature_dropout is not None:
            require_feature_dropout(ctx.generator, type(self).__name__)
        self._teacher = EMATeacher(ctx.generator, self.decay, self.max_decay)
        self.self_training.setup(ctx)

    def generator_loss(self, ctx: StepContext, image: Tensor, mask: Tensor) -> StepOutput:
        loss_ce, _ = self.labelled_loss(ctx, image, mask)
        self.self_training.observe_labels(ctx, mask)
        batch_u = ctx.next_batch("unlabelled")
        img_u, true_u = batch_u["image"], batch_u.get("true_mask")
        student_in = teacher_in = img_u
        views: Views | None = None
        if self.views is not None:
            views = self.views(img_u, self._rng, true_u)
            teacher_in, student_in = views.weak, views.strong
        with torch.no_grad(), ctx.autocast():
            teacher_logits = self.teacher(teacher_in).float()
        if views is not None:
            # The teacher's logits are mixed with the same boxes as the images, so the
            # pseudo-labels and their confidences travel with the pixels they describe.
            (teacher_logits,) = views.mix(teacher_logits)
            if views.true_mask is not None:
                (true_u,) = views.mix(views.true_mask)
        with ctx.autocast():
            student_logits = ctx.train_generator(student_in)
        if self.feature_dropout is not None:
            # One call for both streams: the filter decides once and the alignment moves
            # once per step, as in UniMatch, where all its streams share one alignment.
            perturbed_in = views.mix(views.weak)[0] if views is not None else teacher_in
            with ctx.autocast():
                _, perturbed = ctx.train_generator(
                    perturbed_in, feature_dropout=self.feature_dropout
                )
            student_logits = torch.cat([student_logits, perturbed])
            teacher_logits = torch.cat([teacher_logits, teacher_logits])
            if true_u is not None:
                true_u = torch.cat([true_u, true_u])
        loss_st, logs = self.self_training(
            ctx, student_logits, teacher_logits=teacher_logits, true_mask=true_u
        )
        return StepOutput(loss_ce + self.self_training.weight(ctx.step) * loss_st, logs)

    def update(self, ctx: StepContext, output: StepOutput) -> dict[str, Any]:
        self.teacher.update(ctx.generator, ctx.step)
        return {}

    def diagnose(self, ctx: StepContext) -> dict[str, float]:
        """``teacher_miou``: the teacher's val mIoU, beside the student's ``miou``."""
        if ctx.val_loader is None or self._teacher is None:
            return {}
        metric = SegmentationMetric(ctx.num_classes, ctx.ignore_index)
        # Iterating a DataLoader draws from the global RNG: fork it, so that measuring
        # leaves the training itself unchanged.
        cuda = [ctx.device] if ctx.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), torch.no_grad():
            for batch in ctx.val_loader:
                image = batch["image"].to(ctx.device)
                metric.update(self.teacher(image).float(), batch["mask"].to(ctx.device))
        return {"teacher_miou": metric.compute()["miou"]}

    def modules(self) -> dict[str, nn.Module]:
        return {"teacher": self.teacher.model} if self._teacher is not None else {}

    def settings(self) -> dict[str, Any]:
        settings = {
            "threshold": self.threshold,
            **self.self_training.settings(),
            "decay": repr(self.decay) if self.decay is not None else None,
            "max_decay": self.max_decay,
            "seed": self.seed,
        }
        if self.feature_dropout is not None:  # absent when off: older checkpoints resume
            settings["feature_dropout"] = self.feature_dropout
        return settings

    def parts(self) -> dict[str, Any]:
        return {"views": repr(self.views), **self.self_training.parts()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "teacher": self.teacher.state_dict(),
            "rng": self._rng.get_state(),
            "self_training": self.self_training.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any], *, models_only: bool = False) -> None:
        if "teacher" not in state:
            raise ValueError(
                f"{type(self).__name__} needs its teacher's weights, which this checkpoint "
                f"lacks (it was written by another method: {sorted(state)})"
            )
        self.teacher.load_state_dict(state["teacher"])
        if models_only:
            return
        self._rng.set_state(state["rng"])
        self.self_training.load_state_dict(state.get("self_training", {}))


class FixMatch(MeanTeacher):
    """FixMatch-style: EMA teacher on a weak view, student on a strong view with CutMix.

    :class:`MeanTeacher` with :class:`~s4seg.data.views.WeakStrongViews` by default:
    the weak view (flip, scale-crop) goes to the teacher, the strong view of the same
    geometry (colour jitter, grayscale, blur, CutMix) to the student, and the
    teacher's logits are CutMixed with the images. FixMatch (Sohn et al., NeurIPS
    2020) took pseudo-labels from the student itself; an EMA teacher gives steadier
    targets. :class:`~s4seg.methods.UniMatch` is the student-as-teacher variant.
    """

    name = "fixmatch"

    def __init__(
        self, *, views: WeakStrongViews | None = None, normalize: str = "valid", **kwargs: Any
    ) -> None:
        """Args: as :class:`MeanTeacher`; ``views`` default to ``WeakStrongViews()``, and
        the loss is divided by all valid pixels (``normalize="valid"``), as UniMatch's
        ``fixmatch.py`` does, so that a few kept pixels weigh little."""
        super().__init__(
            views=views if views is not None else WeakStrongViews(), normalize=normalize, **kwargs
        )
