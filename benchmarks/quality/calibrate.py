"""Choosing the learning-quality regime: supervised-only (1/16) and full supervision at a
budget and at twice it, for candidate networks, data and optimizers.

A regime is usable when doubling the steps moves both bounds by less than 0.01 mIoU
(they converged) and full supervision beats supervised-only by at least 0.10 (there is
headroom). Rows go to ``benchmarks/quality/calibration.csv`` (one per run: config,
split, seed, steps, best val, test mIoU at the best val and at the last step, the
validation curve); docs/quality/calibration.md reads them.

    python -m benchmarks.quality.calibrate --configs v3p_48_500 --steps 4000,8000
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
from pathlib import Path

import torch

from benchmarks.quality.run import HERE, PRESETS, Preset, Run, run_one

CSV_PATH = HERE / "calibration.csv"
FIELDS = [
    "config", "split", "seed", "steps", "labelled", "best_val", "best_step", "test_best",
    "test_last", "seconds", "curve",
]  # fmt: skip

_V3P = {"head": "deeplabv3plus", "head_kwargs": (("aspp_channels", 32), ("decoder_channels", 64))}
_ADAMW = {"optimizer": "adamw"}
# What was tried, in the order it was tried (the names of calibration.csv's rows).
CONFIGS: dict[str, dict] = {
    "eff_aspp_adamw": {**_ADAMW, "lr_g": 2e-3},
    "eff_aspp_adamw5e3": {**_ADAMW, "lr_g": 5e-3},
    "eff_v3p_sgd": {**_V3P, "lr_g": 0.05},
    "res_v3p_sgd": {**_V3P, "backbone": "test_resnet", "lr_g": 0.05},
    "eff_v3p_sgd_1k": {**_V3P, "lr_g": 0.05, "train_size": 1000},
    "eff_v3p_adamw": {**_V3P, **_ADAMW, "lr_g": 2e-3},
    "eff_v3p_adamw_1k": {**_V3P, **_ADAMW, "lr_g": 2e-3, "train_size": 1000},
    "eff_v3p_adamw5e3": {**_V3P, **_ADAMW, "lr_g": 5e-3},
    "eff_v3p_adamw1e2": {**_V3P, **_ADAMW, "lr_g": 1e-2},
    "eff_v3p_adamw5e3_1k": {**_V3P, **_ADAMW, "lr_g": 5e-3, "train_size": 1000},
    "eff_v3p_adamw5e3_500": {**_V3P, **_ADAMW, "lr_g": 5e-3, "train_size": 500},
    "eff_v3p_adamw5e3_48": {**_V3P, **_ADAMW, "lr_g": 5e-3, "image_size": 48},
    "v3p_48_500": {**_V3P, **_ADAMW, "lr_g": 5e-3, "image_size": 48, "train_size": 500},
}


def preset_of(name: str, steps: int) -> Preset:
    """The benchmark preset of a calibration config at ``steps``."""
    if name not in CONFIGS:
        raise SystemExit(f"unknown config {name!r}; known: {', '.join(CONFIGS)}")
    return dataclasses.replace(PRESETS["default"], steps=steps, evals=10, **CONFIGS[name])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", required=True, help="comma-separated names of CONFIGS")
    p.add_argument("--steps", default="1500,3000", help="comma-separated budgets")
    p.add_argument("--splits", default="1/16,full")
    p.add_argument("--seeds", default="0")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=CSV_PATH)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    for name in args.configs.split(","):
        for steps in (int(s) for s in args.steps.split(",")):
            for split in args.splits.split(","):
                for seed in (int(s) for s in args.seeds.split(",")):
                    method = "full" if split == "full" else "supervised"
                    row = run_one(Run(method, split, seed), preset_of(name, steps), "cpu")
                    out = {
                        "config": name, "split": split, "seed": seed, "steps": steps,
                        "labelled": row["labelled"], "best_val": row["best_val_miou"],
                        "best_step": row["best_step"], "test_best": row["test_miou"],
                        "test_last": row["test_miou_last"], "seconds": row["seconds"],
                        "curve": json.dumps(json.loads(row["val_curve"])),
                    }  # fmt: skip
                    new = not args.out.exists()
                    with args.out.open("a", newline="") as f:
                        writer = csv.DictWriter(f, fieldnames=FIELDS)
                        if new:
                            writer.writeheader()
                        writer.writerow(out)
                    print(out, flush=True)


if __name__ == "__main__":
    main()
