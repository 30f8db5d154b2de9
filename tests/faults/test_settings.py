"""Settings that would break training without a word fail at construction, naming the field."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from conftest import TinyGenerator

from s4seg.methods import S4GAN
from s4seg.training import Trainer, TrainerConfig

BAD = [
    ("grad_clip", -1.0),  # gradient ascent: loss 4.4 -> 60.5 before
    ("grad_clip", 0.0),  # no learning at all
    ("grad_clip", math.nan),
    ("head_lr_mult", -10.0),
    ("head_lr_mult", math.inf),
    ("poly_power", -1.0),  # the lr rises
    ("lr_g", -1e-3),  # failed inside torch without naming the setting
    ("lr_g", math.nan),  # NaN weights after one update, with a finite loss
    ("lr_g", math.inf),
    ("momentum", 1.0),
    ("momentum", -0.1),
    ("weight_decay", -5e-4),
    ("warmup_steps", -1),
    ("warmup_steps", 1.5),
    ("max_steps", 0),
    ("log_interval", 0),
    ("eval_interval", 0),
    ("early_stop_patience", 0),
    ("eval_tile", 0),
    ("max_nonfinite_steps", 0),
    ("ignore_index", 1.5),
    ("check_finite", "yes"),
    ("channels_last", 1),
]


@pytest.mark.parametrize(("field", "value"), BAD, ids=[f"{f}={v}" for f, v in BAD])
def test_a_bad_setting_is_refused_at_construction_naming_the_field(field, value):
    with pytest.raises((ValueError, TypeError), match=rf"TrainerConfig {field}\b"):
        TrainerConfig(**{field: value})


def test_every_numeric_field_has_a_check():
    numeric = {
        f.name
        for f in dataclasses.fields(TrainerConfig)
        if any(t in str(f.type) for t in ("int", "float"))
    }
    assert numeric <= {field for field, _ in BAD}


def test_good_settings_pass_and_are_normalised():
    cfg = TrainerConfig(lr_g=0, grad_clip=10, poly_power=0.0, early_stop_patience=3)
    assert cfg.lr_g == 0.0 and isinstance(cfg.lr_g, float) and cfg.grad_clip == 10.0
    assert TrainerConfig() == TrainerConfig()  # the defaults are valid


def test_a_method_setting_is_checked_by_the_method():
    with pytest.raises(ValueError, match="lambda_st"):
        S4GAN(lambda_st=-1.0)


def test_an_injected_optimizer_with_a_nonfinite_lr_is_refused_naming_it():
    gen = TinyGenerator()
    with pytest.raises(ValueError, match=r"optimizer \('g'\) group 0 has lr=nan"):
        Trainer(
            gen,
            iter([]),
            config=TrainerConfig(method="supervised", device="cpu"),
            g_optimizer=torch.optim.SGD(gen.parameters(), lr=math.nan),
        )
