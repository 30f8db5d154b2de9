"""DiscriminatorJudgesSoftness: D scores by entropy, not by correctness (eval-record AUCs)."""

from __future__ import annotations

import math

import pytest
from log_streams import config_record, healthy, patch

from s4seg.doctor import (
    DiscriminatorJudgesSoftness,
    Finding,
    default_monitors,
    run_monitors,
)
from s4seg.filters import TargetRateGate

SOFT = {"d_auc_entropy": 0.92, "d_auc_accuracy": 0.52}
EXTRA = {
    "d_auc_object_accuracy": 0.48,
    "d_auc_real_fake": 0.99,
    "diag_d_real_mean": 0.97,
    "diag_d_fake_mean": 0.04,
    "diag_images": 64,
}


def with_aucs(history, first, last, **fields):
    return patch(history, first, last, kind="eval", **fields)


def check(history, **limits):
    return DiscriminatorJudgesSoftness(**limits).check(history)


def test_fires_on_the_pattern_with_numbers_step_and_remedies():
    history = with_aucs(healthy(), 500, 2000, **SOFT, **EXTRA)
    (f,) = check(history)
    assert isinstance(f, Finding)
    assert f.code == "d_judges_softness" and f.severity == "warning"
    assert f.title == "D separates real from fake by entropy, not by correctness"
    # Evaluations every 500 steps of the healthy run: 500, 1000, 1500, 2000.
    assert (f.first_step, f.last_step) == (500, 2000)
    assert f.evidence["evals"] == 4
    assert f.evidence["d_auc_entropy"] == 0.92 and f.evidence["d_auc_accuracy"] == 0.52
    assert "step 2000 over 64 validation images" in f.seen
    assert "AUC 0.92 (d_auc_entropy >= 0.75)" in f.seen
    assert "AUC 0.52 (d_auc_accuracy <= 0.6; 0.5 is no relation)" in f.seen
    assert "AUC 0.48 (d_auc_object_accuracy)" in f.seen
    assert "D(real) mean 0.970, D(fake) mean 0.040" in f.seen
    assert "since step 500 (4 evaluations" in f.seen
    assert "one-hot ground truth" in f.cause and "AUC 0.99" in f.cause
    remedies = "\n".join(f.remedies)
    assert "S4GAN(real_smoothing=0.1, real_noise=0.05, fake_sharpen=0.5)" in remedies
    # The healthy stream's config gate is DiscriminatorGate(0.2): quoted as the run's own.
    assert "AndFilter(DiscriminatorGate(threshold=0.2), PixelConfidenceFilter(0.9))" in remedies
    assert "TargetRateGate(rate=0.5)" in remedies


def test_starts_at_the_first_evaluation_of_the_latest_run_of_them():
    history = with_aucs(healthy(), 500, 2000, d_auc_entropy=0.9, d_auc_accuracy=0.8)
    history = with_aucs(history, 1500, 2000, **SOFT)
    (f,) = check(history)
    assert (f.first_step, f.last_step) == (1500, 2000)
    assert f.evidence["evals"] == 2


def test_silent_when_the_score_tracks_accuracy():
    history = with_aucs(healthy(), 500, 2000, d_auc_entropy=0.92, d_auc_accuracy=0.8)
    assert check(history) == []


def test_silent_when_only_earlier_evaluations_showed_it():
    history = with_aucs(healthy(), 500, 1500, **SOFT)
    history = with_aucs(history, 2000, 2000, d_auc_entropy=0.6, d_auc_accuracy=0.55)
    assert check(history) == []


def test_silent_without_the_keys_and_on_nan():
    assert check(healthy()) == []
    history = with_aucs(healthy(), 500, 2000, d_auc_entropy=0.95)  # no accuracy AUC
    assert check(history) == []
    # A NaN AUC (every image alike) is skipped: the latest record with numbers decides.
    history = with_aucs(healthy(), 500, 1500, **SOFT)
    history = with_aucs(history, 2000, 2000, d_auc_entropy=0.9, d_auc_accuracy=math.nan)
    (f,) = check(history)
    assert f.last_step == 1500


@pytest.mark.parametrize(
    ("ent", "acc", "fires"),
    [(0.75, 0.6, True), (0.7499, 0.5, False), (0.9, 0.6001, False), (1.0, 0.0, True)],
)
def test_limits_are_inclusive(ent, acc, fires):
    history = with_aucs(healthy(), 2000, 2000, d_auc_entropy=ent, d_auc_accuracy=acc)
    assert bool(check(history)) is fires


def test_custom_limits():
    history = with_aucs(healthy(), 2000, 2000, d_auc_entropy=0.7, d_auc_accuracy=0.65)
    assert check(history) == []
    assert len(check(history, min_entropy_auc=0.7, max_accuracy_auc=0.7)) == 1


def test_quotes_a_target_rate_gate_of_the_run_and_falls_back_without_config():
    history = with_aucs(healthy(), 2000, 2000, **SOFT)
    history[0] = config_record(TargetRateGate(0.5))
    (f,) = check(history)
    assert f"AndFilter({TargetRateGate(0.5)!r}, PixelConfidenceFilter(0.9))" in f.remedies[1]
    (g,) = check(history[1:])
    assert "AndFilter(DiscriminatorGate(0.2), PixelConfidenceFilter(0.9))" in g.remedies[1]
    assert "since step" not in g.seen  # one evaluation only


def test_is_a_default_monitor():
    assert any(isinstance(m, DiscriminatorJudgesSoftness) for m in default_monitors())
    history = with_aucs(healthy(), 2000, 2000, **SOFT)
    assert [f.code for f in run_monitors(history, default_monitors())] == ["d_judges_softness"]


def test_a_five_step_run_with_eight_images_is_no_evidence():
    # Issue 19's false alarm: D(real) = D(fake) = 0.50 over 8 validation images at step 5
    # fired as a warning. D had separated nothing, so it cannot be judging softness.
    short = [config_record(max_steps=5, log_interval=1, eval_interval=5)]
    short.append({"kind": "eval", "step": 5, "miou": 0.15, "iou": [0.9, 0, 0, 0, 0, 0],
                  **SOFT, "diag_images": 8, "diag_d_real_mean": 0.50,
                  "diag_d_fake_mean": 0.50})  # fmt: skip
    assert check(short) == []
    late = patch(short, 0, 5, kind="eval", step=500)  # enough steps, still 8 images
    assert check(late) == []
    enough = patch(late, 0, 500, kind="eval", diag_images=64)  # D(real) = D(fake) still
    assert check(enough) == []
    assert len(check(patch(enough, 0, 500, kind="eval", diag_d_real_mean=0.9))) == 1


def test_one_evaluation_is_an_info_with_low_confidence_two_a_warning():
    history = with_aucs(healthy(), 2000, 2000, **SOFT, **EXTRA)
    (f,) = check(history)
    assert f.severity == "info" and f.confidence.startswith("low: 1 evaluation(s) in a row")
    assert "at least 64 validation images each" in f.confidence
    (g,) = check(with_aucs(healthy(), 1500, 2000, **SOFT, **EXTRA))
    assert g.severity == "warning" and g.confidence.startswith("medium: 2 evaluation(s)")
    (h,) = check(with_aucs(healthy(), 500, 2000, **SOFT, **dict(EXTRA, diag_images=200)))
    assert h.confidence.startswith("high: 4 evaluation(s)")
