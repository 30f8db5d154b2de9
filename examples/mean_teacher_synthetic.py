"""Mean teacher on the built-in data: the student learns an EMA teacher's confident pseudo-labels.

Tarvainen and Valpola, "Mean teachers are better role models", NeurIPS 2017, with
hard, thresholded targets as segmentation codebases use it: teacher and student see
the same unlabelled batch, the teacher's pixels with max softmax >= ``--threshold`` teach
(:class:`s4seg.filters.PixelConfidenceFilter`), and the teacher's decay warms up as
``min(1 - 1/(t+1), 0.999)``. Compare with ``fixmatch_synthetic.py``, which adds
weak/strong views and CutMix to the same parts.

    python examples/mean_teacher_synthetic.py                 # about 4 minutes on 2 CPU cores
    python examples/mean_teacher_synthetic.py --max-steps 2   # the wiring only
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
    p.add_argument("--max-decay", type=float, default=0.999, help="cap of the EMA decay")
    p.add_argument(
        "--out", type=Path, default=Path("runs/mean_teacher_synthetic"), help="run folders"
    )
    args = p.parse_args()
    prepare(args)
    splits = splits_from_args(args)
    s4seg.seed_everything(args.seed)
    generator = s4seg.create_generator(args.backbone, splits.num_classes, output_stride=8)
    trainer = s4seg.Trainer(
        generator,
        **loaders(splits, args.batch_size, args.seed),
        method=s4seg.MeanTeacher(
            pseudo_filter=s4seg.filters.PixelConfidenceFilter(args.threshold),
            max_decay=args.max_decay,
            start_step=min(args.start_step, args.max_steps // 2),
        ),
        config=s4seg.TrainerConfig(
            max_steps=args.max_steps,
            lr_g=args.lr,
            eval_interval=max(1, args.max_steps // 6),
            log_interval=max(1, min(25, args.max_steps)),
            device=args.device,
        ),
        callbacks=s4seg.default_callbacks(
            args.out / "mean_teacher", extra_config={"example": vars(args)}
        ),
    )
    print_table([fit_and_summarise(trainer, "mean_teacher", len(splits.labelled))], args.out)


if __name__ == "__main__":
    main()
