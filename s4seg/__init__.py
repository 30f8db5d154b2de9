"""s4seg: semi-supervised semantic segmentation (S4GAN and friends) as small, tested parts.

Everything a user script needs is importable from here; the submodules say where each
part lives (``s4seg.models.discriminator``, ``s4seg.filters``, ...).
"""

from __future__ import annotations

from s4seg.callbacks import (
    Callback,
    Checkpointer,
    ConfigSaver,
    JSONLLogger,
    ProgressBar,
    TensorBoardLogger,
    default_callbacks,
)
from s4seg.checkpoint import load_checkpoint, save_atomic
from s4seg.data import (
    Augmented,
    Compose,
    FolderDataset,
    InfiniteLoader,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    SyntheticShapes,
    Unlabelled,
    split_dataset,
    split_indices,
)
from s4seg.filters import (
    AndFilter,
    ClasswiseThreshold,
    DiscriminatorGate,
    FilterDecision,
    PixelConfidenceFilter,
    PseudoLabelFilter,
    SelfAdaptiveThreshold,
    TargetRateGate,
    filter_stats,
)
from s4seg.inference import predict_logits, sliding_window_logits
from s4seg.losses import (
    DiscriminatorLoss,
    FeatureMatchingLoss,
    SelfTrainingLoss,
    SupervisedCrossEntropy,
)
from s4seg.lr_schedule import poly_lr_factor
from s4seg.metrics import (
    SegmentationMetric,
    confusion_matrix,
    iou_per_class,
    mean_iou,
    pixel_accuracy,
)
from s4seg.models import (
    ASPP,
    DeepLabV2ResNet,
    FMDiscriminator,
    SegmentationGenerator,
    TimmEncoder,
    create_generator,
    deeplabv2_resnet101,
    discriminator_input,
    one_hot_labels,
    scale_images,
)
from s4seg.ops import PseudoLabelStats, confidence_masked_cross_entropy
from s4seg.schedules import Constant, Cosine, Linear, Schedule, Step, as_schedule
from s4seg.seeding import seed_everything
from s4seg.trainer import Trainer, TrainerConfig

__version__ = "0.1.0"

__all__ = [
    "ASPP",
    "AndFilter",
    "Augmented",
    "Callback",
    "Checkpointer",
    "ClasswiseThreshold",
    "Compose",
    "ConfigSaver",
    "Constant",
    "Cosine",
    "DeepLabV2ResNet",
    "DiscriminatorGate",
    "DiscriminatorLoss",
    "FMDiscriminator",
    "FeatureMatchingLoss",
    "FilterDecision",
    "FolderDataset",
    "InfiniteLoader",
    "JSONLLogger",
    "Linear",
    "Normalize",
    "PixelConfidenceFilter",
    "ProgressBar",
    "PseudoLabelFilter",
    "PseudoLabelStats",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomScale",
    "Schedule",
    "SegmentationGenerator",
    "SegmentationMetric",
    "SelfAdaptiveThreshold",
    "SelfTrainingLoss",
    "Step",
    "SupervisedCrossEntropy",
    "SyntheticShapes",
    "TargetRateGate",
    "TensorBoardLogger",
    "TimmEncoder",
    "Trainer",
    "TrainerConfig",
    "Unlabelled",
    "__version__",
    "as_schedule",
    "confidence_masked_cross_entropy",
    "confusion_matrix",
    "create_generator",
    "deeplabv2_resnet101",
    "default_callbacks",
    "discriminator_input",
    "filter_stats",
    "iou_per_class",
    "load_checkpoint",
    "mean_iou",
    "one_hot_labels",
    "pixel_accuracy",
    "poly_lr_factor",
    "predict_logits",
    "save_atomic",
    "scale_images",
    "seed_everything",
    "sliding_window_logits",
    "split_dataset",
    "split_indices",
]
