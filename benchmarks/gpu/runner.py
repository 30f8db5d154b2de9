"""Running one stage: its result, the suite's context, the cap and the hard stop."""

from __future__ import annotations

import datetime as dt
import gc
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks.gpu.settings import GRACE_S, MIN_STAGE_S, Outputs, Settings


class StageTimeout(BaseException):
    """A stage ran past its cap. A BaseException, so that the benchmarks' own
    ``except Exception`` (a failing provider is recorded as a row) cannot swallow it."""


@dataclass
class StageResult:
    """What one stage did: its status, rows for its CSV and figures for the summary."""

    name: str
    title: str
    cap: float
    status: str = "not run"  # ok, partial, error, skipped
    seconds: float = 0.0
    deadline: float = 0.0  # time.perf_counter() time the stage must end by
    notes: list[str] = field(default_factory=list)
    rows: list[dict[str, object]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def time_for(self, estimate_s: float) -> bool:
        """Whether a unit of work that takes ``estimate_s`` still ends before the deadline."""
        return time.perf_counter() + estimate_s <= self.deadline

    def stop_early(self, why: str) -> None:
        self.status = "partial"
        self.notes.append(why)


@dataclass
class Context:
    """The suite's settings, where it writes, and what every stage has measured."""

    settings: Settings
    dry_run: bool
    out: Outputs
    timeout: float
    started: dt.datetime
    deadline: float  # perf_counter time of the 8-minute mark, less RESERVE_S
    meta: dict[str, str]
    results: dict[str, StageResult] = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return not self.dry_run

    @property
    def device(self) -> str:
        return "cuda" if self.cuda else "cpu"

    def run_id(self, compact: bool = False) -> str:
        """One id for every row of the suite, in the format of each CSV's own runs."""
        return self.started.strftime("%Y%m%dT%H%M%SZ" if compact else "%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    run: Callable[[Context, StageResult], None]
    write: Callable[[Context, list[dict[str, object]]], Path | None]


@contextmanager
def hard_stop(at: float) -> Iterator[None]:
    """Raise :class:`StageTimeout` at ``time.perf_counter()`` time ``at`` (SIGALRM).

    The stages check their deadline between units of work; this is the backstop for a
    unit that hangs. A no-op off the main thread or without SIGALRM.
    """
    if (
        not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    def _raise(signum: int, frame: object) -> None:
        raise StageTimeout

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, max(at - time.perf_counter(), 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def free_memory() -> None:
    """Drop what a finished stage left (models, loader workers) before the next one."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def say(message: str) -> None:
    print(f"[gpu-suite] {message}", flush=True)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


def run_stage(ctx: Context, index: int, stage: Stage) -> None:
    """Run one stage under its cap, never raising; write its rows; print its progress."""
    res = ctx.results[stage.name]
    label = f"{index}/{len(ctx.results)} {stage.name}"  # one result per stage of the suite
    start = time.perf_counter()
    left = ctx.deadline - start
    if left < MIN_STAGE_S:
        res.status = "skipped"
        res.notes.append(
            f"no time left: {max(left, 0):.0f} s of the {ctx.timeout:g} s budget remained "
            f"(a stage needs {MIN_STAGE_S:g} s)"
        )
        say(f"{label}: skipped, {res.notes[-1]}")
        return
    res.deadline = start + min(res.cap, left)
    say(f"{label}: {stage.title} (cap {res.cap:g} s, {left:.0f} s left in the suite)")
    res.status = "ok"
    try:
        with hard_stop(res.deadline + GRACE_S):
            stage.run(ctx, res)
    except StageTimeout:
        res.stop_early(f"stopped at its cap of {res.cap:g} s")
    except Exception as exc:  # a stage never takes the suite down: record it, go on
        res.status = "error"
        res.notes.append(first_line(exc))
        traceback.print_exc()
    res.seconds = time.perf_counter() - start
    where = write_rows(ctx, stage, res)
    free_memory()
    say(f"{label}: {res.status} in {res.seconds:.1f} s" + (f", {where}" if where else ""))


def write_rows(ctx: Context, stage: Stage, res: StageResult) -> str:
    """Append the stage's rows to its CSV; a failing write is recorded, not raised."""
    if not res.rows:
        return ""
    try:
        path = stage.write(ctx, res.rows)
    except Exception as exc:
        res.notes.append(f"rows not written: {first_line(exc)}")
        return "rows not written"
    return f"{len(res.rows)} rows appended to {path}" if path else ""
