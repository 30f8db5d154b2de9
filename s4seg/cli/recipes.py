"""``s4seg examples [--copy DIR]``: the example recipes, from a checkout or a pip install.

The recipes are the scripts of the repository's ``examples/`` folder. The package ships
them as data (``s4seg/cli/examples`` is a link to that folder, and the wheel holds the
files themselves), so a pip install can copy them out and run them. They share
``common.py``, which is always copied with them.
"""

from __future__ import annotations

import ast
import shutil
from importlib import resources
from pathlib import Path

__all__ = ["copy_examples", "example_files", "examples_dir"]

SHARED = "common.py"  # imported by the other recipes: a copy needs it beside them


def examples_dir() -> Path:
    """The folder of the shipped recipes."""
    path = Path(str(resources.files("s4seg.cli") / "examples"))
    if not (path / SHARED).is_file():
        raise FileNotFoundError(
            f"the example recipes are not in this install ({path} has no {SHARED}); "
            f"reinstall s4seg, or take them from the repository's examples/ folder"
        )
    return path


def example_files() -> dict[str, str]:
    """Each recipe's file name and the first line of its docstring, ``common.py`` last."""
    out = {}
    files = sorted(examples_dir().glob("*.py"), key=lambda p: (p.name == SHARED, p.name))
    for path in files:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        out[path.name] = doc.strip().splitlines()[0] if doc.strip() else ""
    return out


def copy_examples(dest: str | Path, *, force: bool = False) -> list[Path]:
    """Copy every recipe and ``common.py`` into ``dest``; returns the new files.

    Raises:
        FileExistsError: a file of that name is already in ``dest`` (``force`` overwrites).
    """
    dest = Path(dest)
    sources = sorted(examples_dir().glob("*.py"))
    clashes = [dest / p.name for p in sources if (dest / p.name).exists()]
    if clashes and not force:
        raise FileExistsError(
            f"{len(clashes)} file(s) already in {dest}, e.g. {clashes[0]}: pass --force to "
            f"overwrite them, or copy to an empty folder"
        )
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for src in sources:
        shutil.copyfile(src, dest / src.name)
        copied.append(dest / src.name)
    return copied
