"""The generator's default optimizer, the check that keeps each parameter once, lr factors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

__all__ = ["check_each_param_once", "default_g_optimizer", "set_lr_factor"]

if TYPE_CHECKING:
    from s4seg.training.trainer import TrainerConfig


def default_g_optimizer(generator: nn.Module, cfg: TrainerConfig) -> torch.optim.Optimizer:
    """SGD with the head at ``head_lr_mult`` x the backbone; every parameter listed once.

    The original S4GAN/AdvSemiSeg code built its groups from overlapping module
    lists, so backbone weights appeared several times and trained at about 3x the
    nominal learning rate; s4seg does not (see docs: differences from the original).
    """
    backbone = getattr(generator, "backbone_parameters", None)
    head = getattr(generator, "head_parameters", None)
    if callable(backbone) and callable(head):
        groups = [
            {"params": list(backbone()), "lr": cfg.lr_g},
            {"params": list(head()), "lr": cfg.lr_g * cfg.head_lr_mult},
        ]
    else:
        groups = [{"params": list(generator.parameters()), "lr": cfg.lr_g}]
    return torch.optim.SGD(
        groups, lr=cfg.lr_g, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )


def check_each_param_once(opt: torch.optim.Optimizer) -> None:
    """Raise if a parameter appears in more than one place of ``opt``'s groups."""
    seen: set[int] = set()
    for group in opt.param_groups:
        for p in group["params"]:
            if id(p) in seen:
                raise ValueError(
                    f"a parameter of shape {tuple(p.shape)} appears twice in {type(opt).__name__}: "
                    "it would train at a multiple of its learning rate; list each parameter once"
                )
            seen.add(id(p))


def set_lr_factor(opt: torch.optim.Optimizer | None, factor: float) -> None:
    """Set every group's lr to its ``base_lr`` (recorded at construction) times ``factor``."""
    for group in opt.param_groups if opt is not None else ():
        group.setdefault("base_lr", group["lr"])
        group["lr"] = group["base_lr"] * factor
