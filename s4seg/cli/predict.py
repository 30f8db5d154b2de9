"""``s4seg predict RUN_DIR|CHECKPOINT IMAGES... --out DIR``: a palette-PNG mask per image
(and ``--probs`` probability maps as .npy), batched on the device, any image size."""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from s4seg.cli.errors import CommandError
from s4seg.cli.options import add_inference_options

__all__ = ["image_files", "run"]


def image_files(paths: Sequence[Path]) -> list[Path]:
    """The image files that ``paths`` name: files as given, folders' images sorted."""
    from s4seg.data import IMAGE_EXTENSIONS

    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            if not inside:
                raise CommandError(f"{path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise CommandError(f"{path}: no such image file or folder")
    stems: dict[str, Path] = {}
    for path in found:
        if path.stem in stems:
            raise CommandError(
                f"{stems[path.stem]} and {path} would both be written as {path.stem}.png; "
                "predict them into different --out folders"
            )
        stems[path.stem] = path
    return found


def run(
    target: Path,
    images: Sequence[Path],
    *,
    out: Path,
    config: Path | None = None,
    probs: bool = False,
    tile: int | None = None,
    flip: bool = False,
    device: str = "auto",
    batch_size: int = 4,
) -> int:
    """Predict a mask for every image; batches hold images of one size."""
    import numpy as np
    import torch
    from PIL import Image
    from tqdm.auto import tqdm

    from s4seg.cli.palette import save_palette_png
    from s4seg.cli.run_folder import load_trained_model
    from s4seg.cli.segment import load_image, normalise, segment

    files = image_files(images)
    model = load_trained_model(target, config)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       "cpu" if device == "auto" else device)  # fmt: skip
    generator = model.generator.to(dev)
    by_size: dict[tuple[int, int], list[Path]] = defaultdict(list)
    for path in files:  # the header only: sizes without decoding the pixels
        try:
            with Image.open(path) as im:
                by_size[im.size].append(path)
        except (OSError, ValueError, SyntaxError) as err:
            raise CommandError(f"cannot read image {path}: {err}") from err
    out.mkdir(parents=True, exist_ok=True)
    with tqdm(total=len(files), desc="predict", unit="image") as bar:
        for group in by_size.values():
            for start in range(0, len(group), batch_size):
                chunk = group[start : start + batch_size]
                batch = torch.stack([load_image(str(p)) for p in chunk]).to(dev)
                p = segment(
                    generator, normalise(batch, model.mean, model.std), tile=tile, flip=flip
                )
                masks = p.argmax(dim=1).to(torch.uint8).cpu().numpy()
                for path, mask, prob in zip(chunk, masks, p.cpu().numpy(), strict=True):
                    save_palette_png(mask, out / f"{path.stem}.png")
                    if probs:
                        np.save(out / f"{path.stem}.npy", prob.astype(np.float32))
                bar.update(len(chunk))
    what = "masks and probability maps" if probs else "masks"
    print(f"wrote {len(files)} {what} to {out} ({model.checkpoint}, step {model.step})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``s4seg predict`` to the command's subparsers (no torch is loaded)."""
    p = sub.add_parser(
        "predict",
        help="masks (palette PNGs) for new images of any size",
        description="Predict a mask for each image (files or folders of images) with a run's "
        "best checkpoint: OUT/<stem>.png, a palette PNG whose pixel values are class indices; "
        "--probs also writes OUT/<stem>.npy, float32 class probabilities (C, H, W).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("target", type=Path, metavar="RUN_DIR|CHECKPOINT")
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGES", help="image files or folders")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--probs", action="store_true", help="also write probability maps (.npy)")
    p.add_argument("--batch-size", type=int, default=4, help="images per batch (one size each)")
    add_inference_options(p)
    p.set_defaults(
        run_command=lambda args, extra: run(
            args.target,
            args.images,
            out=args.out,
            config=args.config,
            probs=args.probs,
            tile=args.tile,
            flip=args.flip,
            device=args.device,
            batch_size=args.batch_size,
        )
    )
