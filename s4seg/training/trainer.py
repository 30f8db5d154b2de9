"""The training loop: every part injected, one readable step, the method through a seam.

The trainer owns the generator and its optimizer, the labelled cross-entropy, the
loaders by name, the metrics, the learning-rate schedule, non-finite handling,
callbacks and the assembly of checkpoints. What a semi-supervised method adds (a
discriminator, a teacher, self-training) is a :class:`s4seg.methods.Method`, which
sees the loop through the public :class:`s4seg.methods.StepContext` that the trainer
implements. Extend the loop through callbacks (:mod:`s4seg.callbacks`), not by
subclassing it.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from s4seg.distributed import all_reduce_sum, is_distributed, is_main_process, world_size
from s4seg.losses import SupervisedCrossEntropy
from s4seg.methods import Method, build_method
from s4seg.metrics import SegmentationMetric
from s4seg.models import predict_logits
from s4seg.training.checkpoint import config_mismatches, read_checkpoint
from s4seg.training.hooks import Callback, check_callbacks
from s4seg.training.log_window import LogWindow, nonfinite_keys
from s4seg.training.lr_schedule import poly_lr_factor
from s4seg.training.optim import check_each_param_once, default_g_optimizer, set_lr_factor

__all__ = ["RESUMABLE_CHANGES", "Trainer", "TrainerConfig"]

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
        if not isinstance(self.method, str) or not self.method:
            raise ValueError(f"method must be a method's name, got {self.method!r}")
        if self.amp not in ("none", "bf16", "fp16"):
            raise ValueError(f"amp must be 'none', 'bf16' or 'fp16', got {self.amp!r}")
        for name in ("max_steps", "log_interval", "eval_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class Trainer:
    """Trains a generator with a method (:mod:`s4seg.methods`) from injected parts.

    Implements :class:`s4seg.methods.StepContext`, the only door through which a
    method reaches the loop.

    Args:
        generator: maps images (B, 3, H, W) to logits (B, C, H, W); ``num_classes``.
        labelled_loader: infinite iterator of ``{"image", "mask"}`` batches for CE.
        unlabelled_loader: infinite iterator of ``{"image"}`` batches.
        val_loader: finite iterable of labelled batches for :meth:`evaluate`.
        loaders: further infinite loaders by name that a method draws from (S4GAN's
            ``"d"``: labelled batches shown to its discriminator as "real").
        config: the loop's settings.
        g_optimizer: default SGD from the config.
        callbacks: default none; :func:`s4seg.callbacks.default_callbacks` gives
            logs, progress bar and checkpoints in a run folder.
        method: the training method with its parts and settings; default: the one
            that ``config.method`` names, with its default settings.
    """

    def __init__(
        self,
        generator: nn.Module,
        labelled_loader: Iterator[dict[str, Tensor]],
        *,
        unlabelled_loader: Iterator[dict[str, Tensor]] | None = None,
        val_loader: Iterable[dict[str, Tensor]] | None = None,
        loaders: Mapping[str, Iterator[dict[str, Tensor]]] | None = None,
        config: TrainerConfig | None = None,
        g_optimizer: torch.optim.Optimizer | None = None,
        callbacks: Sequence[Callback] = (),
        method: Method | None = None,
    ) -> None:
        cfg = config or TrainerConfig()
        if method is None:
            method = build_method(cfg.method)
        elif not isinstance(method, Method):
            raise TypeError(f"method must be an s4seg.methods.Method, got {method!r}")
        elif method.name != cfg.method:
            cfg = dataclasses.replace(cfg, method=method.name)
        self.config, self.method = cfg, method
        self._device = _resolve_device(cfg.device)
        self._num_classes = _num_classes(generator)
        if is_distributed() and cfg.sync_bn:
            generator = nn.SyncBatchNorm.convert_sync_batchnorm(generator)
        self.generator = generator.to(self._device)
        self.labelled_loader, self._val_loader = labelled_loader, val_loader
        given: dict[str, Any] = {"unlabelled": unlabelled_loader, **(loaders or {})}
        if "labelled" in given:
            raise ValueError("pass the labelled loader as labelled_loader, not in loaders")
        missing = [name for name in method.loaders if given.get(name) is None]
        if missing:
            names = " and ".join(
                "unlabelled_loader" if n == "unlabelled" else f"loaders[{n!r}]" for n in missing
            )
            raise ValueError(f"method {method.name!r} needs {names}")
        self.loaders: dict[str, Any] = {"labelled": labelled_loader}
        self.loaders.update({name: given[name] for name in method.loaders})
        # Under torchrun the step runs the DDP wrappers; checkpoints hold the bare modules,
        # so a DDP checkpoint loads in a single process and the other way round.
        self._train_g = self.prepare(self.generator)
        if cfg.compile_generator:
            self._train_g = torch.compile(self._train_g)
        self.ce = SupervisedCrossEntropy(cfg.ignore_index, check_labels=cfg.check_inputs)
        self.g_optimizer = g_optimizer or default_g_optimizer(self.generator, cfg)
        use_amp = cfg.amp != "none" and self._device.type == "cuda"
        if cfg.amp != "none" and not use_amp:
            warnings.warn(
                f"amp={cfg.amp!r} is used on CUDA only; training in fp32 on {self._device}",
                stacklevel=2,
            )
        self.amp_dtype = (
            {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp) if use_amp else None
        )
        self.g_scaler = self.grad_scaler()
        self.callbacks = check_callbacks(callbacks)
        self.train_metric = SegmentationMetric(self._num_classes, cfg.ignore_index)
        self._step, self.should_stop = 0, False
        self.best_miou, self.best_step, self.evals_since_best = -math.inf, -1, 0
        self.nonfinite_in_row = self.nonfinite_total = 0
        self._window = LogWindow()
        self._step_logs: dict[str, Any] = {}
        self._data_seconds, self._window_start = 0.0, time.perf_counter()
        method.setup(self)
        for opt in (self.g_optimizer, *method.optimizers().values()):
            check_each_param_once(opt)
            set_lr_factor(opt, 1.0)  # records each group's base_lr

    # ------------------------------------------------------------ the step context
    @property
    def step(self) -> int:
        """The current step: the number of steps done so far."""
        return self._step

    @step.setter
    def step(self, value: int) -> None:
        self._step = int(value)

    @property
    def device(self) -> torch.device:
        """Where the models and batches live."""
        return self._device

    @property
    def num_classes(self) -> int:
        """Classes the generator predicts."""
        return self._num_classes

    @property
    def ignore_index(self) -> int:
        """The label of pixels that are never learnt."""
        return self.config.ignore_index

    @property
    def check_inputs(self) -> bool:
        """Whether parts validate their inputs (host syncs)."""
        return self.config.check_inputs

    @property
    def train_generator(self) -> nn.Module:
        """The module a training step calls (the generator or its DDP / compile wrapper)."""
        return self._train_g

    @property
    def val_loader(self) -> Iterable[dict[str, Tensor]] | None:
        """The validation batches, or None."""
        return self._val_loader

    def next_batch(self, name: str) -> dict[str, Tensor]:
        """The next batch of the loader ``name``, its tensors on the device."""
        if name not in self.loaders:
            raise KeyError(f"no loader {name!r}; the run has {sorted(self.loaders)}")
        start = time.perf_counter()
        batch = next(self.loaders[name])
        self._data_seconds += time.perf_counter() - start
        if not isinstance(batch, dict) or "image" not in batch:
            raise TypeError(
                f"{name} loader must yield dicts with an 'image' key, got {type(batch).__name__}"
            )
        return {k: self._to_device(v) if torch.is_tensor(v) else v for k, v in batch.items()}

    def labelled_batch(self, name: str) -> tuple[Tensor, Tensor]:
        """``(images, masks)`` of the next batch of ``name``, on the device."""
        batch = self.next_batch(name)
        if "mask" not in batch:
            raise ValueError(
                f"{name} loader yielded a batch with no 'mask': labelled batches need masks "
                f"(keys present: {sorted(batch)}); pass unlabelled data as unlabelled_loader"
            )
        return batch["image"], batch["mask"]

    def supervised_loss(self, logits: Tensor, mask: Tensor) -> Tensor:
        """The labelled cross-entropy; logged as ``loss_ce`` and counted in train mIoU."""
        with self.autocast():
            loss = self.ce(logits, mask)
        self.train_metric.update(logits.detach(), mask)
        self._step_logs["loss_ce"] = loss.detach()
        return loss

    def autocast(self) -> AbstractContextManager[Any]:
        """The run's autocast context (a no-op in fp32 and on the CPU)."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self._device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A new gradient scaler, enabled under fp16 autocast."""
        return torch.amp.GradScaler(self._device.type, enabled=self.amp_dtype is torch.float16)

    def prepare(self, module: nn.Module) -> nn.Module:
        """Move ``module`` to the device (channels-last if configured); its DDP wrapper
        under torchrun, else the module itself."""
        module.to(self._device)
        if self.config.channels_last:
            module.to(memory_format=torch.channels_last)
        if not is_distributed():
            return module
        ids = [self._device.index] if self._device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def optimise(
        self,
        loss: Tensor,
        optimizer: torch.optim.Optimizer,
        module: nn.Module,
        scaler: torch.amp.GradScaler,
    ) -> bool:
        """Zero grads, skip a non-finite loss, backward, clip, step; True if it stepped."""
        optimizer.zero_grad(set_to_none=True)
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
            return False
        self.nonfinite_in_row = 0
        scaler.scale(loss).backward()
        if self.config.grad_clip is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(module.parameters(), self.config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        return True

    # ----------------------------------------------------------------- one step
    def train_step(self) -> dict[str, Tensor]:
        """One step of the method at ``self.step``; returns detached tensors (no host sync)."""
        cfg = self.config
        factor = poly_lr_factor(self.step, cfg.max_steps, cfg.poly_power, cfg.warmup_steps)
        for opt in (self.g_optimizer, *self.method.optimizers().values()):
            set_lr_factor(opt, factor)
        self._train_g.train()
        self._step_logs = {}
        image, mask = self.labelled_batch("labelled")
        output = self.method.generator_loss(self, image, mask)
        if "loss_ce" not in self._step_logs:
            raise RuntimeError(
                f"{type(self.method).__name__}.generator_loss must take the labelled "
                "cross-entropy from ctx.supervised_loss (or Method.labelled_loss)"
            )
        logs = {**self._step_logs, **output.logs}
        self.optimise(output.loss, self.g_optimizer, self._train_g, self.g_scaler)
        logs.update(self.method.update(self, output))
        return logs

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
            with self.autocast():
                logits = predict_logits(
                    self.generator, self._to_device(image), self.config.eval_tile
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
        if self._device.type == "cuda":
            rec["gpu_mem_peak_mib"] = torch.cuda.max_memory_allocated(self._device) / 2**20
        rec["lr_g"] = self.g_optimizer.param_groups[0]["lr"]
        for name, opt in self.method.optimizers().items():
            rec[f"lr_{name}"] = opt.param_groups[0]["lr"]
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
        return {
            "step": self.step,
            "config": dataclasses.asdict(self.config),
            "method_settings": self.method.settings(),
            "generator": self.generator.state_dict(),
            "g_optimizer": self.g_optimizer.state_dict(),
            "g_scaler": self.g_scaler.state_dict(),
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
        if not isinstance(state, Mapping) or "config" not in state or "generator" not in state:
            keys = sorted(state)[:8] if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(
                f"not a Trainer checkpoint (keys {keys}): load bare weights with "
                f"s4seg.models.load_weights(generator, path)"
            )
        current = dataclasses.asdict(self.config)
        diff = config_mismatches(state["config"], current, ignore=RESUMABLE_CHANGES)
        saved_method = state.get("method_settings", {})
        diff += [
            f"method {line}" for line in config_mismatches(saved_method, self.method.settings())
        ]
        if diff:
            raise ValueError("checkpoint was written by another config:\n  " + "\n  ".join(diff))
        self.generator.load_state_dict(state["generator"])
        self.method.load_state_dict(state.get("method", {}), models_only=models_only)
        if models_only:
            return
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        self.g_scaler.load_state_dict(state["g_scaler"])
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
        state = read_checkpoint(path)
        self.load_state_dict(state, models_only=models_only)
        return int(state["step"])

    def restore_best(self) -> int:
        """Load the weights of the best checkpoint that a checkpointing callback kept.

        The callback is the first with a ``best_path`` (:class:`s4seg.callbacks.Checkpointer`).
        Returns the checkpoint's step.
        """
        paths = [cb.best_path for cb in self.callbacks if hasattr(cb, "best_path")]
        if not paths or not Path(paths[0]).exists():
            raise FileNotFoundError(
                "restore_best() needs a Checkpointer callback that has saved best.pt"
            )
        return self.load_checkpoint(paths[0], models_only=True)

    # ----------------------------------------------------------------- helpers
    def _to_device(self, t: Tensor) -> Tensor:
        if self.config.channels_last and t.dim() == 4:
            return t.to(self._device, non_blocking=True, memory_format=torch.channels_last)
        return t.to(self._device, non_blocking=True)


def _split_labelled(batch: Any, name: str) -> tuple[Tensor, Tensor]:
    if not isinstance(batch, dict) or "image" not in batch:
        raise TypeError(f"{name} must yield dicts with an 'image' key, got {type(batch).__name__}")
    if "mask" not in batch:
        raise ValueError(
            f"{name} yielded a batch with no 'mask': labelled batches need masks "
            f"(keys present: {sorted(batch)}); pass unlabelled data as unlabelled_loader"
        )
    return batch["image"], batch["mask"]


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
