"""A run folder as the report reads it: ``metrics.jsonl``, ``config.json``, ``doctor.jsonl``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s4seg.jsonl import read_jsonl

__all__ = ["RunLog", "find_runs", "load_run"]


@dataclass
class RunLog:
    """What a run folder holds, read tolerantly.

    Attributes:
        run_dir: the run folder.
        records: ``metrics.jsonl`` records in file order.
        config: ``config.json`` (``{"trainer": ..., "method": ..., "parts": ...}``), or None.
        doctor: ``doctor.jsonl`` entries (findings and actions), or [].
        skipped: ``"file:line"`` of lines that could not be read.
    """

    run_dir: Path
    records: list[dict[str, Any]]
    config: dict[str, Any] | None = None
    doctor: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def history(self) -> list[dict[str, Any]]:
        """The records the monitors read: the config first, then the log."""
        head = [{"kind": "config", **self.config}] if self.config else []
        return head + self.records


def load_run(run_dir: str | Path) -> RunLog:
    """Read a run folder written by :func:`s4seg.callbacks.default_callbacks`."""
    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        raise FileNotFoundError(
            f"no metrics.jsonl in {run_dir}: pass the run folder given to default_callbacks "
            f"(or JSONLLogger), or a folder that holds such run folders"
        )
    bad: list[int] = []
    records = read_jsonl(metrics, skipped=bad)
    run = RunLog(run_dir, records, skipped=[f"metrics.jsonl:{n}" for n in bad])
    config_path = run_dir / "config.json"
    if config_path.is_file():
        try:
            run.config = json.loads(config_path.read_text())
        except json.JSONDecodeError:
            run.skipped.append("config.json")
    doctor_path = run_dir / "doctor.jsonl"
    if doctor_path.is_file():
        bad = []
        run.doctor = read_jsonl(doctor_path, skipped=bad)
        run.skipped += [f"doctor.jsonl:{n}" for n in bad]
    return run


def find_runs(folder: str | Path) -> list[Path]:
    """The run folders (those that hold ``metrics.jsonl``) in ``folder`` or below it, sorted.

    ``folder`` itself when it is a run folder.
    """
    folder = Path(folder)
    if (folder / "metrics.jsonl").is_file():
        return [folder]
    return sorted(p.parent for p in folder.rglob("metrics.jsonl") if p.is_file())
