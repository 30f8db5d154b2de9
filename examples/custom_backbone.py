"""A custom timm backbone: any model with ``features_only`` becomes an S4GAN generator.

``create_generator`` passes the name and extra keyword arguments to timm, so a
ConvNeXt, an EfficientNet or a ResNet variant is one string away. Here the backbone
is built explicitly from its parts (encoder, ASPP head) to show what the factory does.

    python examples/custom_backbone.py --backbone efficientnet_b0 --max-steps 300
"""

from __future__ import annotations

from pathlib import Path

from common import base_parser, loaders, prepare, splits_from_args

import s4seg


def main() -> None:
    p = base_parser(__doc__.splitlines()[0], max_steps=300)
    p.set_defaults(backbone="efficientnet_b0")
    p.add_argument("--output-stride", type=int, default=16, help="8, 16 or 32")
    p.add_argument("--out", type=Path, default=Path("runs/custom_backbone"), help="run folder")
    args = p.parse_args()
    prepare(args)
    splits = splits_from_args(args)
    s4seg.seed_everything(args.seed)
    # The parts create_generator would assemble: a timm encoder and a DeepLabV2 head.
    encoder = s4seg.models.TimmEncoder(args.backbone, output_stride=args.output_stride)
    head = s4seg.models.ASPP(encoder.out_channels, splits.num_classes)
    generator = s4seg.models.SegmentationGenerator(encoder, head, splits.num_classes)
    print(f"{args.backbone}: {encoder.out_channels} channels at 1/{encoder.reduction} resolution")
    trainer = s4seg.Trainer(
        generator,
        **loaders(splits, args.batch_size, args.seed),
        config=s4seg.TrainerConfig(
            max_steps=args.max_steps,
            lr_g=0.01,
            eval_interval=max(1, args.max_steps // 3),
            log_interval=max(1, min(25, args.max_steps)),
            device=args.device,
        ),
        callbacks=s4seg.default_callbacks(args.out),
    )
    trainer.fit()
    print(f"best val mIoU {trainer.best_miou:.4f} at step {trainer.best_step}")


if __name__ == "__main__":
    main()
