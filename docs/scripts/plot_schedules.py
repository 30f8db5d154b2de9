"""Plot s4seg's threshold schedules for the docs (docs/assets/schedules_*.png).

The plotted values come from the schedule classes themselves, so a plot cannot
disagree with the code. Run from the repository root after changing a schedule:

    .venv/bin/python docs/scripts/plot_schedules.py

The shapes are the ones a failed S4GAN field report asked for (linear 0.2 -> 0.05
over 25k iterations; step 0.05 / 0.10 / 0.15 / 0.20 at 0 / 5k / 15k / 30k), plus a
static gate and a cosine ramp of the same range.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt

from s4seg.schedules import Constant, Cosine, Linear, Schedule, Step

ASSETS = Path(__file__).resolve().parents[1] / "assets"
STEPS = 40_000

# name -> (schedule, the code that builds it, shown as the plot's title)
SCHEDULES: dict[str, tuple[Schedule, str]] = {
    "static": (Constant(0.2), "Constant(0.2)"),
    "linear": (Linear(0.2, 0.05, steps=25_000), "Linear(0.2, 0.05, steps=25_000)"),
    "step": (
        Step({0: 0.05, 5_000: 0.10, 15_000: 0.15, 30_000: 0.20}),
        "Step({0: 0.05, 5_000: 0.10, 15_000: 0.15, 30_000: 0.20})",
    ),
    "cosine": (Cosine(0.2, 0.05, steps=25_000), "Cosine(0.2, 0.05, steps=25_000)"),
}


def _axes(ax: plt.Axes, title: str) -> None:
    ax.set_title(title, fontsize=9, family="monospace")
    ax.set_xlabel("training step")
    ax.set_ylabel("threshold")
    ax.set_xlim(0, STEPS)
    ax.set_ylim(0, 0.25)
    ax.grid(alpha=0.3)


def plot_one(name: str, out_dir: Path) -> Path:
    schedule, code = SCHEDULES[name]
    steps = list(range(0, STEPS + 1, 50))
    fig, ax = plt.subplots(figsize=(5.2, 2.6), dpi=110)
    values = [schedule(s) for s in steps]
    if name == "step":  # piecewise constant: the value changes AT a milestone, then holds
        ax.step(steps, values, where="post", color="tab:blue", lw=2)
    else:
        ax.plot(steps, values, color="tab:blue", lw=2)
    _axes(ax, code)
    fig.tight_layout()
    path = out_dir / f"schedules_{name}.png"
    fig.savefig(path, metadata={"Software": None})  # no version stamp: stable bytes
    plt.close(fig)
    return path


def plot_all(out_dir: Path) -> Path:
    steps = list(range(0, STEPS + 1, 50))
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=110)
    for name, (schedule, _) in SCHEDULES.items():
        values = [schedule(s) for s in steps]
        if name == "step":
            ax.step(steps, values, where="post", lw=2, label=name)
        else:
            ax.plot(steps, values, lw=2, label=name)
    _axes(ax, "all four, same step axis")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = out_dir / "schedules_all.png"
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ASSETS, help="output folder")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in [*(plot_one(name, args.out) for name in SCHEDULES), plot_all(args.out)]:
        print(path)


if __name__ == "__main__":
    main()
