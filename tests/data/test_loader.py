from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

from s4seg.data import (
    Augmented,
    Compose,
    InfiniteLoader,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    SyntheticShapes,
)


class _Indexed(Dataset):
    """Item i is {"index": i}; counts loads and records set_epoch calls."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.loads = 0
        self.epochs: list[int] = []

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        self.loads += 1
        return {"index": i}

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


def take(loader: InfiniteLoader, k: int) -> list[list[int]]:
    return [next(loader)["index"].tolist() for _ in range(k)]


def flat(batches) -> list[int]:
    return list(itertools.chain.from_iterable(batches))


def test_epoch_order_is_the_seeded_permutation() -> None:
    loader = InfiniteLoader(_Indexed(10), 3, seed=5)
    batches = take(loader, 6)  # 3 batches per epoch (drop_last), 2 epochs
    for epoch in range(2):
        ref = np.random.default_rng(np.random.SeedSequence([5, epoch])).permutation(10)
        assert flat(batches[3 * epoch : 3 * epoch + 3]) == ref[:9].tolist()
    assert loader.state_dict() == {"epoch": 1, "batches_in_epoch": 3}


def test_each_epoch_is_a_permutation_and_epochs_differ() -> None:
    loader = InfiniteLoader(_Indexed(12), 4, seed=0)
    epochs = [flat(take(loader, 3)) for _ in range(4)]
    assert all(sorted(e) == list(range(12)) for e in epochs)
    assert len({tuple(e) for e in epochs}) == 4


def test_seed_decides_the_order() -> None:
    a = take(InfiniteLoader(_Indexed(20), 5, seed=1), 8)
    b = take(InfiniteLoader(_Indexed(20), 5, seed=1), 8)
    c = take(InfiniteLoader(_Indexed(20), 5, seed=2), 8)
    assert a == b and a != c


def test_no_shuffle_and_keep_last() -> None:
    loader = InfiniteLoader(_Indexed(5), 2, shuffle=False, drop_last=False)
    assert take(loader, 4) == [[0, 1], [2, 3], [4], [0, 1]]
    assert loader.batches_per_epoch == 3


def test_set_epoch_reaches_the_dataset_each_pass() -> None:
    ds = _Indexed(4)
    loader = InfiniteLoader(ds, 2)
    take(loader, 5)  # epochs 0, 1, and the first batch of 2
    assert ds.epochs == [0, 1, 2]


def test_set_epoch_reaches_an_augmented_dataset_inside_a_subset() -> None:
    aug = Augmented(SyntheticShapes(6, image_size=16), RandomHorizontalFlip())
    loader = InfiniteLoader(Subset(aug, [0, 2, 4]), 3)
    take_images = [next(loader)["image"] for _ in range(3)]
    assert aug.epoch == 2
    assert take_images[0].shape == (3, 3, 16, 16)


def test_resume_skips_without_loading() -> None:
    ds = _Indexed(10)
    loader = InfiniteLoader(ds, 2, seed=3)
    loader.load_state_dict({"epoch": 4, "batches_in_epoch": 3})
    batch = next(loader)["index"].tolist()
    assert ds.loads == 2  # only the returned batch was loaded
    ref = np.random.default_rng(np.random.SeedSequence([3, 4])).permutation(10)
    assert batch == ref[6:8].tolist()


@pytest.mark.parametrize("cut", [0, 1, 2, 3, 5, 7])
def test_resume_is_bit_identical(cut: int) -> None:
    # 10 samples, batch 4, drop_last: 2 batches per epoch; cuts hit every
    # position, epoch boundaries included.
    aug = Compose([RandomScale(0.75, 1.25), RandomCrop(12), RandomHorizontalFlip()])

    def make() -> InfiniteLoader:
        return InfiniteLoader(Augmented(SyntheticShapes(10, image_size=16), aug, seed=1), 4, seed=9)

    reference = make()
    ref = [next(reference) for _ in range(8)]
    first = make()
    for _ in range(cut):
        next(first)
    state = first.state_dict()
    resumed = make()
    resumed.load_state_dict(dict(state))
    for want in ref[cut:]:
        got = next(resumed)
        assert torch.equal(got["image"], want["image"])
        assert torch.equal(got["mask"], want["mask"])


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 30),
    batch_size=st.integers(1, 8),
    drop_last=st.booleans(),
    seed=st.integers(0, 1000),
    cut=st.integers(0, 12),
)
def test_resume_property(n, batch_size, drop_last, seed, cut) -> None:
    if drop_last and n < batch_size:
        with pytest.raises(ValueError, match=f"{n} samples.*batch_size={batch_size}"):
            InfiniteLoader(_Indexed(n), batch_size, drop_last=drop_last)
        return
    reference = InfiniteLoader(_Indexed(n), batch_size, seed=seed, drop_last=drop_last)
    ref = take(reference, cut + 4)
    per_epoch = reference.batches_per_epoch
    assert all(len(b) == batch_size for b in ref) or not drop_last
    if not drop_last:  # every epoch covers the dataset exactly
        epoch0 = flat(ref[:per_epoch]) if len(ref) >= per_epoch else None
        assert epoch0 is None or sorted(epoch0) == list(range(n))
    first = InfiniteLoader(_Indexed(n), batch_size, seed=seed, drop_last=drop_last)
    take(first, cut)
    resumed = InfiniteLoader(_Indexed(n), batch_size, seed=seed, drop_last=drop_last)
    resumed.load_state_dict(first.state_dict())
    assert take(resumed, 4) == ref[cut:]


def test_distributed_sampler_sets_epoch_and_splits_ranks() -> None:
    ds = _Indexed(12)
    samplers = [
        DistributedSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=7) for r in (0, 1)
    ]
    loaders = [InfiniteLoader(ds, 3, sampler=s) for s in samplers]
    per_rank = [take(loader, 4) for loader in loaders]  # 2 batches per epoch per rank
    for epoch in range(2):
        seen = flat(flat(b[2 * epoch : 2 * epoch + 2]) for b in per_rank)
        assert sorted(seen) == list(range(12))
    assert samplers[0].epoch == 1
    samplers[0].set_epoch(1)
    assert flat(per_rank[0][2:]) == list(samplers[0])
    assert per_rank[0][:2] != per_rank[0][2:]


def test_workers_give_the_same_batches_and_new_augmentations_each_epoch() -> None:
    aug = Compose([RandomScale(0.75, 1.25), RandomCrop(12), RandomHorizontalFlip()])

    def make(**kw) -> InfiniteLoader:
        ds = Augmented(SyntheticShapes(8, image_size=16), aug, seed=2)
        return InfiniteLoader(ds, 4, seed=0, **kw)

    single = make()
    ref = [next(single)["image"] for _ in range(6)]  # 3 epochs
    workers = make(num_workers=2, persistent_workers=True)
    got = [next(workers)["image"] for _ in range(6)]
    # Same per-sample seeds whichever process loads them; persistent workers
    # still see set_epoch (the epoch is shared memory), so epochs differ.
    assert all(torch.equal(a, b) for a, b in zip(ref, got, strict=True))
    assert not torch.equal(got[0], got[2])
    resumed = make(num_workers=2)
    resumed.load_state_dict({"epoch": 1, "batches_in_epoch": 1})
    assert torch.equal(next(resumed)["image"], ref[3])


def test_errors_name_the_sizes() -> None:
    with pytest.raises(ValueError, match="empty loader"):
        InfiniteLoader(_Indexed(0), 2)
    with pytest.raises(ValueError, match=r"3 samples, fewer than batch_size=4.*drop_last=False"):
        InfiniteLoader(_Indexed(3), 4)
    assert take(InfiniteLoader(_Indexed(3), 4, drop_last=False, shuffle=False), 1) == [[0, 1, 2]]
    with pytest.raises(ValueError, match="batch_size"):
        InfiniteLoader(_Indexed(3), 0)
    with pytest.raises(ValueError, match="num_workers >= 1"):
        InfiniteLoader(_Indexed(3), 1, persistent_workers=True)


def test_bad_state_is_rejected() -> None:
    loader = InfiniteLoader(_Indexed(10), 5)
    with pytest.raises(ValueError, match="missing"):
        loader.load_state_dict({"epoch": 1})
    with pytest.raises(ValueError, match="exceeds the 2 batches"):
        loader.load_state_dict({"epoch": 0, "batches_in_epoch": 3})
    with pytest.raises(ValueError, match="epoch"):
        loader.load_state_dict({"epoch": -1, "batches_in_epoch": 0})
    loader.load_state_dict({"epoch": 0, "batches_in_epoch": 2})  # end of epoch 0: rolls over
    next(loader)
    assert loader.state_dict() == {"epoch": 1, "batches_in_epoch": 1}
