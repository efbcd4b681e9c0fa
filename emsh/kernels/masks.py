"""Masks: SPIDER's ``MA`` exactly, plus soft circles, spheres and filament masks.

Conventions: arrays are float32 in ``(z, y, x)`` order; a leading batch axis is allowed
where a function takes ``ndim``. Mask centres are 0-based ``(x, y[, z])`` pixel indices
and default to the image centre ``n//2`` on each axis (SPIDER's ``n/2 + 1``); an
operation that reads SPIDER's 1-based answers subtracts 1. Radii and widths are in
pixels. Soft edges are raised cosines: 1 at the inner end, 0 after ``width`` pixels.
"""

from __future__ import annotations

import numpy as np

from emsh.errors import UsageError

__all__ = ["ma_mask", "soft_circle", "soft_sphere", "filament_mask", "radius_grid"]

_F = np.float32


def _spatial(x, ndim: int | None) -> tuple[np.ndarray, tuple[int, ...], int]:
    a = np.ascontiguousarray(np.asarray(x, dtype=_F))
    nd = a.ndim if ndim is None else int(ndim)
    if nd not in (2, 3) or a.ndim < nd:
        raise UsageError(f"expected an image or volume (2 or 3 spatial axes), got shape {a.shape}")
    lead = a.shape[: a.ndim - nd]
    return a.reshape((-1,) + a.shape[a.ndim - nd:]), lead, nd


