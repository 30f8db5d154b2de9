"""The command line: the arguments, the checks before a run, and main."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from benchmarks.gpu.goals import all_goals
from benchmarks.gpu.runner import Context, StageResult, run_stage, say
from benchmarks.gpu.settings import DEFAULT_TIMEOUT_S, DRY, GPU, RESERVE_S, Outputs
from benchmarks.gpu.stages import STAGES
from benchmarks.gpu.summary import render_summary, shown
from benchmarks.kernel.run import git_sha, triton_version


def parse_cap(text: str) -> tuple[str, float]:
    name, _, seconds = text.partition("=")
    names = [s.name for s in STAGES]
    if name not in names:
        raise argparse.ArgumentTypeError(f"unknown stage {name!r} in --cap; stages are {names}")
    try:
        return name, float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--cap {text!r}: give seconds, e.g. kernel=120") from None


def parse_stages(text: str) -> list[str]:
    names = [s.name for s in STAGES]
    chosen = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in names]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown stage(s) {unknown}; stages are {names}")
    return chosen


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from benchmarks import gpu  # the package's docstring describes the suite

    p = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu", description=gpu.__doc__.splitlines()[0]
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="the same stages on the CPU at toy sizes, to a temporary folder",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"total wall time in seconds (default {DEFAULT_TIMEOUT_S:.0f})",
    )
    p.add_argument(
        "--cap",
        type=parse_cap,
        action="append",
        default=[],
        metavar="STAGE=SECONDS",
        help="a stage's time cap (repeatable); defaults: "
        + ", ".join(f"{k}={v:.0f}" for k, v in GPU.caps.items()),
    )
    p.add_argument(
        "--stages",
        type=parse_stages,
        default=None,
        metavar="NAME,...",
        help="run only these stages: " + ",".join(s.name for s in STAGES),
    )
    p.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="write the CSVs and the summary here instead of the committed files",
    )
    return p.parse_args(argv)


def precheck(dry_run: bool) -> str | None:
    """Why the suite cannot run here (None when it can)."""
    if dry_run:
        return None
    if not torch.cuda.is_available():
        return (
            "benchmarks.gpu needs a CUDA device, and torch sees none "
            "(torch.cuda.is_available() is False). Run it on the GPU machine, or pass "
            "--dry-run to run the same stages on the CPU at toy sizes (to a temporary folder)."
        )
    if os.environ.get("TRITON_INTERPRET") == "1":
        return (
            "TRITON_INTERPRET=1 is set: the kernels would run in Triton's CPU interpreter. "
            "Unset it (`env -u TRITON_INTERPRET python -m benchmarks.gpu`)."
        )
    return None


def make_context(args: argparse.Namespace) -> Context:
    settings = DRY if args.dry_run else GPU
    if args.out_dir is not None:
        out = Outputs.under(args.out_dir)
    elif args.dry_run:  # never the committed files
        out = Outputs.under(Path(tempfile.mkdtemp(prefix="s4seg-gpu-dry-")))
    else:
        out = Outputs.committed()
    cuda = not args.dry_run
    meta = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "triton": triton_version(),
        "cuda": str(torch.version.cuda),
        "python": platform.python_version(),
        "git_sha": git_sha(),
    }
    caps = {**settings.caps, **dict(args.cap)}
    ctx = Context(
        settings=settings,
        dry_run=args.dry_run,
        out=out,
        timeout=args.timeout,
        started=dt.datetime.now(dt.timezone.utc),
        deadline=time.perf_counter() + args.timeout - RESERVE_S,
        meta=meta,
    )
    ctx.results = {s.name: StageResult(s.name, s.title, caps[s.name]) for s in STAGES}
    return ctx


@contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Torch's CPU threads set to ``n`` for the block (unchanged when None)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_stages(ctx: Context, chosen: Sequence[str]) -> None:
    """Every chosen stage in order; an interrupt ends the run but keeps what ran."""
    for i, stage in enumerate(STAGES, 1):
        res = ctx.results[stage.name]
        if stage.name not in chosen:
            res.status, res.notes = "skipped", ["not selected (--stages)"]
            continue
        try:
            run_stage(ctx, i, stage)
        except KeyboardInterrupt:
            res.status = "interrupted"
            say(f"{stage.name}: interrupted; writing the summary of what ran")
            return


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = precheck(args.dry_run)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    start = time.perf_counter()
    ctx = make_context(args)
    m = ctx.meta
    say(
        f"{'dry run, CPU' if ctx.dry_run else m['device']}: torch {m['torch']}, triton "
        f"{m['triton']}, git {m['git_sha']}; {ctx.timeout:.0f} s budget; "
        f"summary to {shown(ctx.out.summary)}"
    )
    # One CPU thread in the dry run: on a busy machine two threads that wait on each
    # other make a toy step 50x slower, and the dry run times nothing that matters.
    with cpu_threads(1 if ctx.dry_run else None):
        run_stages(ctx, args.stages or [s.name for s in STAGES])
    goals = all_goals(ctx)
    ctx.out.summary.write_text(render_summary(ctx, goals, time.perf_counter() - start))
    for g in goals:
        say(f"{g.result:12s} {g.name} [{g.case}]: {g.measured}")
    say(f"summary: {shown(ctx.out.summary)} ({time.perf_counter() - start:.0f} s)")
    return 1 if any(r.status == "error" for r in ctx.results.values()) else 0
