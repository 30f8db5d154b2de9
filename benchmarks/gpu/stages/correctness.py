"""Stage 1: the kernel, op and trainer tests on CUDA, as a pytest subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

from benchmarks.gpu.runner import Context, StageResult
from benchmarks.gpu.settings import ROOT

# The tests of stage 1. The kernel tests compile for the GPU there; the trainer tests
# run end to end; test_discriminator_inputs has a CUDA-only test that the CPU skips.
TEST_PATHS = (
    "tests/ops/test_triton_confidence_masked_ce.py",
    "tests/ops/test_reference.py",
    "tests/losses/test_self_training.py",
    "tests/training/test_trainer.py",
    "tests/models/test_discriminator_inputs.py",
    "tests/bench/test_gpu_suite.py::TestTrainerOnCuda",
)

OUTCOME = re.compile(
    r"^(?P<id>\S+\.py(?:::.+?)?) (?P<outcome>PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b", re.M
)
SHORT_FAILURE = re.compile(r"^(?:FAILED|ERROR) (.+)$", re.M)
SHORT_SKIP = re.compile(r"^SKIPPED \[\d+\] (.+)$", re.M)
COLLECTED = re.compile(r"(\d+) tests? collected")
COLLECT_ERRORS = re.compile(r"(\d+) errors?\b")
# Exit codes that mean the tests did not run as asked (1, failures, is a result).
PYTEST_BROKEN = {2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests collected"}


def subprocess_env(dry_run: bool) -> dict[str, str]:
    """The environment of the pytest subprocess.

    On the GPU, TRITON_INTERPRET is set to 0, not merely removed: the kernel test module
    defaults it to 1 when it is unset, and the kernels would then not run on CUDA (the
    module fails at import, as the conftest's imports load Triton first). In the dry
    run it is removed, and tests/conftest.py sets 1 as on any CPU machine.
    """
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)
    if not dry_run:
        env["TRITON_INTERPRET"] = "0"
    env["PYTHONUNBUFFERED"] = "1"  # the lines so far survive a kill at the cap
    return env


def run_until(cmd: list[str], env: dict[str, str], deadline: float) -> tuple[str, int | None]:
    """Output and return code of ``cmd``; killed (rc None) at ``deadline``."""
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=max(deadline - time.perf_counter(), 1.0))
        return out, proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return out, None
    finally:
        if proc.poll() is None:  # StageTimeout or an interrupt while waiting
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def parse_collection(output: str) -> dict[str, Any]:
    """Counts of ``pytest --collect-only -q``: tests collected, collection errors."""
    lines = output.strip().splitlines()
    collected = COLLECTED.findall(output)
    errors = COLLECT_ERRORS.findall(lines[-1]) if lines else []
    return {
        "counts": {
            "collected": int(collected[-1]) if collected else 0,
            "errors": int(errors[-1]) if errors else 0,
        },
        "failures": SHORT_FAILURE.findall(output)[:20],
    }


def parse_run(output: str) -> dict[str, Any]:
    """Counts per outcome from ``pytest -v`` lines, so a run killed at its cap still counts."""
    counts = {k: 0 for k in ("passed", "failed", "error", "skipped", "xfail", "xpass")}
    for match in OUTCOME.finditer(output):
        counts[match["outcome"].lower()] += 1
    return {
        "counts": counts,
        "failures": SHORT_FAILURE.findall(output)[:20],
        "skips": SHORT_SKIP.findall(output)[:20],
    }


def stage_correctness(ctx: Context, res: StageResult) -> None:
    mode = ["--collect-only", "-q"] if ctx.settings.collect_only else ["-v", "-rfEs", "--tb=line"]
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *mode, *TEST_PATHS]
    res.data["command"] = "python -m pytest " + " ".join(cmd[3:])
    output, rc = run_until(cmd, subprocess_env(ctx.dry_run), res.deadline)
    parse = parse_collection if ctx.settings.collect_only else parse_run
    res.data.update(parse(output), rc=rc)
    if rc is None:
        res.stop_early(
            f"pytest killed at the cap of {res.cap:g} s; counts are the tests it finished"
        )
    elif rc in PYTEST_BROKEN or res.data["counts"].get("errors"):
        last = output.strip().splitlines()[-1] if output.strip() else "no output"
        raise RuntimeError(f"pytest exited with {rc} ({PYTEST_BROKEN.get(rc, 'errors')}): {last}")
