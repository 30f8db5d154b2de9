"""Trainer: the S4GAN step, logs, run folder, bit-identical resume, and bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import SIZE, TinyGenerator, make_trainer
from torch.utils.data import Subset

from s4seg.callbacks import Callback, default_callbacks
from s4seg.data import InfiniteLoader, SyntheticShapes, Unlabelled
from s4seg.filters import PixelConfidenceFilter
from s4seg.methods import S4GAN
from s4seg.models import FMDiscriminator
from s4seg.training.checkpoint import read_checkpoint, save_atomic
from s4seg.training.trainer import Trainer, TrainerConfig


class Recorder(Callback):
    def __init__(self) -> None:
        self.logs: list[dict] = []
        self.evals: list[dict] = []

    def on_log(self, trainer, record):
        self.logs.append(record)

    def on_eval_end(self, trainer, metrics):
        self.evals.append(metrics)


def test_s4gan_step_logs_every_number_with_its_unit():
    rec = Recorder()
    make_trainer([rec]).fit()
    assert [r["step"] for r in rec.logs] == [2, 4, 6]
    first = rec.logs[0]
    for key in (
        "loss_ce",
        "loss_fm",
        "loss_st",
        "loss_d",
        "d_real_mean",
        "d_fake_mean",
        "d_fake_p50",
        "gate_threshold",
        "st_images_kept",
        "st_images_total",
        "st_pixels_kept",
        "st_pixels_total",
        "st_pixels_frac",
        "lr_g",
        "lr_d",
        "train_miou",
    ):
        assert key in first, key
    # Window of 2 steps x batch 2 images; step 0 has no self-training, step 1 may.
    assert first["st_images_total"] == 4
    assert first["st_pixels_total"] == 4 * SIZE * SIZE
    assert first["st_images_kept"] <= 2  # only step 1 can keep images
    assert 0.0 <= first["st_pixels_frac"] <= 1.0
    assert rec.logs[1]["lr_g"] < rec.logs[0]["lr_g"]  # poly decay
    assert [e["step"] for e in rec.evals] == [3, 6]
    assert 0.0 <= rec.evals[0]["miou"] <= 1.0


def test_no_self_training_at_step_zero():
    t = make_trainer()
    out = t.train_step()
    assert out["stats"].images_kept.item() == 0
    assert out["loss_st"].item() == 0.0


def test_resumed_cpu_run_is_bit_identical(tmp_path):
    straight = make_trainer(max_steps=6)
    straight.fit()

    first = make_trainer(max_steps=6)
    first.fit(until=3)
    path = save_atomic(first.state_dict(), tmp_path / "ckpt.pt")
    # Disturb the global RNG: the checkpoint must restore it.
    torch.rand(100)
    second = make_trainer(max_steps=6, seed=123)
    second.load_state_dict(read_checkpoint(path))
    assert second.step == 3
    second.fit()
    for a, b in zip(
        straight.generator.state_dict().values(),
        second.generator.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b)
    for a, b in zip(
        straight.method.discriminator.state_dict().values(),
        second.method.discriminator.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b)


def test_run_folder_has_logs_events_checkpoints_and_config(tmp_path):
    t = make_trainer(default_callbacks(tmp_path, progress=True))
    t.fit()
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in records} == {"train", "eval"}
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp_path / "checkpoints" / "last.pt").exists()
    assert (tmp_path / "checkpoints" / "best.pt").exists()
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["method"]["class"] == "S4GAN"
    assert config["method"]["settings"]["lambda_fm"] == 0.1
    assert config["method"]["settings"]["lr_d"] == 1e-4
    assert "image" in config["method"]["parts"]["pseudo_filter_thresholds"]
    best_step = t.restore_best()
    assert best_step == t.best_step


def test_resume_drops_log_lines_written_after_the_checkpoint(tmp_path):
    t = make_trainer(default_callbacks(tmp_path, progress=False), max_steps=6)
    t.fit(until=3)
    mid = save_atomic(t.state_dict(), tmp_path / "step3.pt")
    t.fit()  # a run that went on to step 6, then "crashed"
    t2 = make_trainer(default_callbacks(tmp_path, progress=False), max_steps=6)
    assert t2.load_checkpoint(mid) == 3
    t2.fit()
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    for kind in ("train", "eval"):
        steps = [r["step"] for r in records if r["kind"] == kind]
        assert steps == sorted(set(steps)), (kind, steps)  # nothing logged twice
    assert [r["step"] for r in records if r["kind"] == "train"] == [2, 4, 6]


def test_supervised_method_trains_without_discriminator():
    rec = Recorder()
    t = make_trainer([rec], method="supervised")
    t.fit()
    assert t.method.modules() == {} and t.method.optimizers() == {}
    assert "loss_d" not in rec.logs[0] and "st_images_kept" not in rec.logs[0]


def test_labelled_batch_without_masks_names_the_problem():
    data = Unlabelled(SyntheticShapes(4, image_size=SIZE))
    t = Trainer(
        TinyGenerator(),
        InfiniteLoader(data, 2),
        config=TrainerConfig(method="supervised", device="cpu"),
    )
    with pytest.raises(ValueError, match="no 'mask'"):
        t.train_step()


def test_generator_and_discriminator_classes_must_agree():
    data = SyntheticShapes(4, image_size=SIZE)
    loader = InfiniteLoader(data, 2)
    with pytest.raises(ValueError, match="num_classes=6"):
        Trainer(
            TinyGenerator(6),
            loader,
            unlabelled_loader=loader,
            loaders={"d": loader},
            config=TrainerConfig(device="cpu"),
            method=S4GAN(discriminator=FMDiscriminator(4)),
        )


def test_checkpoint_from_another_config_lists_the_mismatches(tmp_path):
    t = make_trainer()
    path = save_atomic(t.state_dict(), tmp_path / "c.pt")
    other = make_trainer(lambda_fm=0.5, lr_d=1e-5)
    with pytest.raises(ValueError) as info:
        other.load_checkpoint(path)
    assert "method lambda_fm: checkpoint 0.1, now 0.5" in str(info.value)
    assert "lr_d" in str(info.value)


def test_nonfinite_loss_is_skipped_counted_then_fatal():
    class NaNAfter(TinyGenerator):
        def forward(self, x):
            return super().forward(x) * float("nan")

    t = make_trainer(generator=NaNAfter(), method="supervised", max_nonfinite_steps=3)
    before = [p.clone() for p in t.generator.parameters()]
    with pytest.warns(UserWarning, match="non-finite"):
        t.train_step()
    assert t.nonfinite_total == 1
    assert all(torch.equal(a, b) for a, b in zip(before, t.generator.parameters(), strict=True))
    with (
        pytest.raises(FloatingPointError, match=r"3 non-finite updates of .*'g'.* in a row"),
        pytest.warns(UserWarning),
    ):
        for _ in range(3):
            t.train_step()


def test_callback_with_a_typo_fails_loudly():
    class Typo(Callback):
        def on_eval_ends(self, trainer, metrics):
            pass

    with pytest.raises(TypeError, match="did you mean 'on_eval_end'"):
        make_trainer([Typo()])


def test_early_stopping_stops_after_patience_evals_without_improvement():
    t = make_trainer(max_steps=60, eval_interval=1, early_stop_patience=2, lr_g=0.0, lr_d=0.0)
    t.fit()
    # With zero learning rates mIoU never improves after the first eval (BN stats aside).
    assert t.step < 60
    assert t.evals_since_best >= 2


def test_empty_loader_is_a_clear_error():
    with pytest.raises(ValueError, match="empty"):
        InfiniteLoader(Subset(SyntheticShapes(4, image_size=SIZE), []), 2)


def test_gate_threshold_is_logged_on_the_discriminator_probability():
    rec = Recorder()
    t = make_trainer([rec], pseudo_filter=PixelConfidenceFilter(0.5))
    t.fit()
    assert rec.logs[-1]["pixel_threshold"] == pytest.approx(0.5)
    assert all(math.isfinite(r["loss_st"]) for r in rec.logs)


def test_evaluate_in_tiles_matches_whole_image_for_a_conv_net():
    t = make_trainer(eval_tile=SIZE)
    whole = t.evaluate()
    t.config.eval_tile = SIZE // 2 + 3
    windowed = t.evaluate()
    # A 3x3 conv net sees the zero padding differently at window borders only.
    assert abs(whole["miou"] - windowed["miou"]) < 0.1


def test_channels_last_gives_the_same_step_as_nchw():
    a, b = make_trainer(), make_trainer(channels_last=True)
    out_a, out_b = a.train_step(), b.train_step()
    torch.testing.assert_close(out_a["loss_ce"], out_b["loss_ce"], rtol=1e-4, atol=1e-5)
    for pa, pb in zip(a.generator.parameters(), b.generator.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5)


def test_compiled_generator_trains_like_the_eager_one():
    a, b = (
        make_trainer(method="supervised"),
        make_trainer(method="supervised", compile_generator=True),
    )
    assert type(b.train_generator).__name__ == "OptimizedModule"
    torch.testing.assert_close(a.train_step()["loss_ce"], b.train_step()["loss_ce"])
