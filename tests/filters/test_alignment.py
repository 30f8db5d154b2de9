"""DistributionAlignment: pseudo-labels whose class mix follows the labelled pixels'."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from s4seg.filters import DistributionAlignment


def logits_of(probs: list[list[float]]) -> torch.Tensor:
    """(1, C, 1, W) logits whose softmax at pixel w is probs[w]."""
    return torch.tensor(probs).log().T.reshape(1, len(probs[0]), 1, len(probs))


def test_hand_computed_first_batch() -> None:
    # Model mean = (0.8, 0.2); target from the labels = (0.5, 0.5): ratio (0.625, 2.5).
    da = DistributionAlignment(momentum=0.9)
    da.observe_labels(torch.tensor([[[0, 1]]]), 2, 255)
    out = da(logits_of([[0.9, 0.1], [0.7, 0.3]])).exp()
    a = torch.tensor([0.9 * 0.625, 0.1 * 2.5])
    b = torch.tensor([0.7 * 0.625, 0.3 * 2.5])
    torch.testing.assert_close(out[0, :, 0, 0], a / a.sum())
    torch.testing.assert_close(out[0, :, 0, 1], b / b.sum())


def test_running_means_and_ignore_pixels() -> None:
    da = DistributionAlignment(momentum=0.5)
    da.observe_labels(torch.tensor([[[0, 0, 255, 1]]]), 2, 255)  # 2/3 class 0
    da.observe_labels(torch.tensor([[[1, 1]]]), 2, 255)  # all class 1
    torch.testing.assert_close(da.target, torch.tensor([1 / 3, 2 / 3]))
    da(logits_of([[0.5, 0.5]]))
    da(logits_of([[0.9, 0.1]]))
    torch.testing.assert_close(da.model, torch.tensor([0.7, 0.3]))


def test_an_under_segmenting_model_predicts_the_rare_class_more_often() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, 16, 16, generator=gen)
    logits[:, 0] += 2.5  # background-heavy predictions
    before = (logits.argmax(1) != 0).float().mean()
    da = DistributionAlignment(target=torch.tensor([0.6, 0.2, 0.2]))
    after = (da(logits).argmax(1) != 0).float().mean()
    assert after > before


def test_state_round_trip_and_fixed_target() -> None:
    da = DistributionAlignment(target=torch.tensor([3.0, 1.0]))
    torch.testing.assert_close(da.target, torch.tensor([0.75, 0.25]))
    da.observe_labels(torch.tensor([[[1]]]), 2, 255)  # a fixed target does not move
    torch.testing.assert_close(da.target, torch.tensor([0.75, 0.25]))
    da(logits_of([[0.6, 0.4]]))
    again = DistributionAlignment(target=torch.tensor([1.0, 1.0]))
    again.load_state_dict(da.state_dict())
    x = logits_of([[0.2, 0.8]])
    torch.testing.assert_close(again(x.clone()), da(x.clone()))
    with pytest.raises(ValueError, match="momentum"):
        DistributionAlignment(momentum=1.0)
    with pytest.raises(ValueError, match="distribution"):
        DistributionAlignment(target=torch.tensor([-1.0, 2.0]))


@given(st.integers(0, 1000))
def test_aligned_probabilities_are_distributions(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    da = DistributionAlignment(target=torch.softmax(torch.randn(4, generator=gen), 0))
    out = da(torch.randn(2, 4, 3, 3, generator=gen) * 3).exp()
    torch.testing.assert_close(out.sum(1), torch.ones(2, 3, 3))
    assert bool((out >= 0).all())
