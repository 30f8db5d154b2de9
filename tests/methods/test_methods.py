"""Every method trains through the one loop, logs what it counts and resumes exactly."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_resume_is_bit_identical, make_trainer

from s4seg.callbacks import Callback
from s4seg.data.views import WeakStrongViews
from s4seg.filters import (
    ConfidenceMapFilter,
    DiscriminatorGate,
    DistributionAlignment,
    PixelConfidenceFilter,
)
from s4seg.methods import (
    METHODS,
    S4GAN,
    AdvSemiSeg,
    FixMatch,
    MeanTeacher,
    Supervised,
    build_method,
)
from s4seg.models import FMDiscriminator, PixelDiscriminator


def _methods():
    return {
        "supervised": lambda: Supervised(),
        "s4gan": lambda: S4GAN(),
        "s4gan_honest": lambda: S4GAN(real_smoothing=0.1, real_noise=0.05, fake_sharpen=0.5),
        "advsemiseg": lambda: AdvSemiSeg(start_step=2),
        "mean_teacher": lambda: MeanTeacher(threshold=0.5),
        "fixmatch": lambda: FixMatch(threshold=0.5),
    }


class Records(Callback):
    def __init__(self) -> None:
        self.train: list[dict] = []
        self.eval: list[dict] = []

    def on_log(self, trainer, record) -> None:
        self.train.append(record)

    def on_eval_end(self, trainer, record) -> None:
        self.eval.append(record)


@pytest.mark.parametrize("key", list(_methods()))
def test_each_method_trains_logs_and_evaluates(key) -> None:
    method = _methods()[key]()
    rec = Records()
    t = make_trainer([rec], method_object=method, max_steps=4, log_interval=2, eval_interval=4)
    t.fit()
    assert t.config.method == method.name
    last = rec.train[-1]
    assert {"loss_ce", "train_miou"} <= set(last)
    if key != "supervised":
        assert {"loss_st", "st_pixels_kept", "st_pixels_total", "st_images_total"} <= set(last)
        assert last["st_pixels_total"] > 0
    if key.startswith("s4gan"):
        assert {"loss_fm", "loss_d", "d_fake_mean", "d_real_mean"} <= set(last)
        assert {"d_auc_accuracy", "d_auc_entropy"} <= set(rec.eval[-1])
    if key == "advsemiseg":
        assert {"loss_adv", "loss_d", "d_fake_mean"} <= set(last)
        assert isinstance(t.method.discriminator, PixelDiscriminator)
        assert isinstance(t.method.pseudo_filter, ConfidenceMapFilter)
    if key in ("mean_teacher", "fixmatch"):
        assert "discriminator" not in t.method.modules()
        assert isinstance(t.method.pseudo_filter, PixelConfidenceFilter)
        teacher = t.method.teacher.model
        assert not any(p.requires_grad for p in teacher.parameters())
        assert not teacher.training
        assert 0.0 <= rec.eval[-1]["teacher_miou"] <= 1.0  # the teacher's own val mIoU


def test_defaults_by_name() -> None:
    assert set(METHODS) == {
        "s4gan", "supervised", "advsemiseg", "mean_teacher", "fixmatch", "unimatch"
    }  # fmt: skip
    t = make_trainer(method="s4gan")
    assert isinstance(t.method, S4GAN) and isinstance(t.method.pseudo_filter, DiscriminatorGate)
    assert isinstance(t.method.discriminator, FMDiscriminator)
    assert isinstance(build_method("fixmatch").views, WeakStrongViews)
    assert build_method("mean_teacher").views is None
    with pytest.raises(ValueError, match="did you mean 'fixmatch'"):
        build_method("fixmatc")


def test_a_method_object_sets_the_config_name() -> None:
    t = make_trainer(method_object=FixMatch())
    assert t.config.method == "fixmatch"


def test_missing_loader_is_named() -> None:
    from conftest import TinyGenerator

    from s4seg import Trainer, TrainerConfig

    with pytest.raises(ValueError, match="'fixmatch' needs unlabelled_loader"):
        Trainer(TinyGenerator(), iter([]), config=TrainerConfig(method="fixmatch", device="cpu"))


@pytest.mark.parametrize(
    "factory",
    [
        lambda: FixMatch(threshold=0.5),
        lambda: MeanTeacher(threshold=0.5),
        lambda: AdvSemiSeg(start_step=1),
        lambda: S4GAN(real_noise=0.1),
        lambda: FixMatch(threshold=0.5, alignment=DistributionAlignment(momentum=0.5)),
    ],
    ids=["fixmatch", "mean_teacher", "advsemiseg", "s4gan_noise", "fixmatch_aligned"],
)
def test_resume_is_bit_identical(tmp_path, factory) -> None:
    assert_resume_is_bit_identical(tmp_path, factory)


def test_the_teacher_moves_with_the_student_and_stays_apart() -> None:
    t = make_trainer(method_object=MeanTeacher(threshold=0.5, max_decay=0.5), max_steps=4)
    before = [p.clone() for p in t.method.teacher.model.parameters()]
    t.fit()
    after = list(t.method.teacher.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    student = dict(t.generator.named_parameters())
    # An EMA at decay 0.5 lags the student: it is neither where it began nor the student.
    assert any(not torch.equal(p, student[n]) for n, p in t.method.teacher.model.named_parameters())


def test_teacher_checkpoint_is_required_on_resume(tmp_path) -> None:
    s4 = make_trainer(method="supervised", max_steps=2)
    state = s4.state_dict()
    mt = make_trainer(method_object=MeanTeacher(), max_steps=2)
    with pytest.raises(ValueError, match="teacher"):
        mt.load_state_dict({**state, "method_settings": mt.method.settings()})


def test_s4gan_options_are_checked() -> None:
    with pytest.raises(ValueError, match="fake_sharpen"):
        S4GAN(fake_sharpen=2.0)
    with pytest.raises(ValueError, match="real_smoothing"):
        S4GAN(real_smoothing=1.5)
    with pytest.raises(ValueError, match="lambda_st"):
        AdvSemiSeg(lambda_st=-1)
    with pytest.raises(ValueError, match="lr_d"):
        S4GAN(lr_d=-1e-4)
    with pytest.raises(ValueError, match="d_update_interval"):
        AdvSemiSeg(d_update_interval=0)


def test_advsemiseg_without_a_trusted_pixel_is_as_if_the_term_were_skipped() -> None:
    # The original skips loss_semi when no pixel passes mask_T; s4seg's term is then 0
    # with a zero gradient, so the weights are those of a run without the term.
    none_pass = make_trainer(method_object=AdvSemiSeg(start_step=0, threshold=1.0), max_steps=3)
    no_term = make_trainer(method_object=AdvSemiSeg(start_step=0, lambda_st=0.0), max_steps=3)
    rec = Records()
    none_pass.callbacks = [rec]
    none_pass.fit()
    no_term.fit()
    assert rec.train[-1]["st_pixels_kept"] == 0
    for a, b in zip(none_pass.generator.parameters(), no_term.generator.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_ramp_at_zero_trains_as_a_zero_weight_and_a_ramp_at_one_as_the_full_one() -> None:
    from s4seg.schedules import Constant

    def weights(**kwargs) -> list[torch.Tensor]:
        # threshold 0: every pseudo-label teaches, so that the term has a gradient.
        method = MeanTeacher(threshold=0.0, start_step=0, **kwargs)
        trainer = make_trainer(method_object=method, max_steps=3)
        trainer.fit()
        return [p.detach().clone() for p in trainer.generator.parameters()]

    for ramped, plain in (
        (weights(ramp=Constant(0.0)), weights(lambda_st=0.0)),
        (weights(ramp=Constant(1.0)), weights()),
    ):
        assert all(torch.equal(a, b) for a, b in zip(ramped, plain, strict=True))
    # ... and the ramp does change the run: a half weight is neither.
    half, full = weights(ramp=Constant(0.5)), weights()
    assert not all(torch.equal(a, b) for a, b in zip(half, full, strict=True))
