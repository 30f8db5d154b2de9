"""Validation monitors: val mIoU falling from its best, train far above val."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from s4seg.doctor.findings import Finding
from s4seg.doctor.records import (
    Record,
    eval_records,
    fixed,
    number_at,
    numbers_of,
    runs_where,
    share_kept,
    sureness,
    total_of,
    train_records,
)
from s4seg.doctor.remedies import (
    restore_remedy,
)

__all__ = ["Overfitting", "ValMiouFalling"]


@dataclass(frozen=True)
class ValMiouFalling:
    """Validation mIoU fell from its best by more than ``min_drop`` for ``evals`` evals.

    Args:
        min_drop: drop below the best (absolute mIoU) that counts.
        evals: consecutive evaluations below ``best - min_drop``.
    """

    min_drop: float = 0.02
    evals: int = 2
    code: ClassVar[str] = "val_miou_falling"

    def check(self, history: Sequence[Record]) -> list[Finding]:
        evals = [e for e in eval_records(history) if number_at(e, "miou") is not None]
        findings: list[Finding] = []
        best: Record | None = None
        below: list[Record] = []
        for e in evals:
            if best is None or e["miou"] > best["miou"]:
                self._emit(history, best, below, findings)
                best, below = e, []
            elif e["miou"] < best["miou"] - self.min_drop:
                below.append(e)
            else:
                self._emit(history, best, below, findings)
                below = []
        self._emit(history, best, below, findings)
        return findings

    def _emit(
        self,
        history: Sequence[Record],
        best: Record | None,
        below: list[Record],
        findings: list[Finding],
    ) -> None:
        if best is None or len(below) < self.evals:
            return
        drops = ", ".join(
            f"{e['miou']:.4f} at step {e['step']} ({e['miou'] - best['miou']:+.4f})" for e in below
        )
        seen = (
            f"val mIoU was best at step {best['step']} ({best['miou']:.4f}); since then "
            f"{drops}: {len(below)} evaluations more than {self.min_drop} below the best."
        )
        trains = train_records(history)
        pre = [r for r in trains if r["step"] <= best["step"]][-5:]
        post = [r for r in trains if best["step"] < r["step"] <= below[-1]["step"]][-5:]
        clues = []
        if pre and post:
            if total_of(pre, "st_images_total") and total_of(post, "st_images_total"):
                clues.append(
                    f"pseudo-labels kept: {share_kept(pre)} in the windows up to the best, "
                    f"{share_kept(post)} in the last windows"
                )
            d_pre, d_post = numbers_of(pre, "loss_d"), numbers_of(post, "loss_d")
            if d_pre and d_post:
                clues.append(f"loss_d {fixed(d_pre[-1])} at the best, {fixed(d_post[-1])} now")
            t_pre, t_post = numbers_of(pre, "train_miou"), numbers_of(post, "train_miou")
            if t_pre and t_post:
                clues.append(f"train mIoU {fixed(t_pre[-1])} then, {fixed(t_post[-1])} now")
        cause = (
            "Over the same steps: " + "; ".join(clues) + ". "
            if clues
            else "No other signal was logged for these steps. "
        ) + (
            "Training after the best step made the model worse; see the other findings for "
            "steps that overlap (a starving or dominant discriminator, overfitting)."
        )
        findings.append(
            Finding(
                code=self.code,
                severity="critical",
                title="validation mIoU falling from its best",
                seen=seen,
                cause=cause,
                remedies=[
                    f"trainer.restore_best(): go back to step {best['step']} "
                    f"(val mIoU {best['miou']:.4f})",
                    f"TrainerConfig(early_stop_patience={self.evals + 1}): stop after "
                    f"{self.evals + 1} evaluations without a new best",
                    "Doctor(rollback=True): restore the best checkpoint during the run and "
                    "continue with a 10x slower discriminator",
                ],
                first_step=below[0]["step"],
                last_step=below[-1]["step"],
                evidence={
                    "best_miou": best["miou"],
                    "best_step": best["step"],
                    "last_miou": below[-1]["miou"],
                },
                confidence=sureness(
                    "high" if len(below) >= 3 else "medium",
                    f"{len(below)} evaluations in a row more than {self.min_drop} below the "
                    f"best; one evaluation of a small validation set moves by chance",
                ),
            )
        )


@dataclass(frozen=True)
class Overfitting:
    """Train mIoU above val mIoU by more than ``max_gap`` for ``evals`` evaluations.

    The train mIoU of an evaluation is the mean of the train records since the
    previous evaluation (each is the mIoU of the labelled batches of its window).

    Args:
        max_gap: train - val mIoU above this counts.
        evals: consecutive evaluations with such a gap.
    """

    max_gap: float = 0.15
    evals: int = 1
    code: ClassVar[str] = "overfitting"

    def check(self, history: Sequence[Record]) -> list[Finding]:
        trains = train_records(history)
        gaps: list[tuple[Record, float, float]] = []
        prev = -math.inf
        for e in eval_records(history):
            window = numbers_of([r for r in trains if prev < r["step"] <= e["step"]], "train_miou")
            prev = e["step"]
            if window and number_at(e, "miou") is not None:
                gaps.append((e, statistics.fmean(window), e["miou"]))
        findings = []
        for i, j in runs_where(gaps, lambda g: g[1] - g[2] > self.max_gap):
            if j - i < self.evals:
                continue
            run = gaps[i:j]
            detail = ", ".join(
                f"step {e['step']}: train {t:.4f} vs val {v:.4f} (gap {t - v:.4f})"
                for e, t, v in run
            )
            findings.append(
                Finding(
                    code=self.code,
                    severity="warning",
                    title=f"train mIoU exceeds val mIoU by more than {self.max_gap}",
                    seen=f"{detail}.",
                    cause=(
                        "The model fits the few labelled images much better than unseen ones; "
                        "the labelled set is small for this model, or augmentation is too weak."
                    ),
                    remedies=[
                        "Augmented(labelled, Compose([RandomScale(0.5, 1.5), RandomCrop(size), "
                        "RandomHorizontalFlip()])): stronger augmentation of the labelled images",
                        "TrainerConfig(weight_decay=1e-3): stronger weight decay (S4GAN: 5e-4)",
                        "TrainerConfig(early_stop_patience=3): stop when val mIoU stops improving",
                        *restore_remedy(history)[:1],
                    ],
                    first_step=run[0][0]["step"],
                    last_step=run[-1][0]["step"],
                    evidence={"max_gap_seen": max(t - v for _, t, v in run)},
                    confidence=sureness(
                        "high" if j - i >= 3 else "medium" if j - i >= 2 else "low",
                        f"{j - i} evaluation(s) in a row; train mIoU is measured on the "
                        f"labelled batches in train mode, so a single gap can be noise",
                    ),
                )
            )
        return findings
