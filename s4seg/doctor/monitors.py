"""Monitors: pure checks of a run's log records that name a failure, its cause and a fix.

Each monitor is a small frozen dataclass of limits with a ``check(history)`` method
that reads the list of log records and returns :class:`Finding` s. The records are
those of ``run_dir/metrics.jsonl`` (``"kind": "train"`` every ``log_interval``
steps, ``"kind": "eval"`` at each evaluation), optionally preceded by a
``{"kind": "config", "trainer": {...}, "parts": {...}}`` record (the content of
``config.json``) that lets remedies quote the run's own settings. The same checks
serve the live :class:`s4seg.doctor.Doctor` callback and the offline report.

A finding's ``first_step`` is the step of the first record showing it, so that a
problem that goes on keeps its identity (:attr:`Finding.key`) while it grows.

The default limits come from practice, most of them from the field report of a
failed S4GAN run (docs/concepts/diagnosing.md): 0 images kept for 500 steps,
loss_d < 0.05, val mIoU falling from its best, a train-val mIoU gap > 0.15.
:class:`DiscriminatorJudgesSoftness` reads the ``d_auc_*`` numbers that
:func:`s4seg.methods.s4gan_diagnostics.discriminator_diagnostics` adds to eval records.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from s4seg.doctor.findings import Finding

__all__ = [
    "LOSSES",
    "DiscriminatorCollapsed",
    "DiscriminatorDominant",
    "DiscriminatorJudgesSoftness",
    "ExplodingLoss",
    "LearningRateExhausted",
    "Monitor",
    "NonFiniteLoss",
    "Overfitting",
    "SelfTrainingFlooded",
    "SelfTrainingStarved",
    "ValMiouFalling",
    "default_monitors",
    "eval_records",
    "run_config",
    "run_monitors",
    "train_records",
]

LOSSES = ("loss_ce", "loss_fm", "loss_st", "loss_d")
LN2 = math.log(2.0)
Record = dict[str, Any]
T = TypeVar("T")


@runtime_checkable
class Monitor(Protocol):
    """A check over the log records of a run."""

    code: ClassVar[str]

    def check(self, history: Sequence[Record]) -> list[Finding]:
        """Findings in ``history`` (pure: same records, same findings)."""
        ...


# ---------------------------------------------------------------------- records
def _kind(record: Record) -> str:
    if "kind" in record:
        return str(record["kind"])
    # Records straight from Callback.on_log / on_eval_end carry no kind.
    return "eval" if "miou" in record and "loss_ce" not in record else "train"


def train_records(history: Sequence[Record]) -> list[Record]:
    """The ``"train"`` records, in log order."""
    return [r for r in history if _kind(r) == "train" and "step" in r]


def eval_records(history: Sequence[Record]) -> list[Record]:
    """The ``"eval"`` records, in log order."""
    return [r for r in history if _kind(r) == "eval" and "step" in r and "miou" in r]


def run_config(history: Sequence[Record]) -> dict[str, Any]:
    """The trainer config of the last ``"config"`` record ({} when there is none)."""
    for r in reversed(history):
        if _kind(r) == "config":
            return dict(r.get("trainer") or {})
    return {}


def _filter_text(history: Sequence[Record]) -> str | None:
    for r in reversed(history):
        if _kind(r) == "config":
            parts = r.get("parts") or {}
            return parts.get("pseudo_filter_thresholds") or parts.get("pseudo_filter")
    return None


def _num(record: Record, key: str) -> float | None:
    """A finite number from ``record``, else None."""
    v = record.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _values(records: Sequence[Record], key: str) -> list[float]:
    return [v for v in (_num(r, key) for r in records) if v is not None]


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _runs(items: Sequence[T], pred: Callable[[T], bool]) -> list[tuple[int, int]]:
    """``[i, j)`` index ranges of maximal consecutive items satisfying ``pred``."""
    out, start = [], None
    for i, r in enumerate(items):
        if pred(r):
            start = i if start is None else start
        elif start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(items)))
    return out


def _bridge(runs: list[tuple[int, int]], max_gap: int) -> list[tuple[int, int]]:
    """Join runs separated by at most ``max_gap`` items (a condition that flickers)."""
    out: list[tuple[int, int]] = []
    for i, j in runs:
        if out and i - out[-1][1] <= max_gap:
            out[-1] = (out[-1][0], j)
        else:
            out.append((i, j))
    return out


def _window_start(records: Sequence[Record], i: int) -> int:
    """The step at which the window of record ``i`` began."""
    r = records[i]
    if "window_steps" in r:
        return int(r["step"]) - int(r["window_steps"])
    return int(records[i - 1]["step"]) if i > 0 else 0


def _f(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _g(x: float) -> str:
    return f"{x:.3g}"


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"


def _sum(records: Sequence[Record], key: str) -> int:
    return int(sum(_values(records, key)))


def _best_eval(history: Sequence[Record], before: int | None = None) -> Record | None:
    evals = [
        e
        for e in eval_records(history)
        if _num(e, "miou") is not None and (before is None or e["step"] <= before)
    ]
    return max(evals, key=lambda e: e["miou"]) if evals else None


def _has_gate(records: Sequence[Record]) -> bool:
    return any("gate_threshold" in r for r in records)


def _share_kept(records: Sequence[Record]) -> str:
    kept, total = _sum(records, "st_images_kept"), _sum(records, "st_images_total")
    px, px_total = _sum(records, "st_pixels_kept"), _sum(records, "st_pixels_total")
    return (
        f"{kept:,} of {total:,} images ({_pct(kept, total)}) and {px:,} of {px_total:,} pixels "
        f"({_pct(px, px_total)})"
    )


# -------------------------------------------------------------------- remedies
def _restore_remedy(history: Sequence[Record], since: int | None = None) -> list[str]:
    """Restoring the best checkpoint; with ``since``, only if it predates the problem."""
    best = _best_eval(history)
    if best is None:
        return []
    if since is not None and best["step"] >= since:
        # best.pt holds the problem itself (a discriminator that already wins): not a fix.
        return []
    when = "" if since is None else ", saved before this began"
    return [
        f"trainer.restore_best(): reload the weights of the best val mIoU ({best['miou']:.4f} "
        f"at step {best['step']}{when}) and continue with the settings above; "
        f"Doctor(rollback=True) does this during the run"
    ]


def _d_remedies(history: Sequence[Record], since: int | None = None) -> list[str]:
    """Settings that slow down a discriminator that wins, and gates that survive it."""
    cfg = run_config(history)
    lr_g = float(cfg.get("lr_g", 2.5e-4))
    out = []
    if "lr_d" in cfg:
        lr_d = float(cfg["lr_d"])
        target = 0.1 * lr_g if lr_d > 0.1 * lr_g * (1 + 1e-9) else 0.1 * lr_d
        out.append(
            f"TrainerConfig(lr_d={_g(target)}): slow the discriminator down (now lr_d={_g(lr_d)}, "
            f"lr_g={_g(lr_g)}; about 0.1x the generator's lr or less)"
        )
    else:
        out.append(
            f"TrainerConfig(lr_d={_g(0.1 * lr_g)}): train the discriminator at about 0.1x the "
            f"generator's lr"
        )
    k = int(cfg.get("d_update_interval", 1))
    out.append(
        f"TrainerConfig(d_update_interval={2 * k}): update the discriminator every "
        f"{2 * k} steps instead of every {'step' if k == 1 else f'{k} steps'}"
    )
    s = float(cfg.get("label_smoothing", 0.0))
    if s < 0.3:
        out.append(
            f"TrainerConfig(label_smoothing={round(min(s + 0.1, 0.3), 2)}): one-sided smoothing "
            f"of the real target, so ground truth cannot win on its sharpness alone"
        )
    out += [
        "TargetRateGate(rate=0.5): keep the top half of each batch by D score; a rank "
        "cannot starve or flood, whatever the discriminator's calibration",
        "AndFilter(TargetRateGate(rate=0.5), PixelConfidenceFilter(0.9)): the same, and only "
        "the confident pixels of the kept images",
    ]
    return out + _restore_remedy(history, since)


def _num_classes(history: Sequence[Record]) -> str:
    """C from the per-class IoU of an eval record, else the letter C."""
    for e in reversed(eval_records(history)):
        if isinstance(e.get("iou"), list) and e["iou"]:
            return str(len(e["iou"]))
    return "C"


def _pixel_starved_remedies(history: Sequence[Record], threshold: float | None) -> list[str]:
    lower = 0.7 if threshold is None else max(0.5, round(threshold - 0.1, 2))
    c = _num_classes(history)
    return [
        f"PixelConfidenceFilter({lower}): a lower bar on max softmax probability "
        f"(now {_f(threshold, 2)})",
        f"SelfAdaptiveThreshold(num_classes={c}): FreeMatch's threshold follows the model's "
        f"own mean confidence, low while it is unsure",
        f"ClasswiseThreshold(num_classes={c}): FlexMatch's per-class thresholds, lower for "
        f"classes still being learnt",
        "TargetRateGate(rate=0.2, by='pixel'): keep the most confident 20% of pixels of each "
        "batch; cannot starve",
    ]


# -------------------------------------------------------------------- monitors
@dataclass(frozen=True)
class SelfTrainingStarved:
    """No pseudo-label kept for ``steps`` steps: self-training has stopped.

    Args:
        steps: how long nothing may be kept before it is a finding.
        max_kept: images kept per log window that still count as "nothing".
    """

    steps: int = 500
    max_kept: int = 0
    code: ClassVar[str] = "st_starved"

    def check(self, history: Sequence[Record]) -> list[Finding]:
        recs = [r for r in train_records(history) if _num(r, "st_images_kept") is not None]
        findings = []
        for i, j in _runs(recs, lambda r: r["st_images_kept"] <= self.max_kept):
            start = _window_start(recs, i)
            if recs[j - 1]["step"] - start >= self.steps:
                findings.append(self._finding(history, recs, i, j, start))
        return findings

    def _finding(
        self, history: Sequence[Record], recs: list[Record], i: int, j: int, start: int
    ) -> Finding:
        run, before = recs[i:j], recs[:i]
        first, last = run[0]["step"], run[-1]["step"]
        images, pixels = _sum(run, "st_images_total"), _sum(run, "st_pixels_total")
        per_window = run[-1].get("st_images_total")
        window = run[-1].get("window_steps")
        bound = "= 0" if self.max_kept == 0 else f"<= {self.max_kept}"
        seen = (
            f"st_images_kept {bound} in every log window from step {first} to {last} "
            f"({last - start} steps): {_sum(run, 'st_images_kept'):,} of {images:,} unlabelled "
            f"images and {_sum(run, 'st_pixels_kept'):,} of {pixels:,} pixels got a pseudo-label. "
            f"The count is images, not pixels: st_images_kept counts the images (of "
            f"{per_window} per window of {window} steps) with at least one pseudo-labelled "
            f"pixel; the pixels are st_pixels_kept."
        )
        if before:
            seen += f" Before step {first}: {_share_kept(before[-5:])} in the last windows."
        evidence: dict[str, Any] = {
            "images_seen": images,
            "pixels_seen": pixels,
            "images_kept": _sum(run, "st_images_kept"),
            "pixels_kept": _sum(run, "st_pixels_kept"),
            "steps": last - start,
        }
        gate_passed = _sum(run, "gate_images_passed")
        if _has_gate(run) and gate_passed <= self.max_kept:
            seen += " No image got through the image gate: 0 is not a verdict on pixel confidence."
            cause, remedies = self._gate_cause(history, run, before, evidence)
        else:
            thr = _median(_values(run, "pixel_threshold"))
            evidence.update(cause="pixel_threshold", pixel_threshold=thr)
            passed = f" {gate_passed} images passed the image gate, but" if _has_gate(run) else ""
            cause = (
                f"The pixel filter keeps a pixel when its max softmax probability is >= "
                f"{_f(thr, 2)} (filter: {_filter_text(history) or 'see config.json'}).{passed} "
                f"no pixel reached it: the model is not that confident yet, or the bar is "
                f"too high for this task."
            )
            remedies = _pixel_starved_remedies(history, thr)
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
        )

    @staticmethod
    def _gate_cause(
        history: Sequence[Record],
        run: list[Record],
        before: list[Record],
        evidence: dict[str, Any],
    ) -> tuple[str, list[str]]:
        t = _median(_values(run, "gate_threshold"))
        p50 = _median(_values(run, "d_fake_p50"))
        p90 = max(_values(run, "d_fake_p90"), default=None)
        real = _median(_values(run, "d_real_p50"))
        loss_d = _values(run, "loss_d")
        evidence.update(
            cause="image_gate",
            gate_threshold=t,
            d_fake_p50=p50,
            d_fake_p90_max=p90,
            d_real_p50=real,
            loss_d_last=loss_d[-1] if loss_d else None,
            loss_d_mean=statistics.fmean(loss_d) if loss_d else None,
        )
        filt = _filter_text(history)
        parts = [
            f"The image gate thresholds the discriminator's probability per image, "
            f"D(fake) > {_f(t, 2)}, not the softmax confidence of pixels"
            + (f" (filter: {filt})" if filt else "")
            + f". It passed 0 images in these steps, so every D(fake) score was <= {_f(t, 2)}"
        ]
        if p50 is not None:
            parts.append(f"D(fake) median {_f(p50)}, p90 at most {_f(p90)} over these steps")
        if real is not None:
            parts.append(f"D(real) median {_f(real)}")
        if loss_d:
            trend = f"loss_d {_f(loss_d[-1])} at step {run[-1]['step']}"
            earlier = [(r["step"], _num(r, "loss_d")) for r in before if _num(r, "loss_d")]
            if earlier:
                step, value = max(earlier, key=lambda sv: sv[1] or 0.0)
                trend += f" (down from {_f(value)} at step {step})"
            parts.append(trend)
        cause = (
            "; ".join(parts)
            + " -> the discriminator rejects every prediction. It separates predictions from "
            "ground truth (a discriminator can win on the softness of predicted probabilities "
            "alone), so no image passes, whatever its pixels look like. Lowering the gate "
            "threshold (e.g. to 0.05) only delays the same starvation: rebalance the "
            "discriminator, or rank images instead of thresholding them."
        )
        return cause, _d_remedies(history, since=run[0]["step"])


@dataclass(frozen=True)
class SelfTrainingFlooded:
    """Every pixel kept for ``steps`` steps: the filter does not filter.

    Args:
        steps: how long everything may be kept before it is a finding.
        min_fraction: kept pixel fraction that counts as "everything".
    """

    steps: int = 500
    min_fraction: float = 1.0
    code: ClassVar[str] = "st_flooded"

    def check(self, history: Sequence[Record]) -> list[Finding]:
        recs = [r for r in train_records(history) if _num(r, "st_pixels_frac") is not None]
        findings = []
        for i, j in _runs(recs, lambda r: r["st_pixels_frac"] >= self.min_fraction - 1e-12):
            start = _window_start(recs, i)
            if recs[j - 1]["step"] - start < self.steps:
                continue
            run = recs[i:j]
            first, last = run[0]["step"], run[-1]["step"]
            seen = (
                f"st_pixels_frac >= {self.min_fraction} in every log window from step {first} to "
                f"{last} ({last - start} steps): {_share_kept(run)} were kept, wrong "
                f"predictions included."
            )
            if _has_gate(run):
                t = _median(_values(run, "gate_threshold"))
                p10 = min(_values(run, "d_fake_p10"), default=None)
                cause = (
                    f"The image gate (D(fake) > {_f(t, 2)}) passed every image"
                    + (f": D(fake) p10 never fell below {_f(p10)}" if p10 is not None else "")
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
                thr = _median(_values(run, "pixel_threshold"))
                cause = (
                    f"The pixel threshold is {_f(thr, 2)} on max softmax probability: every "
                    f"pixel reaches it, so nothing is filtered."
                )
                remedies = [
                    "PixelConfidenceFilter(0.9): keep pixels with max softmax >= 0.9",
                    "TargetRateGate(rate=0.5, by='pixel'): keep the most confident half of "
                    "the pixels of each batch",
                    f"SelfAdaptiveThreshold(num_classes={_num_classes(history)}): a threshold "
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
                )
            )
        return findings


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
        loss_d, p50 = _num(r, "loss_d"), _num(r, "d_fake_p50")
        return (loss_d is not None and loss_d < self.max_loss_d) or (
            p50 is not None and p50 < self.max_fake_median
        )

    def check(self, history: Sequence[Record]) -> list[Finding]:
        recs = [
            r
            for r in train_records(history)
            if _num(r, "loss_d") is not None or _num(r, "d_fake_p50") is not None
        ]
        findings = []
        for i, j in _bridge(_runs(recs, self._dominant), self.max_gap):
            start = _window_start(recs, i)
            if recs[j - 1]["step"] - start >= self.min_steps and j - i >= self.min_windows:
                findings.append(self._finding(history, recs, i, j, start))
        return findings

    def _finding(
        self, history: Sequence[Record], recs: list[Record], i: int, j: int, start: int
    ) -> Finding:
        run, before = recs[i:j], recs[:i]
        first, last = run[0]["step"], run[-1]["step"]
        loss_d = _values(run, "loss_d")
        fake50, fake90 = _values(run, "d_fake_p50"), _values(run, "d_fake_p90")
        real50 = _values(run, "d_real_p50")
        n_loss = sum(v < self.max_loss_d for v in loss_d)
        n_fake = sum(v < self.max_fake_median for v in fake50)
        seen = (
            f"From step {first} to {last} ({last - start} steps): loss_d mean "
            f"{_f(statistics.fmean(loss_d) if loss_d else None)} (last {_f(loss_d[-1] if loss_d else None)}; "
            f"< {self.max_loss_d} in {n_loss} of {len(loss_d)} log windows)"
        )
        if fake50:
            seen += (
                f"; D(fake) median {_f(_median(fake50))} (< {self.max_fake_median} in {n_fake} of "
                f"{len(fake50)} windows), D(fake) p90 at most {_f(max(fake90, default=None))}"
            )
        if real50:
            seen += f"; D(real) median {_f(_median(real50))}"
        if before:
            b = before[-1]
            seen += (
                f". At step {b['step']}, before: loss_d {_f(_num(b, 'loss_d'))}, D(fake) median "
                f"{_f(_num(b, 'd_fake_p50'))}"
            )
        seen += "."
        parts = [
            "The discriminator tells ground truth from predictions almost perfectly"
            + (
                f" (D(real) ~{_f(_median(real50), 2)} vs D(fake) ~{_f(_median(fake50), 2)})"
                if real50 and fake50
                else ""
            )
            + ": it scores nearly every prediction as fake."
        ]
        if _has_gate(run):
            t = _median(_values(run, "gate_threshold"))
            parts.append(
                f"With the image gate at D(fake) > {_f(t, 2)}, {_share_kept(run)} were kept in "
                f"these steps: the gate passes only what the discriminator accepts, so "
                f"self-training dries up."
            )
        fm = _values(run, "loss_fm")
        fm_before = _values(before, "loss_fm")
        if fm and fm_before and max(fm) > 2 * fm_before[-1]:
            parts.append(
                f"loss_fm {_f(fm_before[-1])} before, up to {_f(max(fm))} in these steps: the "
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
            remedies=_d_remedies(history, since=first),
            first_step=first,
            last_step=last,
            evidence={
                "loss_d_mean": statistics.fmean(loss_d) if loss_d else None,
                "loss_d_last": loss_d[-1] if loss_d else None,
                "d_fake_p50": _median(fake50),
                "d_real_p50": _median(real50),
                "steps": last - start,
            },
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
        loss_d = _num(r, "loss_d")
        if loss_d is None or abs(loss_d - LN2) > self.loss_tolerance:
            return False
        for key in ("d_fake_p50", "d_real_p50"):
            v = _num(r, key)
            if v is not None and abs(v - 0.5) > self.score_tolerance:
                return False
        return True

    def check(self, history: Sequence[Record]) -> list[Finding]:
        recs = [r for r in train_records(history) if _num(r, "loss_d") is not None]
        findings = []
        for i, j in _runs(recs, self._collapsed):
            start = _window_start(recs, i)
            if recs[j - 1]["step"] - start < self.steps:
                continue
            run = recs[i:j]
            first, last = run[0]["step"], run[-1]["step"]
            cfg = run_config(history)
            lr_d = cfg.get("lr_d")
            seen = (
                f"loss_d within {self.loss_tolerance} of ln 2 = {LN2:.3f} from step {first} to "
                f"{last} ({last - start} steps): mean {_f(statistics.fmean(_values(run, 'loss_d')))}"
                f"; D(fake) median {_f(_median(_values(run, 'd_fake_p50')))}, D(real) median "
                f"{_f(_median(_values(run, 'd_real_p50')))}."
            )
            cause = (
                "The discriminator scores ground truth and predictions alike (about 0.5): it "
                "is not learning (learning rate too low, updated too rarely, or too much label "
                "smoothing), so feature matching and the image gate get no signal from it; a "
                "gate below 0.5 then passes nearly every image."
            )
            remedies = [
                f"TrainerConfig(lr_d={_g(3 * float(lr_d))}): a faster discriminator (now {_g(float(lr_d))})"
                if lr_d is not None
                else "TrainerConfig(lr_d=1e-4): S4GAN's discriminator lr",
                "TrainerConfig(d_update_interval=1, label_smoothing=0.0): update it every step "
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
                )
            )
        return findings


def _gate_repr(history: Sequence[Record]) -> str:
    """The run's image gate as a constructor call, else S4GAN's default gate."""
    for r in reversed(history):
        if _kind(r) == "config":
            text = str((r.get("parts") or {}).get("pseudo_filter") or "")
            if "Gate(" in text and not text.startswith("AndFilter("):
                return text
            break
    return "DiscriminatorGate(0.2)"


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

    Args:
        min_entropy_auc: an entropy AUC at least this is a discriminator that ranks
            by sharpness.
        max_accuracy_auc: an accuracy AUC at most this is a score that says little
            about correctness.
    """

    min_entropy_auc: float = 0.75
    max_accuracy_auc: float = 0.6
    code: ClassVar[str] = "d_judges_softness"

    def _softness(self, r: Record) -> bool:
        ent, acc = _num(r, "d_auc_entropy"), _num(r, "d_auc_accuracy")
        if ent is None or acc is None:
            return False
        return ent >= self.min_entropy_auc and acc <= self.max_accuracy_auc

    def check(self, history: Sequence[Record]) -> list[Finding]:
        recs = [
            e
            for e in eval_records(history)
            if _num(e, "d_auc_entropy") is not None and _num(e, "d_auc_accuracy") is not None
        ]
        if not recs or not self._softness(recs[-1]):
            return []
        i = len(recs) - 1
        while i > 0 and self._softness(recs[i - 1]):
            i -= 1
        run, last = recs[i:], recs[-1]
        first_step, last_step = int(run[0]["step"]), int(last["step"])
        ent, acc = float(last["d_auc_entropy"]), float(last["d_auc_accuracy"])
        images = _num(last, "diag_images")
        over = f" over {int(images)} validation images" if images is not None else ""
        seen = (
            f"At the evaluation of step {last_step}{over}: D(fake) ranks the sharper half of "
            f"the predictions (mean entropy at most the median) above the rest with AUC "
            f"{ent:.2f} (d_auc_entropy >= {self.min_entropy_auc}), but the more accurate half "
            f"(pixel accuracy at least the median) with AUC {acc:.2f} (d_auc_accuracy <= "
            f"{self.max_accuracy_auc}; 0.5 is no relation)."
        )
        obj = _num(last, "d_auc_object_accuracy")
        if obj is not None:
            seen += f" On object pixels only: AUC {obj:.2f} (d_auc_object_accuracy)."
        real, fake = _num(last, "diag_d_real_mean"), _num(last, "diag_d_fake_mean")
        if real is not None and fake is not None:
            seen += f" D(real) mean {real:.3f}, D(fake) mean {fake:.3f}."
        if len(run) > 1:
            history_acc = ", ".join(f"{float(r['d_auc_accuracy']):.2f}" for r in run)
            seen += (
                f" The same at every evaluation since step {first_step} ({len(run)} "
                f"evaluations; d_auc_accuracy {history_acc})."
            )
        sep = _num(last, "d_auc_real_fake")
        cause = (
            "The discriminator is shown one-hot ground truth as real (entropy 0 at every "
            "pixel) and softmax predictions as fake (entropy above 0 at every pixel), so it "
            "can tell them apart by softness alone"
            + (f" (it separates them with AUC {sep:.2f})" if sep is not None else "")
            + ": its score rises with how sharp a prediction is, not with how right. A gate "
            "on D(fake) then keeps sharp predictions, wrong ones included, and feature "
            "matching pulls the generator towards sharper maps rather than better ones."
        )
        gate = _gate_repr(history)
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
                severity="warning",
                title="D separates real from fake by entropy, not by correctness",
                seen=seen,
                cause=cause,
                remedies=remedies,
                first_step=first_step,
                last_step=last_step,
                evidence=evidence,
            )
        ]


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
        evals = [e for e in eval_records(history) if _num(e, "miou") is not None]
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
            if _sum(pre, "st_images_total") and _sum(post, "st_images_total"):
                clues.append(
                    f"pseudo-labels kept: {_share_kept(pre)} in the windows up to the best, "
                    f"{_share_kept(post)} in the last windows"
                )
            d_pre, d_post = _values(pre, "loss_d"), _values(post, "loss_d")
            if d_pre and d_post:
                clues.append(f"loss_d {_f(d_pre[-1])} at the best, {_f(d_post[-1])} now")
            t_pre, t_post = _values(pre, "train_miou"), _values(post, "train_miou")
            if t_pre and t_post:
                clues.append(f"train mIoU {_f(t_pre[-1])} then, {_f(t_post[-1])} now")
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
            window = _values([r for r in trains if prev < r["step"] <= e["step"]], "train_miou")
            prev = e["step"]
            if window and _num(e, "miou") is not None:
                gaps.append((e, statistics.fmean(window), e["miou"]))
        findings = []
        for i, j in _runs(gaps, lambda g: g[1] - g[2] > self.max_gap):
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
                        *_restore_remedy(history)[:1],
                    ],
                    first_step=run[0][0]["step"],
                    last_step=run[-1][0]["step"],
                    evidence={"max_gap_seen": max(t - v for _, t, v in run)},
                )
            )
        return findings


