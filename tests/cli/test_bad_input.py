"""Bad input through the commands: a clear ``s4seg <command>: ...`` line naming the file,
key or value and the fix, exit status 2, no traceback."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from s4seg.cli.main import main

from .conftest import TINY, make_folder


def fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # A training run's progress bar and log lines may come before the message.
    start = err.rfind(f"s4seg {argv[0]}: ")
    assert start >= 0 and (start == 0 or err[start - 1] == "\n"), err
    return err[start:]


def test_unknown_key_names_the_close_match(workdir, capsys) -> None:
    err = fails(["train", "cpu_small", "--data.root=my_data", "--trainer.max_step=4"], capsys)
    assert "unknown config key 'trainer.max_step' on the command line" in err
    assert "did you mean 'trainer.max_steps'?" in err


def test_unknown_key_in_a_config_file_names_the_file(tmp_path, capsys) -> None:
    config = tmp_path / "mine.yaml"
    config.write_text("data:\n  root: my_data\n  num_clases: 3\n")
    err = fails(["train", str(config)], capsys)
    assert f"unknown config key 'data.num_clases' in {config}" in err
    assert "did you mean 'data.num_classes'?" in err


def test_wrong_type_names_the_key_and_value(capsys) -> None:
    err = fails(["train", "cpu_small", "--trainer.max_steps=four"], capsys)
    assert "trainer.max_steps" in err and "four" in err and "int" in err


def test_out_of_range_value_names_the_setting(capsys) -> None:
    err = fails(["train", "cpu_small", "--trainer.momentum=1.5"], capsys)
    assert "momentum" in err and "1.5" in err


def test_unknown_shipped_config_lists_the_shipped_ones(capsys) -> None:
    err = fails(["train", "cpu_smal"], capsys)
    assert "did you mean 'cpu_small'?" in err and "deeplabv2_s4gan" in err


def test_missing_data_folder(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    err = fails(["train", "cpu_small", "--data.root=nowhere", "--data.num_classes=3"], capsys)
    assert "data.root='nowhere' has no images/ folder" in err


def test_data_root_not_set(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    err = fails(["train", "cpu_small", "--data.num_classes=3"], capsys)
    assert "data.root is not set: pass --data.root=DIR" in err


def test_mask_value_out_of_range_names_the_mask(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    make_folder(tmp_path / "bad")
    for mask in sorted((tmp_path / "bad" / "masks").glob("*.png")):
        Image.fromarray(np.full((48, 48), 7, np.uint8)).save(mask)
    argv = ["train", "cpu_small", "--data.root=bad", *TINY, "--out=runs/bad"]
    err = fails(argv, capsys)
    assert "bad/masks/" in err and "value(s) 7 outside the classes [0, 3)" in err
    assert "set num_classes to the real number of classes" in err


def test_resume_with_another_config_lists_the_mismatches(trained_run, tmp_path, capsys) -> None:
    run, _ = trained_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    err = fails(["train", "--resume", str(copy), "--trainer.lr_g=0.1"], capsys)
    assert "checkpoint was written by another config" in err and "lr_g" in err


def test_eval_with_another_models_config(trained_run, tmp_path, capsys) -> None:
    run, _ = trained_run
    other = tmp_path / "other.yaml"
    other.write_text((run / "config.yaml").read_text().replace("num_classes: 3", "num_classes: 5"))
    other.write_text(other.read_text().replace("- stripe\n", "- stripe\n  - a\n  - b\n"))
    err = fails(["eval", str(run), "--config", str(other)], capsys)
    assert "does not fit the generator of" in err and "data.num_classes=5" in err


def test_train_into_a_used_run_folder_says_resume(trained_run, capsys) -> None:
    run, _ = trained_run
    err = fails(["train", str(run / "config.yaml")], capsys)
    assert f"--resume {run}" in err


def test_predict_a_missing_image(trained_run, tmp_path, capsys) -> None:
    run, _ = trained_run
    err = fails(["predict", str(run), str(tmp_path / "no.png"), "--out", str(tmp_path)], capsys)
    assert "no.png: no such image file or folder" in err


def test_eval_a_folder_that_is_not_a_run(tmp_path, capsys) -> None:
    err = fails(["eval", str(tmp_path)], capsys)
    assert "without checkpoints/best.pt" in err
