"""The MLMT branch of S4GAN: an image-level classifier trained as a mean teacher.

Mittal, Tatarchenko and Brox, TPAMI 2019, section 3.2 ("Network-level consistency"):
a multi-label classifier predicts which classes each image contains; trained as a
mean teacher on the unlabelled images, its class scores remove, at test time, the
classes that a segmentation predicts but the image does not contain.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s4seg.checks import check_count, check_probability, check_real
from s4seg.data.views import StrongView
from s4seg.methods.base import Method, StepContext, StepOutput
from s4seg.methods.teacher import EMATeacher
from s4seg.metrics import SegmentationMetric
from s4seg.models.classifier import MultiLabelClassifier, mask_absent_classes, presence_targets
from s4seg.models.inference import predict_logits

__all__ = ["MLMT"]


class MLMT(Method):
    """Any method, plus S4GAN's MLMT classifier trained beside it.

    The wrapped method's step is unchanged: the classifier learns in :meth:`update`,
    after the generator's step, from the labelled batch and a batch of its own
    unlabelled loader (``loaders["mlmt"]``), so the segmentation network trains
    exactly as it would without the branch (tested bit for bit). Its loss is the
    original's: binary cross-entropy of each class's presence on the labelled images,
    plus ``consistency`` times ``1 - cos`` between the EMA teacher's logits on an
    unlabelled image and the student's on a strong view of it (from ``start_step`` on,
    the original's burn-in).

    At each evaluation the teacher's class scores (sigmoid ``>= presence_threshold``,
    0.2 in the original) remove the absent classes from the segmentation, and the
    record gets ``mlmt_miou`` (mIoU with the filter, next to ``miou`` without it) and
    ``mlmt_presence_accuracy`` (the share of (image, class) presence calls that are
    right).

    Args:
        method: the method to wrap (S4GAN in the paper; any works).
        classifier: default: ``MultiLabelClassifier(classifier_name, C)``.
        classifier_name: the timm model of the default classifier.
        lr: SGD learning rate of the classifier (the original's 3e-2, nesterov).
        weight_decay: of the classifier (the original's 1e-5).
        consistency: weight of the mean-teacher consistency term.
        start_step: first step with the consistency term.
        ema_decay: cap of the teacher's decay (the original's 0.999).
        presence_threshold: a class is present when its teacher probability is >= this.
        always_present: classes never removed (background).
        strong: the student's view of the unlabelled images.
        seed: seed of the views' random generator.
    """

    name = "mlmt"

    def __init__(
        self,
        method: Method,
        *,
        classifier: nn.Module | None = None,
        classifier_name: str = "resnet18",
        lr: float = 3e-2,
        weight_decay: float = 1e-5,
        consistency: float = 1.0,
        start_step: int = 0,
        ema_decay: float = 0.999,
        presence_threshold: float = 0.2,
        always_present: tuple[int, ...] = (0,),
        strong: StrongView | None = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(method, Method):
            raise TypeError(f"MLMT wraps a method (s4seg.methods), got {method!r}")
        self.method = method
        self.classifier = classifier
        self.classifier_name = classifier_name
        self.lr = check_real(lr, "lr", low=0.0, low_open=True, owner="MLMT")
        self.weight_decay = check_real(weight_decay, "weight_decay", low=0.0, owner="MLMT")
        self.consistency = check_real(consistency, "consistency", low=0.0, owner="MLMT")
        self.start_step = check_count(start_step, "start_step", owner="MLMT")
        self.ema_decay = check_real(
            ema_decay, "ema_decay", low=0.0, high=1.0, high_open=True, owner="MLMT"
        )
        self.presence_threshold = check_probability(
            presence_threshold, "presence_threshold", owner="MLMT"
        )
        self.always_present = tuple(always_present)
        self.strong = strong or StrongView()
        self.seed = seed
        self._rng = torch.Generator().manual_seed(seed)
        self.optimizer: torch.optim.Optimizer | None = None
        self.scaler: torch.amp.GradScaler | None = None
        self._teacher: EMATeacher | None = None
        self._train_classifier: nn.Module | None = None

    @property
    def loaders(self) -> tuple[str, ...]:  # type: ignore[override]
        """The wrapped method's loaders and ``"mlmt"`` (unlabelled images of its own)."""
        return (*self.method.loaders, "mlmt")

    @property
    def teacher(self) -> EMATeacher:
        """The classifier's EMA teacher (built when the Trainer sets the method up)."""
        if self._teacher is None:
            raise RuntimeError("MLMT has no teacher before a Trainer sets it up")
        return self._teacher

    def setup(self, ctx: StepContext) -> None:
        self.method.setup(ctx)
        if self.classifier is None:
            # Its random init must not move the global RNG the wrapped method draws from
            # (dropout), so that the segmentation trains as it would without the branch.
            with torch.random.fork_rng(devices=[]):
                self.classifier = MultiLabelClassifier(self.classifier_name, ctx.num_classes)
        self._train_classifier = ctx.prepare(self.classifier)
        self._teacher = EMATeacher(self.classifier, max_decay=self.ema_decay)
        self._teacher.to(ctx.device)
        self.optimizer = torch.optim.SGD(
            self.classifier.parameters(),
            lr=self.lr,
            momentum=0.9,
            nesterov=True,
            weight_decay=self.weight_decay,
        )
        self.scaler = ctx.grad_scaler()

    def generator_loss(self, ctx: StepContext, image: Tensor, mask: Tensor) -> StepOutput:
        inner = self.method.generator_loss(ctx, image, mask)
        return StepOutput(inner.loss, inner.logs, carry=(inner, image, mask))

    def update(self, ctx: StepContext, output: StepOutput) -> dict[str, Any]:
        inner, image, mask = output.carry
        logs = self.method.update(ctx, inner)
        assert self._train_classifier is not None and self.optimizer is not None
        assert self.scaler is not None
        unlabelled = ctx.next_batch("mlmt")["image"]
        student = self._train_classifier
        student.train()
        with ctx.autocast():
            target = presence_targets(mask, ctx.num_classes, ctx.ignore_index)
            loss_cls = F.binary_cross_entropy_with_logits(student(image).float(), target)
            loss = loss_cls
            if ctx.step >= self.start_step and self.consistency > 0:
                teacher_logits = self.teacher(unlabelled).float()
                student_logits = student(self.strong(unlabelled, self._rng)).float()
                cos = F.cosine_similarity(student_logits, teacher_logits, dim=1)
                loss_cons = (1.0 - cos).mean()
                loss = loss_cls + self.consistency * loss_cons
                logs["loss_mlmt_cons"] = loss_cons.detach()
        ctx.optimise(loss, self.optimizer, student, self.scaler)
        self.teacher.update(self.classifier, ctx.step)  # type: ignore[arg-type]
        logs["loss_mlmt_cls"] = loss_cls.detach()
        return logs

    @torch.no_grad()
    def presence(self, images: Tensor) -> Tensor:
        """The teacher's class-presence calls, (B, C) bool."""
        return torch.sigmoid(self.teacher(images).float()) >= self.presence_threshold

    def diagnose(self, ctx: StepContext) -> dict[str, float]:
        out = dict(self.method.diagnose(ctx))
        if ctx.val_loader is None:
            return out
        metric = SegmentationMetric(ctx.num_classes, ctx.ignore_index)
        right = total = 0
        # Iterating a DataLoader draws from the global RNG: fork it, so that measuring
        # leaves the training itself unchanged.
        cuda = [ctx.device] if ctx.device.type == "cuda" else []
        was_training = ctx.generator.training
        ctx.generator.eval()
        with torch.random.fork_rng(devices=cuda), torch.no_grad():
            for batch in ctx.val_loader:
                image, mask = batch["image"].to(ctx.device), batch["mask"].to(ctx.device)
                present = self.presence(image)
                logits = predict_logits(ctx.generator, image).float()
                metric.update(mask_absent_classes(logits, present, self.always_present), mask)
                truth = presence_targets(mask, ctx.num_classes, ctx.ignore_index).bool()
                right += int((present == truth).sum())
                total += truth.numel()
        ctx.generator.train(was_training)
        out["mlmt_miou"] = metric.compute()["miou"]
        out["mlmt_presence_accuracy"] = right / max(total, 1)
        return out

    def modules(self) -> dict[str, nn.Module]:
        out = dict(self.method.modules())
        if self.classifier is not None and self._teacher is not None:
            out.update(mlmt_classifier=self.classifier, mlmt_teacher=self._teacher.model)
        return out

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        out = dict(self.method.optimizers())
        if self.optimizer is not None:
            out["mlmt"] = self.optimizer
        return out

    def settings(self) -> dict[str, Any]:
        return {
            **self.method.settings(),
            "mlmt_method": self.method.name,
            "mlmt_lr": self.lr,
            "mlmt_weight_decay": self.weight_decay,
            "mlmt_consistency": self.consistency,
            "mlmt_start_step": self.start_step,
            "mlmt_ema_decay": self.ema_decay,
            "mlmt_presence_threshold": self.presence_threshold,
            "mlmt_always_present": list(self.always_present),
            "mlmt_seed": self.seed,
        }

    def parts(self) -> dict[str, Any]:
        return {
            **self.method.parts(),
            "mlmt_classifier": repr(self.classifier) if self.classifier is not None else None,
            "mlmt_strong": repr(self.strong),
        }

    def state_dict(self) -> dict[str, Any]:
        assert self.classifier is not None and self.optimizer is not None
        assert self.scaler is not None
        return {
            "method": self.method.state_dict(),
            "classifier": self.classifier.state_dict(),
            "teacher": self.teacher.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": self._rng.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any], *, models_only: bool = False) -> None:
        if "classifier" not in state:
            raise ValueError(
                f"MLMT needs its classifier's weights, which this checkpoint lacks (it was "
                f"written by another method: {sorted(state)})"
            )
        assert self.classifier is not None and self.optimizer is not None
        assert self.scaler is not None
        self.method.load_state_dict(state["method"], models_only=models_only)
        self.classifier.load_state_dict(state["classifier"])
        self.teacher.load_state_dict(state["teacher"])
        if models_only:
            return
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self._rng.set_state(state["rng"])

    def __repr__(self) -> str:
        return f"MLMT({self.method!r}, classifier_name={self.classifier_name!r})"
