"""The GPU suite's wiring through its CPU dry run (not its figures), and the trainer on CUDA.

``TestTrainerOnCuda`` is part of the suite's first stage (``python -m benchmarks.gpu``);
it is skipped on a machine without a GPU.
"""

from __future__ import annotations

import csv
import hashlib
import math
import time

import pytest
import torch
from conftest import make_trainer

from benchmarks import gpu
from benchmarks.gpu import cli, runner
from s4seg.callbacks import Callback
from s4seg.filters import PixelConfidenceFilter


def _fingerprints() -> dict[str, str | None]:
    """A hash of every committed file the suite writes (None: absent)."""
    out = gpu.Outputs.committed()
    paths = (out.kernel_csv, out.step_csv, out.loader_csv, out.run_csv, out.summary)
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None for p in paths
    }


def _rows(path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_dry_run_runs_every_stage_writes_the_summary_and_no_committed_file(
    tmp_path, capsys
) -> None:
    before = _fingerprints()
    # The dry run checks the wiring, not the speed: caps far above its 40 s ones, so
    # that a loaded machine (a full test run beside two benchmark runs stopped the
    # kernel stage at its cap) does not make it "partial".
    caps = [arg for stage in gpu.STAGES for arg in ("--cap", f"{stage.name}=400")]
    rc = gpu.main(["--dry-run", "--out-dir", str(tmp_path), "--timeout", "2400", *caps])
    out = capsys.readouterr().out
    assert rc == 0, out
    summary = (tmp_path / "gpu_summary.md").read_text()
    for i, stage in enumerate(gpu.STAGES, 1):
        assert f"[gpu-suite] {i}/5 {stage.name}: ok in" in out, stage.name
        assert f"| {i} | {stage.name}: {stage.title} | ok |" in summary, stage.name
    for goal in gpu.GOALS:
        assert f"| {goal} |" in summary, goal
    assert "**Dry run**" in summary and "## Skipped" in summary
    assert "collected (the dry run only collects them)" in summary
    # Every stage's rows, in the committed CSVs' own columns, went to the folder.
    kernel = _rows(tmp_path / "kernel_results.csv")
    assert {r["provider"] for r in kernel} == {"eager", "compile", "triton"}
    assert len({r["run_id"] for r in kernel}) == 1
    # The CPU has no autocast: the bf16 pair ran in fp32, and its rows say so.
    step = _rows(tmp_path / "step_results.csv")
    assert [(r["variant"], r["amp"]) for r in step] == [
        ("s4seg", "none"), ("unfused", "none"), ("s4seg", "none"), ("unfused", "none"),
    ]  # fmt: skip
    assert [r["workers"] for r in _rows(tmp_path / "loader_results.csv")] == ["1", "2"]
    run = _rows(tmp_path / "gpu_run.csv")
    assert [r["step"] for r in run] == ["0", "2", "4"]
    assert all(0 <= float(r["val_miou"]) <= 1 for r in run) and run[-1]["s_per_step"]
    assert _fingerprints() == before


def test_a_failing_or_overrunning_stage_is_recorded_and_the_suite_goes_on(
    tmp_path, monkeypatch, capsys
) -> None:
    def broken(ctx, res):
        raise ValueError("no such backbone")

    def slow(ctx, res):
        time.sleep(30)  # the hard stop ends it at the cap

    def fine(ctx, res):
        res.rows.append({"x": 1})

    written = []
    stages = (
        gpu.Stage("correctness", "broken", broken, lambda c, r: None),
        gpu.Stage("kernel", "slow", slow, lambda c, r: None),
        gpu.Stage("step", "fine", fine, lambda c, r: written.append(r) or tmp_path / "x.csv"),
        *gpu.STAGES[3:],
    )
    monkeypatch.setattr(cli, "STAGES", stages)  # where main looks them up
    monkeypatch.setattr(runner, "GRACE_S", 0.0)
    args = ["--dry-run", "--out-dir", str(tmp_path), "--stages", "correctness,kernel,step"]
    assert gpu.main([*args, "--cap", "kernel=0.5"]) == 1  # an error is in the exit code
    out = capsys.readouterr().out
    assert "correctness: error" in out and "kernel: partial" in out and "step: ok" in out
    assert written == [[{"x": 1}]]
    summary = (tmp_path / "gpu_summary.md").read_text()
    assert "ValueError: no such backbone" in summary
    assert "stopped at its cap of 0.5 s" in summary
    assert "not selected (--stages)" in summary
    for goal in gpu.GOALS:  # every goal line is there, judged or not
        assert f"| {goal} |" in summary, goal


def test_without_cuda_it_asks_for_the_dry_run(monkeypatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu.main([]) == 2
    assert "pass --dry-run" in capsys.readouterr().err


def test_bad_stage_names_are_refused_with_the_list(capsys) -> None:
    with pytest.raises(SystemExit):
        gpu.main(["--dry-run", "--cap", "kernal=10"])
    assert "unknown stage 'kernal'" in capsys.readouterr().err


def test_pytest_outcomes_are_counted_from_partial_output() -> None:
    output = (
        "tests/ops/test_a.py::test_x[float32-21] PASSED   [  1%]\n"
        "tests/ops/test_a.py::test_y FAILED   [  2%]\n"
        "tests/ops/test_b.py SKIPPED (needs CUDA)   [  3%]\n"
        "FAILED tests/ops/test_a.py::test_y - AssertionError: 1 != 2\n"
        "SKIPPED [1] tests/ops/test_b.py:10: needs CUDA\n"
    )
    parsed = gpu.parse_run(output)
    assert parsed["counts"]["passed"] == 1 and parsed["counts"]["failed"] == 1
    assert parsed["counts"]["skipped"] == 1
    assert parsed["failures"] == ["tests/ops/test_a.py::test_y - AssertionError: 1 != 2"]
    assert parsed["skips"] == ["tests/ops/test_b.py:10: needs CUDA"]
    assert gpu.parse_collection("a\nb\n\n132 tests collected in 0.46s\n")["counts"] == {
        "collected": 132, "errors": 0,
    }  # fmt: skip


# ------------------------------------------------------------- the trainer on CUDA


class _Logs(Callback):
    def __init__(self) -> None:
        self.logs: list[dict] = []

    def on_log(self, trainer, record):
        self.logs.append(record)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
class TestTrainerOnCuda:
    """End-to-end S4GAN steps on CUDA, which the suite's first stage runs."""

    def test_cuda_step_matches_the_cpu_step(self) -> None:
        # Same weights and batches; TF32 convolutions on the GPU allow a small difference.
        cpu, cuda = make_trainer(), make_trainer(device="cuda")
        a, b = cpu.train_step(), cuda.train_step()
        torch.testing.assert_close(b["loss_ce"].cpu(), a["loss_ce"], rtol=1e-2, atol=1e-4)

    def test_fused_self_training_matches_the_reference_in_the_step(self) -> None:
        def two_steps(backend: str) -> list[dict]:
            t = make_trainer(device="cuda", pseudo_filter=PixelConfidenceFilter(0.5))
            t.method.self_training.loss.backend = backend
            outs = []
            for _ in range(2):  # step 0 has no self-training; step 1 does
                outs.append(t.train_step())
                t.step += 1
            return outs

        fused, reference = two_steps("triton"), two_steps("reference")
        for f, r in zip(fused, reference, strict=True):
            for key in sorted(k for k in f if k.startswith("loss_") and k in r):
                torch.testing.assert_close(f[key], r[key], rtol=1e-3, atol=1e-5, msg=key)

    def test_bf16_channels_last_compiled_generator_trains(self) -> None:
        rec = _Logs()
        t = make_trainer(
            [rec], device="cuda", amp="bf16", channels_last=True, compile_generator=True,
            pseudo_filter=PixelConfidenceFilter(0.5),
        )  # fmt: skip
        assert t.amp_dtype is torch.bfloat16
        t.fit()
        assert [r["step"] for r in rec.logs] == [2, 4, 6]
        for record in rec.logs:
            for key in ("loss_ce", "loss_st", "loss_d", "data_wait_frac", "gpu_mem_peak_mib"):
                assert math.isfinite(record[key]), key
        assert 0.0 <= t.best_miou <= 1.0
