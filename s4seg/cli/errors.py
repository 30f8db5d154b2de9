"""The one error type the commands raise for bad input, printed as ``s4seg <command>: ...``."""

from __future__ import annotations

__all__ = ["CommandError"]


class CommandError(Exception):
    """Bad input to a command: the message names the file, key or value and the fix.

    ``s4seg.cli.main`` prints it as ``s4seg <command>: <message>`` and exits with
    status 2, without a traceback.
    """
