"""UniMatch on the built-in data: the model teaches itself from its weak view, three ways.

Yang et al., "Revisiting Weak-to-Strong Consistency in Semi-Supervised Semantic
Segmentation", CVPR 2023. Each unlabelled batch gets a weak view (flip, scale-crop)
and two strong views (colour jitter, grayscale, blur), each with its own CutMix box
filled from a second unlabelled batch; the model's own detached prediction on the weak
view (pixels with max softmax >= ``--threshold``) teaches both strong views and a
second decoding of the weak view's features after channel dropout. The generator has
a DeepLabV3+ head, as UniMatch's. The unlabelled images keep their true masks, used
only to log how many of the kept pseudo-labels are right (``st_kept_accuracy``).

    python examples/unimatch_synthetic.py                  # about 8 minutes on 2 CPU cores
    python examples/unimatch_synthetic.py --max-steps 2    # the wiring only
"""

from __future__ import annotations

from pathlib import Path

from common import base_parser, fit_and_summarise, loaders, prepare, print_table, splits_from_args

import s4seg


def main() -> None:
    p = base_parser(__doc__.splitlines()[0], max_steps=1500)
    p.add_argument("--lr", type=float, default=0.05, help="generator SGD lr")
    p.add_argument("--threshold", type=float, default=0.95, help="on the weak view's softmax")
    p.add_argument("--cutmix-p", type=float, default=0.5, help="CutMix probability")
    p.add_argument("--out", type=Path, default=Path("runs/unimatch_synthetic"), help="run folders")
    args = p.parse_args()
    prepare(args)
    splits = splits_from_args(args, keep_masks=True)
    s4seg.seed_everything(args.seed)
    generator = s4seg.create_generator(
        args.backbone, splits.num_classes, output_stride=8, head="deeplabv3plus"
    )
    method = s4seg.UniMatch(threshold=args.threshold, cutmix_p=args.cutmix_p, seed=args.seed)
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
            args.out / "unimatch", extra_config={"example": vars(args)}
        ),
    )
    print_table([fit_and_summarise(trainer, "unimatch", len(splits.labelled))], args.out)


if __name__ == "__main__":
    main()
