"""A real training process to kill: a tiny S4GAN run with the run folder's callbacks.

Run as a script it is a small fork server: it imports torch and s4seg once, prints
``READY``, then for each JSON command on stdin forks a child that trains one stage
of a run (fresh, or resumed from ``checkpoints/last.pt``); the child prints ``PID
<pid>`` and, when it ends, the server prints ``EXIT <pid> <status>``. A command may name a point where
the child prints ``REACHED <point>`` and waits, for the test to send it a signal:

* ``{"point": "mid_save", "step": k}``: half of the checkpoint of step k written to
  its temporary file;
* ``{"point": "after_save", "file": "last.pt", "step": k}``: that file of step k
  written (``last.pt`` before ``best.pt``: between the two writes);
* ``{"point": "mid_rewrite"}``: half of the records of the resume-time rewrite of
  ``metrics.jsonl`` written;
* ``{"point": "in_step", "step": k}``: inside step k (``trainer.step == k``), before
  its forward pass; it goes on once Ctrl-C asked the run to stop.

Forking a process that has imported torch but run nothing is what DataLoader workers
do; it saves the seconds of imports per stage (the suite must stay under 2 minutes).
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import torch  # noqa: E402
from conftest import make_trainer  # noqa: E402  (also 1 thread, as in the tests)

import s4seg.callbacks as callbacks  # noqa: E402
from s4seg.callbacks import (  # noqa: E402
    Checkpointer,
    ConfigSaver,
    JSONLLogger,
    TensorBoardLogger,
)

SETTINGS: dict[str, Any] = {
    "max_steps": 12,
    "log_interval": 2,
    "eval_interval": 4,
    "lr_g": 0.01,
}
EVERY = 3  # last.pt also every 3 steps: 3 and 9 are not log steps


def build(run_dir: str | Path, **overrides: Any):
    """The trainer of every stage (and of the uninterrupted reference run)."""
    cbs = [
        ConfigSaver(run_dir),
        JSONLLogger(run_dir),
        TensorBoardLogger(run_dir),
        Checkpointer(run_dir, every=EVERY),
    ]
    return make_trainer(cbs, **{**SETTINGS, **overrides})


def _reached(point: str) -> None:
    print(f"REACHED {point}", flush=True)


def _hang() -> None:
    while True:  # until the test's SIGKILL
        time.sleep(1)


def run_stage(command: dict[str, Any]) -> int:
    run_dir = Path(command["run_dir"])
    trainer = build(run_dir, **command.get("settings", {}))
    last = run_dir / "checkpoints" / "last.pt"
    if last.exists():
        trainer.load_checkpoint(last)
    point = command.get("point")
    if point == "mid_save":
        real_save = torch.save

        def half_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
            if trainer.step != command["step"]:
                return real_save(obj, f, *args, **kwargs)
            buffer = io.BytesIO()
            real_save(obj, buffer, *args, **kwargs)
            data = buffer.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            _reached(point)
            _hang()

        torch.save = half_save
    elif point == "after_save":
        real_atomic = callbacks.save_atomic

        def save_then_hang(state: Any, path: Any) -> Any:
            out = real_atomic(state, path)
            if Path(path).name == command["file"] and trainer.step == command["step"]:
                _reached(point)
                _hang()
            return out

        callbacks.save_atomic = save_then_hang
    elif point == "mid_rewrite":
        real_rewrite = callbacks.rewrite_jsonl

        def rewrite_half(path: Any, records: Any) -> None:
            records = list(records)

            def stream() -> Any:
                for i, record in enumerate(records):
                    if i == len(records) // 2:
                        _reached(point)
                        _hang()
                    yield record

            real_rewrite(path, stream())

        callbacks.rewrite_jsonl = rewrite_half
    elif point == "in_step":
        method = trainer.method
        real_loss = method.generator_loss

        def wait_for_ctrl_c(ctx: Any, image: Any, mask: Any) -> Any:
            if trainer.step == command["step"]:
                _reached(point)
                deadline = time.monotonic() + 60
                while not trainer.stop_requested and time.monotonic() < deadline:
                    time.sleep(0.01)
            return real_loss(ctx, image, mask)

        method.generator_loss = wait_for_ctrl_c
    try:
        trainer.fit()
    except KeyboardInterrupt:
        return 130
    return 0


def main() -> None:
    # A shell starts a background job with SIGINT ignored, and Python then leaves it
    # ignored: the Trainer, rightly, sets no Ctrl-C handler over an ignored SIGINT, and
    # the Ctrl-C stage would wait out its timeout. These stages are about Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    print("READY", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                print(f"PID {os.getpid()}", flush=True)
                code = run_stage(command)
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(f"EXIT {pid} {status}", flush=True)


if __name__ == "__main__":
    main()
