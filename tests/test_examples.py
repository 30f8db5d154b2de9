"""Every recipe in examples/ runs end to end with --max-steps 2 (the wiring, not the result)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SMALL = [
    "--train-size",
    "24",
    "--val-size",
    "4",
    "--labelled",
    "8",
    "--image-size",
    "32",
    "--batch-size",
    "2",
    "--backbone",
    "test_resnet",
    "--threads",
    "1",
]


def run(script: str, *args: str | Path, cwd: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_main_job_prints_the_table_and_writes_run_folders(tmp_path):
    out = run(
        "s4gan_synthetic.py", "--max-steps", "2", *SMALL, "--out", tmp_path / "r", cwd=tmp_path
    )
    assert "| supervised | 2 | 8 |" in out and "| s4gan | 2 | 8 |" in out
    for method in ("supervised", "s4gan"):
        folder = tmp_path / "r" / method
        assert (folder / "config.json").exists() and (folder / "checkpoints" / "last.pt").exists()
        records = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
        assert any(r["kind"] == "eval" for r in records)
        assert list((folder / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp_path / "r" / "results.md").exists()


def test_threshold_schedules_recipe(tmp_path):
    out = run("threshold_schedules.py", "--max-steps", "2", *SMALL, "--out", tmp_path, cwd=tmp_path)
    for name in ("static 0.2", "linear 0.2->0.05", "step .05/.10/.15/.20"):
        assert f"| {name} | 2 |" in out


def test_custom_backbone_recipe(tmp_path):
    args = [a if a != "test_resnet" else "test_efficientnet" for a in SMALL]
    out = run("custom_backbone.py", "--max-steps", "2", *args, "--out", tmp_path, cwd=tmp_path)
    assert "test_efficientnet:" in out and "best val mIoU" in out


@pytest.mark.slow
def test_deeplabv2_folder_recipe_on_demo_data(tmp_path):
    run(
        "deeplabv2_folder.py", "--make-demo-data", tmp_path / "d", "--demo-size", "40", cwd=tmp_path
    )
    args = ["--data", tmp_path / "d", "--num-classes", "6", "--crop-size", "33",
            "--batch-size", "2", "--workers", "0", "--out", tmp_path / "r"]  # fmt: skip
    out = run("deeplabv2_folder.py", *args, "--max-steps", "2", cwd=tmp_path)
    assert "best val mIoU" in out
    # A second call resumes from the last checkpoint instead of starting over.
    again = run("deeplabv2_folder.py", *args, "--max-steps", "3", cwd=tmp_path)
    assert "resuming from step 2" in again


def test_doctor_demo_writes_a_report(tmp_path):
    run("doctor_demo.py", "--max-steps", "2", *SMALL, "--out", tmp_path / "r", cwd=tmp_path)
    assert (tmp_path / "r" / "report.md").exists()


@pytest.mark.parametrize(
    ("script", "name"),
    [
        ("fixmatch_synthetic.py", "fixmatch"),
        ("advsemiseg_synthetic.py", "advsemiseg"),
        ("mean_teacher_synthetic.py", "mean_teacher"),
        ("unimatch_synthetic.py", "unimatch"),
    ],
)
def test_method_recipes(tmp_path, script, name):
    out = run(script, "--max-steps", "2", *SMALL, "--out", tmp_path / "r", cwd=tmp_path)
    assert f"| {name} | 2 | 8 |" in out
    config = json.loads((tmp_path / "r" / name / "config.json").read_text())
    assert config["trainer"]["method"] == name
