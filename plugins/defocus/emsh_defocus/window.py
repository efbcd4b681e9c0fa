"""Cutting particle boxes out of micrographs and normalising their background.

Coordinates are SPIDER's: 1-based pixel positions of the particle centre, ``x`` the
column and ``y`` the row, so the 0-based array index is ``round(coordinate) - 1``.
A box of ``box x box`` pixels is cut so that the centre pixel lands at index ``box//2``
of the box (emsh's image centre, SPIDER's ``box/2 + 1``): rows
``iy - box//2 .. iy - box//2 + box - 1`` and the same for columns. A box that would
cross the micrograph's edge is not cut (:func:`fits_in` says which fit; the picker
uses the same rule, so all its picks can be windowed).

Normalisation (:func:`normalise_background`): on the pixels farther than ``radius``
from the box centre (the background), a plane ``a + b x + c y`` is fitted by least
squares and subtracted from the whole box, which is then divided by the SD of the
background residual, so the background has mean 0 and SD 1. All boxes share one
design matrix, so the fit is one least-squares solve for the whole stack.
"""

from __future__ import annotations

import numpy as np

from emsh.errors import UsageError
from emsh.kernels.masks import radius_grid

__all__ = ["centre_index", "fits_in", "cut_boxes", "normalise_background", "window_particles"]


def centre_index(xy) -> np.ndarray:
    """0-based integer indices ``(n, 2)`` (column, row) of 1-based coordinates ``(n, 2)``.

    Non-integer coordinates are rounded half up (``floor(c + 0.5) - 1``).
    """
    a = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if not np.all(np.isfinite(a)):
        raise UsageError("coordinates must be finite numbers")
    return np.floor(a + 0.5).astype(np.int64) - 1


def fits_in(xy, shape, box: int) -> np.ndarray:
    """Boolean ``(n,)``: whether the ``box`` window at each 1-based coordinate lies inside
    a micrograph of ``shape`` (rows, columns)."""
    H, W = (int(s) for s in shape)
    idx = centre_index(xy)
    lo = idx - box // 2
    return ((lo[:, 0] >= 0) & (lo[:, 0] + box <= W) & (lo[:, 1] >= 0) & (lo[:, 1] + box <= H))


def cut_boxes(mic: np.ndarray, xy, box: int) -> np.ndarray:
    """Windows ``(n, box, box)`` float32 of a micrograph ``(rows, columns)``.

    Every window must fit (see :func:`fits_in`); the pixel at 1-based ``(x, y)`` lands at
    index ``box//2`` of its window.

    Raises:
        UsageError: a window crosses the micrograph's edge.
    """
    mic = np.asarray(mic)
    box = int(box)
    if mic.ndim != 2:
        raise UsageError(f"expected a 2-D micrograph, got shape {mic.shape}")
    idx = centre_index(xy)
    if not np.all(fits_in(xy, mic.shape, box)):
        raise UsageError(f"a {box} px box crosses the edge of the {mic.shape[1]}x"
                         f"{mic.shape[0]} micrograph")
    off = np.arange(box) - box // 2
    rows = idx[:, 1, None, None] + off[None, :, None]
    cols = idx[:, 0, None, None] + off[None, None, :]
    return np.ascontiguousarray(mic[rows, cols], dtype=np.float32)


def normalise_background(stack: np.ndarray, radius: float) -> np.ndarray:
    """Remove a linear ramp fitted to the background and scale it to mean 0, SD 1.

    Args:
        stack: ``(n, box, box)`` images.
        radius: particle radius in pixels; the background is the pixels farther than
            ``radius`` from index ``box//2``.

    Returns:
        float32 ``(n, box, box)``. An image with a flat background (SD 0) keeps SD
        scale 1 (only the ramp is removed).

    Raises:
        UsageError: fewer than 3 background pixels (the radius leaves no background).
    """
    s = np.asarray(stack, dtype=np.float64)
    if s.ndim != 3 or s.shape[1] != s.shape[2]:
        raise UsageError(f"expected a stack of square images (n, box, box), got {s.shape}")
    n, box = s.shape[0], s.shape[1]
    bg = (radius_grid((box, box)) > float(radius)).ravel()
    if bg.sum() < 3:
        raise UsageError(f"radius {radius} px leaves no background in a {box} px box")
    t = np.arange(box, dtype=np.float64) - box // 2
    yy, xx = np.meshgrid(t, t, indexing="ij")
    design = np.column_stack([np.ones(box * box), xx.ravel(), yy.ravel()])  # (box^2, 3)
    flat = s.reshape(n, -1)
    coef, *_ = np.linalg.lstsq(design[bg], flat[:, bg].T, rcond=None)      # (3, n)
    flat = flat - (design @ coef).T
    sd = flat[:, bg].std(axis=1)
    sd = np.where(sd > 0, sd, 1.0)
    return np.ascontiguousarray((flat / sd[:, None]).reshape(n, box, box), dtype=np.float32)


def window_particles(mic: np.ndarray, xy, box: int, radius: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Cut and normalise the particles of one micrograph that fit.

    Args:
        mic: ``(rows, columns)`` micrograph.
        xy: ``(n, 2)`` 1-based centre coordinates (x = column, y = row).
        box: box size in pixels.
        radius: particle radius in pixels (the background lies outside it).

    Returns:
        ``(stack, kept)``: float32 ``(k, box, box)`` normalised windows and the boolean
        ``(n,)`` mask of the coordinates that were windowed (the others cross the edge).
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    kept = fits_in(xy, np.shape(mic), int(box))
    if not kept.any():
        return np.zeros((0, int(box), int(box)), np.float32), kept
    return normalise_background(cut_boxes(mic, xy[kept], box), radius), kept
