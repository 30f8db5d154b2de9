"""Loss terms of S4GAN, one small module per file (Mittal et al., TPAMI 2019)."""

from s4seg.losses.cross_entropy import SupervisedCrossEntropy
from s4seg.losses.discriminator import DiscriminatorLoss
from s4seg.losses.feature_matching import FeatureMatchingLoss
from s4seg.losses.self_training import SelfTrainingLoss

__all__ = [
    "DiscriminatorLoss",
    "FeatureMatchingLoss",
    "SelfTrainingLoss",
    "SupervisedCrossEntropy",
]
