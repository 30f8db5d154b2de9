"""Parsing the logs of the original S4GAN code (train_s4GAN.py, evaluate.py).

The line formats are those of github.com/sud0301/semisup-semseg: train_s4GAN.py's
``print('iter = {0:8d}/{1:8d}, loss_ce = {2:.3f}, ...'.format(...))`` and
``print('Above ST-Threshold : ', count, '/', args.batch_size)``, evaluate.py's
``print('meanIOU: ' + str(aveJ) + '\\n')``. The fixture in fixtures/s4gan_original was
written in those formats.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from s4seg.doctor.original_log import parse_eval_log, parse_train_log

FIXTURE = Path(__file__).parent / "fixtures" / "s4gan_original"


def iter_line(i: int, n: int = 10, ce=1.0, fm=0.002, s=1.202, d=0.69) -> str:
    return (
        f"iter = {i:8d}/{n:8d}, loss_ce = {ce:.3f}, loss_fm = {fm:.3f}, loss_S = {s:.3f}, "
        f"loss_D = {d:.3f}"
    )


def test_the_fixture_parses():
    log = parse_train_log(FIXTURE / "train.log")
    assert len(log.iterations) == 199  # 200 iterations, one of them cut short
    first = log.iterations[0]
    assert (first.iteration, first.num_steps, first.passed, first.batch) == (0, 200, 4, 4)
    assert first.loss_ce == pytest.approx(4.508) and first.loss_fm_weighted == 0.001
    assert log.arguments["threshold_st"] == 0.2 and log.arguments["input_size"] == "256,256"
    assert log.arguments["restore_from_D"] is None and log.batch_size() == 4
    assert all(it.passed == 0 for it in log.iterations if it.iteration >= 120)
    assert log.skipped == [
        "train.log:269: not an 'iter = i/N, loss_ce = ..., loss_fm = ..., loss_S = ..., "
        "loss_D = ...' line: 'iter =      150/     200, loss_ce = 1.4'"
    ]
    assert log.other_lines == 5  # dataset size, a warning, a checkpoint, save, seconds


def test_st_lines_of_python_3_and_python_2(tmp_path):
    path = tmp_path / "train.log"
    path.write_text(
        "\n".join([
            "Above ST-Threshold :  3 / 8",
            iter_line(0),
            iter_line(1),  # no ST line: 0 images
            "('Above ST-Threshold : ', 2, '/', 8)",
            iter_line(2),
        ])
    )  # fmt: skip
    log = parse_train_log(path)
    assert [(it.passed, it.batch) for it in log.iterations] == [(3, 8), (0, None), (2, 8)]
    assert log.batch_size() == 8 and log.skipped == []


def test_malformed_lines_are_named_with_file_and_line(tmp_path):
    path = tmp_path / "run.log"
    path.write_text(
        "\n".join([
            iter_line(0),
            "Above ST-Threshold :  9 / 4",  # more images than the batch
            iter_line(1, ce=math.nan),  # a NaN loss is a number, not a bad line
            "Above ST-Threshold :  1 / 4",
            "iter =        2/      10, loss_ce = 0.9, loss_fm =",  # cut short
            "Above ST-Threshold :  2 / 4",  # its iteration line never came
        ])
    )  # fmt: skip
    log = parse_train_log(path)
    assert [it.iteration for it in log.iterations] == [0, 1]
    assert math.isnan(log.iterations[1].loss_ce)
    assert [s.split(": ")[0] for s in log.skipped] == ["run.log:2", "run.log:5", "run.log:6"]


def test_a_second_run_in_the_same_log_is_named(tmp_path):
    path = tmp_path / "train.log"
    path.write_text("\n".join([iter_line(0), iter_line(1), iter_line(0)]))
    log = parse_train_log(path)
    assert len(log.iterations) == 2
    assert log.skipped[0].startswith("train.log:3: iteration 0 does not follow iteration 1")


def test_a_file_without_iterations_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(ValueError, match=r"notes.txt.*no 'iter = i/N"):
        parse_train_log(path)
    with pytest.raises(FileNotFoundError, match=r"missing\.log"):
        parse_train_log(tmp_path / "missing.log")


def test_eval_log():
    ev = parse_eval_log(FIXTURE / "eval_100.log")
    assert ev.miou == pytest.approx(0.18)
    assert ev.iou == {0: 0.71, 1: 0.2, 2: 0.09, 3: 0.02, 4: 0.06}  # class 5: IoU 0, not printed
    assert ev.class_names[1] == "disk"


def test_an_eval_log_with_two_evaluations_is_refused(tmp_path):
    path = tmp_path / "evals.log"
    path.write_text("meanIOU: 0.5\n\nmeanIOU: 0.6\n")
    with pytest.raises(ValueError, match=r"evals.log.*2 evaluations.*lines 1, 3.*STEP=FILE"):
        parse_eval_log(path)
