"""Turn a log of the original S4GAN code into a run folder that ``s4seg report`` reads.

The log is read by :mod:`s4seg.doctor.original_log`; this module writes what s4seg's
trainer would have written for the same run: ``metrics.jsonl`` with one train record
per window of iterations, in s4seg's keys and units
(docs/getting-started.md#train-records), an eval record per ``evaluate.py`` log, and a
``config.json`` that says the run was converted, from what, and which settings came
from the log's ``Namespace(...)`` line.

How the printed numbers map (iteration ``i`` of the original is step ``i + 1`` done;
a record at step 500 covers iterations 450-499):

* ``Above ST-Threshold : k / B`` -> ``gate_images_passed`` / ``gate_images_total`` and
  ``st_images_kept`` / ``st_images_total`` (**images**; summed from iteration 1 on, as
  the original trains on them only when ``i > 0``). Every pixel of a passed image gets
  its argmax as pseudo-label, so ``st_pixels_kept`` is ``k`` times the crop's pixels
  (``--input-size``) and ``pixel_threshold`` is 0.
* ``loss_fm`` -> ``loss_fm`` divided by ``--lambda-fm`` (s4seg logs it unweighted).
* ``loss_S - loss_ce - loss_fm`` -> ``lambda_st * loss_st`` -> ``loss_st``, 0 when no
  image passed (the printed numbers have three decimals: so has this one).
* ``loss_D`` -> ``loss_d`` (the same definition); ``--threshold-st`` ->
  ``gate_threshold``; the poly schedule of ``--learning-rate`` / ``--learning-rate-D``
  -> ``lr_g`` / ``lr_d``.
* ``meanIOU`` -> an eval record's ``miou``; the printed classes -> ``iou``.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from s4seg.doctor.original_log import (
    OriginalEval,
    OriginalIteration,
    OriginalTrainLog,
    parse_eval_log,
    parse_train_log,
)

__all__ = [
    "convert_s4gan_log",
    "default_run_dir",
    "default_window",
    "eval_log_spec",
    "train_records_of",
]

FORMAT = "s4gan-log"
SOURCE = "train_s4GAN.py / evaluate.py of github.com/sud0301/semisup-semseg"


def default_window(iterations: int) -> int:
    """Iterations per train record: about 100 records, at least 10 iterations each.

    A round number (1, 2, 2.5 or 5 times a power of ten): 10 for up to 1,000
    iterations, 200 for 20,000, 500 for the original's 40,000.
    """
    target = max(iterations / 100, 10)
    power = 10 ** math.floor(math.log10(target))
    for m in (1, 2, 2.5, 5, 10):
        if m * power >= target:
            return math.ceil(m * power)
    return math.ceil(10 * power)  # unreachable


def _positive(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    return float(value) if ok else None


def _crop_pixels(arguments: dict[str, Any]) -> int | None:
    """Pixels of one prediction: the original upsamples to ``--input-size`` 'H,W'."""
    size = arguments.get("input_size")
    try:
        h, w = (int(x) for x in str(size).split(","))
    except ValueError:
        return None
    return h * w if h > 0 and w > 0 else None


def _lr(base: float | None, i: int, num_steps: int, power: float) -> float | None:
    if base is None or num_steps <= 0:
        return None
    return base * max(0.0, 1.0 - i / num_steps) ** power  # the original's lr_poly


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def train_records_of(log: OriginalTrainLog, window: int) -> list[dict[str, Any]]:
    """The train records of ``log``: one per ``window`` iterations, s4seg's keys and units."""
    if window < 1:
        raise ValueError(f"window={window} must be >= 1 iterations")
    args = log.arguments
    lambda_fm = _positive(args.get("lambda_fm"))
    lambda_st = _positive(args.get("lambda_st"))
    threshold = _positive(args.get("threshold_st"))
    batch = log.batch_size()
    pixels = _crop_pixels(args)
    power = _positive(args.get("power")) or 0.9
    groups: dict[int, list[OriginalIteration]] = {}
    for it in log.iterations:
        groups.setdefault(it.iteration // window, []).append(it)
    records = []
    for k, its in sorted(groups.items()):
        last = its[-1]
        step = min((k + 1) * window, last.iteration + 1)
        trained = [it for it in its if it.iteration > 0]  # i == 0 takes no ST loss
        passed = sum(it.passed for it in trained)
        rec: dict[str, Any] = {
            "kind": "train",
            "step": step,
            "window_steps": step - k * window,
            "loss_ce": round(_mean([it.loss_ce for it in its]), 4),
        }
        if lambda_fm is not None:
            rec["loss_fm"] = round(_mean([it.loss_fm_weighted for it in its]) / lambda_fm, 4)
        if lambda_st is not None:
            rec["loss_st"] = round(_mean([_loss_st(it, lambda_st) for it in its]), 4)
        rec["loss_d"] = round(_mean([it.loss_d for it in its]), 4)
        rec["st_images_kept"] = passed
        rec["gate_images_passed"] = passed
        if batch is not None:
            rec["st_images_total"] = rec["gate_images_total"] = batch * len(trained)
            if pixels is not None:
                rec["st_pixels_kept"] = passed * pixels
                rec["st_pixels_total"] = batch * len(trained) * pixels
                rec["st_pixels_frac"] = passed / (batch * len(trained)) if trained else 0.0
        # Unknown without the Namespace line; null keeps the records marked as gated.
        rec["gate_threshold"] = threshold
        rec["pixel_threshold"] = 0.0  # every pixel of a passed image is pseudo-labelled
        lr_g = _lr(_positive(args.get("learning_rate")), last.iteration, last.num_steps, power)
        lr_d = _lr(_positive(args.get("learning_rate_D")), last.iteration, last.num_steps, power)
        if lr_g is not None:
            rec["lr_g"] = lr_g
        if lr_d is not None:
            rec["lr_d"] = lr_d
        records.append(rec)
    return records


def _loss_st(it: OriginalIteration, lambda_st: float) -> float:
    if it.passed == 0 or it.iteration == 0:
        return 0.0  # the original leaves the term out of loss_S
    if not all(math.isfinite(x) for x in (it.loss_s, it.loss_ce, it.loss_fm_weighted)):
        return math.nan
    # Rounding of the three printed numbers can make a near-0 term slightly negative.
    return max(0.0, (it.loss_s - it.loss_ce - it.loss_fm_weighted) / lambda_st)


def _eval_record(ev: OriginalEval, step: int, classes: int | None) -> dict[str, Any]:
    rec: dict[str, Any] = {"kind": "eval", "step": step, "miou": ev.miou}
    if ev.iou:
        n = max(classes or 0, max(ev.iou) + 1)
        # A class the original did not print had IoU 0 or was absent: null, not 0.
        rec["iou"] = [ev.iou.get(c) for c in range(n)]
    return rec


def _config(
    log: OriginalTrainLog,
    evals: list[tuple[OriginalEval, int]],
    window: int,
    skipped: list[str],
) -> dict[str, Any]:
    args = log.arguments
    threshold = args.get("threshold_st")
    last = log.iterations[-1]
    steps = sorted({step for _, step in evals})
    gaps = [b - a for a, b in itertools.pairwise(steps)]
    trainer: dict[str, Any] = {
        "max_steps": last.num_steps,
        "log_interval": window,
        # The checkpoints evaluated: their spacing, else how often the original saved one.
        "eval_interval": int(statistics.median(gaps)) if gaps else args.get("save_pred_every"),
        "batch_size": log.batch_size(),
    }
    for ours, theirs in (("lr_g", "learning_rate"), ("poly_power", "power"),
                         ("momentum", "momentum"), ("weight_decay", "weight_decay")):  # fmt: skip
        if theirs in args:
            trainer[ours] = args[theirs]
    settings: dict[str, Any] = {
        "lambda_fm": args.get("lambda_fm"),
        "lambda_st": args.get("lambda_st"),
        "start_step": 1,  # ST loss only when i_iter > 0
        "d_update_interval": 1,
        "label_smoothing": 0.0,
    }
    if "learning_rate_D" in args:
        settings["lr_d"] = args["learning_rate_D"]
    gate = f"DiscriminatorGate(threshold={threshold})" if threshold is not None else None
    notes = [
        "Above ST-Threshold : k / B counts images of the unlabelled batch whose "
        "discriminator probability passed --threshold-st; no line means 0 images",
        "loss_fm is the printed loss_fm divided by lambda_fm; loss_st is "
        "(loss_S - loss_ce - loss_fm) / lambda_st, 0 when no image passed",
        "miou is the original's meanIOU: the per-class IoUs summed over all classes and "
        "divided by num_classes (an absent class counts 0); a class it did not print "
        "(IoU 0, or absent) is null in iou",
    ]
    if not args:
        notes.append(
            "the log has no Namespace(...) line: lambda_fm, lambda_st, threshold_st, "
            "input_size and the learning rates are unknown, so loss_fm, loss_st, the pixel "
            "counts, gate_threshold and lr are left out"
        )
    return {
        "converted_from": {
            "format": FORMAT,
            "program": SOURCE,
            "train_log": str(log.path),
            "eval_logs": [{"path": str(ev.path), "step": step} for ev, step in evals],
            "iterations": len(log.iterations),
            "first_iteration": log.iterations[0].iteration,
            "last_iteration": last.iteration,
            "window_iterations": window,
            "arguments": args,
            "skipped": skipped,
            "other_lines": log.other_lines,
            "notes": notes,
        },
        "trainer": trainer,
        "method": {
            "name": "s4gan",
            "class": "S4GAN",
            "settings": settings,
            "parts": {"pseudo_filter": gate} if gate else {},
        },
        "parts": {
            "generator": f"Res_Deeplab of the original code ({args.get('model', 'DeepLab')})"
        },
    }


def convert_s4gan_log(
    train_log: str | Path,
    out_dir: str | Path,
    *,
    eval_logs: Sequence[tuple[int | None, str | Path]] = (),
    window: int | None = None,
) -> Path:
    """Write a run folder (``metrics.jsonl``, ``config.json``) from the original's logs.

    Args:
        train_log: what ``train_s4GAN.py`` printed.
        out_dir: the run folder to write (created; its metrics.jsonl and config.json
            are replaced).
        eval_logs: ``(step, file)`` of what ``evaluate.py`` printed for a checkpoint;
            step None means the last step of the training log (the final checkpoint).
            The step of ``VOC_5000.pth`` is 5000.
        window: iterations per train record (None: :func:`default_window`).

    Returns:
        ``out_dir``.

    Raises:
        FileNotFoundError: a log is not a file.
        ValueError: a log holds no line of the original's format (the message names the
            file), or an evaluation log holds several evaluations.
    """
    log = parse_train_log(train_log)
    window = window or default_window(len(log.iterations))
    records = train_records_of(log, window)
    last_step = log.iterations[-1].iteration + 1
    evals = [(parse_eval_log(path), last_step if step is None else int(step))
             for step, path in eval_logs]  # fmt: skip
    classes = log.arguments.get("num_classes")
    classes = classes if isinstance(classes, int) and not isinstance(classes, bool) else None
    eval_recs = sorted((_eval_record(ev, step, classes) for ev, step in evals),
                       key=lambda r: r["step"])  # fmt: skip
    best = -math.inf
    for e in eval_recs:
        best = max(best, e["miou"])
        e["best_miou"] = best
    # Train records first at a shared step: s4seg logs the window, then evaluates.
    merged = sorted(records + eval_recs, key=lambda r: (r["step"], r["kind"] == "eval"))
    skipped = [*log.skipped, *(s for ev, _ in evals for s in ev.skipped)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in merged))
    config = _config(log, evals, window, skipped)
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
    return out


def default_run_dir(train_log: str | Path) -> Path:
    """Where ``s4seg report --from s4gan-log LOG`` writes without ``--out``: ``LOG_s4seg/``
    beside the log (``logs/train.log`` -> ``logs/train_s4seg``)."""
    log = Path(train_log)
    return log.with_name(f"{log.stem}_s4seg")


def eval_log_spec(text: str) -> tuple[int | None, Path]:
    """``"5000=eval.log"`` -> ``(5000, Path("eval.log"))``; ``"eval.log"`` -> ``(None, ...)``.

    The step is the number of the checkpoint evaluated (``VOC_5000.pth``); without one,
    the evaluation is of the last step of the training log.
    """
    step, sep, path = text.partition("=")
    if sep and step.strip().isdigit():
        return int(step), Path(path)
    return None, Path(text)
