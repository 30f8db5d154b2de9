"""Loss terms, one small module per file: S4GAN's (Mittal et al., TPAMI 2019) and
AdvSemiSeg's pixel-level adversarial loss (Hung et al., BMVC 2018)."""

from s4seg.losses.adversarial import PixelAdversarialLoss, masked_bce_with_logits
from s4seg.losses.cross_entropy import SupervisedCrossEntropy
from s4seg.losses.discriminator import DiscriminatorLoss
from s4seg.losses.feature_matching import FeatureMatchingLoss
from s4seg.losses.self_training import SelfTrainingLoss

__all__ = [
    "DiscriminatorLoss",
    "FeatureMatchingLoss",
    "PixelAdversarialLoss",
    "SelfTrainingLoss",
    "SupervisedCrossEntropy",
    "masked_bce_with_logits",
]
