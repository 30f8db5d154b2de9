"""Self-training monitors: nothing kept (starved), everything kept (flooded), or the
pseudo-labels turning bad while val falls (collapse)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from s4seg.doctor.findings import Finding
from s4seg.doctor.records import (
    Record,
    count_of,
    eval_records,
    filter_text,
    fixed,
    has_gate,
    median_of,
    number_at,
    numbers_of,
    runs_where,
    share_kept,
    sureness,
    total_of,
    train_records,
    window_start,
    windows_sureness,
)
from s4seg.doctor.remedies import (
    class_count,
    discriminator_remedies,
    pixel_starved_remedies,
)

__all__ = ["SelfTrainingCollapse", "SelfTrainingFlooded", "SelfTrainingStarved"]


@dataclass(frozen=True)
class SelfTrainingStarved:
    """No pseudo-label kept for ``steps`` steps: self-training has stopped.

    Args:
        steps: how long nothing may be kept before it is a finding.
        max_kept: images kept per log window that still count as "nothing".
        min_windows: log windows it must span (one window is one noisy sample).
    """

    steps: int = 500
    max_kept: int = 0
    min_windows: int = 2
    code: ClassVar[str] = "st_starved"

    def check(self, history: Sequence[Record]) -> list[Finding]:
        recs = [r for r in train_records(history) if number_at(r, "st_images_kept") is not None]
        findings = []
        for i, j in runs_where(recs, lambda r: r["st_images_kept"] <= self.max_kept):
            start = window_start(recs, i)
            if recs[j - 1]["step"] - start >= self.steps and j - i >= self.min_windows:
                findings.append(self._finding(history, recs, i, j, start))
        return findings

    def _finding(
        self, history: Sequence[Record], recs: list[Record], i: int, j: int, start: int
    ) -> Finding:
        run, before = recs[i:j], recs[:i]
        first, last = run[0]["step"], run[-1]["step"]
        images, pixels = total_of(run, "st_images_total"), total_of(run, "st_pixels_total")
        per_window = run[-1].get("st_images_total")
        window = run[-1].get("window_steps")
        bound = "= 0" if self.max_kept == 0 else f"<= {self.max_kept}"
        got = " and ".join(
            x
            for x in (
                count_of(
                    run, "st_images_kept", "st_images_total", "unlabelled images", share=False
                ),
                count_of(run, "st_pixels_kept", "st_pixels_total", "pixels", share=False),
            )
            if x
        )
        # A log without totals (a converted log of the original code) has no per-window count.
        of = f" (of {per_window} per window of {window} steps)" if per_window is not None else ""
        seen = (
            f"st_images_kept {bound} in every log window from step {first} to {last} "
            f"({last - start} steps): {got} got a pseudo-label. "
            f"The count is images, not pixels: st_images_kept counts the images{of} with at "
            f"least one pseudo-labelled pixel; the pixels are st_pixels_kept."
        )
        if before:
            seen += f" Before step {first}: {share_kept(before[-5:])} in the last windows."
        evidence: dict[str, Any] = {
            "images_seen": images,
            "pixels_seen": pixels,
            "images_kept": total_of(run, "st_images_kept"),
            "pixels_kept": total_of(run, "st_pixels_kept"),
            "steps": last - start,
        }
        gate_passed = total_of(run, "gate_images_passed")
        if has_gate(run) and gate_passed <= self.max_kept:
            seen += " No image got through the image gate: 0 is not a verdict on pixel confidence."
            cause, remedies = self._gate_cause(history, run, before, evidence)
        else:
            thr = median_of(numbers_of(run, "pixel_threshold"))
            evidence.update(cause="pixel_threshold", pixel_threshold=thr)
            passed = f" {gate_passed} images passed the image gate, but" if has_gate(run) else ""
            cause = (
                f"The pixel filter keeps a pixel when its max softmax probability is >= "
                f"{fixed(thr, 2)} (filter: {filter_text(history) or 'see config.json'}).{passed} "
                f"no pixel reached it: the model is not that confident yet, or the bar is "
                f"too high for this task."
            )
            remedies = pixel_starved_remedies(history, thr)
        return Finding(
            code=self.code,
            severity="warning",
            title="self-training starved: no pseudo-label kept",
            seen=seen,
            cause=cause,
            remedies=remedies,
            first_step=first,
            last_step=last,
            evidence=evidence,
            confidence=windows_sureness(j - i, last - start, self.steps),
        )

    @staticmethod
    def _gate_cause(
        history: Sequence[Record],
        run: list[Record],
        before: list[Record],
        evidence: dict[str, Any],
    ) -> tuple[str, list[str]]:
        t = median_of(numbers_of(run, "gate_threshold"))
        p50 = median_of(numbers_of(run, "d_fake_p50"))
        p90 = max(numbers_of(run, "d_fake_p90"), default=None)
        real = median_of(numbers_of(run, "d_real_p50"))
        loss_d = numbers_of(run, "loss_d")
        evidence.update(
            cause="image_gate",
            gate_threshold=t,
            d_fake_p50=p50,
            d_fake_p90_max=p90,
            d_real_p50=real,
            loss_d_last=loss_d[-1] if loss_d else None,
            loss_d_mean=statistics.fmean(loss_d) if loss_d else None,
        )
        filt = filter_text(history)
        parts = [
            f"The image gate thresholds the discriminator's probability per image, "
            f"D(fake) > {fixed(t, 2)}, not the softmax confidence of pixels"
            + (f" (filter: {filt})" if filt else "")
            + f". It passed 0 images in these steps, so every D(fake) score was <= {fixed(t, 2)}"
        ]
        if p50 is not None:
            parts.append(f"D(fake) median {fixed(p50)}, p90 at most {fixed(p90)} over these steps")
        if real is not None:
            parts.append(f"D(real) median {fixed(real)}")
        if loss_d:
            trend = f"loss_d {fixed(loss_d[-1])} at step {run[-1]['step']}"
            earlier = [
                (r["step"], number_at(r, "loss_d")) for r in before if number_at(r, "loss_d")
            ]
            if earlier:
                step, value = max(earlier, key=lambda sv: sv[1] or 0.0)
                trend += f" (down from {fixed(value)} at step {step})"
            parts.append(trend)
        cause = (
            "; ".join(parts)
            + " -> the discriminator rejects every prediction. It separates predictions from "
            "ground truth (a discriminator can win on the softness of predicted probabilities "
            "alone), so no image passes, whatever its pixels look like. Lowering the gate "
            "threshold (e.g. to 0.05) only delays the same starvation: rebalance the "
            "discriminator, or rank images instead of thresholding them."
        )
        return cause, discriminator_remedies(history, since=run[0]["step"])


@dataclass(frozen=True)
class SelfTrainingFlooded:
    """Every pixel kept for ``steps`` steps: the filter does not filter.

    Args:
        steps: how long everything may be kept before it is a finding.
        min_fraction: kept pixel fraction that counts as "everything".
        min_windows: log windows it must span (one window is one noisy sample).
    """

    steps: int = 500
    min_fraction: float = 1.0
    min_windows: int = 2
    code: ClassVar[str] = "st_flooded"

    def check(self, history: Sequence[Record]) -> list[Finding]:
        recs = [r for r in train_records(history) if number_at(r, "st_pixels_frac") is not None]
        findings = []
        for i, j in runs_where(recs, lambda r: r["st_pixels_frac"] >= self.min_fraction - 1e-12):
            start = window_start(recs, i)
            if recs[j - 1]["step"] - start < self.steps or j - i < self.min_windows:
                continue
            run = recs[i:j]
            first, last = run[0]["step"], run[-1]["step"]
            seen = (
                f"st_pixels_frac >= {self.min_fraction} in every log window from step {first} to "
                f"{last} ({last - start} steps): {share_kept(run)} were kept, wrong "
                f"predictions included."
            )
            if has_gate(run):
                t = median_of(numbers_of(run, "gate_threshold"))
                p10 = min(numbers_of(run, "d_fake_p10"), default=None)
                cause = (
                    f"The image gate (D(fake) > {fixed(t, 2)}) passed every image"
                    + (f": D(fake) p10 never fell below {fixed(p10)}" if p10 is not None else "")
                    + ". A fresh or collapsed discriminator scores about 0.5 and passes a low "
                    "threshold with every image, so the gate carries no information about "
                    "which predictions are right."
                )
                remedies = [
                    "AndFilter(DiscriminatorGate(0.2), PixelConfidenceFilter(0.9)): keep only "
                    "the confident pixels of the images the gate passes",
                    "TargetRateGate(rate=0.5): keep the top half of each batch by D score; "
                    "a rank cannot flood",
                    "DiscriminatorGate(threshold=Linear(0.2, 0.5, steps=5000)): raise the bar "
                    "as the discriminator learns",
                ]
                evidence: dict[str, Any] = {"cause": "image_gate", "gate_threshold": t}
            else:
                thr = median_of(numbers_of(run, "pixel_threshold"))
                cause = (
                    f"The pixel threshold is {fixed(thr, 2)} on max softmax probability: every "
                    f"pixel reaches it, so nothing is filtered."
                )
                remedies = [
                    "PixelConfidenceFilter(0.9): keep pixels with max softmax >= 0.9",
                    "TargetRateFilter(rate=0.5): keep the most confident half of "
                    "the pixels of each batch",
                    f"SelfAdaptiveThreshold(num_classes={class_count(history)}): a threshold "
                    f"that follows the model's confidence",
                ]
                evidence = {"cause": "pixel_threshold", "pixel_threshold": thr}
            findings.append(
                Finding(
                    code=self.code,
                    severity="warning",
                    title="self-training flooded: every pseudo-label kept",
                    seen=seen,
                    cause=cause,
                    remedies=remedies,
                    first_step=first,
                    last_step=last,
                    evidence=evidence,
                    confidence=windows_sureness(j - i, last - start, self.steps),
                )
            )
        return findings


@dataclass(frozen=True)
class SelfTrainingCollapse:
    """Val mIoU falls from its best while the self-training signals turn bad with it.

    The signature of confirmation bias: the model teaches itself its own mistakes, so
    its pseudo-labels get worse as it trains on them. It fires when, for ``evals``
    evaluations after the best, val mIoU is more than ``min_drop`` below it and at
    least one self-training signal has turned since the best evaluation:

    * the kept pixels shrank: the mean ``st_pixels_frac`` of the log windows since
      the best is below ``shrink`` times that of the windows up to it (but above
      ``min_active``: a self-training that keeps nothing is starved, a different
      finding with a different cause);
    * the discriminator's score turned against correctness: ``d_auc_accuracy`` of
      the latest evaluation is below ``max_auc`` (0.5 is chance);
    * the kept pseudo-labels got less right: ``st_object_kept_accuracy`` (or
      ``st_kept_accuracy``) fell by more than ``accuracy_drop`` (needs true masks).
    * self-training began only after the best evaluation (no pixel was kept in the
      windows up to it): val fell when the pseudo-labels arrived, the commonest
      collapse of a warm-up schedule (``start_step``) on imbalanced classes.

    Args:
        min_drop: drop below the best val mIoU that counts.
        evals: consecutive evaluations below ``best - min_drop``.
        shrink: ratio of kept-pixel fractions (after / before) that counts as shrinking.
        max_auc: ``d_auc_accuracy`` below this counts as anti-correlated.
        accuracy_drop: fall of the kept-pixel accuracy that counts.
        min_active: kept-pixel fraction below which self-training counts as stopped.
    """

    min_drop: float = 0.02
    evals: int = 2
    shrink: float = 0.7
    max_auc: float = 0.4
    accuracy_drop: float = 0.05
    min_active: float = 0.01
    code: ClassVar[str] = "st_collapse"

    def check(self, history: Sequence[Record]) -> list[Finding]:
        evals = [e for e in eval_records(history) if number_at(e, "miou") is not None]
        if not evals:
            return []
        best_i = max(range(len(evals)), key=lambda i: evals[i]["miou"])
        best = evals[best_i]
        below = [e for e in evals[best_i + 1 :] if e["miou"] < best["miou"] - self.min_drop]
        if len(below) < self.evals or below[-1] is not evals[-1]:
            return []  # not falling (now)
        trains = train_records(history)
        pre = [r for r in trains if r["step"] <= best["step"]][-5:]
        post = [r for r in trains if best["step"] < r["step"] <= evals[-1]["step"]][-5:]
        kept_now = numbers_of(post, "st_pixels_frac")
        if not kept_now or statistics.fmean(kept_now) < self.min_active:
            return []  # no self-training, or a starved one: not this finding
        signals = self._signals(pre, post, evals[-1], trains)
        if not signals:
            return []
        seen = (
            f"val mIoU was best at step {best['step']} ({best['miou']:.4f}) and is "
            f"{evals[-1]['miou']:.4f} at step {evals[-1]['step']} "
            f"({len(below)} evaluations more than {self.min_drop} below it); meanwhile "
            + "; ".join(signals)
            + "."
        )
        onset = any(sig.startswith("self-training began") for sig in signals)
        cause = (
            "Confirmation bias from the first pseudo-labels: when self-training switched "
            "on, the model's confident pixels were mostly of one class (background, on "
            "most data), and at full weight they taught it that class everywhere."
            if onset
            else "Confirmation bias: the model keeps training on its own pseudo-labels after "
            "they stopped being better than what it already knows, and learns its "
            "mistakes; the signals above say the pseudo-labels it keeps are getting fewer "
            "or worse, or that the discriminator's score now favours the wrong ones."
        )
        remedies = [
            f"trainer.restore_best(): go back to step {best['step']} (val mIoU {best['miou']:.4f})",
            f"TrainerConfig(early_stop_patience={self.evals}): stop when val stops improving",
            "PixelConfidenceFilter(0.95): keep only the most confident pixels",
            "UniMatch(): pseudo-labels from the model's weak view, three perturbed streams",
        ]
        if onset:
            remedies += [
                "FixMatch(alignment=DistributionAlignment()): pseudo-labels whose class mix "
                "follows the labelled pixels' (also on MeanTeacher and UniMatch)",
            ]
        return [
            Finding(
                code=self.code,
                severity="critical",
                title="self-training collapse: val falls while the pseudo-labels turn bad",
                seen=seen,
                cause=cause,
                remedies=remedies,
                first_step=below[0]["step"],
                last_step=evals[-1]["step"],
                evidence={
                    "best_step": best["step"],
                    "best_miou": best["miou"],
                    "last_miou": evals[-1]["miou"],
                    "signals": signals,
                },
                confidence=sureness(
                    "high" if len(signals) >= 2 and len(below) >= 3 else "medium",
                    f"{len(below)} evaluations below the best and {len(signals)} "
                    f"self-training signal(s) turned with them",
                ),
            )
        ]

    def _signals(
        self, pre: list[Record], post: list[Record], last: Record, trains: list[Record]
    ) -> list[str]:
        out = []
        kept_pre, kept_post = numbers_of(pre, "st_pixels_frac"), numbers_of(post, "st_pixels_frac")
        onset = _self_training_onset(trains, self.min_active)
        best_step = pre[-1]["step"] if pre else None
        if onset is not None and best_step is not None and onset > best_step:
            accuracy = numbers_of(post, "st_object_kept_accuracy")
            out.append(
                f"self-training began after the best evaluation (first pixels kept at step "
                f"{onset})"
                + (
                    f"; {100 * statistics.fmean(accuracy):.1f}% of the kept object pixels "
                    f"have the right label in the latest windows"
                    if accuracy
                    else ""
                )
            )
            return out  # before the onset there is nothing to compare the other signals with
        if kept_pre and kept_post:
            before, after = statistics.fmean(kept_pre), statistics.fmean(kept_post)
            if before > 0 and after < self.shrink * before:
                out.append(
                    f"the kept pixels shrank from {100 * before:.1f}% to {100 * after:.1f}% "
                    f"of the unlabelled pixels"
                )
        auc = number_at(last, "d_auc_accuracy")
        if auc is not None and auc < self.max_auc:
            out.append(
                f"the discriminator's score is anti-correlated with correctness "
                f"(d_auc_accuracy {auc:.2f} at step {last['step']}, 0.5 is chance)"
            )
        for key, label in (
            ("st_object_kept_accuracy", "kept object pixels"),
            ("st_kept_accuracy", "kept pixels"),
        ):
            a_pre, a_post = numbers_of(pre, key), numbers_of(post, key)
            if a_pre and a_post:
                before, after = statistics.fmean(a_pre), statistics.fmean(a_post)
                if after < before - self.accuracy_drop:
                    out.append(
                        f"the {label} with the right label fell from {100 * before:.1f}% to "
                        f"{100 * after:.1f}%"
                    )
                break  # the object accuracy when there is one, else the overall one
        return out


def _self_training_onset(trains: Sequence[Record], min_active: float) -> int | None:
    """The step of the first log window that kept pixels, or None if none did."""
    for r in trains:
        frac = number_at(r, "st_pixels_frac")
        if frac is not None and frac >= min_active:
            return int(r["step"])
    return None
