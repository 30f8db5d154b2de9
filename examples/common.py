"""What the synthetic-data recipes share: the flags, the splits, the loaders and the printed table.

Kept apart so that each recipe reads as its own wiring of parts and nothing else.
Nothing here imports torch before the flags are parsed, so ``--help`` answers at once.
A copy of a recipe needs this file beside it (``s4seg examples --copy DIR`` copies both).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch.utils.data import Dataset


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
    from torch.utils.data import Subset

    from s4seg.data import SyntheticShapes, Unlabelled, split_indices

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
    from torch.utils.data import DataLoader, DistributedSampler

    from s4seg.data import Augmented, InfiniteLoader, RandomHorizontalFlip
    from s4seg.distributed import is_distributed, rank

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


def default_threads() -> int:
    """torch CPU threads for a recipe: ``OMP_NUM_THREADS`` if set, else half the CPUs, 1 to 4.

    torch's own default is one thread per physical core. On a machine that other
    jobs share, those threads wait for each other: a 60-step A/B on a busy 2-core
    machine took 377 s at torch's default and 44 s at one thread. Half the CPUs this
    process may use (1 on 2 cores) leaves room for the rest of the machine; the
    recipes' small networks gain little from more than 4.
    """
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return min(4, max(1, cpus // 2))


class RecipeParser(argparse.ArgumentParser):
    """An ArgumentParser whose ``--help`` shows every flag's default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> Any:
        # argparse prints no line (so no default) for a flag without help text.
        if "help" not in kwargs and args and str(args[0]).startswith("-"):
            kwargs["help"] = "(default: %(default)s)"
        return super().add_argument(*args, **kwargs)


def base_parser(description: str, *, max_steps: int) -> argparse.ArgumentParser:
    """Flags every synthetic recipe has; ``--help`` shows their defaults."""
    p = RecipeParser(description=description)
    p.add_argument("--max-steps", type=int, default=max_steps, help="training steps")
    p.add_argument("--labelled", type=float, default=64, help="count (>= 1) or fraction (< 1)")
    p.add_argument("--train-size", type=int, default=2000, help="images in the training pool")
    p.add_argument("--val-size", type=int, default=200, help="validation images")
    p.add_argument("--image-size", type=int, default=64, help="side of the images in pixels")
    p.add_argument("--batch-size", type=int, default=8, help="images per batch (each loader)")
    # A 0.4M-parameter timm ResNet: both runs of s4gan_synthetic.py take ~12 min on 2 cores.
    p.add_argument("--backbone", default="test_resnet", help="any timm model name")
    p.add_argument("--seed", type=int, default=0, help="splits, weights and batches")
    p.add_argument("--device", default="auto", help="auto (CUDA if there is one), cpu, cuda")
    p.add_argument(
        "--threads",
        type=int,
        default=default_threads(),
        help="torch CPU threads (0: torch's default, one per core); the default is "
        "OMP_NUM_THREADS if set, else half this machine's CPUs, 1 to 4",
    )
    return p


def labelled_arg(value: float) -> int | float:
    """``--labelled 64`` means 64 images, ``--labelled 0.0625`` a fraction."""
    return int(value) if value >= 1 else float(value)


def prepare(args: argparse.Namespace) -> None:
    """Threads, and the process group when the script runs under torchrun."""
    import torch

    from s4seg.distributed import init_distributed

    init_distributed()  # a no-op without torchrun's environment
    if args.threads > 0:
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
    from s4seg.distributed import rank

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