@dataclass(frozen=True)
class NonFiniteLoss:
    """A NaN or infinite loss, or steps the trainer skipped because of one."""

    keys: tuple[str, ...] = LOSSES
    code: ClassVar[str] = "loss_nonfinite"

    def _bad(self, r: Record, skipped_before: float) -> list[str]:
        bad = [
            f"{k}={r[k]}"
            for k in self.keys
            if isinstance(r.get(k), (int, float)) and not math.isfinite(float(r[k]))
        ]
        skipped = _num(r, "nonfinite_skipped")
        if skipped is not None and skipped > skipped_before:
            bad.append(f"{int(skipped - skipped_before)} steps skipped by the trainer")
        return bad

    def check(self, history: Sequence[Record]) -> list[Finding]:
        recs = train_records(history)
        bad: list[list[str]] = []
        skipped = 0.0
        for r in recs:
            bad.append(self._bad(r, skipped))
            skipped = _num(r, "nonfinite_skipped") or skipped
        findings = []
        for i, j in _runs(list(range(len(recs))), lambda k: bool(bad[k])):
            run = recs[i:j]
            what = "; ".join(
                f"step {r['step']}: {', '.join(bad[i + n])}" for n, r in enumerate(run)
            )
            cfg = run_config(history)
            lr_g = float(cfg.get("lr_g", 2.5e-4))
            remedies = [
                "TrainerConfig(grad_clip=10.0): clip the global gradient norm of G and D",
                f"TrainerConfig(lr_g={_g(lr_g / 2)}): a smaller generator lr (now {_g(lr_g)})",
                "TrainerConfig(warmup_steps=500): ramp both learning rates up",
            ]
            if cfg.get("amp") == "fp16":
                remedies.append("TrainerConfig(amp='bf16'): bf16 does not overflow like fp16")
            findings.append(
                Finding(
                    code=self.code,
                    severity="critical",
                    title="non-finite loss",
                    seen=f"{what}.",
                    cause=(
                        "A loss overflowed or became NaN: too large a learning rate, fp16 "
                        "overflow, or NaN in the data. The trainer skips such steps "
                        "(check_finite) and stops after max_nonfinite_steps in a row."
                    ),
                    remedies=remedies,
                    first_step=run[0]["step"],
                    last_step=run[-1]["step"],
                )
            )
        return findings


