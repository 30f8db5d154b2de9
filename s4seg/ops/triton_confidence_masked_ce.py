"""Triton kernel of the confidence-masked cross-entropy (imported lazily).

One forward kernel reads the student logits (and the teacher logits, when they
are given) once. Its loop over the classes keeps an online max, argmax and
sum-of-exponentials, so softmax, confidence, pseudo-label, mask and per-pixel
cross-entropy all come out of that single read. It writes the per-pixel
log-sum-exp (float32), the target of each pixel or a sentinel (not selected),
and deterministic per-program partial sums. The backward kernel reads the
logits a second time and writes ``scale * (softmax - onehot)`` on the selected
pixels and 0 elsewhere. The scale is ``grad_output / denominator``, which it
reads from device memory. Full forward and backward is therefore 3 passes over
B*C*H*W: read, read, write.

Layout: NCHW is read in place. Pixels (H*W flattened) are the contiguous tiled
axis, and the grid is (pixel tiles, batch). Any layout whose H and W strides
flatten (``stride_h == W * stride_w``) is read in place through its strides,
with no copy. That covers contiguous tensors, channels_last tensors and
step-sliced views; channels_last is correct but its pixel axis has stride C,
so its loads are not coalesced. Other layouts (a crop along W, a transpose of
H and W) are copied with ``.contiguous()``, which costs one extra read and one
extra write of the tensor.

Tiles are tile-uniform wherever possible. Full pixel tiles and full class chunks
issue unmasked loads; only the last tile of an image and the last class chunk
carry a mask. Padded classes read as -inf and padded pixels read as 0. A dropped
image (``image_keep`` False) skips the class loop, and a backward tile with no
selected pixel writes zeros without reading the logits. Block sizes come from
:func:`default_blocks`; they are not tuned on a GPU yet.

Numerics: everything is computed in float32. The online sums add in a different
order from the reference, and ``tl.exp`` is ``ex2.approx``, so a confidence can
differ from the reference's in the last bits. A pixel within about 1e-7 of the
threshold may then fall on the other side. Exact cases agree: tied logits, and
confidence 1 or 1/k, because the division is IEEE.

Set ``TRITON_INTERPRET=1`` before Triton is first imported to run the kernels in
Triton's CPU interpreter (tests only). Triton reads the variable when
``@triton.jit`` decorates, and that includes its own library at ``import triton``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.autograd.function import once_differentiable

from s4seg.ops.reference import confidence_masked_cross_entropy_reference
from s4seg.ops.stats import PseudoLabelStats

# Read when this module is imported, the same moment Triton reads it (at decoration).
_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

# In-image offsets are int32 (int64 per-element offsets cost registers); the image base
# offset b * stride_b is int64. Larger images go to the reference.
_INT32_MAX = 2**31 - 1
# Targets are stored as uint8 with 255 = "not selected" when every class id fits below
# 255; with more classes they are int32 with -1 = "not selected" (4x the bytes of that
# small per-pixel array, nothing else changes).
_UINT8_SENTINEL = 255
_INT32_SENTINEL = -1
_THR_KIND = {"scalar": 0, "class": 1, "image": 2}


# --------------------------------------------------------------------------- kernels


@triton.jit
def _load_chunk(
    base,
    cls,
    offs,
    pmask,
    s_c,
    s_p,
    C: tl.constexpr,
    MASK_C: tl.constexpr,
    MASK_P: tl.constexpr,
):
    """A [BLOCK_C, BLOCK_P] float32 chunk of logits.

    Padded classes read as -inf, so they add nothing to a max or a sum of exps.
    Padded pixels read as 0: if they read as -inf, exp(-inf - -inf) would be NaN.
    """
    ptrs = base + cls[:, None] * s_c + offs[None, :] * s_p
    if MASK_C:
        cmask = cls < C
        if MASK_P:
            x = tl.load(ptrs, mask=cmask[:, None] & pmask[None, :], other=0.0)
        else:
            x = tl.load(ptrs, mask=cmask[:, None], other=0.0)
        x = tl.where(cmask[:, None], x.to(tl.float32), float("-inf"))
    else:
        # Full class chunk: the only predicate is the pixel one, and it is absent on full
        # tiles, so the common case issues unmasked (vectorisable) loads.
        x = tl.load(ptrs, mask=pmask[None, :], other=0.0) if MASK_P else tl.load(ptrs)
        x = x.to(tl.float32)
    return x


@triton.jit
def _fwd_chunk(
    x_base,
    xs_c,
    xs_p,
    t_base,
    ts_c,
    ts_p,
    c0,
    offs,
    pmask,
    lab,
    inv_t,
    m_s,
    s_s,
    m_t,
    s_t,
    arg,
    x_tgt,
    C: tl.constexpr,
    BLOCK_C: tl.constexpr,
    HAS_TEACHER: tl.constexpr,
    HAS_LABELS: tl.constexpr,
    TEMP_SUM: tl.constexpr,
    NEED_ARG: tl.constexpr,
    MASK_C: tl.constexpr,
    MASK_P: tl.constexpr,
):
    """Fold one chunk of classes into the running per-pixel state.

    State: student max ``m_s`` and sum ``s_s`` (for its log-sum-exp); source max
    ``m_t`` and temperature sum ``s_t`` (for the confidence); source argmax ``arg``;
    student logit at the target ``x_tgt``.
    """
    cls = c0 + tl.arange(0, BLOCK_C)
    xs = _load_chunk(x_base, cls, offs, pmask, xs_c, xs_p, C, MASK_C, MASK_P)
    if HAS_TEACHER:
        xt = _load_chunk(t_base, cls, offs, pmask, ts_c, ts_p, C, MASK_C, MASK_P)
        if NEED_ARG:
            # tie_break_left: the first maximum inside the chunk; the strict > below
            # keeps the first maximum across chunks.
            cm_t, ci_t = tl.max(xt, axis=0, return_indices=True, return_indices_tie_break_left=True)
            upd = cm_t > m_t
            arg = tl.where(upd, c0 + ci_t, arg)
            if not HAS_LABELS:
                # The student logit at the teacher's pseudo-label, tracked as it moves.
                at = tl.sum(tl.where(cls[:, None] == (c0 + ci_t)[None, :], xs, 0.0), axis=0)
                x_tgt = tl.where(upd, at, x_tgt)
        else:
            cm_t = tl.max(xt, axis=0)
        m_t_new = tl.maximum(m_t, cm_t)
        s_t = s_t * tl.exp((m_t - m_t_new) * inv_t) + tl.sum(
            tl.exp((xt - m_t_new[None, :]) * inv_t), axis=0
        )
        m_t = m_t_new
        cm_s = tl.max(xs, axis=0)
        m_s_new = tl.maximum(m_s, cm_s)
    else:
        if NEED_ARG:
            cm_s, ci_s = tl.max(xs, axis=0, return_indices=True, return_indices_tie_break_left=True)
            arg = tl.where(cm_s > m_s, c0 + ci_s, arg)
        else:
            cm_s = tl.max(xs, axis=0)
        m_s_new = tl.maximum(m_s, cm_s)
        if TEMP_SUM:
            # Same max (x/T has the same argmax for T > 0), a second sum for the confidence.
            s_t = s_t * tl.exp((m_s - m_s_new) * inv_t) + tl.sum(
                tl.exp((xs - m_s_new[None, :]) * inv_t), axis=0
            )
    s_s = s_s * tl.exp(m_s - m_s_new) + tl.sum(tl.exp(xs - m_s_new[None, :]), axis=0)
    m_s = m_s_new
    if HAS_LABELS:
        # Exactly one class matches an in-range label, so adding zeros elsewhere is exact.
        x_tgt += tl.sum(tl.where(cls[:, None] == lab[None, :], xs, 0.0), axis=0)
    return m_s, s_s, m_t, s_t, arg, x_tgt


@triton.jit
def _fwd_tile(
    x_base,
    xs_c,
    xs_p,
    t_base,
    ts_c,
    ts_p,
    lab_base,
    ls_p,
    keep_ptr,
    thr_ptr,
    b,
    lse_base,
    tgt_base,
    part,
    loss_part_ptr,
    cnt_part_ptr,
    cnt_stride,
    start,
    HW,
    ignore_index,
    inv_t,
    C: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_P: tl.constexpr,
    HAS_TEACHER: tl.constexpr,
    HAS_LABELS: tl.constexpr,
    HAS_KEEP: tl.constexpr,
    SKIP_DROPPED: tl.constexpr,
    THR_KIND: tl.constexpr,
    TEMP_SUM: tl.constexpr,
    NEED_ARG: tl.constexpr,
    NEED_VALID: tl.constexpr,
    IGNORE_IN_RANGE: tl.constexpr,
    SENTINEL: tl.constexpr,
    MASK_P: tl.constexpr,
):
    offs = start + tl.arange(0, BLOCK_P)
    pmask = offs < HW
    if HAS_LABELS:
        if MASK_P:
            lab64 = tl.load(lab_base + offs * ls_p, mask=pmask, other=0).to(tl.int64)
        else:
            lab64 = tl.load(lab_base + offs * ls_p).to(tl.int64)
        lab_valid = lab64 != ignore_index
        lab_in_range = (lab64 >= 0) & (lab64 < C)
        lab = lab64.to(tl.int32)
    else:
        lab = tl.zeros([BLOCK_P], dtype=tl.int32)

    go = True
    if SKIP_DROPPED:
        # Tile-uniform: a dropped image skips the class loop and reads no logits.
        go = tl.load(keep_ptr + b) != 0
    if go:
        m_s = tl.full([BLOCK_P], float("-inf"), dtype=tl.float32)
        s_s = tl.zeros([BLOCK_P], dtype=tl.float32)
        m_t = tl.full([BLOCK_P], float("-inf"), dtype=tl.float32)
        s_t = tl.zeros([BLOCK_P], dtype=tl.float32)
        arg = tl.zeros([BLOCK_P], dtype=tl.int32)
        x_tgt = tl.zeros([BLOCK_P], dtype=tl.float32)
        C_FULL: tl.constexpr = (C // BLOCK_C) * BLOCK_C
        for c0 in range(0, C_FULL, BLOCK_C):
            m_s, s_s, m_t, s_t, arg, x_tgt = _fwd_chunk(
                x_base, xs_c, xs_p, t_base, ts_c, ts_p, c0, offs, pmask, lab, inv_t,
                m_s, s_s, m_t, s_t, arg, x_tgt,
                C, BLOCK_C, HAS_TEACHER, HAS_LABELS, TEMP_SUM, NEED_ARG, False, MASK_P,
            )  # fmt: skip
        if C_FULL < C:
            m_s, s_s, m_t, s_t, arg, x_tgt = _fwd_chunk(
                x_base, xs_c, xs_p, t_base, ts_c, ts_p, C_FULL, offs, pmask, lab, inv_t,
                m_s, s_s, m_t, s_t, arg, x_tgt,
                C, BLOCK_C, HAS_TEACHER, HAS_LABELS, TEMP_SUM, NEED_ARG, True, MASK_P,
            )  # fmt: skip

        lse = m_s + tl.log(s_s)
        # max softmax = 1 / sum_c exp((x_c - max) / T), the reference's formula. div_rn is
        # IEEE division: "/" compiles to div.full.f32 (2 ulp), and a pixel whose confidence
        # equals the threshold (1/3 for three tied classes) must compare as in the reference.
        conf = tl.math.div_rn(1.0, s_t if TEMP_SUM else s_s)
        if THR_KIND == 0:
            thr = tl.load(thr_ptr)
        elif THR_KIND == 1:
            thr = tl.load(thr_ptr + arg)  # per-class threshold, indexed by the pseudo-label
        else:
            thr = tl.load(thr_ptr + b)
        sel = conf >= thr
        if HAS_LABELS:
            tgt = lab
            valid = lab_valid
            # Out-of-range labels are never selected (the reference raises on them).
            sel = sel & lab_valid & lab_in_range
            x_at = x_tgt
        else:
            tgt = arg
            if IGNORE_IN_RANGE:
                valid = arg != ignore_index
                sel = sel & valid
            else:
                valid = tl.full([BLOCK_P], 1, dtype=tl.int1)
            # Without a teacher the student is the source: its target logit is its max.
            x_at = x_tgt if HAS_TEACHER else m_s
        if HAS_KEEP and not SKIP_DROPPED:
            sel = sel & (tl.load(keep_ptr + b) != 0)
        if MASK_P:
            sel = sel & pmask
            valid = valid & pmask
        loss = tl.where(sel, lse - x_at, 0.0)
        tgt_out = tl.where(sel, tgt, SENTINEL).to(tgt_base.dtype.element_ty)
        if MASK_P:
            tl.store(lse_base + offs, lse, mask=pmask)
            tl.store(tgt_base + offs, tgt_out, mask=pmask)
        else:
            tl.store(lse_base + offs, lse)
            tl.store(tgt_base + offs, tgt_out)
        tl.store(loss_part_ptr + part, tl.sum(loss, axis=0))
        tl.store(cnt_part_ptr + part, tl.sum(sel.to(tl.int32), axis=0))
        if NEED_VALID:
            tl.store(cnt_part_ptr + cnt_stride + part, tl.sum(valid.to(tl.int32), axis=0))
    else:
        # Dropped image: nothing selected; the valid count needs only the labels (the
        # host sets SKIP_DROPPED off when it would need the pseudo-labels).
        none = tl.full([BLOCK_P], SENTINEL, dtype=tgt_base.dtype.element_ty)
        if MASK_P:
            tl.store(tgt_base + offs, none, mask=pmask)
        else:
            tl.store(tgt_base + offs, none)
        tl.store(loss_part_ptr + part, 0.0)
        tl.store(cnt_part_ptr + part, 0)
        if NEED_VALID:
            valid = lab_valid if HAS_LABELS else tl.full([BLOCK_P], 1, dtype=tl.int1)
            if MASK_P:
                valid = valid & pmask
            tl.store(cnt_part_ptr + cnt_stride + part, tl.sum(valid.to(tl.int32), axis=0))


@triton.jit
def _cmce_fwd_kernel(
    x_ptr,
    xs_b,
    xs_c,
    xs_p,
    t_ptr,
    ts_b,
    ts_c,
    ts_p,
    lab_ptr,
    ls_b,
    ls_p,
    keep_ptr,
    thr_ptr,
    lse_ptr,
    tgt_ptr,
    loss_part_ptr,
    cnt_part_ptr,
    HW,
    n_tiles,
    cnt_stride,
    ignore_index,
    inv_t,
    C: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_P: tl.constexpr,
    HAS_TEACHER: tl.constexpr,
    HAS_LABELS: tl.constexpr,
    HAS_KEEP: tl.constexpr,
    SKIP_DROPPED: tl.constexpr,
    THR_KIND: tl.constexpr,
    TEMP_SUM: tl.constexpr,
    NEED_ARG: tl.constexpr,
    NEED_VALID: tl.constexpr,
    IGNORE_IN_RANGE: tl.constexpr,
    SENTINEL: tl.constexpr,
):
    pid = tl.program_id(0)
    b = tl.program_id(1)
    b64 = b.to(tl.int64)
    start = pid * BLOCK_P
    x_base = x_ptr + b64 * xs_b
    t_base = t_ptr + b64 * ts_b
    lab_base = lab_ptr + b64 * ls_b
    lse_base = lse_ptr + b64 * HW
    tgt_base = tgt_ptr + b64 * HW
    part = b * n_tiles + pid
    # Only the last tile of an image is partial: full tiles take the unmasked path.
    if start + BLOCK_P <= HW:
        _fwd_tile(
            x_base, xs_c, xs_p, t_base, ts_c, ts_p, lab_base, ls_p, keep_ptr, thr_ptr, b,
            lse_base, tgt_base, part, loss_part_ptr, cnt_part_ptr, cnt_stride, start, HW,
            ignore_index, inv_t, C, BLOCK_C, BLOCK_P, HAS_TEACHER, HAS_LABELS, HAS_KEEP,
            SKIP_DROPPED, THR_KIND, TEMP_SUM, NEED_ARG, NEED_VALID, IGNORE_IN_RANGE, SENTINEL,
            False,
        )  # fmt: skip
    else:
        _fwd_tile(
            x_base, xs_c, xs_p, t_base, ts_c, ts_p, lab_base, ls_p, keep_ptr, thr_ptr, b,
            lse_base, tgt_base, part, loss_part_ptr, cnt_part_ptr, cnt_stride, start, HW,
            ignore_index, inv_t, C, BLOCK_C, BLOCK_P, HAS_TEACHER, HAS_LABELS, HAS_KEEP,
            SKIP_DROPPED, THR_KIND, TEMP_SUM, NEED_ARG, NEED_VALID, IGNORE_IN_RANGE, SENTINEL,
            True,
        )  # fmt: skip


@triton.jit
def _bwd_chunk(
    x_base,
    xs_c,
    xs_p,
    g_base,
    gs_c,
    gs_p,
    c0,
    offs,
    pmask,
    lse,
    tgt,
    sel,
    scale,
    C: tl.constexpr,
    BLOCK_C: tl.constexpr,
    MASK_C: tl.constexpr,
    MASK_P: tl.constexpr,
):
    cls = c0 + tl.arange(0, BLOCK_C)
    x = _load_chunk(x_base, cls, offs, pmask, xs_c, xs_p, C, MASK_C, MASK_P)
    p = tl.exp(x - lse[None, :])
    onehot = (cls[:, None] == tgt[None, :]).to(tl.float32)
    g = tl.where(sel[None, :], (p - onehot) * scale, 0.0)
    g = g.to(g_base.dtype.element_ty)
    g_ptrs = g_base + cls[:, None] * gs_c + offs[None, :] * gs_p
    if MASK_C:
        if MASK_P:
            tl.store(g_ptrs, g, mask=(cls < C)[:, None] & pmask[None, :])
        else:
            tl.store(g_ptrs, g, mask=(cls < C)[:, None])
    else:
        if MASK_P:
            tl.store(g_ptrs, g, mask=pmask[None, :])
        else:
            tl.store(g_ptrs, g)


@triton.jit
def _zero_chunk(
    g_base,
    gs_c,
    gs_p,
    c0,
    offs,
    pmask,
    C: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_P: tl.constexpr,
    MASK_C: tl.constexpr,
    MASK_P: tl.constexpr,
):
    cls = c0 + tl.arange(0, BLOCK_C)
    g_ptrs = g_base + cls[:, None] * gs_c + offs[None, :] * gs_p
    z = tl.zeros([BLOCK_C, BLOCK_P], dtype=g_base.dtype.element_ty)
    if MASK_C:
        if MASK_P:
            tl.store(g_ptrs, z, mask=(cls < C)[:, None] & pmask[None, :])
        else:
            tl.store(g_ptrs, z, mask=(cls < C)[:, None])
    else:
        if MASK_P:
            tl.store(g_ptrs, z, mask=pmask[None, :])
        else:
            tl.store(g_ptrs, z)


@triton.jit
def _bwd_tile(
    x_base,
    xs_c,
    xs_p,
    g_base,
    gs_c,
    gs_p,
    lse_base,
    tgt_base,
    nsel,
    scale_ptr,
    start,
    HW,
    C: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_P: tl.constexpr,
    SENTINEL: tl.constexpr,
    MASK_P: tl.constexpr,
):
    offs = start + tl.arange(0, BLOCK_P)
    pmask = offs < HW
    C_FULL: tl.constexpr = (C // BLOCK_C) * BLOCK_C
    # Tile-uniform: a tile with no selected pixel writes zeros without reading logits.
    if nsel > 0:
        # A device scalar, so a new grad_output or denominator needs no recompilation
        # and no host sync.
        scale = tl.load(scale_ptr)
        if MASK_P:
            tgt = tl.load(tgt_base + offs, mask=pmask, other=SENTINEL).to(tl.int32)
            lse = tl.load(lse_base + offs, mask=pmask, other=0.0)
        else:
            tgt = tl.load(tgt_base + offs).to(tl.int32)
            lse = tl.load(lse_base + offs)
        sel = tgt != SENTINEL
        for c0 in range(0, C_FULL, BLOCK_C):
            _bwd_chunk(
                x_base, xs_c, xs_p, g_base, gs_c, gs_p, c0, offs, pmask, lse, tgt, sel, scale,
                C, BLOCK_C, False, MASK_P,
            )  # fmt: skip
        if C_FULL < C:
            _bwd_chunk(
                x_base, xs_c, xs_p, g_base, gs_c, gs_p, C_FULL, offs, pmask, lse, tgt, sel,
                scale, C, BLOCK_C, True, MASK_P,
            )  # fmt: skip
    else:
        for c0 in range(0, C_FULL, BLOCK_C):
            _zero_chunk(g_base, gs_c, gs_p, c0, offs, pmask, C, BLOCK_C, BLOCK_P, False, MASK_P)
        if C_FULL < C:
            _zero_chunk(g_base, gs_c, gs_p, C_FULL, offs, pmask, C, BLOCK_C, BLOCK_P, True, MASK_P)


@triton.jit
def _cmce_bwd_kernel(
    x_ptr,
    xs_b,
    xs_c,
    xs_p,
    g_ptr,
    gs_b,
    gs_c,
    gs_p,
    lse_ptr,
    tgt_ptr,
    cnt_part_ptr,
    scale_ptr,
    HW,
    n_tiles,
    C: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_P: tl.constexpr,
    SENTINEL: tl.constexpr,
):
    pid = tl.program_id(0)
    b = tl.program_id(1)
    b64 = b.to(tl.int64)
    start = pid * BLOCK_P
    x_base = x_ptr + b64 * xs_b
    g_base = g_ptr + b64 * gs_b
    lse_base = lse_ptr + b64 * HW
    tgt_base = tgt_ptr + b64 * HW
    nsel = tl.load(cnt_part_ptr + b * n_tiles + pid)
    if start + BLOCK_P <= HW:
        _bwd_tile(
            x_base, xs_c, xs_p, g_base, gs_c, gs_p, lse_base, tgt_base, nsel, scale_ptr,
            start, HW, C, BLOCK_C, BLOCK_P, SENTINEL, False,
        )  # fmt: skip
    else:
        _bwd_tile(
            x_base, xs_c, xs_p, g_base, gs_c, gs_p, lse_base, tgt_base, nsel, scale_ptr,
            start, HW, C, BLOCK_C, BLOCK_P, SENTINEL, True,
        )  # fmt: skip


# --------------------------------------------------------------------------- host side


@dataclass(frozen=True)
class _Config:
    """Everything the kernels need besides tensors; fixed for one call."""

    kind: str
    ignore_index: int
    normalize: str
    temperature: float
    block_p: int
    block_c: int
    num_warps: int


def _pixel_strides(t: Tensor) -> tuple[int, ...] | None:
    """(stride_b, [stride_c,] stride_pixel) when H and W flatten into one pixel axis."""
    h, w = t.shape[-2:]
    *lead_s, s_h, s_w = t.stride()
    if w == 1:
        s_p = s_h
    elif h == 1 or s_h == w * s_w:
        s_p = s_w
    else:
        return None
    return (*lead_s, s_p)


def _flat(t: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """``t`` itself when its H, W flatten, else a contiguous copy (one extra read + write)."""
    strides = _pixel_strides(t)
    if strides is None:
        t = t.contiguous()
        strides = (*t.stride()[:-2], 1)  # contiguous: pixels are adjacent
    return t, strides


def _fits_int32(t: Tensor) -> bool:
    """Whether every in-image element offset of ``t`` (as the kernel will read it) fits int32."""
    strides = _pixel_strides(t)
    if strides is None:  # it will be read as a contiguous copy
        strides = (0, t.shape[2] * t.shape[3], 1)
    c, hw = t.shape[1], t.shape[2] * t.shape[3]
    return (c - 1) * abs(strides[1]) + (hw - 1) * abs(strides[2]) <= _INT32_MAX


def default_blocks(
    num_classes: int, element_size: int, classes_contiguous: bool = False
) -> tuple[int, int, int]:
    """``(BLOCK_P, BLOCK_C, num_warps)`` for a class count and logits element size.

    BLOCK_P gives every thread of 4 warps 16 contiguous bytes per class row (one
    vectorised load), so the class axis of a [BLOCK_C, BLOCK_P] chunk stays inside
    each thread and the per-chunk reductions need no shuffles. BLOCK_C in
    {1, 2, 4, 8} minimises a rough per-pixel cost: one exp per padded class lane
    plus about two exps' worth of rescaling and bookkeeping per chunk (ties: the
    larger chunk). That gives 8 for C = 21 and 150, and 8 for C = 19 (3 chunks
    with 5 padded lanes cost the same as 5 chunks with 1). More than 8 rows of
    512 float32 per 4 warps starts to cost registers when a teacher is read too.

    With the classes contiguous (channels_last), Triton lays the chunk out with
    classes across threads; (64, 16) keeps that at about 70 registers where
    (512, 8) spills (``python -m benchmarks.kernel.compile_check``, sm_90).
    """
    num_warps = 4
    if classes_contiguous and num_classes > 1:
        return 64, min(16, triton.next_power_of_2(num_classes)), num_warps
    block_p = (16 // element_size) * 32 * num_warps
    cap = min(8, triton.next_power_of_2(num_classes))

    def cost(bc: int) -> tuple[int, int]:
        chunks = triton.cdiv(num_classes, bc)
        return chunks * bc + 2 * chunks, -bc

    best = min((bc for bc in (1, 2, 4, 8) if bc <= cap), key=cost)
    return block_p, best, num_warps


def _launch_forward(
    logits: Tensor,
    xs: tuple[int, ...],
    teacher: Tensor | None,
    labels: Tensor | None,
    image_keep: Tensor | None,
    threshold: Tensor,
    cfg: _Config,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Run the forward kernel and reduce its partial sums on the device.

    ``logits`` must already flatten, with ``xs`` its (batch, class, pixel) strides.

    Returns:
        ``(loss, denom, sel_per_image, lse, tgt, cnt_part)``.
    """
    b, c, h, w = logits.shape
    hw = h * w
    device = logits.device
    if teacher is not None:
        t_arg, ts = _flat(teacher)
    else:
        t_arg, ts = logits, xs
    if labels is not None:
        lab_arg, ls = _flat(labels)
    else:
        lab_arg, ls = torch.empty(1, dtype=torch.int32, device=device), (0, 0)
    keep_arg = (
        image_keep.to(torch.bool).to(torch.uint8).contiguous()
        if image_keep is not None
        else torch.empty(1, dtype=torch.uint8, device=device)
    )
    threshold = threshold.contiguous()

    block_p, block_c = cfg.block_p, cfg.block_c
    n_tiles = triton.cdiv(hw, block_p)
    small_targets = c <= _UINT8_SENTINEL
    sentinel = _UINT8_SENTINEL if small_targets else _INT32_SENTINEL
    lse = torch.empty((b, hw), dtype=torch.float32, device=device)
    tgt = torch.empty((b, hw), dtype=torch.uint8 if small_targets else torch.int32, device=device)
    loss_part = torch.empty((b, n_tiles), dtype=torch.float32, device=device)
    cnt_part = torch.zeros((2, b, n_tiles), dtype=torch.int32, device=device)

    has_teacher = teacher is not None
    has_labels = labels is not None
    ignore_in_range = 0 <= cfg.ignore_index < c
    need_valid = cfg.normalize == "valid"
    # A dropped image can skip the logits unless its valid count needs the pseudo-labels.
    skip_dropped = image_keep is not None and not (
        need_valid and not has_labels and ignore_in_range
    )
    _cmce_fwd_kernel[(n_tiles, b)](
        logits, xs[0], xs[1], xs[2],
        t_arg, ts[0], ts[1], ts[2],
        lab_arg, ls[0], ls[1],
        keep_arg, threshold, lse, tgt, loss_part, cnt_part,
        hw, n_tiles, b * n_tiles, cfg.ignore_index, 1.0 / cfg.temperature,
        C=c,
        BLOCK_C=block_c,
        BLOCK_P=block_p,
        HAS_TEACHER=has_teacher,
        HAS_LABELS=has_labels,
        HAS_KEEP=image_keep is not None,
        SKIP_DROPPED=skip_dropped,
        THR_KIND=_THR_KIND[cfg.kind],
        TEMP_SUM=has_teacher or cfg.temperature != 1.0,
        NEED_ARG=not has_labels or cfg.kind == "class",
        NEED_VALID=need_valid,
        IGNORE_IN_RANGE=ignore_in_range,
        SENTINEL=sentinel,
        num_warps=cfg.num_warps,
    )  # fmt: skip

    # Deterministic reduction on the device: fixed-shape torch sums, no float atomics,
    # no .item().
    sel_per_image = cnt_part[0].sum(dim=1, dtype=torch.int64)
    total = loss_part.sum()
    if cfg.normalize == "selected":
        denom = sel_per_image.sum()
    elif cfg.normalize == "valid":
        denom = cnt_part[1].sum(dtype=torch.int64)
    else:
        denom = torch.full((), b * hw, dtype=torch.int64, device=device)
    # Nothing selected: 0 / 1 = 0, and the backward scale multiplies only zeros.
    denom_f = denom.clamp_min(1).to(torch.float32)
    loss = total / denom_f
    return loss, denom_f, sel_per_image, lse, tgt, cnt_part


