"""Monitors: one synthetic log stream per failure, the field report's run, and a healthy run."""

from __future__ import annotations

import copy
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from log_streams import (
    PIXEL_FILTER,
    config_record,
    field_report,
    healthy,
    patch,
    train_record,
)

from s4seg.doctor import (
    DiscriminatorCollapsed,
    DiscriminatorDominant,
    ExplodingLoss,
    LearningRateExhausted,
    NonFiniteLoss,
    Overfitting,
    SelfTrainingFlooded,
    SelfTrainingStarved,
    ValMiouFalling,
    default_monitors,
    run_monitors,
)


def codes(history, duration_steps=500):
    return [f.code for f in run_monitors(history, default_monitors(duration_steps))]


def only(history, code, duration_steps=500):
    found = [f for f in run_monitors(history, default_monitors(duration_steps)) if f.code == code]
    assert len(found) == 1, [f.code for f in found]
    return found[0]


# --- no false alarm -----------------------------------------------------------------


@pytest.mark.parametrize("duration_steps", [500, 100])
def test_healthy_run_has_no_finding(duration_steps):
    assert codes(healthy(), duration_steps) == []


# --- the field report -----------------------------------------------------------------


def test_field_report_replay_says_images_not_pixels_and_that_d_rejects_everything():
    history = field_report()
    assert sorted(codes(history)) == ["st_starved", "val_miou_falling"]

    starved = only(history, "st_starved")
    assert (starved.first_step, starved.last_step) == (1600, 2000)
    assert starved.evidence["cause"] == "image_gate"
    assert starved.evidence["gate_threshold"] == pytest.approx(0.2)
    # 5 windows x 100 steps x 4 images: an image count, next to the pixel count.
    assert starved.evidence["images_seen"] == 2000
    assert starved.evidence["pixels_seen"] == 2000 * 256 * 256
    assert "The count is images, not pixels" in starved.seen
    assert "(500 steps)" in starved.seen
    assert "1,500 of 2,000 images (75.0%)" in starved.seen  # before the starvation
    assert "D(fake) > 0.20, not the softmax confidence of pixels" in starved.cause
    assert "loss_d 0.079 at step 2000 (down from 0.708 at step 1000)" in starved.cause
    assert "the discriminator rejects every prediction" in starved.cause
    assert "only delays" in starved.cause  # lowering the threshold is not the fix
    remedies = "\n".join(starved.remedies)
    for setting in (
        "S4GAN(lr_d=2.5e-05)",  # 0.1 x lr_g 2.5e-4
        "S4GAN(d_update_interval=2)",
        "S4GAN(label_smoothing=0.1)",
        "TargetRateGate(rate=0.5)",
        "AndFilter(TargetRateGate(rate=0.5), PixelConfidenceFilter(0.9))",
        "trainer.restore_best()",
    ):
        assert setting in remedies, setting
    assert "0.1802 at step 1000" in remedies

    falling = only(history, "val_miou_falling")
    assert falling.severity == "critical"
    assert falling.evidence == {"best_miou": 0.1802, "best_step": 1000, "last_miou": 0.1151}
    assert "0.1151 at step 2000 (-0.0651)" in falling.seen
    assert "loss_d 0.708 at the best, 0.079 now" in falling.cause


def test_field_report_with_d_scores_also_names_discriminator_dominance():
    history = field_report(with_d_scores=True)
    dominant = only(history, "d_dominant")
    assert dominant.first_step == 1600
    assert dominant.evidence["d_fake_p50"] == pytest.approx(0.03)
    assert "D(real) ~0.97 vs D(fake) ~0.03" in dominant.cause
    assert "0 of 2,000 images" in dominant.cause
    assert "D(fake) median 0.030" in only(history, "st_starved").cause


# --- one stream per failure -----------------------------------------------------------


def test_starvation_needs_the_full_window():
    # Log every 50 steps: zeros in the windows ending 1550..2000 cover steps 1500-2000.
    assert "st_starved" in codes(patch(healthy(), 1550, 2000, **_starved()))
    assert "st_starved" not in codes(patch(healthy(), 1600, 2000, **_starved()))  # 450 steps


def _starved():
    return {
        "st_images_kept": 0,
        "st_pixels_kept": 0,
        "st_pixels_frac": 0.0,
        "gate_images_passed": 0,
    }


def test_starvation_by_a_pixel_threshold_proposes_pixel_remedies():
    history = [config_record(PIXEL_FILTER)]
    for step in range(50, 1001, 50):
        history.append(
            train_record(step, window=50, kept=0.0, gate=None, pixel_threshold=0.95, loss_ce=1.0)
        )
    finding = only(history, "st_starved")
    assert finding.evidence["cause"] == "pixel_threshold"
    assert ">= 0.95" in finding.cause
    remedies = "\n".join(finding.remedies)
    assert "SelfAdaptiveThreshold" in remedies and "TargetRateFilter(rate=0.2)" in remedies
    assert "lr_d" not in remedies


