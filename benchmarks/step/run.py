"""Whole S4GAN training step: s4seg's step against the same step with an unfused ST loss.

The two variants differ only in the self-training loss: s4seg's
:class:`~s4seg.losses.SelfTrainingLoss` (the fused op: Triton on CUDA, the reference on
the CPU) against the eager chain softmax -> max/argmax -> threshold -> mask ->
cross-entropy -> masked mean that S4GAN-style scripts write. Steps alternate between
the variants (A, B, A, B, ...) so that machine noise hits both alike; the medians and
p20/p80 are appended to ``benchmarks/step/results.csv`` with device, versions and git sha.

    python -m benchmarks.step.run                    # CPU: resnet18 at 64 px, batch 8
    python -m benchmarks.step.run --preset gpu       # CUDA: resnet50 at 321 px, batch 8, C=21
    python -m benchmarks.step.run --preset gpu_deeplabv2 --amp none   # DeepLabV2-R101, fp32

The GPU presets feed each step batches that already sit on the device, so the timed
step is the step alone: generating 24 synthetic 321-pixel images on the CPU costs more
than the GPU step itself. ``--backbone``, ``--amp`` and ``--channels-last`` override
the preset.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import platform
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import default_collate

import s4seg
from benchmarks.kernel.run import git_sha, triton_version
from s4seg.filters import FilterDecision

HERE = Path(__file__).resolve().parent
CSV_PATH = HERE / "results.csv"
PRESETS = {
    "cpu": {"backbone": "resnet18", "size": 64, "batch": 8, "classes": 6, "steps": 12},
    "gpu": {"backbone": "resnet50", "size": 321, "batch": 8, "classes": 21, "steps": 40,
            "device_batches": True},
    "gpu_deeplabv2": {"backbone": "deeplabv2_resnet101", "size": 321, "batch": 8, "classes": 21,
                      "steps": 20, "amp": "bf16", "channels_last": True, "device_batches": True},
}  # fmt: skip
FIELDS = [
    "run_id", "git_sha", "device", "torch", "triton", "variant", "backbone", "batch", "classes",
    "size", "steps", "ms_p50", "ms_p20", "ms_p80", "ratio_to_unfused", "amp", "channels_last",
    "steps_per_s", "peak_mem_mib",
]  # fmt: skip


class UnfusedSelfTrainingLoss(nn.Module):
    """The eager baseline: each stage a separate pass over the (B, C, H, W) logits."""

    def forward(
        self, logits: Tensor, decision: FilterDecision, teacher_logits: Tensor | None = None
    ) -> tuple[Tensor, s4seg.ops.PseudoLabelStats]:
        probs = F.softmax(logits.detach().float(), dim=1)
        confidence, pseudo = probs.max(dim=1)
        mask = (confidence >= decision.pixel_threshold) & decision.image_keep[:, None, None]
        per_pixel = F.cross_entropy(logits.float(), pseudo, reduction="none")
        loss = (per_pixel * mask).sum() / mask.sum().clamp_min(1)
        return loss, s4seg.ops.PseudoLabelStats.from_mask(mask)


class DeviceBatches:
    """Endless batches from a few collated ones already on the device.

    The GPU presets time the step alone: the loader's work (generation, collation, the
    host-to-device copy) would otherwise be part of every timed step, alike for both
    variants, and hide the difference between them.
    """

    def __init__(self, dataset: object, batch: int, device: str, count: int = 2) -> None:
        samples = [dataset[i] for i in range(batch * count)]  # type: ignore[index]
        collated = [default_collate(samples[j : j + batch]) for j in range(0, len(samples), batch)]
        self.batches = [
            {k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()} for b in collated
        ]
        self.i = 0

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        return self

    def __next__(self) -> dict[str, Tensor]:
        self.i += 1
        return self.batches[self.i % len(self.batches)]


def build(preset: dict, device: str, seed: int = 0) -> s4seg.Trainer:
    s4seg.seed_everything(seed)
    data = s4seg.SyntheticShapes(64, image_size=preset["size"], seed=seed)
    if preset["classes"] != data.num_classes:  # the GPU preset times VOC's 21 classes
        data.num_classes = preset["classes"]
    images = s4seg.data.Unlabelled(data)
    gen = s4seg.create_generator(preset["backbone"], preset["classes"], output_stride=8)
    if preset.get("device_batches"):
        loaders = [DeviceBatches(d, preset["batch"], device) for d in (data, images, data)]
    else:
        loaders = [
            s4seg.data.InfiniteLoader(d, preset["batch"], seed=s)
            for d, s in ((data, 1), (images, 2), (data, 3))
        ]
    return s4seg.Trainer(
        gen,
        loaders[0],
        unlabelled_loader=loaders[1],
        loaders={"d": loaders[2]},
        # A pixel filter keeps the mask non-trivial, so neither variant takes a shortcut.
        method=s4seg.S4GAN(pseudo_filter=s4seg.filters.PixelConfidenceFilter(0.5)),
        config=s4seg.TrainerConfig(
            max_steps=10_000,
            device=device,
            check_finite=False,
            amp=preset.get("amp", "none"),
            channels_last=preset.get("channels_last", False),
        ),
    )


def _timed_step(trainer: s4seg.Trainer, cuda: bool) -> tuple[float, float]:
    """(milliseconds, MiB the step allocated above what was resident when it began)."""
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        resident = torch.cuda.memory_allocated()
    start = time.perf_counter()
    trainer.train_step()
    trainer.step += 1
    if not cuda:
        return 1000 * (time.perf_counter() - start), float("nan")
    torch.cuda.synchronize()
    ms = 1000 * (time.perf_counter() - start)
    return ms, (torch.cuda.max_memory_allocated() - resident) / 2**20


def time_steps(
    trainers: dict[str, s4seg.Trainer],
    steps: int,
    *,
    deadline: float | None = None,
    peaks: dict[str, float] | None = None,
) -> dict[str, list[float]]:
    """Step times in ms per variant, alternating, after two warm-up steps each.

    Args:
        deadline: a ``time.perf_counter()`` time: no round starts that the last round's
            duration says would end after it (at least one timed round always runs).
        peaks: filled with each variant's peak step memory in MiB (CUDA; NaN on the CPU).
    """
    times: dict[str, list[float]] = {name: [] for name in trainers}
    cuda = next(iter(trainers.values())).device.type == "cuda"
    last_round = 0.0
    for i in range(steps + 2):
        if deadline is not None and i > 2 and time.perf_counter() + last_round > deadline:
            break
        round_start = time.perf_counter()
        for name, trainer in trainers.items():
            ms, peak = _timed_step(trainer, cuda)
            if i >= 2:  # two warm-up steps per variant
                times[name].append(ms)
                if peaks is not None:
                    peaks[name] = max(peaks.get(name, peak), peak)
        last_round = time.perf_counter() - round_start
    return times


def device_name(cuda: bool) -> str:
    if cuda:
        return torch.cuda.get_device_name()
    return f"cpu ({platform.processor() or 'x86_64'}, {torch.get_num_threads()} threads)"


def amp_that_ran(trainer: s4seg.Trainer) -> str:
    """The autocast the trainer uses: "none" on the CPU whatever the config asked for."""
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(trainer.amp_dtype, "none")


def run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def make_rows(
    times: dict[str, list[float]],
    preset: dict,
    *,
    run_id: str,
    device: str,
    amp: str,
    peaks: dict[str, float] | None = None,
) -> list[dict[str, object]]:
    """One CSV row per variant; ``amp`` is the autocast that ran ("none" on the CPU)."""
    base = statistics.median(times["unfused"])
    sha, triton = git_sha(), triton_version()
    rows: list[dict[str, object]] = []
    for variant, ts in times.items():
        q = statistics.quantiles(ts, n=10) if len(ts) > 1 else [ts[0]] * 9
        p50 = statistics.median(ts)
        peak = (peaks or {}).get(variant, float("nan"))
        rows.append(
            {
                "run_id": run_id, "git_sha": sha, "device": device,
                "torch": torch.__version__, "triton": triton, "variant": variant,
                "backbone": preset["backbone"], "batch": preset["batch"],
                "classes": preset["classes"], "size": preset["size"], "steps": len(ts),
                "ms_p50": round(p50, 2), "ms_p20": round(q[1], 2),
                "ms_p80": round(q[7], 2), "ratio_to_unfused": round(p50 / base, 3),
                "amp": amp, "channels_last": bool(preset.get("channels_last", False)),
                "steps_per_s": round(1000 / p50, 3),
                "peak_mem_mib": "" if peak != peak else round(peak, 1),  # NaN: not tracked
            }
        )  # fmt: skip
    return rows


def append_rows(rows: list[dict[str, object]], path: Path = CSV_PATH) -> None:
    """Append ``rows``; a file with an older header is rewritten with the current one."""
    old: list[dict[str, str]] = []
    if path.exists():
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != FIELDS:  # columns added since: blank in the old rows
                old = list(reader)
    if old:
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows({k: r.get(k) or "" for k in FIELDS} for r in old)
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerows({k: r.get(k, "") for k in FIELDS} for r in rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--backbone", default=None, help="any create_generator name (preset's)")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], default=None, help="CUDA only")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--no-csv", action="store_true")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    preset = dict(PRESETS[args.preset or ("gpu" if cuda else "cpu")])
    overrides = {"steps": args.steps, "backbone": args.backbone, "amp": args.amp,
                 "channels_last": args.channels_last}  # fmt: skip
    preset.update({k: v for k, v in overrides.items() if v is not None})
    device = "cuda" if cuda else "cpu"
    trainers = {"s4seg": build(preset, device), "unfused": build(preset, device)}
    trainers["unfused"].method.self_training.loss = UnfusedSelfTrainingLoss()
    peaks: dict[str, float] = {}
    times = time_steps(trainers, preset["steps"], peaks=peaks)
    name = device_name(cuda)
    amp = amp_that_ran(trainers["s4seg"])
    rows = make_rows(times, preset, run_id=run_id(), device=name, amp=amp, peaks=peaks)
    for row in rows:
        print(
            f"{row['variant']:8s} {preset['backbone']} B={preset['batch']} {preset['size']}px "
            f"amp={amp} on {name}: step {row['ms_p50']:.1f} ms (p20 {row['ms_p20']:.1f}, p80 "
            f"{row['ms_p80']:.1f}); time / unfused = {row['ratio_to_unfused']:.3f}"
        )
    if not cuda:
        print(
            "CPU mode: s4seg's ST loss runs the plain-torch reference here; the Triton rows need a GPU."
        )
    if not args.no_csv:
        append_rows(rows)
        print(f"appended {len(rows)} rows to {CSV_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
