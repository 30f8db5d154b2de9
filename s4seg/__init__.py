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

__version__ = "0.2.0"

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
