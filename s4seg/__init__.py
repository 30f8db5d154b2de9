"""s4seg: semi-supervised semantic segmentation (S4GAN and friends) as small, tested parts.

Everything a user script needs is importable from here; the submodules say where each
part lives (``s4seg.models.discriminator``, ``s4seg.filters``, ...).
"""

from __future__ import annotations

from s4seg.data.views import StrongView, WeakStrongViews, WeakView
from s4seg.callbacks import (
    Callback,
    Checkpointer,
    ConfigSaver,
    JSONLLogger,
    ProgressBar,
    TensorBoardLogger,
    default_callbacks,
)
from s4seg.training.checkpoint import load_checkpoint, save_atomic
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
from s4seg.methods.s4gan_diagnostics import discriminator_diagnostics, rank_auc
from s4seg.filters import (
    AndFilter,
    ClasswiseThreshold,
    ConfidenceMapFilter,
    DiscriminatorGate,
    EntropyPercentileFilter,
    FilterDecision,
    PixelConfidenceFilter,
    PseudoLabelFilter,
    SelfAdaptiveThreshold,
    TargetRateGate,
    filter_stats,
)
from s4seg.models.inference import predict_logits, sliding_window_logits
from s4seg.losses import (
    DiscriminatorLoss,
    FeatureMatchingLoss,
    PixelAdversarialLoss,
    SelfTrainingLoss,
    SupervisedCrossEntropy,
)
from s4seg.training.lr_schedule import poly_lr_factor
from s4seg.methods import S4GAN, AdvSemiSeg, FixMatch, MeanTeacher, Method, Supervised
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
    PixelDiscriminator,
    SegmentationGenerator,
    TimmEncoder,
    create_generator,
    deeplabv2_resnet101,
    discriminator_input,
    one_hot_labels,
    scale_images,
    sharpen,
    soften_one_hot,
)
from s4seg.ops import PseudoLabelStats, confidence_masked_cross_entropy
from s4seg.schedules import Constant, Cosine, Linear, Schedule, Step, as_schedule
from s4seg.seeding import seed_everything
from s4seg.methods.teacher import EMATeacher
from s4seg.training.trainer import Trainer, TrainerConfig

__version__ = "0.1.0"

__all__ = [
    "ASPP",
    "S4GAN",
    "AdvSemiSeg",
    "AndFilter",
    "Augmented",
    "Callback",
    "Checkpointer",
    "ClasswiseThreshold",
    "Compose",
    "ConfidenceMapFilter",
    "ConfigSaver",
    "Constant",
    "Cosine",
    "DeepLabV2ResNet",
    "DiscriminatorGate",
    "DiscriminatorLoss",
    "EMATeacher",
    "EntropyPercentileFilter",
    "FMDiscriminator",
    "FeatureMatchingLoss",
    "FilterDecision",
    "FixMatch",
    "FolderDataset",
    "InfiniteLoader",
    "JSONLLogger",
    "Linear",
    "MeanTeacher",
    "Method",
    "Normalize",
    "PixelAdversarialLoss",
    "PixelConfidenceFilter",
    "PixelDiscriminator",
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
    "StrongView",
    "Supervised",
    "SupervisedCrossEntropy",
    "SyntheticShapes",
    "TargetRateGate",
    "TensorBoardLogger",
    "TimmEncoder",
    "Trainer",
    "TrainerConfig",
    "Unlabelled",
    "WeakStrongViews",
    "WeakView",
    "__version__",
    "as_schedule",
    "confidence_masked_cross_entropy",
    "confusion_matrix",
    "create_generator",
    "deeplabv2_resnet101",
    "default_callbacks",
    "discriminator_diagnostics",
    "discriminator_input",
    "filter_stats",
    "iou_per_class",
    "load_checkpoint",
    "mean_iou",
    "one_hot_labels",
    "pixel_accuracy",
    "poly_lr_factor",
    "predict_logits",
    "rank_auc",
    "save_atomic",
    "scale_images",
    "seed_everything",
    "sharpen",
    "sliding_window_logits",
    "soften_one_hot",
    "split_dataset",
    "split_indices",
]
