"""Queries over a run's log records, and the formatting the findings share.

The records are those of ``run_dir/metrics.jsonl`` (``"kind": "train"`` every
``log_interval`` steps, ``"kind": "eval"`` at each evaluation), optionally preceded by
a ``{"kind": "config", "trainer": {...}, "method": {...}, "parts": {...}}`` record (the
content of ``config.json``) that lets remedies quote the run's own settings.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = [
    "LN2",
    "LOSSES",
    "STUCK_IOU",
    "Record",
    "auto_duration_steps",
    "best_eval",
    "bridge_runs",
    "config_record",
    "count_of",
    "eval_records",
    "filter_text",
    "fixed",
    "has_gate",
    "log_interval_of",
    "median_of",
    "method_class",
    "method_parts",
    "method_settings",
    "number_at",
    "numbers_of",
    "percent",
    "record_kind",
    "run_config",
    "runs_where",
    "share_kept",
    "short",
    "stuck_classes",
    "sureness",
    "total_of",
    "train_records",
    "window_start",
    "windows_sureness",
]

LOSSES = ("loss_ce", "loss_fm", "loss_st", "loss_d")
LN2 = math.log(2.0)
STUCK_IOU = 0.05  # a class whose val IoU never exceeds this has not been learnt
Record = dict[str, Any]
T = TypeVar("T")


def record_kind(record: Record) -> str:
    if "kind" in record:
        return str(record["kind"])
    # Records straight from Callback.on_log / on_eval_end carry no kind.
    return "eval" if "miou" in record and "loss_ce" not in record else "train"


def train_records(history: Sequence[Record]) -> list[Record]:
    """The ``"train"`` records, in log order."""
    return [r for r in history if record_kind(r) == "train" and "step" in r]


def eval_records(history: Sequence[Record]) -> list[Record]:
    """The ``"eval"`` records, in log order."""
    return [r for r in history if record_kind(r) == "eval" and "step" in r and "miou" in r]


def config_record(history: Sequence[Record]) -> Record:
    for r in reversed(history):
        if record_kind(r) == "config":
            return r
    return {}


def run_config(history: Sequence[Record]) -> dict[str, Any]:
    """The trainer config of the last ``"config"`` record ({} when there is none)."""
    return dict(config_record(history).get("trainer") or {})


def method_settings(history: Sequence[Record]) -> dict[str, Any]:
    """The method's settings of the last ``"config"`` record ({} when there are none)."""
    method = config_record(history).get("method")
    return dict(method.get("settings") or {}) if isinstance(method, dict) else {}


def method_parts(history: Sequence[Record]) -> dict[str, Any]:
    record = config_record(history)
    method = record.get("method")
    if isinstance(method, dict) and method.get("parts"):
        return dict(method["parts"])
    return dict(record.get("parts") or {})  # a run folder of s4seg before the method seam


def method_class(history: Sequence[Record]) -> str:
    """The class a remedy's settings belong to: the run's method, else S4GAN."""
    method = config_record(history).get("method")
    if isinstance(method, dict) and method.get("class"):
        return str(method["class"])
    return "S4GAN"


def filter_text(history: Sequence[Record]) -> str | None:
    parts = method_parts(history)
    return parts.get("pseudo_filter_thresholds") or parts.get("pseudo_filter")


def number_at(record: Record, key: str) -> float | None:
    """A finite number from ``record``, else None."""
    v = record.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def numbers_of(records: Sequence[Record], key: str) -> list[float]:
    return [v for v in (number_at(r, key) for r in records) if v is not None]


