"""LogWindow: the numbers between two log lines, kept as tensors until the log step."""

from __future__ import annotations

import math

import pytest
import torch

from s4seg.ops import PseudoLabelStats
from s4seg.training.log_window import LogWindow, nonfinite_keys


def stats(kept: int, total: int, images: int = 2) -> PseudoLabelStats:
    mask = torch.zeros(images, total // images, dtype=torch.bool)
    mask.view(-1)[:kept] = True
    return PseudoLabelStats.from_mask(mask.view(images, 1, -1))


def test_losses_are_means_over_the_steps_that_reported_them():
    w = LogWindow()
    w.add({"loss_ce": torch.tensor(1.0), "loss_d": torch.tensor(4.0)})
    w.add({"loss_ce": torch.tensor(3.0)})  # D skipped this step
    w.add({"loss_ce": torch.tensor(5.0), "loss_adv": torch.tensor(0.5)})
    rec = w.flush()
    assert rec["window_steps"] == 3
    assert rec["loss_ce"] == pytest.approx(3.0)
    assert rec["loss_d"] == pytest.approx(4.0)  # one step computed it
    assert rec["loss_adv"] == pytest.approx(0.5)  # a method's own term, same rule


def test_counts_are_summed_with_their_unit_in_the_key():
    w = LogWindow()
    w.add({"stats": stats(3, 8)})
    w.add({"stats": stats(5, 8)})
    rec = w.flush()
    assert rec["st_pixels_kept"] == 8 and rec["st_pixels_total"] == 16
    assert rec["st_images_total"] == 4
    assert rec["st_pixels_frac"] == pytest.approx(0.5)


def test_scores_give_mean_and_quantiles_over_all_images_and_thresholds_the_latest():
    w = LogWindow()
    w.add({"d_fake": torch.tensor([0.0, 1.0]), "gate_threshold": 0.2})
    w.add({"d_fake": torch.tensor([0.5, 0.5]), "gate_threshold": torch.tensor(0.3)})
    rec = w.flush()
    assert rec["d_fake_mean"] == pytest.approx(0.5)
    assert rec["d_fake_p50"] == pytest.approx(0.5)
    assert rec["d_fake_p10"] == pytest.approx(torch.quantile(torch.tensor([0, 1, 0.5, 0.5]), 0.1))
    assert rec["gate_threshold"] == pytest.approx(0.3)


def test_flush_empties_the_window():
    w = LogWindow()
    w.add({"loss_ce": torch.tensor(1.0)})
    w.flush()
    assert w.flush() == {"window_steps": 0}


def test_nonfinite_keys():
    assert nonfinite_keys({"a": 1.0, "b": math.nan, "c": -math.inf, "d": "x", "e": 3}) == ["b", "c"]


def test_the_self_training_weight_of_a_ramp_is_the_latest_steps() -> None:
    # A ramp's weight changes every step: the log line says where it stands now.
    window = LogWindow()
    for weight in (0.1, 0.2, 0.3):
        window.add({"st_weight": weight})
    assert window.flush()["st_weight"] == pytest.approx(0.3)
