"""Tables and plots of the learning-quality benchmark, written under ``docs/quality/``.

Reads ``benchmarks/quality/results.csv`` (rows of :mod:`benchmarks.quality.run`) and
``benchmarks/quality/calibration.csv`` (rows of :mod:`benchmarks.quality.calibrate`),
and writes ``docs/quality/learning_quality.md`` with its plots, which the docs site
shows on its Benchmarks page.

    python -m benchmarks.quality.report                  # the converged protocol
    python -m benchmarks.quality.report --preset default # the rows of issue 6's budget

For each split and method: the test mIoU over seeds (mean ± sample std), the paired
difference to supervised-only with the same seed (mean and the worst seed), the share
of the gap between supervised-only and full supervision that the method recovers (the
mean paired difference over ``full - supervised`` of the means), the share of
unlabelled pixels kept, and how many kept pseudo-labels were right (all kept pixels,
and kept object pixels). Then the convergence evidence (the bounds at twice the
steps), the calibration, and the validation curves.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.quality.calibrate import CSV_PATH as CALIBRATION_CSV
from benchmarks.quality.run import CSV_PATH, METHODS, PRESETS, SPLITS

ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = ROOT / "docs" / "quality"
NAME = "learning_quality"


def read_rows(path: Path, preset: str) -> list[dict[str, str]]:
    if not path.exists():
        raise SystemExit(f"no results at {path}: run python -m benchmarks.quality.run first")
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if r["preset"] == preset]
    if not rows:
        raise SystemExit(f"{path} has no rows of preset {preset!r}")
    return rows


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _floats(runs: dict[Any, dict[str, str]], key: str) -> list[float]:
    values = [float(r[key]) if r.get(key) not in ("", None) else math.nan for r in runs.values()]
    return values or [math.nan]


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.fmean(finite) if finite else math.nan


def summarise(rows: list[dict[str, str]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{split: {method: numbers}}`` with paired differences to supervised-only.

    A run is keyed by its seed and its machine (the ``device`` column): a rerun on the
    same machine replaces it, one on another machine stands beside it. The paired
    difference takes the supervised-only run of the same seed on the same machine,
    since the same seed trains other weights on another CPU; only where that machine
    has none does it take one from another machine (counted in ``cross_machine``).
    """
    by: dict[tuple[str, str], dict[tuple[int, str], dict[str, str]]] = defaultdict(dict)
    for r in rows:
        by[(r["split"], r["method"])][(int(r["seed"]), r.get("device", ""))] = r
    full = [float(r["test_miou"]) for r in by.get(("full", "full"), {}).values()]
    full_mean, full_std = mean_std(full)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for split in sorted({s for s, _ in by if s != "full"}, key=lambda s: SPLITS.get(s, 1.0)):
        sup = by.get((split, "supervised"), {})
        sup_mean = mean_std([float(r["test_miou"]) for r in sup.values()])[0]
        gap = full_mean - sup_mean
        out[split] = {}
        for method in [m for m in METHODS if (split, m) in by]:
            runs = by[(split, method)]
            test = [float(r["test_miou"]) for r in runs.values()]
            m, s = mean_std(test)
            paired, cross = [], 0
            for (seed, device), r in runs.items():
                match = sup.get((seed, device))
                if match is None:
                    match = next((v for (k, _), v in sup.items() if k == seed), None)
                    cross += match is not None
                if match is not None:
                    paired.append(float(r["test_miou"]) - float(match["test_miou"]))
            out[split][method] = {
                "seeds": len({seed for seed, _ in runs}),
                "runs": len(runs),
                "cross_machine": cross,
                "labelled": float(next(iter(runs.values()))["labelled"]),
                "mean": m,
                "std": s,
                "delta": statistics.fmean(paired) if paired else math.nan,
                "worst_delta": min(paired) if paired else math.nan,
                # From the paired difference, so that a method run on fewer seeds is
                # compared with supervised-only on those same seeds.
                "recovered": statistics.fmean(paired) / gap if paired and gap > 0 else math.nan,
                "st_pixels": _nanmean(_floats(runs, "st_pixels_frac")),
                "kept_acc": _nanmean(_floats(runs, "st_kept_accuracy")),
                "obj_acc": _nanmean(_floats(runs, "st_object_kept_accuracy")),
                "teacher": _nanmean(_floats(runs, "teacher_miou")),
                "auc_acc": _nanmean(_floats(runs, "d_auc_accuracy")),
                "auc_ent": _nanmean(_floats(runs, "d_auc_entropy")),
                "seconds": _nanmean(_floats(runs, "seconds")),
                "full_mean": full_mean,
                "full_std": full_std,
                "gap": gap,
            }
    return out


