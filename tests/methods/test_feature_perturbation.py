"""FixMatch and the mean teacher with UniMatch's feature-perturbation stream, spelled out."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_resume_is_bit_identical, make_trainer

import s4seg
from s4seg.data.views import WeakStrongViews
from s4seg.training.lr_schedule import poly_lr_factor
from s4seg.training.optim import set_lr_factor

THRESHOLD = 0.5


def generator():
    g = s4seg.create_generator("test_efficientnet", 6, output_stride=8, head="deeplabv3plus")
    with torch.no_grad():  # a fresh head is near uniform; a sharper one makes the filter decide
        g.head.classifier.weight.mul_(300.0)
    return g


def trainer(method, seed: int = 3):
    torch.manual_seed(seed)
    return make_trainer(
        seed=seed, generator=generator(), method_object=method, max_steps=1, eval_interval=100
    )


def spelled_out_step(t, rng: torch.Generator, dropout: float) -> None:
    """One FixMatch step with the perturbed stream, from the views and plain cross-entropy."""
    cfg, g = t.config, t.generator
    teacher = copy.deepcopy(g).eval()  # at step 0 the EMA teacher is the initial student
    set_lr_factor(t.g_optimizer, poly_lr_factor(t.step, cfg.max_steps, cfg.poly_power))
    g.train()
    lab = next(t.loaders["labelled"])
    loss_x = F.cross_entropy(g(lab["image"]), lab["mask"], ignore_index=255)
    views = WeakStrongViews()(next(t.loaders["unlabelled"])["image"], rng)
    with torch.no_grad():
        (target,) = views.mix(teacher(views.weak))
    conf, pseudo = target.softmax(dim=1).max(dim=1)
    keep = conf >= THRESHOLD
    assert 0 < int(keep.sum()) < keep.numel()  # the filter decides something
    strong = g(views.strong)
    _, perturbed = g(views.mix(views.weak)[0], feature_dropout=dropout)
    summed = sum(
        (F.cross_entropy(logits, pseudo, reduction="none") * keep).sum()
        for logits in (strong, perturbed)
    )
    loss = loss_x + summed / (2 * keep.numel())  # "valid": both streams' pixels
    t.g_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    t.g_optimizer.step()
    t.step += 1


def test_fixmatch_with_feature_dropout_is_the_spelled_out_step() -> None:
    def method(dropout):
        return s4seg.FixMatch(threshold=THRESHOLD, seed=7, feature_dropout=dropout)

    fitted = trainer(method(0.5))
    fitted.fit()
    manual = trainer(method(0.5))
    spelled_out_step(manual, torch.Generator().manual_seed(7), dropout=0.5)
    for (name, p), q in zip(
        fitted.generator.state_dict().items(), manual.generator.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
    # The stream did something: without it the weights differ.
    plain = trainer(method(None))
    plain.fit()
    assert not torch.allclose(
        next(iter(fitted.generator.parameters())), next(iter(plain.generator.parameters()))
    )


def test_the_counts_cover_both_streams_and_the_setting_is_recorded() -> None:
    t = trainer(s4seg.FixMatch(threshold=THRESHOLD, feature_dropout=0.5))
    logs = t.train_step()
    assert int(logs["stats"].pixels_total) == 2 * 2 * 32 * 32  # two streams of 2 images
    assert t.method.settings()["feature_dropout"] == 0.5
    # Off, the setting is absent, so checkpoints from before the option still resume.
    assert "feature_dropout" not in s4seg.FixMatch().settings()


def test_the_mean_teacher_perturbs_its_one_view() -> None:
    t = trainer(s4seg.MeanTeacher(threshold=THRESHOLD, feature_dropout=0.3))
    logs = t.train_step()
    assert int(logs["stats"].pixels_total) == 2 * 2 * 32 * 32
    assert torch.isfinite(logs["loss_st"])


def test_resume_with_the_perturbed_stream_is_bit_identical(tmp_path) -> None:
    def factory():
        return s4seg.FixMatch(threshold=THRESHOLD, feature_dropout=0.5)

    torch.manual_seed(0)
    assert_resume_is_bit_identical(tmp_path, factory, generator_factory=generator, steps=4, stop=2)


def test_feature_dropout_is_checked() -> None:
    with pytest.raises(ValueError, match="feature_dropout"):
        s4seg.FixMatch(feature_dropout=1.0)
    with pytest.raises(TypeError, match="feature_dropout"):
        make_trainer(method_object=s4seg.FixMatch(feature_dropout=0.5))  # the tiny test net
