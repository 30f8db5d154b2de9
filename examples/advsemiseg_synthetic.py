"""AdvSemiSeg on the built-in data: pixel discriminator, adversarial loss, self-training on its map.

Hung et al., "Adversarial Learning for Semi-Supervised Semantic Segmentation", BMVC
2018, expressed with s4seg's parts: :class:`s4seg.models.PixelDiscriminator` scores every
pixel of a softmax map, the generator gets the adversarial terms (0.01 on labelled,
0.001 on unlabelled predictions), and from ``--semi-start`` on it self-trains on the
unlabelled pixels whose discriminator confidence is >= mask_T
(:class:`s4seg.filters.ConfidenceMapFilter`).

    python examples/advsemiseg_synthetic.py                  # about 8 minutes on 2 CPU cores
    python examples/advsemiseg_synthetic.py --max-steps 2    # the wiring only
"""

from __future__ import annotations

from pathlib import Path

from common import base_parser, fit_and_summarise, loaders, prepare, print_table, splits_from_args

import s4seg


def main() -> None:
    p = base_parser(__doc__.splitlines()[0], max_steps=1500)
    p.add_argument("--lr", type=float, default=0.05, help="generator SGD lr")
    p.add_argument("--lr-d", type=float, default=1e-4, help="discriminator Adam lr (the paper's)")
    p.add_argument("--threshold", type=float, default=0.2, help="on D's confidence map (mask_T)")
    p.add_argument("--start-step", type=int, default=500, help="first self-training step")
    p.add_argument(
        "--out", type=Path, default=Path("runs/advsemiseg_synthetic"), help="run folders"
    )
    args = p.parse_args()
    prepare(args)
    splits = splits_from_args(args)
    s4seg.seed_everything(args.seed)
    generator = s4seg.create_generator(args.backbone, splits.num_classes, output_stride=8)
    method = s4seg.AdvSemiSeg(
        discriminator=s4seg.models.PixelDiscriminator(splits.num_classes),
        pseudo_filter=s4seg.filters.ConfidenceMapFilter(args.threshold),
        start_step=min(args.start_step, args.max_steps // 2),
        lr_d=args.lr_d,
    )
    trainer = s4seg.Trainer(
        generator,
        **loaders(splits, args.batch_size, args.seed),
        method=method,
        config=s4seg.TrainerConfig(
            max_steps=args.max_steps,
            lr_g=args.lr,
            eval_interval=max(1, args.max_steps // 6),
            log_interval=max(1, min(25, args.max_steps)),
            device=args.device,
        ),
        callbacks=s4seg.default_callbacks(
            args.out / "advsemiseg", extra_config={"example": vars(args)}
        ),
    )
    print_table([fit_and_summarise(trainer, "advsemiseg", len(splits.labelled))], args.out)


if __name__ == "__main__":
    main()
