"""Stage 5: an S4GAN run through the Trainer, with its validation curve and step time."""

from __future__ import annotations

import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import torch

import s4seg
from benchmarks.gpu.runner import Context, StageResult, free_memory
from benchmarks.gpu.settings import RUN_FIELDS, RunSettings


class RunRecorder(s4seg.callbacks.Callback):
    """Times every step, keeps the log windows and evaluations, and ends the run in time.

    A step's time is the wall time between two ``on_step_end`` calls: the step, its log
    flush, and on evaluation steps the evaluation. ``eval_s`` keeps each evaluation's
    share apart (its step's time less a typical step), and :meth:`train_steps` leaves
    evaluation steps out.
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.step_s: dict[int, float] = {}
        self.logs: list[dict[str, Any]] = []
        self.evals: dict[int, float] = {}  # step -> val mIoU
        self.eval_s: dict[int, float] = {}
        self.stopped_at: int | None = None
        self._last = time.perf_counter()

    def on_fit_start(self, trainer: Any) -> None:
        self._last = time.perf_counter()

    def on_log(self, trainer: Any, record: dict[str, Any]) -> None:
        self.logs.append(record)

    def on_eval_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        self.evals[trainer.step] = float(metrics["miou"])

    def on_step_end(self, trainer: Any) -> None:
        now = time.perf_counter()
        self.step_s[trainer.step] = now - self._last
        self._last = now
        if trainer.step in self.evals:
            self.eval_s[trainer.step] = max(self.step_s[trainer.step] - self.typical_step(), 0.0)
        # Stop while one more step and an evaluation of its weights still fit.
        if now + self.typical_step() + max(self.eval_s.values(), default=0.0) > self.deadline:
            trainer.should_stop = True
            self.stopped_at = trainer.step

    def train_steps(self, after: int = 0, upto: int | None = None) -> list[float]:
        """Seconds of the steps in (after, upto] that had no evaluation."""
        return [
            s
            for k, s in self.step_s.items()
            if after < k <= (upto if upto is not None else k) and k not in self.evals
        ]

    def typical_step(self) -> float:
        recent = self.train_steps()[-10:]
        return statistics.median(recent) if recent else 0.0


def run_loaders(cfg: RunSettings, cuda: bool) -> dict[str, Any]:
    """The Trainer's loaders over seeded splits of SyntheticShapes (as examples/common.py)."""
    from torch.utils.data import DataLoader, Subset

    from s4seg.data import Augmented, InfiniteLoader, RandomHorizontalFlip, Unlabelled

    pool = s4seg.SyntheticShapes(cfg.train_size, image_size=cfg.size, seed=0)
    lab_idx, unl_idx = s4seg.data.split_indices(cfg.train_size, cfg.labelled, seed=0)
    val = s4seg.SyntheticShapes(cfg.val_size, image_size=cfg.size, seed=10_000)
    labelled, unlabelled = Subset(pool, lab_idx), Unlabelled(Subset(pool, unl_idx))

    def infinite(dataset: Any, seed: int) -> InfiniteLoader:
        # The images are generated on the fly (about 15 ms each at 321 px): workers.
        flipped = Augmented(dataset, RandomHorizontalFlip(), seed=seed + 1000)
        return InfiniteLoader(
            flipped,
            cfg.batch,
            seed=seed,
            num_workers=cfg.workers,
            pin_memory=cuda,
            persistent_workers=cfg.workers > 0,
        )

    return {
        "labelled_loader": infinite(labelled, 1),
        "unlabelled_loader": infinite(unlabelled, 2),
        "loaders": {"d": infinite(labelled, 3)},
        "val_loader": DataLoader(val, batch_size=cfg.val_batch, num_workers=min(cfg.workers, 2)),
    }


