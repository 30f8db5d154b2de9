"""The suite's constants, the sizes of the GPU run and of the dry run, and where it writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.kernel.run import Shape

# benchmarks/, not this package's folder: the suite's own files sit beside the benchmarks.
BENCHMARKS_DIR = Path(__file__).resolve().parents[1]
ROOT = BENCHMARKS_DIR.parent
SUMMARY_PATH = BENCHMARKS_DIR / "gpu_summary.md"
RUN_CSV = BENCHMARKS_DIR / "gpu_run.csv"
RUN_FIELDS = [
    "run_id", "git_sha", "device", "torch", "triton", "cuda", "backbone", "classes", "size",
    "batch", "amp", "channels_last", "workers", "steps", "step", "val_miou", "s_per_step",
    "eval_s", "data_wait_frac", "gpu_mem_peak_mib", "note",
]  # fmt: skip
DEFAULT_TIMEOUT_S = 480.0
RESERVE_S = 8.0  # kept back from the last stage for the CSVs and the summary
GRACE_S = 4.0  # a stage's own deadline checks get this long before the hard stop
MIN_STAGE_S = 5.0  # a stage is not started with less time than this left
WARMUP_STEPS = 5  # the run's first steps: worker start-up, cuDNN's first calls


@dataclass(frozen=True)
class LoaderSettings:
    """Stage 4: PNG patches read through FolderDataset and InfiniteLoader."""

    images: int
    size: int
    batch: int
    workers: tuple[int, ...]
    warmup: int
    batches: int
    loop_steps: int
    model: str  # the generator whose fwd+bwd the loader feeds


@dataclass(frozen=True)
class RunSettings:
    """Stage 5: an S4GAN run through the Trainer on SyntheticShapes."""

    backbone: str
    size: int
    batch: int
    steps: int
    eval_every: int
    log_every: int
    train_size: int
    labelled: int
    val_size: int
    val_batch: int
    workers: int  # per training loader (there are three)
    amp: str
    channels_last: bool
    lr: float  # from scratch (no pretrained weights offline), not the paper's 2.5e-4


@dataclass(frozen=True)
class Settings:
    """Sizes of every stage: the GPU suite's, or the dry run's toy ones."""

    collect_only: bool  # stage 1 only collects the tests (the dry run)
    kernel_cases: tuple[tuple[Shape, tuple[str, ...]], ...]
    kernel_goal_cases: tuple[tuple[Shape, str], ...]
    kernel_providers: tuple[str, ...]
    step_preset: dict[str, Any]
    step_amps: tuple[str, ...]
    loader: LoaderSettings
    run: RunSettings
    caps: dict[str, float]


PASCAL, CITYSCAPES, ADE = Shape(8, 21, 321, 321), Shape(8, 19, 512, 1024), Shape(8, 150, 512, 512)
TOY = Shape(1, 4, 16, 16)

GPU = Settings(
    collect_only=False,
    kernel_cases=(
        (PASCAL, ("float32", "bfloat16")),
        (CITYSCAPES, ("bfloat16",)),
        (ADE, ("bfloat16",)),
    ),
    kernel_goal_cases=((PASCAL, "float32"), (PASCAL, "bfloat16"), (CITYSCAPES, "bfloat16")),
    kernel_providers=("eager", "compile", "triton"),
    step_preset={
        "backbone": "deeplabv2_resnet101",
        "size": 321,
        "batch": 8,
        "classes": 21,
        "steps": 20,
        "channels_last": True,
        "device_batches": True,
    },
    step_amps=("none", "bf16"),
    loader=LoaderSettings(
        images=256,
        size=256,
        batch=8,
        workers=(2, 8),
        warmup=10,
        batches=100,
        loop_steps=50,
        model="resnet50",
    ),
    run=RunSettings(
        backbone="deeplabv2_resnet101",
        size=321,
        batch=8,
        steps=200,
        eval_every=50,
        log_every=10,
        train_size=1000,
        labelled=100,
        val_size=32,
        val_batch=16,
        workers=5,
        amp="bf16",
        channels_last=True,
        lr=0.01,
    ),
    # 150 + 90 + 80 + 50 + 110 = 480 s: the kernel tests compile one kernel per
    # constexpr combination, the costliest part of a cold machine.
    caps={"correctness": 150, "kernel": 90, "step": 80, "loader": 50, "run": 110},
)

DRY = Settings(
    collect_only=True,
    kernel_cases=((TOY, ("float32",)),),
    kernel_goal_cases=((TOY, "float32"),),
    kernel_providers=("eager", "compile", "triton"),
    step_preset={
        "backbone": "test_resnet",
        "size": 32,
        "batch": 2,
        "classes": 6,
        "steps": 2,
        "channels_last": True,
        "device_batches": True,
    },
    step_amps=("none", "bf16"),
    loader=LoaderSettings(
        images=16,
        size=32,
        batch=2,
        workers=(1, 2),
        warmup=1,
        batches=4,
        loop_steps=2,
        model="test_resnet",
    ),
    run=RunSettings(
        backbone="test_resnet",
        size=32,
        batch=2,
        steps=4,
        eval_every=2,
        log_every=1,
        train_size=24,
        labelled=8,
        val_size=4,
        val_batch=4,
        workers=0,
        amp="bf16",
        channels_last=True,
        lr=0.01,
    ),
    caps={"correctness": 40, "kernel": 40, "step": 20, "loader": 20, "run": 20},
)


@dataclass(frozen=True)
class Outputs:
    """Where the rows and the summary go."""

    kernel_csv: Path
    step_csv: Path
    loader_csv: Path
    run_csv: Path
    summary: Path

    @classmethod
    def committed(cls) -> Outputs:
        from benchmarks.data.loader_throughput import CSV_PATH as LOADER_CSV
        from benchmarks.kernel.run import CSV_PATH as KERNEL_CSV
        from benchmarks.step.run import CSV_PATH as STEP_CSV

        return cls(KERNEL_CSV, STEP_CSV, LOADER_CSV, RUN_CSV, SUMMARY_PATH)

    @classmethod
    def under(cls, folder: Path) -> Outputs:
        folder.mkdir(parents=True, exist_ok=True)
        names = ("kernel_results.csv", "step_results.csv", "loader_results.csv", "gpu_run.csv")
        return cls(*(folder / n for n in names), folder / "gpu_summary.md")
