"""PseudoLabelStats: images and pixels kept, as separate fields with their unit."""

from __future__ import annotations

import torch

from s4seg.ops import PseudoLabelStats


def test_from_mask_counts_images_with_a_kept_pixel_and_pixels():
    mask = torch.zeros(3, 2, 2, dtype=torch.bool)
    mask[0, 0, 0] = mask[0, 1, 1] = mask[2, 0, 1] = True
    s = PseudoLabelStats.from_mask(mask)
    assert (int(s.images_kept), int(s.images_total)) == (2, 3)
    assert (int(s.pixels_kept), int(s.pixels_total)) == (3, 12)
    assert float(s.pixel_fraction) == 0.25


def test_sum_log_and_sentence():
    a = PseudoLabelStats.from_mask(torch.ones(1, 2, 2, dtype=torch.bool))
    b = PseudoLabelStats.from_mask(torch.zeros(3, 2, 2, dtype=torch.bool))
    both = a + b
    assert both.to_log() == {
        "st_images_kept": 1,
        "st_images_total": 4,
        "st_pixels_kept": 4,
        "st_pixels_total": 16,
        "st_pixels_frac": 0.25,
    }
    assert set(both.to_log("kept")) == {
        "kept_images_kept", "kept_images_total", "kept_pixels_kept", "kept_pixels_total",
        "kept_pixels_frac",
    }  # fmt: skip
    assert both.describe() == "1 of 4 images, 4 of 16 pixels (25.0%)"


def test_an_empty_batch_has_a_zero_fraction():
    s = PseudoLabelStats.from_mask(torch.zeros(0, 2, 2, dtype=torch.bool))
    assert float(s.pixel_fraction) == 0.0 and s.to_log()["st_pixels_frac"] == 0.0
