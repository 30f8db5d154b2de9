"""The training doctor on a run that fails like the field report: a discriminator that wins.

S4GAN on the built-in synthetic data with the discriminator's learning rate raised
(10x S4GAN's by default): the discriminator soon scores every prediction near 0, the
0.2 gate on D(fake) stops passing images, and self-training starves. A
:class:`s4seg.doctor.Doctor` watches the run and says so while it happens; at the end
the script writes the run's report (``report.md`` and plots) into the run folder.

    python examples/doctor_demo.py                    # about a minute on 2 CPU cores
    python examples/doctor_demo.py --max-steps 20     # the wiring only
    python examples/doctor_demo.py --rollback         # ask for a rollback (only to a checkpoint from before D won)
    python examples/doctor_demo.py --backbone resnet18 --image-size 64 --duration-steps 100
    s4seg report runs/doctor_demo --duration-steps 20   # the report again, any time

The default generator is a small conv net (``--backbone tiny``) so that the failure
shows within a minute on a CPU; any timm name works too. Batch size 4, as in the
field report: the self-training count is then "images of 4 per step".
"""

from __future__ import annotations

import logging
from pathlib import Path

from common import base_parser, loaders, prepare, splits_from_args

import s4seg


def tiny_segnet(num_classes: int, width: int = 16):
    """Three 3x3 conv layers and a 1x1 classifier: a generator that trains in seconds."""
    from torch import nn  # here, not at the top: `--help` answers without loading torch

    class TinySegNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.num_classes = num_classes
            layers: list[nn.Module] = []
            for c_in in (3, width, width):
                layers += [nn.Conv2d(c_in, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            self.backbone = nn.Sequential(*layers)
            self.head = nn.Conv2d(width, num_classes, 1)

        def forward(self, x):
            return self.head(self.backbone(x))

        def backbone_parameters(self):
            return self.backbone.parameters()

        def head_parameters(self):
            return self.head.parameters()

    return TinySegNet()


def main() -> None:
    p = base_parser(__doc__.splitlines()[0], max_steps=120)
    p.add_argument("--lr", type=float, default=2.5e-4, help="generator SGD lr (S4GAN: 2.5e-4)")
    p.add_argument("--lr-d", type=float, default=1e-3, help="discriminator lr: 10x S4GAN's 1e-4")
    p.add_argument("--st-threshold", type=float, default=0.2, help="gate on D(fake) probability")
    p.add_argument("--duration-steps", type=int, default=20, help="doctor's starvation window")
    p.add_argument("--rollback", action="store_true", help="restore best.pt and slow D 10x")
    p.add_argument("--out", type=Path, default=Path("runs/doctor_demo"), help="run folder")
    p.set_defaults(backbone="tiny", image_size=32, batch_size=4, val_size=32)
    args = p.parse_args()
    prepare(args)
    logging.basicConfig(format="%(message)s")  # the doctor's findings, readable on stderr

    splits = splits_from_args(args)
    s4seg.seed_everything(args.seed)
    if args.backbone == "tiny":
        generator = tiny_segnet(splits.num_classes)
    else:
        generator = s4seg.create_generator(args.backbone, splits.num_classes, output_stride=8)
    from s4seg.doctor import Doctor, write_report  # the live Doctor loads the training loop

    doctor = Doctor(run_dir=args.out, duration_steps=args.duration_steps, rollback=args.rollback)
    trainer = s4seg.Trainer(
        generator,
        **loaders(splits, args.batch_size, args.seed),
        method=s4seg.S4GAN(
            discriminator=s4seg.models.FMDiscriminator(splits.num_classes),
            pseudo_filter=s4seg.filters.DiscriminatorGate(args.st_threshold, check_range=False),
            lr_d=args.lr_d,
        ),
        config=s4seg.TrainerConfig(
            max_steps=args.max_steps,
            lr_g=args.lr,
            log_interval=max(1, min(5, args.max_steps // 10)),
            # Evaluate often: a rollback needs a checkpoint from before D starts to win.
            eval_interval=max(1, min(5, args.max_steps // 10)),
            device=args.device,
        ),
        # The doctor after the Checkpointer, so that best.pt exists when it acts.
        callbacks=[*s4seg.default_callbacks(args.out, progress=False), doctor],
    )
    trainer.fit()
    report = write_report(args.out, duration_steps=args.duration_steps)
    print(f"{len(doctor.findings)} findings; report: {report}")


if __name__ == "__main__":
    main()
