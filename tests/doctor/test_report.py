"""The report: markdown and plots from a run folder, finished or still being written."""

from __future__ import annotations

import json
import runpy
import sys
import warnings
from pathlib import Path

import pytest
from log_streams import field_report, healthy

from s4seg.cli.main import main
from s4seg.doctor.report import load_run, write_report
from s4seg.jsonl import read_jsonl

PNG = b"\x89PNG\r\n\x1a\n"


def write_run(run_dir: Path, history, *, cut_last_line: bool = False) -> Path:
    """A run folder as default_callbacks writes it: config.json and metrics.jsonl."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = next(r for r in history if r["kind"] == "config")
    (run_dir / "config.json").write_text(
        json.dumps({k: v for k, v in config.items() if k != "kind"})
    )
    text = "".join(json.dumps(r) + "\n" for r in history if r["kind"] != "config")
    if cut_last_line:
        text += '{"kind": "train", "step": 2100, "loss_ce": 1.2'  # a run writing its next line
    (run_dir / "metrics.jsonl").write_text(text)
    return run_dir


def test_report_of_the_field_run(tmp_path):
    run = write_run(tmp_path / "run", field_report(with_d_scores=True), cut_last_line=True)
    path = write_report(run)
    assert path == run / "report.md"
    text = path.read_text()
    # val mIoU per eval with its change, the best marked.
    assert "| 1000 | 0.1802 (best) | +0.0366 | +0.0000 |" in text
    assert "| 2000 | 0.1151 | -0.0385 | -0.0651 |" in text
    assert "running or stopped: last logged step 2000 of 20000" in text
    assert "metrics.jsonl:25" in text  # the cut line is named, not fatal
    # Images and pixels in separate columns, the units said once.
    assert "| 1600 | 0 / 400 | 0 | 0 / 26,214,400 | 0.0% | 0.20 | 0.00 |" in text
    assert "counts **images**" in text and "counts **pixels**" in text
    assert "`loss_d`: 0.589 at step 100 -> 0.079 at step 2000" in text
    for section in ("## Summary", "## Losses", "## Discriminator balance", "## Findings"):
        assert section in text
    for code in ("st_starved", "val_miou_falling", "d_dominant"):
        assert f"`{code}`" in text
    assert "`S4GAN(lr_d=2.5e-05)`" in text
    for name in ("losses.png", "miou.png", "st_kept.png", "d_scores.png"):
        assert (run / name).read_bytes().startswith(PNG), name
        assert f"({name})" in text


def test_healthy_run_report_has_no_finding(tmp_path):
    run = write_run(tmp_path, healthy())
    text = write_report(run, tmp_path / "out", plots=False).read_text()
    assert "No finding" in text
    assert "Findings: 0 critical, 0 warning, 0 info." in text
    assert not (tmp_path / "out" / "losses.png").exists()


def test_report_includes_findings_only_the_live_doctor_saw(tmp_path):
    run = write_run(tmp_path, healthy())
    live = {
        "kind": "finding",
        "step": 120,
        "code": "d_dominant",
        "severity": "warning",
        "title": "discriminator dominant",
        "seen": "loss_d 0.01",
        "cause": "D wins",
        "remedies": ["S4GAN(lr_d=2.5e-05): slower D"],
        "first_step": 100,
        "last_step": 120,
        "evidence": {},
    }
    action = {"kind": "action", "step": 120, "action": "rollback", "because": "d_dominant"}
    (run / "doctor.jsonl").write_text(json.dumps(live) + "\n" + json.dumps(action) + "\n")
    text = write_report(run, plots=False).read_text()
    assert "`d_dominant`: discriminator dominant (steps 100-120)" in text
    assert "## Doctor actions" in text and "rollback because of `d_dominant`" in text


def test_a_run_that_just_started(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(
        json.dumps({"kind": "train", "step": 10, "loss_ce": 2.0, "train_miou": 0.1}) + "\n"
    )
    text = write_report(tmp_path).read_text()
    assert "last logged step 10 (no config.json: length unknown)" in text
    assert "No evaluation yet." in text
    assert (tmp_path / "losses.png").exists() and not (tmp_path / "d_scores.png").exists()


def test_read_jsonl_skips_bad_lines_and_keeps_nan(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1, "loss_ce": NaN}\n[1, 2]\n\n{"step": 2\n')
    bad: list[int] = []
    records = read_jsonl(path, skipped=bad)
    assert [r["step"] for r in records] == [1] and bad == [2, 4]
    assert records[0]["loss_ce"] != records[0]["loss_ce"]  # NaN survives (json writes NaN)


def test_missing_run_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no metrics\.jsonl"):
        load_run(tmp_path)


def test_cli_report(tmp_path, capsys):
    run = write_run(tmp_path / "run", field_report())
    assert (
        main(["report", str(run), "--out", str(tmp_path / "out"), "--duration-steps", "200"]) == 0
    )
    assert capsys.readouterr().out.strip() == str(tmp_path / "out" / "report.md")
    assert "`st_starved`" in (tmp_path / "out" / "report.md").read_text()
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err


def test_python_dash_m_s4seg_report(tmp_path, monkeypatch):
    # What `python -m s4seg report RUN_DIR` runs, in-process (a subprocess would spend
    # most of its time importing torch).
    run = write_run(tmp_path, healthy())
    monkeypatch.setattr(sys, "argv", ["s4seg", "report", str(run), "--no-plots"])
    with warnings.catch_warnings():
        # runpy notes that s4seg.__main__ was already imported by this test module.
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(SystemExit) as done:
            runpy.run_module("s4seg", run_name="__main__")
    assert done.value.code == 0
    assert (run / "report.md").exists()


def test_report_shows_how_many_kept_pseudo_labels_were_right(tmp_path):
    from log_streams import patch

    history = patch(
        healthy(), 0, 10**9, st_pixels_correct=lambda r: r["st_pixels_kept"] * 3 // 4,
        st_object_pixels_kept=lambda r: r["st_pixels_kept"] // 4,
        st_object_pixels_correct=lambda r: r["st_pixels_kept"] // 8,
        st_kept_accuracy=0.75, st_object_kept_accuracy=0.5,
    )  # fmt: skip
    text = write_report(write_run(tmp_path / "run", history), plots=False).read_text()
    assert "kept pixels right" in text and "kept object pixels right" in text
    assert "| 75.0% | 50.0% |" in text
    assert "75.0% of the kept pixels had the right label, and 50.0% of the kept object" in text
    plain = write_report(write_run(tmp_path / "plain", healthy()), plots=False).read_text()
    assert "kept pixels right" not in plain  # no true masks, no column
