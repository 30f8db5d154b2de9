"""Discriminator monitors: it wins, it learns nothing, or it judges softness, not correctness."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from s4seg.doctor.findings import Finding
from s4seg.doctor.records import (
    LN2,
    Record,
    bridge_runs,
    eval_records,
    fixed,
    has_gate,
    median_of,
    method_class,
    method_settings,
    number_at,
    numbers_of,
    runs_where,
    share_kept,
    short,
    sureness,
    train_records,
    window_start,
    windows_sureness,
)
from s4seg.doctor.remedies import (
    discriminator_remedies,
    gate_repr,
)

__all__ = ["DiscriminatorCollapsed", "DiscriminatorDominant", "DiscriminatorJudgesSoftness"]


@dataclass(frozen=True)
class DiscriminatorDominant:
    """The discriminator wins: loss_d below a floor or median D(fake) near 0.

    Args:
        max_loss_d: loss_d below this is a discriminator that wins.
        max_fake_median: a median D(fake) below this rejects nearly every prediction.
        min_steps: how long it must last (log windows already average steps).
        min_windows: log windows it must span (one window is one noisy sample).
        max_gap: log windows that may miss the limits inside one episode, so that a
            discriminator flickering around them is one finding, not many.
    """

    max_loss_d: float = 0.05
    max_fake_median: float = 0.1
    min_steps: int = 100
    min_windows: int = 2
    max_gap: int = 1
    code: ClassVar[str] = "d_dominant"

    def _dominant(self, r: Record) -> bool:
        loss_d, p50 = number_at(r, "loss_d"), number_at(r, "d_fake_p50")
        return (loss_d is not None and loss_d < self.max_loss_d) or (
            p50 is not None and p50 < self.max_fake_median
        )

    def check(self, history: Sequence[Record]) -> list[Finding]:
        recs = [
            r
            for r in train_records(history)
            if number_at(r, "loss_d") is not None or number_at(r, "d_fake_p50") is not None
        ]
        findings = []
        for i, j in bridge_runs(runs_where(recs, self._dominant), self.max_gap):
            start = window_start(recs, i)
            if recs[j - 1]["step"] - start >= self.min_steps and j - i >= self.min_windows:
                findings.append(self._finding(history, recs, i, j, start))
        return findings

    def _finding(
        self, history: Sequence[Record], recs: list[Record], i: int, j: int, start: int
    ) -> Finding:
        run, before = recs[i:j], recs[:i]
        first, last = run[0]["step"], run[-1]["step"]
        loss_d = numbers_of(run, "loss_d")
        fake50, fake90 = numbers_of(run, "d_fake_p50"), numbers_of(run, "d_fake_p90")
        real50 = numbers_of(run, "d_real_p50")
        n_loss = sum(v < self.max_loss_d for v in loss_d)
        n_fake = sum(v < self.max_fake_median for v in fake50)
        seen = (
            f"From step {first} to {last} ({last - start} steps): loss_d mean "
            f"{fixed(statistics.fmean(loss_d) if loss_d else None)} (last {fixed(loss_d[-1] if loss_d else None)}; "
            f"< {self.max_loss_d} in {n_loss} of {len(loss_d)} log windows)"
        )
        if fake50:
            seen += (
                f"; D(fake) median {fixed(median_of(fake50))} (< {self.max_fake_median} in {n_fake} of "
                f"{len(fake50)} windows), D(fake) p90 at most {fixed(max(fake90, default=None))}"
            )
        if real50:
            seen += f"; D(real) median {fixed(median_of(real50))}"
        if before:
            b = before[-1]
            seen += (
                f". At step {b['step']}, before: loss_d {fixed(number_at(b, 'loss_d'))}, D(fake) median "
                f"{fixed(number_at(b, 'd_fake_p50'))}"
            )
        seen += "."
        parts = [
            "The discriminator tells ground truth from predictions almost perfectly"
            + (
                f" (D(real) ~{fixed(median_of(real50), 2)} vs D(fake) ~{fixed(median_of(fake50), 2)})"
                if real50 and fake50
                else ""
            )
            + ": it scores nearly every prediction as fake."
        ]
        if has_gate(run):
            t = median_of(numbers_of(run, "gate_threshold"))
            parts.append(
                f"With the image gate at D(fake) > {fixed(t, 2)}, {share_kept(run)} were kept in "
                f"these steps: the gate passes only what the discriminator accepts, so "
                f"self-training dries up."
            )
        fm = numbers_of(run, "loss_fm")
        fm_before = numbers_of(before, "loss_fm")
        if fm and fm_before and max(fm) > 2 * fm_before[-1]:
            parts.append(
                f"loss_fm {fixed(fm_before[-1])} before, up to {fixed(max(fm))} in these steps: the "
                f"discriminator's features of predictions and ground truth drift apart."
            )
        parts.append(
            "A discriminator can win on the softness of predicted probabilities alone "
            "(one-hot ground truth against soft maps), so its score then says little about "
            "whether a prediction is right."
        )
        return Finding(
            code=self.code,
            severity="warning",
            title="discriminator dominant: it rejects (almost) every prediction",
            seen=seen,
            cause=" ".join(parts),
            remedies=discriminator_remedies(history, since=first),
            first_step=first,
            last_step=last,
            evidence={
                "loss_d_mean": statistics.fmean(loss_d) if loss_d else None,
                "loss_d_last": loss_d[-1] if loss_d else None,
                "d_fake_p50": median_of(fake50),
                "d_real_p50": median_of(real50),
                "steps": last - start,
            },
            confidence=windows_sureness(j - i, last - start, self.min_steps),
        )


@dataclass(frozen=True)
class DiscriminatorCollapsed:
    """loss_d stays at ln 2 with D scores near 0.5: the discriminator learns nothing.

    Args:
        loss_tolerance: ``|loss_d - ln 2|`` within this counts as "at ln 2".
        score_tolerance: ``|D median - 0.5|`` within this counts as "near 0.5".
        steps: how long it must last (a fresh discriminator starts there).
    """

    loss_tolerance: float = 0.02
    score_tolerance: float = 0.05
    steps: int = 1000
    code: ClassVar[str] = "d_collapsed"

    def _collapsed(self, r: Record) -> bool:
        loss_d = number_at(r, "loss_d")
        if loss_d is None or abs(loss_d - LN2) > self.loss_tolerance:
            return False
        for key in ("d_fake_p50", "d_real_p50"):
            v = number_at(r, key)
            if v is not None and abs(v - 0.5) > self.score_tolerance:
                return False
        return True

    def check(self, history: Sequence[Record]) -> list[Finding]:
        recs = [r for r in train_records(history) if number_at(r, "loss_d") is not None]
        findings = []
        for i, j in runs_where(recs, self._collapsed):
            start = window_start(recs, i)
            if recs[j - 1]["step"] - start < self.steps or j - i < 2:
                continue
            run = recs[i:j]
            first, last = run[0]["step"], run[-1]["step"]
            owner = method_class(history)
            lr_d = method_settings(history).get("lr_d")
            seen = (
                f"loss_d within {self.loss_tolerance} of ln 2 = {LN2:.3f} from step {first} to "
                f"{last} ({last - start} steps): mean {fixed(statistics.fmean(numbers_of(run, 'loss_d')))}"
                f"; D(fake) median {fixed(median_of(numbers_of(run, 'd_fake_p50')))}, D(real) median "
                f"{fixed(median_of(numbers_of(run, 'd_real_p50')))}."
            )
            cause = (
                "The discriminator scores ground truth and predictions alike (about 0.5): it "
                "is not learning (learning rate too low, updated too rarely, or too much label "
                "smoothing), so feature matching and the image gate get no signal from it; a "
                "gate below 0.5 then passes nearly every image."
            )
            remedies = [
                f"{owner}(lr_d={short(3 * float(lr_d))}): a faster discriminator (now "
                f"{short(float(lr_d))})"
                if lr_d is not None
                else f"{owner}(lr_d=1e-4): S4GAN's discriminator lr",
                f"{owner}(d_update_interval=1, label_smoothing=0.0): update it every step "
                "on sharp targets",
                "AndFilter(DiscriminatorGate(0.2), PixelConfidenceFilter(0.9)): let pixel "
                "confidence filter while the gate carries no information",
            ]
            findings.append(
                Finding(
                    code=self.code,
                    severity="warning",
                    title="discriminator collapsed: loss_d stays at ln 2",
                    seen=seen,
                    cause=cause,
                    remedies=remedies,
                    first_step=first,
                    last_step=last,
                    evidence={"steps": last - start},
                    confidence=windows_sureness(j - i, last - start, self.steps),
                )
            )
        return findings


@dataclass(frozen=True)
class DiscriminatorJudgesSoftness:
    """The discriminator's score follows how sharp a prediction is, not whether it is right.

    Reads the eval records that carry ``d_auc_entropy`` and ``d_auc_accuracy`` (see
    :func:`s4seg.methods.s4gan_diagnostics.discriminator_diagnostics`: ROC AUCs of D(fake) per
    validation image for "sharper than the median" and "more accurate than the
    median"; 0.5 is no relation). A finding when the latest such record has
    ``d_auc_entropy >= min_entropy_auc`` and ``d_auc_accuracy <= max_accuracy_auc``;
    it starts at the first of the evaluations in a row, up to the latest, that show it.
    A NaN AUC (every image alike) is no evidence either way and is skipped.

    An evaluation counts only with enough evidence behind it: at step ``min_step`` or
    later (a discriminator trained a few steps has learnt nothing to judge by), over
    at least ``min_images`` validation images (``diag_images``; an AUC over 8 images
    moves in steps of 1/16), and with D separating ground truth from predictions by
    at least ``min_real_fake_gap`` in mean probability (``diag_d_real_mean -
    diag_d_fake_mean``): a discriminator that scores both about 0.5 tells them apart
    by nothing, softness included. One such evaluation is an ``"info"`` finding; it is
    a ``"warning"`` from ``min_evals_warning`` evaluations in a row.

    Args:
        min_entropy_auc: an entropy AUC at least this is a discriminator that ranks
            by sharpness.
        max_accuracy_auc: an accuracy AUC at most this is a score that says little
            about correctness.
        min_step: the first step whose evaluation counts.
        min_images: validation images an evaluation needs (when it logs them).
        min_real_fake_gap: D(real) mean minus D(fake) mean an evaluation needs (when
            it logs them).
        min_evals_warning: evaluations in a row that make the finding a warning.
    """

    min_entropy_auc: float = 0.75
    max_accuracy_auc: float = 0.6
    min_step: int = 50
    min_images: int = 32
    min_real_fake_gap: float = 0.1
    min_evals_warning: int = 2
    code: ClassVar[str] = "d_judges_softness"

    def _enough(self, r: Record) -> bool:
        if int(r["step"]) < self.min_step:
            return False
        images = number_at(r, "diag_images")
        if images is not None and images < self.min_images:
            return False
        real, fake = number_at(r, "diag_d_real_mean"), number_at(r, "diag_d_fake_mean")
        return real is None or fake is None or real - fake >= self.min_real_fake_gap

    def _softness(self, r: Record) -> bool:
        ent, acc = number_at(r, "d_auc_entropy"), number_at(r, "d_auc_accuracy")
        if ent is None or acc is None or not self._enough(r):
            return False
        return ent >= self.min_entropy_auc and acc <= self.max_accuracy_auc

    def check(self, history: Sequence[Record]) -> list[Finding]:
        recs = [
            e
            for e in eval_records(history)
            if number_at(e, "d_auc_entropy") is not None
            and number_at(e, "d_auc_accuracy") is not None
        ]
        if not recs or not self._softness(recs[-1]):
            return []
        i = len(recs) - 1
        while i > 0 and self._softness(recs[i - 1]):
            i -= 1
        run, last = recs[i:], recs[-1]
        first_step, last_step = int(run[0]["step"]), int(last["step"])
        ent, acc = float(last["d_auc_entropy"]), float(last["d_auc_accuracy"])
        images = number_at(last, "diag_images")
        over = f" over {int(images)} validation images" if images is not None else ""
        seen = (
            f"At the evaluation of step {last_step}{over}: D(fake) ranks the sharper half of "
            f"the predictions (mean entropy at most the median) above the rest with AUC "
            f"{ent:.2f} (d_auc_entropy >= {self.min_entropy_auc}), but the more accurate half "
            f"(pixel accuracy at least the median) with AUC {acc:.2f} (d_auc_accuracy <= "
            f"{self.max_accuracy_auc}; 0.5 is no relation)."
        )
        obj = number_at(last, "d_auc_object_accuracy")
        if obj is not None:
            seen += f" On object pixels only: AUC {obj:.2f} (d_auc_object_accuracy)."
        real, fake = number_at(last, "diag_d_real_mean"), number_at(last, "diag_d_fake_mean")
        if real is not None and fake is not None:
            seen += f" D(real) mean {real:.3f}, D(fake) mean {fake:.3f}."
        if len(run) > 1:
            history_acc = ", ".join(f"{float(r['d_auc_accuracy']):.2f}" for r in run)
            seen += (
                f" The same at every evaluation since step {first_step} ({len(run)} "
                f"evaluations; d_auc_accuracy {history_acc})."
            )
        sep = number_at(last, "d_auc_real_fake")
        cause = (
            "The discriminator is shown one-hot ground truth as real (entropy 0 at every "
            "pixel) and softmax predictions as fake (entropy above 0 at every pixel), so it "
            "can tell them apart by softness alone"
            + (f" (it separates them with AUC {sep:.2f})" if sep is not None else "")
            + ": its score rises with how sharp a prediction is, not with how right. A gate "
            "on D(fake) then keeps sharp predictions, wrong ones included, and feature "
            "matching pulls the generator towards sharper maps rather than better ones."
        )
        gate = gate_repr(history)
        n_images = [number_at(r, "diag_images") for r in run]
        few = min((v for v in n_images if v is not None), default=None)
        if len(run) >= 3 and (few is None or few >= 100):
            level = "high"
        elif len(run) >= self.min_evals_warning:
            level = "medium"
        else:
            level = "low"
        confidence = sureness(
            level,
            f"{len(run)} evaluation(s) in a row"
            + (f", at least {int(few)} validation images each" if few is not None else "")
            + (
                f", D(real) {real:.2f} against D(fake) {fake:.2f}"
                if real is not None and fake is not None
                else ""
            ),
        )
        remedies = [
            "S4GAN(real_smoothing=0.1, real_noise=0.05, fake_sharpen=0.5): smooth and jitter "
            "the real one-hot maps and sharpen the predicted ones before the discriminator "
            "sees them, so entropy no longer tells real from fake and D must look at "
            "the content",
            f"AndFilter({gate}, PixelConfidenceFilter(0.9)): within the images the gate "
            "passes, keep only the pixels with max softmax >= 0.9, so a sharp but wrong "
            "image does not teach its unsure pixels",
            "TargetRateGate(rate=0.5): keep the top half of each batch by D score instead of "
            "thresholding a score that measures sharpness; the share taught stays fixed "
            "while the discriminator is retrained",
        ]
        evidence: dict[str, Any] = {
            "d_auc_entropy": ent,
            "d_auc_accuracy": acc,
            "d_auc_object_accuracy": obj,
            "d_auc_real_fake": sep,
            "diag_d_real_mean": real,
            "diag_d_fake_mean": fake,
            "diag_images": images,
            "evals": len(run),
        }
        return [
            Finding(
                code=self.code,
                severity="warning" if len(run) >= self.min_evals_warning else "info",
                title="D separates real from fake by entropy, not by correctness",
                seen=seen,
                cause=cause,
                remedies=remedies,
                first_step=first_step,
                last_step=last_step,
                evidence=evidence,
                confidence=confidence,
            )
        ]
