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
import logging
import math
import random
import signal
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import get_total_norm

from s4seg.data import InfiniteLoader
from s4seg.distributed import all_reduce_sum, is_distributed, is_main_process
from s4seg.losses import SupervisedCrossEntropy
from s4seg.methods import Method, build_method
from s4seg.metrics import SegmentationMetric
from s4seg.models import predict_logits
from s4seg.training.arguments import (
    batch_position,
    check_lrs,
    check_train_loader,
    is_trainer_state,
    not_a_checkpoint,
    optimizer_label,
)
from s4seg.training.checkpoint import config_mismatches, read_checkpoint
from s4seg.training.config import RESUMABLE_CHANGES, TrainerConfig
from s4seg.training.hooks import Callback, check_callbacks
from s4seg.training.log_window import LogWindow, nonfinite_keys
from s4seg.training.lr_schedule import poly_lr_factor
from s4seg.training.optim import check_each_param_once, default_g_optimizer, set_lr_factor
from s4seg.training.rollback import StepStart

__all__ = ["RESUMABLE_CHANGES", "Interruption", "Trainer", "TrainerConfig"]

log = logging.getLogger("s4seg.training")


@dataclass(frozen=True)
class Interruption:
    """How :meth:`Trainer.fit` was interrupted, and what its state is now.

    Attributes:
        step: steps done when the state was taken.
        error: the exception, as ``"Type: message"``.
        exact: the state is that of the end of step ``step``: the interrupted step
            was rolled back (no optimizer had stepped yet), or the interruption came
            between two steps. Resuming from it continues as if nothing happened.
        weights_finite: False when an update made the weights non-finite; such a
            state is never saved.
    """

    step: int
    error: str
    exact: bool
    weights_finite: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _NonFiniteInput(ValueError):
    """A batch with NaN or infinite values: the step is skipped before any forward pass."""


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
        for name, loader in self.loaders.items():
            check_train_loader(name, loader)
        if isinstance(val_loader, InfiniteLoader):
            raise TypeError(
                "val_loader is an InfiniteLoader, which never ends, so evaluate() would never "
                "return; pass a finite iterable such as DataLoader(val_dataset, batch_size=...)"
            )
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
        # Skipped updates by optimizer name ("g", and the method's: "d", ...): each
        # optimizer has its own count of skips in a row, so one that keeps stepping
        # cannot hide another that never does.
        self.nonfinite_in_row: dict[str, int] = {}
        self.nonfinite_skipped: dict[str, int] = {}
        self._last_update: dict[str, int] = {}
        self._window = LogWindow()
        self._step_logs: dict[str, Any] = {}
        self._data_seconds, self._window_start = 0.0, time.perf_counter()
        # What the current step changed, so that a skipped or interrupted step can be
        # undone (see _begin_step).
        self._start = StepStart()
        self._in_step = self._stepped = self._poisoned = self._stop_requested = False
        self._inputs: list[str] = []
        self._pending_inputs: list[tuple[str, Tensor]] = []
        self.interruption: Interruption | None = None
        first = next(iter(self.generator.parameters()), None)
        self._param_dtype = first.dtype if first is not None else torch.float32
        method.setup(self)
        for name, opt in (("g", self.g_optimizer), *method.optimizers().items()):
            check_each_param_once(opt)
            check_lrs(name, opt)
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

    @property
    def nonfinite_total(self) -> int:
        """Updates skipped so far because they were non-finite, over all optimizers."""
        return sum(self.nonfinite_skipped.values())

    @property
    def stop_requested(self) -> bool:
        """True once Ctrl-C asked :meth:`fit` to stop at the end of the current step."""
        return self._stop_requested

    def next_batch(self, name: str) -> dict[str, Tensor]:
        """The next batch of the loader ``name``, its tensors on the device.

        With ``config.check_finite`` a batch with NaN or infinite values is reported
        (which loader, which batch, which images) and its step skipped before any
        forward pass (on the CPU, where loaders yield: no host sync).
        """
        if name not in self.loaders:
            raise KeyError(f"no loader {name!r}; the run has {sorted(self.loaders)}")
        loader = self.loaders[name]
        start = time.perf_counter()
        batch = next(loader)
        self._data_seconds += time.perf_counter() - start
        self._start.drawn.add(name)
        if not isinstance(batch, dict) or "image" not in batch:
            raise TypeError(
                f"{name} loader must yield dicts with an 'image' key, got {type(batch).__name__}"
                + (f" of {len(batch)} items" if isinstance(batch, (list, tuple)) else "")
                + "; a dataset item is {'image': float (3, H, W), 'mask': int64 (H, W)} "
                "(no 'mask' for unlabelled data)"
            )
        image = batch["image"]
        if not torch.is_tensor(image) or image.dim() != 4 or not image.is_floating_point():
            what = (
                f"a {image.dtype} tensor of shape {tuple(image.shape)}"
                if torch.is_tensor(image)
                else f"a {type(image).__name__}"
            )
            raise TypeError(
                f"{name} loader yielded 'image' as {what}: the generator takes a float batch "
                "(B, C, H, W); convert uint8 images with .float() / 255, and collate samples "
                "into one tensor (s4seg.data.InfiniteLoader does)"
            )
        if self.amp_dtype is None and image.dtype != self._param_dtype:
            raise TypeError(
                f"{name} loader yielded {image.dtype} images but the generator's weights are "
                f"{self._param_dtype}; convert the images (.to({self._param_dtype}))"
            )
        if self.config.check_finite:
            self._check_finite_batch(name, loader, batch)
        return {k: self._to_device(v) if torch.is_tensor(v) else v for k, v in batch.items()}

    def labelled_batch(self, name: str) -> tuple[Tensor, Tensor]:
        """``(images, masks)`` of the next batch of ``name``, on the device."""
        batch = self.next_batch(name)
        if "mask" not in batch:
            raise ValueError(
                f"{name} loader yielded a batch with no 'mask': labelled batches need masks "
                f"(keys present: {sorted(batch)}); pass unlabelled data as unlabelled_loader"
            )
        mask = batch["mask"]
        if not torch.is_tensor(mask) or mask.is_floating_point() or mask.dtype == torch.bool:
            what = f"{mask.dtype} tensor" if torch.is_tensor(mask) else type(mask).__name__
            raise TypeError(
                f"{name} loader yielded 'mask' as a {what}: masks are int64 class indices "
                "(B, H, W); convert them with .long()"
            )
        return batch["image"], mask

    def _check_finite_batch(self, name: str, loader: Any, batch: dict[str, Any]) -> None:
        """Skip the step on NaN/inf values (CPU tensors now; device tensors at the update)."""
        for key, value in batch.items():
            if not torch.is_tensor(value) or not value.is_floating_point() or value.numel() == 0:
                continue
            if value.device.type != "cpu":
                where = f"{name} loader, {batch_position(loader)}, {key!r}"
                self._pending_inputs.append((where, torch.isfinite(value).all()))
                continue
            low, high = (float(x) for x in torch.aminmax(value))
            where = f"{name} loader, {batch_position(loader)}"
            if math.isfinite(low) and math.isfinite(high):
                self._inputs.append(f"{where}: {key!r} in [{low:.3g}, {high:.3g}]")
                continue
            bad = (~torch.isfinite(value)).flatten(1).sum(1)
            images = ", ".join(f"image {i} ({int(n)} values)" for i, n in enumerate(bad) if n)
            raise _NonFiniteInput(f"non-finite {key!r} values in the {where}: {images}")

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
        """Zero grads, backward, clip, and step unless the update is non-finite; True if it
        stepped.

        With ``config.check_finite`` one host sync decides: an update whose loss,
        gradients or ``module``'s buffers (BatchNorm statistics after the forward pass)
        are NaN or infinite is skipped, the buffers are restored to the step's start,
        and it is counted for this optimizer; ``max_nonfinite_steps`` skips of one
        optimizer in a row stop the run. Weights that an earlier update made
        non-finite stop it at once.
        """
        name = self._optimizer_name(optimizer)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        norm = None
        if self.config.grad_clip is not None:
            scaler.unscale_(optimizer)
            norm = nn.utils.clip_grad_norm_(module.parameters(), self.config.grad_clip)
        if self.config.check_finite:
            reasons = self._nonfinite_update(name, loss, optimizer, module, scaler, norm)
            if reasons:
                optimizer.zero_grad(set_to_none=True)
                # The generator's pass ran every network of the step; the method's
                # own updates ran their module.
                self._restore_buffers(None if optimizer is self.g_optimizer else module)
                self._skip(name, reasons)
                return False
            self.nonfinite_in_row[name] = 0
        scaler.step(optimizer)
        scaler.update()
        self._stepped = True
        self._last_update[name] = self.step
        return True

    def _optimizer_name(self, optimizer: torch.optim.Optimizer) -> str:
        if optimizer is self.g_optimizer:
            return "g"
        for name, opt in self.method.optimizers().items():
            if opt is optimizer:
                return name
        return f"{type(optimizer).__name__}@{id(optimizer):x}"

    def _nonfinite_update(
        self,
        name: str,
        loss: Tensor,
        optimizer: torch.optim.Optimizer,
        module: nn.Module,
        scaler: torch.amp.GradScaler,
        norm: Tensor | None,
    ) -> list[str]:
        """Why this update must not step (empty: it may); the one host sync of an update."""
        params = [p for g in optimizer.param_groups for p in g["params"]]
        checks = {"loss": loss.detach().float().sum()}
        if not scaler.is_enabled():  # an fp16 scaler skips non-finite gradients itself
            if norm is None:
                grads = [p.grad for p in params if p.grad is not None]
                norm = get_total_norm(grads, math.inf)
            checks["gradients"] = norm
        buffers = [b for b in module.buffers() if b.is_floating_point()]
        checks["buffers"] = get_total_norm(buffers, math.inf)
        checks["weights"] = get_total_norm([p.detach() for p in params], math.inf)
        for where, flag in self._pending_inputs:
            checks[where] = torch.where(flag, 0.0, math.inf)
        self._pending_inputs = []
        values = torch.stack([v.to(torch.float32) for v in checks.values()])
        bad = (~torch.isfinite(values)).to(torch.int32)
        if is_distributed():  # every rank must skip together, or the others would hang
            bad = all_reduce_sum(bad)
        failed = [key for key, b in zip(checks, bad.tolist(), strict=True) if b]
        if "weights" in failed:
            self._poisoned = True
            label = optimizer_label(name)
            when = self._last_update.get(name)
            lrs = ", ".join(f"{g['lr']:.3g}" for g in optimizer.param_groups)
            raise FloatingPointError(
                f"step {self.step}: the weights that {label} updates are NaN or infinite"
                + (f" since its update at step {when}" if when is not None else "")
                + f" (lr {lrs}); they cannot be trained further and are not saved. The last "
                "checkpoint before that step is intact: lower the learning rate or set "
                "grad_clip, and resume from it"
            )
        reasons = []
        for key in failed:
            if key == "loss":
                reasons.append(f"non-finite loss ({float(loss.detach()):g})")
            elif key == "gradients":
                reasons.append("non-finite gradients")
            elif key == "buffers":
                reasons.append(
                    "non-finite buffers (BatchNorm running statistics) after the forward "
                    "pass, restored"
                )
            else:
                reasons.append(f"non-finite values in the {key}")
        if reasons and self._inputs and "buffers" in failed:
            reasons.append("inputs of the step: " + "; ".join(self._inputs))
        return reasons

    def _skip(self, name: str, reasons: list[str]) -> None:
        """Count a skipped update of optimizer ``name``; raise after too many in a row."""
        self.nonfinite_in_row[name] = self.nonfinite_in_row.get(name, 0) + 1
        self.nonfinite_skipped[name] = self.nonfinite_skipped.get(name, 0) + 1
        in_row, limit = self.nonfinite_in_row[name], self.config.max_nonfinite_steps
        label = optimizer_label(name)
        if in_row >= limit:
            raise FloatingPointError(
                f"{in_row} non-finite updates of {label} in a row, up to step {self.step} "
                f"(max_nonfinite_steps={limit}; last: {'; '.join(reasons)}): lower the "
                "learning rates, enable grad_clip, or check the data for NaNs "
                "(FolderDataset.verify(full=True))"
            )
        warnings.warn(
            f"step {self.step}: skipped the update of {label}: {'; '.join(reasons)} "
            f"({in_row} in a row, max_nonfinite_steps={limit})",
            stacklevel=3,
        )

    # ----------------------------------------------------------------- one step
    def train_step(self) -> dict[str, Tensor]:
        """One step of the method at ``self.step``; returns detached tensors (no host sync)."""
        cfg = self.config
        factor = poly_lr_factor(self.step, cfg.max_steps, cfg.poly_power, cfg.warmup_steps)
        for opt in (self.g_optimizer, *self.method.optimizers().values()):
            set_lr_factor(opt, factor)
        self._train_g.train()
        self._step_logs = {}
        self._begin_step()
        try:
            image, mask = self.labelled_batch("labelled")
            output = self.method.generator_loss(self, image, mask)
            if "loss_ce" not in self._step_logs:
                raise RuntimeError(
                    f"{type(self.method).__name__}.generator_loss must take the labelled "
                    "cross-entropy from ctx.supervised_loss (or Method.labelled_loss)"
                )
            logs = {**self._step_logs, **output.logs}
            if not self.optimise(output.loss, self.g_optimizer, self._train_g, self.g_scaler):
                self.train_metric.confusion.copy_(self._start.confusion)
            logs.update(self.method.update(self, output))
        except _NonFiniteInput as bad:
            # Nothing of this step may teach: undo its forward passes, skip its updates.
            self._restore_buffers(None)
            self.train_metric.confusion.copy_(self._start.confusion)
            self._skip("g", [str(bad)])
            logs = {}
        self._in_step = False
        return logs

    def _networks(self) -> list[nn.Module]:
        return [self.generator, *self.method.modules().values()]

    def _begin_step(self) -> None:
        """Remember what a step changes before its first update: buffers, train counts,
        loader positions, random states (a few kilobytes, no host sync, no random draw)."""
        self._in_step, self._stepped = True, False
        self._inputs, self._pending_inputs = [], []
        start = self._start
        start.buffers.take(self._networks())
        start.confusion = self.train_metric.confusion.clone()
        start.loaders = {
            n: loader.state_dict()
            for n, loader in self.loaders.items()
            if isinstance(loader, InfiniteLoader)
        }
        start.drawn = set()
        cuda = torch.cuda.get_rng_state(self._device) if self._device.type == "cuda" else None
        start.rng = (torch.get_rng_state(), cuda, random.getstate())
        start.nonfinite = (dict(self.nonfinite_in_row), dict(self.nonfinite_skipped))

    def _restore_buffers(self, module: nn.Module | None) -> None:
        """Buffers back to the step's start: those of ``module``, or of every network."""
        self._start.buffers.restore(None if module is None else module.buffers())

    def _roll_back_step(self) -> bool:
        """Undo the interrupted step if no optimizer has stepped; True if it could."""
        start = self._start
        if self._stepped or any(n not in start.loaders for n in start.drawn):
            return False
        for name, state in start.loaders.items():
            self.loaders[name].load_state_dict(state)
        cpu, cuda, python = start.rng
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, self._device)
        random.setstate(python)
        start.buffers.restore(None)
        self.train_metric.confusion.copy_(start.confusion)
        self.nonfinite_in_row, self.nonfinite_skipped = (dict(d) for d in start.nonfinite)
        return True

    # ----------------------------------------------------------------- the loop
    def fit(self, until: int | None = None) -> Trainer:
        """Train to ``config.max_steps`` (or early stop), logging and evaluating.

        If an exception or Ctrl-C interrupts it, the callbacks hear of it before it
        propagates (``on_interrupt``: the :class:`s4seg.callbacks.Checkpointer`
        writes an emergency checkpoint), with ``self.interruption`` telling where
        the state stands. A step interrupted before any optimizer stepped is rolled
        back first, so that state is exactly the end of the step before. The first
        Ctrl-C (in the main thread, outside torchrun) lets the current step finish,
        then stops; a second one stops at once.

        Args:
            until: stop once ``self.step`` reaches this step instead (the learning-rate
                schedule still runs to ``max_steps``, so a later ``fit()`` continues it).
        """
        cfg = self.config
        last = cfg.max_steps if until is None else min(until, cfg.max_steps)
        self.interruption = None
        self._emit("on_fit_start")
        with self._ctrl_c_stops_after_the_step():
            try:
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
                    if self._stop_requested:
                        raise KeyboardInterrupt(f"Ctrl-C: stopped after step {self.step}")
            except BaseException as err:
                self._interrupted(err)
                raise
        self._emit("on_fit_end")
        return self

    @contextmanager
    def _ctrl_c_stops_after_the_step(self) -> Iterator[None]:
        # Only where a handler can be set and nobody else has one; under torchrun every
        # rank must stop at the same step, which a per-process signal cannot promise.
        if (
            is_distributed()
            or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        ):
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True
            log.warning(
                "Ctrl-C: finishing step %d, then writing an emergency checkpoint; press "
                "Ctrl-C again to stop at once",
                self.step + 1,
            )

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
            self._stop_requested = False

    def _interrupted(self, err: BaseException) -> None:
        """Make the state as exact as it can be, say where it stands, tell the callbacks."""
        if self._poisoned:
            exact = False
        elif self._in_step:
            exact = self._roll_back_step()
        else:
            exact = True
        self._in_step = False
        info = Interruption(
            step=self.step,
            error=f"{type(err).__name__}: {err}".rstrip(": "),
            exact=exact,
            weights_finite=not self._poisoned,
        )
        self.interruption = info
        if not is_main_process():
            return
        state = (
            "its weights are non-finite and are not saved"
            if self._poisoned
            else f"the state is that of the end of step {info.step}"
            if exact
            else f"it was part-way through step {info.step + 1}, after an optimizer step"
        )
        log.error("fit() interrupted by %s at step %d: %s", info.error, info.step, state)
        for cb in self.callbacks:
            try:
                cb.on_interrupt(self, err)
            except Exception as cb_err:  # the interruption is the error to raise
                log.error(
                    "%s.on_interrupt failed while handling the interruption: %s: %s",
                    type(cb).__name__,
                    type(cb_err).__name__,
                    cb_err,
                )

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
        """Everything a bit-identical resume needs (tensors and plain Python only).

        Raises:
            FloatingPointError: with ``config.check_finite``, a network's weights are
                NaN or infinite (such a state is never worth saving).
        """
        if self.config.check_finite:
            self._check_weights_finite()
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
            # The steps since the last log line, so that the next train record after a
            # resume covers the same steps (and numbers) as in an uninterrupted run.
            "log_window": self._window_state(),
            "nonfinite": {
                "in_row": dict(self.nonfinite_in_row),
                "skipped": dict(self.nonfinite_skipped),
                "last_update": dict(self._last_update),
            },
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "python": random.getstate(),
            },
        }

    def load_state_dict(self, state: dict[str, Any], *, models_only: bool = False) -> None:
        """Restore :meth:`state_dict`; raises listing every config mismatch."""
        if not is_trainer_state(state):
            raise ValueError(not_a_checkpoint(state))
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
        window = state.get("log_window")
        self._window = LogWindow()
        self.train_metric.reset()
        if window is not None:
            self._window.load_state_dict(window["window"], self._device)
            self.train_metric.confusion.copy_(window["train_confusion"])
        nonfinite = state.get("nonfinite", {})
        self.nonfinite_in_row = dict(nonfinite.get("in_row", {}))
        self.nonfinite_skipped = dict(nonfinite.get("skipped", {}))
        self._last_update = dict(nonfinite.get("last_update", {}))
        self._poisoned = False
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        random.setstate(_as_tuple(state["rng"]["python"]))

    def load_checkpoint(self, path: str | Path, *, models_only: bool = False) -> int:
        """Resume from a checkpoint file (``models_only``: weights only); returns its step.

        The file is verified first (:func:`s4seg.training.read_checkpoint`): an empty,
        truncated or damaged one raises a ``ValueError`` that names it.
        """
        state = read_checkpoint(path)
        if not is_trainer_state(state):
            raise ValueError(f"{path}: {not_a_checkpoint(state)}")
        self.load_state_dict(state, models_only=models_only)
        emergency = state.get("emergency")
        if emergency and not models_only:
            log.warning(
                "%s is an emergency checkpoint, written at step %s after %s",
                path,
                emergency.get("step"),
                emergency.get("error"),
            )
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
        step = self.load_checkpoint(paths[0], models_only=True)
        if self.best_step >= 0 and step != self.best_step:
            warnings.warn(
                f"{paths[0]} holds step {step} but this run's best evaluation was at step "
                f"{self.best_step}; loaded step {step}",
                stacklevel=2,
            )
        return step

    def _window_state(self) -> dict[str, Any] | None:
        try:
            window = self._window.state_dict()
        except TypeError as err:
            warnings.warn(
                f"{err}; the checkpoint holds no log window, so the first train record "
                "after a resume covers only the steps after it",
                stacklevel=3,
            )
            return None
        return {"window": window, "train_confusion": self.train_metric.confusion.clone()}

    def _check_weights_finite(self) -> None:
        """Raise FloatingPointError naming the networks whose weights are NaN or infinite."""
        named = {"generator": self.generator, **self.method.modules()}
        tensors = {
            name: [t.detach() for t in (*m.parameters(), *m.buffers()) if t.is_floating_point()]
            for name, m in named.items()
        }
        norms = torch.stack(
            [get_total_norm(ts, math.inf).float().to(self._device) for ts in tensors.values()]
        )
        bad = [
            name for name, ok in zip(tensors, torch.isfinite(norms).tolist(), strict=True) if not ok
        ]
        if bad:
            self._poisoned = True
            raise FloatingPointError(
                f"step {self.step}: the weights of {' and '.join(bad)} are NaN or infinite; "
                "they are not saved. The last checkpoint is intact: lower the learning rate "
                "or set grad_clip, and resume from it"
            )

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
