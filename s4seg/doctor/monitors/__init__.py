"""Monitors: pure checks of a run's log records that name a failure, its cause and a fix.

Each monitor is a small frozen dataclass of limits with a ``check(history)`` method
that reads the list of log records (:mod:`s4seg.doctor.records`) and returns
:class:`Finding` s with remedies (:mod:`s4seg.doctor.remedies`). The monitors are
grouped by the subsystem they watch: :mod:`~s4seg.doctor.monitors.self_training`,
:mod:`~s4seg.doctor.monitors.discriminator`, :mod:`~s4seg.doctor.monitors.validation`
and :mod:`~s4seg.doctor.monitors.optimisation`. The same checks serve the live
:class:`s4seg.doctor.Doctor` callback and the offline report.

A finding's ``first_step`` is the step of the first record showing it, so that a
problem that goes on keeps its identity (:attr:`Finding.key`) while it grows.

The default limits come from practice, most of them from the field report of a
failed S4GAN run (docs/concepts/diagnosing.md): 0 images kept for 500 steps,
loss_d < 0.05, val mIoU falling from its best, a train-val mIoU gap > 0.15.
:class:`DiscriminatorJudgesSoftness` reads the ``d_auc_*`` numbers that
:func:`s4seg.methods.s4gan_diagnostics.discriminator_diagnostics` adds to eval records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol, runtime_checkable

from s4seg.doctor.findings import Finding
from s4seg.doctor.monitors.discriminator import (
    DiscriminatorCollapsed,
    DiscriminatorDominant,
    DiscriminatorJudgesSoftness,
)
from s4seg.doctor.monitors.optimisation import ExplodingLoss, LearningRateExhausted, NonFiniteLoss
from s4seg.doctor.monitors.self_training import (
    SelfTrainingCollapse,
    SelfTrainingFlooded,
    SelfTrainingStarved,
)
from s4seg.doctor.monitors.validation import Overfitting, ValMiouFalling
from s4seg.doctor.records import Record

__all__ = [
    "DiscriminatorCollapsed",
    "DiscriminatorDominant",
    "DiscriminatorJudgesSoftness",
    "ExplodingLoss",
    "LearningRateExhausted",
    "Monitor",
    "NonFiniteLoss",
    "Overfitting",
    "SelfTrainingCollapse",
    "SelfTrainingFlooded",
    "SelfTrainingStarved",
    "ValMiouFalling",
    "default_monitors",
    "run_monitors",
]


@runtime_checkable
class Monitor(Protocol):
    """A check over the log records of a run."""

    code: ClassVar[str]

    def check(self, history: Sequence[Record]) -> list[Finding]:
        """Findings in ``history`` (pure: same records, same findings)."""
        ...


def default_monitors(duration_steps: int = 500) -> list[Monitor]:
    """Every monitor with its default limits; ``duration_steps`` scales the step-based ones.

    Args:
        duration_steps: steps of starvation or flooding that make a finding (500 in
            practice); discriminator dominance must last a fifth of it and a
            collapse twice it. Scale it down for short runs and tests;
            :func:`s4seg.doctor.records.auto_duration_steps` sizes it from a run's own
            length and log interval (what ``s4seg report`` and :class:`Doctor` do by
            default).
    """
    if duration_steps < 1:
        raise ValueError(f"duration_steps must be >= 1, got {duration_steps}")
    return [
        NonFiniteLoss(),
        ExplodingLoss(),
        SelfTrainingStarved(steps=duration_steps),
        SelfTrainingFlooded(steps=duration_steps),
        DiscriminatorDominant(min_steps=max(1, duration_steps // 5)),
        DiscriminatorCollapsed(steps=2 * duration_steps),
        DiscriminatorJudgesSoftness(),
        ValMiouFalling(),
        SelfTrainingCollapse(),
        Overfitting(),
        LearningRateExhausted(),
    ]


def run_monitors(history: Sequence[Record], monitors: Sequence[Monitor]) -> list[Finding]:
    """All findings of ``monitors`` on ``history``, ordered by first step."""
    findings = [f for m in monitors for f in m.check(history)]
    return sorted(findings, key=lambda f: (f.first_step, f.code))
