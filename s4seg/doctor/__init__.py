"""The training doctor: catch the ways S4GAN runs fail, name the cause, propose the fix.

* :mod:`~s4seg.doctor.monitors`: pure checks ``check(history) -> list[Finding]``
  over a run's log records, each with configurable limits.
* :class:`Doctor`: a callback that runs them live, reports each finding once and
  can stop the run or roll back to the best checkpoint.
* :func:`write_report` (``s4seg report RUN_DIR``): a markdown report with plots,
  for finished and running runs; :func:`write_reports` for a folder of runs, each
  reported and compared.

See docs/concepts/diagnosing.md for every finding with an example and its remedy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Loaded on first use: `s4seg report` reads logs without torch; only the live Doctor
# callback needs the training loop.
_NAMES = {
    "DiscriminatorCollapsed": "s4seg.doctor.monitors",
    "DiscriminatorDominant": "s4seg.doctor.monitors",
    "DiscriminatorJudgesSoftness": "s4seg.doctor.monitors",
    "Doctor": "s4seg.doctor.callback",
    "ExplodingLoss": "s4seg.doctor.monitors",
    "Finding": "s4seg.doctor.findings",
    "LearningRateExhausted": "s4seg.doctor.monitors",
    "Monitor": "s4seg.doctor.monitors",
    "NonFiniteLoss": "s4seg.doctor.monitors",
    "Overfitting": "s4seg.doctor.monitors",
    "SelfTrainingCollapse": "s4seg.doctor.monitors",
    "SelfTrainingFlooded": "s4seg.doctor.monitors",
    "SelfTrainingStarved": "s4seg.doctor.monitors",
    "ValMiouFalling": "s4seg.doctor.monitors",
    "default_monitors": "s4seg.doctor.monitors",
    "load_run": "s4seg.doctor.report",
    "run_monitors": "s4seg.doctor.monitors",
    "write_report": "s4seg.doctor.report",
    "write_reports": "s4seg.doctor.report",
}

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
    "write_reports",
]

if TYPE_CHECKING:
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
    from s4seg.doctor.report import load_run, write_report, write_reports


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 's4seg.doctor' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
