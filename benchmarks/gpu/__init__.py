"""One prepared GPU suite: correctness on CUDA, the kernel, the whole step, the loader, a run.

On one CUDA device, in at most ``--timeout`` seconds (480 by default), five stages run
in this order, each under its own time cap:

1. ``correctness``: the kernel, op and loss tests compiled for the GPU (not in Triton's
   interpreter) and the trainer end to end on CUDA (bf16 autocast, channels-last,
   compiled generator), as a pytest subprocess; pass/fail counts go to the summary.
2. ``kernel``: ``benchmarks/kernel/run.py``'s suite on the PASCAL-, Cityscapes- and
   ADE-like shapes: eager reference, torch.compile, Triton; forward, backward, full.
3. ``step``: the whole S4GAN step of the DeepLabV2-ResNet101 preset at 321 px, batch 8,
   fp32 and bf16 autocast with channels-last: s4seg's step against the same step with
   the eager unfused self-training loss, alternating (``benchmarks/step/run.py``).
4. ``loader``: ``benchmarks/data/loader_throughput.py`` at 256 px with 2 and 8 workers.
5. ``run``: 200 S4GAN steps of the DeepLabV2 preset through the Trainer on the built-in
   data at 321 px, with the validation mIoU every 50 steps and the step time.

Every figure is appended to the committed result CSVs (``benchmarks/kernel/results.csv``,
``benchmarks/step/results.csv``, ``benchmarks/data/loader_results.csv`` and
``benchmarks/gpu_run.csv``), each row with the device, versions and git sha, and
``benchmarks/gpu_summary.md`` says what ran, each goal with its measured value and
PASS or MISS, and what was skipped and why. A stage that fails or reaches its cap is
recorded as such, and the suite goes on with the next one.

    python -m benchmarks.gpu                          # the suite, on a CUDA machine
    python -m benchmarks.gpu --dry-run                # the same stages on the CPU, toy sizes
    python -m benchmarks.gpu --stages kernel,step --cap kernel=150
    python -m benchmarks.gpu --out-dir /tmp/suite     # the CSVs and summary there instead

``--dry-run`` runs on the CPU at toy sizes in well under a minute and writes to a
temporary folder, never to the committed files: it keeps the suite from rotting
between GPU runs (``tests/bench/test_gpu_suite.py`` runs it).

The package, one module per job: ``settings`` (the constants, the GPU and dry-run
sizes, the outputs), ``runner`` (a stage under its cap), ``stages`` (one module per
stage, and their order), ``goals`` (each goal judged), ``summary`` (the Markdown
summary) and ``cli`` (the arguments and ``main``).
"""

from __future__ import annotations

from benchmarks.gpu.cli import main, parse_args
from benchmarks.gpu.goals import GOALS, Goal, all_goals
from benchmarks.gpu.runner import Context, Stage, StageResult, StageTimeout, run_stage
from benchmarks.gpu.settings import (
    DRY,
    GPU,
    RUN_CSV,
    RUN_FIELDS,
    SUMMARY_PATH,
    LoaderSettings,
    Outputs,
    RunSettings,
    Settings,
)
from benchmarks.gpu.stages import STAGES
from benchmarks.gpu.stages.correctness import TEST_PATHS, parse_collection, parse_run
from benchmarks.gpu.summary import render_summary

__all__ = [
    "DRY",
    "GOALS",
    "GPU",
    "RUN_CSV",
    "RUN_FIELDS",
    "STAGES",
    "SUMMARY_PATH",
    "TEST_PATHS",
    "Context",
    "Goal",
    "LoaderSettings",
    "Outputs",
    "RunSettings",
    "Settings",
    "Stage",
    "StageResult",
    "StageTimeout",
    "all_goals",
    "main",
    "parse_args",
    "parse_collection",
    "parse_run",
    "render_summary",
    "run_stage",
]
