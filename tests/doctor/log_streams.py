"""Synthetic log streams for the doctor's tests: a healthy run, each failure, the field report.

Records have the keys and units of ``metrics.jsonl`` (see s4seg.callbacks.JSONLLogger):
counts summed over a log window, losses and D-score quantiles over it.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

from s4seg.filters import DiscriminatorGate, PixelConfidenceFilter
from s4seg.methods import S4GAN
from s4seg.training.trainer import TrainerConfig

Record = dict[str, Any]


def config_record(pseudo_filter: Any = None, **overrides: Any) -> Record:
    """The content of config.json as a ``"config"`` record: S4GAN with ``pseudo_filter``;
    overrides that are no TrainerConfig field are S4GAN settings (``lr_d``, ...)."""
    f = pseudo_filter if pseudo_filter is not None else DiscriminatorGate(0.2)
    fields = {field.name for field in dataclasses.fields(TrainerConfig)}
    method = S4GAN(pseudo_filter=f, **{k: v for k, v in overrides.items() if k not in fields})
    return {
        "kind": "config",
        "trainer": dataclasses.asdict(
            TrainerConfig(**{k: v for k, v in overrides.items() if k in fields})
        ),
        "method": method.describe(),
        "parts": {"generator": "SegmentationGenerator"},
    }


def train_record(
    step: int,
    *,
    window: int,
    batch: int = 4,
    pixels: int = 32 * 32,
    kept: float,
    gate: float | None = 0.2,
    pixel_threshold: float = 0.0,
    pixel_share: float = 1.0,
    **fields: Any,
) -> Record:
    """A train record whose window kept ``kept`` (a fraction) of its images.

    With a gate, every pixel of a kept image is kept; ``pixel_share`` is the kept
    share of a kept image's pixels otherwise.
    """
    images = window * batch
    kept_images = round(kept * images)
    kept_pixels = round(kept_images * pixels * pixel_share)
    rec: Record = {
        "kind": "train",
        "step": step,
        "window_steps": window,
        "st_images_kept": kept_images,
        "st_images_total": images,
        "st_pixels_kept": kept_pixels,
        "st_pixels_total": images * pixels,
        "st_pixels_frac": kept_pixels / (images * pixels),
        "pixel_threshold": pixel_threshold,
        "nonfinite_skipped": 0,
    }
    if gate is not None:
        rec.update(gate_threshold=gate, gate_images_passed=kept_images)
    rec.update(fields)
    return rec


def lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def healthy(
    steps: int = 2000, log: int = 50, evals: int = 500, max_steps: int = 4000
) -> list[Record]:
    """A run that goes well: losses settle, D balanced, most images kept, val mIoU rises."""
    out: list[Record] = [config_record(max_steps=max_steps, log_interval=log, eval_interval=evals)]
    for step in range(log, steps + 1, log):
        t = step / steps
        wobble = 0.03 * math.sin(step / 70)
        factor = (1 - step / max_steps) ** 0.9
        out.append(
            train_record(
                step,
                window=log,
                kept=0.8 + wobble,
                loss_ce=lerp(1.8, 0.6, t) + wobble,
                loss_fm=0.03 + wobble / 10,
                loss_st=lerp(0.9, 0.4, t),
                loss_d=0.6 + wobble,
                d_fake_p10=0.15,
                d_fake_p50=0.4 + wobble,
                d_fake_p90=0.6,
                d_fake_mean=0.4,
                d_real_p10=0.4,
                d_real_p50=0.6 - wobble,
                d_real_p90=0.8,
                d_real_mean=0.6,
                train_miou=lerp(0.25, 0.5, t) + wobble,
                lr_g=2.5e-4 * factor,
                lr_d=1e-4 * factor,
            )
        )
        if step % evals == 0:
            miou = lerp(0.25, 0.45, t)
            out.append(
                {
                    "kind": "eval",
                    "step": step,
                    "miou": miou,
                    "iou": [miou] * 6,
                    "pixel_acc": 0.8,
                    "best_miou": miou,
                }
            )
    return out


def patch(
    records: list[Record], first: int, last: int, kind: str = "train", **fields: Any
) -> list[Record]:
    """Copies of ``records`` with ``fields`` set on the ``kind`` records in [first, last]."""
    out = []
    for r in records:
        r = dict(r)
        if r.get("kind") == kind and first <= r["step"] <= last:
            for key, value in fields.items():
                r[key] = value(r) if callable(value) else value
        out.append(r)
    return out


# The field report's table (iterations, batch 4, 256x256 patches, gate 0.2 on D(fake)).
# Rows: step -> (loss_ce, loss_fm, loss_st, loss_d, images kept per step of 4, train mIoU).
FIELD_TABLE = {
    0: (3.483, 0.001, 0.000, 0.693, 3.5, None),
    500: (1.412, 0.032, 0.000, 0.174, 3.5, 0.1438),
    1000: (2.572, 0.029, None, 0.708, 3.0, 0.1826),
    1100: (None, None, 0.295, None, 3.0, None),
    1200: (None, None, 0.224, None, 3.0, None),
    1500: (1.475, 0.026, 0.188, 0.315, 3.0, 0.1550),
    1600: (None, None, 0.000, None, 0.0, None),
    2000: (1.225, 0.079, 0.000, 0.079, 0.0, 0.1189),
}
FIELD_VAL = {500: 0.1436, 1000: 0.1802, 1500: 0.1536, 2000: 0.1151}


def _field_value(step: int, column: int) -> float:
    """The table's value, linearly interpolated between the rows that have one."""
    known = sorted((s, row[column]) for s, row in FIELD_TABLE.items() if row[column] is not None)
    for (s0, v0), (s1, v1) in itertools.pairwise(known):
        if s0 <= step <= s1:
            return lerp(v0, v1, (step - s0) / (s1 - s0))
    return known[-1][1]


