"""Checkpoint files: atomic writes, safe loads, and a readable config mismatch."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from s4seg.atomic import write_atomic

__all__ = ["config_mismatches", "read_checkpoint", "save_atomic"]


def save_atomic(state: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` with :func:`torch.save` to a temporary file, then rename it.

    A run killed mid-write leaves the previous checkpoint intact: the rename is
    atomic on POSIX file systems.
    """
    return write_atomic(path, lambda f: torch.save(dict(state), f), binary=True)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code from pickles)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


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
