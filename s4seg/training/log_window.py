"""The numbers of the steps between two log lines, kept as tensors until the log step."""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

import torch
from torch import Tensor

from s4seg.distributed import all_gather_cat, all_reduce_sum, world_size
from s4seg.ops.stats import PseudoLabelStats

__all__ = ["LogWindow", "nonfinite_keys"]

LOSSES = ("loss_ce", "loss_fm", "loss_st", "loss_d")
SCORES = ("d_fake", "d_real")  # discriminator probabilities, one per image
LATEST = ("gate_threshold", "pixel_threshold", "st_weight")  # the last step's value
# Kept pseudo-labels that were right (when the unlabelled batches carry true masks):
# ratio key -> (numerator, denominator), both summed over the window first.
RATIOS = {
    "st_kept_accuracy": ("st_pixels_correct", "st_pixels_kept"),
    "st_object_kept_accuracy": ("st_object_pixels_correct", "st_object_pixels_kept"),
}


class LogWindow:
    """Accumulates step outputs on the device; :meth:`flush` is the only host sync.

    Losses are averaged over the window; pseudo-label counts (images and pixels)
    are summed over it, so ``st_images_kept / st_images_total`` reads "k of N
    images in the last ``window_steps`` steps"; D probabilities give mean and
    p10/p50/p90 over all images of the window.
    """

    def __init__(self) -> None:
        self.steps = 0
        self.sums: dict[str, Any] = {}
        self.counts: dict[str, int] = {}  # steps that reported each key (D may skip steps)
        self.scores: dict[str, list[Tensor]] = {}
        self.latest: dict[str, Any] = {}

    def add(self, out: dict[str, Any]) -> None:
        self.steps += 1
        for key, value in out.items():
            if key in SCORES:
                self.scores.setdefault(key, []).append(value)
            elif key in LATEST:
                self.latest[key] = value
            else:
                self.sums[key] = self.sums[key] + value if key in self.sums else value
                self.counts[key] = self.counts.get(key, 0) + 1

    def state_dict(self) -> dict[str, Any]:
        """The window so far (tensors and plain values), so that a run resumed between two
        log steps logs the same numbers as one that was never stopped."""
        return {
            "steps": self.steps,
            "sums": {k: _encode(k, v) for k, v in self.sums.items()},
            "counts": dict(self.counts),
            "scores": {k: list(v) for k, v in self.scores.items()},
            "latest": {k: _encode(k, v) for k, v in self.latest.items()},
        }

    def load_state_dict(self, state: dict[str, Any], device: torch.device | None = None) -> None:
        """Restore :meth:`state_dict`, its tensors moved to ``device``."""

        def to(value: Any) -> Any:
            return value.to(device) if device is not None and torch.is_tensor(value) else value

        self.steps = int(state["steps"])
        self.sums = {k: _decode(v, to) for k, v in state["sums"].items()}
        self.counts = {k: int(v) for k, v in state["counts"].items()}
        self.scores = {k: [to(t) for t in v] for k, v in state["scores"].items()}
        self.latest = {k: _decode(v, to) for k, v in state["latest"].items()}

    def flush(self) -> dict[str, Any]:
        """Python numbers of the window (then empties it)."""
        rec: dict[str, Any] = {"window_steps": self.steps}
        # Under torchrun every number covers all ranks: sums are summed, scores gathered.
        world = world_size()
        # The mean over the steps that computed the loss; a method's own terms
        # (loss_adv, ...) follow the same rule as the S4GAN ones.
        extra = sorted(k for k in self.sums if k.startswith("loss_") and k not in LOSSES)
        for key in (*LOSSES, *extra):
            if key in self.sums:
                rec[key] = float(all_reduce_sum(self.sums[key].float())) / (
                    self.counts[key] * world
                )
        if "stats" in self.sums:
            stats = self.sums["stats"]
            summed = (all_reduce_sum(getattr(stats, f.name)) for f in fields(stats))
            rec.update(PseudoLabelStats(*summed).to_log("st"))
        for key, value in self.sums.items():  # other counts: summed, per class as lists
            if key.startswith("st_") and torch.is_tensor(value):
                total = all_reduce_sum(value)
                rec[key] = total.tolist() if total.dim() else int(total)
        for key, (num, den) in RATIOS.items():
            if num in rec and den in rec:
                # None, not NaN, when nothing was kept: there is no accuracy to report.
                rec[key] = rec[num] / rec[den] if rec[den] else None
        if "gate_images_passed" in self.sums:  # images whose score passed the image gate
            rec["gate_images_passed"] = int(all_reduce_sum(self.sums["gate_images_passed"]))
            rec["gate_images_total"] = int(self.sums["gate_images_total"]) * world
        for key, values in self.scores.items():
            scores = all_gather_cat(torch.cat(values).float())
            q = torch.quantile(scores, torch.tensor([0.1, 0.5, 0.9], device=scores.device)).tolist()
            rec[f"{key}_mean"] = float(scores.mean())
            rec.update({f"{key}_p10": q[0], f"{key}_p50": q[1], f"{key}_p90": q[2]})
        for key, value in self.latest.items():
            if value is not None:
                rec[key] = float(value)
        self.__init__()  # type: ignore[misc]
        return rec


_STATS = "__pseudo_label_stats__"


def _encode(key: str, value: Any) -> Any:
    if isinstance(value, PseudoLabelStats):
        return {_STATS: {f.name: getattr(value, f.name) for f in fields(value)}}
    if value is None or torch.is_tensor(value) or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"the log window cannot save {key!r}, a {type(value).__name__}: step logs hold "
        "tensors, numbers or PseudoLabelStats"
    )


def _decode(value: Any, to: Any) -> Any:
    if isinstance(value, dict) and _STATS in value:
        return PseudoLabelStats(**{k: to(v) for k, v in value[_STATS].items()})
    return to(value)


def nonfinite_keys(record: dict[str, Any]) -> list[str]:
    """Keys of ``record`` whose float value is NaN or infinite."""
    return [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