def test_flooded_gate():
    history = patch(healthy(), 500, 1200, st_images_kept=lambda r: r["st_images_total"])
    history = patch(history, 500, 1200, st_pixels_kept=lambda r: r["st_pixels_total"])
    history = patch(history, 500, 1200, st_pixels_frac=1.0, d_fake_p10=0.45)
    finding = only(history, "st_flooded")
    assert (finding.first_step, finding.last_step) == (500, 1200)
    assert "passed every image: D(fake) p10 never fell below 0.450" in finding.cause
    assert any(r.startswith("AndFilter(") for r in finding.remedies)


def test_dominant_discriminator_by_loss_and_by_median():
    history = patch(healthy(), 1000, 1300, loss_d=0.02, d_fake_p50=0.03, d_real_p50=0.98)
    finding = only(history, "d_dominant")
    assert (finding.first_step, finding.last_step) == (1000, 1300)
    assert finding.evidence["loss_d_mean"] == pytest.approx(0.02)
    assert "< 0.05 in 7 of 7 log windows" in finding.seen
    assert "At step 950, before: loss_d" in finding.seen
    # The median alone is enough; one short window is not.
    assert "d_dominant" in codes(patch(healthy(), 1000, 1300, d_fake_p50=0.05))
    assert "d_dominant" not in codes(patch(healthy(), 1000, 1000, loss_d=0.01))


def test_collapsed_discriminator():
    ln2 = math.log(2)
    history = patch(healthy(), 200, 1500, loss_d=ln2 + 0.005, d_fake_p50=0.5, d_real_p50=0.52)
    finding = only(history, "d_collapsed")
    assert finding.evidence["steps"] == 1350
    # Where D scores exist they must be near 0.5 too.
    assert "d_collapsed" not in codes(
        patch(healthy(), 200, 1500, loss_d=ln2, d_fake_p50=0.2, d_real_p50=0.8)
    )


def test_val_miou_falling_needs_consecutive_evals_below_best():
    evals = [(500, 0.30), (1000, 0.40), (1500, 0.37), (2000, 0.39), (2500, 0.36)]
    history = [{"kind": "eval", "step": s, "miou": m} for s, m in evals]
    assert ValMiouFalling().check(history) == []  # 0.39 is within 0.02 of the best
    assert [f.first_step for f in ValMiouFalling(evals=1).check(history)] == [1500, 2500]


def test_overfitting_gap():
    history = patch(healthy(), 1001, 1500, train_miou=0.8)
    finding = only(history, "overfitting")
    assert finding.first_step == 1500
    assert "train 0.8000 vs val 0.4000 (gap 0.4000)" in finding.seen


def test_nonfinite_loss_and_skipped_steps():
    history = patch(healthy(), 700, 700, loss_ce=float("nan"))
    history = patch(history, 700, 2000, nonfinite_skipped=3)
    finding = only(history, "loss_nonfinite")
    assert (finding.first_step, finding.last_step) == (700, 700)
    assert "step 700: loss_ce=nan, 3 steps skipped by the trainer" in finding.seen
    assert "TrainerConfig(grad_clip=10.0)" in finding.remedies[0]


def test_exploding_loss():
    finding = only(patch(healthy(), 1200, 1200, loss_ce=40.0), "loss_exploding")
    assert finding.first_step == 1200
    assert "loss_ce 40" in finding.seen


def test_learning_rate_exhausted_while_improving():
    finding = only(healthy(steps=2000, max_steps=2000), "lr_exhausted")
    # poly: (1 - 1950/2000) ** 0.9 = 0.036 < 0.05, while 1900 gives 0.067.
    assert finding.first_step == 1950
    assert finding.last_step == 2000
    assert "TrainerConfig(max_steps=4000)" in finding.remedies[0]


# --- properties -------------------------------------------------------------------------

MONITORS = [
    SelfTrainingStarved(steps=100),
    SelfTrainingFlooded(steps=100),
    DiscriminatorDominant(min_steps=20),
    DiscriminatorCollapsed(steps=100),
    ValMiouFalling(),
    Overfitting(),
    NonFiniteLoss(),
    ExplodingLoss(),
    LearningRateExhausted(),
]


