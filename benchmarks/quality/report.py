"""Tables and a plot of the learning-quality benchmark, written under ``docs/quality/``.

Reads ``benchmarks/quality/results.csv`` (rows of :mod:`benchmarks.quality.run`) and
writes ``docs/quality/learning_quality.md`` and ``docs/quality/learning_quality.png``,
which the docs site shows on its Benchmarks page.

    python -m benchmarks.quality.report
    python -m benchmarks.quality.report --csv other.csv --out /tmp/q   # elsewhere

For each split and method: the test mIoU over seeds (mean ± sample std), the paired
difference to supervised-only with the same seed (mean and the worst seed), and the
share of the gap between supervised-only and full supervision that the method
recovers: the mean paired difference over the gap ``full - supervised`` of the means
(with every seed present this is ``(method - supervised) / (full - supervised)``).
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from benchmarks.quality.run import CSV_PATH, METHODS, SPLITS

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


def summarise(rows: list[dict[str, str]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{split: {method: numbers}}`` with paired differences to supervised-only."""
    by: dict[tuple[str, str], dict[int, dict[str, str]]] = defaultdict(dict)
    for r in rows:
        by[(r["split"], r["method"])][int(r["seed"])] = r  # a rerun replaces its seed
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
            paired = [
                float(r["test_miou"]) - float(sup[k]["test_miou"])
                for k, r in runs.items()
                if k in sup
            ]
            out[split][method] = {
                "seeds": len(test),
                "labelled": float(next(iter(runs.values()))["labelled"]),
                "mean": m,
                "std": s,
                "delta": statistics.fmean(paired) if paired else math.nan,
                "worst_delta": min(paired) if paired else math.nan,
                # From the paired difference, so that a method run on fewer seeds is
                # compared with supervised-only on those same seeds.
                "recovered": statistics.fmean(paired) / gap if paired and gap > 0 else math.nan,
                "st_pixels": statistics.fmean(_floats(runs, "st_pixels_frac")),
                "auc_acc": statistics.fmean(_floats(runs, "d_auc_accuracy")),
                "auc_ent": statistics.fmean(_floats(runs, "d_auc_entropy")),
                "seconds": statistics.fmean(_floats(runs, "seconds")),
                "full_mean": full_mean,
                "full_std": full_std,
                "gap": gap,
            }
    return out


def _floats(runs: dict[int, dict[str, str]], key: str) -> list[float]:
    values = [float(r[key]) if r[key] not in ("", None) else math.nan for r in runs.values()]
    return values or [math.nan]


def _f(x: float, spec: str = ".3f") -> str:
    return "–" if math.isnan(x) else format(x, spec)


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
            "| gap recovered | ST pixels kept | D AUC: accuracy / entropy | s per run |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for method, r in methods.items():
            delta = (
                ""
                if method == "supervised"
                else (f"{_f(r['delta'], '+.4f')}; {_f(r['worst_delta'], '+.4f')}")
            )
            rec = "" if method == "supervised" else f"{_f(100 * r['recovered'], '.0f')} %"
            auc = "" if math.isnan(r["auc_acc"]) else f"{r['auc_acc']:.2f} / {r['auc_ent']:.2f}"
            kept = "" if math.isnan(r["st_pixels"]) else f"{100 * r['st_pixels']:.0f} %"
            lines.append(
                f"| {method} | {int(r['seeds'])} | {r['mean']:.4f} ± {r['std']:.4f} | {delta} "
                f"| {rec} | {kept} | {auc} | {r['seconds']:.0f} |"
            )
        lines.append("")
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
        first = next(iter(methods.values()))
        ax.axhline(first["full_mean"], color="#2a9d3a", ls="--", label="full supervision")
        sup = methods.get("supervised", {}).get("mean", math.nan)
        ax.axhline(sup, color="#888888", ls=":", label="supervised-only")
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
        lo = min(means) - 3 * max([*stds, 0.005])
        ax.set_ylim(max(0.0, lo), first["full_mean"] + 0.03)
        ax.set_ylabel("test mIoU (mean ± std over seeds)")
        ax.set_title(f"{split} labelled")
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def header(rows: list[dict[str, str]], preset: str) -> str:
    devices = sorted({r["device"] for r in rows})
    shas = sorted({r["git_sha"] for r in rows})
    steps = sorted({r["steps"] for r in rows})
    threads = sorted({r["threads"] for r in rows})
    total = sum(float(r["seconds"]) for r in rows)
    return (
        f"`python -m benchmarks.quality.run` (preset `{preset}`: {', '.join(steps)} steps, "
        f"timm `test_efficientnet` at output stride 8, 64 px, batch 8, 2000 training images, "
        f"200 validation images for selection, 500 test images for the numbers below), then "
        f"`python -m benchmarks.quality.report`. Device: {'; '.join(devices)}, "
        f"{'/'.join(threads)} threads; git {', '.join(shas)}; {len(rows)} runs, "
        f"{total / 60:.0f} min of training in all. Each run reports the test mIoU of its "
        f"weights at the best validation mIoU."
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", type=Path, default=CSV_PATH)
    p.add_argument("--preset", default="default")
    p.add_argument("--out", type=Path, default=OUT_DIR)
    args = p.parse_args(argv)
    rows = read_rows(args.csv, args.preset)
    summary = summarise(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    text = header(rows, args.preset) + "\n\n" + table(summary)
    (args.out / f"{NAME}.md").write_text(text)
    plot(summary, args.out / f"{NAME}.png")
    print(text)
    print(f"wrote {args.out / (NAME + '.md')} and {args.out / (NAME + '.png')}")


if __name__ == "__main__":
    main()
