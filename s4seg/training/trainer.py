"""A minimal S4GAN trainer (Mittal et al., TPAMI 2019): every part injected, one readable step.

Extend it through callbacks (:mod:`s4seg.callbacks`), not by subclassing the loop.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from s4seg.callbacks import Callback, Checkpointer, check_callbacks
from s4seg.training.checkpoint import config_mismatches, load_checkpoint
from s4seg.distributed import all_reduce_sum, is_distributed, is_main_process, world_size
from s4seg.filters import PseudoLabelFilter
from s4seg.models.inference import predict_logits
from s4seg.training.log_window import LogWindow, nonfinite_keys
from s4seg.losses import (
    DiscriminatorLoss,
    FeatureMatchingLoss,
    SelfTrainingLoss,
    SupervisedCrossEntropy,
)
from s4seg.training.lr_schedule import poly_lr_factor
from s4seg.methods import Method, build_method
from s4seg.metrics import SegmentationMetric
from s4seg.training.optim import (
    check_each_param_once,
    default_d_optimizer,
    default_g_optimizer,
    set_lr_factor,
)

# Settings that may change between a checkpoint and its resumed run.
RESUMABLE_CHANGES = ("max_steps", "log_interval", "eval_interval", "early_stop_patience", "device")


@dataclass
class TrainerConfig:
    """Settings of a run; the defaults are the S4GAN paper's code where it has one."""

    # The training method by name (s4seg.methods.METHODS): "s4gan", "supervised" (CE on
    # labels only), "advsemiseg", "mean_teacher", "fixmatch"; a Method object passed to
    # the Trainer sets it to that object's name.
    method: str = "s4gan"
    max_steps: int = 2000
    lr_g: float = 2.5e-4  # SGD lr of the backbone
    head_lr_mult: float = 10.0  # the head trains at 10x, as in DeepLab
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_d: float = 1e-4  # Adam; ~0.1x lr_g calms a discriminator that wins too hard
    betas_d: tuple[float, float] = (0.9, 0.99)
    poly_power: float = 0.9
    warmup_steps: int = 0  # linear warm-up of both learning rates
    lambda_fm: float = 0.1
    lambda_st: float = 1.0
    d_update_interval: int = 1  # update the discriminator every N steps
    label_smoothing: float = 0.0  # one-sided, on the discriminator's "real" target
    grad_clip: float | None = None  # max global gradient norm, G and D alike
    amp: Literal["none", "bf16", "fp16"] = "none"  # autocast dtype, used on CUDA only
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    ignore_index: int = 255
    log_interval: int = 10
    eval_interval: int = 500
    early_stop_patience: int | None = None  # evals without a new best mIoU before stopping
    eval_window: int | None = None  # sliding-window evaluation with this square window
    check_finite: bool = True  # one host sync per step so that a NaN never reaches the weights
    check_inputs: bool = True  # mask-value checks (host syncs); off once the data is known good
    sync_bn: bool = False  # under torchrun: batch-norm statistics over all ranks' batches
    channels_last: bool = False  # NHWC memory format for models and images (faster convs on GPU)
    compile_generator: bool = False  # torch.compile the generator's training forward
    max_nonfinite_steps: int = 10  # consecutive skipped steps before giving up

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or not self.method:
            raise ValueError(f"method must be a method's name, got {self.method!r}")
        if self.amp not in ("none", "bf16", "fp16"):
            raise ValueError(f"amp must be 'none', 'bf16' or 'fp16', got {self.amp!r}")
        for name in ("max_steps", "log_interval", "eval_interval", "d_update_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class Trainer:
    """Trains a generator (and, for S4GAN, a discriminator) from injected parts.

    Args:
        generator: maps images (B, 3, H, W) to logits (B, C, H, W); ``num_classes``.
        labelled_loader: infinite iterator of ``{"image", "mask"}`` batches for CE.
        unlabelled_loader: infinite iterator of ``{"image"}`` batches (S4GAN).
        d_loader: labelled batches shown to the discriminator as "real" (S4GAN).
        val_loader: finite iterable of labelled batches for :meth:`evaluate`.
        discriminator: default: the method's (S4GAN: :class:`FMDiscriminator`).
        pseudo_filter: default: the method's (S4GAN: :class:`DiscriminatorGate` at 0.2).
        g_optimizer: default SGD from the config.
        d_optimizer: default Adam from the config.
        callbacks: default none; :func:`s4seg.callbacks.default_callbacks` gives
            logs, progress bar and checkpoints in a run folder.
        method: the training method (:mod:`s4seg.methods`); default: the one that
            ``config.method`` names, with its default settings.
    """

    def __init__(
        self,
        generator: nn.Module,
        labelled_loader: Iterator[dict[str, Tensor]],
        *,
        unlabelled_loader: Iterator[dict[str, Tensor]] | None = None,
        d_loader: Iterator[dict[str, Tensor]] | None = None,
        val_loader: Iterable[dict[str, Tensor]] | None = None,
        discriminator: nn.Module | None = None,
        pseudo_filter: PseudoLabelFilter | None = None,
        config: TrainerConfig | None = None,
        g_optimizer: torch.optim.Optimizer | None = None,
        d_optimizer: torch.optim.Optimizer | None = None,
        callbacks: Sequence[Callback] = (),
        method: Method | None = None,
    ) -> None:
        cfg = config or TrainerConfig()
        if method is None:
            method = build_method(cfg.method)
        elif method.name != cfg.method:
            cfg = dataclasses.replace(cfg, method=method.name)
        self.config, self.method = cfg, method
        self.device = _resolve_device(cfg.device)
        self.num_classes = _num_classes(generator)
        if is_distributed() and cfg.sync_bn:
            generator = nn.SyncBatchNorm.convert_sync_batchnorm(generator)
        self.generator = generator.to(self.device)
        self.labelled_loader, self.val_loader = labelled_loader, val_loader
        self.loaders: dict[str, Any] = {"labelled": labelled_loader}
        given = {"unlabelled": unlabelled_loader, "d": d_loader}
        missing = [f"{name}_loader" for name in method.loaders if given[name] is None]
        if missing:
            raise ValueError(f"method {method.name!r} needs {' and '.join(missing)}")
        self.loaders.update({name: given[name] for name in method.loaders})
        discriminator = discriminator or method.default_discriminator(self.num_classes)
        if discriminator is not None:
            d_classes = getattr(discriminator, "num_classes", self.num_classes)
            if d_classes != self.num_classes:
                raise ValueError(
                    f"generator predicts {self.num_classes} classes but the discriminator "
                    f"expects {d_classes}: build it with num_classes={self.num_classes}"
                )
        self.discriminator = discriminator.to(self.device) if discriminator is not None else None
        # Under torchrun the step runs the DDP wrappers; checkpoints hold the bare modules,
        # so a DDP checkpoint loads in a single process and the other way round.
        if cfg.channels_last:
            self.generator.to(memory_format=torch.channels_last)
            if self.discriminator is not None:
                self.discriminator.to(memory_format=torch.channels_last)
        self._g, self._d = _ddp(self.generator, self.device), _ddp(self.discriminator, self.device)
        if cfg.compile_generator:
            self._g = torch.compile(self._g)
        self.pseudo_filter = pseudo_filter or method.default_filter()
        self.ce = SupervisedCrossEntropy(cfg.ignore_index, check_labels=cfg.check_inputs)
        self.fm, self.st = FeatureMatchingLoss(), SelfTrainingLoss(cfg.ignore_index)
        self.d_loss = DiscriminatorLoss(cfg.label_smoothing)
        self.g_optimizer = g_optimizer or default_g_optimizer(self.generator, cfg)
        self.d_optimizer = None
        if self.discriminator is not None:
            self.d_optimizer = d_optimizer or default_d_optimizer(self.discriminator, cfg)
        for opt in (self.g_optimizer, self.d_optimizer):
            if opt is not None:
                check_each_param_once(opt)
                set_lr_factor(opt, 1.0)  # records each group's base_lr
        use_amp = cfg.amp != "none" and self.device.type == "cuda"
        if cfg.amp != "none" and not use_amp:
            warnings.warn(
                f"amp={cfg.amp!r} is used on CUDA only; training in fp32 on {self.device}",
                stacklevel=2,
            )
        self.amp_dtype = (
            {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp) if use_amp else None
        )
        scale = self.amp_dtype is torch.float16
        self.g_scaler = torch.amp.GradScaler(self.device.type, enabled=scale)
        self.d_scaler = torch.amp.GradScaler(self.device.type, enabled=scale)
        self.callbacks = check_callbacks(callbacks)
        self.train_metric = SegmentationMetric(self.num_classes, cfg.ignore_index)
        self.step, self.should_stop = 0, False
        self.best_miou, self.best_step, self.evals_since_best = -math.inf, -1, 0
        self.nonfinite_in_row = self.nonfinite_total = 0
        self._window = LogWindow()
        self._data_seconds, self._window_start = 0.0, time.perf_counter()
        method.setup(self)

    # ----------------------------------------------------------------- one step
    def train_step(self) -> dict[str, Tensor]:
        """One step of the method at ``self.step``; returns detached tensors (no host sync)."""
        cfg, g, step = self.config, self._g, self.step
        factor = poly_lr_factor(step, cfg.max_steps, cfg.poly_power, cfg.warmup_steps)
        set_lr_factor(self.g_optimizer, factor)
        set_lr_factor(self.d_optimizer, factor)
        g.train()
        img_l, mask_l = self._labelled_batch("labelled")
        with self._autocast():  # cross-entropy on a labelled batch
            logits_l = g(img_l)
            loss_ce = self.ce(logits_l, mask_l)
        self.train_metric.update(logits_l.detach(), mask_l)
        out: dict[str, Any] = {"loss_ce": loss_ce.detach()}
        loss_g, logs = self.method.generator_loss(self, loss_ce, img_l, mask_l, logits_l)
        out.update(logs)
        self._optimise(self.g_optimizer, self.g_scaler, loss_g, g)
        if self.discriminator is not None:
            out.update(self.method.discriminator_step(self))
        self.method.after_step(self)
        return out

    def _optimise(self, opt: Any, scaler: Any, loss: Tensor, model: nn.Module) -> None:
        opt.zero_grad(set_to_none=True)
        # The one intended host sync per step (config.check_finite): a NaN or inf loss
        # is skipped and counted before it can reach the weights.
        if self.config.check_finite and not _finite_on_all_ranks(loss):
            self.nonfinite_in_row += 1
            self.nonfinite_total += 1
            warnings.warn(
                f"step {self.step}: non-finite loss {float(loss.detach())}, step skipped",
                stacklevel=2,
            )
            if self.nonfinite_in_row >= self.config.max_nonfinite_steps:
                raise FloatingPointError(
                    f"{self.nonfinite_in_row} non-finite losses in a row up to step {self.step}: "
                    "lower the learning rates, enable grad_clip, or check the data for NaNs"
                )
            return
        self.nonfinite_in_row = 0
        scaler.scale(loss).backward()
        if self.config.grad_clip is not None:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), self.config.grad_clip)
        scaler.step(opt)
        scaler.update()

    # ----------------------------------------------------------------- the loop
    def fit(self, until: int | None = None) -> Trainer:
        """Train to ``config.max_steps`` (or early stop), logging and evaluating.

        Args:
            until: stop once ``self.step`` reaches this step instead (the learning-rate
                schedule still runs to ``max_steps``, so a later ``fit()`` continues it).
        """
        cfg = self.config
        last = cfg.max_steps if until is None else min(until, cfg.max_steps)
        self._emit("on_fit_start")
        while self.step < last and not self.should_stop:
            self._window.add(self.train_step())
            self.step += 1
            if self.step % cfg.log_interval == 0 or self.step == cfg.max_steps:
                self._emit("on_log", self._flush_window())
            if self.val_loader is not None and (
                self.step % cfg.eval_interval == 0 or self.step == cfg.max_steps
            ):
                self._run_eval()
            self._emit("on_step_end")
        self._emit("on_fit_end")
        return self

    def _run_eval(self) -> None:
        metrics = self.evaluate()
        metrics.update(self.method.diagnose(self))
        if metrics["miou"] > self.best_miou:
            self.best_miou, self.best_step, self.evals_since_best = metrics["miou"], self.step, 0
        else:
            self.evals_since_best += 1
        patience = self.config.early_stop_patience
        if patience is not None and self.evals_since_best >= patience:
            self.should_stop = True
        self._emit("on_eval_end", {"step": self.step, "best_miou": self.best_miou, **metrics})

    @torch.no_grad()
    def evaluate(self, loader: Iterable[dict[str, Tensor]] | None = None) -> dict[str, Any]:
        """mIoU, per-class IoU and pixel accuracy of the generator on ``loader``."""
        loader = loader if loader is not None else self.val_loader
        if loader is None:
            raise ValueError("no val_loader given to the Trainer and none passed to evaluate()")
        self.generator.eval()
        metric = SegmentationMetric(self.num_classes, self.config.ignore_index)
        for batch in loader:
            image, mask = _split_labelled(batch, "val_loader")
            with self._autocast():
                logits = predict_logits(
                    self.generator, self._to_device(image), self.config.eval_window
                )
            metric.update(logits.float(), self._to_device(mask))
        metric.confusion = all_reduce_sum(metric.confusion)  # each rank saw its shard
        return metric.compute()

    # ----------------------------------------------------------------- logging
    def _flush_window(self) -> dict[str, Any]:
        rec = {"step": self.step, **self._window.flush()}  # the host sync of a log step
        self.train_metric.confusion = all_reduce_sum(self.train_metric.confusion)
        rec["train_miou"] = self.train_metric.compute()["miou"]
        self.train_metric.reset()
        # Share of the window's wall time spent waiting for batches (this rank).
        now = time.perf_counter()
        rec["data_wait_frac"] = self._data_seconds / max(now - self._window_start, 1e-9)
        self._data_seconds, self._window_start = 0.0, now
        if self.device.type == "cuda":
            rec["gpu_mem_peak_mib"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        rec["lr_g"] = self.g_optimizer.param_groups[0]["lr"]
        if self.d_optimizer is not None:
            rec["lr_d"] = self.d_optimizer.param_groups[0]["lr"]
        rec["nonfinite_skipped"] = self.nonfinite_total
        if nonfinite_keys(rec) and not self.config.check_finite:
            raise FloatingPointError(f"non-finite {nonfinite_keys(rec)} at step {self.step}")
        return rec

    def _emit(self, hook: str, *args: Any) -> None:
        if not is_main_process():  # only rank 0 logs, checkpoints and reports
            return
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything a bit-identical resume needs (tensors and plain Python only)."""
        models = {"generator": self.generator, "discriminator": self.discriminator}
        opts = {"g_optimizer": self.g_optimizer, "d_optimizer": self.d_optimizer}
        return {
            "step": self.step,
            "config": dataclasses.asdict(self.config),
            **{k: m.state_dict() for k, m in models.items() if m is not None},
            **{k: o.state_dict() for k, o in opts.items() if o is not None},
            "g_scaler": self.g_scaler.state_dict(),
            "d_scaler": self.d_scaler.state_dict(),
            "filter": _state_of(self.pseudo_filter),
            "method": self.method.state_dict(),
            "loaders": {k: _state_of(v) for k, v in self.loaders.items()},
            "best": [self.best_miou, self.best_step, self.evals_since_best],
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "python": random.getstate(),
            },
        }

    def load_state_dict(self, state: dict[str, Any], *, models_only: bool = False) -> None:
        """Restore :meth:`state_dict`; raises listing every config mismatch."""
        current = dataclasses.asdict(self.config)
        diff = config_mismatches(state["config"], current, ignore=RESUMABLE_CHANGES)
        if diff:
            raise ValueError("checkpoint was written by another config:\n  " + "\n  ".join(diff))
        self.generator.load_state_dict(state["generator"])
        if self.discriminator is not None:
            self.discriminator.load_state_dict(state["discriminator"])
        if models_only:
            return
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        if self.d_optimizer is not None:
            self.d_optimizer.load_state_dict(state["d_optimizer"])
        self.g_scaler.load_state_dict(state["g_scaler"])
        self.d_scaler.load_state_dict(state["d_scaler"])
        self.method.load_state_dict(state.get("method", {}))
        if state["filter"] is not None:
            self.pseudo_filter.load_state_dict(state["filter"])  # type: ignore[union-attr]
        for name, loader_state in state["loaders"].items():
            if loader_state is not None:
                self.loaders[name].load_state_dict(loader_state)
        self.step = int(state["step"])
        self.best_miou, self.best_step, self.evals_since_best = state["best"]
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        random.setstate(_as_tuple(state["rng"]["python"]))

    def load_checkpoint(self, path: str | Path, *, models_only: bool = False) -> int:
        """Resume from a checkpoint file (``models_only``: weights only); returns its step."""
        state = load_checkpoint(path)
        self.load_state_dict(state, models_only=models_only)
        return int(state["step"])

    def restore_best(self) -> int:
        """Load the weights of the best checkpoint kept by a :class:`Checkpointer`; its step."""
        keeper = next((cb for cb in self.callbacks if isinstance(cb, Checkpointer)), None)
        if keeper is None or not keeper.best_path.exists():
            raise FileNotFoundError(
                "restore_best() needs a Checkpointer callback that has saved best.pt"
            )
        return self.load_checkpoint(keeper.best_path, models_only=True)

    # ----------------------------------------------------------------- helpers
    def _labelled_batch(self, name: str) -> tuple[Tensor, Tensor]:
        image, mask = _split_labelled(self._next(name), f"{name} loader")
        return self._to_device(image), self._to_device(mask)

    def _next(self, name: str) -> Any:
        start = time.perf_counter()
        batch = next(self.loaders[name])
        self._data_seconds += time.perf_counter() - start
        return batch

    def _to_device(self, t: Tensor) -> Tensor:
        if self.config.channels_last and t.dim() == 4:
            return t.to(self.device, non_blocking=True, memory_format=torch.channels_last)
        return t.to(self.device, non_blocking=True)

    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


def _split_labelled(batch: Any, name: str) -> tuple[Tensor, Tensor]:
    if not isinstance(batch, dict) or "image" not in batch:
        raise TypeError(f"{name} must yield dicts with an 'image' key, got {type(batch).__name__}")
    if "mask" not in batch:
        raise ValueError(
            f"{name} yielded a batch with no 'mask': labelled batches need masks "
            f"(keys present: {sorted(batch)}); pass unlabelled data as unlabelled_loader"
        )
    return batch["image"], batch["mask"]


def _ddp(model: nn.Module | None, device: torch.device) -> Any:
    if model is None or not is_distributed():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _finite_on_all_ranks(loss: Tensor) -> bool:
    # Every rank must skip together, or the others would wait forever in backward.
    finite = torch.isfinite(loss.detach()).to(torch.int32)
    if is_distributed():
        finite = all_reduce_sum(finite) == world_size()
    return bool(finite)


def _num_classes(generator: nn.Module) -> int:
    n = getattr(generator, "num_classes", None)
    if not isinstance(n, int) or n < 1:
        raise TypeError(
            f"the generator needs an int attribute num_classes (got {n!r}): set it to the "
            "number of classes its logits have"
        )
    return n


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {name!r} requested but CUDA is not available: use 'cpu' or 'auto'"
        )
    return device


def _state_of(obj: Any) -> Any:
    return obj.state_dict() if hasattr(obj, "state_dict") else None


def _as_tuple(x: Any) -> Any:
    # random.setstate wants tuples; a checkpoint may hand back lists.
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x
