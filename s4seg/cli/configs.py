"""``s4seg configs``: the ready configs shipped in the package (``s4seg/configs/*.yaml``).

``s4seg train NAME`` takes a shipped config by its name; this module finds them without
loading torch.
"""

from __future__ import annotations

import argparse
import difflib
from importlib import resources
from pathlib import Path

from s4seg.cli.errors import CommandError

__all__ = ["config_path", "run", "shipped_configs"]


def _folder() -> Path:
    return Path(str(resources.files("s4seg") / "configs"))


def shipped_configs() -> dict[str, str]:
    """Each shipped config's name and its first comment line (what it is for)."""
    out = {}
    for path in sorted(_folder().glob("*.yaml")):
        first = path.read_text().splitlines()[0] if path.stat().st_size else ""
        out[path.stem] = first.lstrip("# ").strip()
    return out


def config_path(name_or_path: str | Path) -> Path:
    """The config file a ``s4seg train`` argument names: a path, or a shipped config's name.

    Raises:
        CommandError: neither a file nor a shipped config (the message lists close names).
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = _folder() / f"{name_or_path}.yaml"
    if path.suffix == "" and shipped.is_file():
        return shipped
    names = list(shipped_configs())
    close = difflib.get_close_matches(str(name_or_path), names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise CommandError(
        f"config {str(name_or_path)!r} is neither a file nor a shipped config{hint}; the "
        f"shipped ones are {', '.join(names)} (s4seg configs lists them)"
    )


def run(show: str | None = None) -> int:
    """List the shipped configs, or print one of them (``show``)."""
    if show is not None:
        print(config_path(show).read_text(), end="")
        return 0
    configs = shipped_configs()
    width = max(map(len, configs))
    for name, line in configs.items():
        print(f"{name:<{width}}  {line}")
    print(
        "\ns4seg train NAME --data.root=DIR ... trains with one; s4seg configs --show NAME prints it."
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``s4seg configs`` to the command's subparsers."""
    p = sub.add_parser(
        "configs",
        help="list the ready run configs shipped with s4seg, or print one",
        description="The run configs in the package (s4seg/configs/*.yaml). s4seg train NAME "
        "trains with one; --show NAME prints it, to copy and edit.",
    )
    p.add_argument("--show", metavar="NAME", help="print this config")
    p.set_defaults(run_command=lambda args, extra: run(args.show))
