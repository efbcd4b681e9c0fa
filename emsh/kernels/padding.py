"""Padding and windowing of images and volumes: SPIDER's ``PD`` and ``WI``.

Conventions (see DESIGN.md and :mod:`emsh.kernels.transform`, which re-exports
:func:`pad` and :func:`window`):

* Arrays are float32, axis order ``(z, y, x)``; leading axes beyond the spatial ones
  are a batch, every image treated alike.
* Corners are SPIDER's 1-based top-left coordinates ``(x, y[, z])``; output shapes are
  numpy shapes ``(ny, nx)`` or ``(nz, ny, nx)``.

``pad`` reproduces ``PD`` (its ``A``, ``S``, ``B``, ``M`` backgrounds and the circular
``AC`` variant of ``patch.f``) and ``window`` reproduces ``WI``.
"""

from __future__ import annotations

import numpy as np

from emsh.errors import UsageError

__all__ = ["pad", "window"]

_F = np.float32
MAX_ELEMENTS = 2**32  # refuse outputs beyond 16 GiB of float32


def _images(x, ndim: int, name: str = "input") -> tuple[np.ndarray, tuple[int, ...]]:
    """Return ``x`` as float32 ``(n, *spatial)`` plus its leading batch shape."""
    a = np.ascontiguousarray(np.asarray(x, dtype=_F))
    if a.ndim < ndim:
        raise UsageError(f"{name}: expected at least {ndim} axes, got shape {a.shape}")
    lead = a.shape[: a.ndim - ndim]
    return a.reshape((-1,) + a.shape[a.ndim - ndim:]), lead


# ---------------------------------------------------------------- PD, WI


def _corner(top_left, nd: int, name: str) -> tuple[int, ...]:
    """1-based SPIDER corner ``(x, y[, z])`` -> 0-based offsets in axis order."""
    t = tuple(int(v) for v in np.atleast_1d(top_left))
    if len(t) == 2 and nd == 3:
        t = t + (1,)
    if len(t) != nd:
        raise UsageError(f"{name}: expected {nd} coordinates (x, y{', z' if nd == 3 else ''})")
    return tuple(v - 1 for v in t[::-1])


def _out_shape(shape, x_ndim: int) -> tuple[int, ...]:
    shape = tuple(int(v) for v in shape)
    if len(shape) not in (2, 3) or min(shape) < 1 or len(shape) > x_ndim:
        raise UsageError(f"shape: expected 2 or 3 positive sizes, got {shape}")
    return shape


def _border_mean(b: np.ndarray) -> np.ndarray:
    """Mean of the outer two pixels of each image/volume, as SPIDER's ``PD B`` counts them.

    In a volume the end columns of the middle slices are summed over all rows, so the
    pixels where they meet the end rows count twice (SPIDER's ``patch.f`` does this).
    """
    if min(b.shape[1:]) < 4:
        raise UsageError("PD B: every side must have at least 4 pixels")
    d = b.astype(np.float64)
    if b.ndim == 3:
        _, ny, nx = b.shape
        rows = d[:, [0, 1, -2, -1], :].sum(axis=(1, 2))
        cols = d[:, 2:-2][:, :, [0, 1, -2, -1]].sum(axis=(1, 2))
        return (rows + cols) / (4 * nx + 4 * (ny - 4))
    _, nz, ny, nx = b.shape
    ends = d[:, [0, 1, -2, -1]].sum(axis=(1, 2, 3))
    mid = d[:, 2:-2]
    rows = mid[:, :, [0, 1, -2, -1], :].sum(axis=(1, 2, 3))
    cols = mid[:, :, :, [0, 1, -2, -1]].sum(axis=(1, 2, 3))
    return (ends + rows + cols) / (4 * nx * ny + 4 * nx * (nz - 4) + 4 * ny * (nz - 4))


def _pad_circular(b: np.ndarray, shape, off) -> np.ndarray:
    """SPIDER ``PD`` with a ``?C`` answer, reproduced from ``patch.f`` and its output.

    What that code does (checked against golden ``pd_c``): rows that run past the
    bottom edge continue at the top, in order; columns that run past the right edge are
    refilled from input column ``c + overflow`` (not the wrapped column); the background
    is never set (the golden file holds 1e-19 garbage), so emsh writes 0 there; a wrapped
    part that is exactly one row long is not written (also 0); input columns that do not
    exist for the refill are 0.
    """
    n, ny2, nx2 = b.shape
    ny1, nx1 = shape
    locy, locx = off[0] + 1, off[1] + 1
    row_src = np.full(ny1, -1, dtype=np.int64)
    ne1 = locy + ny2 - 1
    ne2 = max(0, ne1 - ny1)
    ne1 = min(ne1, ny1)
    if ne2 > 1:
        r = np.arange(1, ne2 + 1)
        row_src[r - 1] = r + ny1 - locy
    if ne1 != locy:
        r = np.arange(locy, ne1 + 1)
        row_src[r - 1] = r - locy
    col_src = np.full(nx1, -1, dtype=np.int64)
    ke1 = locx + nx2 - 1
    ke2 = max(0, ke1 - nx1)
    ke1 = min(ke1, nx1)
    c = np.arange(locx, ke1 + 1)
    col_src[c - 1] = c - locx
    if ke2:
        c = np.arange(1, ke2 + 1)
        col_src[c - 1] = np.where(c + ke2 <= nx2, c + ke2 - 1, -1)
    out = np.zeros((n, ny1, nx1), dtype=_F)
    rr, cc = np.nonzero(row_src >= 0)[0], np.nonzero(col_src >= 0)[0]
    out[:, rr[:, None], cc[None, :]] = b[:, row_src[rr][:, None], col_src[cc][None, :]]
    return out


