"""``s4seg train CONFIG [--key.path=value ...]``: train from a run config, or resume a run.

The run folder gets the resolved config (``RUN_DIR/config.yaml``, every default written
out), so ``s4seg train RUN_DIR/config.yaml --out OTHER`` trains the same run again, and
``s4seg train --resume RUN_DIR`` continues it exactly from ``checkpoints/last.pt``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from s4seg.cli.errors import CommandError

__all__ = ["run"]


def _config_file(config: str | None, resume: Path | None) -> Path:
    from s4seg.cli.configs import config_path

    if config is not None:
        return config_path(config)
    if resume is None:
        raise CommandError(
            "give a config file or a shipped config's name (s4seg configs lists them), or "
            "--resume RUN_DIR"
        )
    found = resume / "config.yaml"
    if not found.is_file():
        raise CommandError(
            f"--resume {resume}: {found} does not exist; resume a run folder written by "
            "s4seg train, or pass its config file as well"
        )
    return found


def _run_dir(out: str | None, config_file: Path, resume: Path | None) -> Path:
    if resume is not None:
        if not (resume / "checkpoints" / "last.pt").is_file():
            raise CommandError(
                f"--resume {resume}: no checkpoints/last.pt there to continue from; train it "
                "first (s4seg train CONFIG --out RUN_DIR)"
            )
        return resume
    run_dir = Path(out) if out else Path("runs") / config_file.stem
    if (run_dir / "checkpoints" / "last.pt").exists():
        raise CommandError(
            f"{run_dir} already holds a run (checkpoints/last.pt): continue it with "
            f"s4seg train --resume {run_dir}, or train into another folder with --out DIR"
        )
    return run_dir


def _clean(err: BaseException) -> str:
    # A DataLoader worker re-raises the dataset's error with the worker's traceback in
    # the message; the last line is the dataset's own message.
    text = str(err).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return text


def _absolute_paths(namespace: Any, run_dir: Path) -> None:
    # The run folder's config.yaml names its files absolutely, so that eval, predict and
    # a re-run find them from any working directory.
    def absolute(path: str | None) -> str | None:
        return None if path is None else str(Path(path).resolve())

    namespace.out = absolute(str(run_dir))
    for key in (
        "data.root",
        "data.val_root",
        "data.val_list",
        "model.checkpoint_path",
        "init_from.generator",
        "init_from.discriminator",
    ):
        namespace[key] = absolute(namespace[key])
    namespace["data.unlabelled"] = [absolute(p) for p in namespace["data.unlabelled"]]


def run(
    config: str | None,
    overrides: list[str],
    *,
    resume: Path | None = None,
    print_config: bool = False,
) -> int:
    """Train (or resume) the run the config describes; returns the exit status."""
    from s4seg.atomic import remove_orphans, write_atomic
    from s4seg.callbacks import default_callbacks
    from s4seg.cli.config_parser import dump_config, parse_config
    from s4seg.cli.data_config import build_data, build_loaders
    from s4seg.cli.model_config import build_generator, load_init_from
    from s4seg.seeding import seed_everything
    from s4seg.training import Trainer

    config_file = _config_file(config, resume)
    cfg = parse_config(config_file, overrides)
    if print_config:
        print(dump_config(cfg), end="")
        return 0
    run_dir = _run_dir(cfg.out, config_file, resume)
    _absolute_paths(cfg.namespace, run_dir)
    seed_everything(cfg.seed)
    ignore = cfg.trainer.ignore_index
    sets = build_data(cfg.data, ignore_index=ignore, seed=cfg.seed)
    if cfg.data.verify != "off":
        for folder in sets.folders:
            try:
                folder.verify(full=cfg.data.verify == "full", progress=False)
            except ValueError as err:
                raise CommandError(f"data ({folder.root}): {err}") from err
    if "unlabelled" in cfg.method.loaders and sets.unlabelled is None:
        raise CommandError(
            f"method {cfg.method.name!r} trains on unlabelled images but the data has none: "
            "set data.unlabelled to a folder of images, or data.labelled below 1.0 (the rest "
            "of data.root is then used without masks)"
        )
    if sets.val is None:
        print("no validation data (data.val_root, data.val_list or data.val_fraction): "
              "the run keeps last.pt only")  # fmt: skip
    generator = build_generator(cfg.model, cfg.data.num_classes or 0)
    loaders = build_loaders(cfg.data, sets, ignore_index=ignore, seed=cfg.seed)
    extra = {"cli": {"config": str(config_file), "overrides": list(overrides)}}
    try:
        trainer = Trainer(
            generator,
            loaders["labelled_loader"],
            unlabelled_loader=loaders["unlabelled_loader"],
            val_loader=loaders["val_loader"],
            loaders=loaders["loaders"],
            config=cfg.trainer,
            method=cfg.method,
            callbacks=default_callbacks(run_dir, extra_config=extra),
        )
        if resume is not None:
            step = trainer.load_checkpoint(run_dir / "checkpoints" / "last.pt")
            print(f"resuming {run_dir} from step {step}")
        else:
            for loaded in load_init_from(cfg.init_from, trainer.generator, trainer.method):
                print(f"initialised the {loaded} (the original S4GAN code's)")
    except (ValueError, TypeError) as err:
        raise CommandError(str(err)) from err
    run_dir.mkdir(parents=True, exist_ok=True)
    text = dump_config(cfg)

    def write(f: Any) -> None:
        f.write(text)

    remove_orphans(run_dir / "config.yaml")  # the temporary file of a killed earlier start
    write_atomic(run_dir / "config.yaml", write, binary=False)
    try:
        trainer.fit()
    except KeyboardInterrupt:
        print(f"interrupted at step {trainer.step}; continue with: s4seg train --resume {run_dir}")
        return 130
    except (ValueError, OSError) as err:
        raise CommandError(
            f"{_clean(err)} (at step {trainer.step}; the run folder is {run_dir})"
        ) from err
    if trainer.best_step >= 0:
        print(f"best val mIoU {trainer.best_miou:.4f} at step {trainer.best_step}")
    print(f"trained {trainer.step} steps: {run_dir}")
    print(f"next: s4seg eval {run_dir}  |  s4seg predict {run_dir} IMAGES --out DIR  |  "
          f"s4seg report {run_dir}")  # fmt: skip
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``s4seg train`` to the command's subparsers (no torch is loaded)."""
    p = sub.add_parser(
        "train",
        help="train from a config file (or a shipped config's name), or resume a run",
        description="Train from a run config: data (a folder of images and masks), model, "
        "method with its parts, trainer settings. Override any key with --key.path=value "
        "(e.g. --data.root=my_data --trainer.max_steps=200); --print-config prints the "
        "resolved config with every key and default. The run folder (--out=DIR, default "
        "runs/<config name>) gets config.yaml, metrics.jsonl, checkpoints/ and TensorBoard "
        "logs. Shipped configs: s4seg configs.",
        epilog="examples:\n  s4seg train cpu_small --data.root=my_data --data.num_classes=6\n"
        "  s4seg train runs/cpu_small/config.yaml --out=runs/again\n"
        "  s4seg train --resume runs/cpu_small --trainer.max_steps=400",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", help="a config file, or a shipped config's name")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run exactly")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(
        run_command=lambda args, extra: run(
            args.config, extra, resume=args.resume, print_config=args.print_config
        ),
        takes_overrides=True,
    )
