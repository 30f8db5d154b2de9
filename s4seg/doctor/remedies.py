"""Remedies the findings propose: s4seg settings, spelled as code, with why.

Each remedy is ``"Setting(...): why"``; the code before the colon names a real s4seg
class or call with the run's own numbers (a test evaluates every one against the
package, so a rename cannot leave the doctor recommending a setting that is gone).
"""

from __future__ import annotations

from collections.abc import Sequence

from s4seg.doctor.records import (
    Record,
    best_eval,
    eval_records,
    fixed,
    method_class,
    method_parts,
    method_settings,
    run_config,
    short,
)

__all__ = [
    "class_count",
    "discriminator_remedies",
    "gate_repr",
    "pixel_starved_remedies",
    "restore_remedy",
]


def restore_remedy(history: Sequence[Record], since: int | None = None) -> list[str]:
    """Restoring the best checkpoint; with ``since``, only if it predates the problem."""
    best = best_eval(history)
    if best is None:
        return []
    if since is not None and best["step"] >= since:
        # best.pt holds the problem itself (a discriminator that already wins): not a fix.
        return []
    when = "" if since is None else ", saved before this began"
    return [
        f"trainer.restore_best(): reload the weights of the best val mIoU ({best['miou']:.4f} "
        f"at step {best['step']}{when}) and continue with the settings above; "
        f"Doctor(rollback=True) does this during the run"
    ]


def discriminator_remedies(history: Sequence[Record], since: int | None = None) -> list[str]:
    """Settings that slow down a discriminator that wins, and gates that survive it."""
    cfg, method = run_config(history), method_settings(history)
    owner = method_class(history)
    lr_g = float(cfg.get("lr_g", 2.5e-4))
    out = []
    if "lr_d" in method:
        lr_d = float(method["lr_d"])
        target = 0.1 * lr_g if lr_d > 0.1 * lr_g * (1 + 1e-9) else 0.1 * lr_d
        out.append(
            f"{owner}(lr_d={short(target)}): slow the discriminator down (now lr_d={short(lr_d)}, "
            f"lr_g={short(lr_g)}; about 0.1x the generator's lr or less)"
        )
    else:
        out.append(
            f"{owner}(lr_d={short(0.1 * lr_g)}): train the discriminator at about 0.1x the "
            f"generator's lr"
        )
    k = int(method.get("d_update_interval", 1))
    out.append(
        f"{owner}(d_update_interval={2 * k}): update the discriminator every "
        f"{2 * k} steps instead of every {'step' if k == 1 else f'{k} steps'}"
    )
    s = float(method.get("label_smoothing", 0.0))
    if s < 0.3:
        out.append(
            f"{owner}(label_smoothing={round(min(s + 0.1, 0.3), 2)}): one-sided smoothing "
            f"of the real target, so ground truth cannot win on its sharpness alone"
        )
    out += [
        "TargetRateGate(rate=0.5): keep the top half of each batch by D score; a rank "
        "cannot starve or flood, whatever the discriminator's calibration",
        "AndFilter(TargetRateGate(rate=0.5), PixelConfidenceFilter(0.9)): the same, and only "
        "the confident pixels of the kept images",
    ]
    return out + restore_remedy(history, since)


def class_count(history: Sequence[Record]) -> str:
    """C from the per-class IoU of an eval record, else the letter C."""
    for e in reversed(eval_records(history)):
        if isinstance(e.get("iou"), list) and e["iou"]:
            return str(len(e["iou"]))
    return "C"


def pixel_starved_remedies(history: Sequence[Record], threshold: float | None) -> list[str]:
    lower = 0.7 if threshold is None else max(0.5, round(threshold - 0.1, 2))
    c = class_count(history)
    return [
        f"PixelConfidenceFilter({lower}): a lower bar on max softmax probability "
        f"(now {fixed(threshold, 2)})",
        f"SelfAdaptiveThreshold(num_classes={c}): FreeMatch's threshold follows the model's "
        f"own mean confidence, low while it is unsure",
        f"ClasswiseThreshold(num_classes={c}): FlexMatch's per-class thresholds, lower for "
        f"classes still being learnt",
        "TargetRateFilter(rate=0.2): keep the most confident 20% of pixels of each "
        "batch; cannot starve",
    ]


def gate_repr(history: Sequence[Record]) -> str:
    """The run's image gate as a constructor call, else S4GAN's default gate."""
    text = str(method_parts(history).get("pseudo_filter") or "")
    if "Gate(" in text and not text.startswith("AndFilter("):
        return text
    return "DiscriminatorGate(0.2)"
