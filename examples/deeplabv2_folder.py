"""S4GAN with DeepLabV2-ResNet101 on your own folder dataset, with the paper's defaults.

Expected layout (VOC-like; masks are PNGs of class indices, 255 = ignore):

    DATA/train/images/*.jpg|png   DATA/train/masks/*.png   (masks for the labelled part only)
    DATA/val/images/...           DATA/val/masks/...
    [--unlabelled DIR/images/...] (an extra pool of unlabelled images, optional)

``--labelled`` takes a fraction (0.125 = the paper's 1/8 split) or a count of the training
images; the rest of train/ is used without masks. Each labelled batch needs that many
labelled images: at least ``--batch-size``. ``--make-demo-data DIR`` writes a small
dataset in this layout from the built-in generator (64 training images, so that 1/8 of
them is one batch of 8), to try the recipe end to end:

    python examples/deeplabv2_folder.py --make-demo-data demo_data
    python examples/deeplabv2_folder.py --data demo_data --num-classes 6 --crop-size 129 --max-steps 20

Run again with a larger ``--max-steps`` and the same ``--out``, it resumes from the last
checkpoint.

Where this departs from the paper's code (and why):
- Images are normalised with ImageNet mean/std in RGB (the original subtracted Caffe BGR means):
  it matches the torchvision/timm weights the preset loads.
- Each parameter is in the optimizer once; the original listed backbone weights several
  times, so they trained at about 3x the nominal learning rate.
- The ASPP sums all four branches; the discriminator pools adaptively (any crop size).
- No ImageNet weights by default, since nothing is downloaded at run time: pass
  ``--pretrained`` when online, or ``--backbone-weights resnet101.pth`` (torchvision/timm keys).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import default_threads

import s4seg  # loads torch on first use only: `--help` answers at once

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def make_demo_data(root: Path, train: int = 64, val: int = 8, size: int = 160) -> None:
    """Write SyntheticShapes samples as PNG files in the layout above."""
    from PIL import Image

    for split, n, seed in (("train", train, 0), ("val", val, 1)):
        data = s4seg.SyntheticShapes(n, image_size=size, seed=seed)
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "masks").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            sample = data[i]
            rgb = (sample["image"].permute(1, 2, 0).numpy() * 255).round().astype("uint8")
            Image.fromarray(rgb).save(root / split / "images" / f"{i:05d}.png")
            Image.fromarray(sample["mask"].numpy().astype("uint8")).save(
                root / split / "masks" / f"{i:05d}.png"
            )
    print(f"wrote {train} train and {val} val images to {root}")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", type=Path, help="folder with train/ and val/")
    p.add_argument("--make-demo-data", type=Path, metavar="DIR", help="write a demo dataset")
    p.add_argument("--demo-size", type=int, default=160, help="side of the demo images")
    p.add_argument("--unlabelled", type=Path, help="extra folder of unlabelled images")
    p.add_argument("--num-classes", type=int, default=21, help="classes (masks hold 0..C-1)")
    p.add_argument("--labelled", type=float, default=0.125, help="fraction (<1) or count")
    p.add_argument("--crop-size", type=int, default=321, help="training crop and eval tile")
    p.add_argument("--batch-size", type=int, default=8, help="images per batch (each loader)")
    p.add_argument("--max-steps", type=int, default=20_000, help="training steps")
    p.add_argument("--st-threshold", type=float, default=0.2, help="gate on D(fake) probability")
    p.add_argument("--pretrained", action="store_true", help="ImageNet weights via timm (online)")
    p.add_argument("--backbone-weights", type=Path, help="local ResNet-101 ImageNet state_dict")
    p.add_argument("--out", type=Path, default=Path("runs/deeplabv2_folder"), help="run folder")
    p.add_argument("--device", default="auto", help="auto (CUDA if there is one), cpu, cuda")
    p.add_argument("--workers", type=int, default=2, help="loader worker processes")
    p.add_argument("--seed", type=int, default=0, help="split, weights and batches")
    p.add_argument(
        "--threads",
        type=int,
        default=default_threads(),
        help="torch CPU threads (0: torch's default); the default is OMP_NUM_THREADS if set, "
        "else half this machine's CPUs, 1 to 4",
    )
    args = p.parse_args()
    if args.make_demo_data:
        make_demo_data(args.make_demo_data, size=args.demo_size)
        return
    if args.data is None:
        p.error("--data is required (or --make-demo-data DIR to write a demo dataset)")

    import torch
    from torch.utils.data import ConcatDataset, DataLoader, Subset

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    s4seg.seed_everything(args.seed)
    train = s4seg.FolderDataset(args.data / "train", labelled=False)
    lab_idx, unl_idx = s4seg.data.split_indices(
        len(train), int(args.labelled) if args.labelled >= 1 else args.labelled, seed=args.seed
    )
    if len(lab_idx) < args.batch_size:
        p.error(
            f"--labelled {args.labelled} of the {len(train)} training images is "
            f"{len(lab_idx)} labelled images, fewer than one batch (--batch-size "
            f"{args.batch_size}): pass --batch-size {len(lab_idx)} or label more images"
        )
    # Only the labelled part needs masks: index it through a labelled view of the folder.
    labelled = Subset(
        s4seg.FolderDataset(args.data / "train", num_classes=args.num_classes), lab_idx
    )
    unlabelled = Subset(train, unl_idx)
    if args.unlabelled:
        unlabelled = ConcatDataset(
            [unlabelled, s4seg.FolderDataset(args.unlabelled, labelled=False)]
        )
    augment = s4seg.data.Compose(
        [
            s4seg.data.RandomScale(0.5, 1.5),
            s4seg.data.RandomCrop(args.crop_size),
            s4seg.data.RandomHorizontalFlip(),
            s4seg.data.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    val = s4seg.data.Augmented(
        s4seg.FolderDataset(args.data / "val", num_classes=args.num_classes),
        s4seg.data.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    )

    def loader(dataset, seed):
        return s4seg.data.InfiniteLoader(
            s4seg.data.Augmented(dataset, augment, seed=seed),
            args.batch_size,
            seed=seed,
            num_workers=args.workers,
            persistent_workers=args.workers > 0,
        )

    generator = s4seg.create_generator(
        "deeplabv2_resnet101", args.num_classes, pretrained=args.pretrained
    )
    if args.backbone_weights:
        weights = torch.load(args.backbone_weights, map_location="cpu", weights_only=True)
        weights = {k: v for k, v in weights.items() if not k.startswith("fc.")}
        generator.encoder.load_state_dict(weights)  # the preset encoder is the ResNet itself
    trainer = s4seg.Trainer(
        generator,
        loader(labelled, args.seed),
        unlabelled_loader=loader(unlabelled, args.seed + 1),
        loaders={"d": loader(labelled, args.seed + 2)},  # shown to the discriminator as real
        val_loader=DataLoader(val, batch_size=1),  # full-size images, one at a time
        method=s4seg.S4GAN(
            discriminator=s4seg.models.FMDiscriminator(args.num_classes),
            pseudo_filter=s4seg.filters.DiscriminatorGate(args.st_threshold),
        ),
        config=s4seg.TrainerConfig(  # the paper's defaults except max_steps
            max_steps=args.max_steps,
            eval_interval=min(1000, args.max_steps),
            eval_tile=args.crop_size,
            device=args.device,
        ),
        callbacks=s4seg.default_callbacks(args.out, extra_config={"example": vars(args)}),
    )
    if (args.out / "checkpoints" / "last.pt").exists():
        print(f"resuming from step {trainer.load_checkpoint(args.out / 'checkpoints' / 'last.pt')}")
    trainer.fit()
    print(f"best val mIoU {trainer.best_miou:.4f} at step {trainer.best_step}")


if __name__ == "__main__":
    main()
