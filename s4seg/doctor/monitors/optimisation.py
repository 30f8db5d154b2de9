"""Optimisation monitors: non-finite or exploding losses, a learning rate that has run out."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from s4seg.doctor.findings import Finding
from s4seg.doctor.records import (
    LOSSES,
    Record,
    eval_records,
    number_at,
    run_config,
    runs_where,
    short,
    sureness,
    train_records,
)
from s4seg.doctor.remedies import (
    restore_remedy,
)

__all__ = ["ExplodingLoss", "LearningRateExhausted", "NonFiniteLoss"]


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
        skipped = number_at(r, "nonfinite_skipped")
        if skipped is not None and skipped > skipped_before:
            bad.append(f"{int(skipped - skipped_before)} steps skipped by the trainer")
        return bad

    def check(self, history: Sequence[Record]) -> list[Finding]:
        recs = train_records(history)
        bad: list[list[str]] = []
        skipped = 0.0
        for r in recs:
            bad.append(self._bad(r, skipped))
            skipped = number_at(r, "nonfinite_skipped") or skipped
        findings = []
        for i, j in runs_where(list(range(len(recs))), lambda k: bool(bad[k])):
            run = recs[i:j]
            what = "; ".join(
                f"step {r['step']}: {', '.join(bad[i + n])}" for n, r in enumerate(run)
            )
            cfg = run_config(history)
            lr_g = float(cfg.get("lr_g", 2.5e-4))
            remedies = [
                "TrainerConfig(grad_clip=10.0): clip the global gradient norm of G and D",
                f"TrainerConfig(lr_g={short(lr_g / 2)}): a smaller generator lr (now {short(lr_g)})",
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
                    confidence=sureness("high", "a non-finite number in the log is a fact"),
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
                v = number_at(r, k)
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
        for i, j in runs_where(list(range(len(recs))), lambda k: bool(hits[k])):
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
                        f"TrainerConfig(lr_g={short(lr_g / 2)}): halve the generator lr (now {short(lr_g)})",
                        "TrainerConfig(warmup_steps=500): ramp the learning rates up",
                        *restore_remedy(history)[:1],
                    ],
                    first_step=run[0]["step"],
                    last_step=run[-1]["step"],
                    confidence=sureness(
                        "high" if len(run) >= 2 else "medium",
                        f"{len(run)} log window(s) above {self.factor}x the median of the "
                        f"last {self.baseline}",
                    ),
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
        trains = [r for r in train_records(history) if number_at(r, "lr_g") is not None]
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
            if number_at(e, "miou") is None:
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
                    f"lr_g fell below {self.min_factor}x its base {short(base)} at step {first_low} "
                    f"({short(low[-1]['lr_g'])} at step {low[-1]['step']}), yet val mIoU set a new "
                    f"best at step {last_e['step']} ({last_e['miou']:.4f}, {gain:+.4f})."
                ),
                cause=(
                    "The poly schedule decays to 0 at max_steps; the model was still "
                    "improving, so the run probably ended too early."
                ),
                remedies=remedies,
                first_step=first_low,
                last_step=last_e["step"],
                confidence=sureness(
                    "medium",
                    f"{len(gains)} new best(s) after the lr fell; more steps may still not help",
                ),
            )
        ]
