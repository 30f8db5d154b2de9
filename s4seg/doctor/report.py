"""``s4seg report RUN_DIR``: a markdown report and plots of a finished or running run.

Reads ``metrics.jsonl`` (a last line cut short by a running or crashed run is
skipped), ``config.json`` and ``doctor.jsonl`` when present, runs the monitors,
and writes ``report.md`` with ``losses.png``, ``miou.png``, ``st_kept.png`` and
``d_scores.png`` next to it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s4seg.doctor.findings import Finding
from s4seg.doctor.monitors import Monitor, default_monitors, run_monitors
from s4seg.doctor.records import LN2, LOSSES, eval_records, train_records
from s4seg.jsonl import read_jsonl

__all__ = ["RunLog", "load_run", "render_report", "write_plots", "write_report"]

PLOTS = ("losses.png", "miou.png", "st_kept.png", "d_scores.png")


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
            f"(or JSONLLogger)"
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


def write_report(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    monitors: Sequence[Monitor] | None = None,
    duration_steps: int = 500,
    plots: bool = True,
) -> Path:
    """Write ``report.md`` (and the PNG plots) for a run; returns the report's path.

    Args:
        run_dir: the run folder.
        out_dir: where to write (default: ``run_dir``).
        monitors: the checks (default :func:`s4seg.doctor.default_monitors`).
        duration_steps: scales the default monitors' step limits (see there).
        plots: also write the PNG plots (needs matplotlib).
    """
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.run_dir
    out.mkdir(parents=True, exist_ok=True)
    monitors = list(monitors) if monitors is not None else default_monitors(duration_steps)
    findings = merge_findings(run_monitors(run.history, monitors), run.doctor)
    names = write_plots(run, out) if plots else []
    path = out / "report.md"
    path.write_text(render_report(run, findings, names))
    return path


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


def _sample(
    records: list[dict[str, Any]], key_steps: set[int], n: int = 12
) -> list[dict[str, Any]]:
    """``n`` records evenly spread (first and last included) plus those at ``key_steps``."""
    if len(records) <= n:
        return records
    idx = {round(i * (len(records) - 1) / (n - 1)) for i in range(n)}
    idx |= {i for i, r in enumerate(records) if r["step"] in key_steps}
    return [records[i] for i in sorted(idx)]


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


def render_report(run: RunLog, findings: list[Finding], plots: Sequence[str] = ()) -> str:
    """The markdown text of the report."""
    trains, evals = train_records(run.records), eval_records(run.records)
    cfg = (run.config or {}).get("trainer", {})
    parts = (run.config or {}).get("parts", {})
    last = max([r["step"] for r in run.records if "step" in r], default=0)
    max_steps = cfg.get("max_steps")
    # Table rows at every evaluation and where each finding starts, besides an even spread.
    key_steps = {e["step"] for e in evals} | {f.first_step for f in findings}
    out = [f"# Training report: `{run.run_dir.name}`", ""]
    if max_steps and last >= max_steps:
        status = f"finished: step {last} of {max_steps}"
    elif max_steps:
        status = f"running or stopped: last logged step {last} of {max_steps}"
    else:
        status = f"last logged step {last} (no config.json: length unknown)"
    out.append(f"- Run folder: `{run.run_dir}`; {status}.")
    if cfg:
        out.append(
            f"- Method {cfg.get('method')}; lr_g {cfg.get('lr_g')}, lr_d {cfg.get('lr_d')}, "
            f"d_update_interval {cfg.get('d_update_interval')}, label_smoothing "
            f"{cfg.get('label_smoothing')}, log every {cfg.get('log_interval')} steps, eval every "
            f"{cfg.get('eval_interval')}."
        )
    if parts.get("pseudo_filter"):
        out.append(
            f"- Pseudo-label filter `{parts['pseudo_filter']}`: "
            f"{parts.get('pseudo_filter_thresholds') or ''}"
        )
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
    out += [f"  - {f.severity}: {f.title} ({f.steps()})" for f in findings]

    out += ["", "## Validation mIoU", ""]
    if evals:
        rows, prev, best_so_far = [], None, -math.inf
        for e in evals:
            window = [r["train_miou"] for r in trains if _prev_step(prev) < r["step"] <= e["step"]]
            window = [v for v in window if isinstance(v, (int, float))]
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

    out += ["", "## Losses", ""]
    trends = [t for t in (_trend(trains, k) for k in LOSSES) if t]
    out += trends or ["No train records yet."]
    if trains:
        keys = [k for k in LOSSES if any(k in r for r in trains)]
        out += [
            "",
            _table(
                ["step", *keys],
                [
                    [str(r["step"]), *[_fmt(r.get(k)) for k in keys]]
                    for r in _sample(trains, key_steps)
                ],
            ),
        ]

    out += ["", "## Self-training activity", ""]
    st = [r for r in trains if "st_images_kept" in r]
    measured = any("st_pixels_correct" in r for r in st)
    if st:
        rows = []
        for r in _sample(st, key_steps):
            rows.append(
                [
                    str(r["step"]),
                    f"{r['st_images_kept']:,} / {r['st_images_total']:,}",
                    _fmt(r.get("gate_images_passed")),
                    f"{r['st_pixels_kept']:,} / {r['st_pixels_total']:,}",
                    f"{100 * r['st_pixels_frac']:.1f}%",
                    _fmt(r.get("gate_threshold"), 2),
                    _fmt(r.get("pixel_threshold"), 2),
                ]
            )
            if measured:
                rows[-1] += [
                    _pct_or_blank(r.get("st_kept_accuracy")),
                    _pct_or_blank(r.get("st_object_kept_accuracy")),
                ]
        total_i = sum(r["st_images_total"] for r in st)
        total_p = sum(r["st_pixels_total"] for r in st)
        out += [
            f"Over the run: {sum(r['st_images_kept'] for r in st):,} of {total_i:,} unlabelled "
            f"images and {sum(r['st_pixels_kept'] for r in st):,} of {total_p:,} pixels got "
            f"pseudo-labels.",
        ]
        if measured:
            correct = sum(r.get("st_pixels_correct", 0) for r in st)
            kept = sum(r["st_pixels_kept"] for r in st if "st_pixels_correct" in r)
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
                    for r in _sample(dd, key_steps)
                ],
            ),
        ]
    else:
        out.append("No discriminator in this run.")

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


def _prev_step(prev: dict[str, Any] | None) -> float:
    return -math.inf if prev is None else prev["step"]


# ---------------------------------------------------------------------- plots
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
        pts = [(r["step"], r["train_miou"]) for r in trains if "train_miou" in r]
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
        fig = Figure(figsize=(6, 5))
        top, bottom = fig.subplots(2, 1, sharex=True)
        steps = [r["step"] for r in st]
        top.plot(steps, [r["st_images_kept"] for r in st], ".-", label="images kept")
        top.plot(steps, [r["st_images_total"] for r in st], c="grey", ls="--", label="images seen")
        if any("gate_images_passed" in r for r in st):
            top.plot(
                steps, [r.get("gate_images_passed", math.nan) for r in st], lw=1, label="past gate"
            )
        top.set(ylabel="images (count per window)", title="self-training: images and pixels kept")
        top.legend(fontsize=8)
        bottom.plot(steps, [100 * r["st_pixels_frac"] for r in st], ".-", c="C2")
        bottom.set(xlabel="step", ylabel="pixels kept (% of window)", ylim=(-2, 102))
        save(fig, "st_kept.png")

    dd = [r for r in trains if "d_fake_p50" in r]
    if dd:
        fig = Figure(figsize=(8, 3.5))
        ax = fig.subplots()
        steps = [r["step"] for r in dd]
        ax.fill_between(
            steps,
            [r["d_fake_p10"] for r in dd],
            [r["d_fake_p90"] for r in dd],
            alpha=0.25,
            color="C1",
            label="D(fake) p10-p90",
        )
        ax.plot(steps, [r["d_fake_p50"] for r in dd], c="C1", label="D(fake) median")
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


def _pct_or_blank(x: Any) -> str:
    return f"{100 * x:.1f}%" if isinstance(x, (int, float)) and math.isfinite(x) else ""
