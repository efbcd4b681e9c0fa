"""Model images and volumes (test patterns): the formulas of SPIDER's ``MO`` and ``MO 3``.

Pure functions: shapes and parameters in, float32 arrays out; no files, no prompts.
Coordinates are SPIDER's, 1-based: pixel (x, y, z) = (j+1, i+1, k+1) for array index
[k, i, j], so the image centre (index n//2 on each axis) is at coordinate n//2 + 1.
Centres, radii and frequencies are given in (x, y[, z]) order; arrays come back in
(z, y, x) order. Angles are radians unless a name says degrees.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["coordinates", "blank", "disc", "wedge_2d", "wedge_3d", "gaussian", "sine_waves",
           "random_pattern", "spheres", "sphere_truncated", "GAUSS_CUTOFF"]

#: SPIDER's exp() cut-off: beyond this half squared distance a Gaussian is 0 (about 87.34,
#: the log of the smallest normal float32).
GAUSS_CUTOFF = float(np.log(1.0 / np.finfo(np.float32).tiny))
_F = np.float32


def coordinates(shape: Sequence[int]) -> list[np.ndarray]:
    """1-based coordinates along each axis, in (x, y[, z]) order, broadcastable to ``shape``.

    Args:
        shape: the array shape, (ny, nx) or (nz, ny, nx).
    """
    nd = len(shape)
    out = []
    for axis in range(nd - 1, -1, -1):  # x first
        view = [1] * nd
        view[axis] = shape[axis]
        out.append(np.arange(1, shape[axis] + 1, dtype=np.float64).reshape(view))
    return out


def blank(shape: Sequence[int], value: float) -> np.ndarray:
    """A constant image or volume (pattern ``B``)."""
    return np.full(tuple(shape), value, dtype=_F)


def disc(nx: int, ny: int, radius: float | None = None) -> np.ndarray:
    """A filled circle of 1 on 0 about the image centre (``MO`` pattern ``C``).

    Args:
        radius: in pixels; None takes SPIDER's default min(nx, ny)/2 - 3. The comparison
            uses the radius squared in single precision, as SPIDER does.
    """
    rad = _F(min(nx, ny) / 2.0 - 3 if radius is None else radius)
    x, y = coordinates((ny, nx))
    inside = (y - (ny // 2 + 1)) ** 2 + (x - (nx // 2 + 1)) ** 2 <= float(rad * rad)
    return inside.astype(_F)


def wedge_2d(nx: int, ny: int) -> np.ndarray:
    """The ramp (x + y)·2/(nx+ny), computed in single precision (``MO`` pattern ``W``)."""
    scf = _F(2.0 / (nx + ny))
    x, y = coordinates((ny, nx))
    return y.astype(_F) * scf + scf * x.astype(_F)


def wedge_3d(nx: int, ny: int, nz: int) -> np.ndarray:
    """SPIDER's 3D ramp (``MO 3`` pattern ``W``): (z + y(y+1)/2 + x)·2/(nx+ny+nz).

    The y term is a triangular number because SPIDER accumulates the row term over the
    rows of a slice.
    """
    scf = 2.0 / (nx + ny + nz)
    x, y, z = coordinates((nz, ny, nx))
    return (scf * z + scf * y * (y + 1) / 2 + scf * x).astype(_F)


def gaussian(shape: Sequence[int], centre: Sequence[float], radii: Sequence[float],
             order: int = 1, normalised: bool = True) -> np.ndarray:
    """A (super-)Gaussian ellipse or ellipsoid: exp(-(d²)^order / 2), d² = Σ((c-c0)/s)².

    Args:
        shape: (ny, nx) or (nz, ny, nx).
        centre: 1-based centre (x, y[, z]).
        radii: standard deviations (x, y[, z]) in pixels; all > 0.
        order: 1 for a Gaussian, 2 or 3 for SPIDER's flatter super-Gaussians G2, G3.
        normalised: scale to unit integral, 1/(Π s · (2π)^(ndim/2)) (patterns ``G``);
            False gives a peak of 1 (``G1``, ``G2``, ``G3``).

    Values whose half squared distance reaches :data:`GAUSS_CUTOFF` are exactly 0.
    """
    coords = coordinates(shape)
    d2 = sum((c - c0) ** 2 / (s * s) for c, c0, s in zip(coords, centre, radii))
    half = 0.5 * d2
    norm = 1.0 / (np.prod(radii) * (2 * np.pi) ** (len(shape) / 2)) if normalised else 1.0
    with np.errstate(over="ignore"):
        val = norm * np.exp(-0.5 * (2.0 * half) ** order)
    return np.where(half >= GAUSS_CUTOFF, 0.0, val).astype(_F)


def sine_waves(shape: Sequence[int], waves: Sequence[tuple]) -> np.ndarray:
    """Σ amp · sin(Σ_k 2π f_k (c_k - 1)/n_k + phase) over the waves.

    Args:
        shape: (ny, nx) or (nz, ny, nx).
        waves: (amplitude, phase in radians, (f_x, f_y[, f_z])) per wave; frequencies in
            periods per image side (whole numbers give periodic images).
    """
    coords = coordinates(shape)
    sizes = tuple(shape)[::-1]
    out = np.zeros(tuple(shape), np.float64)
    for amp, phase, freqs in waves:
        arg = sum(2 * np.pi * f * (c - 1) / n for f, c, n in zip(freqs, coords, sizes))
        out += amp * np.sin(arg + phase)
    return out.astype(_F)


def random_pattern(shape: Sequence[int], rng: np.random.Generator, gaussian: bool = False,
                   mean: float = 1.0, sd: float = 1.0) -> np.ndarray:
    """Random values: uniform on [0, 1), or normal with ``mean`` and ``sd``."""
    if gaussian:
        return rng.normal(mean, sd, size=tuple(shape)).astype(_F)
    return rng.random(size=tuple(shape)).astype(_F)


def sphere_truncated(centre: Sequence[float], radius: float, shape: Sequence[int]) -> bool:
    """Whether a sphere (1-based centre (x, y, z)) reaches outside the volume (SPIDER's test)."""
    sizes = tuple(shape)[::-1]
    return any(c + radius > n or c - radius < 0 for c, n in zip(centre, sizes))


def spheres(shape: Sequence[int], items: Sequence[tuple], density: float = 2.0,
            add: bool = False) -> np.ndarray:
    """Solid or hollow spheres (``MO 3`` patterns ``SP`` and ``SPA``).

    Args:
        shape: (nz, ny, nx).
        items: (centre (x, y, z) 1-based, outer radius, inner radius) per sphere; voxels
            with inner² <= d² <= outer² (radii squared in single precision) are inside.
        density: value inside a sphere.
        add: overlapping spheres add their densities (``SPA``); otherwise a later sphere
            sets its voxels to ``density`` (``SP``).
    """
    x, y, z = coordinates(shape)
    vol = np.zeros(tuple(shape), np.float64)
    for (cx, cy, cz), rout, rin in items:
        d2 = (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2
        inside = (d2 >= float(_F(rin) * _F(rin))) & (d2 <= float(_F(rout) * _F(rout)))
        vol = np.where(inside, density + (vol if add else 0.0), vol)
    return vol.astype(_F)
