"""Public functional API of the fused confidence-masked cross-entropy."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from s4seg.ops.reference import NORMALIZATIONS, confidence_masked_cross_entropy_reference
from s4seg.ops.stats import PseudoLabelStats

Backend = Literal["auto", "reference", "triton"]
ThresholdKind = Literal["auto", "scalar", "class", "image"]


def resolve_threshold_kind(threshold: Tensor, b: int, c: int, kind: str) -> str:
    if threshold.dim() == 0:
        return "scalar"
    if kind == "scalar":
        if threshold.numel() != 1:
            raise ValueError(f"a scalar threshold has 1 value, got shape {tuple(threshold.shape)}")
        return "scalar"
    if threshold.dim() != 1:
        raise ValueError(
            f"threshold must be a scalar, a (C,)=({c},) per-class or a (B,)=({b},) per-image "
            f"tensor; got shape {tuple(threshold.shape)}"
        )
    n = threshold.shape[0]
    if kind == "class" or (kind == "auto" and n == c and n != b):
        if n != c:
            raise ValueError(f"per-class threshold needs {c} values (one per class), got {n}")
        return "class"
    if kind == "image" or (kind == "auto" and n == b and n != c):
        if n != b:
            raise ValueError(f"per-image threshold needs {b} values (one per image), got {n}")
        return "image"
    if n == b == c:
        raise ValueError(
            f"threshold has {n} values and B == C == {n}: pass threshold_kind='class' or 'image'"
        )
    raise ValueError(
        f"threshold has {n} values, which matches neither C={c} classes nor B={b} images"
    )


def _check(
    logits: Tensor,
    threshold: Tensor,
    teacher_logits: Tensor | None,
    labels: Tensor | None,
    image_keep: Tensor | None,
    normalize: str,
    temperature: float,
) -> None:
    if logits.dim() != 4:
        raise ValueError(f"logits must be (B, C, H, W), got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be floating point, got {logits.dtype}")
    b, _, h, w = logits.shape
    if teacher_logits is not None and teacher_logits.shape != logits.shape:
        raise ValueError(
            f"teacher_logits shape {tuple(teacher_logits.shape)} != logits shape {tuple(logits.shape)}"
        )
    if labels is not None and tuple(labels.shape) != (b, h, w):
        raise ValueError(f"labels must be (B, H, W)=({b}, {h}, {w}), got {tuple(labels.shape)}")
    if image_keep is not None and tuple(image_keep.shape) != (b,):
        raise ValueError(f"image_keep must be (B,)=({b},), got {tuple(image_keep.shape)}")
    for name, t in (
        ("teacher_logits", teacher_logits),
        ("labels", labels),
        ("image_keep", image_keep),
    ):
        if t is not None and t.device != logits.device:
            raise ValueError(
                f"{name} is on {t.device} but logits are on {logits.device}; move it with .to()"
            )
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not torch.is_tensor(threshold):
        raise TypeError("threshold must be a tensor here")


def _use_triton(logits: Tensor, backend: str) -> bool:
    if backend == "reference":
        return False
    if backend == "triton":
        return True
    if backend != "auto":
        raise ValueError(f"backend must be 'auto', 'reference' or 'triton', got {backend!r}")
    if os.environ.get("S4SEG_DISABLE_TRITON") == "1":
        return False
    if not logits.is_cuda:
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def confidence_masked_cross_entropy(
    logits: Tensor,
    threshold: float | Tensor,
    *,
    teacher_logits: Tensor | None = None,
    labels: Tensor | None = None,
    image_keep: Tensor | None = None,
    ignore_index: int = 255,
    normalize: str = "selected",
    temperature: float = 1.0,
    threshold_kind: ThresholdKind = "auto",
    backend: Backend = "auto",
) -> tuple[Tensor, PseudoLabelStats]:
    """Cross-entropy on the confident pixels, with softmax, confidence, pseudo-label,
    mask and loss computed in one pass.

    Pseudo-labels and confidence come from ``teacher_logits`` (or ``logits``):
    ``p = softmax(teacher / temperature)``, pseudo-label ``argmax`` (ties go to
    the first maximum), confidence ``max p``. When ``labels`` are given they are
    the targets and the confidence only masks. A pixel is selected when
    ``confidence >= threshold`` and ``image_keep`` and ``target != ignore_index``.

    Args:
        logits: student logits; the only input that receives a gradient.
        threshold: a float, a 0-d tensor, a per-class (C,) tensor indexed by the
            pseudo-label, or a per-image (B,) tensor.
        teacher_logits: logits that give pseudo-labels and confidence.
        labels: targets to use instead of pseudo-labels.
        image_keep: images allowed to contribute (an image-level gate).
        ignore_index: target value that is never selected.
        normalize: divide the summed loss by the ``"selected"`` pixels, the
            ``"valid"`` (non-ignore) pixels, or ``"all"`` pixels.
        temperature: softmax temperature of the confidence.
        threshold_kind: ``"auto"`` infers scalar/class/image from the shape; needed
            only when B == C.
        backend: ``"auto"`` uses the Triton kernel on CUDA tensors and the
            reference otherwise.

    Returns:
        ``(loss, stats)``: a float32 0-d loss (0 with a zero gradient when nothing is
        selected) and :class:`PseudoLabelStats`, all tensors (no host sync).

    Shape:
        logits, teacher_logits: (B, C, H, W). labels: (B, H, W) int.
        image_keep: (B,) bool.
    """
    if not torch.is_tensor(threshold):
        t = float(threshold)
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"threshold must be in [0, 1] (a probability), got {t}")
        threshold = torch.full((), t, device=logits.device, dtype=torch.float32)  # no H2D sync
    elif threshold.device.type == "cpu":
        # Checked only for CPU tensors: there it costs no device sync.
        bad = (threshold < 0) | (threshold > 1) | threshold.isnan()
        if bool(bad.any()):
            raise ValueError(
                f"threshold must be in [0, 1] (a probability), got {threshold[bad].tolist()}"
            )
    if threshold_kind not in ("auto", "scalar", "class", "image"):
        raise ValueError(
            f"threshold_kind must be 'auto', 'scalar', 'class' or 'image', got {threshold_kind!r}"
        )
    _check(logits, threshold, teacher_logits, labels, image_keep, normalize, temperature)
    b, c = logits.shape[:2]
    kind = resolve_threshold_kind(threshold, b, c, threshold_kind)
    threshold = threshold.to(device=logits.device, dtype=torch.float32)
    if kind == "scalar":
        threshold = threshold.reshape(())
    implementation: Callable[..., tuple[Tensor, PseudoLabelStats]]
    implementation = confidence_masked_cross_entropy_reference
    if _use_triton(logits, backend):
        from s4seg.ops.triton_confidence_masked_ce import triton_confidence_masked_cross_entropy

        implementation = triton_confidence_masked_cross_entropy
    return implementation(
        logits,
        threshold,
        kind,
        teacher_logits=teacher_logits,
        labels=labels,
        image_keep=image_keep,
        ignore_index=ignore_index,
        normalize=normalize,
        temperature=temperature,
    )