def build_run(ctx: Context, recorder: RunRecorder) -> s4seg.Trainer:
    cfg = ctx.settings.run
    s4seg.seed_everything(0)
    loaders = run_loaders(cfg, ctx.cuda)
    classes = s4seg.SyntheticShapes.num_classes
    generator = s4seg.create_generator(cfg.backbone, classes, output_stride=8)
    method = s4seg.S4GAN(
        discriminator=s4seg.models.FMDiscriminator(classes),
        pseudo_filter=s4seg.filters.DiscriminatorGate(threshold=0.2),  # the paper's gate
    )
    config = s4seg.TrainerConfig(
        max_steps=cfg.steps,
        lr_g=cfg.lr,
        eval_interval=cfg.eval_every,
        log_interval=cfg.log_every,
        device=ctx.device,
        amp=cfg.amp,
        channels_last=cfg.channels_last,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"amp=.* is used on CUDA only")
        return s4seg.Trainer(
            generator, **loaders, method=method, config=config, callbacks=[recorder]
        )


def timed_eval(trainer: s4seg.Trainer, recorder: RunRecorder) -> None:
    """Evaluate the current weights outside fit (the start and an early end of the curve)."""
    start = time.perf_counter()
    recorder.evals[trainer.step] = float(trainer.evaluate()["miou"])
    recorder.eval_s[trainer.step] = time.perf_counter() - start


def stage_run(ctx: Context, res: StageResult) -> None:
    recorder = RunRecorder(res.deadline)
    res.data["recorder"] = recorder
    trainer = build_run(ctx, recorder)
    res.data["amp_ran"] = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(
        trainer.amp_dtype, "none"
    )
    try:
        timed_eval(trainer, recorder)  # step 0: where the curve starts
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"amp=.* is used on CUDA only")
            trainer.fit()
        if recorder.stopped_at is not None:
            res.stop_early(f"stopped at step {trainer.step} of {ctx.settings.run.steps} (cap)")
            if trainer.step not in recorder.evals and res.time_for(
                max(recorder.eval_s.values()) * 1.5
            ):
                timed_eval(trainer, recorder)
    finally:
        res.rows = run_rows(ctx, recorder)
        del trainer
        free_memory()


def run_rows(ctx: Context, recorder: RunRecorder) -> list[dict[str, object]]:
    """One row per evaluation: val mIoU, and the steps since the previous evaluation."""
    cfg = ctx.settings.run
    base = {
        "run_id": ctx.run_id(),
        "git_sha": ctx.meta["git_sha"],
        "device": ctx.meta["device"],
        "torch": ctx.meta["torch"],
        "triton": ctx.meta["triton"],
        "cuda": ctx.meta["cuda"],
        "backbone": cfg.backbone,
        "classes": s4seg.SyntheticShapes.num_classes,
        "size": cfg.size,
        "batch": cfg.batch,
        "amp": cfg.amp if ctx.cuda else "none",
        "channels_last": cfg.channels_last,
        "workers": cfg.workers,
        "steps": cfg.steps,
    }
    rows, previous = [], 0
    for step in sorted(recorder.evals):
        steps = recorder.train_steps(previous, step)
        logs = [r for r in recorder.logs if previous < r["step"] <= step]
        waits = [r["data_wait_frac"] for r in logs if "data_wait_frac" in r]
        mems = [r["gpu_mem_peak_mib"] for r in logs if "gpu_mem_peak_mib" in r]
        rows.append(
            dict(
                base,
                step=step,
                val_miou=f"{recorder.evals[step]:.4f}",
                s_per_step=f"{statistics.mean(steps):.4f}" if steps else "",
                eval_s=f"{recorder.eval_s.get(step, float('nan')):.2f}",
                data_wait_frac=f"{max(waits):.4f}" if waits else "",
                gpu_mem_peak_mib=f"{max(mems):.0f}" if mems else "",
                note="before training" if step == 0 else "",
            )
        )
        previous = step
    return rows


def write_run(ctx: Context, rows: list[dict[str, object]]) -> Path:
    from benchmarks.data.index_files import append_csv

    append_csv(rows, ctx.out.run_csv, RUN_FIELDS)
    return ctx.out.run_csv
