"""A tiny folder dataset on disk and one run trained on it through ``s4seg train``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# 4 steps of 2 images at 32 px, evaluated at steps 2 and 4: seconds on a CPU.
TINY = [
    "--data.num_classes=3",
    "--data.class_names=[background, square, stripe]",
    "--data.labelled=0.5",
    "--data.val_fraction=0.25",
    "--data.batch_size=2",
    "--data.crop_size=32",
    "--trainer.max_steps=4",
    "--trainer.log_interval=2",
    "--trainer.eval_interval=2",
]


def make_folder(root: Path, n: int = 16, size: int = 48, seed: int = 0) -> Path:
    """``root/images/*.png`` and ``root/masks/*.png``: a square (class 1) or a stripe (2)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        mask = np.zeros((size, size), np.uint8)
        y, x = rng.integers(2, size - 18, 2)
        if i % 2:
            mask[y : y + 16, x : x + 16] = 1
        else:
            mask[:, x : x + 6] = 2
        colour = np.array([[30, 200, 90], [220, 40, 40], [40, 60, 220]], np.uint8)[mask]
        noise = rng.integers(0, 30, colour.shape, dtype=np.uint8)
        Image.fromarray(colour + noise).save(root / "images" / f"{i:03d}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i:03d}.png")
    return root


def s4seg_command(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed ``s4seg`` console script, as a user runs it."""
    exe = Path(sys.executable).parent / "s4seg"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty folder that gets ``my_data/`` (the tiny dataset)."""
    root = tmp_path_factory.mktemp("own_data")
    make_folder(root / "my_data")
    return root


@pytest.fixture(scope="session")
def trained_run(workdir: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """``s4seg train cpu_small`` for 4 steps into ``runs/tiny``; (run folder, process)."""
    proc = s4seg_command(
        "train", "cpu_small", "--data.root=my_data", *TINY, "--out=runs/tiny", cwd=workdir
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return workdir / "runs" / "tiny", proc
