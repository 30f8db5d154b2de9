"""Callbacks: logs, progress, checkpoints. Hooks are named methods, so a typo fails loudly."""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s4seg.training.checkpoint import save_atomic

if TYPE_CHECKING:
    from s4seg.training.trainer import Trainer

HOOKS = ("on_fit_start", "on_log", "on_eval_end", "on_step_end", "on_fit_end")


class Callback:
    """Base class: override any of the hooks below; every hook receives the trainer."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first step of :meth:`Trainer.fit` (also after a resume)."""

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """Every ``log_interval`` steps with the window's numbers (already host values)."""

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """After each evaluation; ``metrics`` has step, miou, iou, pixel_acc, best_miou."""

    def on_step_end(self, trainer: Trainer) -> None:
        """After every step (``trainer.step`` already counts it)."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """When :meth:`Trainer.fit` returns."""


def check_callbacks(callbacks: Sequence[Callback]) -> list[Callback]:
    """Reject objects that are not callbacks and ``on_*`` methods that are no hook."""
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"{cb!r} is not an s4seg.callbacks.Callback subclass instance")
        for name in dir(cb):
            if name.startswith("on_") and name not in HOOKS:
                close = difflib.get_close_matches(name, HOOKS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; hooks are {HOOKS}"
                raise TypeError(f"{type(cb).__name__}.{name} is not a callback hook{hint}")
    return list(callbacks)


class JSONLLogger(Callback):
    """One JSON object per log step (``"kind": "train"``) and per eval (``"eval"``).

    On resume, records after the resumed step (written before a crash) are dropped
    so that the file reads as one uninterrupted run.
    """

    def __init__(self, run_dir: str | Path, filename: str = "metrics.jsonl") -> None:
        self.path = Path(run_dir) / filename

    def on_fit_start(self, trainer: Trainer) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            keep = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= trainer.step
            ]
            self.path.write_text("".join(line + "\n" for line in keep))

    def _write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self._write({"kind": "train", **record})

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self._write({"kind": "eval", **metrics})


class TensorBoardLogger(Callback):
    """TensorBoard scalars under ``train/`` and ``val/`` in ``run_dir/tensorboard``."""

    def __init__(self, run_dir: str | Path) -> None:
        self.log_dir = Path(run_dir) / "tensorboard"
        self.writer: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imported only when used

        # purge_step hides events a crashed run wrote after the resumed step.
        self.writer = SummaryWriter(str(self.log_dir), purge_step=trainer.step or None)

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        for key, value in record.items():
            if isinstance(value, (int, float)) and key != "step":
                self.writer.add_scalar(f"train/{key}", value, record["step"])

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        for key in ("miou", "pixel_acc", "best_miou"):
            self.writer.add_scalar(f"val/{key}", metrics[key], metrics["step"])
        for c, iou in enumerate(metrics["iou"]):
            self.writer.add_scalar(f"val_iou/class_{c}", iou, metrics["step"])

    def on_fit_end(self, trainer: Trainer) -> None:
        self.writer.close()


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
        self.bar.write(f"step {metrics['step']}: val mIoU {metrics['miou']:.4f}{self.last_eval}")

    def on_fit_end(self, trainer: Trainer) -> None:
        self.bar.close()


class Checkpointer(Callback):
    """Keeps ``checkpoints/last.pt`` and ``checkpoints/best.pt`` (by val mIoU), atomically.

    Args:
        run_dir: the run folder.
        every: also save ``last.pt`` every N steps (default: at each eval and at the end).
    """

    def __init__(self, run_dir: str | Path, every: int | None = None) -> None:
        self.dir = Path(run_dir) / "checkpoints"
        self.every = every

    @property
    def last_path(self) -> Path:
        return self.dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.dir / "best.pt"

    def on_step_end(self, trainer: Trainer) -> None:
        if self.every and trainer.step % self.every == 0:
            save_atomic(trainer.state_dict(), self.last_path)

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        state = trainer.state_dict()
        save_atomic(state, self.last_path)
        if trainer.best_step == trainer.step:
            save_atomic(state, self.best_path)

    def on_fit_end(self, trainer: Trainer) -> None:
        save_atomic(trainer.state_dict(), self.last_path)


def save_config(run_dir: str | Path, trainer: Trainer, extra: dict[str, Any] | None = None) -> Path:
    """Write the run's full config and the repr of every injected part to ``config.json``."""
    path = Path(run_dir) / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "trainer": dataclasses.asdict(trainer.config),
        "parts": {
            "generator": type(trainer.generator).__name__,
            "discriminator": type(trainer.discriminator).__name__
            if trainer.discriminator
            else None,
            "pseudo_filter": repr(trainer.pseudo_filter),
            "pseudo_filter_thresholds": getattr(trainer.pseudo_filter, "thresholds", None),
            "g_optimizer": repr(trainer.g_optimizer),
            "d_optimizer": repr(trainer.d_optimizer),
        },
        **(extra or {}),
    }
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


class ConfigSaver(Callback):
    """Writes ``config.json`` when training starts."""

    def __init__(self, run_dir: str | Path, extra: dict[str, Any] | None = None) -> None:
        self.run_dir, self.extra = Path(run_dir), extra

    def on_fit_start(self, trainer: Trainer) -> None:
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
