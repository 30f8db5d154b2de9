"""Loader throughput for 256x256 patches against the step time of a ResNet-50 generator.

The script writes ``--images`` PNG pairs (image and class-index mask) from
``s4seg.SyntheticShapes(image_size=256)`` into a temporary folder under ``/tmp`` and
reads them back through ``FolderDataset`` and ``InfiniteLoader`` at batch 8 with 2
workers, ``pin_memory=True`` and ``persistent_workers=True``. Every batch therefore
costs what a real patch folder costs: PNG decoding, the mask check and collation. It
times three things, one after the other:

1. **loader**: images/s over ``--batches`` batches after ``--warmup`` batches (worker
   start-up is excluded). The default runs through several epochs, so the epoch
   roll-overs with persistent workers are included.
2. **step**: forward + backward of ``s4seg.create_generator("resnet50", 6,
   output_stride=16)`` in train mode on a fixed batch of 8 at 256x256 on the device,
   with a cross-entropy loss. The median step time gives the images/s that training
   consumes.
3. **loop**: the loader feeding that step, as training runs it. ``wait_share`` is the
   share of the loop's time spent in ``next(loader)``, the figure that shows whether
   the step waits on data. On a CPU machine the workers and the step share the same
   cores, so the loop is slower than either part alone.

``ratio`` = loader images/s / step images/s. Above 1 the loader keeps up with the step.
The rows are appended to ``benchmarks/data/loader_results.csv``.

    python -m benchmarks.data.loader_throughput            # 256 images, 100 batches, 3 steps
    python -m benchmarks.data.loader_throughput --images 64 --batches 30 --steps 2   # quick
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import s4seg
from benchmarks.data.index_files import append_csv, host_fields, print_table

HERE = Path(__file__).resolve().parent
CSV_PATH = HERE / "loader_results.csv"
FIELDS = [
    "run_id", "git_sha", "device", "cpu", "python", "torch", "numpy", "images", "size", "batch",
    "workers", "pin_memory", "pinned", "persistent_workers", "warmup", "batches", "loader_img_s",
    "model", "steps", "step_s_p50", "step_s_min", "step_img_s", "ratio", "loop_steps",
    "loop_img_s", "wait_share", "note",
]  # fmt: skip
MODEL, NUM_CLASSES, OUTPUT_STRIDE = "resnet50", 6, 16


def write_pngs(root: Path, n: int, size: int, seed: int = 0) -> float:
    """``n`` image/mask PNG pairs from SyntheticShapes under ``root``; seconds taken."""
    t = time.perf_counter()
    data = s4seg.SyntheticShapes(n, image_size=size, seed=seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        sample = data[i]
        image = (sample["image"] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        Image.fromarray(np.ascontiguousarray(image)).save(root / "images" / f"{i:05d}.png")
        mask = sample["mask"].to(torch.uint8).numpy()
        Image.fromarray(mask).save(root / "masks" / f"{i:05d}.png")
    return time.perf_counter() - t


def is_pinned(t: torch.Tensor) -> bool:
    try:
        return bool(t.is_pinned())
    except RuntimeError:  # no accelerator to ask
        return False


def time_loader(loader: s4seg.data.InfiniteLoader, warmup: int, batches: int) -> tuple[float, bool]:
    """(images/s over ``batches`` batches after ``warmup``, whether the batches were pinned)."""
    for _ in range(warmup):
        batch = next(loader)
    t = time.perf_counter()
    seen = 0
    for _ in range(batches):
        batch = next(loader)
        seen += batch["image"].shape[0]
    elapsed = time.perf_counter() - t
    return seen / elapsed, is_pinned(batch["image"])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(model: torch.nn.Module, image: torch.Tensor, mask: torch.Tensor) -> None:
    logits = model(image)
    F.cross_entropy(logits, mask, ignore_index=255).backward()
    model.zero_grad(set_to_none=True)


def time_step(
    model: torch.nn.Module, batch: int, size: int, device: torch.device, warmup: int, steps: int
) -> list[float]:
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, size, size, generator=gen).to(device)
    mask = torch.randint(0, NUM_CLASSES, (batch, size, size), generator=gen).to(device)
    times = []
    for i in range(warmup + steps):
        sync(device)
        t = time.perf_counter()
        train_step(model, image, mask)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def time_loop(
    model: torch.nn.Module, loader: s4seg.data.InfiniteLoader, device: torch.device, steps: int
) -> tuple[float, float]:
    """(images/s of the loop, share of the loop's time spent waiting in ``next(loader)``)."""
    train_step(model, *_to(next(loader), device))  # warm-up step
    sync(device)
    wait = 0.0
    seen = 0
    start = time.perf_counter()
    for _ in range(steps):
        t = time.perf_counter()
        batch = next(loader)
        wait += time.perf_counter() - t
        seen += batch["image"].shape[0]
        train_step(model, *_to(batch, device))
        sync(device)
    total = time.perf_counter() - start
    return seen / total, wait / total


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        batch["image"].to(device, non_blocking=True),
        batch["mask"].to(device, non_blocking=True),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=256, help="PNG pairs to generate")
    p.add_argument("--size", type=int, default=256, help="patch side in pixels")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--warmup", type=int, default=10, help="loader batches before timing")
    p.add_argument("--batches", type=int, default=100, help="timed loader batches")
    p.add_argument("--steps", type=int, default=3, help="timed training steps (and loop steps)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tmp", type=Path, default=Path("/tmp"), help="where to write the PNGs")
    p.add_argument("--no-csv", action="store_true", help="print only, append no rows")
    args = p.parse_args(argv)
    if min(args.images, args.size, args.batch, args.batches, args.steps) < 1 or args.workers < 0:
        p.error("--images, --size, --batch, --batches and --steps must be >= 1, --workers >= 0")
    if args.images < args.batch:
        p.error(f"--images {args.images} is fewer than one batch of {args.batch}")
    device = torch.device(args.device)
    host = host_fields()
    threads = torch.get_num_threads()
    print(
        f"{host['cpu']} | {host['device']} | Python {host['python']} | torch {host['torch']} "
        f"({threads} threads) | {host['git_sha']}"
    )
    root = Path(tempfile.mkdtemp(prefix="s4seg-loader-", dir=args.tmp))
    try:
        made = write_pngs(root, args.images, args.size)
        png_kib = sum(f.stat().st_size for f in (root / "images").iterdir()) / args.images / 1024
        print(f"{args.images} PNG pairs of {args.size}x{args.size} written in {made:.1f} s "
              f"({png_kib:.0f} KiB per image) under {root}")  # fmt: skip
        dataset = s4seg.FolderDataset(root, num_classes=NUM_CLASSES)
        persistent = args.workers > 0
        with warnings.catch_warnings():
            # Without an accelerator DataLoader warns that pinning is a no-op; the
            # "pinned" column records what happened.
            warnings.filterwarnings("ignore", message=".*pin_memory.*")
            loader = s4seg.data.InfiniteLoader(
                dataset, args.batch, num_workers=args.workers, pin_memory=True,
                persistent_workers=persistent, seed=0,
            )  # fmt: skip
            loader_img_s, pinned = time_loader(loader, args.warmup, args.batches)
            print(f"loader: {loader_img_s:.1f} images/s ({args.workers} workers, pinned={pinned})")

            torch.manual_seed(0)
            model = s4seg.create_generator(MODEL, NUM_CLASSES, output_stride=OUTPUT_STRIDE)
            model.to(device).train()
            step_times = time_step(model, args.batch, args.size, device, 1, args.steps)
            step_s = statistics.median(step_times)
            step_img_s = args.batch / step_s
            print(f"step:   {step_s:.3f} s per batch of {args.batch} -> {step_img_s:.1f} images/s")

            loop_img_s, wait_share = time_loop(model, loader, device, args.steps)
            print(
                f"loop:   {loop_img_s:.1f} images/s, {wait_share:.1%} of the time in next(loader)"
            )
        del loader  # ends the persistent workers
    finally:
        shutil.rmtree(root, ignore_errors=True)

    row: dict[str, Any] = dict(
        host, images=args.images, size=args.size, batch=args.batch, workers=args.workers,
        pin_memory=True, pinned=pinned, persistent_workers=persistent, warmup=args.warmup,
        batches=args.batches, loader_img_s=f"{loader_img_s:.1f}",
        model=f"{MODEL} os{OUTPUT_STRIDE} C={NUM_CLASSES} fwd+bwd", steps=args.steps,
        step_s_p50=f"{step_s:.4f}", step_s_min=f"{min(step_times):.4f}",
        step_img_s=f"{step_img_s:.2f}", ratio=f"{loader_img_s / step_img_s:.1f}",
        loop_steps=args.steps, loop_img_s=f"{loop_img_s:.2f}", wait_share=f"{wait_share:.3f}",
        note=f"{threads} torch threads; {png_kib:.0f} KiB PNGs; "
        f"load average {os.getloadavg()[0]:.1f} at the end",
    )  # fmt: skip
    print()
    print_table(
        [row],
        ["workers", "pinned", "loader_img_s", "step_s_p50", "step_img_s", "ratio", "loop_img_s",
         "wait_share"],
    )  # fmt: skip
    print(f"\nratio {row['ratio']}: the loader delivers {row['ratio']}x the images/s the step uses")
    if not args.no_csv:
        append_csv([row], CSV_PATH, FIELDS)
        print(f"appended 1 row to {CSV_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
