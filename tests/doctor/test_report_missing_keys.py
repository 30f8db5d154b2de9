"""The report reads logs that lack keys: an older s4seg, another method, a converted log.

Missing numbers show as blank cells, and the monitors use the keys that are there.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from s4seg.doctor.report import write_report


def write_records(run_dir: Path, records: list[dict]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run_dir


def sparse_run(drop: set[str]) -> list[dict]:
    """A gated run that starves from step 600, with the keys in ``drop`` left out."""
    records = []
    for step in range(100, 1300, 100):
        kept = 300 if step < 600 else 0
        record = {
            "kind": "train",
            "step": step,
            "window_steps": 100,
            "loss_ce": 1.0,
            "loss_d": 0.6 if step < 600 else 0.04,
            "train_miou": 0.3,
            "st_images_kept": kept,
            "st_images_total": 400,
            "st_pixels_kept": kept * 1024,
            "st_pixels_total": 400 * 1024,
            "st_pixels_frac": kept / 400,
            "gate_images_passed": kept,
            "gate_images_total": 400,
            "gate_threshold": 0.2,
            "d_fake_p10": 0.1,
            "d_fake_p50": 0.3 if step < 600 else 0.01,
            "d_fake_p90": 0.5,
        }
        records.append({k: v for k, v in record.items() if k not in drop})
        if step % 400 == 0:
            records.append({"kind": "eval", "step": step, "miou": 0.2 + step / 10_000})
    return records


@pytest.mark.parametrize(
    "drop",
    [
        {"train_miou"},
        {"st_pixels_kept", "st_pixels_total", "st_pixels_frac"},
        {"st_images_total", "gate_images_total"},
        {"d_fake_p10", "d_fake_p90"},
        {"train_miou", "st_pixels_kept", "st_pixels_total", "st_pixels_frac", "st_images_total"},
    ],
    ids=lambda d: "-".join(sorted(d)),
)
def test_a_log_without_some_keys_is_reported(tmp_path, drop):
    run = write_records(tmp_path / "run", sparse_run(drop))
    text = write_report(run, plots=True).read_text()
    assert "## Self-training activity" in text
    # The monitors still use what is there: st_images_kept is, so starvation is found.
    assert "`st_starved`" in text
    assert (run / "st_kept.png").exists()


def test_missing_counts_show_as_blank_cells(tmp_path):
    drop = {"st_pixels_kept", "st_pixels_total", "st_pixels_frac", "st_images_total"}
    run = write_records(tmp_path / "run", sparse_run(drop))
    text = write_report(run, plots=False).read_text()
    # Images kept with no total: the kept count alone; the pixel cells blank.
    assert "| 1200 | 0 | 0 |  |  | 0.20 |  |" in text
    assert "0 of 0" not in text and not re.search(r"\bnan\b", text.lower())


def test_a_log_with_only_losses(tmp_path):
    records = [{"kind": "train", "step": s, "loss_ce": 1.0 / s} for s in range(10, 110, 10)]
    records.append({"kind": "eval", "step": 100, "miou": 0.1})
    text = write_report(write_records(tmp_path / "run", records)).read_text()
    assert "No self-training in this run" in text
    assert "No discriminator in this run." in text
