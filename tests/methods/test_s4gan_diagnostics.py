"""rank_auc and discriminator_diagnostics against hand-computed values and plain references.

The references: AUC as the share of (positive, negative) pairs ordered right, ties 1/2
(an O(n^2) loop), and scipy's Mann-Whitney U; per-image accuracy and entropy with
Python loops over pixels.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu
from torch import Tensor, nn

from s4seg.methods.s4gan_diagnostics import discriminator_diagnostics, rank_auc
from s4seg.models.discriminator_inputs import sharpen

fast = settings(max_examples=25, deadline=None)
IGNORE = 255


def pairwise_auc(scores: list[float], positive: list[bool]) -> float:
    pos = [s for s, p in zip(scores, positive, strict=True) if p]
    neg = [s for s, p in zip(scores, positive, strict=True) if not p]
    if not pos or not neg:
        return math.nan
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


# --- rank_auc ---------------------------------------------------------------------------


def test_rank_auc_by_hand():
    # Positives 0.9, 0.4; negatives 0.5, 0.1: pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) = 3/4.
    scores = torch.tensor([0.9, 0.5, 0.4, 0.1])
    assert rank_auc(scores, torch.tensor([True, False, True, False])) == 0.75
    # A tie between a positive and a negative counts 1/2.
    assert rank_auc(torch.tensor([0.3, 0.3]), torch.tensor([True, False])) == 0.5
    assert rank_auc(torch.tensor([1.0, 0.0]), torch.tensor([True, False])) == 1.0


def test_rank_auc_is_nan_with_one_class():
    assert math.isnan(rank_auc(torch.tensor([0.1, 0.2]), torch.tensor([True, True])))
    assert math.isnan(rank_auc(torch.tensor([0.1, 0.2]), torch.tensor([False, False])))
    assert math.isnan(rank_auc(torch.zeros(0), torch.zeros(0, dtype=torch.bool)))


@fast
@given(
    data=st.lists(
        st.tuples(st.integers(-5, 5).map(lambda v: v / 2), st.booleans()), min_size=2, max_size=40
    )
)
def test_rank_auc_matches_the_pairwise_count_and_scipy(data):
    scores, positive = [s for s, _ in data], [p for _, p in data]
    auc = rank_auc(torch.tensor(scores), torch.tensor(positive))
    ref = pairwise_auc(scores, positive)
    if math.isnan(ref):
        assert math.isnan(auc)
        return
    assert auc == pytest.approx(ref, abs=1e-12)
    pos = [s for s, p in data if p]
    neg = [s for s, p in data if not p]
    u = mannwhitneyu(pos, neg, alternative="two-sided", method="asymptotic").statistic
    assert auc == pytest.approx(u / (len(pos) * len(neg)), abs=1e-12)
    # Reversing the scores swaps every pair's order; AUC is a probability.
    assert 0.0 <= auc <= 1.0
    assert auc + rank_auc(-torch.tensor(scores), torch.tensor(positive)) == pytest.approx(1.0)


def test_rank_auc_checks_its_inputs():
    with pytest.raises(TypeError, match="bool"):
        rank_auc(torch.tensor([0.1, 0.2]), torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="same shape"):
        rank_auc(torch.tensor([0.1, 0.2]), torch.tensor([True]))
    with pytest.raises(ValueError, match="NaN"):
        rank_auc(torch.tensor([0.1, math.nan]), torch.tensor([True, False]))


# --- stand-in models ----------------------------------------------------------------------


class TableGenerator(nn.Module):
    """Returns ``logits[k]`` for the image whose pixel (0, 0, 0) holds k."""

    def __init__(self, logits: Tensor) -> None:
        super().__init__()
        self.register_buffer("logits", logits)
        self.training_seen: list[bool] = []

    def forward(self, x: Tensor) -> Tensor:
        self.training_seen.append(self.training)
        return self.logits[x[:, 0, 0, 0].long()]


class EntropyDiscriminator(nn.Module):
    """logit = -(mean entropy of the class channels): it judges softness only."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.training_seen: list[bool] = []

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self.training_seen.append(self.training)
        maps = x[:, : self.num_classes]
        ent = -(maps * maps.clamp_min(1e-30).log()).sum(1).mean((1, 2))
        return -ent, ent[:, None]


