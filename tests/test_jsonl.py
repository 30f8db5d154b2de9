"""s4seg.jsonl: one reader for logs; a torn last line is the trace of a kill, not an error."""

from __future__ import annotations

import json
import os

import pytest

from s4seg.jsonl import append_jsonl, read_jsonl, rewrite_jsonl


def test_round_trip_and_nan(tmp_path) -> None:
    path = tmp_path / "m.jsonl"
    append_jsonl(path, {"step": 1, "loss": float("nan")})
    append_jsonl(path, {"step": 2, "path": tmp_path})  # default=str for non-JSON values
    records = read_jsonl(path)
    assert [r["step"] for r in records] == [1, 2]
    assert records[0]["loss"] != records[0]["loss"] and records[1]["path"] == str(tmp_path)


def test_a_torn_last_line_is_skipped_with_a_warning_that_names_the_file(tmp_path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')
    with pytest.warns(UserWarning, match=r"metrics\.jsonl: skipped a last line cut short"):
        records = read_jsonl(path)
    assert [r["step"] for r in records] == [1, 2]


def test_damage_in_the_middle_names_file_and_line(tmp_path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl, line 2: not JSON"):
        read_jsonl(path)
    skipped: list[int] = []
    assert [r["step"] for r in read_jsonl(path, skipped=skipped)] == [1, 3]
    assert skipped == [2]


def test_rewrite_is_atomic_a_failure_leaves_the_old_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "m.jsonl"
    rewrite_jsonl(path, [{"step": i} for i in range(5)])
    before = path.read_text()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        rewrite_jsonl(path, [{"step": 0}])
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.jsonl"]  # no temporary left behind
    assert [json.loads(x)["step"] for x in before.splitlines()] == [0, 1, 2, 3, 4]
