"""The comparison of a folder of runs: validation curves on one plot, best and final
mIoU side by side, the last per-class IoU of each run, and each run's findings."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from s4seg.doctor.cells import iou_cell, markdown_table
from s4seg.doctor.findings import Finding
from s4seg.doctor.records import STUCK_IOU, eval_records, numbers_of, stuck_classes
from s4seg.doctor.run_log import RunLog

__all__ = ["render_comparison", "write_comparison_plot"]


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
        markdown_table(
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
            markdown_table(
                ["class", *[f"`{n}`" for n in names]],
                [
                    [str(c) + (" (not learnt anywhere)" if c in everywhere else "")]
                    + [
                        iou_cell(v[c] if v and c < len(v) and math.isfinite(v[c]) else None)
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
            markdown_table(["run", "`d_auc_accuracy`", "`d_auc_entropy`"], auc_rows),
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
