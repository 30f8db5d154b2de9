"""Distributed training: a 2-process gloo run on the CPU against one process with the combined batch."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DistributedSampler, Subset

from s4seg.callbacks import Callback
from s4seg.data import InfiniteLoader, SyntheticShapes, Unlabelled
from s4seg.distributed import all_reduce_sum, is_distributed, rank
from s4seg.filters import (
    ClasswiseThreshold,
    SelfAdaptiveThreshold,
    TargetRateFilter,
    TargetRateGate,
)
from s4seg.methods import S4GAN, build_method
from s4seg.models import FMDiscriminator
from s4seg.training.trainer import Trainer, TrainerConfig

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed missing")
STEPS, PER_RANK = 3, 2
# Summing two ranks' gradients and averaging differs from one combined backward only
# in float32 rounding.
TOL = dict(rtol=1e-5, atol=1e-6)


class GroupNormGenerator(nn.Module):
    """No batch norm, so per-rank batches and the combined batch see the same math."""

    num_classes = 6

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.ReLU())
        self.head = nn.Conv2d(8, 6, 1)

    def forward(self, x):
        return self.head(self.backbone(x))


def build(method: str, batch: int, distributed: bool, log: list | None = None) -> Trainer:
    torch.manual_seed(0)
    data = Subset(SyntheticShapes(16, image_size=16, seed=0), range(16))

    def loader(ds, seed):
        sampler = DistributedSampler(ds, shuffle=False) if distributed else None
        return InfiniteLoader(ds, batch, shuffle=False, seed=seed, sampler=sampler)

    class Keep(Callback):
        def on_log(self, trainer, record):
            log.append(record)

    return Trainer(
        GroupNormGenerator(),
        loader(data, 1),
        unlabelled_loader=loader(Unlabelled(data), 2),
        loaders={"d": loader(data, 3)},
        config=TrainerConfig(max_steps=STEPS, log_interval=STEPS, device="cpu"),
        method=S4GAN(discriminator=FMDiscriminator(6))
        if method == "s4gan"
        else build_method(method),
        callbacks=[Keep()] if log is not None else [],
    )


def _worker(r: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=r, world_size=2)
    try:
        assert is_distributed() and rank() == r
        sup = build("supervised", PER_RANK, distributed=True).fit()
        log: list = []
        gan = build("s4gan", PER_RANK, distributed=True, log=log).fit()
        filters_agree = _filters_agree(r)
        flat = torch.cat([p.detach().flatten() for p in gan.method.discriminator.parameters()])
        same = all_reduce_sum(flat) / 2  # the mean equals each rank's copy when in sync
        if r == 0:
            torch.save(
                {
                    "supervised": sup.generator.state_dict(),
                    "s4gan_in_sync": bool(torch.allclose(flat, same)),
                    "filters_agree": filters_agree,
                    "log": log,
                    "checkpoint": gan.state_dict(),
                },
                out,
            )
        else:
            assert log == []  # only rank 0 runs callbacks
    finally:
        dist.destroy_process_group()


def _filters_agree(r: int) -> bool:
    """Different data on each rank, the same thresholds everywhere."""
    g = torch.Generator().manual_seed(r)
    logits, d_prob = torch.randn(4, 6, 5, 5, generator=g), torch.rand(4, generator=g)
    decisions = [
        TargetRateGate(0.5).decide(logits=logits, image_scores=d_prob, step=1),
        TargetRateFilter(0.3).decide(logits=logits, step=1),
    ]
    values = [torch.as_tensor(decisions[0].image_threshold), decisions[1].pixel_threshold]
    adaptive = SelfAdaptiveThreshold(6)
    values.append(adaptive.decide(logits=logits, step=1).pixel_threshold)
    values.append(ClasswiseThreshold(6).decide(logits=logits, step=1).pixel_threshold)
    kept = all_reduce_sum(decisions[0].image_keep.sum())
    agree = all(torch.allclose(v, all_reduce_sum(v.float()) / 2) for v in values)
    return agree and int(kept) == 4  # the top half of 2 x 4 images, across ranks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_run_matches_one_process_with_the_combined_batch(tmp_path):
    out = tmp_path / "rank0.pt"
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=2, join=True)
    result = torch.load(out, weights_only=True)

    single = build("supervised", 2 * PER_RANK, distributed=False).fit()
    for key, value in single.generator.state_dict().items():
        torch.testing.assert_close(result["supervised"][key], value, **TOL)
    assert result["s4gan_in_sync"]
    assert result["filters_agree"]
    # A DDP checkpoint holds the bare modules: it loads into a single-process trainer.
    resumed = build("s4gan", 2 * PER_RANK, distributed=False)
    resumed.load_state_dict(result["checkpoint"])
    assert resumed.step == STEPS
    (record,) = result["log"]
    # Counts cover both ranks: 2 ranks x 2 images x 3 steps.
    assert record["st_images_total"] == 2 * PER_RANK * STEPS
    assert record["st_pixels_total"] == 2 * PER_RANK * STEPS * 16 * 16