@dataclass(frozen=True)
class ExplodingLoss:
    """A loss far above its recent level.

    A record explodes when a loss exceeds ``factor`` times the median of its last
    ``baseline`` positive values, and ``min_value``. Zeros are left out of the
    baseline: an inactive self-training term logs 0. The generator's own losses are
    watched by default; loss_fm and loss_d move with the discriminator's balance
    (loss_fm grows tenfold when the discriminator wins), which the discriminator
    monitors diagnose.

    Args:
        factor: ratio to the recent median that counts as exploding.
        min_value: values below this never count (small losses fluctuate).
        baseline: number of earlier records whose median is the reference.
        keys: the losses to watch.
    """

    factor: float = 10.0
    min_value: float = 1.0
    baseline: int = 20
    keys: tuple[str, ...] = ("loss_ce", "loss_st")
    code: ClassVar[str] = "loss_exploding"

    def check(self, history: Sequence[Record]) -> list[Finding]:
        recs = train_records(history)
        past: dict[str, list[float]] = {k: [] for k in self.keys}
        hits: list[list[str]] = []
        for r in recs:
            hit = []
            for k in self.keys:
                v = _num(r, k)
                if v is None:
                    continue
                ref = past[k][-self.baseline :]
                if len(ref) >= 3:
                    level = statistics.median(ref)
                    if v > max(self.factor * level, self.min_value):
                        hit.append(f"{k} {v:.4g} (recent median {level:.4g})")
                if v > 0:
                    past[k].append(v)
            hits.append(hit)
        findings = []
        for i, j in _runs(list(range(len(recs))), lambda k: bool(hits[k])):
            run = recs[i:j]
            what = "; ".join(
                f"step {r['step']}: {', '.join(hits[i + n])}" for n, r in enumerate(run)
            )
            cfg = run_config(history)
            lr_g = float(cfg.get("lr_g", 2.5e-4))
            findings.append(
                Finding(
                    code=self.code,
                    severity="critical",
                    title="exploding loss",
                    seen=f"{what} (more than {self.factor}x the recent median).",
                    cause=(
                        "The optimisation diverges: the learning rate is too large for this "
                        "batch size, or a bad batch produced a huge gradient."
                    ),
                    remedies=[
                        "TrainerConfig(grad_clip=10.0): clip the global gradient norm",
                        f"TrainerConfig(lr_g={_g(lr_g / 2)}): halve the generator lr (now {_g(lr_g)})",
                        "TrainerConfig(warmup_steps=500): ramp the learning rates up",
                        *_restore_remedy(history)[:1],
                    ],
                    first_step=run[0]["step"],
                    last_step=run[-1]["step"],
                )
            )
        return findings