def _centre(shape: tuple[int, ...], centre) -> np.ndarray:
    """0-based centre in axis order ``(.., y, x)`` from an ``(x, y[, z])`` answer."""
    nd = len(shape)
    if centre is None:
        return np.array([s // 2 for s in shape], dtype=np.float64)
    c = np.asarray(centre, dtype=np.float64).reshape(-1)
    if c.size != nd:
        raise UsageError(f"centre: expected {nd} coordinates (x, y{', z' if nd == 3 else ''})")
    return c[::-1].copy()


def radius_grid(shape, centre=None, squared: bool = False) -> np.ndarray:
    """Distance (float64) of every pixel from ``centre`` (default ``n//2`` per axis).

    Args:
        shape: numpy shape ``(ny, nx)`` or ``(nz, ny, nx)``.
        centre: 0-based ``(x, y[, z])``.
        squared: return the squared distance.
    """
    shape = tuple(int(s) for s in shape)
    c = _centre(shape, centre)
    r2 = np.zeros(shape, dtype=np.float64)
    for ax, (s, ci) in enumerate(zip(shape, c)):
        v = (np.arange(s, dtype=np.float64) - ci) ** 2
        r2 = r2 + v.reshape([s if i == ax else 1 for i in range(len(shape))])
    return r2 if squared else np.sqrt(r2)


def _cosine_edge(t: np.ndarray, width: float) -> np.ndarray:
    """1 for t <= 0, raised cosine down to 0 at t = width, 0 beyond."""
    if width <= 0:
        return (t <= 0).astype(np.float64)
    u = np.clip(t / width, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * u))


def ma_mask(x, radii=(0.0, 0.0), kind: str = "D", background: str = "A",
            value: float | None = None, centre=None, falloff: float | None = None,
            ndim: int | None = None) -> np.ndarray:
    """Circular/spherical masking as SPIDER's ``MA`` does it (``mask.f``).

    Pixels at squared distance ``r²`` from the centre keep their value inside the
    annulus ``inner² <= r² <= outer²``. Outside it, ``kind`` decides:

    * ``'D'`` disk: the pixel becomes the background ``B``;
    * ``'C'`` cosine edge: ``B + (v - B) w`` with
      ``w = (1 + cos(π min(1, |r - R| / falloff))) / 2`` (``R`` the nearer radius);
    * ``'G'`` Gaussian edge: ``w = exp(-(r - R)² / falloff²)`` (0 when the exponent
      is below -50);
    * ``'T'`` true Gaussian over the whole image: ``w = exp(-r² / outer²)``; no inner
      radius allowed.

    The background ``B``: ``'A'`` input average, ``'P'`` average of the pixels inside
    the annulus, ``'C'`` average of the ring ``outer² <= r² <= (outer+1)²`` (and, for a
    disk with an inner radius, the inner hole gets the average of
    ``(inner-1)² <= r² <= inner²``), ``'M'`` input minimum, ``'E'`` ``value``.
    An outer radius of 0 means no outer mask (inner-only masking).

    Args:
        x: image(s)/volume(s); ``ndim`` trailing axes are spatial (default: all).
        radii: ``(outer, inner)`` in pixels.
        kind: ``'D'``, ``'C'``, ``'G'`` or ``'T'``.
        background: ``'A'``, ``'P'``, ``'C'``, ``'M'`` or ``'E'``.
        value: the background for ``'E'`` (default 0).
        centre: 0-based ``(x, y[, z])``; default ``n//2`` per axis.
        falloff: edge width (``'C'``) or Gaussian half-width (``'G'``), pixels.
        ndim: number of spatial axes; leading axes are a batch.

    Returns:
        float32 array shaped like ``x``.

    Raises:
        UsageError: for inconsistent radii, a missing falloff, an inner radius with
            ``'T'``, an unknown option, or a mask wholly outside the image (SPIDER then
            refuses: "MASK OUTSIDE IMAGE; NO ACTION TAKEN").
    """
    b, lead, nd = _spatial(x, ndim)
    kind, background = kind.upper(), background.upper()
    if kind not in ("D", "C", "G", "T"):
        raise UsageError(f"kind {kind!r}: expected D, C, G or T")
    if background not in ("A", "P", "C", "M", "E"):
        raise UsageError(f"background {background!r}: expected A, P, C, M or E")
    outer, inner = (float(v) for v in radii)
    if outer < 0 or inner < 0 or (outer > 0 and outer < inner):
        raise UsageError(f"radii ({outer}, {inner}): need 0 <= inner <= outer")
    if kind == "T" and inner != 0:
        raise UsageError("MA T: a true Gaussian mask has no inner radius")
    if kind in ("C", "G") and (falloff is None or falloff <= 0):
        raise UsageError(f"MA {kind}: give a positive falloff width")
    shape = b.shape[1:]
    c = _centre(shape, centre)
    if outer == 0:
        outer = np.inf
    elif any(ci + 1 + outer < 0 or ci + 1 - outer - s >= 0 for ci, s in zip(c, shape)):
        raise UsageError("MA: mask outside image; no action taken")
    # SPIDER squares the radii in float32 and compares them with exact integer r²
    rad2 = float(_F(outer) ** 2) if np.isfinite(outer) else np.inf
    radi2 = float(_F(inner) ** 2)
    r2 = radius_grid(shape, c[::-1], squared=True)
    d = b.astype(np.float64)
    axes = tuple(range(1, nd + 1))
    keep = (r2 <= rad2) & (r2 >= radi2)
    inner_b = None
    if background == "A":
        B = d.mean(axis=axes)
    elif background == "M":
        B = d.min(axis=axes)
    elif background == "E":
        B = np.full(b.shape[0], 0.0 if value is None else float(value))
    else:
        B = _region_mean(d, keep, axes)
        if background == "C":
            ring = (r2 >= rad2) & (r2 <= float(_F(outer + 1) ** 2))
            if ring.any():
                B = _region_mean(d, ring, axes)
            hole = (r2 >= float(_F(inner - 1) ** 2)) & (r2 <= radi2)
            if radi2 > 0 and hole.any():
                inner_b = _region_mean(d, hole, axes)
    Bx = B.reshape((-1,) + (1,) * nd)
    if kind == "D":
        out = np.where(keep, d, Bx)
        if inner_b is not None:
            out = np.where(r2 < radi2, inner_b.reshape(Bx.shape), out)
    else:
        w = np.ones(shape, dtype=np.float64)
        r = np.sqrt(r2)
        if kind == "T":
            e = r2 * (-1.0 / outer**2) if np.isfinite(outer) else np.zeros(shape)
            w = np.where(e < -50.0, 0.0, np.exp(np.maximum(e, -50.0)))
        else:
            for sel, rad in ((r2 > rad2, outer), (r2 < radi2, inner)):
                if not np.isfinite(rad):
                    continue
                t = np.abs(r - rad)
                if kind == "C":
                    edge = 0.5 * (1.0 + np.cos(np.pi * np.minimum(1.0, t / falloff)))
                else:
                    e = -(t**2) / falloff**2
                    edge = np.where(e < -50.0, 0.0, np.exp(np.maximum(e, -50.0)))
                w = np.where(sel, edge, w)
        out = Bx + (d - Bx) * w
    return out.astype(_F).reshape(lead + shape)


def _region_mean(d: np.ndarray, sel: np.ndarray, axes) -> np.ndarray:
    count = int(sel.sum())
    if count == 0:
        raise UsageError("MA: no pixels inside the mask to average")
    return np.where(sel, d, 0.0).sum(axis=axes) / count


def soft_circle(n, radius: float, width: float, centre=None) -> np.ndarray:
    """2D mask: 1 within ``radius``, raised-cosine fall to 0 at ``radius + width``.

    Args:
        n: size ``n`` (square) or numpy shape ``(ny, nx)``.
        radius: radius of the flat top, pixels.
        width: edge width, pixels (0 gives a hard edge).
        centre: 0-based ``(x, y)``; default ``n//2``.
    """
    shape = (int(n), int(n)) if np.ndim(n) == 0 else tuple(int(v) for v in n)
    if len(shape) != 2:
        raise UsageError(f"soft_circle: expected a size or (ny, nx), got {n}")
    return _cosine_edge(radius_grid(shape, centre) - radius, width).astype(_F)


def soft_sphere(n, radius: float, width: float, centre=None) -> np.ndarray:
    """3D mask: 1 within ``radius``, raised-cosine fall to 0 at ``radius + width``.

    Args:
        n: size ``n`` (cube) or numpy shape ``(nz, ny, nx)``.
        radius: radius of the flat top, pixels.
        width: edge width, pixels (0 gives a hard edge).
        centre: 0-based ``(x, y, z)``; default ``n//2``.
    """
    shape = (int(n),) * 3 if np.ndim(n) == 0 else tuple(int(v) for v in n)
    if len(shape) != 3:
        raise UsageError(f"soft_sphere: expected a size or (nz, ny, nx), got {n}")
    return _cosine_edge(radius_grid(shape, centre) - radius, width).astype(_F)


def filament_mask(shape, width: float, length: float | None = None, angle: float = 0.0,
                  edge: float = 4.0, centre=None) -> np.ndarray:
    """Rectangular mask along a filament axis, with raised-cosine edges.

    The axis passes through ``centre`` at ``angle`` degrees from the +x axis,
    counter-clockwise as displayed (row 0 at the top), the same sense as ``RT SQ``:
    its direction in ``(x, row)`` is ``(cos a, -sin a)``.

    Args:
        shape: numpy shape ``(ny, nx)``.
        width: full width across the axis, pixels (flat part).
        length: full length along the axis, pixels; None for an unbounded filament.
        angle: axis direction in degrees.
        edge: width of the soft edge outside the flat part, pixels (0: hard).
        centre: 0-based ``(x, y)``; default ``n//2``.
    """
    shape = tuple(int(v) for v in shape)
    if len(shape) != 2 or width <= 0:
        raise UsageError("filament_mask: give shape (ny, nx) and a positive width")
    cy, cx = _centre(shape, centre)
    y = np.arange(shape[0], dtype=np.float64)[:, None] - cy
    x = np.arange(shape[1], dtype=np.float64)[None, :] - cx
    a = np.deg2rad(angle)
    along = x * np.cos(a) - y * np.sin(a)
    across = x * np.sin(a) + y * np.cos(a)
    m = _cosine_edge(np.abs(across) - width / 2.0, edge)
    if length is not None:
        m = m * _cosine_edge(np.abs(along) - length / 2.0, edge)
    return m.astype(_F)