@st.composite
def streams(draw):
    history = [config_record(max_steps=400, log_interval=20)]
    n = draw(st.integers(1, 20))
    for i in range(1, n + 1):
        step = 20 * i
        history.append(
            train_record(
                step,
                window=20,
                kept=draw(st.sampled_from([0.0, 0.5, 1.0])),
                loss_ce=draw(st.floats(0.0, 100.0)),
                loss_d=draw(st.sampled_from([0.01, 0.3, math.log(2), float("nan")])),
                d_fake_p50=draw(st.floats(0.0, 1.0)),
                train_miou=draw(st.floats(0.0, 1.0)),
                lr_g=2.5e-4 * (1 - step / 400) ** 0.9,
            )
        )
        if draw(st.booleans()):
            history.append({"kind": "eval", "step": step, "miou": draw(st.floats(0.0, 1.0))})
    return history


@given(streams())
def test_findings_are_well_formed_and_checks_are_pure(history):
    before = copy.deepcopy(history)
    findings = run_monitors(history, MONITORS)
    assert run_monitors(history, MONITORS) == findings
    assert history == before  # deepcopy keeps float objects, so NaN compares by identity
    steps = {r["step"] for r in history if "step" in r}
    for f in findings:
        assert f.first_step in steps and f.last_step in steps
        assert f.first_step <= f.last_step
        assert f.seen and f.cause and f.remedies


@given(st.integers(1, 40))
def test_a_finding_keeps_its_key_as_the_stream_grows(n):
    # Each prefix of the field report that shows the starvation names it with one key.
    history = field_report()
    prefix = history[: n + 1]
    keys = {f.key for f in SelfTrainingStarved(steps=200).check(prefix)}
    assert keys <= {("st_starved", 1600)}
    assert ("st_starved", 1600) in {f.key for f in SelfTrainingStarved(steps=200).check(history)}


def test_a_flickering_dominance_is_one_finding():
    dominant = {"loss_d": 0.02, "d_fake_p50": 0.03}
    one_gap = patch(patch(healthy(), 1000, 1100, **dominant), 1200, 1300, **dominant)
    assert [(f.first_step, f.last_step) for f in DiscriminatorDominant().check(one_gap)] == [
        (1000, 1300)
    ]
    three_gaps = patch(patch(healthy(), 1000, 1100, **dominant), 1300, 1400, **dominant)
    assert [f.first_step for f in DiscriminatorDominant().check(three_gaps)] == [1000, 1300]


def test_collapse_names_the_signals_that_turned():
    from log_streams import collapsing

    from s4seg.doctor import SelfTrainingCollapse

    (finding,) = SelfTrainingCollapse().check(collapsing())
    assert finding.severity == "critical"
    assert finding.evidence["best_step"] == 1000
    assert "the kept pixels shrank" in finding.seen
    assert "d_auc_accuracy 0.12" in finding.seen
    assert "kept object pixels with the right label fell from 80.0% to 55.0%" in finding.seen
    assert "Confirmation bias" in finding.cause
    assert finding.remedies[0].startswith("trainer.restore_best(): go back to step 1000")


def test_collapse_when_self_training_switches_on_after_the_best_evaluation():
    from log_streams import collapsing_at_onset

    from s4seg.doctor import SelfTrainingCollapse

    (finding,) = SelfTrainingCollapse().check(collapsing_at_onset())
    assert finding.evidence["best_step"] == 1000
    assert "self-training began after the best evaluation (first pixels kept at step" in (
        finding.seen
    )
    assert "2.0% of the kept object pixels have the right label" in finding.seen
    assert "first pseudo-labels" in finding.cause
    assert any("DistributionAlignment()" in r for r in finding.remedies)


def test_collapse_is_silent_while_val_rises_and_for_a_starved_gate():
    from s4seg.doctor import SelfTrainingCollapse

    assert SelfTrainingCollapse().check(healthy()) == []
    # The field report starves (nothing kept at the end): that is st_starved, not this.
    assert SelfTrainingCollapse().check(field_report(with_d_scores=True)) == []


def test_auto_duration_steps_scales_with_the_run():
    from s4seg.doctor.records import auto_duration_steps

    def cfg(max_steps, log):
        return [config_record(max_steps=max_steps, log_interval=log)]

    assert auto_duration_steps(cfg(20_000, 50)) == 500  # the field report's scale
    assert auto_duration_steps(cfg(1500, 25)) == 375  # the S4GAN recipe
    assert auto_duration_steps(cfg(300, 25)) == 75
    assert auto_duration_steps(cfg(5, 1)) == 3  # at least three log windows
    # Without a config: the last logged step and the records' windows.
    assert auto_duration_steps(healthy()[1:]) == 500
    assert auto_duration_steps(healthy(steps=400, log=20)[1:]) == 100
