"""Callbacks: logs, progress, checkpoints, the run's config.

The hooks are named methods of :class:`Callback` (:mod:`s4seg.training.hooks`), so a
typo fails loudly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s4seg.atomic import remove_orphans, write_atomic
from s4seg.jsonl import append_jsonl, read_jsonl, rewrite_jsonl
from s4seg.training.checkpoint import checkpoint_step, save_atomic
from s4seg.training.hooks import Callback

if TYPE_CHECKING:
    from s4seg.training.trainer import Trainer

__all__ = [
    "Callback",
    "Checkpointer",
    "ConfigSaver",
    "JSONLLogger",
    "ProgressBar",
    "TensorBoardLogger",
    "default_callbacks",
    "format_record",
    "run_config",
    "save_config",
]

log = logging.getLogger("s4seg.callbacks")


class JSONLLogger(Callback):
    """One JSON object per log step (``"kind": "train"``) and per eval (``"eval"``).

    On resume, records after the resumed step (written before a crash) are dropped
    so that the file reads as one uninterrupted run: the file is rewritten through a
    temporary file and a rename, so a kill during the rewrite leaves it whole, and
    lines that a killed writer cut short are dropped with a warning. An interrupted
    ``fit()`` appends an ``"interrupt"`` record (step, error, whether it was exact).
    """

    def __init__(self, run_dir: str | Path, filename: str = "metrics.jsonl") -> None:
        self.path = Path(run_dir) / filename

    def on_fit_start(self, trainer: Trainer) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_orphans(self.path)
        if not self.path.exists():
            return
        torn: list[int] = []
        records = read_jsonl(self.path, skipped=torn)
        if torn:
            warnings.warn(
                f"{self.path}: dropped {len(torn)} line(s) that are not JSON objects (lines "
                f"{torn[:10]}{' ...' if len(torn) > 10 else ''}), the trace of a writer "
                "killed mid-line",
                stacklevel=2,
            )
        kept = [r for r in records if r.get("step", 0) <= trainer.step]
        if torn or len(kept) < len(records):
            rewrite_jsonl(self.path, kept)

    def _write(self, record: dict[str, Any]) -> None:
        append_jsonl(self.path, record)

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self._write({"kind": "train", **record})

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self._write({"kind": "eval", **metrics})

    def on_interrupt(self, trainer: Trainer, error: BaseException) -> None:
        if trainer.interruption is not None:
            self._write({"kind": "interrupt", **trainer.interruption.to_dict()})


class TensorBoardLogger(Callback):
    """TensorBoard scalars under ``train/`` and ``val/`` in ``run_dir/tensorboard``.

    Events are flushed after every log step and evaluation, so a checkpoint never
    holds a step whose points a kill could lose. A resumed run hides the points that
    a crashed run wrote after the resumed step (``purge_step``: the step after it)
    and keeps those at and before it, so each point appears once.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.log_dir = Path(run_dir) / "tensorboard"
        self.writer: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imported only when used

        if self.writer is not None:  # a second fit() of one trainer
            self.writer.close()
        self.writer = SummaryWriter(str(self.log_dir), purge_step=trainer.step + 1)

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        for key, value in record.items():
            if isinstance(value, (int, float)) and key != "step":
                self.writer.add_scalar(f"train/{key}", value, record["step"])
        self.writer.flush()

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        for key in ("miou", "pixel_acc", "best_miou"):
            self.writer.add_scalar(f"val/{key}", metrics[key], metrics["step"])
        for c, iou in enumerate(metrics["iou"]):
            self.writer.add_scalar(f"val_iou/class_{c}", iou, metrics["step"])
        self.writer.flush()

    def on_fit_end(self, trainer: Trainer) -> None:
        self.writer.close()
        self.writer = None

    def on_interrupt(self, trainer: Trainer, error: BaseException) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def format_record(record: dict[str, Any]) -> str:
    """The key numbers of a train record, each with its unit."""
    parts = [f"ce {record['loss_ce']:.3f}"]
    # Whichever terms the method has, in a fixed order: fm (S4GAN), adv (AdvSemiSeg), st.
    for key, label in (("loss_fm", "fm"), ("loss_adv", "adv"), ("loss_st", "st")):
        if key in record:
            parts.append(f"{label} {record[key]:.3f}")
    if "loss_d" in record:
        parts.append(f"D {record['loss_d']:.3f}")
        parts.append(f"D(real) {record.get('d_real_mean', float('nan')):.2f}")
        parts.append(f"D(fake) {record.get('d_fake_mean', float('nan')):.2f}")
    if "st_images_kept" in record:
        parts.append(f"st_images {record['st_images_kept']}/{record['st_images_total']}")
        parts.append(f"st_pixels {100 * record['st_pixels_frac']:.1f}%")
    parts.append(f"train_mIoU {record['train_miou']:.3f}")
    return "  ".join(parts)


