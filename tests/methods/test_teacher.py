"""Tests for s4seg.methods.teacher.EMATeacher."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from s4seg.methods.teacher import EMATeacher, unwrap_model
from s4seg.schedules import Linear

fast = settings(max_examples=25, deadline=None)


class Scalar(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(value, dtype=torch.float64))


def tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))


def perturb(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype))


def test_hand_computed_scalar() -> None:
    # Warm-up decays: d(0) = 0, d(1) = 1/2, d(2) = 2/3, then capped at max_decay = 0.7.
    student = Scalar(0.0)
    teacher = EMATeacher(student, max_decay=0.7)
    expected = []
    for step, s in enumerate([3.0, 6.0, 12.0, 2.0]):
        student.w.data.fill_(s)
        teacher.update(student, step)
        expected.append(teacher.model.w.item())
    # step 0: 3; step 1: 0.5*3 + 0.5*6 = 4.5; step 2: 2/3*4.5 + 1/3*12 = 7; step 3: 0.7*7 + 0.3*2
    assert expected == pytest.approx([3.0, 4.5, 7.0, 5.5])
    assert [teacher.decay_at(s) for s in (0, 1, 2, 3, 10**6)] == pytest.approx(
        [0.0, 0.5, 2 / 3, 0.7, 0.7]
    )


def test_matches_reference_loop() -> None:
    student = tiny()
    teacher = EMATeacher(student, decay=Linear(0.5, 0.9, steps=4), buffers="ema")
    ref = {n: t.detach().clone() for n, t in student.state_dict().items()}
    for step in range(6):
        perturb(student, step)
        student.train()(torch.randn(2, 3, 5, 5))  # moves the BN running statistics
        teacher.update(student, step)
        d = Linear(0.5, 0.9, steps=4)(step)
        for n, s in student.state_dict().items():
            ref[n] = d * ref[n] + (1 - d) * s if s.is_floating_point() else s.clone()
    for n, t in teacher.model.state_dict().items():
        torch.testing.assert_close(t, ref[n], msg=n)


def test_step0_warmup_equals_student_and_buffers_copied() -> None:
    student = tiny()
    teacher = EMATeacher(student)
    perturb(student, 1)
    student.train()(torch.randn(2, 3, 5, 5))
    teacher.update(student, 0)
    for (n, t), s in zip(
        teacher.model.state_dict().items(), student.state_dict().values(), strict=True
    ):
        assert torch.equal(t, s), n
    # With a constant decay, buffers are still copied (the default), parameters are not.
    teacher = EMATeacher(tiny(), decay=0.9)
    student.train()(torch.randn(2, 3, 5, 5))
    teacher.update(student, 5)
    assert torch.equal(teacher.model[1].running_mean, student[1].running_mean)
    assert not torch.equal(teacher.model[0].weight, student[0].weight)


def test_no_grads_and_always_eval() -> None:
    student = tiny()
    student[0].weight.grad = torch.ones_like(student[0].weight)
    teacher = EMATeacher(student)
    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    teacher.train()
    assert not teacher.training and not teacher.model.training
    assert not any(m.training for m in teacher.modules())
    out = teacher(torch.randn(1, 3, 4, 4))
    assert not out.requires_grad
    # Eval mode: BN uses running statistics, so a sample alone matches a sample in a batch.
    x = torch.randn(3, 3, 4, 4)
    torch.testing.assert_close(teacher(x[:1]), teacher(x)[:1])


def test_unwraps_ddp_like_and_compiled_wrappers() -> None:
    class FakeDDP(nn.Module):
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

    class FakeCompiled:
        def __init__(self, mod: nn.Module) -> None:
            self._orig_mod = mod

    student = tiny()
    wrapped = FakeCompiled(FakeDDP(student))
    assert unwrap_model(wrapped) is student  # type: ignore[arg-type]
    teacher = EMATeacher(wrapped)  # type: ignore[arg-type]
    perturb(student, 3)
    teacher.update(wrapped, 0)  # type: ignore[arg-type]
    assert torch.equal(teacher.model[0].weight, student[0].weight)
    # A model with its own submodule named "module" among others is not unwrapped.
    own = nn.Module()
    own.module, own.head = nn.Linear(2, 2), nn.Linear(2, 2)
    assert unwrap_model(own) is own


def test_resume_is_exact() -> None:
    student = tiny()
    a = EMATeacher(student, decay=0.9)
    for step in range(3):
        perturb(student, step)
        a.update(student, step)
    b = EMATeacher(tiny(seed=7), decay=0.9)
    b.load_state_dict(a.state_dict())
    for step in range(3, 6):
        perturb(student, step)
        a.update(student, step)
        b.update(student, step)
    for ta, tb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(ta, tb)


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\), got 1.0"):
        EMATeacher(tiny(), decay=1.0)
    with pytest.raises(ValueError, match=r"max_decay must be in \[0, 1\), got 1.5"):
        EMATeacher(tiny(), max_decay=1.5)
    with pytest.raises(ValueError, match="buffers must be 'copy' or 'ema'"):
        EMATeacher(tiny(), buffers="mean")  # type: ignore[arg-type]
    teacher = EMATeacher(tiny(), decay=Linear(0.5, 1.0, steps=10))
    with pytest.raises(ValueError, match=r"decay at step 10 must be in \[0, 1\), got 1.0"):
        teacher.update(tiny(), 10)
    with pytest.raises(ValueError, match="step must be >= 0"):
        teacher.decay_at(-1)
    other = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 5, 1))
    with pytest.raises(ValueError, match=r"parameter '2.weight': teacher has shape \(2, 4, 1, 1\)"):
        teacher.update(other, 0)
    with pytest.raises(ValueError, match=r"missing in the student \['0.bias'"):
        teacher.update(nn.Sequential(nn.Conv2d(3, 4, 3, bias=False)), 0)


@fast
@given(
    st.lists(st.floats(-100, 100), min_size=1, max_size=12),
    st.one_of(st.none(), st.floats(0.0, 0.999)),
)
def test_teacher_is_convex_combination_of_history(values: list[float], decay: float | None) -> None:
    student = Scalar(values[0])
    teacher = EMATeacher(student, decay=decay)
    seen = [values[0]]
    for step, v in enumerate(values):
        student.w.data.fill_(v)
        seen.append(v)
        teacher.update(student, step)
        t = teacher.model.w.item()
        eps = 1e-12 * max(1.0, max(abs(x) for x in seen))  # lerp rounding
        assert min(seen) - eps <= t <= max(seen) + eps
