"""The generator's default optimizer, the check that keeps each parameter once, lr factors."""

from __future__ import annotations

import pytest
import torch
from conftest import TinyGenerator, make_trainer

from s4seg.training import Trainer, TrainerConfig
from s4seg.training.optim import check_each_param_once, default_g_optimizer, set_lr_factor


def test_default_optimizer_lists_each_parameter_once_with_head_at_10x():
    t = make_trainer()
    groups = t.g_optimizer.param_groups
    n_params = sum(len(g["params"]) for g in groups)
    assert n_params == len(list(t.generator.parameters()))
    assert groups[1]["base_lr"] == pytest.approx(10 * groups[0]["base_lr"])


def test_duplicate_parameter_in_optimizer_is_rejected():
    gen = TinyGenerator()
    params = list(gen.parameters())
    # torch itself rejects a parameter in two groups, and only warns about one listed
    # twice within a group: that is the case that trained at a multiple of its lr.
    with pytest.warns(UserWarning):
        opt = torch.optim.SGD([{"params": params + params[:1]}], lr=0.1)
    with pytest.raises(ValueError, match="appears twice"):
        Trainer(gen, iter([]), g_optimizer=opt, config=TrainerConfig(method="supervised"))


def test_groups_follow_the_generators_backbone_head_split():
    gen = TinyGenerator()
    opt = default_g_optimizer(gen, TrainerConfig(lr_g=0.01, head_lr_mult=5.0, momentum=0.8))
    backbone, head = opt.param_groups
    assert [p.shape for p in backbone["params"]] == [p.shape for p in gen.backbone.parameters()]
    assert backbone["lr"] == 0.01 and head["lr"] == pytest.approx(0.05)
    assert backbone["momentum"] == 0.8 and backbone["weight_decay"] == 5e-4
    one = default_g_optimizer(torch.nn.Conv2d(3, 2, 1), TrainerConfig(lr_g=0.02))
    assert len(one.param_groups) == 1 and one.param_groups[0]["lr"] == 0.02


def test_lr_factor_scales_from_the_recorded_base():
    opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1}], lr=0.1)
    set_lr_factor(opt, 1.0)
    set_lr_factor(opt, 0.5)
    set_lr_factor(opt, 0.25)  # from base_lr, not compounding
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)
    set_lr_factor(None, 0.5)  # no optimizer: nothing to do


def test_check_each_param_once_names_the_shape():
    w = torch.nn.Parameter(torch.zeros(2, 3))
    with pytest.warns(UserWarning):
        opt = torch.optim.SGD([{"params": [w, w]}], lr=0.1)
    with pytest.raises(ValueError, match=r"shape \(2, 3\) appears twice"):
        check_each_param_once(opt)
