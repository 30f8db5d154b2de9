"""JSON Lines files: one reader for the logger, the doctor and the report.

A run that is killed while it appends can leave its last line cut short. Readers
skip such a torn last line (with a warning that names the file) instead of failing;
a bad line anywhere else is damage and raises, naming the file and the line.
Rewrites go through a temporary file and a rename, so a kill during a rewrite
leaves the old file whole.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from s4seg.atomic import write_atomic

__all__ = ["append_jsonl", "read_jsonl", "rewrite_jsonl"]


def read_jsonl(
    path: str | os.PathLike[str], *, skipped: list[int] | None = None
) -> list[dict[str, Any]]:
    """The records of a JSON Lines file; a torn last line is skipped with a warning.

    Args:
        path: the file.
        skipped: if given, the numbers (1-based) of lines that are not JSON objects
            are appended here and those lines skipped, instead of raising (a report of
            a run that is still writing reads what it can).

    Raises:
        ValueError: without ``skipped``, a line other than the last is not a JSON
            object (the message names the file and the line number).
    """
    path = Path(path)
    # Bytes that are not UTF-8 (bit rot, a torn multi-byte character) become U+FFFD and
    # fail as JSON on their line, which the error then names.
    lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            if skipped is not None:
                skipped.append(number)
                continue
            if number == len(lines):
                warnings.warn(
                    f"{path}: skipped a last line cut short ({len(line)} characters), the "
                    f"trace of a run killed while writing",
                    stacklevel=2,
                )
                break
            raise ValueError(
                f"{path}, line {number}: not JSON ({err.msg}); the file is damaged, "
                f"remove or repair that line"
            ) from None
        if not isinstance(value, dict):
            if skipped is not None:
                skipped.append(number)
                continue
            raise ValueError(f"{path}, line {number}: a JSON {type(value).__name__}, not an object")
        records.append(value)
    return records


def append_jsonl(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one record as a line (``default=str`` for values JSON does not know).

    If the file ends in a line cut short (a killed writer), the record starts on a
    new line, so that it is not glued to the torn one and lost with it.
    """
    line = json.dumps(record, default=str) + "\n"
    with Path(path).open("ab+") as f:
        if f.seek(0, os.SEEK_END) > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                line = "\n" + line
        f.write(line.encode("utf-8"))


def rewrite_jsonl(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> None:
    """Replace the file's records atomically: a kill during the write loses nothing."""

    def write(f: IO[Any]) -> None:
        for record in records:
            f.write(json.dumps(record, default=str) + "\n")

    write_atomic(path, write, binary=False)
