"""The suite's five stages, one module each, in the order they run."""

from __future__ import annotations

from benchmarks.gpu.runner import Stage
from benchmarks.gpu.stages.correctness import stage_correctness
from benchmarks.gpu.stages.kernel import stage_kernel, write_kernel
from benchmarks.gpu.stages.loader import stage_loader, write_loader
from benchmarks.gpu.stages.run import stage_run, write_run
from benchmarks.gpu.stages.step import stage_step, write_step

STAGES = (
    Stage(
        "correctness", "kernel, op and trainer tests on CUDA", stage_correctness, lambda c, r: None
    ),
    Stage("kernel", "fused op vs eager and torch.compile", stage_kernel, write_kernel),
    Stage("step", "whole S4GAN step vs the unfused step", stage_step, write_step),
    Stage("loader", "loader throughput against the step", stage_loader, write_loader),
    Stage("run", "an S4GAN run through the Trainer", stage_run, write_run),
)
