"""Learning quality: does unlabelled data help, and by how much, on the built-in data?

Every method trains the same network from the same initial weights, on the same
labelled images, for the same number of steps; the semi-supervised ones also see the
unlabelled rest of the training pool. Each run keeps the weights of its best
**validation** mIoU (the selection), and reports the mIoU of those weights on a
separate **test** split that nothing is tuned on. Rows are appended to
``benchmarks/quality/results.csv``; a run already in the CSV is skipped, so an
interrupted benchmark continues where it stopped.

    python -m benchmarks.quality.run             # the default budget: ~40 min on 2 CPU cores
    python -m benchmarks.quality.run --quick     # the same wiring in about a minute
    python -m benchmarks.quality.report          # table + plot under docs/quality/
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import datetime as dt
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

import s4seg
from benchmarks.kernel.run import git_sha
from s4seg.callbacks import Callback
from s4seg.data import Augmented, InfiniteLoader, RandomHorizontalFlip

HERE = Path(__file__).resolve().parent
CSV_PATH = HERE / "results.csv"
FIELDS = [
    "run_id", "git_sha", "device", "threads", "torch", "preset", "method", "split", "labelled",
    "seed", "steps", "best_val_miou", "best_step", "test_miou", "test_miou_last",
    "st_pixels_frac", "d_auc_accuracy", "d_auc_entropy", "seconds",
]  # fmt: skip


@dataclass(frozen=True)
class Preset:
    """The data and the budget of one benchmark configuration."""

    steps: int
    train_size: int = 2000
    val_size: int = 200
    test_size: int = 500
    image_size: int = 64
    batch_size: int = 8
    # timm's 0.1M-parameter test EfficientNet: on this data it beats test_resnet (0.40 vs
    # 0.29 test mIoU with every label, 1200 steps) at half the cost per step.
    backbone: str = "test_efficientnet"
    d_width: int = 16  # ndf of both discriminators (the papers': 64, for a 44M generator)
    lr_g: float = 0.05  # SGD lr of the backbone; the head trains at 10x
    evals: int = 5


PRESETS = {
    "default": Preset(steps=550),
    "quick": Preset(steps=6, train_size=160, val_size=16, test_size=16, evals=2),
}
SPLITS = {"1/16": 1 / 16, "1/8": 1 / 8}


@dataclass(frozen=True)
class Run:
    method: str
    split: str  # "1/16", "1/8" or "full"
    seed: int


# ------------------------------------------------------------------------- the methods
def s4gan_variant(preset: Preset, kind: str, classes: int) -> s4seg.S4GAN:
    """The S4GAN variants: the paper's gate under three schedules, a target rate, honest D."""
    n = preset.steps
    gates = {
        "static": s4seg.filters.DiscriminatorGate(0.2, check_range=False),
        # The field report's schedules, scaled from 30k steps to this budget.
        "linear": s4seg.filters.DiscriminatorGate(
            s4seg.schedules.Linear(0.2, 0.05, steps=n), check_range=False
        ),
        "step": s4seg.filters.DiscriminatorGate(
            s4seg.schedules.Step({0: 0.05, n * 5 // 30: 0.10, n * 15 // 30: 0.15, n: 0.20}),
            check_range=False,
        ),
        "target_rate": s4seg.filters.TargetRateGate(0.5),
        "pixel": s4seg.filters.AndFilter(
            s4seg.filters.DiscriminatorGate(0.2, check_range=False),
            s4seg.filters.PixelConfidenceFilter(0.9),
        ),
        "honest": s4seg.filters.AndFilter(
            s4seg.filters.DiscriminatorGate(0.2, check_range=False),
            s4seg.filters.PixelConfidenceFilter(0.9),
        ),
    }
    honest = {"real_smoothing": 0.1, "real_noise": 0.05, "fake_sharpen": 0.5}
    return s4seg.S4GAN(
        pseudo_filter=gates[kind],
        discriminator=s4seg.models.FMDiscriminator(classes, ndf=preset.d_width),
        lr_d=1e-4,
        **(honest if kind == "honest" else {}),
    )


def build_method(name: str, preset: Preset, classes: int) -> s4seg.methods.Method:
    """The method object of one benchmarked method name."""
    warmup = preset.steps // 6  # labels only at first, so that a teacher has something to say
    if name in ("supervised", "full"):
        return s4seg.Supervised()
    if name.startswith("s4gan_"):
        return s4gan_variant(preset, name.removeprefix("s4gan_"), classes)
    if name == "advsemiseg":
        return s4seg.AdvSemiSeg(
            start_step=warmup,
            discriminator=s4seg.models.PixelDiscriminator(classes, ndf=preset.d_width),
            lr_d=1e-4,
        )
    # A short run: a 0.999 cap would leave the teacher an average of nearly every
    # weight the student ever had, early random ones included; 0.99 follows ~100 steps.
    teacher = {"threshold": 0.9, "max_decay": 0.99, "start_step": preset.steps // 3}
    if name == "mean_teacher":
        return s4seg.MeanTeacher(**teacher)
    if name == "fixmatch":
        return s4seg.FixMatch(**teacher)
    if name == "fixmatch_classwise":  # FlexMatch's per-class thresholds on the same views
        return s4seg.FixMatch(
            **teacher, pseudo_filter=s4seg.filters.ClasswiseThreshold(classes, 0.9)
        )
    if name == "fixmatch_tau07":
        return s4seg.FixMatch(**{**teacher, "threshold": 0.7})
    if name == "fixmatch_mild":  # colour is a class cue here: no grayscale, mild jitter
        strong = s4seg.data.StrongView(
            brightness=0.2, contrast=0.2, saturation=0.0, grayscale_p=0.0
        )
        views = s4seg.data.WeakStrongViews(strong=strong)
        return s4seg.FixMatch(views=views, **teacher)
    raise ValueError(f"unknown benchmark method {name!r}; known: {METHODS}")


# The learning-quality protocol (issue 6): the paper's gate under three schedules, the
# target-rate gate, and the honest discriminator, at both splits, with the bounds.
PROTOCOL = (
    "supervised", "s4gan_static", "s4gan_linear", "s4gan_step", "s4gan_target_rate",
    "s4gan_honest",
)  # fmt: skip
# The rest of the method family, and the ablation of the honest variant, at 1/16.
FAMILY = ("s4gan_pixel", "advsemiseg", "mean_teacher", "fixmatch")
# Probes of why FixMatch-style training falls short here (one seed was enough to see).
PROBES = ("fixmatch_classwise", "fixmatch_tau07", "fixmatch_mild")
METHODS = PROTOCOL + FAMILY + PROBES
SUITES = {
    "protocol": {"methods": PROTOCOL, "splits": ("1/16", "1/8"), "full": True},
    "family": {"methods": FAMILY, "splits": ("1/16",), "full": False},
}


# ------------------------------------------------------------------------- one run
class KeepBest(Callback):
    """Keeps a copy of the generator's weights at its best validation mIoU (in memory)."""

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] | None = None
        self.best = -1.0

    def on_eval_end(self, trainer: s4seg.Trainer, metrics: dict[str, Any]) -> None:
        if metrics["miou"] > self.best:
            self.best = metrics["miou"]
            self.state = copy.deepcopy(trainer.generator.state_dict())
        self.last_eval = metrics


class RunningMean(Callback):
    """Mean of a train-record key over the run's log records."""

    def __init__(self, key: str) -> None:
        self.key, self.values = key, []

    def on_log(self, trainer: s4seg.Trainer, record: dict[str, Any]) -> None:
        if self.key in record:
            self.values.append(record[self.key])

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values) if self.values else float("nan")


def data(preset: Preset, split: str, seed: int) -> dict[str, Any]:
    """Loaders of one run: the pool is fixed, the labelled subset depends on the seed."""
    pool = s4seg.SyntheticShapes(preset.train_size, image_size=preset.image_size, seed=0)
    val = s4seg.SyntheticShapes(preset.val_size, image_size=preset.image_size, seed=10_000)
    test = s4seg.SyntheticShapes(preset.test_size, image_size=preset.image_size, seed=20_000)
    if split == "full":
        lab_idx, unl_idx = list(range(len(pool))), []
    else:
        lab_idx, unl_idx = s4seg.data.split_indices(len(pool), SPLITS[split], seed=seed)

    def infinite(dataset: Any, s: int) -> InfiniteLoader:
        flipped = Augmented(dataset, RandomHorizontalFlip(), seed=s)
        return InfiniteLoader(flipped, preset.batch_size, seed=s)

    labelled = Subset(pool, lab_idx)
    loaders = {
        "labelled_loader": infinite(labelled, seed),
        "loaders": {"d": infinite(labelled, seed + 2)},
        "val_loader": DataLoader(val, batch_size=50),
    }
    if len(unl_idx):
        loaders["unlabelled_loader"] = infinite(
            s4seg.data.Unlabelled(Subset(pool, unl_idx)), seed + 1
        )
    return {
        "loaders": loaders,
        "test": DataLoader(test, batch_size=50),
        "labelled": len(lab_idx),
        "classes": pool.num_classes,
    }


def run_one(run: Run, preset: Preset, device: str) -> dict[str, Any]:
    d = data(preset, run.split, run.seed)
    s4seg.seed_everything(run.seed)  # the same initial generator for every method
    generator = s4seg.create_generator(preset.backbone, d["classes"], output_stride=8)
    method = build_method(run.method, preset, d["classes"])
    keep, kept_pixels = KeepBest(), RunningMean("st_pixels_frac")
    trainer = s4seg.Trainer(
        generator,
        **d["loaders"],
        method=method,
        config=s4seg.TrainerConfig(
            max_steps=preset.steps,
            lr_g=preset.lr_g,
            eval_interval=max(1, preset.steps // preset.evals),
            log_interval=max(1, min(25, preset.steps)),
            device=device,
            check_inputs=False,  # the built-in data is known good: no host syncs for it
        ),
        callbacks=[keep, kept_pixels],
    )
    start = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - start
    last = trainer.evaluate(d["test"])["miou"]
    assert keep.state is not None  # fit() evaluates at the last step at least
    trainer.generator.load_state_dict(keep.state)
    test = trainer.evaluate(d["test"])["miou"]
    diag = getattr(keep, "last_eval", {})
    return {
        "method": run.method,
        "split": run.split,
        "labelled": d["labelled"],
        "seed": run.seed,
        "steps": trainer.step,
        "best_val_miou": round(trainer.best_miou, 5),
        "best_step": trainer.best_step,
        "test_miou": round(test, 5),
        "test_miou_last": round(last, 5),
        "st_pixels_frac": round(kept_pixels.mean, 5),
        "d_auc_accuracy": round(diag.get("d_auc_accuracy", float("nan")), 4),
        "d_auc_entropy": round(diag.get("d_auc_entropy", float("nan")), 4),
        "seconds": round(seconds, 1),
    }


# ------------------------------------------------------------------------- the suite
def planned_runs(methods: list[str], splits: list[str], seeds: list[int]) -> list[Run]:
    runs = [Run(m, s, seed) for seed in seeds for s in splits for m in methods]
    runs += [Run("full", "full", seed) for seed in seeds]
    return runs


def done_runs(path: Path, preset: str) -> set[tuple[str, str, int]]:
    if not path.exists():
        return set()
    with path.open() as f:
        return {
            (r["method"], r["split"], int(r["seed"]))
            for r in csv.DictReader(f)
            if r["preset"] == preset
        }


def append_row(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the same wiring in about a minute")
    p.add_argument("--suite", choices=sorted(SUITES), default="protocol")
    p.add_argument("--methods", default=None, help="comma-separated (default: the suite's)")
    p.add_argument("--splits", default=None, help="comma-separated: 1/16, 1/8 (default: suite's)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=None, help="override the preset's steps")
    p.add_argument("--no-full", action="store_true", help="skip the full-supervision runs")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--out", type=Path, default=None, help="CSV (default: results.csv here)")
    args = p.parse_args(argv)
    preset_name = "quick" if args.quick else "default"
    preset = PRESETS[preset_name]
    if args.steps is not None and args.steps != preset.steps:
        preset = dataclasses.replace(preset, steps=args.steps)
        preset_name = f"{preset_name}@{args.steps}"  # its rows never mix with the preset's
    out = args.out or (Path(os.environ.get("TMPDIR", "/tmp")) / "s4seg_quality_quick.csv"
                       if args.quick else CSV_PATH)  # fmt: skip
    if args.threads:
        torch.set_num_threads(args.threads)
    suite = SUITES[args.suite]
    methods = [m for m in (args.methods or ",".join(suite["methods"])).split(",") if m]
    for m in methods:
        if m not in METHODS:
            raise SystemExit(f"unknown method {m!r}; known: {', '.join(METHODS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    splits = [s for s in (args.splits or ",".join(suite["splits"])).split(",") if s]
    for s in splits:
        if s not in SPLITS:
            raise SystemExit(f"unknown split {s!r}; known: {', '.join(SPLITS)}")
    runs = planned_runs(methods, splits, seeds)
    if args.no_full or not suite["full"]:
        runs = [r for r in runs if r.method != "full"]
    done = done_runs(out, preset_name)
    todo = [r for r in runs if (r.method, r.split, r.seed) not in done]
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    device_name = (
        torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or "cpu"
    )
    run_id = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    sha = git_sha()  # once: the code that runs was imported from the tree as it is now
    print(f"{len(runs) - len(todo)} of {len(runs)} runs already in {out}; {len(todo)} to go")
    started = time.perf_counter()
    for i, run in enumerate(todo, 1):
        row = run_one(run, preset, device)
        row.update(
            run_id=run_id,
            git_sha=sha,
            device=f"{device} ({device_name})",
            threads=torch.get_num_threads(),
            torch=torch.__version__,
            preset=preset_name,
        )
        append_row(out, row)
        elapsed = time.perf_counter() - started
        eta = elapsed / i * (len(todo) - i)
        print(
            f"[{i}/{len(todo)}] {run.method:18s} {run.split:5s} seed {run.seed}: test mIoU "
            f"{row['test_miou']:.4f} (best val {row['best_val_miou']:.4f} at step "
            f"{row['best_step']}), {row['seconds']:.0f} s; about {eta / 60:.0f} min to go",
            flush=True,
        )
    print(f"results in {out}; tables and plot: python -m benchmarks.quality.report")


if __name__ == "__main__":
    main()
