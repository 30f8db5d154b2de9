"""``s4seg report DIR``: a markdown report and plots of a run, or of a folder of runs.

For one run folder it reads ``metrics.jsonl`` (a last line cut short by a running or
crashed run is skipped), ``config.json`` and ``doctor.jsonl`` when present, runs the
monitors, and writes ``report.md`` with ``losses.png``, ``miou.png``, ``st_kept.png``
and ``d_scores.png`` next to it. Given a folder that holds run folders (the main job's
``runs/s4gan_synthetic`` holds ``supervised/`` and ``s4gan/``), it reports each run in
its own folder and writes a comparison of them into the folder's ``report.md``, with
their validation curves on one plot (``val_miou.png``).
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s4seg.doctor.findings import Finding
from s4seg.doctor.monitors import Monitor, default_monitors, run_monitors
from s4seg.doctor.records import (
    LN2,
    LOSSES,
    STUCK_IOU,
    auto_duration_steps,
    count_of,
    eval_records,
    has_gate,
    method_parts,
    number_at,
    numbers_of,
    share_kept,
    stuck_classes,
    train_records,
)
from s4seg.jsonl import read_jsonl

__all__ = [
    "RunLog",
    "find_runs",
    "load_run",
    "render_comparison",
    "render_report",
    "write_comparison_plot",
    "write_plots",
    "write_report",
    "write_reports",
]

PLOTS = ("losses.png", "miou.png", "st_kept.png", "d_scores.png")
AUC_KEYS = ("d_auc_accuracy", "d_auc_object_accuracy", "d_auc_entropy", "d_auc_real_fake")


@dataclass
class RunLog:
    """What a run folder holds, read tolerantly.

    Attributes:
        run_dir: the run folder.
        records: ``metrics.jsonl`` records in file order.
        config: ``config.json`` (``{"trainer": ..., "method": ..., "parts": ...}``), or None.
        doctor: ``doctor.jsonl`` entries (findings and actions), or [].
        skipped: ``"file:line"`` of lines that could not be read.
    """

    run_dir: Path
    records: list[dict[str, Any]]
    config: dict[str, Any] | None = None
    doctor: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def history(self) -> list[dict[str, Any]]:
        """The records the monitors read: the config first, then the log."""
        head = [{"kind": "config", **self.config}] if self.config else []
        return head + self.records


def load_run(run_dir: str | Path) -> RunLog:
    """Read a run folder written by :func:`s4seg.callbacks.default_callbacks`."""
    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        raise FileNotFoundError(
            f"no metrics.jsonl in {run_dir}: pass the run folder given to default_callbacks "
            f"(or JSONLLogger), or a folder that holds such run folders"
        )
    bad: list[int] = []
    records = read_jsonl(metrics, skipped=bad)
    run = RunLog(run_dir, records, skipped=[f"metrics.jsonl:{n}" for n in bad])
    config_path = run_dir / "config.json"
    if config_path.is_file():
        try:
            run.config = json.loads(config_path.read_text())
        except json.JSONDecodeError:
            run.skipped.append("config.json")
    doctor_path = run_dir / "doctor.jsonl"
    if doctor_path.is_file():
        bad = []
        run.doctor = read_jsonl(doctor_path, skipped=bad)
        run.skipped += [f"doctor.jsonl:{n}" for n in bad]
    return run


def find_runs(folder: str | Path) -> list[Path]:
    """The run folders (those that hold ``metrics.jsonl``) in ``folder`` or below it, sorted.

    ``folder`` itself when it is a run folder.
    """
    folder = Path(folder)
    if (folder / "metrics.jsonl").is_file():
        return [folder]
    return sorted(p.parent for p in folder.rglob("metrics.jsonl") if p.is_file())


def write_report(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    monitors: Sequence[Monitor] | None = None,
    duration_steps: int | None = None,
    plots: bool = True,
) -> Path:
    """Write ``report.md`` (and the PNG plots) for a run; returns the report's path.

    Given a folder of runs instead, writes :func:`write_reports` and returns the path
    of the comparison.

    Args:
        run_dir: the run folder (or a folder of run folders).
        out_dir: where to write (default: ``run_dir``).
        monitors: the checks (default :func:`s4seg.doctor.default_monitors`).
        duration_steps: scales the default monitors' step limits (see there); None:
            from the run's own length and log interval
            (:func:`s4seg.doctor.records.auto_duration_steps`).
        plots: also write the PNG plots (needs matplotlib).
    """
    if not (Path(run_dir) / "metrics.jsonl").is_file() and find_runs(run_dir):
        return write_reports(
            run_dir, out_dir, monitors=monitors, duration_steps=duration_steps, plots=plots
        )[-1]
    path, _, _ = _write_one(load_run(run_dir), out_dir, monitors, duration_steps, plots)
    return path


def write_reports(
    folder: str | Path,
    out_dir: str | Path | None = None,
    *,
    monitors: Sequence[Monitor] | None = None,
    duration_steps: int | None = None,
    plots: bool = True,
) -> list[Path]:
    """Report a run, or every run below a folder and a comparison of them; returns the paths.

    For a run folder, ``[report.md]``. For a folder of runs, each run's ``report.md``
    (in the run's folder, or under ``out_dir`` at the same relative path), then the
    comparison: ``folder/report.md`` (or ``out_dir/report.md``) with ``val_miou.png``.

    Raises:
        FileNotFoundError: neither ``folder`` nor any folder below it holds metrics.jsonl.
    """
    folder = Path(folder)
    runs = find_runs(folder)
    if not runs:
        raise FileNotFoundError(
            f"no metrics.jsonl in {folder} nor in any folder below it: pass a run folder "
            f"(the one given to default_callbacks) or a folder of them"
        )
    if runs == [folder]:
        path, _, _ = _write_one(load_run(folder), out_dir, monitors, duration_steps, plots)
        return [path]
    base = Path(out_dir) if out_dir is not None else folder
    paths, reported = [], []
    for run_dir in runs:
        rel = run_dir.relative_to(folder)
        path, run, findings = _write_one(
            load_run(run_dir), base / rel, monitors, duration_steps, plots
        )
        paths.append(path)
        reported.append((run, findings, rel.as_posix()))
    base.mkdir(parents=True, exist_ok=True)
    names = (
        [write_comparison_plot([r for r, _, _ in reported], base, [n for _, _, n in reported])]
        if plots
        else []
    )
    comparison = base / "report.md"
    comparison.write_text(render_comparison(folder, reported, [n for n in names if n]))
    return [*paths, comparison]


def _write_one(
    run: RunLog,
    out_dir: str | Path | None,
    monitors: Sequence[Monitor] | None,
    duration_steps: int | None,
    plots: bool,
) -> tuple[Path, RunLog, list[Finding]]:
    out = Path(out_dir) if out_dir is not None else run.run_dir
    out.mkdir(parents=True, exist_ok=True)
    if monitors is None:
        steps = duration_steps if duration_steps is not None else auto_duration_steps(run.history)
        monitors = default_monitors(steps)
    findings = merge_findings(run_monitors(run.history, list(monitors)), run.doctor)
    names = write_plots(run, out) if plots else []
    path = out / "report.md"
    path.write_text(render_report(run, findings, names))
    return path, run, findings


def merge_findings(offline: list[Finding], doctor: list[dict[str, Any]]) -> list[Finding]:
    """The monitors' findings plus those only the live Doctor reported (other limits)."""
    seen = {f.key for f in offline}
    live = [Finding.from_dict(e) for e in doctor if e.get("kind") == "finding"]
    extra = [f for f in live if f.key not in seen]
    unique = {f.key: f for f in extra}  # a resumed run may have written one twice
    return sorted([*offline, *unique.values()], key=lambda f: (f.first_step, f.code))


# ---------------------------------------------------------------------- markdown
def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else str(value)
    return str(value)


def _nice(x: float) -> int:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is >= x (an integer >= 1)."""
    if x <= 1:
        return 1
    power = 10 ** math.floor(math.log10(x))
    for m in (1, 2, 2.5, 5, 10):
        if m * power >= x:
            return max(1, math.ceil(m * power))
    return math.ceil(10 * power)  # unreachable


def _sample(records: list[dict[str, Any]], n: int = 12) -> list[dict[str, Any]]:
    """About ``n`` records at regular steps (a round multiple of the log interval).

    The first and the last record are kept as well, so the table spans the run.
    """
    if len(records) <= n:
        return records
    steps = [int(r["step"]) for r in records]
    gaps = [b - a for a, b in itertools.pairwise(steps) if b > a]
    log = int(statistics.median(gaps)) if gaps else 1
    stride = _nice((steps[-1] - steps[0]) / (n - 1))
    stride = max(log, math.ceil(stride / log) * log)
    keep = [i for i, s in enumerate(steps) if s % stride == 0]
    if len(keep) < n // 2:  # steps off the grid (a resumed run): spread by index instead
        keep = [round(i * (len(records) - 1) / (n - 1)) for i in range(n)]
    idx = sorted({0, *keep, len(records) - 1})
    return [records[i] for i in idx]


def _table(header: Sequence[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _trend(trains: list[dict[str, Any]], key: str) -> str | None:
    points = [(r["step"], r[key]) for r in trains if isinstance(r.get(key), (int, float))]
    if not points:
        return None
    lo = min(points, key=lambda p: p[1])
    hi = max(points, key=lambda p: p[1])
    return (
        f"- `{key}`: {_fmt(points[0][1])} at step {points[0][0]} -> {_fmt(points[-1][1])} at "
        f"step {points[-1][0]} (min {_fmt(lo[1])} at step {lo[0]}, max {_fmt(hi[1])} at step "
        f"{hi[0]})"
    )


def _method_line(config: dict[str, Any] | None) -> str | None:
    """The method and the settings a reader checks first, from config.json."""
    if not config:
        return None
    cfg = config.get("trainer") or {}
    method = config.get("method")
    if isinstance(method, dict):
        settings = method.get("settings") or {}
        name = f"{method.get('name')} (`{method.get('class')}`)"
    else:  # a run folder of s4seg before the method seam: everything was in "trainer"
        settings, name = cfg, str(cfg.get("method"))
    parts = [f"- Method {name}; lr_g {cfg.get('lr_g')}"]
    for key in ("lr_d", "d_update_interval", "label_smoothing", "lambda_st", "start_step"):
        if settings.get(key) is not None:
            parts.append(f"{key} {settings[key]}")
    parts.append(
        f"log every {cfg.get('log_interval')} steps, eval every {cfg.get('eval_interval')}."
    )
    return ", ".join(parts)


def _converted_line(config: dict[str, Any] | None) -> str | None:
    """Where a converted run came from (``s4seg report --from s4gan-log``), and how to read it."""
    source = (config or {}).get("converted_from")
    if not isinstance(source, dict):
        return None
    evals = source.get("eval_logs") or []
    line = (
        f"- Converted from a log of the original S4GAN code ({source.get('program')}): "
        f"`{source.get('train_log')}`, iterations {source.get('first_iteration')}-"
        f"{source.get('last_iteration')} ({source.get('iterations')} iteration lines), one record per "
        f"{source.get('window_iterations')} iterations (iteration i is step i + 1)"
        + (f", and {len(evals)} evaluation log(s)" if evals else "")
        + ". Its `Above ST-Threshold : k / B` counts **images** whose discriminator "
        "probability passed the threshold (no line: 0 images), never pixels."
    )
    skipped = source.get("skipped") or []
    if skipped:
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        line += f" Lines not read: {'; '.join(map(str, skipped[:5]))}{more}."
    return line


def _filter_line(history: list[dict[str, Any]]) -> str | None:
    parts = method_parts(history)
    name = parts.get("pseudo_filter")
    if not name or str(name) == "None":
        return None
    what = parts.get("pseudo_filter_thresholds")
    return f"- Pseudo-label filter `{name}`" + (f": {what}." if what else ".")


def _stuck_line(history: list[dict[str, Any]]) -> str | None:
    stuck = stuck_classes(history)
    if not stuck:
        return None
    n = len(eval_records(history))
    which = ", ".join(f"class {c} (best {v:.3f})" for c, v in stuck.items())
    return (
        f"- **Classes not learnt**: {which}: val IoU at most {STUCK_IOU} at every one of "
        f"{n} evaluation(s). The mIoU averages them in; see [Per-class IoU](#per-class-iou)."
    )


def render_report(run: RunLog, findings: list[Finding], plots: Sequence[str] = ()) -> str:
    """The markdown text of the report."""
    history = run.history
    trains, evals = train_records(run.records), eval_records(run.records)
    cfg = (run.config or {}).get("trainer", {})
    last = max([r["step"] for r in run.records if "step" in r], default=0)
    max_steps = cfg.get("max_steps")
    out = [f"# Training report: `{run.run_dir.name}`", ""]
    if max_steps and last >= max_steps:
        status = f"finished: step {last} of {max_steps}"
    elif max_steps:
        status = f"running or stopped: last logged step {last} of {max_steps}"
    else:
        status = f"last logged step {last} (no config.json: length unknown)"
    out.append(f"- Run folder: `{run.run_dir}`; {status}.")
    out += [line for line in (_converted_line(run.config), _method_line(run.config)) if line]
    out += [line for line in (_filter_line(history),) if line]
    if run.skipped:
        out.append(
            f"- Lines that could not be read (skipped; a running run may be writing the last "
            f"one): {', '.join(run.skipped)}."
        )
    out += [
        "",
        "Units: `st_images_kept / st_images_total` counts **images** with at least one "
        "pseudo-labelled pixel, summed over a log window's steps; `st_pixels_kept / "
        "st_pixels_total` counts **pixels**. `gate_threshold` is on the discriminator's "
        "probability per image (D(fake)); `pixel_threshold` is on each pixel's max softmax "
        "probability.",
        "",
        "## Summary",
        "",
    ]
    if not run.records:
        out.append("No log records yet.")
    stuck = _stuck_line(history)
    if stuck:
        out.append(stuck)
    if evals:
        best = max(evals, key=lambda e: e["miou"])
        out.append(
            f"- Best val mIoU {best['miou']:.4f} at step {best['step']}; last {evals[-1]['miou']:.4f}"
            f" at step {evals[-1]['step']} ({evals[-1]['miou'] - best['miou']:+.4f} from the best)."
        )
    counts = {s: sum(f.severity == s for f in findings) for s in ("critical", "warning", "info")}
    out.append(
        f"- Findings: {counts['critical']} critical, {counts['warning']} warning, "
        f"{counts['info']} info."
    )
    out += [
        f"  - {f.severity}: {f.title} ({f.steps()})"
        + (f"; how sure: {f.confidence.split(':')[0]}" if f.confidence else "")
        for f in findings
    ]

    out += ["", "## Validation mIoU", ""]
    if evals:
        rows, prev, best_so_far = [], None, -math.inf
        for e in evals:
            window = numbers_of(
                [r for r in trains if _prev_step(prev) < r["step"] <= e["step"]], "train_miou"
            )
            is_best = e["miou"] > best_so_far
            best_so_far = max(best_so_far, e["miou"])
            rows.append(
                [
                    str(e["step"]),
                    f"{e['miou']:.4f}" + (" (best)" if is_best else ""),
                    "" if prev is None else f"{e['miou'] - prev['miou']:+.4f}",
                    f"{e['miou'] - best_so_far:+.4f}",
                    f"{sum(window) / len(window):.4f}" if window else "",
                    _fmt(e.get("pixel_acc"), 4),
                ]
            )
            prev = e
        out.append(
            _table(
                ["step", "val mIoU", "change", "vs best so far", "train mIoU", "pixel acc"], rows
            )
        )
    else:
        out.append("No evaluation yet.")

    out += ["", "## Per-class IoU", ""]
    out += _per_class_section(evals)

    out += ["", "## Losses", ""]
    trends = [t for t in (_trend(trains, k) for k in LOSSES) if t]
    out += trends or ["No train records yet."]
    if trains:
        keys = [k for k in LOSSES if any(k in r for r in trains)]
        out += [
            "",
            _table(
                ["step", *keys],
                [[str(r["step"]), *[_fmt(r.get(k)) for k in keys]] for r in _sample(trains)],
            ),
        ]

    out += ["", "## Self-training activity", ""]
    st = [r for r in trains if "st_images_kept" in r]
    measured = any("st_pixels_correct" in r for r in st)
    if st:
        rows = []
        for r in _sample(st):
            rows.append(
                [
                    str(r["step"]),
                    _ratio(r, "st_images_kept", "st_images_total"),
                    _fmt(r.get("gate_images_passed")),
                    _ratio(r, "st_pixels_kept", "st_pixels_total"),
                    _pct_or_blank(r.get("st_pixels_frac")),
                    _fmt(r.get("gate_threshold"), 2),
                    _fmt(r.get("pixel_threshold"), 2),
                ]
            )
            if measured:
                rows[-1] += [
                    _pct_or_blank(r.get("st_kept_accuracy")),
                    _pct_or_blank(r.get("st_object_kept_accuracy")),
                ]
        got = " and ".join(
            x
            for x in (
                count_of(st, "st_images_kept", "st_images_total", "unlabelled images", share=False),
                count_of(st, "st_pixels_kept", "st_pixels_total", "pixels", share=False),
            )
            if x
        )
        out += [f"Over the run: {got} got pseudo-labels."]
        if measured:
            correct = sum(r.get("st_pixels_correct", 0) for r in st)
            kept = sum(r.get("st_pixels_kept", 0) for r in st if "st_pixels_correct" in r)
            obj_c = sum(r.get("st_object_pixels_correct", 0) for r in st)
            obj_k = sum(r.get("st_object_pixels_kept", 0) for r in st)
            out += [
                "",
                f"Measured against the unlabelled images' true masks: "
                f"{_pct(correct, kept)} of the kept pixels had the right label, and "
                f"{_pct(obj_c, obj_k)} of the kept object pixels (true class not background).",
            ]
        headers = [
            "step",
            "images kept / seen",
            "images past gate",
            "pixels kept / seen",
            "pixels kept",
            "gate threshold (D prob)",
            "pixel threshold (softmax)",
        ]
        if measured:
            headers += ["kept pixels right", "kept object pixels right"]
        out += ["", _table(headers, rows)]
    else:
        out.append("No self-training in this run (supervised, or no record yet).")

    out += ["", "## Discriminator balance", ""]
    dd = [r for r in trains if "loss_d" in r or "d_fake_p50" in r]
    if dd:
        out.append(
            f"loss_d is ln 2 = {LN2:.3f} when the discriminator cannot tell ground truth from "
            f"predictions, and near 0 when it always can. D(real) and D(fake) are its "
            f"probabilities that ground truth and predictions are real, per image."
        )
        out += [
            "",
            _table(
                ["step", "loss_d", "D(real) p50", "D(fake) p10", "D(fake) p50", "D(fake) p90"],
                [
                    [
                        str(r["step"]),
                        _fmt(r.get("loss_d")),
                        _fmt(r.get("d_real_p50")),
                        _fmt(r.get("d_fake_p10")),
                        _fmt(r.get("d_fake_p50")),
                        _fmt(r.get("d_fake_p90")),
                    ]
                    for r in _sample(dd)
                ],
            ),
        ]
    else:
        out.append("No discriminator in this run.")
    auc = _auc_section(history, evals, trains)
    if auc:
        out += ["", "## Does the discriminator's score track correctness?", "", *auc]

    out += ["", "## Findings", ""]
    if findings:
        out += [f.markdown() for f in findings]
    else:
        out.append("No finding: none of the monitors' limits was crossed.")
    actions = [e for e in run.doctor if e.get("kind") == "action"]
    if actions:
        out += ["", "## Doctor actions", ""]
        for a in actions:
            extra = {k: v for k, v in a.items() if k not in ("kind", "step", "action", "because")}
            out.append(f"- step {a['step']}: {a['action']} because of `{a['because']}` {extra}")
    if plots:
        out += ["", "## Plots", ""]
        out += [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(out).rstrip() + "\n"


def _iou_at(e: dict[str, Any], c: int) -> float | None:
    iou = e.get("iou")
    if not isinstance(iou, list) or c >= len(iou):
        return None
    v = iou[c]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _iou_cell(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _per_class_section(evals: list[dict[str, Any]]) -> list[str]:
    with_iou = [e for e in evals if isinstance(e.get("iou"), list) and e["iou"]]
    if not with_iou:
        return ["No per-class IoU logged yet."]
    first, last = with_iou[0], with_iou[-1]
    best = max(with_iou, key=lambda e: e["miou"])
    stuck = stuck_classes(with_iou)
    classes = max(len(e["iou"]) for e in with_iou)
    columns = [(f"step {first['step']}", first)]
    if best is not first and best is not last:
        columns.append((f"step {best['step']} (best mIoU)", best))
    if last is not first:
        columns.append((f"step {last['step']} (last)", last))
    rows = []
    for c in range(classes):
        values = [v for v in (_iou_at(e, c) for e in with_iou) if v is not None]
        rows.append(
            [
                str(c),
                *[_iou_cell(_iou_at(e, c)) for _, e in columns],
                _iou_cell(max(values) if values else None),
                "**not learnt**" if c in stuck else "",
            ]
        )
    return [
        f"Validation IoU of each class (class 0 is the background of the built-in data). A "
        f"class at or below {STUCK_IOU} at every evaluation has not been learnt; n/a: in "
        f"neither the ground truth nor the prediction.",
        "",
        _table(["class", *[name for name, _ in columns], "best over the run", ""], rows),
    ]


def _auc_section(
    history: list[dict[str, Any]], evals: list[dict[str, Any]], trains: list[dict[str, Any]]
) -> list[str]:
    recs = [e for e in evals if any(k in e for k in AUC_KEYS)]
    if not recs:
        return []
    out = [
        "At each evaluation the discriminator scores the validation predictions "
        "(`discriminator_diagnostics`). Each AUC ranks the images by D(fake): "
        "`d_auc_accuracy` against the more accurate half (0.5: the score says nothing about "
        "correctness; below 0.5: it prefers the wrong ones), `d_auc_object_accuracy` the "
        "same on object pixels, `d_auc_entropy` against the sharper half (high: D judges "
        "softness), `d_auc_real_fake` ground truth against predictions. Over few images an "
        "AUC moves in coarse steps.",
        "",
        _table(
            ["step", *[f"`{k}`" for k in AUC_KEYS], "D(real) mean", "D(fake) mean", "images"],
            [
                [
                    str(e["step"]),
                    *[_fmt(number_at(e, k), 2) for k in AUC_KEYS],
                    _fmt(number_at(e, "diag_d_real_mean")),
                    _fmt(number_at(e, "diag_d_fake_mean")),
                    _fmt(int(v) if (v := number_at(e, "diag_images")) is not None else None),
                ]
                for e in recs
            ],
        ),
    ]
    acc = numbers_of(recs, "d_auc_accuracy")
    if acc and max(acc) < 0.5:
        line = (
            f"`d_auc_accuracy` is below chance at every evaluation ({min(acc):.2f} to "
            f"{max(acc):.2f}): D(fake) ranks the less accurate predictions higher."
        )
        images = numbers_of(recs, "diag_images")
        if images and min(images) < 32:
            line += (
                f" Over {int(min(images))} validation images an AUC is coarse: weak evidence "
                f"on its own."
            )
        if has_gate(trains):
            line += (
                f" The image gate chooses by that score: it kept {share_kept(trains)} over the run."
            )
        out += ["", line]
    return out


def _prev_step(prev: dict[str, Any] | None) -> float:
    return -math.inf if prev is None else prev["step"]


def render_comparison(
    folder: str | Path, runs: Sequence[tuple[RunLog, list[Finding], str]], plots: Sequence[str] = ()
) -> str:
    """The markdown text of the comparison of ``runs``: (log, findings, name) each."""
    out = [f"# Comparison of runs: `{Path(folder).name}`", ""]
    names = [name for _, _, name in runs]
    out.append(f"- {len(runs)} runs in `{folder}`: {', '.join(f'`{n}`' for n in names)}.")
    stuck = [stuck_classes(run.history) for run, _, _ in runs]
    everywhere = sorted(set.intersection(*(set(s) for s in stuck))) if stuck else []
    if everywhere:
        which = "; ".join(
            f"class {c} (best {', '.join(f'{s[c]:.3f}' for s in stuck)})" for c in everywhere
        )
        out.append(
            f"- **Classes not learnt in any run** (val IoU at most {STUCK_IOU} at every "
            f"evaluation of every run): {which}. Every run's mIoU averages them in."
        )
    out += ["", "## Validation mIoU", ""]
    rows = []
    for run, findings, name in runs:
        evals = eval_records(run.records)
        method = (run.config or {}).get("method")
        label = method.get("name") if isinstance(method, dict) else method
        steps = max([r["step"] for r in run.records if "step" in r], default=0)
        counts = [sum(f.severity == s for f in findings) for s in ("critical", "warning", "info")]
        if evals:
            best = max(evals, key=lambda e: e["miou"])
            cells = [
                f"{best['miou']:.4f} ({best['step']})",
                f"{evals[-1]['miou']:.4f} ({evals[-1]['step']})",
                f"{evals[-1]['miou'] - best['miou']:+.4f}",
            ]
        else:
            cells = ["", "", ""]
        rows.append(
            [
                f"[`{name}`]({name}/report.md)",
                str(label or ""),
                str(steps),
                *cells,
                f"{counts[0]} / {counts[1]} / {counts[2]}",
            ]
        )
    out.append(
        _table(
            [
                "run",
                "method",
                "last step",
                "best val mIoU (step)",
                "final val mIoU (step)",
                "final - best",
                "findings (critical / warning / info)",
            ],
            rows,
        )
    )
    lasts = [_last_iou(run) for run, _, _ in runs]
    classes = max((len(v) for v in lasts if v), default=0)
    if classes:
        out += [
            "",
            "## Per-class IoU at the last evaluation",
            "",
            _table(
                ["class", *[f"`{n}`" for n in names]],
                [
                    [str(c) + (" (not learnt anywhere)" if c in everywhere else "")]
                    + [
                        _iou_cell(v[c] if v and c < len(v) and math.isfinite(v[c]) else None)
                        for v in lasts
                    ]
                    for c in range(classes)
                ],
            ),
        ]
    auc_rows = []
    for run, _, name in runs:
        acc = numbers_of(eval_records(run.records), "d_auc_accuracy")
        ent = numbers_of(eval_records(run.records), "d_auc_entropy")
        if acc or ent:
            auc_rows.append([f"`{name}`", _span(acc), _span(ent)])
    if auc_rows:
        out += [
            "",
            "## Does the discriminator's score track correctness?",
            "",
            "Over each run's evaluations, first to last (0.5: no relation; see each run's "
            "report for the numbers per evaluation).",
            "",
            _table(["run", "`d_auc_accuracy`", "`d_auc_entropy`"], auc_rows),
        ]
    out += ["", "## Findings", ""]
    for _run, findings, name in runs:
        if findings:
            out.append(f"- `{name}`:")
            out += [f"  - {f.severity}: `{f.code}`: {f.title} ({f.steps()})" for f in findings]
        else:
            out.append(f"- `{name}`: no finding.")
    if plots:
        out += ["", "## Plots", ""]
        out += [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(out).rstrip() + "\n"


def _last_iou(run: RunLog) -> list[float] | None:
    evals = [e for e in eval_records(run.records) if isinstance(e.get("iou"), list)]
    if not evals:
        return None
    return [float(v) if isinstance(v, (int, float)) else math.nan for v in evals[-1]["iou"]]


def _span(values: list[float]) -> str:
    if not values:
        return ""
    return f"{values[0]:.2f} -> {values[-1]:.2f} (min {min(values):.2f}, max {max(values):.2f})"


# ---------------------------------------------------------------------- plots
def write_comparison_plot(
    runs: Sequence[RunLog], out: str | Path, names: Sequence[str] | None = None
) -> str | None:
    """``val_miou.png``: every run's validation mIoU on one plot; its name, or None.

    Args:
        runs: the runs.
        out: the folder to write to.
        names: the legend's name of each run (default: its folder's name).
    """
    labels = list(names) if names is not None else [run.run_dir.name for run in runs]
    curves = [(label, eval_records(run.records)) for label, run in zip(labels, runs, strict=True)]
    curves = [(name, evals) for name, evals in curves if evals]
    if not curves:
        return None
    from matplotlib.figure import Figure  # imported only when plotting; no pyplot state

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for i, (name, evals) in enumerate(curves):
        color = f"C{i % 10}"
        ax.plot([e["step"] for e in evals], [e["miou"] for e in evals], "o-", c=color, label=name)
        best = max(evals, key=lambda e: e["miou"])
        ax.plot([best["step"]], [best["miou"]], "*", ms=13, c=color)
    ax.set(xlabel="step", ylabel="val mIoU", title="validation mIoU (star: each run's best)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(Path(out) / "val_miou.png", dpi=100)
    return "val_miou.png"


def write_plots(run: RunLog, out: str | Path) -> list[str]:
    """Write the PNG plots that have data; returns their file names."""
    from matplotlib.figure import Figure  # imported only when plotting; no pyplot state

    out = Path(out)
    trains, evals = train_records(run.records), eval_records(run.records)
    written = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        written.append(name)

    keys = [k for k in LOSSES if any(isinstance(r.get(k), (int, float)) for r in trains)]
    if keys:
        cols = min(len(keys), 2)
        rows = math.ceil(len(keys) / cols)
        fig = Figure(figsize=(5 * cols, 3.2 * rows))
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax in axes[len(keys) :]:
            ax.set_visible(False)
        for ax, key in zip(axes, keys, strict=False):
            pts = [(r["step"], r[key]) for r in trains if isinstance(r.get(key), (int, float))]
            ax.plot(*zip(*pts, strict=True), lw=1)
            if key == "loss_d":
                ax.axhline(LN2, ls="--", c="grey", lw=0.8, label="ln 2")
                ax.legend(fontsize=8)
            ax.set(title=key, xlabel="step", ylabel="loss (window mean)")
        save(fig, "losses.png")

    if evals or any("train_miou" in r for r in trains):
        fig = Figure(figsize=(6, 3.5))
        ax = fig.subplots()
        pts = [(r["step"], v) for r in trains if (v := number_at(r, "train_miou")) is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), lw=1, alpha=0.6, label="train mIoU (log window)")
        if evals:
            ax.plot([e["step"] for e in evals], [e["miou"] for e in evals], "o-", label="val mIoU")
            best = max(evals, key=lambda e: e["miou"])
            ax.plot([best["step"]], [best["miou"]], "*", ms=14, c="C3", label="best")
        ax.set(xlabel="step", ylabel="mIoU", title="mIoU")
        ax.legend(fontsize=8)
        save(fig, "miou.png")

    st = [r for r in trains if "st_images_kept" in r]
    if st:
        fig = Figure(figsize=(7.5, 5))
        top, bottom = fig.subplots(2, 1, sharex=True)
        steps = [r["step"] for r in st]
        # Under a plain gate every image past it is kept, so the two lines coincide: the
        # past-gate line is drawn wide and pale beneath the kept one, so both stay visible.
        if any("gate_images_passed" in r for r in st):
            top.plot(
                steps,
                [r.get("gate_images_passed", math.nan) for r in st],
                c="C1",
                lw=5,
                alpha=0.35,
                label="images past the gate",
            )
        top.plot(steps, [_number(r, "st_images_kept") for r in st], "o-", c="C0", ms=3, lw=1.2,
                 label="images kept (>= 1 pixel)")  # fmt: skip
        if any("st_images_total" in r for r in st):
            top.plot(steps, [_number(r, "st_images_total") for r in st], c="grey", ls="--",
                     lw=1, label="images seen")  # fmt: skip
        top.set(ylabel="images per log window", title="self-training: images and pixels kept")
        top.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        bottom.plot(steps, [100 * _number(r, "st_pixels_frac") for r in st], ".-", c="C2",
                    label="pixels kept")  # fmt: skip
        bottom.set(xlabel="step", ylabel="pixels kept (% of window)", ylim=(-2, 102))
        bottom.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        save(fig, "st_kept.png")

    dd = [r for r in trains if "d_fake_p50" in r]
    if dd:
        fig = Figure(figsize=(8, 3.5))
        ax = fig.subplots()
        steps = [r["step"] for r in dd]
        ax.fill_between(
            steps,
            [_number(r, "d_fake_p10") for r in dd],
            [_number(r, "d_fake_p90") for r in dd],
            alpha=0.25,
            color="C1",
            label="D(fake) p10-p90",
        )
        ax.plot(steps, [_number(r, "d_fake_p50") for r in dd], c="C1", label="D(fake) median")
        if any("d_real_p50" in r for r in dd):
            ax.fill_between(
                steps,
                [r.get("d_real_p10", math.nan) for r in dd],
                [r.get("d_real_p90", math.nan) for r in dd],
                alpha=0.2,
                color="C0",
                label="D(real) p10-p90",
            )
            ax.plot(
                steps, [r.get("d_real_p50", math.nan) for r in dd], c="C0", label="D(real) median"
            )
        if any("gate_threshold" in r for r in dd):
            ax.plot(
                steps,
                [r.get("gate_threshold", math.nan) for r in dd],
                "k--",
                lw=0.8,
                label="gate threshold",
            )
        ax.set(
            xlabel="step",
            ylabel="discriminator probability",
            ylim=(-0.02, 1.02),
            title="discriminator scores per image",
        )
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        save(fig, "d_scores.png")
    return written


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"


def _number(record: dict[str, Any], key: str) -> float:
    """A finite number of ``record``, NaN when it is missing (a gap in a plotted line)."""
    v = number_at(record, key)
    return math.nan if v is None else v


def _ratio(record: dict[str, Any], kept_key: str, total_key: str) -> str:
    """``"k / N"``, ``"k"`` without a total, blank without a count."""
    kept, total = number_at(record, kept_key), number_at(record, total_key)
    if kept is None:
        return ""
    return f"{int(kept):,}" + ("" if total is None else f" / {int(total):,}")


def _pct_or_blank(x: Any) -> str:
    return f"{100 * x:.1f}%" if isinstance(x, (int, float)) and math.isfinite(x) else ""
