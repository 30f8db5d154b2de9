"""Non-finite inputs and updates: skipped steps leave nothing behind; counts per optimizer."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from conftest import SIZE, TinyGenerator, make_trainer
from torch.utils.data import Dataset, Subset

from s4seg.callbacks import Checkpointer
from s4seg.data import InfiniteLoader, SyntheticShapes, Unlabelled
from s4seg.methods import S4GAN, StepOutput
from s4seg.models import FMDiscriminator


class Poisoned(Dataset):
    """``dataset`` with ``value`` written into one pixel of sample ``index``."""

    def __init__(self, dataset, index: int, value: float) -> None:
        self.dataset, self.index, self.value = dataset, index, value

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        item = dict(self.dataset[i])
        if i == self.index:
            item["image"] = item["image"].clone()
            item["image"][0, 5, 7] = self.value
        return item


def buffers(t) -> list[torch.Tensor]:
    return [b.clone() for m in (t.generator, *t.method.modules().values()) for b in m.buffers()]


def data():
    return SyntheticShapes(24, image_size=SIZE, seed=0)


def with_labelled(t, dataset):
    t.loaders["labelled"] = InfiniteLoader(dataset, 2, seed=1)
    return t


def first_step_of(loader: InfiniteLoader, index: int) -> int:
    """The step whose batch holds sample ``index`` (one batch per step, epoch 0)."""
    order = loader.epoch_indices(0).tolist()
    return order.index(index) // loader.batch_size


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_nonfinite_pixel_skips_its_step_and_leaves_every_buffer_as_it_was(value):
    t = with_labelled(
        make_trainer(method="supervised"), Poisoned(Subset(data(), range(8)), 5, value)
    )
    bad = first_step_of(t.loaders["labelled"], 5)
    for _ in range(bad):
        t.train_step()
        t.step += 1
    before_buffers, before_weights = buffers(t), [p.clone() for p in t.generator.parameters()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t.train_step()
    for a, b in zip(before_buffers, buffers(t), strict=True):
        assert torch.equal(a, b)  # before: the BatchNorm buffers became NaN
    for a, b in zip(before_weights, t.generator.parameters(), strict=True):
        assert torch.equal(a, b)
    (message,) = (str(w.message) for w in caught)
    assert f"labelled loader, epoch 0 batch {bad}, dataset indices [" in message
    assert "non-finite 'image' values" in message and "(1 values)" in message
    assert t.nonfinite_skipped == {"g": 1}
    t.step += 1
    t.train_step()  # the next batch trains as usual
    assert all(torch.isfinite(b).all() for b in buffers(t))


def test_a_huge_finite_pixel_that_overflows_batchnorm_is_skipped_with_its_inputs_named():
    t = with_labelled(
        make_trainer(method="supervised"), Poisoned(Subset(data(), range(8)), 5, 1e30)
    )
    for _ in range(first_step_of(t.loaders["labelled"], 5)):
        t.train_step()
        t.step += 1
    before = buffers(t)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t.train_step()
    for a, b in zip(before, buffers(t), strict=True):
        assert torch.equal(a, b)  # before: a running_var became inf, with no skip at all
    (message,) = (str(w.message) for w in caught)
    assert "non-finite buffers" in message and "'image' in [0, 1e+30]" in message


def test_s4gan_run_with_a_nan_unlabelled_pixel_keeps_evaluating():
    """Before: NaN BatchNorm buffers froze val mIoU and the diagnostics raised on NaN scores."""
    pool = Unlabelled(Poisoned(Subset(data(), range(8, 24)), 3, math.nan))
    t = make_trainer(max_steps=8, eval_interval=4)
    t.loaders["unlabelled"] = InfiniteLoader(pool, 2, seed=2)
    with pytest.warns(UserWarning, match="unlabelled loader"):
        t.fit()
    assert t.nonfinite_skipped == {"g": 1}
    assert all(torch.isfinite(b).all() for b in buffers(t))
    assert math.isfinite(t.evaluate()["miou"])


class NaNGeneratorLoss(S4GAN):
    """S4GAN whose generator loss is always NaN while its discriminator's is finite."""

    def generator_loss(self, ctx, image, mask):
        out = super().generator_loss(ctx, image, mask)
        return StepOutput(out.loss * float("nan"), out.logs, out.carry)


def test_max_nonfinite_steps_fires_for_the_generator_although_the_discriminator_steps():
    method = NaNGeneratorLoss(discriminator=FMDiscriminator(6))
    t = make_trainer(method_object=method, max_steps=30, max_nonfinite_steps=3)
    with (
        pytest.raises(FloatingPointError, match=r"3 non-finite updates of .*'g'"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        t.fit()  # before: the discriminator's finite steps reset the one shared count
    # Rolled back to the end of step 2 for the emergency checkpoint: 2 skips of G so far.
    assert t.step == 2 and t.nonfinite_skipped == {"g": 2} and t.nonfinite_in_row["d"] == 0


class BreaksWeights(torch.optim.SGD):
    """An optimizer whose update makes a weight NaN although loss and gradients are finite."""

    def step(self, closure=None):
        super().step(closure)
        with torch.no_grad():
            self.param_groups[0]["params"][0].view(-1)[0] = float("nan")


def test_an_update_that_makes_the_weights_nonfinite_stops_the_run_and_is_never_saved(tmp_path):
    keeper = Checkpointer(tmp_path, every=1)
    gen = TinyGenerator()
    t = make_trainer([keeper], generator=gen, method="supervised", max_steps=6)
    t.g_optimizer = BreaksWeights(gen.parameters(), lr=0.01)
    with pytest.raises(FloatingPointError, match="weights of generator are NaN or infinite"):
        t.fit()  # the checkpoint of step 1 refuses them
    assert not keeper.last_path.exists()  # neither a regular nor an emergency checkpoint
    assert t.interruption is not None and not t.interruption.weights_finite

    gen = TinyGenerator()
    t = make_trainer(generator=gen, method="supervised", max_steps=6)
    t.g_optimizer = BreaksWeights(gen.parameters(), lr=0.01)
    with pytest.raises(
        FloatingPointError, match=r"'g'.*NaN or infinite since its update at step 0"
    ):
        t.fit()  # before: trained on, NaN weights and all, with a finite-looking loss count
    assert t.step == 1


def test_a_skipped_discriminator_update_restores_only_its_own_buffers():
    t = make_trainer()
    t.train_step()
    t.step += 1
    d, nan = t.method.discriminator, torch.tensor(float("nan"), requires_grad=True)
    with pytest.warns(UserWarning, match=r"optimizer 'd': non-finite loss \(nan\)"):
        assert not t.optimise(nan, t.method.d_optimizer, d, t.method.d_scaler)
    assert t.nonfinite_skipped == {"d": 1} and t.nonfinite_in_row == {"g": 0, "d": 1}


def test_skip_counts_survive_a_resume(tmp_path):
    from s4seg.training import read_checkpoint, save_atomic

    t = make_trainer(method="supervised")
    t.train_step()
    t.nonfinite_in_row, t.nonfinite_skipped = {"g": 2}, {"g": 5}
    path = save_atomic(t.state_dict(), tmp_path / "c.pt")
    other = make_trainer(method="supervised")
    other.load_state_dict(read_checkpoint(path))
    assert other.nonfinite_in_row == {"g": 2} and other.nonfinite_total == 5
