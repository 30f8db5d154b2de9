"""Learning-rate factor as a pure function of the step (nothing to save on resume)."""

from __future__ import annotations

__all__ = ["poly_lr_factor"]


def poly_lr_factor(step: int, max_steps: int, power: float = 0.9, warmup_steps: int = 0) -> float:
    """DeepLab's poly decay ``(1 - step / max_steps) ** power`` after a linear warm-up.

    Args:
        step: the current step, counted from 0.
        max_steps: the step at which the factor reaches 0.
        power: the poly exponent (0.9 in DeepLab and S4GAN).
        warmup_steps: steps over which the factor rises linearly from
            ``1 / warmup_steps`` to the poly value.

    Returns:
        The multiplier of every parameter group's base learning rate.
    """
    if max_steps <= 0:
        raise ValueError(f"max_steps must be > 0, got {max_steps}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    factor = max(0.0, 1.0 - step / max_steps) ** power
    if step < warmup_steps:
        factor *= (step + 1) / warmup_steps
    return factor
