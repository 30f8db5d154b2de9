from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from s4seg.data import (
    Augmented,
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    Unlabelled,
    sample_seed,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- hand-computed cases -------------------------------------------------------


def test_flip_of_a_2x3() -> None:
    image = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])
    mask = torch.tensor([[0, 1, 2], [3, 4, 5]])
    out_i, out_m = RandomHorizontalFlip(p=1.0)(image, mask, gen())
    assert out_i.tolist() == [[[3.0, 2.0, 1.0], [6.0, 5.0, 4.0]]]
    assert out_m.tolist() == [[2, 1, 0], [5, 4, 3]]
    same_i, same_m = RandomHorizontalFlip(p=0.0)(image, mask, gen())
    assert torch.equal(same_i, image) and torch.equal(same_m, mask)


def test_crop_pads_bottom_right_with_fill_and_ignore() -> None:
    image = torch.tensor([[[0.5, 0.25], [0.75, 1.0]]])
    mask = torch.tensor([[1, 2], [3, 0]])
    out_i, out_m = RandomCrop(3, ignore_index=255)(image, mask, gen())
    # 2x2 -> padded to 3x3; a 3x3 crop of a 3x3 input has one position.
    assert out_i.tolist() == [[[0.5, 0.25, 0.0], [0.75, 1.0, 0.0], [0.0, 0.0, 0.0]]]
    assert out_m.tolist() == [[1, 2, 255], [3, 0, 255], [255, 255, 255]]
    out_i, out_m = RandomCrop((2, 3), ignore_index=7, fill=-1.0)(image, mask, gen())
    assert out_i.tolist() == [[[0.5, 0.25, -1.0], [0.75, 1.0, -1.0]]]
    assert out_m.tolist() == [[1, 2, 7], [3, 0, 7]]


def test_crop_offsets_follow_the_generator() -> None:
    # Reference: the two randint draws a crop makes, replayed on the same seed.
    image = torch.arange(5 * 7, dtype=torch.float32).view(1, 5, 7)
    mask = torch.arange(5 * 7).view(5, 7)
    g = gen(11)
    top = int(torch.randint(0, 5 - 2 + 1, (), generator=g))
    left = int(torch.randint(0, 7 - 3 + 1, (), generator=g))
    out_i, out_m = RandomCrop((2, 3))(image, mask, gen(11))
    assert torch.equal(out_i, image[:, top : top + 2, left : left + 3])
    assert torch.equal(out_m, mask[top : top + 2, left : left + 3])


def test_scale_2x_nearest_mask_and_bilinear_image() -> None:
    image = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    mask = torch.tensor([[0, 1], [2, 3]])
    out_i, out_m = RandomScale(2.0, 2.0)(image, mask, gen())
    assert out_m.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    # Bilinear, align_corners=False: first row samples x = -0.25, 0.25, 0.75, 1.25
    # (clamped at the border): 0, 0.25, 0.75, 1.
    assert out_i[0, 0].tolist() == [0.0, 0.25, 0.75, 1.0]
    ref = F.interpolate(image[None], size=(4, 4), mode="bilinear", align_corners=False)[0]
    assert torch.equal(out_i, ref)
    assert out_m.dtype == mask.dtype


def test_scale_down_keeps_labels_and_rounds_size() -> None:
    mask = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    image = mask[None].float()
    out_i, out_m = RandomScale(0.5, 0.5)(image, mask, gen())
    assert out_m.tolist() == [[0, 1], [2, 3]]
    assert out_i.shape == (1, 2, 2)
    _, odd = RandomScale(0.5, 0.5)(torch.zeros(3, 5, 3), torch.zeros(5, 3, dtype=torch.long), gen())
    assert odd.shape == (2, 2)  # round(2.5) = 2 (banker's), round(1.5) = 2


def test_scale_factor_is_drawn_from_the_generator() -> None:
    g = gen(5)
    s = 0.5 + (2.0 - 0.5) * float(torch.rand((), generator=g, dtype=torch.float64))
    out, _ = RandomScale(0.5, 2.0)(torch.zeros(3, 40, 30), None, gen(5))
    assert out.shape[1:] == (round(40 * s), round(30 * s))


