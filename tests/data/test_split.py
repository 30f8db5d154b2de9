from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import Dataset

from s4seg.data import Unlabelled, labelled_count, split_dataset, split_indices


class _Items(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n
        self.epochs: list[int] = []

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        if not isinstance(i, int):
            raise TypeError(f"index must be a Python int, got {type(i)}")
        return {"image": torch.full((3, 2, 2), float(i)), "mask": torch.full((2, 2), i)}

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


def test_labelled_count_hand_cases() -> None:
    assert labelled_count(10, 3) == 3
    assert labelled_count(10, 1) == 1  # int: a count
    assert labelled_count(10, 1.0) == 10  # float: a fraction
    assert labelled_count(10, 0.25) == 3  # 2.5 rounds half up
    assert labelled_count(10, 0.01) == 1  # never zero labels
    assert labelled_count(12856 + 357791, 0.035) == 12973  # 12972.645
    assert labelled_count(5, np.int64(2)) == 2
    assert labelled_count(5, np.float32(0.4)) == 2


def test_split_matches_seeded_permutation() -> None:
    # Reference: the first k entries of the seed's permutation are labelled.
    lab, unl = split_indices(10, 0.3, seed=7)
    perm = np.random.default_rng(np.random.SeedSequence([7])).permutation(10)
    np.testing.assert_array_equal(lab, np.sort(perm[:3]))
    np.testing.assert_array_equal(unl, np.sort(perm[3:]))
    assert lab.dtype == np.int64 and unl.dtype == np.int64


def test_all_labelled_leaves_nothing_unlabelled() -> None:
    lab, unl = split_indices(4, 1.0)
    assert lab.tolist() == [0, 1, 2, 3]
    assert unl.tolist() == []


def test_seeds_give_different_splits() -> None:
    a, _ = split_indices(100, 10, seed=0)
    b, _ = split_indices(100, 10, seed=1)
    assert a.tolist() != b.tolist()


@pytest.mark.parametrize(
    ("n", "labelled", "err", "match"),
    [
        (10, 0, ValueError, r"\[1, 10\]"),
        (10, 11, ValueError, r"\[1, 10\].*got 11"),
        (10, -1, ValueError, "got -1"),
        (10, 0.0, ValueError, r"\(0, 1\]"),
        (10, 1.5, ValueError, "1.5"),
        (10, math.nan, ValueError, "nan"),
        (10, True, TypeError, "bool"),
        (10, "half", TypeError, "half"),
        (0, 1, ValueError, "empty"),
        (-3, 1, ValueError, "-3"),
    ],
)
def test_bad_arguments_name_the_value(n, labelled, err, match) -> None:
    with pytest.raises(err, match=match):
        split_indices(n, labelled)


def test_bad_seed() -> None:
    with pytest.raises(ValueError, match="seed"):
        split_indices(10, 2, seed=-1)


labelled_arg = st.one_of(
    st.integers(1, 10_000), st.floats(0.0, 1.0, exclude_min=True, allow_nan=False)
)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 500), labelled=labelled_arg, seed=st.integers(0, 2**32))
def test_split_is_disjoint_covering_sorted_and_deterministic(n, labelled, seed) -> None:
    if isinstance(labelled, int):
        labelled = min(labelled, n)
    lab, unl = split_indices(n, labelled, seed=seed)
    assert len(lab) == labelled_count(n, labelled) >= 1
    assert set(lab.tolist()).isdisjoint(unl.tolist())
    assert sorted(lab.tolist() + unl.tolist()) == list(range(n))
    assert np.all(np.diff(lab) > 0) and np.all(np.diff(unl) > 0)
    lab2, unl2 = split_indices(n, labelled, seed=seed)
    np.testing.assert_array_equal(lab, lab2)
    np.testing.assert_array_equal(unl, unl2)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 300), data=st.data())
def test_more_labels_keep_the_earlier_ones(n, data) -> None:
    k1 = data.draw(st.integers(1, n - 1))
    k2 = data.draw(st.integers(k1, n))
    small, _ = split_indices(n, k1, seed=3)
    big, _ = split_indices(n, k2, seed=3)
    assert set(small.tolist()) <= set(big.tolist())


def test_unlabelled_drops_only_the_mask_and_forwards_set_epoch() -> None:
    ds = _Items(3)
    u = Unlabelled(ds)
    assert len(u) == 3
    item = u[2]
    assert set(item) == {"image"}
    assert torch.equal(item["image"], ds[2]["image"])
    u.set_epoch(4)
    assert ds.epochs == [4]


def test_unlabelled_rejects_non_dict_items() -> None:
    with pytest.raises(TypeError, match="dicts"):
        Unlabelled([torch.zeros(3)])[0]  # type: ignore[arg-type]


def test_split_dataset_views() -> None:
    ds = _Items(10)
    lab, unl = split_dataset(ds, 0.3, seed=5)
    lab_idx, unl_idx = split_indices(10, 0.3, seed=5)
    assert len(lab) == 3 and len(unl) == 7
    # Items come from the right indices, indexed with Python ints.
    assert [int(lab[i]["mask"][0, 0]) for i in range(3)] == lab_idx.tolist()
    assert [int(unl[i]["image"][0, 0, 0]) for i in range(7)] == unl_idx.tolist()
    assert all("mask" not in unl[i] for i in range(7))
    assert "mask" in lab[0]