class ProgressBar(Callback):
    """A tqdm bar with the key numbers of the last log step and the last eval."""

    def __init__(self, file: Any = None) -> None:
        self.file, self.last_eval = file, ""
        self.bar: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=trainer.config.max_steps,
            initial=trainer.step,
            file=self.file or sys.stderr,
            dynamic_ncols=True,
            desc=trainer.config.method,
        )

    def on_step_end(self, trainer: Trainer) -> None:
        self.bar.update(1)

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.bar.set_postfix_str(format_record(record) + self.last_eval, refresh=False)

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self.last_eval = f"  val_mIoU {metrics['miou']:.3f} (best {metrics['best_miou']:.3f})"
        # tqdm.write goes to stdout unless told: keep the eval lines with the bar.
        self.bar.write(
            f"step {metrics['step']}: val mIoU {metrics['miou']:.4f}{self.last_eval}",
            file=self.bar.fp,
        )

    def on_fit_end(self, trainer: Trainer) -> None:
        self.bar.close()

    def on_interrupt(self, trainer: Trainer, error: BaseException) -> None:
        if self.bar is not None:
            self.bar.close()  # so that the log lines that follow start on their own line


class Checkpointer(Callback):
    """Keeps ``checkpoints/last.pt`` and ``checkpoints/best.pt`` (by val mIoU), atomically.

    Both are written at the end of a step, after every other callback has logged it,
    ``last.pt`` first. A kill between the two leaves ``last.pt`` at the new best step
    and ``best.pt`` older (or absent); the resumed run, which starts at that step,
    rewrites ``best.pt`` from its state before its first step, so ``best.pt`` always
    holds ``trainer.best_step``. Temporary files of writes that a kill cut short are
    removed when a run starts. When an exception or Ctrl-C interrupts ``fit()``, an
    emergency checkpoint is written (marked ``"emergency"``): to ``last.pt`` when the
    state is that of a step's end (``trainer.interruption.exact``), else to
    ``emergency.pt``, leaving ``last.pt`` as it was; never with non-finite weights.

    Args:
        run_dir: the run folder.
        every: also save ``last.pt`` every N steps (default: at each eval and at the end).
    """

    def __init__(self, run_dir: str | Path, every: int | None = None) -> None:
        self.dir = Path(run_dir) / "checkpoints"
        self.every = every
        self._evaluated = False
        self._saved_step: int | None = None

    @property
    def last_path(self) -> Path:
        return self.dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.dir / "best.pt"

    @property
    def emergency_path(self) -> Path:
        return self.dir / "emergency.pt"

    def on_fit_start(self, trainer: Trainer) -> None:
        self._evaluated, self._saved_step = False, None
        for path in (self.last_path, self.best_path, self.emergency_path):
            for orphan in remove_orphans(path):
                log.info("removed %s, the temporary file of a write that was killed", orphan)
        self._repair_best(trainer)

    def _repair_best(self, trainer: Trainer) -> None:
        best = trainer.best_step
        if best < 0:
            return
        saved = checkpoint_step(self.best_path) if self.best_path.exists() else None
        if saved == best:
            return
        if best == trainer.step:  # resumed from the best step's own last.pt
            save_atomic(trainer.state_dict(), self.best_path)
            log.warning(
                "%s %s; rewrote it from the state of step %d, this run's best",
                self.best_path,
                "was missing" if saved is None else f"held step {saved}",
                best,
            )
        else:
            warnings.warn(
                f"{self.best_path} holds step {saved} but the run's best evaluation was at "
                f"step {best}, which this resume cannot rebuild; restore_best() loads step "
                f"{saved}",
                stacklevel=3,
            )

    def _save(self, trainer: Trainer) -> None:
        state = trainer.state_dict()
        save_atomic(state, self.last_path)
        if self._evaluated and trainer.best_step == trainer.step:
            save_atomic(state, self.best_path)
        self._evaluated, self._saved_step = False, trainer.step

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self._evaluated = True  # saved at the step's end, after every logger has written

    def on_step_end(self, trainer: Trainer) -> None:
        if self._evaluated or (self.every and trainer.step % self.every == 0):
            self._save(trainer)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self._saved_step != trainer.step:
            self._save(trainer)

    def on_interrupt(self, trainer: Trainer, error: BaseException) -> None:
        info = trainer.interruption
        if info is None:
            return
        if not info.weights_finite:
            log.error(
                "no emergency checkpoint: the weights are non-finite; %s is the last good state",
                self.last_path,
            )
            return
        state = {**trainer.state_dict(), "emergency": info.to_dict()}
        if info.exact:
            save_atomic(state, self.last_path)
            if self._evaluated and trainer.best_step == trainer.step:
                save_atomic(state, self.best_path)
            self._evaluated, self._saved_step = False, trainer.step
            log.error(
                "emergency checkpoint %s: the state at the end of step %d; resume from it "
                "with trainer.load_checkpoint(%r)",
                self.last_path,
                info.step,
                str(self.last_path),
            )
        else:
            save_atomic(state, self.emergency_path)
            log.error(
                "emergency checkpoint %s: part-way through step %d (after an optimizer "
                "step), so not exact; %s is the last exact state",
                self.emergency_path,
                info.step + 1,
                self.last_path,
            )


