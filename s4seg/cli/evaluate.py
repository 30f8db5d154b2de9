"""``s4seg eval RUN_DIR|CHECKPOINT [--data DIR]``: mIoU, per-class IoU, pixel accuracy, and
a confusion-matrix plot, with optional sliding window and flip test-time augmentation."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from s4seg.cli.errors import CommandError
from s4seg.cli.options import add_inference_options

__all__ = ["format_metrics", "run"]


def format_metrics(metrics: dict[str, Any], names: list[str]) -> str:
    """A markdown table of per-class IoU, then mIoU and pixel accuracy."""
    width = max(len("class"), *map(len, names))
    lines = [f"| {'class':<{width}} | IoU    |", f"|{'-' * (width + 2)}|--------|"]
    for name, iou in zip(names, metrics["iou"], strict=True):
        shown = "  n/a " if iou != iou else f"{iou:.4f}"  # NaN: absent from both
        lines.append(f"| {name:<{width}} | {shown} |")
    lines.append(f"\nmIoU {metrics['miou']:.4f}  pixel accuracy {metrics['pixel_acc']:.4f}")
    return "\n".join(lines)


def _dataset(model: Any, data: Path | None) -> Any:
    from s4seg.cli.data_config import build_data
    from s4seg.data import FolderDataset

    run = model.run
    if data is not None:
        try:
            return FolderDataset(
                data, num_classes=model.num_classes, ignore_index=model.ignore_index,
                image_dir=run.data.image_dir, mask_dir=run.data.mask_dir,
            )  # fmt: skip
        except (FileNotFoundError, ValueError) as err:
            raise CommandError(f"--data {data}: {err}") from err
    sets = build_data(run.data, ignore_index=model.ignore_index, seed=run.seed)
    if sets.val is None:
        raise CommandError(
            "the run's config has no validation split (data.val_root, data.val_list or "
            "data.val_fraction): pass --data DIR, a folder with images/ and masks/"
        )
    return sets.val


def run(
    target: Path,
    *,
    data: Path | None = None,
    config: Path | None = None,
    out: Path | None = None,
    tile: int | None = None,
    flip: bool = False,
    device: str = "auto",
    batch_size: int = 1,
) -> int:
    """Evaluate a trained model; prints the table, writes metrics.json and confusion.png."""
    import torch
    from torch.utils.data import DataLoader

    from s4seg.cli.confusion_plot import plot_confusion
    from s4seg.cli.run_folder import load_trained_model
    from s4seg.cli.segment import normalise, segment
    from s4seg.metrics import SegmentationMetric

    model = load_trained_model(target, config)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       "cpu" if device == "auto" else device)  # fmt: skip
    generator = model.generator.to(dev)
    dataset = _dataset(model, data)
    metric = SegmentationMetric(model.num_classes, model.ignore_index)
    tile = tile if tile is not None else model.tile
    try:
        for batch in DataLoader(dataset, batch_size=batch_size):
            images = normalise(batch["image"].to(dev), model.mean, model.std)
            metric.update(segment(generator, images, tile=tile, flip=flip), batch["mask"].to(dev))
    except (ValueError, OSError) as err:
        raise CommandError(str(err)) from err
    metrics: dict[str, Any] = metric.compute()
    names = model.class_names or [f"class {c}" for c in range(model.num_classes)]
    print(f"{model.checkpoint} (step {model.step}) on {len(dataset)} images"
          f"{f', tile {tile}' if tile else ''}{', flip' if flip else ''}:")  # fmt: skip
    print(format_metrics(metrics, names))
    out = out or (model.checkpoint.parent.parent / "eval")
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "checkpoint": str(model.checkpoint), "step": model.step, "images": len(dataset),
        "tile": tile, "flip": flip, **metrics,
        "iou_by_class": dict(zip(names, metrics["iou"], strict=True)),
        "confusion": metric.confusion.cpu().tolist(),
    }  # fmt: skip
    (out / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    plot = plot_confusion(metric.confusion.cpu().numpy(), names, out / "confusion.png")
    print(f"wrote {out / 'metrics.json'} and {plot}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``s4seg eval`` to the command's subparsers (no torch is loaded)."""
    p = sub.add_parser(
        "eval",
        help="mIoU, per-class IoU and pixel accuracy of a trained model, with a confusion plot",
        description="Evaluate a run's best checkpoint (or a given checkpoint) on a folder "
        "with images/ and masks/ (--data), or on the run's validation split. Writes "
        "metrics.json and confusion.png to --out (default RUN_DIR/eval).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("target", type=Path, metavar="RUN_DIR|CHECKPOINT")
    p.add_argument("--data", type=Path, help="a folder with images/ and masks/")
    p.add_argument("--out", type=Path, help="output folder (default: RUN_DIR/eval)")
    p.add_argument("--batch-size", type=int, default=1, help="images per batch (same size only)")
    add_inference_options(p)
    p.set_defaults(
        run_command=lambda args, extra: run(
            args.target,
            data=args.data,
            config=args.config,
            out=args.out,
            tile=args.tile,
            flip=args.flip,
            device=args.device,
            batch_size=args.batch_size,
        )
    )
