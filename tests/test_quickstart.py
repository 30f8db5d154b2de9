"""The home page's quickstart runs as printed, only smaller, and writes the run folder that
Getting started describes, key for key."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def quickstart_source() -> str:
    """The first python block after the "## Quickstart" heading of docs/index.md."""
    text = (DOCS / "index.md").read_text()
    section = text.split("## Quickstart", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "docs/index.md has no python block under '## Quickstart'"
    return match.group(1)


def shrink(source: str, old: str, new: str, count: int = 1) -> str:
    """Replace ``old`` (which must occur exactly ``count`` times) so that a stale patch fails."""
    assert source.count(old) == count, f"quickstart no longer contains {old!r} x{count}"
    return source.replace(old, new)


def documented_keys(section_title: str) -> set[str]:
    """Backticked names in the first column of the tables under a getting-started heading."""
    text = (DOCS / "getting-started.md").read_text()
    section = text.split(section_title, 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    keys: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            keys.update(re.findall(r"`([a-z0-9_]+)`", line.split("|")[1]))
    return keys


def test_quickstart_is_short() -> None:
    # The issue asks for a 20-line quickstart.
    assert len(quickstart_source().strip().splitlines()) <= 20


@pytest.mark.slow
def test_quickstart_runs_and_run_folder_matches_the_docs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = quickstart_source()
    src = shrink(src, "SyntheticShapes(1000,", "SyntheticShapes(48,")
    src = shrink(src, "SyntheticShapes(200,", "SyntheticShapes(8,")
    src = shrink(src, "labelled=64", "labelled=8")
    src = shrink(src, "batch_size=8", "batch_size=4", count=3)
    src = shrink(src, "max_steps=300", "max_steps=3")
    src = shrink(src, "eval_interval=100", "eval_interval=2, log_interval=1")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(src, "docs/index.md:quickstart", "exec"), namespace)

    trainer = namespace["trainer"]
    assert trainer.step == 3  # type: ignore[attr-defined]
    assert re.search(r"best val mIoU \d\.\d{3} at step [23]", capsys.readouterr().out)
    run = tmp_path / "runs" / "quickstart"
    for name in ("config.json", "metrics.jsonl", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").iterdir())

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = {k for r in records if r["kind"] == "train" for k in r} - {"kind"}
    evals = {k for r in records if r["kind"] == "eval" for k in r} - {"kind"}
    # Every key a run writes is explained on the page, and the page explains no key
    # that a run does not write.
    assert train == documented_keys("### Train records")
    assert evals == documented_keys("### Eval records")
    config = json.loads((run / "config.json").read_text())
    assert set(config) >= {"trainer", "parts"}