def pad(x, shape, top_left=(1, 1), mode: str = "A", value: float | None = None):
    """Embed image(s)/volume(s) in a larger array (SPIDER ``PD``).

    Args:
        x: input; ``len(shape)`` trailing axes are spatial, leading axes a batch.
        shape: numpy shape of the output image/volume, ``(ny, nx)`` or ``(nz, ny, nx)``.
        top_left: SPIDER's 1-based ``(x, y[, z])`` of the input's first pixel in the
            output. Input pixels that fall beyond the far edges are dropped.
        mode: background ``'A'`` input average, ``'S'`` the given ``value``, ``'B'`` the
            average of the input's outer two pixels, ``'M'`` input minimum, or ``'AC'``
            SPIDER's circular pad (2D only; see ``_pad_circular`` for its exact rule).
        value: background for ``'S'``.

    Returns:
        ``(out, pad_value)``: float32 output of shape ``batch + shape`` and the background
        used (a float for one input, an array over the batch otherwise; 0 for ``'AC'``,
        whose SPIDER background is undefined).

    Raises:
        UsageError: for an unknown mode, a missing value, a corner outside the output,
            or an output larger than 16 GiB.
    """
    a = np.asarray(x)
    shape = _out_shape(shape, a.ndim)
    nd = len(shape)
    b, lead = _images(a, nd, "pad")
    off = _corner(top_left, nd, "top_left")
    if b.shape[0] * int(np.prod(shape)) > MAX_ELEMENTS:
        raise UsageError(f"pad: output shape {shape} is too large")
    if any(o < 0 or o >= s for o, s in zip(off, shape)):
        raise UsageError(f"top_left {tuple(top_left)}: must lie inside the output {shape[::-1]}")
    m = mode.upper()
    if m == "AC":
        if nd != 2 or any(i > o for i, o in zip(b.shape[1:], shape)):
            raise UsageError("PD AC: 2D only, and the output must be at least the input size")
        out = _pad_circular(b, shape, off)
        bg = np.zeros(b.shape[0])
    else:
        axes = tuple(range(1, nd + 1))
        if m == "A":
            bg = b.astype(np.float64).mean(axis=axes)
        elif m == "M":
            bg = b.min(axis=axes).astype(np.float64)
        elif m == "B":
            bg = _border_mean(b)
        elif m == "S":
            if value is None:
                raise UsageError("PD S: give the background value")
            bg = np.full(b.shape[0], float(value))
        else:
            raise UsageError(f"mode {mode!r}: expected A, S, B, M or AC")
        out = np.empty((b.shape[0],) + shape, dtype=_F)
        out[...] = bg.astype(_F).reshape((-1,) + (1,) * nd)
        src = tuple(slice(0, min(i, s - o)) for i, s, o in zip(b.shape[1:], shape, off))
        dst = tuple(slice(o, o + sl.stop) for o, sl in zip(off, src))
        out[(slice(None),) + dst] = b[(slice(None),) + src]
    bg = bg.astype(_F)
    return out.reshape(lead + shape), (float(bg[0]) if not lead else bg.reshape(lead))


def window(x, shape, top_left=(1, 1), background: float = 0.0) -> np.ndarray:
    """Cut a box out of image(s)/volume(s) (SPIDER ``WI``; ``WI B`` sets the background).

    Args:
        x: input; ``len(shape)`` trailing axes are spatial, leading axes a batch.
        shape: numpy shape of the window, ``(ny, nx)`` or ``(nz, ny, nx)``.
        top_left: SPIDER's 1-based ``(x, y[, z])`` of the window's first pixel in the
            input. It may be 0 or negative; parts of the window beyond the input's edges
            are filled with ``background``.
        background: value for window pixels outside the input (SPIDER ``WI``: 0).

    Raises:
        UsageError: when the corner lies beyond the input's far edge (SPIDER: "WINDOW
            OUTSIDE OF IMAGE") or the output would exceed 16 GiB.
    """
    a = np.asarray(x)
    shape = _out_shape(shape, a.ndim)
    nd = len(shape)
    b, lead = _images(a, nd, "window")
    off = _corner(top_left, nd, "top_left")
    if b.shape[0] * int(np.prod(shape)) > MAX_ELEMENTS:
        raise UsageError(f"window: output shape {shape} is too large")
    if any(o >= s for o, s in zip(off, b.shape[1:])):
        raise UsageError(f"top_left {tuple(top_left)}: window outside of the image "
                         f"{b.shape[1:][::-1]}")
    out = np.full((b.shape[0],) + shape, background, dtype=_F)
    src, dst = [], []
    for o, s_in, s_out in zip(off, b.shape[1:], shape):
        lo, hi = max(o, 0), min(o + s_out, s_in)
        if hi <= lo:
            return out.reshape(lead + shape)
        src.append(slice(lo, hi))
        dst.append(slice(lo - o, hi - o))
    out[(slice(None),) + tuple(dst)] = b[(slice(None),) + tuple(src)]
    return out.reshape(lead + shape)