def field_report(with_d_scores: bool = False) -> list[Record]:
    """The failed run of docs' field report, logged every 100 steps as s4seg would.

    The counts are images per window of 100 steps x 4 images; with the S4GAN gate
    every pixel of a kept image is kept. The run did not log D-score quantiles;
    ``with_d_scores`` adds plausible ones (median 0.03 once the count is 0).
    """
    out: list[Record] = [config_record(log_interval=100, eval_interval=500, max_steps=20_000)]
    for step in range(100, 2001, 100):
        per_step = 0.0 if step >= 1600 else (3.5 if step <= 500 else 3.0)
        fields = {
            "loss_ce": _field_value(step, 0),
            "loss_fm": _field_value(step, 1),
            "loss_st": _field_value(step, 2),
            "loss_d": _field_value(step, 3),
            "train_miou": _field_value(step, 5),
        }
        if with_d_scores:
            low = step >= 1600
            fields.update(
                d_fake_p10=0.01 if low else 0.2,
                d_fake_p50=0.03 if low else 0.45,
                d_fake_p90=0.08 if low else 0.7,
                d_real_p50=0.97 if low else 0.6,
            )
        out.append(train_record(step, window=100, pixels=256 * 256, kept=per_step / 4, **fields))
        if step in FIELD_VAL:
            out.append(
                {
                    "kind": "eval",
                    "step": step,
                    "miou": FIELD_VAL[step],
                    "iou": [],
                    "pixel_acc": 0.0,
                    "best_miou": max(v for s, v in FIELD_VAL.items() if s <= step),
                }
            )
    return out


PIXEL_FILTER = PixelConfidenceFilter(0.95)


def collapsing(steps: int = 3000) -> list[Record]:
    """A healthy start, then from step 1000 on val falls while the kept pixels shrink and
    the discriminator's score turns against correctness (confirmation bias)."""
    history = healthy(steps=steps, max_steps=2 * steps)
    history = patch(history, 1001, steps, st_pixels_frac=lambda r: 0.3 * r["st_pixels_frac"])
    history = patch(history, 1001, steps, st_object_kept_accuracy=0.55)
    history = patch(history, 0, 1000, st_object_kept_accuracy=0.8)
    history = patch(history, 1001, steps, kind="eval", miou=lambda r: 0.28 - r["step"] / 1e5)
    return patch(history, 1001, steps, kind="eval", d_auc_accuracy=0.12)


def collapsing_at_onset(steps: int = 3000, start: int = 1000) -> list[Record]:
    """Labels only up to ``start`` (val rising), then self-training switches on and val
    falls at once, its kept object pixels almost never right: FixMatch's run at the
    benchmark's converged preset (a warm-up, then a flood of background pseudo-labels)."""
    history = healthy(steps=steps, max_steps=2 * steps)
    history = patch(history, 0, start, st_pixels_frac=0.0, st_pixels_kept=0, st_images_kept=0)
    history = patch(history, start + 1, steps, st_pixels_frac=0.98, st_object_kept_accuracy=0.02)
    return patch(history, start + 1, steps, kind="eval", miou=lambda r: 0.22 + r["step"] / 1e5)
