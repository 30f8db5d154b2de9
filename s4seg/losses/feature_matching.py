"""Feature-matching loss between discriminator features of real and predicted maps."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["FeatureMatchingLoss"]


class FeatureMatchingLoss(nn.Module):
    """Mean over features of ``|batch-mean(f_real) - batch-mean(f_fake)|``.

    The generator's adversarial term L_fm of S4GAN (Mittal, Tatarchenko and Brox,
    "Semi-Supervised Semantic Segmentation with High- and Low-level Consistency",
    TPAMI 2019), after feature matching of Salimans et al. 2016: the generator makes
    the average discriminator feature of its predictions match that of ground truth,
    instead of fooling the discriminator image by image.

    Gradients reach both inputs. S4GAN trains only the generator with this term:
    freeze the discriminator's parameters for the generator step, or detach
    ``real_features``.
    """

    def forward(self, real_features: Tensor, fake_features: Tensor) -> Tensor:
        """The loss as a 0-d tensor.

        Shape:
            real_features: (B, D). fake_features: (B', D); the batch sizes may differ.
        """
        for name, f in (("real_features", real_features), ("fake_features", fake_features)):
            if f.dim() != 2 or f.shape[0] == 0:
                raise ValueError(
                    f"{name} must be (B, D) with B >= 1 (the discriminator's pooled features), "
                    f"got shape {tuple(f.shape)}"
                )
        if real_features.shape[1] != fake_features.shape[1]:
            raise ValueError(
                f"real and fake features differ in width: {real_features.shape[1]} vs "
                f"{fake_features.shape[1]}; take both from the same discriminator layer"
            )
        return (real_features.mean(dim=0) - fake_features.mean(dim=0)).abs().mean()
