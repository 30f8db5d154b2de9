"""Callbacks: logs, progress, checkpoints, the run's config.

The hooks are named methods of :class:`Callback` (:mod:`s4seg.training.hooks`), so a
typo fails loudly.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s4seg.jsonl import append_jsonl, read_jsonl, rewrite_jsonl
from s4seg.training.checkpoint import save_atomic
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
            records = read_jsonl(self.path)
            rewrite_jsonl(self.path, (r for r in records if r.get("step", 0) <= trainer.step))

    def _write(self, record: dict[str, Any]) -> None:
        append_jsonl(self.path, record)

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
        # tqdm.write goes to stdout unless told: keep the eval lines with the bar.
        self.bar.write(
            f"step {metrics['step']}: val mIoU {metrics['miou']:.4f}{self.last_eval}",
            file=self.bar.fp,
        )

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
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run_config(trainer, extra), indent=2, default=str))
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
