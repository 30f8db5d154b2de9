"""Every command's ``--help`` answers at once: no torch, no timm, no jsonargparse."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = (
    "import sys, runpy\n"
    "sys.argv = ['s4seg', *sys.argv[1:]]\n"
    "try:\n"
    "    runpy.run_module('s4seg', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    "print(sorted(m for m in ('torch', 'timm', 'jsonargparse') if m in sys.modules))\n"
)


@pytest.mark.parametrize("command", ["train", "eval", "predict", "export", "configs"])
def test_help_loads_neither_torch_nor_jsonargparse(command) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, command, "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"
    assert f"usage: s4seg {command}" in out


def test_configs_lists_without_torch() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, "configs"], capture_output=True, text=True, check=True
    ).stdout
    assert "cpu_small" in out and out.strip().splitlines()[-1] == "[]"
