"""Read what the original S4GAN code prints: ``train_s4GAN.py``'s and ``evaluate.py``'s logs.

"The original" is github.com/sud0301/semisup-semseg. Its training script prints, per
iteration ``i`` (0-based) of ``N`` (``--num-steps``)::

    Above ST-Threshold :  3 / 8
    iter =        7/   40000, loss_ce = 0.512, loss_fm = 0.004, loss_S = 0.731, loss_D = 0.689

* ``Above ST-Threshold : k / B`` is printed only when ``k > 0``, before the iteration's
  line: ``k`` **images** of the unlabelled batch had a discriminator probability above
  ``--threshold-st``; ``B`` is ``--batch-size``. No such line means 0 images.
* ``loss_ce`` is the cross-entropy on the labelled batch (nats per pixel); ``loss_fm`` is
  the feature-matching loss **already multiplied by** ``--lambda-fm``; ``loss_S`` is the
  generator's whole loss, ``loss_ce + lambda_fm * fm + lambda_st * st``, where the last
  term is there only when ``k > 0`` and ``i > 0``; ``loss_D`` is
  ``(BCE(fake) + BCE(real)) / 2``.
* Before the first iteration it prints its arguments, ``Namespace(batch_size=8, ...)``.

``evaluate.py`` prints ``class  1 aeroplane    IU 0.75`` for each class whose IoU is above
0 and then ``meanIOU: 0.7`` (the sum of the per-class IoUs over all ``--num-classes``).

The parsers are written for these lines (regular expressions, no torch): a line that
starts like one of them but does not parse is skipped and named by file and line
number, and lines of other kinds (warnings, "saving checkpoint ...") are counted and
left alone.
"""

from __future__ import annotations

import ast
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "OriginalEval",
    "OriginalIteration",
    "OriginalTrainLog",
    "parse_eval_log",
    "parse_train_log",
]

_NUM = r"[-+]?(?:nan|inf|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
# '{0:8d}/{1:8d}, loss_ce = {2:.3f}, ...' of train_s4GAN.py, tolerant of spacing.
_ITER = re.compile(
    rf"iter\s*=\s*(\d+)\s*/\s*(\d+)\s*,\s*loss_ce\s*=\s*({_NUM})\s*,\s*loss_fm\s*=\s*({_NUM})"
    rf"\s*,\s*loss_S\s*=\s*({_NUM})\s*,\s*loss_D\s*=\s*({_NUM})\s*$",
    re.IGNORECASE,
)
# print('Above ST-Threshold : ', count, '/', batch_size) under Python 3 ("... :  3 / 8")
# and under Python 2, which prints the tuple ("('Above ST-Threshold : ', 3, '/', 8)").
_ST = re.compile(r"Above ST-Threshold\s*:\s*'?\s*,?\s*(\d+)\s*,?\s*'?/'?\s*,?\s*(\d+)\s*\)?\s*$")
_NAMESPACE = re.compile(r"Namespace\((.*)\)\s*$")
_ARG = re.compile(r"(\w+)=('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^,()]*)")
_MEAN_IOU = re.compile(rf"meanIOU\s*:\s*({_NUM})\s*$", re.IGNORECASE)
_CLASS_IOU = re.compile(rf"class\s+(\d+)\s+(.*?)\s+IU\s+({_NUM})\s*$")


@dataclass(frozen=True)
class OriginalIteration:
    """One iteration of ``train_s4GAN.py``, as printed.

    Attributes:
        iteration: ``i_iter``, 0-based.
        num_steps: ``--num-steps`` (the ``/N`` of the line).
        loss_ce: cross-entropy on the labelled batch.
        loss_fm_weighted: the printed ``loss_fm``: lambda_fm times the feature-matching loss.
        loss_s: the generator's whole loss.
        loss_d: the discriminator's loss.
        passed: images of the unlabelled batch above the threshold (0 without an ST line).
        batch: the ``B`` of the ST line, None without one.
        line: line number (1-based) of the ``iter =`` line.
    """

    iteration: int
    num_steps: int
    loss_ce: float
    loss_fm_weighted: float
    loss_s: float
    loss_d: float
    passed: int
    batch: int | None
    line: int


@dataclass
class OriginalTrainLog:
    """What a ``train_s4GAN.py`` log holds.

    Attributes:
        path: the log file.
        iterations: the iterations in file order.
        arguments: the ``Namespace(...)`` line's arguments (``batch_size``,
            ``threshold_st``, ``lambda_fm``, ...), {} when the log has none.
        skipped: ``"file:line: why"`` for each line that looked like the original's but
            did not parse, or did not fit (an ST line without its iteration line).
        other_lines: non-empty lines of other kinds, left alone.
        lines: lines in the file.
    """

    path: Path
    iterations: list[OriginalIteration] = field(default_factory=list)
    arguments: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    other_lines: int = 0
    lines: int = 0

    def batch_size(self) -> int | None:
        """``--batch-size``: from the arguments, else the ST lines' most common ``B``."""
        b = self.arguments.get("batch_size")
        if isinstance(b, int) and not isinstance(b, bool) and b > 0:
            return b
        seen = Counter(it.batch for it in self.iterations if it.batch)
        return seen.most_common(1)[0][0] if seen else None


