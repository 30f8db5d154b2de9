"""``s4seg report DIR``: a markdown report and plots of a run, or of a folder of runs.

For one run folder it reads ``metrics.jsonl`` (a last line cut short by a running or
crashed run is skipped), ``config.json`` and ``doctor.jsonl`` when present, runs the
monitors, and writes ``report.md`` with ``losses.png``, ``miou.png``, ``st_kept.png``
and ``d_scores.png`` next to it. Given a folder that holds run folders (the main job's
``runs/main_job`` holds ``supervised/`` and ``fixmatch/``), it reports each run in
its own folder and writes a comparison of them into the folder's ``report.md``, with
their validation curves on one plot (``val_miou.png``).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from s4seg.doctor.cells import (
    fmt,
    iou_at,
    iou_cell,
    markdown_table,
    pct,
    pct_or_blank,
    ratio,
)
from s4seg.doctor.comparison import render_comparison, write_comparison_plot
from s4seg.doctor.findings import Finding
from s4seg.doctor.monitors import Monitor, default_monitors, run_monitors
from s4seg.doctor.plots import write_plots
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
from s4seg.doctor.run_log import RunLog, find_runs, load_run

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

AUC_KEYS = ("d_auc_accuracy", "d_auc_object_accuracy", "d_auc_entropy", "d_auc_real_fake")


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


def _trend(trains: list[dict[str, Any]], key: str) -> str | None:
    points = [(r["step"], r[key]) for r in trains if isinstance(r.get(key), (int, float))]
    if not points:
        return None
    lo = min(points, key=lambda p: p[1])
    hi = max(points, key=lambda p: p[1])
    return (
        f"- `{key}`: {fmt(points[0][1])} at step {points[0][0]} -> {fmt(points[-1][1])} at "
        f"step {points[-1][0]} (min {fmt(lo[1])} at step {lo[0]}, max {fmt(hi[1])} at step "
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
                    fmt(e.get("pixel_acc"), 4),
                ]
            )
            prev = e
        out.append(
            markdown_table(
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
            markdown_table(
                ["step", *keys],
                [[str(r["step"]), *[fmt(r.get(k)) for k in keys]] for r in _sample(trains)],
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
                    ratio(r, "st_images_kept", "st_images_total"),
                    fmt(r.get("gate_images_passed")),
                    ratio(r, "st_pixels_kept", "st_pixels_total"),
                    pct_or_blank(r.get("st_pixels_frac")),
                    fmt(r.get("gate_threshold"), 2),
                    fmt(r.get("pixel_threshold"), 2),
                ]
            )
            if measured:
                rows[-1] += [
                    pct_or_blank(r.get("st_kept_accuracy")),
                    pct_or_blank(r.get("st_object_kept_accuracy")),
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
                f"{pct(correct, kept)} of the kept pixels had the right label, and "
                f"{pct(obj_c, obj_k)} of the kept object pixels (true class not background).",
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
        out += ["", markdown_table(headers, rows)]
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
            markdown_table(
                ["step", "loss_d", "D(real) p50", "D(fake) p10", "D(fake) p50", "D(fake) p90"],
                [
                    [
                        str(r["step"]),
                        fmt(r.get("loss_d")),
                        fmt(r.get("d_real_p50")),
                        fmt(r.get("d_fake_p10")),
                        fmt(r.get("d_fake_p50")),
                        fmt(r.get("d_fake_p90")),
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
        values = [v for v in (iou_at(e, c) for e in with_iou) if v is not None]
        rows.append(
            [
                str(c),
                *[iou_cell(iou_at(e, c)) for _, e in columns],
                iou_cell(max(values) if values else None),
                "**not learnt**" if c in stuck else "",
            ]
        )
    return [
        f"Validation IoU of each class (class 0 is the background of the built-in data). A "
        f"class at or below {STUCK_IOU} at every evaluation has not been learnt; n/a: in "
        f"neither the ground truth nor the prediction.",
        "",
        markdown_table(["class", *[name for name, _ in columns], "best over the run", ""], rows),
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
        markdown_table(
            ["step", *[f"`{k}`" for k in AUC_KEYS], "D(real) mean", "D(fake) mean", "images"],
            [
                [
                    str(e["step"]),
                    *[fmt(number_at(e, k), 2) for k in AUC_KEYS],
                    fmt(number_at(e, "diag_d_real_mean")),
                    fmt(number_at(e, "diag_d_fake_mean")),
                    fmt(int(v) if (v := number_at(e, "diag_images")) is not None else None),
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