def _f(x: float, spec: str = ".3f") -> str:
    return "–" if math.isnan(x) else format(x, spec)


def _pct(x: float) -> str:
    return "" if math.isnan(x) else f"{100 * x:.0f} %"


def table(summary: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = []
    for split, methods in summary.items():
        any_row = next(iter(methods.values()))
        lines += [
            f"**{split} labelled** ({int(any_row['labelled'])} of the training images). "
            f"Full supervision: {_f(any_row['full_mean'], '.4f')} ± "
            f"{_f(any_row['full_std'], '.4f')}; gap to supervised-only: "
            f"{_f(any_row['gap'], '.4f')}.",
            "",
            "| method | seeds | test mIoU (mean ± std) | Δ vs supervised (mean; worst seed) "
            "| gap recovered | unlabelled pixels kept | kept pixels right | kept object "
            "pixels right | s per run |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for method, r in methods.items():
            sup = method == "supervised"
            delta = "" if sup else f"{_f(r['delta'], '+.4f')}; {_f(r['worst_delta'], '+.4f')}"
            rec = "" if sup else f"{_f(100 * r['recovered'], '.0f')} %"
            seeds = f"{int(r['seeds'])}"
            if r["runs"] > r["seeds"]:
                seeds += f" ({int(r['runs'])} runs)"
            if r["cross_machine"] and not sup:
                delta += f" ({int(r['cross_machine'])} across machines)"
            lines.append(
                f"| {method} | {seeds} | {r['mean']:.4f} ± {r['std']:.4f} | {delta} "
                f"| {rec} | {_pct(r['st_pixels'])} | {_pct(r['kept_acc'])} "
                f"| {_pct(r['obj_acc'])} | {r['seconds']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def convergence_table(path: Path, preset: str, doubled: str) -> str:
    """The bounds at the budget and at twice it: the evidence that the regime converged.

    The change is paired: the means are over the seeds run at both budgets on the same
    machine, since seeds differ by more than doubling the steps does (their labelled
    images differ), and so may one seed on two CPUs.
    """
    if not path.exists():
        return ""
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if r["preset"] in (preset, doubled)]
    cells: dict[tuple[str, str], dict[tuple[int, str], float]] = defaultdict(dict)
    steps = {}
    for r in rows:
        if (r["method"], r["split"]) in (("supervised", "1/16"), ("full", "full")):
            key = (int(r["seed"]), r.get("device", ""))
            cells[(r["preset"], r["method"])][key] = float(r["test_miou"])
            steps[r["preset"]] = r["steps"]
    if not cells.get((doubled, "supervised")) and not cells.get((doubled, "full")):
        return ""
    lines = [
        "| bound | seeds | "
        + " | ".join(f"`{p}` ({steps.get(p, '?')} steps)" for p in (preset, doubled))
        + " | change (mean; largest) |",
        "|---|---|---|---|---|",
    ]
    for method, label in (("supervised", "supervised-only, 1/16"), ("full", "full supervision")):
        a, b = cells.get((preset, method), {}), cells.get((doubled, method), {})
        seeds = sorted(a.keys() & b.keys())
        ma = mean_std([a[s] for s in seeds])[0]
        mb = mean_std([b[s] for s in seeds])[0]
        largest = max((b[s] - a[s] for s in seeds), key=abs, default=float("nan"))
        lines.append(
            f"| {label} | {','.join(str(k) for k, _ in seeds) or '–'} | {_f(ma, '.4f')} "
            f"| {_f(mb, '.4f')} | {_f(mb - ma, '+.4f')}; {_f(largest, '+.4f')} |"
        )
    return "\n".join(lines)


def longer_budget_table(path: Path, preset: str) -> str:
    """The table of ``preset``'s rows where a method other than the bounds ran there."""
    if not path.exists():
        return ""
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if r["preset"] == preset]
    if all(r["method"] in ("supervised", "full") for r in rows):
        return ""
    return table(summarise(rows))


def calibration_table(path: Path) -> str:
    """What was tried on the way to the regime: each config's bounds per budget."""
    if not path.exists():
        return ""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    by: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by[(r["config"], r["steps"])][r["split"]].append(float(r["test_best"]))
    lines = [
        "| config | steps | supervised-only 1/16 | full supervision | gap |",
        "|---|---|---|---|---|",
    ]
    for (config, steps), splits in by.items():
        sup, full = mean_std(splits.get("1/16", []))[0], mean_std(splits.get("full", []))[0]
        lines.append(
            f"| `{config}` | {steps} | {_f(sup, '.4f')} | {_f(full, '.4f')} "
            f"| {_f(full - sup, '+.4f')} |"
        )
    return "\n".join(lines)


def plot(summary: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = list(summary)
    fig, axes = plt.subplots(1, len(splits), figsize=(6.5 * len(splits), 4.2), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        methods = summary[split]
        names = list(methods)
        means = [methods[m]["mean"] for m in names]
        stds = [methods[m]["std"] for m in names]
        colors = ["#888888" if m == "supervised" else "#3b75af" for m in names]
        ax.bar(range(len(names)), means, yerr=stds, color=colors, capsize=3)
        full = next(iter(methods.values()))["full_mean"]
        sup = methods.get("supervised", {}).get("mean", math.nan)
        # A partial benchmark (no full-supervision or supervised rows yet) still plots.
        if math.isfinite(full):
            ax.axhline(full, color="#2a9d3a", ls="--", label="full supervision")
        if math.isfinite(sup):
            ax.axhline(sup, color="#888888", ls=":", label="supervised-only")
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
        finite_stds = [s for s in stds if math.isfinite(s)]
        lo = min(means) - 3 * max([*finite_stds, 0.005])
        hi = max([m for m in (*means, full) if math.isfinite(m)]) + 0.03
        ax.set_ylim(max(0.0, lo), hi)
        ax.set_ylabel("test mIoU (mean ± std over seeds)")
        ax.set_title(f"{split} labelled")
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(rows: list[dict[str, str]], path: Path, split: str = "1/16") -> bool:
    """Validation mIoU over steps, one line per method (mean over seeds), and what the
    self-training methods kept and how right it was."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves: dict[str, list[list[list[float]]]] = defaultdict(list)
    kept: dict[str, list[list[list[float]]]] = defaultdict(list)
    for r in rows:
        if r["split"] in (split, "full") and r.get("val_curve"):
            curves[r["method"]].append(json.loads(r["val_curve"]))
            extra = json.loads(r["extra"]) if r.get("extra") else {}
            if extra.get("object_kept_accuracy_curve"):
                kept[r["method"]].append(extra["object_kept_accuracy_curve"])
    if not curves:
        return False
    fig, (val_ax, acc_ax) = plt.subplots(1, 2, figsize=(13, 4.2))
    for method, runs in curves.items():
        steps = [s for s, _ in runs[0]]
        mean = [
            statistics.fmean(run[i][1] for run in runs if i < len(run)) for i in range(len(steps))
        ]
        style = {
            "supervised": dict(color="#888888", ls=":"),
            "full": dict(color="#2a9d3a", ls="--"),
        }
        val_ax.plot(steps, mean, label=method, lw=1.5, **style.get(method, {}))
    val_ax.set(xlabel="step", ylabel="validation mIoU (mean over seeds)", title=f"{split} labelled")
    val_ax.legend(fontsize=8)
    for method, runs in kept.items():
        pts = [(s, a) for s, a in runs[0] if a is not None]
        if pts:
            acc_ax.plot(*zip(*pts, strict=True), label=method, lw=1)
    acc_ax.set(xlabel="step", ylabel="kept object pixels with the right label (seed 0)",
               title="pseudo-label correctness, object pixels", ylim=(0, 1))  # fmt: skip
    acc_ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def run_history(row: dict[str, str]) -> list[dict[str, object]]:
    """A run's CSV curves as the doctor's records: train windows (kept fraction, kept
    accuracy) and evaluations (val mIoU)."""
    extra = json.loads(row["extra"]) if row.get("extra") else {}
    trains: dict[int, dict[str, object]] = {}
    for key, name in (
        ("kept_frac_curve", "st_pixels_frac"),
        ("kept_accuracy_curve", "st_kept_accuracy"),
        ("object_kept_accuracy_curve", "st_object_kept_accuracy"),
    ):
        for step, value in extra.get(key, []):
            trains.setdefault(int(step), {"kind": "train", "step": int(step)})[name] = value
    evals = [{"kind": "eval", "step": int(step), "miou": miou}
             for step, miou in json.loads(row.get("val_curve") or "[]")]  # fmt: skip
    return sorted([*trains.values(), *evals], key=lambda r: (r["step"], r["kind"] == "eval"))


def collapse_findings(rows: list[dict[str, str]]) -> str:
    """What the doctor's ``st_collapse`` monitor says of each run, from its curves."""
    from s4seg.doctor import SelfTrainingCollapse

    lines = []
    for r in sorted(rows, key=lambda r: (r["split"], r["method"], int(r["seed"]))):
        for finding in SelfTrainingCollapse().check(run_history(r)):
            lines.append(f"- `{r['method']}` {r['split']} seed {r['seed']}: {finding.seen}")
    return "\n".join(lines)


def header(rows: list[dict[str, str]], preset: str) -> str:
    devices = sorted({r["device"] for r in rows})
    shas = sorted({r["git_sha"] for r in rows})
    threads = sorted({r["threads"] for r in rows})
    total = sum(float(r["seconds"]) for r in rows)
    p = PRESETS.get(preset.split("@")[0])
    setup = (
        f"{p.steps} steps, timm `{p.backbone}` with a {p.head} head at output stride 8, "
        f"{p.image_size} px, batch {p.batch_size}, {p.train_size} training images, "
        f"{p.val_size} validation images for selection, {p.test_size} test images for "
        f"the numbers below, {p.optimizer} at {p.lr_g}"
        if p is not None
        else "see benchmarks/quality/run.py"
    )
    return (
        f"`python -m benchmarks.quality.run` (preset `{preset}`: {setup}), then "
        f"`python -m benchmarks.quality.report --preset {preset}`. Device: "
        f"{'; '.join(devices)}, {'/'.join(threads)} thread(s) per run; git "
        f"{', '.join(shas)}; {len(rows)} runs, {total / 60:.0f} min of training in all. "
        f"Each run reports the test mIoU of its weights at the best validation mIoU."
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", type=Path, default=CSV_PATH)
    p.add_argument("--calibration", type=Path, default=CALIBRATION_CSV)
    p.add_argument("--preset", default="converged")
    p.add_argument("--out", type=Path, default=OUT_DIR)
    args = p.parse_args(argv)
    rows = read_rows(args.csv, args.preset)
    summary = summarise(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    parts = [header(rows, args.preset), table(summary)]
    collapses = collapse_findings(rows)
    if collapses:
        parts += [
            "**The doctor on these runs** (`st_collapse`, from each run's curves; "
            "`python -m benchmarks.quality.report`):",
            collapses,
        ]
    doubled, quadrupled = f"{args.preset}_x2", f"{args.preset}_x4"
    converged = convergence_table(args.csv, args.preset, doubled)
    if converged:
        parts += ["**Convergence.** The bounds at the budget and at twice it:", converged]
    converged = convergence_table(args.csv, doubled, quadrupled)
    if converged:
        parts += ["The bounds at twice the budget and at four times it:", converged]
    longer = longer_budget_table(args.csv, doubled)
    if longer:
        parts += [
            f"**At twice the budget** (preset `{doubled}`): the methods run there, "
            "against the bounds at that budget, paired as above:",
            longer,
        ]
    # The docs hook shows every PNG of docs/quality beside the tables.
    plot(summary, args.out / f"{NAME}.png")
    plot_curves(rows, args.out / f"{NAME}_curves.png")
    calibration = calibration_table(args.calibration)
    if calibration:
        parts += [
            "**Calibration** (seed 0; test mIoU at the best validation step; "
            "`python -m benchmarks.quality.calibrate`):",
            calibration,
        ]
    text = "\n\n".join(parts) + "\n"
    (args.out / f"{NAME}.md").write_text(text)
    print(text)
    print(f"wrote {args.out / (NAME + '.md')} and its plots")


if __name__ == "__main__":
    main()
