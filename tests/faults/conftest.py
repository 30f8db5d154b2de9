"""A fork server for the kill tests: one process that imported torch, forking each stage."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

CHILD = Path(__file__).with_name("child.py")


class Stages:
    """Runs stages of a training run in forked children of ``child.py`` and signals them."""

    def __init__(self, log: Path) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        self._stderr = log.open("w")
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._expect("READY", timeout=120)
        self._last_start = 0.0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _next(self, timeout: float) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no word from the child in {timeout} s; see {self.log}") from None
        if line is None:
            raise AssertionError(f"the fork server died; see {self.log}:\n{self.log.read_text()}")
        return line

    def _expect(self, prefix: str, timeout: float) -> str:
        line = self._next(timeout)
        assert line.startswith(prefix), (line, self.log.read_text())
        return line

    def run(
        self,
        run_dir: Path,
        point: dict[str, Any] | None = None,
        sig: int = signal.SIGKILL,
        kill_after: float | None = None,
        timeout: float = 60,
    ) -> int:
        """One stage; the signal goes at the point (or after ``kill_after`` s). Its status."""
        # TensorBoard orders event files by name, whose first field is the start time in
        # whole seconds: start each stage in a later second than the one before.
        time.sleep(max(0.0, self._last_start + 1.05 - time.time()))
        self._last_start = time.time()
        command = {"run_dir": str(run_dir), **(point or {})}
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        pid = int(self._expect("PID", timeout).split()[1])
        started = time.monotonic()
        while True:
            wait = (
                timeout
                if kill_after is None
                else max(0.01, kill_after - (time.monotonic() - started))
            )
            try:
                line = self._lines.get(timeout=wait)
            except queue.Empty:
                if kill_after is None:
                    raise AssertionError(
                        f"stage did not end in {timeout} s; see {self.log}"
                    ) from None
                os.kill(pid, sig)
                kill_after = None
                continue
            if line is None:
                raise AssertionError(
                    f"the fork server died; see {self.log}:\n{self.log.read_text()}"
                )
            if line.startswith("REACHED"):
                os.kill(pid, sig)
            elif line.startswith("EXIT"):
                status = int(line.split()[2])
                if os.WIFSIGNALED(status):
                    return -os.WTERMSIG(status)
                return os.WEXITSTATUS(status)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


@pytest.fixture(scope="session")
def stages(tmp_path_factory: pytest.TempPathFactory):
    server = Stages(tmp_path_factory.mktemp("fork-server") / "stderr.log")
    yield server
    server.close()
