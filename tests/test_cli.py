"""The command line starts fast: `s4seg --help`, `--version` and `report` load no torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

import s4seg
from s4seg.cli.main import main

PROBE = (
    "import sys, runpy\n"
    "sys.argv = ['s4seg', *sys.argv[1:]]\n"
    "try:\n"
    "    runpy.run_module('s4seg', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', 'timm' in sys.modules)\n"
)


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["report", "--help"]])
def test_the_command_loads_neither_torch_nor_timm(args) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "NO-TORCH False"


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"s4seg {s4seg.__version__}"


def test_names_resolve_on_first_use() -> None:
    assert s4seg.Trainer is s4seg.training.Trainer
    assert set(dir(s4seg)) == set(s4seg.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Trainr'"):
        s4seg.Trainr  # noqa: B018


def test_report_reads_a_run_without_torch(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(
        '{"kind": "train", "step": 10, "loss_ce": 1.0, "train_miou": 0.2}\n'
        '{"kind": "eval", "step": 10, "miou": 0.3, "iou": [0.3, 0.3], "pixel_acc": 0.9, '
        '"best_miou": 0.3}\n'
    )
    out = subprocess.run(
        [sys.executable, "-c", PROBE, "report", str(run), "--no-plots"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip().splitlines()[-1] == "NO-TORCH False"
    assert (run / "report.md").exists()