@dataclass(frozen=True)
class LearningRateExhausted:
    """The learning rate has decayed to almost nothing while val mIoU still improves.

    Args:
        min_factor: ``lr_g / base lr_g`` below this is "almost nothing".
        min_gain: improvement of the best val mIoU that counts as "still improving".
    """

    min_factor: float = 0.05
    min_gain: float = 0.0
    code: ClassVar[str] = "lr_exhausted"

    def check(self, history: Sequence[Record]) -> list[Finding]:
        trains = [r for r in train_records(history) if _num(r, "lr_g") is not None]
        if not trains:
            return []
        cfg = run_config(history)
        base = float(cfg.get("lr_g") or max(r["lr_g"] for r in trains))
        low = [r for r in trains if r["lr_g"] < self.min_factor * base]
        if not base or not low:
            return []
        first_low = low[0]["step"]
        best = -math.inf
        gains = []
        for e in eval_records(history):
            if _num(e, "miou") is None:
                continue
            if e["miou"] > best + self.min_gain and e["step"] >= first_low and best > -math.inf:
                gains.append((e, e["miou"] - best))
            best = max(best, e["miou"])
        if not gains:
            return []
        last_e, gain = gains[-1]
        max_steps = cfg.get("max_steps")
        remedies = [
            f"TrainerConfig(max_steps={2 * int(max_steps)}) and trainer.load_checkpoint("
            f"'checkpoints/last.pt'): continue longer (max_steps may change on resume)"
            if max_steps
            else "TrainerConfig(max_steps=...): train longer (max_steps may change on resume)",
            "TrainerConfig(poly_power=0.5): a slower decay for a new run",
        ]
        return [
            Finding(
                code=self.code,
                severity="info",
                title="learning rate almost exhausted while val mIoU still improves",
                seen=(
                    f"lr_g fell below {self.min_factor}x its base {_g(base)} at step {first_low} "
                    f"({_g(low[-1]['lr_g'])} at step {low[-1]['step']}), yet val mIoU set a new "
                    f"best at step {last_e['step']} ({last_e['miou']:.4f}, {gain:+.4f})."
                ),
                cause=(
                    "The poly schedule decays to 0 at max_steps; the model was still "
                    "improving, so the run probably ended too early."
                ),
                remedies=remedies,
                first_step=first_low,
                last_step=last_e["step"],
            )
        ]


def default_monitors(window_steps: int = 500) -> list[Monitor]:
    """Every monitor with its default limits; ``window_steps`` scales the step-based ones.

    Args:
        window_steps: steps of starvation or flooding that make a finding (500 in
            practice); discriminator dominance must last a fifth of it and a
            collapse twice it. Scale it down for short runs and tests.
    """
    if window_steps < 1:
        raise ValueError(f"window_steps must be >= 1, got {window_steps}")
    return [
        NonFiniteLoss(),
        ExplodingLoss(),
        SelfTrainingStarved(steps=window_steps),
        SelfTrainingFlooded(steps=window_steps),
        DiscriminatorDominant(min_steps=max(1, window_steps // 5)),
        DiscriminatorCollapsed(steps=2 * window_steps),
        DiscriminatorJudgesSoftness(),
        ValMiouFalling(),
        Overfitting(),
        LearningRateExhausted(),
    ]


def run_monitors(history: Sequence[Record], monitors: Sequence[Monitor]) -> list[Finding]:
    """All findings of ``monitors`` on ``history``, ordered by first step."""
    findings = [f for m in monitors for f in m.check(history)]
    return sorted(findings, key=lambda f: (f.first_step, f.code))
