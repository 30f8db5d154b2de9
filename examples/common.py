"""What the synthetic-data recipes share: the splits, the loaders and the printed table.

Kept apart so that each recipe reads as its own wiring of parts and nothing else.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from s4seg.data import (
    Augmented,
    InfiniteLoader,
    RandomHorizontalFlip,
    SyntheticShapes,
    Unlabelled,
    split_indices,
)
from s4seg.distributed import init_distributed, is_distributed, rank


@dataclass
class SyntheticSplits:
    """A labelled/unlabelled training pool and a separate validation set."""

    labelled: Dataset
    unlabelled: Dataset
    val: Dataset
    num_classes: int


def synthetic_splits(
    *,
    train_size: int,
    labelled: int | float,
    val_size: int,
    image_size: int,
    seed: int,
    keep_masks: bool = False,
) -> SyntheticSplits:
    """Seeded splits of the built-in dataset; validation images come from another seed.

    ``keep_masks`` keeps the unlabelled images' true masks (as ``"true_mask"``), which
    the methods use only to log how many kept pseudo-labels are right.
    """
    pool = SyntheticShapes(train_size, image_size=image_size, seed=seed)
    lab_idx, unl_idx = split_indices(train_size, labelled, seed=seed)
    val = SyntheticShapes(val_size, image_size=image_size, seed=seed + 10_000)
    unlabelled = Unlabelled(Subset(pool, unl_idx), keep_masks=keep_masks)
    return SyntheticSplits(Subset(pool, lab_idx), unlabelled, val, pool.num_classes)


def splits_from_args(args: argparse.Namespace, *, keep_masks: bool = False) -> SyntheticSplits:
    """:func:`synthetic_splits` from the flags of :func:`base_parser`."""
    return synthetic_splits(
        train_size=args.train_size,
        labelled=labelled_arg(args.labelled),
        val_size=args.val_size,
        image_size=args.image_size,
        seed=args.seed,
        keep_masks=keep_masks,
    )


def loaders(splits: SyntheticSplits, batch_size: int, seed: int) -> dict[str, Any]:
    """The loaders a Trainer takes: each infinite one with its own seed.

    ``loaders["d"]`` is S4GAN's: labelled batches its discriminator sees as "real".

    Training images are flipped at random (colour jitter is left out: colour carries
    part of the class here, and the field report measured it hurting).
    """

    def infinite(dataset: Dataset, s: int) -> InfiniteLoader:
        # Under torchrun each rank reads its own shard and flips with its own seed;
        # the shard order still reshuffles every pass (the loader sets the epoch).
        sampler = DistributedSampler(dataset, seed=s) if is_distributed() else None
        flipped = Augmented(dataset, RandomHorizontalFlip(), seed=s + 1000 * rank())
        return InfiniteLoader(flipped, batch_size, seed=s, sampler=sampler)

    return {
        "labelled_loader": infinite(splits.labelled, seed),
        "unlabelled_loader": infinite(splits.unlabelled, seed + 1),
        "loaders": {"d": infinite(splits.labelled, seed + 2)},
        "val_loader": DataLoader(
            splits.val,
            batch_size=32,
            sampler=DistributedSampler(splits.val, shuffle=False) if is_distributed() else None,
        ),
    }


def base_parser(description: str, *, max_steps: int) -> argparse.ArgumentParser:
    """Flags every synthetic recipe has."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--max-steps", type=int, default=max_steps)
    p.add_argument("--labelled", type=float, default=64, help="count (>= 1) or fraction (< 1)")
    p.add_argument("--train-size", type=int, default=2000)
    p.add_argument("--val-size", type=int, default=200)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    # A 0.4M-parameter timm ResNet: both runs of the main job take ~12 min on 2 cores.
    p.add_argument("--backbone", default="test_resnet")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    return p


def labelled_arg(value: float) -> int | float:
    """``--labelled 64`` means 64 images, ``--labelled 0.0625`` a fraction."""
    return int(value) if value >= 1 else float(value)


def prepare(args: argparse.Namespace) -> None:
    """Threads, and the process group when the script runs under torchrun."""
    init_distributed()  # a no-op without torchrun's environment
    if args.threads:
        torch.set_num_threads(args.threads)


class Stopwatch:
    """Wall time of a block, for the printed table."""

    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def fit_and_summarise(trainer: Any, name: str, labelled: int) -> dict[str, Any]:
    """Train, evaluate the last weights, and return the row :func:`print_table` prints."""
    with Stopwatch() as clock:
        trainer.fit()
    final = trainer.evaluate()
    return {
        "name": name,
        "steps": trainer.step,
        "labelled": labelled,
        "best_miou": trainer.best_miou,
        "best_step": trainer.best_step,
        "final_miou": final["miou"],
        "seconds": clock.seconds,
    }


def print_table(rows: list[dict[str, Any]], out_dir: Path | None = None) -> str:
    """A markdown table of the runs; also written to ``out_dir/results.md``."""
    lines = [
        "| run | steps | labelled images | best val mIoU (step) | final val mIoU | wall time |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['steps']} | {r['labelled']} | {r['best_miou']:.4f} ({r['best_step']})"
            f" | {r['final_miou']:.4f} | {r['seconds']:.0f} s |"
        )
    table = "\n".join(lines)
    if rank() != 0:  # under torchrun every rank has the same numbers; rank 0 reports
        return table
    print(table)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.md").write_text(table + "\n")
    return table