def median_of(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def runs_where(items: Sequence[T], pred: Callable[[T], bool]) -> list[tuple[int, int]]:
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


def bridge_runs(runs: list[tuple[int, int]], max_gap: int) -> list[tuple[int, int]]:
    """Join runs separated by at most ``max_gap`` items (a condition that flickers)."""
    out: list[tuple[int, int]] = []
    for i, j in runs:
        if out and i - out[-1][1] <= max_gap:
            out[-1] = (out[-1][0], j)
        else:
            out.append((i, j))
    return out


def window_start(records: Sequence[Record], i: int) -> int:
    """The step at which the window of record ``i`` began."""
    r = records[i]
    if "window_steps" in r:
        return int(r["step"]) - int(r["window_steps"])
    return int(records[i - 1]["step"]) if i > 0 else 0


def fixed(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def short(x: float) -> str:
    return f"{x:.3g}"


def percent(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"


def total_of(records: Sequence[Record], key: str) -> int:
    return int(sum(numbers_of(records, key)))


def best_eval(history: Sequence[Record], before: int | None = None) -> Record | None:
    evals = [
        e
        for e in eval_records(history)
        if number_at(e, "miou") is not None and (before is None or e["step"] <= before)
    ]
    return max(evals, key=lambda e: e["miou"]) if evals else None


def has_gate(records: Sequence[Record]) -> bool:
    return any("gate_threshold" in r for r in records)


def count_of(
    records: Sequence[Record], kept_key: str, total_key: str, unit: str, *, share: bool = True
) -> str | None:
    """``"k of N <unit> (p%)"`` summed over ``records`` (without ``(p%)`` unless ``share``);
    ``"k <unit>"`` when no record has ``total_key``, None when none has ``kept_key``.

    A log that lacks a key (an older s4seg, another method, a converted log of the
    original code) says what it has rather than "0 of 0".
    """
    if not numbers_of(records, kept_key):
        return None
    kept = total_of(records, kept_key)
    if not numbers_of(records, total_key):
        return f"{kept:,} {unit}"
    total = total_of(records, total_key)
    return f"{kept:,} of {total:,} {unit}" + (f" ({percent(kept, total)})" if share else "")


def share_kept(records: Sequence[Record]) -> str:
    """What self-training kept over ``records``, in images and in pixels (those logged)."""
    images = count_of(records, "st_images_kept", "st_images_total", "images")
    pixels = count_of(records, "st_pixels_kept", "st_pixels_total", "pixels")
    return " and ".join(x for x in (images, pixels) if x) or "no count logged"


def log_interval_of(history: Sequence[Record]) -> int | None:
    """The run's log interval: from its config, else from its train records' windows."""
    cfg = run_config(history)
    if isinstance(cfg.get("log_interval"), int) and cfg["log_interval"] > 0:
        return int(cfg["log_interval"])
    trains = train_records(history)
    windows = [int(r["window_steps"]) for r in trains if number_at(r, "window_steps")]
    if not windows:
        windows = [int(b["step"]) - int(a["step"]) for a, b in itertools.pairwise(trains)]
    windows = [w for w in windows if w > 0]
    return int(statistics.median(windows)) if windows else None


def auto_duration_steps(history: Sequence[Record], *, cap: int = 500) -> int:
    """The doctor's ``duration_steps`` for this run, from its own length and log interval.

    A quarter of the run (its ``max_steps``, else its last logged step), at most ``cap``
    (500: the field report's 20k-step run), and at least three log windows, so that
    one noisy window is never a finding: 500 for a 20k-step run, 375 for the 1500-step
    S4GAN recipe, 75 for 300 steps logged every 25.
    """
    cfg = run_config(history)
    length = cfg.get("max_steps")
    if not isinstance(length, int) or length < 1:
        length = max((int(r["step"]) for r in history if number_at(r, "step")), default=0)
    log = log_interval_of(history) or 1
    return max(1, 3 * log, min(cap, length // 4))


def sureness(level: str, why: str) -> str:
    """How sure a finding is: ``"high"``, ``"medium"`` or ``"low"``, and on what evidence."""
    if level not in ("high", "medium", "low"):
        raise ValueError(f"level must be 'high', 'medium' or 'low', got {level!r}")
    return f"{level}: {why}"


def stuck_classes(history: Sequence[Record], limit: float = STUCK_IOU) -> dict[int, float]:
    """Classes whose val IoU stayed at or below ``limit`` at every evaluation: class -> best IoU.

    A class absent from every evaluation (IoU NaN: in neither the ground truth nor the
    prediction) is not stuck, only unseen.
    """
    best: dict[int, float] = {}
    for e in eval_records(history):
        iou = e.get("iou")
        if not isinstance(iou, list):
            continue
        for c, v in enumerate(iou):
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                best[c] = max(best.get(c, -math.inf), float(v))
    return {c: v for c, v in sorted(best.items()) if v <= limit}


def windows_sureness(windows: int, steps: int, limit: int) -> str:
    """:func:`sureness` of a condition seen in ``windows`` log windows in a row over ``steps``."""
    level = "high" if windows >= 5 else "medium" if windows >= 3 else "low"
    return sureness(
        level, f"{windows} log windows in a row over {steps} steps (the limit: {limit} steps)"
    )
