"""Stage 4: the loader's throughput against the step (``benchmarks/data/loader_throughput.py``)."""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

import s4seg
from benchmarks.gpu.runner import Context, StageResult
from benchmarks.gpu.settings import LoaderSettings


def measure_loader(
    dataset: Any, workers: int, model: torch.nn.Module, device: torch.device, cfg: LoaderSettings
) -> tuple[float, bool, float, float]:
    """(loader images/s, pinned, loop images/s, loop wait share) with ``workers`` workers."""
    from benchmarks.data import loader_throughput as lt

    loader = s4seg.data.InfiniteLoader(
        dataset,
        cfg.batch,
        num_workers=workers,
        pin_memory=True,
        persistent_workers=workers > 0,
        seed=0,
    )
    try:
        img_s, pinned = lt.time_loader(loader, cfg.warmup, cfg.batches)
        loop_img_s, wait = lt.time_loop(model, loader, device, cfg.loop_steps)
    finally:
        del loader  # ends the persistent workers
    return img_s, pinned, loop_img_s, wait


def loader_row(
    ctx: Context,
    cfg: LoaderSettings,
    workers: int,
    measured: tuple[float, bool, float, float],
    step_times: list[float],
    png_kib: float,
) -> dict[str, object]:
    """A row in ``loader_results.csv``'s columns."""
    from benchmarks.data import loader_throughput as lt
    from benchmarks.data.index_files import host_fields

    img_s, pinned, loop_img_s, wait = measured
    step_s = statistics.median(step_times)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return dict(
        host_fields(),
        run_id=ctx.run_id(),
        device=ctx.meta["device"],
        images=cfg.images,
        size=cfg.size,
        batch=cfg.batch,
        workers=workers,
        pin_memory=True,
        pinned=pinned,
        persistent_workers=workers > 0,
        warmup=cfg.warmup,
        batches=cfg.batches,
        loader_img_s=f"{img_s:.1f}",
        model=f"{cfg.model} os{lt.OUTPUT_STRIDE} C={lt.NUM_CLASSES} fwd+bwd",
        steps=len(step_times),
        step_s_p50=f"{step_s:.4f}",
        step_s_min=f"{min(step_times):.4f}",
        step_img_s=f"{cfg.batch / step_s:.2f}",
        ratio=f"{img_s * step_s / cfg.batch:.1f}",
        loop_steps=cfg.loop_steps,
        loop_img_s=f"{loop_img_s:.2f}",
        wait_share=f"{wait:.3f}",
        note=f"{torch.get_num_threads()} torch threads; {png_kib:.0f} KiB PNGs; "
        f"load average {load:.1f} at the end; benchmarks.gpu",
    )


def stage_loader(ctx: Context, res: StageResult) -> None:
    from benchmarks.data import loader_throughput as lt

    cfg, device = ctx.settings.loader, torch.device(ctx.device)
    root = Path(tempfile.mkdtemp(prefix="s4seg-gpu-loader-"))
    try:
        lt.write_pngs(root, cfg.images, cfg.size)
        png_kib = sum(f.stat().st_size for f in (root / "images").iterdir()) / cfg.images / 1024
        dataset = s4seg.FolderDataset(root, num_classes=lt.NUM_CLASSES)
        torch.manual_seed(0)
        model = s4seg.create_generator(cfg.model, lt.NUM_CLASSES, output_stride=lt.OUTPUT_STRIDE)
        model.to(device).train()
        step_times = lt.time_step(
            model, cfg.batch, cfg.size, device, 1, max(cfg.loop_steps // 5, 2)
        )
        last = 0.0
        for workers in cfg.workers:
            if not res.time_for(last):
                res.stop_early(f"cap reached before {workers} workers")
                return
            start = time.perf_counter()
            with warnings.catch_warnings():
                # Without an accelerator pinning is a no-op; the "pinned" column says so.
                warnings.filterwarnings("ignore", message=".*pin_memory.*")
                measured = measure_loader(dataset, workers, model, device, cfg)
            res.rows.append(loader_row(ctx, cfg, workers, measured, step_times, png_kib))
            last = time.perf_counter() - start
    finally:
        shutil.rmtree(root, ignore_errors=True)


def write_loader(ctx: Context, rows: list[dict[str, object]]) -> Path:
    from benchmarks.data.index_files import append_csv
    from benchmarks.data.loader_throughput import FIELDS

    append_csv(rows, ctx.out.loader_csv, FIELDS)
    return ctx.out.loader_csv
