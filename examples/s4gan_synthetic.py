"""S4GAN against supervised-only on the built-in synthetic data (the S4GAN recipe).

Both runs use the same network, the same labelled images, the same number of steps and
the same seed; S4GAN also sees the unlabelled images. Each run writes a run folder
(config.json, metrics.jsonl, TensorBoard events, checkpoints) under ``--out``, and the
script prints a table of validation mIoU.

    python examples/s4gan_synthetic.py                 # about 12 minutes on 2 CPU cores
    python examples/s4gan_synthetic.py --max-steps 2   # the wiring only
"""

from __future__ import annotations

from pathlib import Path

from common import (
    base_parser,
    fit_and_summarise,
    loaders,
    prepare,
    print_table,
    splits_from_args,
)

import s4seg


def run(args, method: str, out_dir: Path) -> dict:
    splits = splits_from_args(args)
    s4seg.seed_everything(args.seed)  # the same initial weights for both runs
    generator = s4seg.create_generator(
        args.backbone, splits.num_classes, output_stride=args.output_stride
    )
    config = s4seg.TrainerConfig(
        max_steps=args.max_steps,
        lr_g=args.lr,
        eval_interval=max(1, args.max_steps // 6),
        log_interval=max(1, min(25, args.max_steps)),
        device=args.device,
    )
    if method == "s4gan":
        chosen: s4seg.methods.Method = s4seg.S4GAN(
            discriminator=s4seg.models.FMDiscriminator(splits.num_classes),
            pseudo_filter=s4seg.filters.DiscriminatorGate(threshold=args.st_threshold),
            lr_d=args.lr_d,
        )
    else:
        chosen = s4seg.methods.build_method(method)
    trainer = s4seg.Trainer(
        generator,
        **loaders(splits, args.batch_size, args.seed),
        method=chosen,
        config=config,
        callbacks=s4seg.default_callbacks(out_dir / method, extra_config={"example": vars(args)}),
    )
    return fit_and_summarise(trainer, method, len(splits.labelled))


def main() -> None:
    p = base_parser(__doc__.splitlines()[0], max_steps=1500)
    p.add_argument("--output-stride", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.05, help="generator SGD lr (the paper: 2.5e-4)")
    p.add_argument("--lr-d", type=float, default=1e-4)
    p.add_argument("--st-threshold", type=float, default=0.2, help="gate on D(fake) probability")
    p.add_argument("--methods", default="supervised,s4gan", help="comma-separated runs")
    p.add_argument("--out", type=Path, default=Path("runs/s4gan_synthetic"))
    args = p.parse_args()
    prepare(args)
    rows = [run(args, method, args.out) for method in args.methods.split(",")]
    print_table(rows, args.out)


if __name__ == "__main__":
    main()
