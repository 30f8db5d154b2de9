"""The cells of the report's tables: numbers, shares and IoUs as text, blank when unknown."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from s4seg.doctor.records import number_at

__all__ = [
    "fmt",
    "iou_at",
    "iou_cell",
    "markdown_table",
    "number",
    "pct",
    "pct_or_blank",
    "ratio",
]


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: ints with thousands separators, floats to ``digits`` places."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else str(value)
    return str(value)


def markdown_table(header: Sequence[str], rows: list[list[str]]) -> str:
    """A markdown table of ``rows`` under ``header``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def iou_at(e: dict[str, Any], c: int) -> float | None:
    """Class ``c``'s IoU in an eval record, None when it is missing or not finite."""
    iou = e.get("iou")
    if not isinstance(iou, list) or c >= len(iou):
        return None
    v = iou[c]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def iou_cell(v: float | None) -> str:
    """An IoU to three places, ``n/a`` when unknown."""
    return "n/a" if v is None else f"{v:.3f}"


def pct(part: float, whole: float) -> str:
    """``part`` as a percentage of ``whole``, ``n/a`` when ``whole`` is 0."""
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"


def number(record: dict[str, Any], key: str) -> float:
    """A finite number of ``record``, NaN when it is missing (a gap in a plotted line)."""
    v = number_at(record, key)
    return math.nan if v is None else v


def ratio(record: dict[str, Any], kept_key: str, total_key: str) -> str:
    """``"k / N"``, ``"k"`` without a total, blank without a count."""
    kept, total = number_at(record, kept_key), number_at(record, total_key)
    if kept is None:
        return ""
    return f"{int(kept):,}" + ("" if total is None else f" / {int(total):,}")


def pct_or_blank(x: Any) -> str:
    """A fraction as a percentage, blank when it is not a finite number."""
    return f"{100 * x:.1f}%" if isinstance(x, (int, float)) and math.isfinite(x) else ""
