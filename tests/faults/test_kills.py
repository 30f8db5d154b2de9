"""kill -9 and Ctrl-C at chosen points of a real training process, then resume.

One run of 12 steps (log every 2, eval every 4, ``last.pt`` also every 3) is taken
through five processes: killed between the ``last.pt`` and ``best.pt`` writes of
step 4, mid-checkpoint at step 6, during the resume-time rewrite of
``metrics.jsonl``, interrupted by Ctrl-C inside step 11, and finished. It must end
bit-identical to an uninterrupted run, with every record once in ``metrics.jsonl``
and in TensorBoard, ``best.pt`` at the best step, and no temporary file left.
"""

from __future__ import annotations

import json
import random
import signal
import warnings
from pathlib import Path

import pytest
import torch

from s4seg.training import read_checkpoint

from .child import build

# Timing, not training: these differ between an interrupted and an uninterrupted run.
TIMING = {"data_wait_frac", "gpu_mem_peak_mib"}


def records(run_dir: Path, kinds=("train", "eval")) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    out = [json.loads(x) for x in lines]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in out if r["kind"] in kinds]


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), purge_orphaned_data=True)
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def temporaries(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*.tmp"))


def assert_same_weights(a: dict, b: dict) -> None:
    for part in ("generator", "method"):
        flat_a, flat_b = _flat(a[part]), _flat(b[part])
        assert flat_a.keys() == flat_b.keys()
        for key, value in flat_a.items():
            if torch.is_tensor(value):
                assert torch.equal(value, flat_b[key]), f"{part}.{key}"


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    t = build(run_dir)
    t.fit()
    return run_dir, t


@pytest.fixture(scope="module")
def chain(stages, tmp_path_factory):
    """The five processes; what each left behind, for the tests below."""
    run = tmp_path_factory.mktemp("killed")
    ckpt = run / "checkpoints"
    seen: dict = {}

    status = stages.run(run, {"point": "after_save", "file": "last.pt", "step": 4})
    assert status == -signal.SIGKILL
    seen["after_1"] = {
        "last_step": read_checkpoint(ckpt / "last.pt")["step"],
        "best_exists": (ckpt / "best.pt").exists(),
    }

    status = stages.run(run, {"point": "mid_save", "step": 6})
    assert status == -signal.SIGKILL
    seen["after_2"] = {
        "best_step": read_checkpoint(ckpt / "best.pt")["step"],
        "last_step": read_checkpoint(ckpt / "last.pt")["step"],
        "temporaries": temporaries(run),
        "records": (run / "metrics.jsonl").read_text(),
    }

    status = stages.run(run, {"point": "mid_rewrite"})
    assert status == -signal.SIGKILL
    seen["after_3"] = {
        "records": (run / "metrics.jsonl").read_text(),
        "temporaries": temporaries(run),
    }

    status = stages.run(run, {"point": "in_step", "step": 10}, sig=signal.SIGINT)
    assert status == 130  # KeyboardInterrupt, after the emergency checkpoint
    last = read_checkpoint(ckpt / "last.pt")
    seen["after_4"] = {"last_step": last["step"], "emergency": last.get("emergency")}

    assert stages.run(run) == 0
    return run, seen


def test_a_kill_between_the_two_checkpoint_writes_leaves_best_pt_rebuilt(chain, reference):
    run, seen = chain
    assert seen["after_1"] == {"last_step": 4, "best_exists": False}
    assert seen["after_2"]["best_step"] == 4  # rewritten when the next process started
    ref_dir, ref = reference
    best = read_checkpoint(run / "checkpoints" / "best.pt")
    assert best["step"] == ref.best_step == best["best"][1]
    assert_same_weights(best, read_checkpoint(ref_dir / "checkpoints" / "best.pt"))


def test_a_kill_mid_checkpoint_keeps_the_last_one_and_its_temporary_file_goes(chain):
    run, seen = chain
    assert seen["after_2"]["last_step"] == 4
    assert any(t.startswith("checkpoints/.last.pt.") for t in seen["after_2"]["temporaries"])
    assert temporaries(run) == []  # removed by the next process that started


def test_a_kill_during_the_log_rewrite_loses_no_record(chain):
    _, seen = chain
    assert seen["after_3"]["records"] == seen["after_2"]["records"]
    assert any(t.startswith(".metrics.jsonl.") for t in seen["after_3"]["temporaries"])


def test_ctrl_c_inside_a_step_writes_an_exact_emergency_checkpoint_at_its_end(chain):
    _, seen = chain
    assert seen["after_4"]["last_step"] == 11  # not a log step: the window is in it
    assert seen["after_4"]["emergency"]["exact"] is True
    assert "KeyboardInterrupt" in seen["after_4"]["emergency"]["error"]


def test_the_killed_run_ends_bit_identical_to_an_uninterrupted_one(chain, reference):
    run, _ = chain
    ref_dir, _ = reference
    assert_same_weights(
        read_checkpoint(run / "checkpoints" / "last.pt"),
        read_checkpoint(ref_dir / "checkpoints" / "last.pt"),
    )


def test_metrics_jsonl_holds_every_record_once(chain, reference):
    run, _ = chain
    ref_dir, _ = reference
    # Train records too: the one after the Ctrl-C resume covers the same 2 steps.
    assert records(run) == records(ref_dir)
    (interrupt,) = records(run, kinds=("interrupt",))
    assert interrupt["step"] == 11 and interrupt["exact"] is True


def test_tensorboard_holds_every_point_once(chain, reference):
    run, _ = chain
    ref_dir, _ = reference
    for tag in ("val/miou", "train/loss_ce", "train/train_miou"):
        assert scalars(run, tag) == scalars(ref_dir, tag), tag
    assert [s for s, _ in scalars(run, "val/miou")] == [4, 8, 12]


def test_kills_at_random_times_leave_a_run_that_resumes_bit_identical(stages, reference, tmp_path):
    """The issue's probe, small: kill -9 at random moments, then finish."""
    ref_dir, _ = reference
    rng = random.Random(15)
    for _ in range(3):
        stages.run(tmp_path, kill_after=rng.uniform(0.05, 0.6))
    assert stages.run(tmp_path) == 0
    assert_same_weights(
        read_checkpoint(tmp_path / "checkpoints" / "last.pt"),
        read_checkpoint(ref_dir / "checkpoints" / "last.pt"),
    )
    assert records(tmp_path) == records(ref_dir)
    assert scalars(tmp_path, "val/miou") == scalars(ref_dir, "val/miou")
    assert temporaries(tmp_path) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # best.pt agrees with the run: no warning
        t = build(tmp_path)
        t.load_checkpoint(tmp_path / "checkpoints" / "last.pt")
        assert t.restore_best() == t.best_step
