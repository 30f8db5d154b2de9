"""FixMatch/UniMatch-style self-training on the built-in data: EMA teacher, weak/strong views, CutMix.

The teacher (an EMA of the student) predicts a weak view of each unlabelled batch
(flip, scale-crop); the student learns the teacher's confident pseudo-labels on a
strong view of the same geometry (colour jitter, grayscale, blur, CutMix), and the
teacher's logits are CutMixed with the images. The views are made on the device.

    python examples/fixmatch_synthetic.py                  # about 4 minutes on 2 CPU cores
    python examples/fixmatch_synthetic.py --max-steps 2    # the wiring only
"""

from __future__ import annotations

from pathlib import Path

from common import base_parser, fit_and_summarise, loaders, prepare, print_table, splits_from_args

import s4seg


def main() -> None:
    p = base_parser(__doc__.splitlines()[0], max_steps=1500)
    p.add_argument("--lr", type=float, default=0.05, help="generator SGD lr")
    p.add_argument("--threshold", type=float, default=0.9, help="on the teacher's softmax")
    p.add_argument("--start-step", type=int, default=200, help="labels only before this step")
    p.add_argument("--cutmix-p", type=float, default=0.5, help="CutMix probability")
    p.add_argument("--out", type=Path, default=Path("runs/fixmatch_synthetic"), help="run folders")
    args = p.parse_args()
    prepare(args)
    splits = splits_from_args(args)
    s4seg.seed_everything(args.seed)
    generator = s4seg.create_generator(args.backbone, splits.num_classes, output_stride=8)
    method = s4seg.FixMatch(
        views=s4seg.data.WeakStrongViews(cutmix_p=args.cutmix_p),
        pseudo_filter=s4seg.filters.PixelConfidenceFilter(args.threshold),
        start_step=min(args.start_step, args.max_steps // 2),
        seed=args.seed,
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
            args.out / "fixmatch", extra_config={"example": vars(args)}
        ),
    )
    row = fit_and_summarise(trainer, "fixmatch", len(splits.labelled))
    print_table([row], args.out)


if __name__ == "__main__":
    main()
