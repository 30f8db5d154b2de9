"""s4seg: semi-supervised semantic segmentation (S4GAN and friends) as small, tested parts.

The names a training script needs are here; every other part lives in the subpackage
named for what it is:

=========================  ==============================================================
``s4seg.data``             the built-in procedural dataset, folders of images and masks,
                           splits, transforms, weak/strong views and CutMix, loaders
``s4seg.models``           generator on any timm backbone (DeepLabV2/V3+ heads), the
                           discriminators and what they are shown, inference
``s4seg.ops``              the fused confidence-masked cross-entropy and its reference
``s4seg.losses``           one module per loss term
``s4seg.schedules``        threshold schedules: ``Constant``, ``Linear``, ``Step``, ...
``s4seg.filters``          what may teach: image gates (``...Gate``), pixel filters
``s4seg.methods``          S4GAN, AdvSemiSeg, mean teacher, FixMatch on one loop
``s4seg.training``         the Trainer, its config, optimizers, checkpoints
``s4seg.callbacks``        logs, progress bar, checkpoints, the run's config
``s4seg.doctor``           monitors, findings with remedies, ``s4seg report``
``s4seg.metrics``          confusion matrix, IoU, mIoU, rank AUC
=========================  ==============================================================
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# Names resolve on first use (PEP 562), so that `import s4seg` and the `s4seg` command
# start without loading torch and timm; a script that touches s4seg.Trainer loads them.
_NAMES = {
    "S4GAN": "s4seg.methods",
    "AdvSemiSeg": "s4seg.methods",
    "FixMatch": "s4seg.methods",
    "MeanTeacher": "s4seg.methods",
    "Supervised": "s4seg.methods",
    "UniMatch": "s4seg.methods",
    "FolderDataset": "s4seg.data",
    "SyntheticShapes": "s4seg.data",
    "Trainer": "s4seg.training",
    "TrainerConfig": "s4seg.training",
    "create_generator": "s4seg.models",
    "default_callbacks": "s4seg.callbacks",
    "seed_everything": "s4seg.seeding",
}
_SUBPACKAGES = (
    "callbacks", "data", "doctor", "filters", "losses", "methods", "metrics", "models", "ops",
    "schedules", "training",
)  # fmt: skip

__all__ = [
    "S4GAN",
    "AdvSemiSeg",
    "FixMatch",
    "FolderDataset",
    "MeanTeacher",
    "Supervised",
    "SyntheticShapes",
    "Trainer",
    "TrainerConfig",
    "UniMatch",
    "__version__",
    "callbacks",
    "create_generator",
    "data",
    "default_callbacks",
    "doctor",
    "filters",
    "losses",
    "methods",
    "metrics",
    "models",
    "ops",
    "schedules",
    "seed_everything",
    "training",
]

if TYPE_CHECKING:
    from s4seg import (
        callbacks,
        data,
        doctor,
        filters,
        losses,
        methods,
        metrics,
        models,
        ops,
        schedules,
        training,
    )
    from s4seg.callbacks import default_callbacks
    from s4seg.data import FolderDataset, SyntheticShapes
    from s4seg.methods import S4GAN, AdvSemiSeg, FixMatch, MeanTeacher, Supervised, UniMatch
    from s4seg.models import create_generator
    from s4seg.seeding import seed_everything
    from s4seg.training import Trainer, TrainerConfig


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"s4seg.{name}")
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
        globals()[name] = value  # once loaded, a plain attribute
        return value
    raise AttributeError(f"module 's4seg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
