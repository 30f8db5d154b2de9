"""A log of the original S4GAN code becomes a run folder that the doctor explains.

The fixture (fixtures/s4gan_original) is a synthetic 200-iteration run in the original's
format, shaped like the field report's failed run (docs/concepts/diagnosing.md): batch 4,
gate 0.2 on D(fake), 3-4 images of 4 past the gate early on, then none from iteration
120 while loss_D falls to ~0.08, and val mIoU best at 100 then falling.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from s4seg.cli.main import main
from s4seg.doctor.original_log import parse_train_log
from s4seg.doctor.original_run import (
    convert_s4gan_log,
    default_window,
    eval_log_spec,
    train_records_of,
)
from s4seg.doctor.report import write_report
from s4seg.jsonl import read_jsonl

FIXTURE = Path(__file__).parent / "fixtures" / "s4gan_original"
EVALS = [(step, FIXTURE / f"eval_{step}.log") for step in (50, 100, 150, 200)]


def test_default_window():
    assert [default_window(n) for n in (5, 200, 1000, 2000, 20_000, 40_000)] == [
        10, 10, 10, 20, 200, 500,
    ]  # fmt: skip


def test_the_conversion_numbers(tmp_path):
    run = convert_s4gan_log(FIXTURE / "train.log", tmp_path / "run", eval_logs=EVALS)
    records = read_jsonl(run / "metrics.jsonl")
    trains = [r for r in records if r["kind"] == "train"]
    first = trains[0]
    # Iterations 0-9 are steps 1-10; the ST counts from iteration 1 on (9 x 4 images).
    assert (first["step"], first["window_steps"]) == (10, 10)
    assert first["st_images_total"] == first["gate_images_total"] == 36
    log = parse_train_log(FIXTURE / "train.log")
    passed = sum(it.passed for it in log.iterations if 1 <= it.iteration <= 9)
    assert first["st_images_kept"] == first["gate_images_passed"] == passed
    assert first["st_pixels_kept"] == passed * 256 * 256  # every pixel of a passed image
    assert first["gate_threshold"] == 0.2 and first["pixel_threshold"] == 0.0
    # loss_fm unweighted (/ lambda_fm 0.1); loss_st = loss_S - loss_ce - loss_fm.
    its = log.iterations[:10]
    assert first["loss_fm"] == pytest.approx(sum(i.loss_fm_weighted for i in its) / 10 / 0.1,
                                             abs=1e-4)  # fmt: skip
    st = [(i.loss_s - i.loss_ce - i.loss_fm_weighted) if i.passed and i.iteration else 0.0
          for i in its]  # fmt: skip
    assert first["loss_st"] == pytest.approx(sum(st) / 10, abs=1e-4)
    assert first["lr_g"] == pytest.approx(2.5e-4 * (1 - 9 / 200) ** 0.9)
    # The window with the cut line (iteration 150) has 9 iterations, its span stays 10.
    w = next(r for r in trains if r["step"] == 160)
    assert (w["window_steps"], w["st_images_total"]) == (10, 36)
    # From iteration 120 on nothing passes: 0 images, loss_st 0.
    assert all(r["st_images_kept"] == 0 and r["loss_st"] == 0 for r in trains if r["step"] > 130)
    evals = [r for r in records if r["kind"] == "eval"]
    assert [(e["step"], round(e["miou"], 4)) for e in evals] == [
        (50, 0.1433), (100, 0.18), (150, 0.1533), (200, 0.115),
    ]  # fmt: skip
    assert evals[1]["iou"] == [0.71, 0.2, 0.09, 0.02, 0.06, None]  # class 5 not printed
    config = json.loads((run / "config.json").read_text())
    source = config["converted_from"]
    assert source["format"] == "s4gan-log" and source["iterations"] == 199
    assert source["skipped"][0].startswith("train.log:269:")
    assert config["method"]["parts"]["pseudo_filter"] == "DiscriminatorGate(threshold=0.2)"
    assert config["method"]["settings"]["lr_d"] == 1e-4
    assert config["trainer"]["max_steps"] == 200 and config["trainer"]["eval_interval"] == 50


def test_the_report_names_the_starvation_in_images(tmp_path):
    run = convert_s4gan_log(FIXTURE / "train.log", tmp_path / "run", eval_logs=EVALS)
    text = write_report(run, plots=False).read_text()
    assert "Converted from a log of the original S4GAN code" in text
    assert "train.log:269" in text  # the cut line is named, not fatal
    assert "### WARNING `st_starved`: self-training starved: no pseudo-label kept" in text
    assert "0 of 316 unlabelled images and 0 of 20,709,376 pixels got a pseudo-label" in text
    assert "The count is images, not pixels" in text
    assert "D(fake) > 0.20, not the softmax confidence of pixels" in text
    assert "loss_d 0.079 at step 200 (down from 0.681 at step 10)" in text
    assert "the discriminator rejects every prediction" in text
    assert "Lowering the gate threshold (e.g. to 0.05) only delays the same starvation" in text
    assert "`S4GAN(lr_d=2.5e-05)`" in text and "`TargetRateGate(rate=0.5)`" in text
    assert "`val_miou_falling`" in text and "best at step 100 (0.1800)" in text


def test_a_log_without_the_namespace_line_still_finds_the_starvation(tmp_path):
    lines = (FIXTURE / "train.log").read_text().splitlines()
    log = tmp_path / "train.log"
    log.write_text("\n".join(x for x in lines if not x.startswith("Namespace(")) + "\n")
    run = convert_s4gan_log(log, tmp_path / "run")
    first = read_jsonl(run / "metrics.jsonl")[0]
    assert "loss_fm" not in first and "st_pixels_kept" not in first  # lambda, size unknown
    assert first["st_images_total"] == 36  # B from the ST lines
    assert first["gate_threshold"] is None
    text = write_report(run, plots=True).read_text()
    assert "`st_starved`" in text and "0 of 316 unlabelled images got a pseudo-label" in text


def test_train_records_refuse_a_bad_window():
    with pytest.raises(ValueError, match="window=0"):
        train_records_of(parse_train_log(FIXTURE / "train.log"), 0)


def test_eval_log_spec():
    assert eval_log_spec("5000=eval.log") == (5000, Path("eval.log"))
    assert eval_log_spec("eval=5.log") == (None, Path("eval=5.log"))
    assert eval_log_spec("eval.log") == (None, Path("eval.log"))


def test_cli_report_from_s4gan_log(tmp_path, capsys):
    for name in ("train.log", "eval_100.log", "eval_200.log"):
        shutil.copy(FIXTURE / name, tmp_path / name)
    log = tmp_path / "train.log"
    argv = ["report", "--from", "s4gan-log", str(log), "--eval-log",
            f"100={tmp_path / 'eval_100.log'}", "--eval-log", str(tmp_path / "eval_200.log"),
            "--no-plots"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    run = tmp_path / "train_s4seg"
    assert out == [f"converted {log} into the run folder {run}", str(run / "report.md")]
    evals = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "eval"]
    assert [e["step"] for e in evals] == [100, 200]  # no STEP: the last step
    assert "`st_starved`" in (run / "report.md").read_text()
    # --out puts the run folder elsewhere.
    assert main([*argv, "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "report.md").exists()


def test_cli_errors_name_the_file(tmp_path, capsys):
    assert main(["report", "--from", "s4gan-log", str(tmp_path / "nope.log")]) == 2
    assert "nope.log" in capsys.readouterr().err
    (tmp_path / "run").mkdir()
    assert main(["report", str(tmp_path / "run"), "--eval-log", "x.log"]) == 2
    assert "add --from s4gan-log" in capsys.readouterr().err