def test_normalize_hand_case() -> None:
    image = torch.tensor([[[0.5]], [[1.0]], [[0.0]]])
    mask = torch.tensor([[4]])
    out_i, out_m = Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 1.0))(image, mask, gen())
    assert out_i.flatten().tolist() == [0.0, 2.0, -0.5]
    assert out_m is mask


def test_compose_shares_one_generator_in_order() -> None:
    image = torch.rand(3, 9, 9, generator=gen(1))
    mask = torch.randint(0, 5, (9, 9), generator=gen(2))
    flip, crop = RandomHorizontalFlip(0.5), RandomCrop(4)
    g = gen(3)
    ref_i, ref_m = crop(*flip(image, mask, g), g)
    out_i, out_m = Compose([flip, crop])(image, mask, gen(3))
    assert torch.equal(out_i, ref_i) and torch.equal(out_m, ref_m)
    assert "RandomCrop" in repr(Compose([flip, crop]))


def test_mask_none_gives_the_same_image() -> None:
    t = Compose([RandomScale(0.7, 1.3), RandomCrop(8), RandomHorizontalFlip()])
    image = torch.rand(3, 10, 12, generator=gen(0))
    mask = torch.zeros(10, 12, dtype=torch.long)
    with_mask, _ = t(image, mask, gen(9))
    without, none = t(image, None, gen(9))
    assert none is None
    assert torch.equal(with_mask, without)


# -- bad input -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "err", "match"),
    [
        (lambda: RandomScale(0.0, 1.0), ValueError, "min_scale=0"),
        (lambda: RandomScale(2.0, 1.0), ValueError, "min_scale <= max_scale"),
        (lambda: RandomCrop(0), ValueError, "positive"),
        (lambda: RandomCrop((3, 4, 5)), TypeError, "pair"),
        (lambda: RandomCrop(4, ignore_index=1.5), TypeError, "ignore_index"),
        (lambda: RandomHorizontalFlip(1.5), ValueError, "1.5"),
        (lambda: Normalize((0.5, 0.5), (1.0, 1.0, 1.0)), ValueError, "same length"),
        (lambda: Normalize((0.5,), (0.0,)), ValueError, "positive"),
        (lambda: Compose([1]), TypeError, "callables"),
    ],
)
def test_bad_arguments(make, err, match) -> None:
    with pytest.raises(err, match=match):
        make()


def test_bad_tensors_name_the_shapes() -> None:
    crop = RandomCrop(2)
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(3, 4\)"):
        crop(torch.zeros(3, 4, 4), torch.zeros(3, 4, dtype=torch.long), gen())
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        crop(torch.zeros(4, 4), None, gen())
    with pytest.raises(TypeError, match="float"):
        crop(torch.zeros(3, 4, 4, dtype=torch.uint8), None, gen())
    with pytest.raises(ValueError, match="3 channels"):
        Normalize((0.5,), (1.0,))(torch.zeros(3, 2, 2), None, gen())


# -- properties -------------------------------------------------------------------

sizes = st.integers(1, 20)


@settings(max_examples=25, deadline=None)
@given(
    h=sizes,
    w=sizes,
    ch=st.integers(1, 24),
    cw=st.integers(1, 24),
    lo=st.floats(0.25, 2.0),
    spread=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31),
    values=st.lists(st.integers(0, 20), min_size=1, max_size=4),
)
def test_pipeline_output_size_and_label_set(h, w, ch, cw, lo, spread, seed, values) -> None:
    g = gen(seed)
    mask = torch.tensor(values)[torch.randint(0, len(values), (h, w), generator=g)]
    image = torch.rand(3, h, w, generator=g)
    t = Compose([RandomScale(lo, lo + spread), RandomCrop((ch, cw)), RandomHorizontalFlip()])
    out_i, out_m = t(image, mask, g)
    assert out_i.shape == (3, ch, cw) and out_m.shape == (ch, cw)
    assert set(out_m.unique().tolist()) <= set(values) | {255}
    assert out_m.dtype == torch.int64 and out_i.dtype == torch.float32


