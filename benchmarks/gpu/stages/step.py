"""Stage 3: the whole S4GAN step against the unfused step (``benchmarks/step/run.py``)."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

from benchmarks.gpu.runner import Context, StageResult, free_memory, say


def stage_step(ctx: Context, res: StageResult) -> None:
    from benchmarks.step import run as step

    amps = ctx.settings.step_amps
    by_amp: dict[str, dict[str, Any]] = res.data.setdefault("by_amp", {})
    for k, amp in enumerate(amps):
        # Each precision gets an equal share of what is left, so fp32 never starves bf16.
        share = (res.deadline - time.perf_counter()) / (len(amps) - k)
        preset = dict(ctx.settings.step_preset, amp=amp)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"amp=.* is used on CUDA only")
            trainers = {
                "s4seg": step.build(preset, ctx.device),
                "unfused": step.build(preset, ctx.device),
            }
        trainers["unfused"].method.self_training.loss = step.UnfusedSelfTrainingLoss()
        peaks: dict[str, float] = {}
        deadline = time.perf_counter() + share
        times = step.time_steps(trainers, preset["steps"], deadline=deadline, peaks=peaks)
        ran = step.amp_that_ran(trainers["s4seg"])
        rows = step.make_rows(
            times,
            preset,
            run_id=ctx.run_id(compact=True),
            device=step.device_name(ctx.cuda),
            amp=ran,
            peaks=peaks,
        )
        res.rows += rows
        by_amp[amp] = {"ran": ran, "rows": {r["variant"]: r for r in rows}}
        say(
            f"   step amp={amp} (ran {ran}): "
            + ", ".join(f"{r['variant']} {r['ms_p50']} ms ({r['steps']} steps)" for r in rows)
        )
        del trainers
        free_memory()


def write_step(ctx: Context, rows: list[dict[str, object]]) -> Path:
    from benchmarks.step.run import append_rows

    append_rows(rows, ctx.out.step_csv)
    return ctx.out.step_csv
