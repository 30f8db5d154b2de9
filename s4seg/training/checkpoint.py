"""Checkpoint files: atomic writes, verified safe loads, and a readable config mismatch.

A checkpoint is a :func:`torch.save` zip archive. Writes go through a temporary file
and a rename (:func:`s4seg.atomic.write_atomic`), so a kill mid-write leaves the
previous file whole. Reads check the archive before unpickling: an empty or
truncated file, or one whose bytes changed on disk (the zip's CRC-32 of every entry
is compared), raises a ``ValueError`` that names the file and what is wrong, and
pickles are loaded with ``weights_only=True`` (no code runs from them).
"""

from __future__ import annotations

import os
import pickle
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from s4seg.atomic import write_atomic

__all__ = ["checkpoint_step", "config_mismatches", "read_checkpoint", "save_atomic"]

_FIX = "resume from another checkpoint (best.pt, or an older copy)"


def save_atomic(state: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` with :func:`torch.save` to a temporary file, then rename it.

    A run killed mid-write leaves the previous checkpoint intact: the rename is
    atomic on POSIX file systems. A full disk raises ``OSError(ENOSPC)`` naming the
    file and the free space.
    """
    return write_atomic(path, lambda f: torch.save(dict(state), f), binary=True)


def _check_archive(path: Path) -> None:
    """Raise ValueError unless ``path`` is a whole zip archive whose entries match their CRC."""
    size = path.stat().st_size
    if size == 0:
        raise ValueError(
            f"checkpoint {str(path)!r} is empty (0 bytes): a write that never finished, or a "
            f"copy that failed; {_FIX}"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()  # reads every entry and compares its CRC-32
    # A damaged central directory can fail as anything from a bad zip to undecodable
    # file names (UnicodeDecodeError, a ValueError) or an unknown compression method.
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        ValueError,
        NotImplementedError,
    ) as err:
        raise ValueError(
            f"checkpoint {str(path)!r} ({size} bytes) is not a whole torch.save archive "
            f"({type(err).__name__}: {err}): truncated, damaged or not a checkpoint; {_FIX}"
        ) from None
    if bad is not None:
        raise ValueError(
            f"checkpoint {str(path)!r} is damaged: its entry {bad!r} fails the CRC check (the "
            f"bytes changed on disk or in a copy); {_FIX}"
        )


def read_checkpoint(path: str | os.PathLike[str], *, verify: bool = True) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code from pickles).

    Args:
        path: the file.
        verify: check the archive first: not empty, not truncated, every entry's
            CRC-32 as written (one extra read of the file).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is empty, truncated or damaged, or holds something
            ``weights_only`` refuses; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if verify:
        with path.open("rb") as f:
            head = f.read(4)
        # A zip archive (torch.save's format since 1.6) or an empty file; the legacy
        # format (a bare pickle) has no checksums to compare.
        if head in (b"", b"PK\x03\x04"):
            _check_archive(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"checkpoint {str(path)!r} cannot be loaded safely: {err}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise ValueError(
            f"checkpoint {str(path)!r} cannot be read ({type(err).__name__}: {err}); {_FIX}"
        ) from None


def checkpoint_step(path: str | os.PathLike[str]) -> int | None:
    """The ``step`` of a checkpoint, read without loading its tensors; None if unreadable."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True, mmap=True)
        return int(state["step"])
    except Exception:  # any unreadable file has "no step"
        return None


def config_mismatches(
    saved: Mapping[str, Any], current: Mapping[str, Any], ignore: Iterable[str] = ()
) -> list[str]:
    """Lines ``"key: checkpoint X, now Y"`` for every setting that differs."""
    skip = set(ignore)
    lines = []
    for key in sorted(set(saved) | set(current)):
        if key in skip:
            continue
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if _normalise(a) != _normalise(b):
            lines.append(f"{key}: checkpoint {a!r}, now {b!r}")
    return lines


def _normalise(value: Any) -> Any:
    # JSON round trips turn tuples into lists; compare them as equal.
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value
