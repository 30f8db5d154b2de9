"""Command line: ``s4seg report DIR`` (or ``s4seg report --from s4gan-log LOG``) and ``s4seg examples [--copy DIR]`` (also ``python -m s4seg``).

Neither command loads torch: the report reads the logs, and the examples are files.
``train``, ``eval``, ``predict``, ``export`` and ``configs`` live in their own modules
(``s4seg.cli.train``, ...), which load torch inside the command only: every ``--help``
answers at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from s4seg.cli import configs, evaluate, export, predict, train
from s4seg.cli.errors import CommandError


def _parser() -> argparse.ArgumentParser:
    from s4seg import __version__  # the package's __init__ loads no torch

    p = argparse.ArgumentParser(prog="s4seg", description="s4seg command-line tools")
    p.add_argument("--version", action="version", version=f"s4seg {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    report = sub.add_parser(
        "report",
        help="write report.md and PNG plots for a run folder, or for a folder of runs",
        description="Read RUN_DIR/metrics.jsonl (and config.json, doctor.jsonl), run the "
        "doctor's monitors, and write report.md with plots. Given a folder that holds "
        "run folders (such as runs/main_job), report each of them and write a "
        "comparison of them into the folder's report.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    report.add_argument("run_dir", type=Path, help="a run folder, or a folder of run folders")
    report.add_argument("--out", type=Path, default=None, help="output folder (None: RUN_DIR)")
    report.add_argument(
        "--duration-steps",
        type=int,
        default=None,
        help="steps of starvation/flooding that make a finding; scales the other step "
        "limits (None: from each run's length and log interval, at most 500)",
    )
    report.add_argument("--no-plots", action="store_true", help="markdown only")
    report.add_argument(
        "--from",
        dest="source",
        choices=("s4seg", "s4gan-log"),
        default="s4seg",
        help="s4gan-log: RUN_DIR is a log printed by the original S4GAN code's "
        "train_s4GAN.py; it is converted into a run folder (--out, default LOG_s4seg/ "
        "beside it) and reported",
    )
    report.add_argument(
        "--eval-log",
        action="append",
        default=[],
        metavar="[STEP=]FILE",
        help="with --from s4gan-log: what the original's evaluate.py printed for the "
        "checkpoint of STEP (VOC_5000.pth: 5000; no STEP: the last step); repeatable",
    )
    examples = sub.add_parser(
        "examples",
        help="list the example recipes, or copy them into a folder to run them",
        description="The example recipes of the repository's examples/ folder, shipped "
        "with the package. --copy DIR writes them, with the common.py they share, into "
        "DIR; then run one with `python DIR/main_job.py`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    examples.add_argument("--copy", type=Path, metavar="DIR", help="copy the recipes into DIR")
    examples.add_argument("--force", action="store_true", help="overwrite files in DIR")
    for module in (train, evaluate, predict, export, configs):
        module.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``s4seg`` console script; returns the exit status."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    command = getattr(args, "run_command", None)
    if command is not None:
        try:
            return int(command(args, extra))
        except CommandError as err:
            print(f"s4seg {args.command}: {err}", file=sys.stderr)
            return 2
    if args.command == "report":
        return _report(args)
    if args.command == "examples":
        return _examples(args)
    return 2  # unreachable: argparse requires a command


def _report(args: argparse.Namespace) -> int:
    from s4seg.doctor.report import write_reports  # keeps `s4seg --help` fast

    try:
        run_dir, out = args.run_dir, args.out
        if args.source == "s4gan-log":
            from s4seg.doctor.original_run import convert_s4gan_log, default_run_dir, eval_log_spec

            evals = [eval_log_spec(text) for text in args.eval_log]
            out_dir = out if out is not None else default_run_dir(run_dir)
            run_dir, out = convert_s4gan_log(run_dir, out_dir, eval_logs=evals), None
            print(f"converted {args.run_dir} into the run folder {run_dir}")
        elif args.eval_log:
            raise ValueError("--eval-log reads logs of the original code: add --from s4gan-log")
        paths = write_reports(
            run_dir, out, duration_steps=args.duration_steps, plots=not args.no_plots
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"s4seg report: {err}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


def _examples(args: argparse.Namespace) -> int:
    from s4seg.cli.recipes import copy_examples, example_files

    try:
        files = example_files()
        if args.copy is None:
            width = max(map(len, files))
            for name, line in files.items():
                print(f"{name:<{width}}  {line}")
            print("\ns4seg examples --copy DIR writes them into DIR.")
            return 0
        copied = copy_examples(args.copy, force=args.force)
    except (FileNotFoundError, FileExistsError) as err:
        print(f"s4seg examples: {err}", file=sys.stderr)
        return 2
    print(f"copied {len(copied)} files to {args.copy}; for example:")
    print(f"  python {args.copy / 'main_job.py'} --max-steps 2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