def run_config(trainer: Trainer, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's whole config: the loop's settings, the method with its settings and
    parts, and the repr of the generator's parts; a run folder alone tells how it was
    trained."""
    return {
        "trainer": dataclasses.asdict(trainer.config),
        "method": trainer.method.describe(),
        "parts": {
            "generator": type(trainer.generator).__name__,
            "g_optimizer": repr(trainer.g_optimizer),
        },
        **(extra or {}),
    }


def save_config(run_dir: str | Path, trainer: Trainer, extra: dict[str, Any] | None = None) -> Path:
    """Write :func:`run_config` to ``run_dir/config.json``."""
    path = Path(run_dir) / "config.json"
    text = json.dumps(run_config(trainer, extra), indent=2, default=str)
    return write_atomic(path, lambda f: f.write(text), binary=False)


class ConfigSaver(Callback):
    """Writes ``config.json`` when training starts."""

    def __init__(self, run_dir: str | Path, extra: dict[str, Any] | None = None) -> None:
        self.run_dir, self.extra = Path(run_dir), extra

    def on_fit_start(self, trainer: Trainer) -> None:
        # A kill mid-write of an earlier start left its temporary file: remove it first.
        remove_orphans(self.run_dir / "config.json")
        save_config(self.run_dir, trainer, self.extra)


def default_callbacks(
    run_dir: str | Path, *, progress: bool = True, extra_config: dict[str, Any] | None = None
) -> list[Callback]:
    """Config, JSONL, TensorBoard, checkpoints and (optionally) a progress bar."""
    cbs: list[Callback] = [
        ConfigSaver(run_dir, extra_config),
        JSONLLogger(run_dir),
        TensorBoardLogger(run_dir),
        Checkpointer(run_dir),
    ]
    if progress:
        cbs.append(ProgressBar())
    return cbs
