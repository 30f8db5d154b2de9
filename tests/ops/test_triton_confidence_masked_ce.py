"""The Triton kernel against the one plain-torch reference, forward and backward.

On a CPU-only machine the kernel runs in Triton's interpreter: TRITON_INTERPRET
is set below, before the kernel module is imported, because Triton reads it when
``@triton.jit`` decorates. The interpreter is slow, so shapes stay tiny and the
block sizes are shrunk (64 pixels, up to 4 classes per loop step) so that tiny
shapes still cover several pixel tiles, a partial last tile and several class
chunks with a partial last chunk. On a GPU (TRITON_INTERPRET=0) the same tests
run compiled on CUDA tensors.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

triton = pytest.importorskip(
    "triton", reason="triton is not installed (pip install 's4seg[kernel]')"
)

from s4seg.ops import confidence_masked_cross_entropy  # noqa: E402
from s4seg.ops import triton_confidence_masked_ce as kernel  # noqa: E402
from s4seg.ops.reference import select_pseudo_labels  # noqa: E402


def _triton_library_interpreted() -> bool:
    """Whether Triton's own library (tl.zeros, tl.sum, ...) was decorated in interpreter mode.

    Triton reads TRITON_INTERPRET once per function, when ``@triton.jit`` decorates it;
    its standard library is decorated when ``triton`` is first imported. If anything
    imported triton before the variable was set (torch._dynamo does), the kernel's own
    functions are interpreted but the library's are not, and every launch fails with
    "Cannot call @triton.jit'd outside of the scope of a kernel".
    """
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(triton.language.standard.zeros, InterpretedFunction)


if kernel._INTERPRET:
    if not _triton_library_interpreted():
        pytest.fail(
            "triton was imported before TRITON_INTERPRET=1 was set (tests/conftest.py imports "
            "torch._dynamo through s4seg, and that imports triton). Set it in tests/conftest.py "
            "right after `import torch`: `if not torch.cuda.is_available(): "
            "os.environ.setdefault('TRITON_INTERPRET', '1')`, or export TRITON_INTERPRET=1.",
            pytrace=False,
        )
    DEVICE = "cpu"
elif torch.cuda.is_available():
    DEVICE = "cuda"
else:
    pytest.skip(
        "TRITON_INTERPRET=0 and no CUDA device: nothing can run the kernel", allow_module_level=True
    )

# (rtol, atol) per dtype. Both backends compute in float32 from the same inputs, so the
# float32 loss agrees tightly in every dtype; the gradient is rounded to the input dtype
# at the end, where a float32 difference in the last bit can flip one ulp of the output.
TOLERANCES: dict[torch.dtype, dict[str, tuple[float, float]]] = {
    torch.float32: {"loss": (1e-5, 1e-6), "grad": (1e-5, 1e-7)},
    torch.float16: {"loss": (1e-5, 1e-6), "grad": (1e-3, 1e-5)},
    torch.bfloat16: {"loss": (1e-5, 1e-6), "grad": (8e-3, 1e-5)},
}
DTYPES = list(TOLERANCES)
BLOCK_P = 64  # 81 = 9 * 9 pixels -> one full tile and one partial tile
MAX_BLOCK_C = 4


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    def blocks(c: int, element_size: int, classes_contiguous: bool = False):
        return BLOCK_P, min(MAX_BLOCK_C, 1 << (c - 1).bit_length()), 4

    monkeypatch.setattr(kernel, "default_blocks", blocks)


def run(backend, base, threshold, *, view=None, grad_output=1.0, **kwargs):
    """Loss, stats and the gradient on ``base`` (a leaf; ``view`` makes the logits)."""
    leaf = base.detach().clone().requires_grad_(True)
    logits = view(leaf) if view is not None else leaf
    loss, stats = confidence_masked_cross_entropy(logits, threshold, backend=backend, **kwargs)
    loss.backward(torch.as_tensor(grad_output, dtype=loss.dtype, device=loss.device))
    return loss.detach(), stats, leaf.grad


def assert_stats_equal(a, b) -> None:
    for field in ("images_kept", "images_total", "pixels_kept", "pixels_total"):
        assert int(getattr(a, field)) == int(getattr(b, field)), field


def check(base, threshold, **kwargs):
    """Run both backends, compare loss, stats and gradient; return the Triton result."""
    dtype = base.dtype
    ref = run("reference", base, threshold, **kwargs)
    tri = run("triton", base, threshold, **kwargs)
    assert tri[0].dtype == torch.float32
    assert torch.isfinite(tri[0]) and torch.isfinite(tri[2]).all()
    rtol, atol = TOLERANCES[dtype]["loss"]
    torch.testing.assert_close(tri[0], ref[0], rtol=rtol, atol=atol)
    assert_stats_equal(tri[1], ref[1])
    assert tri[2].dtype == base.dtype and tri[2].shape == base.shape
    rtol, atol = TOLERANCES[dtype]["grad"]
    torch.testing.assert_close(tri[2], ref[2], rtol=rtol, atol=atol)
    return tri


def logits_(b, c, h, w, dtype=torch.float32, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(b, c, h, w, generator=g)).to(dtype=dtype, device=DEVICE)


def mid_threshold(source: torch.Tensor, temperature: float = 1.0) -> float:
    """A threshold halfway between two neighbouring confidences near the median.

    It selects about half of the pixels and sits far from every confidence, so a
    last-bit difference in the confidence cannot flip a pixel.
    """
    _, conf, _ = select_pseudo_labels(
        source, torch.tensor(0.0), "scalar", labels=None, image_keep=None,
        ignore_index=255, temperature=temperature,
    )  # fmt: skip
    values = conf.flatten().double().sort().values.unique()
    if len(values) < 2:
        return 0.0
    k = len(values) // 2
    return float((values[k - 1] + values[k]) / 2)


# ------------------------------------------------------------------ hand-computed


def test_hand_computed_two_pixels() -> None:
    # Pixel 0: logits (0, 0): p = (1/2, 1/2), confidence 0.5, pseudo-label 0 (first max),
    #   CE = ln 2.
    # Pixel 1: logits (ln 3, 0): p = (3/4, 1/4), confidence 0.75, pseudo-label 0,
    #   CE = ln(4/3); d loss / d logits = p - onehot = (-1/4, 1/4).
    x = torch.tensor([[[[0.0, math.log(3.0)]], [[0.0, 0.0]]]], device=DEVICE)
    loss, stats, grad = run("triton", x, 0.6)
    assert loss.item() == pytest.approx(math.log(4 / 3), rel=1e-6)
    assert (int(stats.pixels_kept), int(stats.images_kept)) == (1, 1)
    expected = torch.tensor([[[[0.0, -0.25]], [[0.0, 0.25]]]], device=DEVICE)
    torch.testing.assert_close(grad, expected, rtol=1e-6, atol=1e-7)
    # At 0.5 pixel 0 sits exactly on the threshold and is kept (>=): mean of both.
    loss, stats, grad = run("triton", x, 0.5)
    assert loss.item() == pytest.approx((math.log(2) + math.log(4 / 3)) / 2, rel=1e-6)
    assert int(stats.pixels_kept) == 2
    expected = torch.tensor([[[[-0.25, -0.125]], [[0.25, 0.125]]]], device=DEVICE)
    torch.testing.assert_close(grad, expected, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------ against the reference


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("c", [1, 2, 19, 21])
def test_matches_reference(dtype: torch.dtype, c: int) -> None:
    x = logits_(2, c, 9, 9, dtype, seed=c)
    check(x, mid_threshold(x))


def test_150_classes_with_teacher_and_per_class_threshold() -> None:
    x = logits_(1, 150, 5, 5, seed=1, scale=4.0)
    teacher = logits_(1, 150, 5, 5, seed=2, scale=4.0)
    thr = torch.linspace(0.05, 0.6, 150, device=DEVICE)
    check(x, thr, teacher_logits=teacher, threshold_kind="class")


def test_more_than_255_classes_uses_int32_targets() -> None:
    # C > 255: targets no longer fit uint8 with 255 as "not selected".
    x = logits_(1, 300, 3, 3, seed=3, scale=6.0)
    check(x, mid_threshold(x))


@pytest.mark.parametrize("h, w", [(8, 8), (1, 1), (3, 1), (1, 70), (9, 9)])
def test_pixel_counts_around_the_block(h: int, w: int) -> None:
    # 64 = one full tile, 1 and 3 = one partial tile, 70 and 81 = full + partial.
    x = logits_(2, 5, h, w, seed=h * w)
    check(x, mid_threshold(x))


@pytest.mark.parametrize("grad_output", [0.37, -2.5, 0.0])
def test_grad_output_not_one(grad_output: float) -> None:
    x = logits_(2, 7, 9, 9, seed=4)
    check(x, mid_threshold(x), grad_output=grad_output)


@pytest.mark.parametrize("normalize", ["selected", "valid", "all"])
@pytest.mark.parametrize("kind", ["scalar", "class", "image"])
def test_normalizations_and_threshold_kinds(normalize: str, kind: str) -> None:
    b, c = 2, 5
    x = logits_(b, c, 9, 9, seed=5)
    labels = torch.randint(0, c, (b, 9, 9), generator=torch.Generator().manual_seed(6))
    labels[0, :3] = 255
    labels = labels.to(DEVICE)
    thr = {
        "scalar": torch.tensor(0.4),
        "class": torch.tensor([0.2, 0.5, 0.3, 0.6, 0.45]),
        "image": torch.tensor([0.3, 0.55]),
    }[kind].to(DEVICE)
    check(x, thr, threshold_kind=kind, normalize=normalize, labels=labels)
    check(x, thr, threshold_kind=kind, normalize=normalize,
          image_keep=torch.tensor([False, True], device=DEVICE))  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_teacher_logits_and_temperature(dtype: torch.dtype, temperature: float) -> None:
    x = logits_(2, 6, 9, 9, dtype, seed=7)
    teacher = logits_(2, 6, 9, 9, torch.float32, seed=8)  # a teacher in another dtype
    thr = mid_threshold(teacher, temperature)
    check(x, thr, teacher_logits=teacher, temperature=temperature)
    labels = torch.randint(0, 6, (2, 9, 9), device=DEVICE)
    check(x, thr, teacher_logits=teacher, labels=labels, temperature=temperature)


def test_gradient_reaches_the_student_only() -> None:
    x = logits_(1, 4, 3, 3, seed=9).requires_grad_(True)
    teacher = logits_(1, 4, 3, 3, seed=10).requires_grad_(True)
    loss, _ = confidence_masked_cross_entropy(x, 0.0, teacher_logits=teacher, backend="triton")
    loss.backward()
    assert teacher.grad is None and x.grad is not None


# ------------------------------------------------------------------ layouts


LAYOUTS = {
    # in place, strided: the class stride is 2*H*W
    "class_slice": (lambda b, c, h, w: (b, 2 * c, h, w), lambda t: t[:, ::2]),
    # in place: classes contiguous, pixel stride C
    "channels_last": (lambda b, c, h, w: (b, c, h, w), lambda t: t),
    # H and W do not flatten: read through a contiguous copy
    "cropped": (lambda b, c, h, w: (b, c, h, w + 2), lambda t: t[..., 1:-1]),
    "transposed_hw": (lambda b, c, h, w: (b, c, w, h), lambda t: t.transpose(2, 3)),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_non_contiguous_and_channels_last(layout: str) -> None:
    shape_of, view = LAYOUTS[layout]
    base = logits_(*shape_of(2, 5, 9, 7), seed=11)
    if layout == "channels_last":
        base = base.contiguous(memory_format=torch.channels_last)
    probe = view(base)
    labels = torch.randint(0, 5, (2, 7, 9), device=DEVICE).transpose(1, 2)  # non-contiguous
    teacher = logits_(2, 5, 9, 7, seed=12).contiguous(memory_format=torch.channels_last)
    _, stats, _ = check(base, mid_threshold(probe), view=view)
    assert 0 < int(stats.pixels_kept) < 2 * 9 * 7
    check(base, 0.3, view=view, labels=labels, teacher_logits=teacher)


def test_channels_last_with_default_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real block heuristic: (64, 16) when classes are contiguous
    base = logits_(2, 21, 5, 6, seed=13).contiguous(memory_format=torch.channels_last)
    _, _, grad = check(base, mid_threshold(base))
    assert grad.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_default_blocks(monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype) -> None:
    monkeypatch.undo()  # BLOCK_P 512 (float32) / 1024 (16-bit), BLOCK_C 8
    x = logits_(2, 19, 5, 7, dtype, seed=14)
    check(x, mid_threshold(x))


# ------------------------------------------------------------------ ties and boundaries


def test_ties_go_to_the_first_maximum_within_and_across_chunks() -> None:
    # Chunks of 4 classes: {0..3}, {4..7}, {8}. Each pixel has its maximum twice.
    c = 9
    x = torch.zeros(1, c, 1, 4, device=DEVICE)
    x[0, [2, 6], 0, 0] = 3.0  # across chunks: 2 wins
    x[0, [3, 4], 0, 1] = 3.0  # across the chunk boundary: 3 wins
    x[0, [5, 7], 0, 2] = 3.0  # inside one chunk: 5 wins
    x[0, [7, 8], 0, 3] = 3.0  # last full chunk vs the partial one: 7 wins
    expected = [2, 3, 5, 7]
    _, _, grad = check(x, 0.0)
    # The gradient is p - onehot: negative only at the target class.
    assert grad[0, :, 0, :].argmin(dim=0).tolist() == expected
    # The same with a teacher, and all pixels tied everywhere (confidence 1/C).
    check(torch.randn(1, c, 1, 4, device=DEVICE), 0.0, teacher_logits=x)
    check(torch.zeros(2, c, 3, 3, device=DEVICE), 1.0 / c)


@pytest.mark.parametrize("c", [2, 3, 4])
def test_confidence_exactly_at_the_threshold(c: int) -> None:
    # Equal logits give exactly 1/c in float32 in both backends (a sum of ones).
    x = torch.full((2, c, 3, 3), 1.5, device=DEVICE)
    at = torch.tensor(1.0 / c, dtype=torch.float32)
    above = torch.nextafter(at, torch.tensor(1.0))
    _, stats, _ = check(x, at.item())
    assert int(stats.pixels_kept) == 2 * 9  # >= keeps the pixel that sits on the threshold
    loss, stats, _ = check(x, above.item())
    assert int(stats.pixels_kept) == 0 and loss.item() == 0.0
    per_class = torch.full((c,), 1.0 / c, device=DEVICE)
    _, stats, _ = check(x, per_class, threshold_kind="class")
    assert int(stats.pixels_kept) == 2 * 9


@pytest.mark.parametrize("normalize", ["selected", "valid", "all"])
def test_none_selected_is_zero_not_nan(normalize: str) -> None:
    x = logits_(2, 4, 9, 9, seed=15)
    loss, stats, grad = check(x, 1.0, normalize=normalize)
    assert loss.item() == 0.0 and int(stats.pixels_kept) == 0 and int(stats.images_kept) == 0
    assert torch.count_nonzero(grad) == 0
    loss, _, grad = check(
        x, 0.2, normalize=normalize, image_keep=torch.zeros(2, dtype=torch.bool, device=DEVICE)
    )
    assert loss.item() == 0.0 and torch.count_nonzero(grad) == 0


def test_all_selected() -> None:
    x = logits_(2, 4, 9, 9, seed=16)
    _, stats, _ = check(x, 0.0)
    assert int(stats.pixels_kept) == int(stats.pixels_total) == 2 * 81
    assert int(stats.images_kept) == 2


def test_ignore_index() -> None:
    x = logits_(2, 5, 9, 9, seed=17)
    labels = torch.randint(0, 5, (2, 9, 9), device=DEVICE)
    labels[:, ::2] = 255
    labels[1] = 255  # an image with nothing valid
    _, stats, _ = check(x, 0.0, labels=labels, normalize="valid")
    assert int(stats.pixels_kept) == int((labels != 255).sum())
    assert int(stats.images_kept) == 1
    check(x, 0.0, labels=torch.where(labels == 255, -100, labels), ignore_index=-100)
    # An ignore_index that is also a class id: labels of that class are not selected.
    in_range = torch.where(labels == 255, 3, labels)
    _, stats, _ = check(x, 0.0, labels=in_range, ignore_index=3, normalize="valid")
    assert int(stats.pixels_kept) == int((in_range != 3).sum())
    # ignore_index inside [0, C) also removes pseudo-labels of that class, and the
    # "valid" count then needs the argmax even for images the gate dropped.
    for keep in (None, torch.tensor([True, False], device=DEVICE)):
        _, stats, _ = check(x, 0.0, ignore_index=1, normalize="valid", image_keep=keep)
    assert 0 < int(stats.pixels_kept) < 81


def test_out_of_range_labels_are_not_selected() -> None:
    # The documented difference: the reference raises on them, the kernel skips them.
    x = logits_(1, 3, 2, 2, seed=18)
    labels = torch.tensor([[[0, 7], [2, 1]]], device=DEVICE)
    loss, stats = confidence_masked_cross_entropy(
        x, 0.0, labels=labels, normalize="valid", backend="triton"
    )
    assert int(stats.pixels_kept) == 3
    expected, _ = confidence_masked_cross_entropy(
        x, 0.0, labels=torch.where(labels == 7, 255, labels), backend="reference"
    )
    torch.testing.assert_close(loss, expected * 3 / 4)  # 3 selected over 4 valid


# ------------------------------------------------------------------ properties


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_property_matches_reference_on_small_shapes(data: st.DataObject) -> None:
    b = data.draw(st.integers(1, 2), label="B")
    c = data.draw(st.integers(1, 6), label="C")
    h = data.draw(st.integers(1, 5), label="H")
    w = data.draw(st.integers(1, 5), label="W")
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    g = torch.Generator().manual_seed(seed)
    # Small integers: many exact ties, and confidences at least 4e-5 away from every
    # threshold below except the exact 0.5 (C=2 ties) and 1.0 (C=1) cases.
    x = torch.randint(-2, 3, (b, c, h, w), generator=g).to(dtype=dtype, device=DEVICE)
    levels = [0.0, 0.3, 0.5, 0.55, 1.0]
    kind = data.draw(st.sampled_from(["scalar", "class", "image"]), label="kind")
    n = {"scalar": 1, "class": c, "image": b}[kind]
    thr = torch.tensor(data.draw(st.lists(st.sampled_from(levels), min_size=n, max_size=n)))
    thr = (thr[0] if kind == "scalar" else thr).to(DEVICE)
    ignore_index = data.draw(st.sampled_from([255, 0, -100]), label="ignore_index")
    kwargs = dict(
        threshold_kind=kind,
        ignore_index=ignore_index,
        normalize=data.draw(st.sampled_from(["selected", "valid", "all"]), label="normalize"),
        temperature=data.draw(st.sampled_from([0.5, 1.0, 2.0]), label="T"),
        grad_output=data.draw(st.sampled_from([1.0, -0.5]), label="grad_output"),
    )
    if data.draw(st.booleans(), label="teacher"):
        kwargs["teacher_logits"] = torch.randint(-2, 3, x.shape, generator=g).to(x)
    if data.draw(st.booleans(), label="labels"):
        labels = torch.randint(0, c, (b, h, w), generator=g)
        labels[torch.rand(b, h, w, generator=g) < 0.2] = ignore_index
        kwargs["labels"] = labels.to(DEVICE)
    if data.draw(st.booleans(), label="image_keep"):
        kwargs["image_keep"] = (torch.rand(b, generator=g) < 0.6).to(DEVICE)
    check(x, thr, **kwargs)


def test_deterministic() -> None:
    x = logits_(2, 19, 9, 9, seed=19)
    a = run("triton", x, 0.2)
    b = run("triton", x, 0.2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2])


def test_empty_batch_falls_back_to_the_reference() -> None:
    x = torch.zeros(0, 3, 4, 4, device=DEVICE, requires_grad=True)
    loss, stats = confidence_masked_cross_entropy(x, 0.5, backend="triton")
    assert loss.item() == 0.0 and int(stats.pixels_total) == 0


# ------------------------------------------------------------------ dispatch


def test_auto_uses_the_reference_for_cpu_tensors(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def spy(*args, **kwargs):
        calls.append(1)
        raise AssertionError("the Triton path was taken")

    monkeypatch.setattr(kernel, "triton_confidence_masked_cross_entropy", spy)
    x = torch.randn(1, 3, 4, 4)
    confidence_masked_cross_entropy(x, 0.5)  # backend="auto" on the CPU
    assert calls == []
    with pytest.raises(AssertionError, match="Triton path"):
        confidence_masked_cross_entropy(x, 0.5, backend="triton")
    assert calls == [1]


def test_cpu_tensors_without_the_interpreter_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel, "_INTERPRET", False)
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        confidence_masked_cross_entropy(torch.randn(1, 3, 2, 2), 0.5, backend="triton")
