"""The confusion matrix of an evaluation as a PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["plot_confusion"]


def plot_confusion(confusion: np.ndarray, names: Sequence[str], path: str | Path) -> Path:
    """Row-normalised confusion matrix (rows: ground truth), each cell's share printed.

    Rows are normalised so that a rare class reads as clearly as a common one: a cell
    is the share of that class's pixels predicted as the column's class.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    c = len(names)
    side = min(4 + 0.5 * c, 20)
    fig, ax = plt.subplots(figsize=(side, side * 0.85))
    image = ax.imshow(share, vmin=0.0, vmax=1.0, cmap="Blues")
    ax.set_xticks(range(c), names, rotation=45, ha="right")
    ax.set_yticks(range(c), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    if c <= 25:
        for i in range(c):
            for j in range(c):
                colour = "white" if share[i, j] > 0.5 else "black"
                ax.text(
                    j, i, f"{share[i, j]:.2f}", ha="center", va="center", color=colour, fontsize=8
                )
    fig.colorbar(image, ax=ax, label="share of the row's pixels")
    ax.set_title("confusion matrix (rows sum to 1)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