@dataclass(frozen=True)
class OriginalEval:
    """What an ``evaluate.py`` log holds.

    Attributes:
        path: the log file.
        miou: the ``meanIOU`` line's value.
        iou: class index -> IoU of the printed ``class`` lines (the original prints only
            classes with IoU above 0, with two decimals).
        class_names: class index -> the name printed with it.
        line: line number of the ``meanIOU`` line.
        skipped: ``"file:line: why"`` of lines that did not parse.
    """

    path: Path
    miou: float
    iou: dict[int, float]
    class_names: dict[int, str]
    line: int
    skipped: tuple[str, ...] = ()


def _number(text: str) -> float:
    return float(text)  # float() reads "nan", "inf", "-inf" and exponents


def _read_lines(path: Path, what: str) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} {str(path)!r} is not a file; pass the file the run printed"
        )
    # errors="replace": a log cut mid-character, or with a stray byte, still reads.
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def _arguments(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in _ARG.findall(text):
        raw = raw.strip()
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw  # a bare word such as a class repr: kept as text
    return out


def parse_train_log(path: str | Path) -> OriginalTrainLog:
    """Read a log printed by the original ``train_s4GAN.py``.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: no line of the file is an ``iter = ...`` line of the original.
    """
    path = Path(path)
    log = OriginalTrainLog(path)
    name = path.name
    pending: tuple[int, int, int] | None = None  # (k, B, line) of an ST line
    last: OriginalIteration | None = None
    lines = _read_lines(path, "the training log")
    log.lines = len(lines)
    for n, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        if "Above ST-Threshold" in text:
            m = _ST.search(text)
            if m is None or int(m.group(1)) > int(m.group(2)):
                log.skipped.append(f"{name}:{n}: an 'Above ST-Threshold : k / B' line that does "
                                   f"not read as k <= B images: {text[:80]!r}")  # fmt: skip
                continue
            if pending is not None:
                log.skipped.append(f"{name}:{pending[2]}: an ST line without its 'iter =' line")
            pending = (int(m.group(1)), int(m.group(2)), n)
            continue
        if text.startswith("iter") or "loss_ce" in text:
            m = _ITER.search(text)
            if m is None:
                log.skipped.append(f"{name}:{n}: not an 'iter = i/N, loss_ce = ..., loss_fm = "
                                   f"..., loss_S = ..., loss_D = ...' line: {text[:80]!r}")  # fmt: skip
                pending = None  # its ST line belonged to the iteration lost here
                continue
            i = int(m.group(1))
            if last is not None and i <= last.iteration:
                log.skipped.append(
                    f"{name}:{n}: iteration {i} does not follow iteration {last.iteration} "
                    f"(line {last.line}); a second run appended to the same log? Give each "
                    f"run's log on its own"
                )
                pending = None
                continue
            passed, batch = (pending[0], pending[1]) if pending else (0, None)
            pending = None
            last = OriginalIteration(
                iteration=i,
                num_steps=int(m.group(2)),
                loss_ce=_number(m.group(3)),
                loss_fm_weighted=_number(m.group(4)),
                loss_s=_number(m.group(5)),
                loss_d=_number(m.group(6)),
                passed=passed,
                batch=batch,
                line=n,
            )
            log.iterations.append(last)
            continue
        m = _NAMESPACE.search(text)
        if m is not None and not log.iterations:
            log.arguments = _arguments(m.group(1))
            continue
        log.other_lines += 1
    if pending is not None:
        log.skipped.append(
            f"{name}:{pending[2]}: an ST line without its 'iter =' line (the run stopped "
            f"within the iteration)"
        )
    if not log.iterations:
        raise ValueError(
            f"{str(path)!r} has no 'iter = i/N, loss_ce = ...' line of the original "
            f"train_s4GAN.py ({len(lines)} lines); pass the output of train_s4GAN.py "
            f"(e.g. python train_s4GAN.py ... | tee train.log)"
        )
    return log


def parse_eval_log(path: str | Path) -> OriginalEval:
    """Read a log printed by the original ``evaluate.py`` (one evaluation).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: no ``meanIOU:`` line, or more than one (the evaluations of several
            checkpoints in one file: their steps cannot be told apart).
    """
    path = Path(path)
    name = path.name
    found: list[tuple[int, float]] = []
    iou: dict[int, float] = {}
    names: dict[int, str] = {}
    skipped: list[str] = []
    for n, line in enumerate(_read_lines(path, "the evaluation log"), start=1):
        text = line.strip()
        if "meanIOU" in text:
            m = _MEAN_IOU.search(text)
            if m is None or not math.isfinite(v := _number(m.group(1))):
                skipped.append(f"{name}:{n}: not a 'meanIOU: <number>' line: {text[:80]!r}")
            else:
                found.append((n, v))
        elif text.startswith("class"):
            m = _CLASS_IOU.search(text)
            if m is None:
                skipped.append(f"{name}:{n}: not a 'class <i> <name> IU <iou>' line: {text[:80]!r}")
            else:
                iou[int(m.group(1))] = _number(m.group(3))
                names[int(m.group(1))] = m.group(2).strip()
    if not found:
        raise ValueError(
            f"{str(path)!r} has no 'meanIOU: ...' line of the original evaluate.py; pass the "
            f"output of evaluate.py (or its results/result.txt)"
        )
    if len(found) > 1:
        where = ", ".join(str(n) for n, _ in found)
        raise ValueError(
            f"{str(path)!r} holds {len(found)} evaluations (meanIOU on lines {where}); their "
            f"steps cannot be told apart: give each checkpoint's evaluation in its own file, "
            f"as --eval-log STEP=FILE"
        )
    at, miou = found[0]
    return OriginalEval(path, miou, iou, names, at, tuple(skipped))
