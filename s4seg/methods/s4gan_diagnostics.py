"""Does the discriminator's score track how right a prediction is?

S4GAN's image gate trusts the discriminator's probability D(fake) as a verdict on a
prediction's quality. A discriminator shown one-hot ground truth ("real") against
softmax predictions ("fake") can win on softness alone: a one-hot map has zero
entropy and a prediction never does. Its score then ranks predictions by how sharp
they are, not by how right. :func:`discriminator_diagnostics` measures both on
held-out labelled images, as ROC AUCs of the per-image D(fake) score:

* ``d_auc_accuracy``: does a higher score mean a more accurate prediction?
* ``d_auc_entropy``: does a higher score mean a sharper (lower-entropy) prediction?

0.5 is "no relation", 1.0 a perfect ranking. High ``d_auc_entropy`` with
``d_auc_accuracy`` near 0.5 is a discriminator that judges softness
(:class:`s4seg.doctor.monitors.DiscriminatorJudgesSoftness`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s4seg.filters.entropy import pixel_entropy
from s4seg.metrics import rank_auc
from s4seg.models.discriminator_inputs import discriminator_input, one_hot_labels
from s4seg.models.inference import predict_logits

__all__ = ["discriminator_diagnostics"]


def _median_split(values: Tensor, *, high: bool) -> Tensor:
    """``values >= median`` (``high``) or ``values <= median``, median interpolated."""
    median = torch.quantile(values, 0.5)
    return values >= median if high else values <= median


def _mean(values: Tensor) -> float:
    return float(values.mean()) if values.numel() else math.nan


@torch.no_grad()
def discriminator_diagnostics(
    generator: nn.Module,
    discriminator: nn.Module,
    loader: Iterable[dict[str, Tensor]],
    *,
    num_classes: int,
    ignore_index: int = 255,
    device: torch.device | str,
    max_batches: int | None = None,
    fake_transform: Callable[[Tensor], Tensor] | None = None,
    background_index: int | None = 0,
    tile: int | None = None,
) -> dict[str, float]:
    """Whether the discriminator's score ranks predictions by correctness or by softness.

    For every image of the held-out labelled batches: the generator's softmax
    ``probs`` (logits of another size than the mask are upsampled bilinearly, as the
    generator does), the discriminator's probability ``D(fake)`` on
    ``[fake_transform(probs) ‖ image]`` and ``D(real)`` on ``[one-hot mask ‖ image]``,
    the pixel accuracy of ``probs.argmax`` over valid pixels and over object pixels
    (valid and not ``background_index``), and the mean entropy (nats) over valid
    pixels of the class maps D sees as fake (``fake_transform(probs)``, or ``probs``):
    that is the softness D could judge.

    AUCs need two groups, so each number is split at its median over the images:
    ``d_auc_accuracy`` asks whether D(fake) ranks the images at or above the median
    accuracy above the others, i.e. "does a higher D score mean a better prediction",
    which is what a gate on D(fake) assumes. ``d_auc_entropy`` asks the same of the
    images at or below the median entropy (the sharper ones). A split at the median
    adapts to the model's current quality; a fixed accuracy bar would put every image
    on one side early or late in training. When every image has the same value the
    split has one side only and the AUC is NaN (there is nothing to rank).

    Images without a valid pixel are skipped. Both modules are put in eval mode (no
    dropout, BatchNorm running statistics) and their training modes restored after.

    Args:
        generator: the segmentation model, images -> logits (B, C, h, w).
        discriminator: images -> ``(logit, features)``, e.g.
            :class:`~s4seg.models.FMDiscriminator`; only the logit is read.
        loader: held-out labelled batches, dicts with ``"image"`` and ``"mask"``.
        num_classes: C.
        ignore_index: mask value of pixels without ground truth.
        device: where the models run.
        max_batches: read at most this many batches (None: all).
        fake_transform: what the training applies to the softmax before D sees it
            (e.g. ``lambda p: sharpen(p, 0.5)``), so D is judged on its own inputs.
        background_index: class that is not an object (None: every class is an
            object, and the object accuracy is the pixel accuracy).
        tile: tiled (sliding-window) inference with this tile side (see
            :func:`s4seg.models.inference.predict_logits`); None runs whole images.

    Returns:
        ``d_auc_accuracy``, ``d_auc_entropy``, ``d_auc_object_accuracy`` (the
        accuracy split over the images that have object pixels), ``d_auc_real_fake``
        (how well D(real) > D(fake) separates ground truth from predictions, over all
        pairs), and, prefixed ``diag_`` so that evaluation records never mix them
        up with the training log window's D scores: ``diag_d_real_mean``,
        ``diag_d_fake_mean``, ``diag_accuracy_mean``, ``diag_object_accuracy_mean``
        (means of the per-image values), ``diag_entropy_mean`` and ``diag_images``
        (images scored). Means and AUCs are NaN without images.

    Shape:
        loader batches: image (B, 3, H, W); mask (B, H, W) integer class indices.

    Raises:
        TypeError: a batch is not a dict with ``"image"`` and ``"mask"``.
        ValueError: ``max_batches`` < 1, a mask value outside [0, C) that is not
            ``ignore_index``, or a generator with another number of classes.
    """
    if max_batches is not None and (isinstance(max_batches, bool) or max_batches < 1):
        raise ValueError(f"max_batches must be None or an int >= 1, got {max_batches!r}")
    device = torch.device(device)
    modes = (generator.training, discriminator.training)
    generator.eval()
    discriminator.eval()
    columns: dict[str, list[Tensor]] = {
        k: [] for k in ("d_fake", "d_real", "acc", "obj_acc", "entropy")
    }
    try:
        # islice: the loader is not asked for a batch beyond max_batches.
        for batch in itertools.islice(loader, max_batches):
            for key, value in _score_batch(
                generator,
                discriminator,
                batch,
                num_classes=num_classes,
                ignore_index=ignore_index,
                device=device,
                fake_transform=fake_transform,
                background_index=background_index,
                tile=tile,
            ).items():
                columns[key].append(value)
    finally:
        generator.train(modes[0])
        discriminator.train(modes[1])
    # One copy to the host at the end: a diagnostic, not a training step.
    c = {
        k: torch.cat(v).to("cpu", torch.float64) if v else torch.zeros(0)
        for k, v in columns.items()
    }
    d_fake, acc, obj_acc = c["d_fake"], c["acc"], c["obj_acc"]
    n = d_fake.numel()
    has_obj = ~torch.isnan(obj_acc)
    out = {
        "d_auc_accuracy": rank_auc(d_fake, _median_split(acc, high=True)) if n else math.nan,
        "d_auc_entropy": rank_auc(d_fake, _median_split(c["entropy"], high=False))
        if n
        else math.nan,
        "d_auc_object_accuracy": rank_auc(
            d_fake[has_obj], _median_split(obj_acc[has_obj], high=True)
        )
        if bool(has_obj.any())
        else math.nan,
        "d_auc_real_fake": rank_auc(
            torch.cat([c["d_real"], d_fake]),
            torch.cat([torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)]),
        ),
        "diag_d_real_mean": _mean(c["d_real"]),
        "diag_d_fake_mean": _mean(d_fake),
        "diag_accuracy_mean": _mean(acc),
        "diag_object_accuracy_mean": _mean(obj_acc[has_obj]),
        "diag_entropy_mean": _mean(c["entropy"]),
        "diag_images": float(n),
    }
    return out


def _score_batch(
    generator: nn.Module,
    discriminator: nn.Module,
    batch: Any,
    *,
    num_classes: int,
    ignore_index: int,
    device: torch.device,
    fake_transform: Callable[[Tensor], Tensor] | None,
    background_index: int | None,
    tile: int | None,
) -> dict[str, Tensor]:
    """Per-image columns of one batch, restricted to images with a valid pixel."""
    if not isinstance(batch, dict) or "image" not in batch or "mask" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise TypeError(
            f"the loader must yield labelled batches, dicts with 'image' and 'mask', got {keys}; "
            "pass the validation loader"
        )
    image = batch["image"].to(device)
    mask = batch["mask"].to(device)
    real = one_hot_labels(mask, num_classes, ignore_index)  # also validates the mask
    logits = predict_logits(generator, image, tile).float()
    if logits.shape[1] != num_classes:
        raise ValueError(
            f"the generator returns {logits.shape[1]} classes, num_classes is {num_classes}; "
            f"pass num_classes={logits.shape[1]}"
        )
    if logits.shape[-2:] != mask.shape[-2:]:
        logits = F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=False)
    probs = logits.softmax(dim=1)
    fake = fake_transform(probs) if fake_transform is not None else probs
    d_fake = torch.sigmoid(discriminator(discriminator_input(fake, image, image.shape[1]))[0])
    d_real = torch.sigmoid(discriminator(discriminator_input(real, image, image.shape[1]))[0])

    valid = mask != ignore_index
    obj = valid if background_index is None else valid & (mask != background_index)
    correct = (probs.argmax(dim=1) == mask) & valid
    n_valid = valid.flatten(1).sum(1)
    n_obj = obj.flatten(1).sum(1)
    acc = correct.flatten(1).sum(1) / n_valid.clamp_min(1)
    # NaN marks "no object pixel", so the object AUC and mean leave the image out.
    obj_acc = torch.where(
        n_obj > 0,
        (correct & obj).flatten(1).sum(1) / n_obj.clamp_min(1),
        torch.full_like(acc, math.nan),
    )
    # The entropy the filters compute, of the maps D is shown (p = softmax(log p)).
    ent = pixel_entropy(fake.clamp_min(torch.finfo(fake.dtype).tiny).log())
    entropy = (ent * valid).flatten(1).sum(1) / n_valid.clamp_min(1)
    keep = n_valid > 0
    return {
        "d_fake": d_fake.float()[keep],
        "d_real": d_real.float()[keep],
        "acc": acc[keep],
        "obj_acc": obj_acc[keep],
        "entropy": entropy[keep],
    }
