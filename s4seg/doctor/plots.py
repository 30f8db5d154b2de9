"""The report's plots of one run: losses, validation mIoU, what self-training kept, D's scores."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from s4seg.doctor.cells import number
from s4seg.doctor.records import LN2, LOSSES, eval_records, number_at, train_records
from s4seg.doctor.run_log import RunLog

__all__ = ["PLOTS", "write_plots"]

PLOTS = ("losses.png", "miou.png", "st_kept.png", "d_scores.png")


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
        top.plot(steps, [number(r, "st_images_kept") for r in st], "o-", c="C0", ms=3, lw=1.2,
                 label="images kept (>= 1 pixel)")  # fmt: skip
        if any("st_images_total" in r for r in st):
            top.plot(steps, [number(r, "st_images_total") for r in st], c="grey", ls="--",
                     lw=1, label="images seen")  # fmt: skip
        top.set(ylabel="images per log window", title="self-training: images and pixels kept")
        top.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        bottom.plot(steps, [100 * number(r, "st_pixels_frac") for r in st], ".-", c="C2",
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
            [number(r, "d_fake_p10") for r in dd],
            [number(r, "d_fake_p90") for r in dd],
            alpha=0.25,
            color="C1",
            label="D(fake) p10-p90",
        )
        ax.plot(steps, [number(r, "d_fake_p50") for r in dd], c="C1", label="D(fake) median")
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
