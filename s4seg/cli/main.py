"""Command line: ``s4seg report RUN_DIR [--out DIR]`` (also ``python -m s4seg report``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    from s4seg import __version__  # the package's __init__ loads no torch

    p = argparse.ArgumentParser(prog="s4seg", description="s4seg command-line tools")
    p.add_argument("--version", action="version", version=f"s4seg {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    report = sub.add_parser(
        "report",
        help="write report.md and PNG plots for a run folder (finished or running)",
        description="Read RUN_DIR/metrics.jsonl (and config.json, doctor.jsonl), run the "
        "doctor's monitors, and write report.md with plots.",
    )
    report.add_argument("run_dir", type=Path, help="the run folder (holds metrics.jsonl)")
    report.add_argument("--out", type=Path, default=None, help="output folder (default: RUN_DIR)")
    report.add_argument(
        "--duration-steps",
        type=int,
        default=500,
        help="steps of starvation/flooding that make a finding (default 500; scales the "
        "other step limits)",
    )
    report.add_argument("--no-plots", action="store_true", help="markdown only")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``s4seg`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "report":
        from s4seg.doctor.report import write_report  # keeps `s4seg --help` fast

        try:
            path = write_report(
                args.run_dir, args.out, duration_steps=args.duration_steps, plots=not args.no_plots
            )
        except (FileNotFoundError, ValueError) as err:
            print(f"s4seg report: {err}", file=sys.stderr)
            return 2
        print(path)
        return 0
    return 2  # unreachable: argparse requires a command


if __name__ == "__main__":
    sys.exit(main())
