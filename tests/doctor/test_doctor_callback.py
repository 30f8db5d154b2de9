"""The Doctor callback: live findings once each, doctor.jsonl, early stop, rollback, resume."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
import torch
from conftest import make_trainer
from log_streams import field_report

from s4seg.callbacks import Checkpointer, JSONLLogger
from s4seg.doctor import DiscriminatorDominant, Doctor, SelfTrainingStarved, ValMiouFalling
from s4seg.doctor.report import write_report
from s4seg.filters import DiscriminatorGate
from s4seg.methods import S4GAN
from s4seg.training.checkpoint import read_checkpoint
from s4seg.training.trainer import TrainerConfig


def fake_trainer(**config):
    """What the Doctor reads from a trainer, without training anything."""
    return SimpleNamespace(
        config=TrainerConfig(**config),
        method=S4GAN(pseudo_filter=DiscriminatorGate(0.2)),
        generator=None,
        g_optimizer=None,
        step=0,
        should_stop=False,
        best_step=-1,
    )


def replay(doctor, trainer, records):
    doctor.on_fit_start(trainer)
    for r in records:
        if r["kind"] == "config":
            continue
        trainer.step = r["step"]
        body = {k: v for k, v in r.items() if k != "kind"}
        if r["kind"] == "train":
            doctor.on_log(trainer, body)
        else:
            doctor.on_eval_end(trainer, body)


def test_each_finding_is_logged_once_and_written_to_doctor_jsonl(tmp_path, caplog):
    doctor = Doctor(run_dir=tmp_path, duration_steps=200)
    with caplog.at_level(logging.WARNING, logger="s4seg.doctor"):
        replay(doctor, fake_trainer(), field_report())
    # Starved from step 1700 on (1500-1700 = 200 steps), still starved at 1800-2000.
    starved = [m for m in caplog.messages if "st_starved" in m]
    assert len(starved) == 1
    assert "The count is images, not pixels" in starved[0]
    assert "remedies:\n    - S4GAN(lr_d=2.5e-05)" in starved[0]
    entries = [json.loads(x) for x in (tmp_path / "doctor.jsonl").read_text().splitlines()]
    assert [e["code"] for e in entries] == ["st_starved", "val_miou_falling"]
    assert entries[0]["step"] == 1700 and entries[0]["first_step"] == 1600
    assert [f.code for f in doctor.findings] == ["st_starved", "val_miou_falling"]


def test_early_stop_only_when_asked():
    quiet = Doctor()
    trainer = fake_trainer()
    replay(quiet, trainer, field_report())
    assert not trainer.should_stop

    stopper = Doctor(early_stop=True)
    trainer = fake_trainer()
    replay(stopper, trainer, field_report())
    assert trainer.should_stop  # val mIoU falling is critical
    assert stopper.actions == [
        {"kind": "action", "step": 2000, "action": "early_stop", "because": "val_miou_falling"}
    ]


def test_resumed_doctor_does_not_repeat_findings(tmp_path, caplog):
    records = field_report()
    first = Doctor(run_dir=tmp_path, duration_steps=200)
    replay(first, fake_trainer(), [r for r in records if r.get("step", 0) <= 1800])
    (tmp_path / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records[1:] if r["step"] <= 1800)
    )
    assert [f.code for f in first.findings] == ["st_starved"]  # one eval below best so far

    second = Doctor(run_dir=tmp_path, duration_steps=200)
    trainer = fake_trainer()
    trainer.step = 1800
    second.on_fit_start(trainer)
    assert len(second.history) == 1 + len(records[1:]) - 3  # config + records up to 1800
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="s4seg.doctor"):
        replay(second, trainer, [r for r in records if r.get("step", 0) > 1800])
    assert not [m for m in caplog.messages if "st_starved" in m]
    assert [m for m in caplog.messages if "val_miou_falling" in m]  # new at step 2000
    lines = (tmp_path / "doctor.jsonl").read_text().splitlines()
    assert [json.loads(x)["code"] for x in lines] == ["st_starved", "val_miou_falling"]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="lr_d_factor"):
        Doctor(lr_d_factor=0.0)
    with pytest.raises(TypeError, match="check"):
        Doctor(monitors=[object()])


def test_real_run_with_dominant_discriminator_is_diagnosed(tmp_path):
    # lr_d 10x the default: the discriminator wins within a dozen steps (D(fake) -> 0,
    # D(real) -> 1, loss_d -> 0) and the 0.2 gate stops passing images.
    doctor = Doctor(run_dir=tmp_path, duration_steps=8)
    trainer = make_trainer(
        [JSONLLogger(tmp_path), doctor],
        lr_d=1e-3,
        max_steps=24,
        log_interval=2,
        eval_interval=12,
    )
    trainer.fit()
    dominant = next(f for f in doctor.findings if f.code == "d_dominant")
    assert dominant.evidence["d_fake_p50"] < 0.1
    assert dominant.evidence["d_real_p50"] > 0.9
    assert "D(fake) median" in dominant.seen and "loss_d mean" in dominant.seen
    assert "With the image gate at D(fake) > 0.20" in dominant.cause
    assert "S4GAN(lr_d=2.5e-05)" in dominant.remedies[0]  # 0.1 x lr_g, now 1e-3
    report = write_report(tmp_path, duration_steps=8, plots=False).read_text()
    assert "`d_dominant`" in report


def test_rollback_needs_a_checkpoint_from_before_the_problem():
    doctor = Doctor(rollback=True, early_stop=True, duration_steps=200)
    trainer = fake_trainer()  # no best checkpoint
    trainer.restore_best = lambda: pytest.fail("nothing to restore")
    replay(doctor, trainer, field_report())
    assert [(a["action"], a["because"]) for a in doctor.actions] == [
        ("rollback_skipped", "st_starved"),
        ("rollback_skipped", "val_miou_falling"),
        ("early_stop", "val_miou_falling"),  # critical, and no rollback could be made
    ]

    # With best.pt from step 1000, before the starvation (1600): one rollback, then stop.
    doctor = Doctor(rollback=True, early_stop=True, duration_steps=200)
    trainer = fake_trainer()
    trainer.best_step = 1000
    trainer.restore_best = lambda: 1000
    param = torch.nn.Parameter(torch.zeros(1))
    trainer.method.d_optimizer = torch.optim.Adam([param], lr=1e-4)
    param.grad = torch.ones(1)
    trainer.method.d_optimizer.step()
    replay(doctor, trainer, field_report())
    assert [(a["action"], a["step"]) for a in doctor.actions] == [
        ("rollback", 1700),
        ("early_stop", 2000),
    ]
    assert trainer.method.d_optimizer.param_groups[0]["base_lr"] == pytest.approx(1e-5)
    assert not trainer.method.d_optimizer.state  # the Adam moments of the winning D are gone


def test_rollback_restores_best_weights_and_slows_the_discriminator(tmp_path):
    # Dominance named from its first log window (step 8); evaluations every 4 steps keep
    # a checkpoint from before it (step 4) to go back to.
    doctor = Doctor(
        [DiscriminatorDominant(min_steps=1, min_windows=1)], run_dir=tmp_path, rollback=True
    )
    checkpointer = Checkpointer(tmp_path)
    trainer = make_trainer(
        [checkpointer, doctor], lr_d=1e-3, max_steps=20, log_interval=2, eval_interval=4
    )
    restored = []
    original = trainer.restore_best

    def spy():
        step = original()
        best = read_checkpoint(checkpointer.best_path)["generator"]
        now = trainer.generator.state_dict()
        restored.append((step, all(torch.equal(best[k], now[k]) for k in best)))
        return step

    trainer.restore_best = spy
    trainer.fit()
    assert len(restored) == 1 and restored[0][1]  # weights equal best.pt's right after
    (action,) = doctor.actions
    assert action["action"] == "rollback" and action["because"] == "d_dominant"
    dominant = doctor.findings[0]
    assert dominant.code == "d_dominant"
    assert action["restored_step"] == restored[0][0] < dominant.first_step
    assert action["d_base_lr_before"] == [pytest.approx(1e-3)]
    assert trainer.method.d_optimizer.param_groups[0]["base_lr"] == pytest.approx(1e-4)
    assert trainer.step == 20  # training went on after the rollback
    entries = [json.loads(x) for x in (tmp_path / "doctor.jsonl").read_text().splitlines()]
    assert "action" in {e["kind"] for e in entries}


def test_monitor_limits_are_configurable():
    doctor = Doctor(monitors=[SelfTrainingStarved(steps=100), ValMiouFalling(min_drop=0.1)])
    replay(doctor, fake_trainer(), field_report())
    # 0.1802 -> 0.1151 is a drop of 0.065 < 0.1: only the starvation is reported.
    assert [f.code for f in doctor.findings] == ["st_starved"]


def test_default_durations_are_sized_to_the_run_when_it_starts():
    doctor = Doctor()
    doctor.on_fit_start(fake_trainer(max_steps=300, log_interval=25))
    starved = next(m for m in doctor.monitors if isinstance(m, SelfTrainingStarved))
    assert starved.steps == 75  # a quarter of 300 steps, at least 3 log windows
    fixed = Doctor(duration_steps=200)
    fixed.on_fit_start(fake_trainer(max_steps=300, log_interval=25))
    assert next(m for m in fixed.monitors if isinstance(m, SelfTrainingStarved)).steps == 200
