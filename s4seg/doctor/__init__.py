"""The training doctor: catch the ways S4GAN runs fail, name the cause, propose the fix.

* :mod:`~s4seg.doctor.monitors`: pure checks ``check(history) -> list[Finding]``
  over a run's log records, each with configurable limits.
* :class:`Doctor`: a callback that runs them live, reports each finding once and
  can stop the run or roll back to the best checkpoint.
* :func:`write_report` (``s4seg report RUN_DIR``): a markdown report with plots,
  for finished and running runs.

See docs/concepts/diagnosing.md for every finding with an example and its remedy.
"""

from __future__ import annotations

from s4seg.doctor.callback import Doctor
from s4seg.doctor.findings import Finding
from s4seg.doctor.monitors import (
    DiscriminatorCollapsed,
    DiscriminatorDominant,
    DiscriminatorJudgesSoftness,
    ExplodingLoss,
    LearningRateExhausted,
    Monitor,
    NonFiniteLoss,
    Overfitting,
    SelfTrainingCollapse,
    SelfTrainingFlooded,
    SelfTrainingStarved,
    ValMiouFalling,
    default_monitors,
    run_monitors,
)
from s4seg.doctor.report import load_run, write_report

__all__ = [
    "DiscriminatorCollapsed",
    "DiscriminatorDominant",
    "DiscriminatorJudgesSoftness",
    "Doctor",
    "ExplodingLoss",
    "Finding",
    "LearningRateExhausted",
    "Monitor",
    "NonFiniteLoss",
    "Overfitting",
    "SelfTrainingCollapse",
    "SelfTrainingFlooded",
    "SelfTrainingStarved",
    "ValMiouFalling",
    "default_monitors",
    "load_run",
    "run_monitors",
    "write_report",
]
