"""SelfTraining: the part every semi-supervised method composes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from s4seg.filters import DiscriminatorGate, DistributionAlignment, PixelConfidenceFilter
from s4seg.methods import SelfTraining
from s4seg.schedules import Cosine, Linear


def ctx(step: int) -> SimpleNamespace:
    return SimpleNamespace(step=step, ignore_index=255)


def part(**kwargs) -> SelfTraining:
    st = SelfTraining(PixelConfidenceFilter(0.5), **kwargs)
    st.setup(ctx(0))
    return st


def logits(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, 3, 4, 4, generator=g) * 3).requires_grad_()


def test_before_start_step_nothing_is_kept_and_the_filter_is_not_asked() -> None:
    class Refuses:
        thresholds = "never"

        def decide(self, **kwargs):
            raise AssertionError("asked before start_step")

    st = SelfTraining(Refuses(), start_step=5)  # type: ignore[arg-type]
    st.setup(ctx(0))
    loss, logs = st(ctx(4), logits())
    assert float(loss) == 0.0
    assert int(logs["stats"].pixels_kept) == 0 and int(logs["stats"].pixels_total) == 32
    assert "pixel_threshold" not in logs


def test_from_start_step_it_is_the_loss_of_the_kept_pixels() -> None:
    x = logits()
    loss, logs = part(start_step=1)(ctx(1), x)
    conf, pseudo = x.detach().softmax(1).max(1)
    keep = conf >= 0.5
    expected = torch.nn.functional.cross_entropy(x.permute(0, 2, 3, 1)[keep], pseudo[keep])
    torch.testing.assert_close(loss, expected)
    assert int(logs["stats"].pixels_kept) == int(keep.sum())
    assert float(logs["pixel_threshold"]) == pytest.approx(0.5)
    assert "gate_threshold" not in logs  # no image gate decided


def test_the_teacher_makes_the_pseudo_labels_and_the_student_gets_the_gradient() -> None:
    student, teacher = logits(0), logits(1).detach()
    loss, _ = part()(ctx(3), student, teacher_logits=teacher)
    conf, pseudo = teacher.softmax(1).max(1)
    keep = conf >= 0.5
    expected = torch.nn.functional.cross_entropy(student.permute(0, 2, 3, 1)[keep], pseudo[keep])
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_an_image_gate_logs_its_threshold_and_counts_in_images() -> None:
    st = SelfTraining(DiscriminatorGate(0.5, check_range=False))
    st.setup(ctx(0))
    _, logs = st(ctx(2), logits(), image_scores=torch.tensor([0.9, 0.1]))
    assert logs["gate_threshold"] == 0.5
    assert int(logs["gate_images_passed"]) == 1 and logs["gate_images_total"] == 2
    assert int(logs["stats"].images_kept) == 1


def test_settings_are_checked_and_recorded() -> None:
    with pytest.raises(ValueError, match="lambda_st"):
        SelfTraining(PixelConfidenceFilter(0.5), lambda_st=-1.0)
    with pytest.raises(ValueError, match="start_step"):
        SelfTraining(PixelConfidenceFilter(0.5), start_step=-1)
    with pytest.raises(ValueError, match="normalize"):
        SelfTraining(PixelConfidenceFilter(0.5), normalize="mean")
    with pytest.raises(TypeError, match="decide"):
        SelfTraining(0.9)  # type: ignore[arg-type]
    st = SelfTraining(PixelConfidenceFilter(0.7), lambda_st=0.5, start_step=3, normalize="valid")
    assert st.settings() == {
        "lambda_st": 0.5, "start_step": 3, "ramp": None, "normalize": "valid",
        "background_index": 0, "alignment": None,
    }  # fmt: skip
    aligned = SelfTraining(PixelConfidenceFilter(0.7), alignment=DistributionAlignment())
    assert aligned.settings()["alignment"].startswith("DistributionAlignment(")
    assert st.parts()["pseudo_filter"] == "PixelConfidenceFilter(threshold=0.7)"
    assert "max softmax probability" in st.parts()["pseudo_filter_thresholds"]


def test_it_must_be_set_up_first() -> None:
    with pytest.raises(RuntimeError, match="setup"):
        SelfTraining(PixelConfidenceFilter(0.5))(ctx(0), logits())


def test_the_ramp_counts_from_start_step_and_multiplies_lambda_st() -> None:
    st = part(lambda_st=2.0, start_step=10, ramp=Linear(0.0, 1.0, steps=4))
    # Before start_step the term is off anyway; its weight is the plain lambda_st.
    assert [st.weight(s) for s in (0, 9)] == [2.0, 2.0]
    assert [st.weight(s) for s in (10, 11, 12, 14, 100)] == [0.0, 0.5, 1.0, 2.0, 2.0]
    _, logs = st(ctx(11), logits())
    assert logs["st_weight"] == 0.5
    assert st.settings()["ramp"].startswith("Linear(")
    assert "st_weight" not in part()(ctx(11), logits())[1]  # no ramp: nothing new in the log


def test_a_ramp_must_be_a_schedule_in_the_unit_interval() -> None:
    with pytest.raises(TypeError, match="ramp must be a Schedule"):
        SelfTraining(PixelConfidenceFilter(0.5), ramp=0.5)  # type: ignore[arg-type]
    st = part(ramp=lambda step: 1.5)
    with pytest.raises(ValueError, match=r"ramp gave 1.5 at step 3.*\[0, 1\]"):
        st.weight(3)


def test_a_ramped_mean_teacher_weighs_its_term_by_the_ramp() -> None:
    from s4seg.methods import MeanTeacher

    mt = MeanTeacher(lambda_st=1.0, start_step=5, ramp=Cosine(0.0, 1.0, steps=10))
    assert mt.self_training.weight(5) == 0.0
    assert mt.self_training.weight(10) == pytest.approx(0.5)
    assert mt.self_training.weight(15) == 1.0