class ChannelDiscriminator(nn.Module):
    """logit = mean of class channel ``k`` of the map (sees nothing else)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        score = x[:, self.k].mean((1, 2))
        return score, score[:, None]


def indexed_images(n: int, size: tuple[int, int]) -> Tensor:
    images = torch.zeros(n, 3, *size)
    images[:, 0, 0, 0] = torch.arange(n, dtype=torch.float32)
    return images


def binary_entropy(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


# --- discriminator_diagnostics: a hand-computed case -----------------------------------------


def hand_case():
    """Four 2x2 images, 2 classes, every pixel class 1; z = logit(1) - logit(0) per image.

    z = -4, -2 (sharp, wrong), +1, +0.5 (soft, right): accuracy 0, 0, 1, 1 and entropy
    rising from the first image to the last.
    """
    z = torch.tensor([-4.0, -2.0, 1.0, 0.5])
    logits = torch.zeros(4, 2, 2, 2)
    logits[:, 1] = z[:, None, None]
    batch = {"image": indexed_images(4, (2, 2)), "mask": torch.ones(4, 2, 2, dtype=torch.long)}
    return logits, z, batch


def test_a_softness_judge_gets_entropy_auc_one_and_accuracy_auc_zero():
    logits, z, batch = hand_case()
    g, d = TableGenerator(logits), EntropyDiscriminator(2)
    out = discriminator_diagnostics(g, d, [batch], num_classes=2, device="cpu")
    # D ranks the two sharp wrong images first: the sharper half is exactly the top half
    # (AUC 1), the more accurate half exactly the bottom half (AUC 0).
    assert out["d_auc_entropy"] == 1.0
    assert out["d_auc_accuracy"] == 0.0
    assert out["diag_images"] == 4
    assert out["diag_accuracy_mean"] == pytest.approx(0.5)
    entropies = [binary_entropy(1 / (1 + math.exp(-float(v)))) for v in z]
    assert out["diag_entropy_mean"] == pytest.approx(sum(entropies) / 4, rel=1e-5)
    d_fake = [1 / (1 + math.exp(h)) for h in entropies]  # sigmoid(-entropy)
    assert out["diag_d_fake_mean"] == pytest.approx(sum(d_fake) / 4, rel=1e-5)
    # One-hot ground truth has entropy 0: sigmoid(0) = 0.5, above every prediction.
    assert out["diag_d_real_mean"] == pytest.approx(0.5)
    assert out["d_auc_real_fake"] == 1.0
    # Background is class 0 and every pixel is class 1: object accuracy = accuracy.
    assert out["diag_object_accuracy_mean"] == pytest.approx(0.5)
    assert out["d_auc_object_accuracy"] == 0.0


def test_a_correctness_judge_gets_accuracy_auc_one():
    # D scores the mean probability of class 1, which every pixel is: more right, higher.
    logits, _, batch = hand_case()
    out = discriminator_diagnostics(
        TableGenerator(logits), ChannelDiscriminator(1), [batch], num_classes=2, device="cpu"
    )
    assert out["d_auc_accuracy"] == 1.0
    # Sharper: images 0 and 1 (z = -4, -2), which D scores lowest.
    assert out["d_auc_entropy"] == 0.0


def test_fake_transform_is_what_d_sees_and_what_the_entropy_measures():
    logits, _, batch = hand_case()
    out = discriminator_diagnostics(
        TableGenerator(logits),
        EntropyDiscriminator(2),
        [batch],
        num_classes=2,
        device="cpu",
        fake_transform=lambda p: sharpen(p, 0.5),
    )
    sharp = sharpen(logits.softmax(1), 0.5)
    ent = -(sharp * sharp.log()).sum(1).mean((1, 2))
    assert out["diag_entropy_mean"] == pytest.approx(float(ent.mean()), rel=1e-5)
    assert out["diag_d_fake_mean"] == pytest.approx(float(torch.sigmoid(-ent).mean()), rel=1e-5)
    assert out["diag_accuracy_mean"] == pytest.approx(0.5)  # argmax unchanged


# --- against a plain per-pixel reference ----------------------------------------------------


def reference(logits: Tensor, masks: Tensor, score_channel: int) -> dict[str, float]:
    """Per-image values by loops over pixels, then the pairwise AUC on median splits."""
    probs = logits.softmax(1)
    acc, obj_acc, ent, d_fake = [], [], [], []
    for b in range(masks.shape[0]):
        valid = obj = right = right_obj = 0
        h = 0.0
        for i in range(masks.shape[1]):
            for j in range(masks.shape[2]):
                y = int(masks[b, i, j])
                if y == IGNORE:
                    continue
                p = probs[b, :, i, j]
                ok = int(p.argmax()) == y
                valid, right = valid + 1, right + ok
                if y != 0:
                    obj, right_obj = obj + 1, right_obj + ok
                h -= sum(float(q) * math.log(float(q)) for q in p)
        if valid == 0:
            continue
        acc.append(right / valid)
        obj_acc.append(right_obj / obj if obj else math.nan)
        ent.append(h / valid)
        d_fake.append(1 / (1 + math.exp(-float(probs[b, score_channel].mean()))))

    def median(v: list[float]) -> float:
        s = sorted(v)
        return (s[(len(s) - 1) // 2] + s[len(s) // 2]) / 2

    m_acc, m_ent = median(acc), median(ent)
    with_obj = [k for k, v in enumerate(obj_acc) if not math.isnan(v)]
    m_obj = median([obj_acc[k] for k in with_obj])
    return {
        "d_auc_accuracy": pairwise_auc(d_fake, [a >= m_acc for a in acc]),
        "d_auc_entropy": pairwise_auc(d_fake, [e <= m_ent for e in ent]),
        "d_auc_object_accuracy": pairwise_auc(
            [d_fake[k] for k in with_obj], [obj_acc[k] >= m_obj for k in with_obj]
        ),
        "diag_accuracy_mean": sum(acc) / len(acc),
        "diag_object_accuracy_mean": sum(obj_acc[k] for k in with_obj) / len(with_obj),
        "diag_entropy_mean": sum(ent) / len(ent),
        "diag_d_fake_mean": sum(d_fake) / len(d_fake),
        "diag_images": float(len(acc)),
    }


@fast
@given(seed=st.integers(0, 2**16))
def test_matches_a_per_pixel_reference_with_ignore_and_background(seed):
    g = torch.Generator().manual_seed(seed)
    n, c, size = 7, 3, (3, 4)
    logits = torch.randn(n, c, *size, generator=g) * 2
    masks = torch.randint(0, c, (n, *size), generator=g)
    masks[torch.rand(n, *size, generator=g) < 0.2] = IGNORE
    masks[0] = IGNORE  # an image without ground truth: skipped
    masks[1] = 0  # an image with background only: no object accuracy
    images = indexed_images(n, size)
    loader = [
        {"image": images[:3], "mask": masks[:3]},
        {"image": images[3:], "mask": masks[3:]},
    ]
    # Channel 2 of D's input is the probability map of class 2: some signal, not all.
    out = discriminator_diagnostics(
        TableGenerator(logits), ChannelDiscriminator(2), loader, num_classes=c, device="cpu"
    )
    ref = reference(logits, masks, score_channel=2)
    for key, value in ref.items():
        if math.isnan(value):
            assert math.isnan(out[key]), key
        else:
            assert out[key] == pytest.approx(value, rel=1e-5, abs=1e-9), key


def test_logits_smaller_than_the_mask_are_upsampled_like_the_generator_does():
    g = torch.Generator().manual_seed(0)
    small = torch.randn(4, 3, 2, 3, generator=g)
    masks = torch.randint(0, 3, (4, 4, 6), generator=g)
    batch = {"image": indexed_images(4, (4, 6)), "mask": masks}
    full = F.interpolate(small, size=(4, 6), mode="bilinear", align_corners=False)
    a = discriminator_diagnostics(
        TableGenerator(small), ChannelDiscriminator(1), [batch], num_classes=3, device="cpu"
    )
    b = discriminator_diagnostics(
        TableGenerator(full), ChannelDiscriminator(1), [batch], num_classes=3, device="cpu"
    )
    assert a == pytest.approx(b, nan_ok=True)


# --- modes, batches, errors -------------------------------------------------------------------


@pytest.mark.parametrize(("g_mode", "d_mode"), [(True, True), (False, True), (True, False)])
def test_runs_in_eval_mode_and_restores_the_modes(g_mode, d_mode):
    logits, _, batch = hand_case()
    g, d = TableGenerator(logits), EntropyDiscriminator(2)
    g.train(g_mode)
    d.train(d_mode)
    discriminator_diagnostics(g, d, [batch], num_classes=2, device="cpu")
    assert g.training_seen == [False] and d.training_seen == [False, False]
    assert (g.training, d.training) == (g_mode, d_mode)


def test_modes_are_restored_when_a_batch_fails():
    logits, _, batch = hand_case()
    g, d = TableGenerator(logits), EntropyDiscriminator(2)
    bad = {"image": batch["image"], "mask": torch.full_like(batch["mask"], 7)}
    with pytest.raises(ValueError, match="label value 7"):
        discriminator_diagnostics(g, d, [bad], num_classes=2, device="cpu")
    assert g.training and d.training


def test_max_batches_limits_what_is_read():
    logits = torch.randn(10, 2, 2, 2)
    images, masks = indexed_images(10, (2, 2)), torch.randint(0, 2, (10, 2, 2))
    drawn = []

    def loader():
        for k in range(5):
            drawn.append(k)
            yield {"image": images[2 * k : 2 * k + 2], "mask": masks[2 * k : 2 * k + 2]}

    out = discriminator_diagnostics(
        TableGenerator(logits),
        EntropyDiscriminator(2),
        loader(),
        num_classes=2,
        device="cpu",
        max_batches=2,
    )
    assert out["diag_images"] == 4 and drawn == [0, 1]
    with pytest.raises(ValueError, match="max_batches"):
        discriminator_diagnostics(
            TableGenerator(logits),
            EntropyDiscriminator(2),
            [],
            num_classes=2,
            device="cpu",
            max_batches=0,
        )


def test_an_empty_loader_gives_nans_and_zero_images():
    out = discriminator_diagnostics(
        TableGenerator(torch.zeros(1, 2, 2, 2)),
        EntropyDiscriminator(2),
        [],
        num_classes=2,
        device="cpu",
    )
    assert out["diag_images"] == 0
    assert all(math.isnan(v) for k, v in out.items() if k != "diag_images")


def test_equal_accuracies_give_a_nan_auc_not_a_verdict():
    # Every image fully right: one side of the median split is empty.
    logits, _, batch = hand_case()
    logits = logits.abs()
    out = discriminator_diagnostics(
        TableGenerator(logits), EntropyDiscriminator(2), [batch], num_classes=2, device="cpu"
    )
    assert math.isnan(out["d_auc_accuracy"])
    assert out["d_auc_entropy"] == 1.0


def test_rejects_unlabelled_batches_and_wrong_class_counts():
    logits, _, batch = hand_case()
    with pytest.raises(TypeError, match="'image' and 'mask'"):
        discriminator_diagnostics(
            TableGenerator(logits),
            EntropyDiscriminator(2),
            [{"image": batch["image"]}],
            num_classes=2,
            device="cpu",
        )
    with pytest.raises(ValueError, match="num_classes=2"):
        discriminator_diagnostics(
            TableGenerator(logits), EntropyDiscriminator(3), [batch], num_classes=3, device="cpu"
        )


def test_with_the_real_discriminator_the_values_are_well_formed():
    from s4seg.models import FMDiscriminator

    torch.manual_seed(0)
    logits = torch.randn(4, 3, 16, 16)
    batch = {"image": indexed_images(4, (16, 16)), "mask": torch.randint(0, 3, (4, 16, 16))}
    d = FMDiscriminator(3, ndf=4)
    out = discriminator_diagnostics(TableGenerator(logits), d, [batch], num_classes=3, device="cpu")
    again = discriminator_diagnostics(
        TableGenerator(logits), d, [batch], num_classes=3, device="cpu"
    )
    assert out == again  # dropout is off in eval mode
    assert 0 < out["diag_d_fake_mean"] < 1 and 0 < out["diag_d_real_mean"] < 1
    assert d.training
