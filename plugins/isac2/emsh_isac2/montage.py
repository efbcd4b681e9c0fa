"""A PNG montage of class averages, each labelled with its number and member count."""

from __future__ import annotations

import math
import os

import numpy as np

from emsh.errors import UsageError
from emsh.io._atomic import atomic_path

__all__ = ["write_montage"]


def write_montage(path, averages, counts=None, *, numbers=None, columns: int | None = None,
                  title: str = "", overwrite: bool = False) -> str:
    """Write the averages as a grid of grey images (matplotlib, Agg backend).

    Each panel is scaled to its own range (row 0 at the top, as displayed elsewhere in
    emsh) and titled ``#number (count)``.

    Args:
        path: output PNG file.
        averages: ``(K, ny, nx)`` images.
        counts: member count per average (None: no counts).
        numbers: label per average (default 1..K).
        columns: panels per row (default about sqrt(K), at most 10).
        title: figure title.
        overwrite: replace an existing file.

    Returns:
        the path written.
    """
    a = np.asarray(averages, dtype=np.float32)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or len(a) == 0:
        raise UsageError(f"montage: expected (K, ny, nx) averages, got shape {a.shape}")
    K = len(a)
    nums = np.arange(1, K + 1) if numbers is None else np.asarray(numbers)
    if counts is not None and len(counts) != K:
        raise UsageError(f"montage: {K} averages but {len(counts)} counts")
    if len(nums) != K:
        raise UsageError(f"montage: {K} averages but {len(nums)} labels")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = int(columns) if columns else min(10, max(1, math.ceil(math.sqrt(K))))
    rows = math.ceil(K / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.45 * rows + 0.3),
                             squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k >= K:
            continue
        ax.imshow(a[k], cmap="gray", interpolation="nearest")
        label = f"#{nums[k]}" + ("" if counts is None else f" ({int(counts[k])})")
        ax.set_title(label, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return os.fspath(path)