@settings(max_examples=25, deadline=None)
@given(h=sizes, w=sizes, ch=sizes, cw=sizes, seed=st.integers(0, 2**31))
def test_crop_and_flip_keep_image_and_mask_aligned(h, w, ch, cw, seed) -> None:
    # Encode each pixel's mask value in the image; any misalignment shows up.
    mask = torch.randint(0, 200, (h, w), generator=gen(seed))
    image = mask[None].float().repeat(3, 1, 1)
    t = Compose([RandomHorizontalFlip(), RandomCrop((ch, cw), fill=-1.0)])
    out_i, out_m = t(image, mask, gen(seed + 1))
    labelled = out_m != 255
    assert torch.equal(out_i[0][labelled], out_m[labelled].float())
    assert bool((out_i[:, ~labelled] == -1.0).all())


# -- Augmented -------------------------------------------------------------------


class _Plain(torch.utils.data.Dataset):
    def __init__(self, n: int = 6) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = gen(i)
        return {
            "image": torch.rand(3, 12, 12, generator=g),
            "mask": torch.randint(0, 3, (12, 12), generator=g),
            "id": i,
        }


AUG = Compose([RandomScale(0.5, 1.5), RandomCrop(8), RandomHorizontalFlip()])


def test_augmented_uses_the_per_sample_seed() -> None:
    ds = _Plain()
    aug = Augmented(ds, AUG, seed=4)
    aug.set_epoch(2)
    ref_i, ref_m = AUG(ds[3]["image"], ds[3]["mask"], gen(sample_seed(4, 2, 3)))
    out = aug[3]
    assert torch.equal(out["image"], ref_i) and torch.equal(out["mask"], ref_m)
    assert out["id"] == 3 and out["image"].is_contiguous()


def test_augmented_is_order_independent_and_changes_with_epoch_and_seed() -> None:
    aug = Augmented(_Plain(), AUG, seed=0)
    forward = [aug[i]["image"] for i in range(6)]
    backward = [aug[i]["image"] for i in reversed(range(6))][::-1]
    assert all(torch.equal(a, b) for a, b in zip(forward, backward, strict=True))
    aug.set_epoch(1)
    assert aug.epoch == 1
    assert not all(torch.equal(a, aug[i]["image"]) for i, a in enumerate(forward))
    aug.set_epoch(0)
    assert all(torch.equal(a, aug[i]["image"]) for i, a in enumerate(forward))
    other = Augmented(_Plain(), AUG, seed=1)
    assert not all(torch.equal(a, other[i]["image"]) for i, a in enumerate(forward))


def test_augmented_unlabelled_has_no_mask() -> None:
    aug = Augmented(Unlabelled(_Plain()), AUG)
    assert "mask" not in aug[0] and aug[0]["image"].shape == (3, 8, 8)


def test_sample_seed_is_distinct_and_non_negative() -> None:
    seeds = {sample_seed(0, e, i) for e in range(5) for i in range(200)}
    assert len(seeds) == 1000
    assert all(0 <= s < 2**63 for s in seeds)


def test_augmented_bad_arguments() -> None:
    with pytest.raises(TypeError, match="callable"):
        Augmented(_Plain(), "flip")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epoch"):
        Augmented(_Plain(), AUG).set_epoch(-1)
    with pytest.raises(TypeError, match="samples like"):
        Augmented([torch.zeros(3, 2, 2)], AUG)[0]  # type: ignore[arg-type]


def test_a_true_mask_moves_with_its_image_and_the_draws_do_not_change() -> None:
    from torch.utils.data import Subset

    from s4seg.data import SyntheticShapes, Unlabelled

    data = SyntheticShapes(6, image_size=16, seed=0)
    transform = Compose([RandomScale(0.5, 1.5), RandomCrop(12), RandomHorizontalFlip()])
    labelled = Augmented(data, transform, seed=3)
    measured = Augmented(Unlabelled(Subset(data, range(6)), keep_masks=True), transform, seed=3)
    plain = Augmented(Unlabelled(Subset(data, range(6))), transform, seed=3)
    for i in range(6):
        assert torch.equal(measured[i]["true_mask"], labelled[i]["mask"])
        assert torch.equal(measured[i]["image"], plain[i]["image"])
