"""The callbacks: the run's config, the JSONL log, checkpoints, the progress line."""

from __future__ import annotations

import io
import json

import pytest
from conftest import make_trainer

from s4seg.callbacks import (
    Checkpointer,
    ConfigSaver,
    JSONLLogger,
    ProgressBar,
    default_callbacks,
    format_record,
    run_config,
)
from s4seg.methods import S4GAN, FixMatch
from s4seg.training import read_checkpoint


def test_config_tells_an_honest_s4gan_run_from_a_default_one(tmp_path):
    default = make_trainer([ConfigSaver(tmp_path / "a")], max_steps=1)
    honest = make_trainer(
        [ConfigSaver(tmp_path / "b")],
        max_steps=1,
        method_object=S4GAN(real_smoothing=0.1, real_noise=0.05, fake_sharpen=0.5, lr_d=3e-5),
    )
    default.fit()
    honest.fit()
    a = json.loads((tmp_path / "a" / "config.json").read_text())
    b = json.loads((tmp_path / "b" / "config.json").read_text())
    assert a["method"]["settings"]["fake_sharpen"] == 1.0
    assert b["method"]["settings"]["fake_sharpen"] == 0.5
    assert b["method"]["settings"]["real_noise"] == 0.05 and b["method"]["settings"]["lr_d"] == 3e-5
    assert b["method"]["parts"]["discriminator"].startswith("FMDiscriminator(")
    assert b["method"]["parts"]["d_optimizer"].startswith("Adam (")
    assert a["trainer"] == b["trainer"]  # the loop's settings are the same
    assert "lr_d" not in a["trainer"]


def test_config_of_a_teacher_method_names_views_and_filter():
    cfg = run_config(make_trainer(method_object=FixMatch(threshold=0.8, start_step=4)))
    assert cfg["method"]["name"] == "fixmatch" and cfg["method"]["class"] == "FixMatch"
    assert cfg["method"]["settings"]["threshold"] == 0.8
    assert cfg["method"]["settings"]["start_step"] == 4
    assert cfg["method"]["parts"]["views"].startswith("WeakStrongViews(")
    assert cfg["method"]["parts"]["pseudo_filter"] == "PixelConfidenceFilter(threshold=0.8)"


def test_jsonl_logger_writes_train_and_eval_records_and_resumes_past_a_torn_line(tmp_path):
    t = make_trainer([JSONLLogger(tmp_path)], max_steps=4, log_interval=2, eval_interval=4)
    t.fit()
    path = tmp_path / "metrics.jsonl"
    kinds = [json.loads(x)["kind"] for x in path.read_text().splitlines()]
    assert kinds == ["train", "train", "eval"]
    with path.open("a") as f:
        f.write('{"kind": "train", "step": 6, "loss')  # a kill mid-append
    t.step = 4
    with pytest.warns(UserWarning, match="killed mid-line"):
        JSONLLogger(tmp_path).on_fit_start(t)
    assert len(path.read_text().splitlines()) == 3  # the torn line is gone, the rest kept


def test_checkpointer_keeps_last_and_best(tmp_path):
    keeper = Checkpointer(tmp_path, every=1)
    t = make_trainer([keeper], max_steps=3, eval_interval=2)
    t.fit()
    last, best = read_checkpoint(keeper.last_path), read_checkpoint(keeper.best_path)
    assert last["step"] == 3
    assert best["step"] == t.best_step
    assert "discriminator" in last["method"]  # the method's own parts are in it


def test_format_record_shows_the_terms_a_method_has_with_units():
    rec = {"loss_ce": 1.0, "loss_adv": 0.1, "loss_st": 0.5, "train_miou": 0.3,
           "st_images_kept": 3, "st_images_total": 4, "st_pixels_frac": 0.25}  # fmt: skip
    line = format_record(rec)
    assert line == "ce 1.000  adv 0.100  st 0.500  st_images 3/4  st_pixels 25.0%  train_mIoU 0.300"


def test_progress_bar_reports_evaluations(tmp_path):
    out = io.StringIO()
    make_trainer([ProgressBar(file=out)], max_steps=2, eval_interval=2).fit()
    assert "step 2: val mIoU" in out.getvalue()


def test_default_callbacks_make_a_run_folder(tmp_path):
    names = [type(cb).__name__ for cb in default_callbacks(tmp_path, progress=False)]
    assert names == ["ConfigSaver", "JSONLLogger", "TensorBoardLogger", "Checkpointer"]


def test_config_saver_removes_the_temporary_file_of_a_killed_write(tmp_path) -> None:
    # Found by the random kill test: a kill inside the config.json write left its
    # temporary file, and only the log and checkpoint writers cleaned theirs.
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    tmp_path.mkdir(exist_ok=True)
    orphan = tmp_path / f".config.json.{int(dead.stdout)}-0123abcd.tmp"
    orphan.write_text("{")
    make_trainer([ConfigSaver(tmp_path)], max_steps=1).fit()
    assert not orphan.exists()
    assert json.loads((tmp_path / "config.json").read_text())["trainer"]["max_steps"] == 1
