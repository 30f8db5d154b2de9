"""Summarise ``benchmarks/kernel/results.csv``: ratios per shape and a plot.

Usage::

    python -m benchmarks.kernel.report                 # the latest run of every device
    python -m benchmarks.kernel.report --all-runs      # every run
    python benchmarks/kernel/report.py --plot-dir docs/benchmarks

For each device's run it prints, per shape, dtype and mode, the median time of
each provider and these ratios (p50 times; below 1 means Triton is faster):

- ``tri/eag``: Triton time / eager time (the issue's goal: at most 1/3);
- ``tri/cmp``: Triton time / torch.compile time (goal: at most 1/1.3);
- ``cmp/eag``: torch.compile time / eager time (the only ratio of a CPU run).

It also prints Triton's achieved bandwidth as a share of the byte-model bound at
the copy bandwidth measured in the same run (goal: 85% for the full mode). One
PNG per device goes to ``--plot-dir`` (default ``benchmarks/kernel/plots``).
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
CSV_PATH = HERE / "results.csv"
PLOT_DIR = HERE / "plots"
PROVIDERS = ("eager", "compile", "triton")
MODES = ("forward", "backward", "full")


def load(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def runs(rows: list[dict[str, str]], all_runs: bool) -> dict[tuple[str, str], list[dict[str, str]]]:
    """Rows grouped by (device, run_id); only each device's latest run unless ``all_runs``."""
    grouped: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        grouped[(row["device"], row["run_id"])].append(row)
    if all_runs:
        return dict(sorted(grouped.items()))
    latest: dict[str, str] = {}
    for device, run_id in grouped:
        latest[device] = max(latest.get(device, ""), run_id)
    return {(d, r): grouped[(d, r)] for d, r in sorted(latest.items())}


def _ms(row: dict[str, str] | None) -> float:
    if row is None or row["status"] != "ok" or not row["ms_p50"]:
        return math.nan
    return float(row["ms_p50"])


def _fmt(v: float, spec: str = "8.3f") -> str:
    return f"{'-':>{len(format(1.0, spec))}s}" if math.isnan(v) else format(v, spec)


def table(rows: list[dict[str, str]]) -> list[str]:
    """Lines of the ratio table of one run."""
    by_key: dict[tuple, dict[str, dict[str, str]]] = defaultdict(dict)
    for row in rows:
        key = (int(row["batch"]), int(row["classes"]), int(row["height"]), int(row["width"]),
               row["dtype"], MODES.index(row["mode"]))  # fmt: skip
        by_key[key][row["provider"]] = row
    lines = [
        f"{'shape':24s} {'dtype':9s} {'mode':9s} {'eager ms':>9s} {'compile':>9s} {'triton':>9s} "
        f"{'tri/eag':>8s} {'tri/cmp':>8s} {'cmp/eag':>8s} {'tri GB/s':>9s} {'of bound':>8s}"
    ]
    for key in sorted(by_key):
        b, c, h, w, dtype, mode_i = key
        prov = by_key[key]
        eager, comp, tri = (_ms(prov.get(p)) for p in PROVIDERS)
        t_row = prov.get("triton")
        gbps = float(t_row["gbps"]) if t_row and t_row["status"] == "ok" else math.nan
        copy = float(t_row["copy_gbps"]) if t_row and t_row["copy_gbps"] else math.nan
        lines.append(
            f"{f'B={b} C={c} {h}x{w}':24s} {dtype:9s} {MODES[mode_i]:9s} {_fmt(eager, '9.3f')} "
            f"{_fmt(comp, '9.3f')} {_fmt(tri, '9.3f')} {_fmt(tri / eager)} {_fmt(tri / comp)} "
            f"{_fmt(comp / eager)} {_fmt(gbps, '9.1f')} {_fmt(gbps / copy, '8.1%')}"
        )
    skipped = {(r["provider"], r["note"]) for r in rows if r["status"] != "ok"}
    for provider, note in sorted(skipped):
        lines.append(f"skipped {provider}: {note}")
    return lines


def plot(device: str, rows: list[dict[str, str]], out_dir: Path) -> Path | None:
    """Median time per provider, one panel per mode, bars per shape and dtype."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return None
    cases = sorted(
        {
            (int(r["batch"]), int(r["classes"]), int(r["height"]), int(r["width"]), r["dtype"])
            for r in rows
        }
    )
    labels = [f"C={c} {h}x{w}\n{dt}" for _, c, h, w, dt in cases]
    fig, axes = plt.subplots(1, len(MODES), figsize=(4.5 * len(MODES), 4.2), sharey=False)
    width = 0.8 / len(PROVIDERS)
    for ax, mode in zip(axes, MODES, strict=True):
        for i, provider in enumerate(PROVIDERS):
            values = []
            for case in cases:
                match = [
                    r for r in rows
                    if r["provider"] == provider and r["mode"] == mode
                    and (int(r["batch"]), int(r["classes"]), int(r["height"]), int(r["width"]),
                         r["dtype"]) == case
                ]  # fmt: skip
                values.append(_ms(match[0]) if match else math.nan)
            xs = [j + (i - (len(PROVIDERS) - 1) / 2) * width for j in range(len(cases))]
            ax.bar(xs, values, width, label=provider)
        ax.set_title(mode)
        ax.set_xticks(range(len(cases)), labels, fontsize=7)
        ax.set_ylabel("median ms (lower is better)")
    axes[0].legend(fontsize=8)
    skipped = sorted({f"{r['provider']}: {r['note']}" for r in rows if r["status"] != "ok"})
    if skipped:
        fig.text(0.01, 0.01, "no bars for " + "; ".join(skipped), fontsize=7, ha="left")
    run_id = rows[0]["run_id"]
    fig.suptitle(f"confidence-masked CE on {device} ({run_id}, git {rows[0]['git_sha']})")
    fig.tight_layout(rect=(0, 0.04 if skipped else 0, 1, 1))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / (re.sub(r"[^A-Za-z0-9]+", "_", device).strip("_").lower() + ".png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=CSV_PATH)
    parser.add_argument("--all-runs", action="store_true", help="every run, not the latest")
    parser.add_argument("--plot-dir", type=Path, default=PLOT_DIR)
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    if not args.csv.exists():
        parser.error(f"{args.csv} does not exist: run `python -m benchmarks.kernel.run` first")
    rows = load(args.csv)
    grouped = runs(rows, args.all_runs)
    if not any(device != "cpu" for device, _ in grouped):
        print("No CUDA rows yet: the Triton columns need a GPU (python -m benchmarks.kernel.run).")
    for (device, run_id), run_rows in grouped.items():
        first = run_rows[0]
        print(
            f"\n== {device}  run {run_id}  git {first['git_sha']}  torch {first['torch']}  "
            f"triton {first['triton']}"
        )
        print("\n".join(table(run_rows)))
        if not args.no_plot:
            path = plot(device, run_rows, args.plot_dir)
            if path is not None:
                print(f"plot: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
