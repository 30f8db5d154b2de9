"""Threshold schedules compared: static, linear and step gates on the built-in data.

The field report asked for a linear gate 0.2 -> 0.05 over 25k iterations and a step
gate 0.05 / 0.10 / 0.15 / 0.20 at 0 / 5k / 15k / 30k. Here the same shapes are scaled
to ``--max-steps``. The threshold is on the discriminator's probability for each
unlabelled image (the S4GAN rule), so the logged counts are images, not pixels.

    python examples/threshold_schedules.py --max-steps 600
"""

from __future__ import annotations

from pathlib import Path

from common import (
    Stopwatch,
    base_parser,
    loaders,
    prepare,
    print_table,
    splits_from_args,
)

import s4seg


def schedules(max_steps: int) -> dict[str, s4seg.schedules.Schedule]:
    """The three schedules of the field report, stretched over ``max_steps``."""
    frac = max_steps / 30_000
    return {
        "static 0.2": s4seg.schedules.Constant(0.2),
        "linear 0.2->0.05": s4seg.schedules.Linear(0.2, 0.05, steps=max(1, round(25_000 * frac))),
        "step .05/.10/.15/.20": s4seg.schedules.Step(
            {0: 0.05, round(5_000 * frac): 0.10, round(15_000 * frac): 0.15, max_steps: 0.20}
        ),
    }


def main() -> None:
    p = base_parser(__doc__.splitlines()[0], max_steps=600)
    p.add_argument("--out", type=Path, default=Path("runs/threshold_schedules"), help="run folders")
    args = p.parse_args()
    prepare(args)
    splits = splits_from_args(args)
    rows = []
    for name, schedule in schedules(args.max_steps).items():
        print(f"\n== {name}: {schedule!r}")
        s4seg.seed_everything(args.seed)
        trainer = s4seg.Trainer(
            s4seg.create_generator(args.backbone, splits.num_classes),
            **loaders(splits, args.batch_size, args.seed),
            method=s4seg.S4GAN(pseudo_filter=s4seg.filters.DiscriminatorGate(schedule)),
            config=s4seg.TrainerConfig(
                max_steps=args.max_steps,
                lr_g=0.01,
                eval_interval=max(1, args.max_steps // 4),
                log_interval=max(1, min(25, args.max_steps)),
                device=args.device,
            ),
            callbacks=s4seg.default_callbacks(args.out / name.split()[0]),
        )
        with Stopwatch() as clock:
            trainer.fit()
        rows.append(
            {
                "name": name,
                "steps": trainer.step,
                "labelled": len(splits.labelled),
                "best_miou": trainer.best_miou,
                "best_step": trainer.best_step,
                "final_miou": trainer.evaluate()["miou"],
                "seconds": clock.seconds,
            }
        )
    print_table(rows, args.out)


if __name__ == "__main__":
    main()
