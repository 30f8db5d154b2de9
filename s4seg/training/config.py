"""The loop's settings: :class:`TrainerConfig`, every number range-checked where it is set."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from s4seg.checks import check_count, check_int, check_real

__all__ = ["RESUMABLE_CHANGES", "TrainerConfig"]

# Settings that may change between a checkpoint and its resumed run.
RESUMABLE_CHANGES = ("max_steps", "log_interval", "eval_interval", "early_stop_patience", "device")


@dataclass
class TrainerConfig:
    """Settings of the loop; the defaults are the S4GAN paper's code where it has one.

    What a method adds (the discriminator's lr, the weights of its terms, thresholds)
    are the method's own settings: ``S4GAN(lr_d=..., lambda_fm=...)``.
    """

    # The training method by name (s4seg.methods.METHODS): "s4gan", "supervised" (CE on
    # labels only), "advsemiseg", "mean_teacher", "fixmatch", "unimatch"; a Method object passed to
    # the Trainer sets it to that object's name.
    method: str = "s4gan"
    max_steps: int = 2000
    lr_g: float = 2.5e-4  # SGD lr of the backbone
    head_lr_mult: float = 10.0  # the head trains at 10x, as in DeepLab
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    warmup_steps: int = 0  # linear warm-up of every learning rate
    grad_clip: float | None = None  # max global gradient norm, of every optimizer's module
    amp: Literal["none", "bf16", "fp16"] = "none"  # autocast dtype, used on CUDA only
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    ignore_index: int = 255
    log_interval: int = 10
    eval_interval: int = 500
    early_stop_patience: int | None = None  # evals without a new best mIoU before stopping
    eval_tile: int | None = (
        None  # evaluate in overlapping square tiles of this side (sliding window)
    )
    check_finite: bool = True  # one host sync per step so that a NaN never reaches the weights
    check_inputs: bool = True  # mask-value checks (host syncs); off once the data is known good
    sync_bn: bool = False  # under torchrun: batch-norm statistics over all ranks' batches
    channels_last: bool = False  # NHWC memory format for models and images (faster convs on GPU)
    compile_generator: bool = False  # torch.compile the generator's training forward
    max_nonfinite_steps: int = 10  # consecutive skipped steps before giving up

    def __post_init__(self) -> None:
        # Every number is range-checked here, naming the field: a bad setting fails at
        # construction, not as gradient ascent or a rising lr thousands of steps later.
        if not isinstance(self.method, str) or not self.method:
            raise ValueError(f"method must be a method's name, got {self.method!r}")
        if self.amp not in ("none", "bf16", "fp16"):
            raise ValueError(f"amp must be 'none', 'bf16' or 'fp16', got {self.amp!r}")
        if not isinstance(self.device, str) or not self.device:
            raise TypeError(f"TrainerConfig device must be a device name, got {self.device!r}")
        own = {"owner": "TrainerConfig"}
        finite = {"high": math.inf, "high_open": True, **own}
        for name in ("max_steps", "log_interval", "eval_interval", "max_nonfinite_steps"):
            setattr(self, name, check_count(getattr(self, name), name, minimum=1, **own))
        self.warmup_steps = check_count(self.warmup_steps, "warmup_steps", **own)
        self.lr_g = check_real(self.lr_g, "lr_g", low=0.0, hint="0 freezes the generator", **finite)
        self.head_lr_mult = check_real(
            self.head_lr_mult,
            "head_lr_mult",
            low=0.0,
            hint="the head's lr is lr_g x this",
            **finite,
        )
        self.momentum = check_real(
            self.momentum, "momentum", low=0.0, high=1.0, high_open=True, **own
        )
        self.weight_decay = check_real(self.weight_decay, "weight_decay", low=0.0, **finite)
        self.poly_power = check_real(
            self.poly_power,
            "poly_power",
            low=0.0,
            hint="the lr factor is (1 - step / max_steps) ** poly_power: a negative power makes "
            "it rise, 0 keeps it constant",
            **finite,
        )
        if self.grad_clip is not None:
            self.grad_clip = check_real(
                self.grad_clip,
                "grad_clip",
                low=0.0,
                low_open=True,
                hint="the largest gradient norm; None turns clipping off (0 stops learning, a "
                "negative norm ascends the gradient)",
                **finite,
            )
        self.ignore_index = check_int(self.ignore_index, "ignore_index", **own)
        if self.early_stop_patience is not None:
            self.early_stop_patience = check_count(
                self.early_stop_patience, "early_stop_patience", minimum=1, **own
            )
        if self.eval_tile is not None:
            self.eval_tile = check_count(self.eval_tile, "eval_tile", minimum=1, **own)
        for name in (
            "check_finite",
            "check_inputs",
            "sync_bn",
            "channels_last",
            "compile_generator",
        ):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(
                    f"TrainerConfig {name} must be True or False, got {getattr(self, name)!r}"
                )
