"""Shared fixtures: a tiny generator and tiny loaders, so trainer tests run in seconds."""

from __future__ import annotations

import dataclasses
import os

# Quiet and deterministic on 2 cores; the kernel tests set TRITON_INTERPRET themselves.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

# Triton decorates its own library when first imported, and s4seg.data pulls it in via
# torch._dynamo: the interpreter flag must be set before that, i.e. here.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from hypothesis import settings
from torch import nn
from torch.utils.data import DataLoader, Subset

from s4seg.data import InfiniteLoader, SyntheticShapes, Unlabelled
from s4seg.methods import METHODS, S4GAN
from s4seg.models import FMDiscriminator
from s4seg.training.trainer import Trainer, TrainerConfig

torch.set_num_threads(1)
settings.register_profile("s4seg", max_examples=20, deadline=None)
settings.load_profile("s4seg")


class TinyGenerator(nn.Module):
    """A two-layer conv net with the generator interface (backbone/head parameter split)."""

    def __init__(self, num_classes: int = 6, width: int = 8) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.backbone = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def backbone_parameters(self):
        return self.backbone.parameters()

    def head_parameters(self):
        return self.head.parameters()


SIZE = 32


def make_trainer(
    callbacks=(),
    seed: int = 0,
    generator=None,
    pseudo_filter=None,
    method_object=None,
    extra_loaders=None,
    **overrides,
) -> Trainer:
    """A Trainer on 32x32 synthetic images with a tiny generator; config overrides as kwargs.

    Without ``method_object`` the method is built by name (``method=...``, default
    S4GAN with an explicit discriminator and ``pseudo_filter``); overrides that are no
    TrainerConfig field (``lr_d``, ``lambda_fm``, ...) go to that method.
    """
    torch.manual_seed(seed)
    data = SyntheticShapes(24, image_size=SIZE, seed=0)
    labelled, unlabelled = Subset(data, range(8)), Unlabelled(Subset(data, range(8, 24)))
    fields = {f.name for f in dataclasses.fields(TrainerConfig)}
    method_kwargs = {k: overrides.pop(k) for k in list(overrides) if k not in fields}
    cfg = TrainerConfig(
        **{"max_steps": 6, "log_interval": 2, "eval_interval": 3, "device": "cpu", **overrides}
    )
    method = method_object
    if method is None:
        if cfg.method == "s4gan":
            method = S4GAN(
                discriminator=FMDiscriminator(data.num_classes),
                pseudo_filter=pseudo_filter,
                **method_kwargs,
            )
        else:
            method = METHODS[cfg.method](**method_kwargs)
    elif method_kwargs:
        raise TypeError(f"not TrainerConfig fields: {sorted(method_kwargs)}")
    return Trainer(
        generator or TinyGenerator(num_classes=data.num_classes),
        InfiniteLoader(labelled, 2, seed=1),
        unlabelled_loader=InfiniteLoader(unlabelled, 2, seed=2),
        loaders={"d": InfiniteLoader(labelled, 2, seed=3), **(extra_loaders or {})},
        val_loader=DataLoader(Subset(data, range(4)), batch_size=2),
        config=cfg,
        callbacks=callbacks,
        method=method,
    )


def assert_resume_is_bit_identical(
    tmp_path, factory, steps: int = 6, stop: int = 3, generator_factory=None, extra_loaders=None
) -> None:
    """A run stopped at ``stop``, checkpointed and resumed in a fresh trainer (global RNG
    disturbed) ends with exactly the weights of an uninterrupted run: the generator and
    every network the method owns (discriminator, teacher)."""
    from s4seg.training.checkpoint import read_checkpoint, save_atomic

    def build(seed: int = 0):
        torch.manual_seed(seed)
        gen = generator_factory() if generator_factory is not None else None
        extra = extra_loaders() if extra_loaders is not None else None
        return make_trainer(
            method_object=factory(), max_steps=steps, seed=seed, generator=gen, extra_loaders=extra
        )

    straight = build()
    straight.fit()
    first = build()
    first.fit(until=stop)
    path = save_atomic(first.state_dict(), tmp_path / "ckpt.pt")
    torch.rand(100)  # disturb the global RNG: the checkpoint restores it
    second = build(seed=99)
    second.load_state_dict(read_checkpoint(path))
    assert second.step == stop
    second.fit()
    pairs = [("generator", straight.generator, second.generator)]
    theirs = second.method.modules()
    pairs += [(name, m, theirs[name]) for name, m in straight.method.modules().items()]
    for part, a, b in pairs:
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(x, y), f"{part}.{name}"
