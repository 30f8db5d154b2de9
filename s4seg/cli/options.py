"""Command-line options that ``s4seg eval`` and ``s4seg predict`` share."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_inference_options"]


def add_inference_options(p: argparse.ArgumentParser) -> None:
    """``--config``, ``--tile``, ``--flip`` and ``--device``."""
    p.add_argument("--config", type=Path, help="the run config (default: RUN_DIR/config.yaml)")
    p.add_argument(
        "--tile", type=int, help="sliding window of this side (default: the run's eval_tile)"
    )
    p.add_argument(
        "--flip", action="store_true", help="average with the mirrored image's prediction"
    )
    p.add_argument("--device", default="auto", help="auto (CUDA if there is one), cpu, cuda")
