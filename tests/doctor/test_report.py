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


# --- issue 19: the report, read by a person ----------------------------------------------


def main_job_folder(root: Path) -> Path:
    """A folder of two runs as the S4GAN recipe writes it: supervised/ and s4gan/.

    Class 3 stays below 0.05 IoU in both runs; s4gan also logs the d_auc_* numbers.
    """
    from log_streams import patch

    stuck = lambda r: [r["miou"], 0.6, 0.5, 0.004, 0.3, 0.2]  # noqa: E731
    sup = patch(healthy(), 0, 10**9, kind="eval", iou=stuck)
    s4gan = patch(sup, 0, 10**9, kind="eval", iou=stuck, miou=lambda r: r["miou"] + 0.01,
                  d_auc_accuracy=0.42, d_auc_entropy=0.35, d_auc_real_fake=0.9,
                  diag_images=200, diag_d_real_mean=0.7, diag_d_fake_mean=0.4)  # fmt: skip
    write_run(root / "supervised", sup)
    write_run(root / "s4gan", s4gan)
    return root


def test_a_folder_of_runs_reports_each_and_compares_them(tmp_path, capsys):
    folder = main_job_folder(tmp_path / "s4gan_synthetic")
    assert main(["report", str(folder)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(folder / "s4gan" / "report.md"),
                       str(folder / "supervised" / "report.md"), str(folder / "report.md")]  # fmt: skip
    text = (folder / "report.md").read_text()
    lines = text.splitlines()
    # The class stuck near 0 in every run comes first, before the mIoU table.
    flagged = next(i for i, line in enumerate(lines) if "Classes not learnt in any run" in line)
    assert "class 3 (best 0.004, 0.004)" in lines[flagged]
    assert flagged < lines.index("## Validation mIoU")
    # Best and final mIoU side by side, with a link to each run's own report.
    assert "| [`s4gan`](s4gan/report.md) | s4gan | 2000 | 0.4600 (2000) | 0.4600 (2000) |" in text
    assert "| [`supervised`](supervised/report.md) | s4gan | 2000 | 0.4500 (2000) |" in text
    assert "| 3 (not learnt anywhere) | 0.004 | 0.004 |" in text
    assert "| `s4gan` | 0.42 -> 0.42 (min 0.42, max 0.42)" in text
    assert (folder / "val_miou.png").read_bytes().startswith(PNG)
    assert "![val_miou](val_miou.png)" in text
    assert (folder / "s4gan" / "miou.png").exists()


def test_a_folder_without_runs_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "nor in any folder below it" in capsys.readouterr().err


def test_per_class_iou_and_the_discriminator_aucs_are_shown(tmp_path):
    folder = main_job_folder(tmp_path)
    text = (write_report(folder / "s4gan", plots=False)).read_text()
    summary = text.split("## Summary")[1].split("##")[0]
    assert summary.strip().startswith("- **Classes not learnt**: class 3 (best 0.004)")
    assert "| class | step 500 | step 2000 (last) | best over the run |  |" in text
    assert "| 3 | 0.004 | 0.004 | 0.004 | **not learnt** |" in text
    assert "## Does the discriminator's score track correctness?" in text
    assert "| 500 | 0.42 |  | 0.35 | 0.90 | 0.700 | 0.400 | 200 |" in text
    assert "below chance at every evaluation (0.42 to 0.42)" in text
    assert "The image gate chooses by that score: it kept" in text


def test_a_supervised_report_has_no_filter_line_and_names_the_method(tmp_path):
    from log_streams import config_record

    history = healthy()
    history[0] = {**config_record(), "method": {"name": "supervised", "class": "Supervised",
                                                "settings": {}, "parts": {}}}  # fmt: skip
    text = write_report(write_run(tmp_path, history), plots=False).read_text()
    assert "Pseudo-label filter" not in text
    assert "- Method supervised (`Supervised`); lr_g 0.00025, log every 10 steps" in text
    s4gan = write_report(write_run(tmp_path / "s4", healthy()), plots=False).read_text()
    assert "- Pseudo-label filter `DiscriminatorGate(threshold=0.2)`: image:" in s4gan
    assert "lr_d 0.0001, d_update_interval 1, label_smoothing 0.0" in s4gan


def test_loss_tables_are_sampled_at_regular_steps(tmp_path):
    text = write_report(write_run(tmp_path, healthy()), plots=False).read_text()
    table = text.split("## Losses")[1].split("## Self-training")[0]
    steps = [int(line.split("|")[1]) for line in table.splitlines() if line[:3] == "| " + line[2:3]
             and line[2:3].isdigit()]  # fmt: skip
    # 40 records every 50 steps: the first, then every 200 steps, then the last.
    assert steps == [50, *range(200, 2001, 200)]


def test_durations_scale_to_a_short_run(tmp_path):
    # A 300-step run logged every 10 steps, flooded from step 20 to 190: 500-step limits
    # miss it; the limits scaled to the run (75 steps) find it.
    from log_streams import patch

    history = healthy(steps=300, log=10, evals=100, max_steps=300)
    history = patch(history, 20, 190, kept=1.0, st_pixels_frac=1.0)
    run = write_run(tmp_path, history)
    assert "`st_flooded`" not in write_report(run, duration_steps=500, plots=False).read_text()
    assert "`st_flooded`" in write_report(run, plots=False).read_text()
