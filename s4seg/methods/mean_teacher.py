"""Self-training on an EMA teacher's pseudo-labels: mean teacher and FixMatch-style views."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from s4seg.data.views import Views, WeakStrongViews
from s4seg.filters import PixelConfidenceFilter, PseudoLabelFilter
from s4seg.methods.base import Method
from s4seg.ops.stats import PseudoLabelStats
from s4seg.schedules import Schedule
from s4seg.methods.teacher import EMATeacher

if TYPE_CHECKING:
    from s4seg.training.trainer import Trainer

__all__ = ["FixMatch", "MeanTeacher"]


class MeanTeacher(Method):
    """Self-training of the student on an EMA teacher's confident pseudo-labels.

    Each step the teacher (an :class:`~s4seg.methods.teacher.EMATeacher` of the generator,
    in eval mode) predicts the unlabelled batch; the filter (default
    :class:`~s4seg.filters.PixelConfidenceFilter` at ``tau``) decides which of its
    pseudo-labels teach; the student's loss on them goes through the fused op with
    ``teacher_logits``; after both updates the teacher moves towards the student.
    The generator's loss is ``CE + lambda_st * ST`` (``TrainerConfig.lambda_st``).

    Without ``views`` the teacher and the student see the same batch (the loader's
    augmentation), which is the mean teacher (Tarvainen and Valpola, NeurIPS 2017)
    with hard, thresholded targets, as segmentation codebases use it. With
    :class:`~s4seg.data.views.WeakStrongViews` the teacher sees a weak view and the
    student a strong one of the same geometry, CutMix included: see
    :class:`FixMatch`.

    Args:
        tau: the default filter's threshold on the teacher's max softmax probability.
        decay: EMA decay of the teacher (None: ``min(1 - 1/(t+1), max_decay)``).
        max_decay: cap of that warm-up rule.
        views: weak/strong views of the unlabelled batch, made on the device.
        start_step: no self-training before this step (the student learns from the
            labels first, so the teacher has something to teach).
        seed: seed of the views' random generator (its state is checkpointed).
    """

    name = "mean_teacher"
    loaders = ("unlabelled",)

    def __init__(
        self,
        *,
        tau: float = 0.9,
        decay: float | Schedule | None = None,
        max_decay: float = 0.999,
        views: WeakStrongViews | None = None,
        start_step: int = 0,
        seed: int = 0,
    ) -> None:
        if start_step < 0:
            raise ValueError(f"{type(self).__name__} start_step must be >= 0, got {start_step}")
        self.tau, self.decay, self.max_decay = tau, decay, max_decay
        self.views = views
        if views is not None and not isinstance(views, WeakStrongViews):
            raise TypeError(f"views must be a WeakStrongViews or None, got {views!r}")
        self.start_step, self.seed = int(start_step), seed
        self._rng = torch.Generator().manual_seed(seed)
        self._teacher: EMATeacher | None = None

    def default_filter(self) -> PseudoLabelFilter:
        return PixelConfidenceFilter(self.tau)

    @property
    def teacher(self) -> EMATeacher:
        """The EMA teacher; built from the generator when the Trainer sets the method up."""
        if self._teacher is None:
            raise RuntimeError(
                f"{type(self).__name__} has no teacher before a Trainer sets it up; pass the "
                f"method to Trainer(method=...)"
            )
        return self._teacher

    def setup(self, trainer: Trainer) -> None:
        self._teacher = EMATeacher(trainer.generator, self.decay, self.max_decay)

    def generator_loss(
        self, trainer: Trainer, loss_ce: Tensor, image: Tensor, mask: Tensor, logits: Tensor
    ) -> tuple[Tensor, dict[str, Any]]:
        img_u = trainer._to_device(trainer._next("unlabelled")["image"])
        student_in = teacher_in = img_u
        views: Views | None = None
        if self.views is not None:
            views = self.views(img_u, self._rng)
            teacher_in, student_in = views.weak, views.strong
        with torch.no_grad(), trainer._autocast():
            teacher_logits = self.teacher(teacher_in).float()
        if views is not None:
            # The teacher's logits are mixed with the same boxes as the images, so the
            # pseudo-labels and their confidences travel with the pixels they describe.
            (teacher_logits,) = views.mix(teacher_logits)
        with trainer._autocast():
            student_logits = trainer._g(student_in)
        step = trainer.step
        if step >= self.start_step:
            decision = self.pseudo_filter(trainer).decide(
                logits=teacher_logits, d_prob=None, step=step
            )
            loss_st, stats = trainer.st(student_logits, decision, teacher_logits=teacher_logits)
            out: dict[str, Any] = {"pixel_threshold": decision.pixel_threshold.float().mean()}
        else:
            loss_st = student_logits.new_zeros((), dtype=torch.float32)
            stats = PseudoLabelStats.from_mask(
                torch.zeros_like(student_logits[:, 0], dtype=torch.bool)
            )
            out = {}
        out.update(loss_st=loss_st.detach(), stats=stats)
        return loss_ce + trainer.config.lambda_st * loss_st, out

    def after_step(self, trainer: Trainer) -> None:
        self.teacher.update(trainer.generator, trainer.step)

    def state_dict(self) -> dict[str, Any]:
        return {"teacher": self.teacher.state_dict(), "rng": self._rng.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "teacher" not in state:
            raise ValueError(
                f"{type(self).__name__} needs its teacher's weights, which this checkpoint "
                f"lacks (it was written by another method: {sorted(state)})"
            )
        self.teacher.load_state_dict(state["teacher"])
        self._rng.set_state(state["rng"])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(tau={self.tau}, decay={self.decay!r}, max_decay="
            f"{self.max_decay}, views={self.views!r}, start_step={self.start_step})"
        )


class FixMatch(MeanTeacher):
    """FixMatch/UniMatch-style: EMA teacher on a weak view, student on a strong view.

    :class:`MeanTeacher` with :class:`~s4seg.data.views.WeakStrongViews` by default:
    the weak view (flip, scale-crop) goes to the teacher, the strong view of the
    same geometry (colour jitter, grayscale, blur, CutMix) to the student, and the
    teacher's logits are CutMixed with the images. FixMatch (Sohn et al., NeurIPS
    2020) took pseudo-labels from the student itself; an EMA teacher, as in
    UniMatch-style segmentation code, gives steadier targets.
    """

    name = "fixmatch"

    def __init__(self, *, views: WeakStrongViews | None = None, **kwargs: Any) -> None:
        """Args: as :class:`MeanTeacher`; ``views`` default to ``WeakStrongViews()``."""
        super().__init__(views=views if views is not None else WeakStrongViews(), **kwargs)
