"""The command line starts fast: `s4seg --help`, `--version`, `report` and `examples` load
no torch; `s4seg examples --copy DIR` gives recipes that run from DIR."""

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


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], ["report", "--help"], ["examples"], ["examples", "--help"]]
)
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


def test_examples_lists_the_recipes(capsys) -> None:
    assert main(["examples"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("main_job.py "))
    assert line.split(maxsplit=1)[1].startswith("The README's main job")
    assert out.index("deeplabv2_folder.py") < out.index("common.py")  # the shared file last


def test_examples_copy_gives_recipes_that_run_from_their_folder(tmp_path, capsys) -> None:
    from s4seg.cli.recipes import examples_dir

    dest = tmp_path / "my_recipes"
    assert main(["examples", "--copy", str(dest)]) == 0
    printed = capsys.readouterr().out
    assert "copied" in printed
    # The suggested command is the main job's, which the copy holds.
    assert f"python {dest / 'main_job.py'} --max-steps 2" in printed
    shipped = sorted(p.name for p in examples_dir().glob("*.py"))
    assert sorted(p.name for p in dest.glob("*.py")) == shipped and "common.py" in shipped
    assert (dest / "common.py").read_text() == (examples_dir() / "common.py").read_text()
    # A copied recipe finds its common.py, from any working directory.
    out = subprocess.run(
        [sys.executable, str(dest / "custom_backbone.py"), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--output-stride" in out
    # A second copy refuses to overwrite, unless asked.
    assert main(["examples", "--copy", str(dest)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["examples", "--copy", str(dest), "--force"]) == 0


def test_the_wheel_ships_the_recipes(tmp_path) -> None:
    # pyproject's package data: s4seg/cli/examples (a link to examples/) goes into the wheel.
    import shutil
    import zipfile
    from pathlib import Path

    pytest.importorskip("setuptools")
    root = Path(__file__).resolve().parents[1]
    # Built from a copy of the sources, so that no build/ folder lands in the checkout.
    src = tmp_path / "src"
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        src.mkdir(exist_ok=True)
        shutil.copy(root / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(root / "s4seg", src / "s4seg", symlinks=True, ignore=skip)
    shutil.copytree(root / "examples", src / "examples", ignore=skip)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path / "dist")],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("s4seg-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for script in (root / "examples").glob("*.py"):
        assert f"s4seg/cli/examples/{script.name}" in names, script.name