class _ConfidenceMaskedCE(torch.autograd.Function):
    """Autograd wrapper: the gradient reaches the student logits only."""

    @staticmethod
    def forward(
        ctx,
        logits: Tensor,
        teacher: Tensor | None,
        labels: Tensor | None,
        image_keep: Tensor | None,
        threshold: Tensor,
        cfg: _Config,
    ) -> tuple[Tensor, Tensor]:
        logits_c, xs = _flat(logits)
        loss, denom_f, sel_per_image, lse, tgt, cnt_part = _launch_forward(
            logits_c, xs, teacher, labels, image_keep, threshold, cfg
        )
        ctx.save_for_backward(logits_c, lse, tgt, cnt_part, denom_f)
        ctx.cfg = cfg
        ctx.x_strides = xs
        ctx.mark_non_differentiable(sel_per_image)
        return loss, sel_per_image

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss: Tensor, _grad_sel: Tensor | None) -> tuple[Tensor | None, ...]:
        logits, lse, tgt, cnt_part, denom_f = ctx.saved_tensors
        cfg: _Config = ctx.cfg
        b, c, h, w = logits.shape
        hw = h * w
        # grad_output / denom stays on the device; the kernel reads it through a pointer.
        scale = (grad_loss.to(torch.float32) / denom_f).reshape(1).contiguous()
        # The gradient takes the logits' layout when it is channels_last, else NCHW.
        channels_last = not logits.is_contiguous() and logits.is_contiguous(
            memory_format=torch.channels_last
        )
        grad = torch.empty(
            logits.shape,
            dtype=logits.dtype,
            device=logits.device,
            memory_format=torch.channels_last if channels_last else torch.contiguous_format,
        )
        xs = ctx.x_strides
        gs = (c * hw, 1, c) if channels_last else (c * hw, hw, 1)
        n_tiles = triton.cdiv(hw, cfg.block_p)
        _cmce_bwd_kernel[(n_tiles, b)](
            logits, xs[0], xs[1], xs[2],
            grad, gs[0], gs[1], gs[2],
            lse, tgt, cnt_part, scale,
            hw, n_tiles,
            C=c,
            BLOCK_C=cfg.block_c,
            BLOCK_P=cfg.block_p,
            SENTINEL=_UINT8_SENTINEL if c <= _UINT8_SENTINEL else _INT32_SENTINEL,
            num_warps=cfg.num_warps,
        )  # fmt: skip
        return grad, None, None, None, None, None


