"""Stage 2: the fused op against eager and torch.compile (``benchmarks/kernel/run.py``)."""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.gpu.runner import Context, StageResult


def stage_kernel(ctx: Context, res: StageResult) -> None:
    from benchmarks.kernel import run as kernel

    last = 0.0  # one case's duration: the estimate for the next
    for shape, dtypes in ctx.settings.kernel_cases:
        for dtype in dtypes:
            if not res.time_for(last):
                res.stop_early(f"cap reached before {shape} {dtype}")
                return
            start = time.perf_counter()
            rows = kernel.run_suite(
                cuda=ctx.cuda,
                shapes=[shape],
                dtypes=[dtype],
                providers=list(ctx.settings.kernel_providers),
                modes=list(kernel.MODES),
            )
            res.rows += [dict(r, run_id=ctx.run_id()) for r in rows]  # one run, one id
            last = time.perf_counter() - start


def write_kernel(ctx: Context, rows: list[dict[str, object]]) -> Path:
    from benchmarks.kernel.run import append_csv

    append_csv(rows, ctx.out.kernel_csv)
    return ctx.out.kernel_csv
