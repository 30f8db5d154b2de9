"""Whole S4GAN training step: s4seg's step against the same step with an unfused ST loss.

The two variants differ only in the self-training loss: s4seg's
:class:`~s4seg.losses.SelfTrainingLoss` (the fused op: Triton on CUDA, the reference on
the CPU) against the eager chain softmax -> max/argmax -> threshold -> mask ->
cross-entropy -> masked mean that S4GAN-style scripts write. Steps alternate between
the variants (A, B, A, B, ...) so that machine noise hits both alike; the medians and
p20/p80 are appended to ``benchmarks/step/results.csv`` with device, versions and git sha.

    python -m benchmarks.step.run                    # CPU: resnet18 at 64 px, batch 8
    python -m benchmarks.step.run --preset gpu       # CUDA: resnet50 at 321 px, batch 8, C=21
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import s4seg
from benchmarks.kernel.run import git_sha, triton_version
from s4seg.filters import FilterDecision

HERE = Path(__file__).resolve().parent
CSV_PATH = HERE / "results.csv"
PRESETS = {
    "cpu": {"backbone": "resnet18", "size": 64, "batch": 8, "classes": 6, "steps": 12},
    "gpu": {"backbone": "resnet50", "size": 321, "batch": 8, "classes": 21, "steps": 40},
}
FIELDS = [
    "run_id", "git_sha", "device", "torch", "triton", "variant", "backbone", "batch", "classes",
    "size", "steps", "ms_p50", "ms_p20", "ms_p80", "ratio_to_unfused",
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


def build(preset: dict, device: str, seed: int = 0) -> s4seg.Trainer:
    s4seg.seed_everything(seed)
    data = s4seg.SyntheticShapes(64, image_size=preset["size"], seed=seed)
    if preset["classes"] != data.num_classes:  # the GPU preset times VOC's 21 classes
        data.num_classes = preset["classes"]
    images = s4seg.data.Unlabelled(data)
    gen = s4seg.create_generator(preset["backbone"], preset["classes"], output_stride=8)
    return s4seg.Trainer(
        gen,
        s4seg.data.InfiniteLoader(data, preset["batch"], seed=1),
        unlabelled_loader=s4seg.data.InfiniteLoader(images, preset["batch"], seed=2),
        loaders={"d": s4seg.data.InfiniteLoader(data, preset["batch"], seed=3)},
        # A pixel filter keeps the mask non-trivial, so neither variant takes a shortcut.
        method=s4seg.S4GAN(pseudo_filter=s4seg.filters.PixelConfidenceFilter(0.5)),
        config=s4seg.TrainerConfig(max_steps=10_000, device=device, check_finite=False),
    )


def time_steps(trainers: dict[str, s4seg.Trainer], steps: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in trainers}
    cuda = next(iter(trainers.values())).device.type == "cuda"
    for i in range(steps + 2):
        for name, trainer in trainers.items():
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            trainer.train_step()
            trainer.step += 1
            if cuda:
                torch.cuda.synchronize()
            if i >= 2:  # two warm-up steps per variant
                times[name].append(1000 * (time.perf_counter() - start))
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--no-csv", action="store_true")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    preset = dict(PRESETS[args.preset or ("gpu" if cuda else "cpu")])
    if args.steps:
        preset["steps"] = args.steps
    device = "cuda" if cuda else "cpu"
    trainers = {"s4seg": build(preset, device), "unfused": build(preset, device)}
    trainers["unfused"].method.self_training.loss = UnfusedSelfTrainingLoss()
    times = time_steps(trainers, preset["steps"])
    name = (
        torch.cuda.get_device_name()
        if cuda
        else f"cpu ({platform.processor() or 'x86_64'}, {torch.get_num_threads()} threads)"
    )
    run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = statistics.median(times["unfused"])
    rows = []
    for variant, ts in times.items():
        q = statistics.quantiles(ts, n=10) if len(ts) > 1 else [ts[0]] * 9
        rows.append(
            {
                "run_id": run_id, "git_sha": git_sha(), "device": name,
                "torch": torch.__version__, "triton": triton_version(), "variant": variant,
                "backbone": preset["backbone"], "batch": preset["batch"],
                "classes": preset["classes"], "size": preset["size"], "steps": len(ts),
                "ms_p50": round(statistics.median(ts), 2), "ms_p20": round(q[1], 2),
                "ms_p80": round(q[7], 2), "ratio_to_unfused": round(statistics.median(ts) / base, 3),
            }
        )  # fmt: skip
        print(
            f"{variant:8s} {preset['backbone']} B={preset['batch']} {preset['size']}px on {name}: "
            f"step {rows[-1]['ms_p50']:.1f} ms (p20 {rows[-1]['ms_p20']:.1f}, p80 "
            f"{rows[-1]['ms_p80']:.1f}); time / unfused = {rows[-1]['ratio_to_unfused']:.3f}"
        )
    if not cuda:
        print(
            "CPU mode: s4seg's ST loss runs the plain-torch reference here; the Triton rows need a GPU."
        )
    if not args.no_csv:
        new = not CSV_PATH.exists()
        with CSV_PATH.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            if new:
                writer.writeheader()
            writer.writerows(rows)
        print(f"appended {len(rows)} rows to {CSV_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