def triton_confidence_masked_cross_entropy(
    logits: Tensor,
    threshold: Tensor,
    kind: str,
    *,
    teacher_logits: Tensor | None,
    labels: Tensor | None,
    image_keep: Tensor | None,
    ignore_index: int,
    normalize: str,
    temperature: float,
    block_p: int | None = None,
    block_c: int | None = None,
) -> tuple[Tensor, PseudoLabelStats]:
    """Triton backend of :func:`s4seg.ops.confidence_masked_cross_entropy`.

    Arguments are validated by the public function, which also turns ``threshold``
    into a float32 tensor on the logits' device. Semantics match
    :func:`s4seg.ops.confidence_masked_cross_entropy_reference`, with one
    difference: a label outside ``[0, C)`` that is not ``ignore_index`` is never
    selected (it still counts as valid), where the reference raises.

    Falls back to the reference for empty inputs and for images whose in-image
    offsets do not fit int32 (C*H*W >= 2**31 elements).

    Args:
        logits: student logits (float32, float16 or bfloat16; computed in float32).
        threshold: 0-d when ``kind == "scalar"``, (C,) for ``"class"``, (B,) for
            ``"image"``.
        kind: ``"scalar"``, ``"class"`` or ``"image"``.
        teacher_logits: source of pseudo-labels and confidence (else ``logits``).
        labels: targets that replace the pseudo-labels.
        image_keep: images allowed to contribute.
        ignore_index: target value that is never selected.
        normalize: ``"selected"``, ``"valid"`` or ``"all"``.
        temperature: softmax temperature of the confidence.
        block_p: pixels per program (a power of 2); tuning and tests only.
        block_c: classes per loop step (a power of 2); tuning and tests only.

    Returns:
        ``(loss, stats)`` as tensors on the logits' device, with no host sync.

    Shape:
        logits, teacher_logits: (B, C, H, W). labels: (B, H, W). image_keep: (B,).
    """
    if not (logits.is_cuda or _INTERPRET):
        raise ValueError(
            f"the Triton backend needs CUDA tensors, got logits on {logits.device}; use "
            "backend='auto' or 'reference' (or set TRITON_INTERPRET=1 before importing "
            "s4seg.ops.triton_confidence_masked_ce to run Triton's CPU interpreter in tests)"
        )
    b, c, h, w = logits.shape
    if logits.numel() == 0 or not all(
        _fits_int32(t) for t in (logits, teacher_logits) if t is not None
    ):
        return confidence_masked_cross_entropy_reference(
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
    if labels is not None and (labels.is_floating_point() or labels.dtype == torch.bool):
        labels = labels.long()  # as the reference does
    strides = _pixel_strides(logits)
    classes_contiguous = strides is not None and strides[1] == 1
    default_p, default_c, num_warps = default_blocks(c, logits.element_size(), classes_contiguous)
    for name, value in (("block_p", block_p), ("block_c", block_c)):
        if value is not None and (value < 1 or value & (value - 1)):
            raise ValueError(f"{name} must be a power of 2 (tl.arange needs one), got {value}")
    cfg = _Config(
        kind=kind,
        ignore_index=int(ignore_index),
        normalize=normalize,
        temperature=float(temperature),
        block_p=block_p or default_p,
        block_c=block_c or default_c,
        num_warps=num_warps,
    )
    teacher = teacher_logits.detach() if teacher_logits is not None else None
    loss, sel_per_image = _ConfidenceMaskedCE.apply(
        logits, teacher, labels, image_keep, threshold, cfg
    )
    stats = PseudoLabelStats(
        images_kept=(sel_per_image > 0).sum(),
        images_total=torch.full((), b, dtype=torch.int64, device=logits.device),
        pixels_kept=sel_per_image.sum(),
        pixels_total=torch.full((), b * h * w, dtype=torch.int64, device=logits.device),
    )
    return loss, stats
