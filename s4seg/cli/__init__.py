"""The ``s4seg`` command."""

from s4seg.cli.main import main

__all__ = ["main"]
