"""Every method trains through the one loop, logs what it counts and resumes exactly."""

from __future__ import annotations

import pytest
import torch
from conftest import make_trainer

from s4seg.data.views import WeakStrongViews
from s4seg.callbacks import Callback
from s4seg.training.checkpoint import load_checkpoint, save_atomic
from s4seg.filters import ConfidenceMapFilter, DiscriminatorGate, PixelConfidenceFilter
from s4seg.methods import (
    METHODS,
    S4GAN,
    AdvSemiSeg,
    FixMatch,
    MeanTeacher,
    Supervised,
    build_method,
)
from s4seg.models.discriminator import FMDiscriminator
from s4seg.models.pixel_discriminator import PixelDiscriminator


def _methods():
    return {
        "supervised": lambda: Supervised(),
        "s4gan": lambda: S4GAN(),
        "s4gan_honest": lambda: S4GAN(real_smoothing=0.1, real_noise=0.05, fake_sharpen=0.5),
        "advsemiseg": lambda: AdvSemiSeg(semi_start=2),
        "mean_teacher": lambda: MeanTeacher(tau=0.5),
        "fixmatch": lambda: FixMatch(tau=0.5),
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
        assert isinstance(t.discriminator, PixelDiscriminator)
        assert isinstance(t.pseudo_filter, ConfidenceMapFilter)
    if key in ("mean_teacher", "fixmatch"):
        assert t.discriminator is None
        assert isinstance(t.pseudo_filter, PixelConfidenceFilter)
        # The teacher moved with the student but is not the student.
        teacher = t.method.teacher.model
        assert not any(p.requires_grad for p in teacher.parameters())
        assert not teacher.training


def test_defaults_by_name() -> None:
    assert set(METHODS) == {"s4gan", "supervised", "advsemiseg", "mean_teacher", "fixmatch"}
    t = make_trainer(method="s4gan")
    assert isinstance(t.method, S4GAN) and isinstance(t.pseudo_filter, DiscriminatorGate)
    assert isinstance(t.discriminator, FMDiscriminator)
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
    [lambda: FixMatch(tau=0.5), lambda: AdvSemiSeg(semi_start=1), lambda: S4GAN(real_noise=0.1)],
    ids=["fixmatch", "advsemiseg", "s4gan_noise"],
)
def test_resume_is_bit_identical(tmp_path, factory) -> None:
    straight = make_trainer(method_object=factory(), max_steps=6)
    straight.fit()
    first = make_trainer(method_object=factory(), max_steps=6)
    first.fit(until=3)
    path = save_atomic(first.state_dict(), tmp_path / "ckpt.pt")
    torch.rand(100)  # disturb the global RNG: the checkpoint restores it
    second = make_trainer(method_object=factory(), max_steps=6, seed=99)
    second.load_state_dict(load_checkpoint(path))
    second.fit()
    models = [(straight.generator, second.generator)]
    if straight.discriminator is not None:
        models.append((straight.discriminator, second.discriminator))
    if isinstance(straight.method, MeanTeacher):
        models.append((straight.method.teacher, second.method.teacher))
    for a, b in models:
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(x, y), name


def test_teacher_checkpoint_is_required_on_resume(tmp_path) -> None:
    s4 = make_trainer(method="supervised", max_steps=2)
    state = s4.state_dict()
    mt = make_trainer(method="supervised", max_steps=2)
    mt.method = MeanTeacher()
    mt.method.setup(mt)
    with pytest.raises(ValueError, match="teacher"):
        mt.load_state_dict(state)


def test_s4gan_options_are_checked() -> None:
    with pytest.raises(ValueError, match="fake_sharpen"):
        S4GAN(fake_sharpen=2.0)
    with pytest.raises(ValueError, match="real_smoothing"):
        S4GAN(real_smoothing=1.5)
    with pytest.raises(ValueError, match="lambda_semi"):
        AdvSemiSeg(lambda_semi=-1)
