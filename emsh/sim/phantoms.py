"""Analytic phantom volumes with known content, deterministic from a seed.

Coordinates are in pixels with the origin at index n//2 on each axis (the emsh image
centre). Volumes are float32 ``(n, n, n)`` in (z, y, x) order.
"""

from __future__ import annotations

import numpy as np


def _grid(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = np.arange(n, dtype=np.float64) - n // 2
    return np.meshgrid(c, c, c, indexing="ij")


def gaussian_blobs(
    n: int,
    rng: np.random.Generator,
    n_blobs: int = 12,
    radius: float | None = None,
    sigma_range: tuple[float, float] = (1.5, 3.5),
) -> np.ndarray:
    """A molecule-like volume: anisotropic Gaussian blobs inside a sphere.

    Args:
        n: box size in pixels.
        rng: source of the blob positions, widths and heights.
        n_blobs: number of blobs.
        radius: blob centres lie within this radius in pixels (default 0.3*n), so the
            density stays well inside the box and a mask of radius 0.45*n holds it.
        sigma_range: range of the blob widths (standard deviations) in pixels.

    Returns:
        float32 ``(n, n, n)``, non-negative, maximum 1.
    """
    r = 0.3 * n if radius is None else float(radius)
    z, y, x = _grid(n)
    vol = np.zeros((n, n, n), dtype=np.float64)
    for _ in range(n_blobs):
        d = rng.normal(size=3)
        centre = d / np.linalg.norm(d) * r * rng.uniform(0.0, 1.0) ** (1 / 3)
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        sig = rng.uniform(*sigma_range, size=3)
        rel = np.stack([z - centre[0], y - centre[1], x - centre[2]], -1) @ q
        vol += rng.uniform(0.5, 1.0) * np.exp(-0.5 * np.sum((rel / sig) ** 2, axis=-1))
    vol /= vol.max()
    return vol.astype(np.float32)


def sphere(n: int, radius: float, centre: tuple[float, float, float] | None = None) -> np.ndarray:
    """A solid sphere of value 1 (radius in pixels, centre in (z, y, x) pixels from n//2)."""
    z, y, x = _grid(n)
    cz, cy, cx = centre or (0.0, 0.0, 0.0)
    return (((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2) <= radius**2).astype(np.float32)


def analytic_gaussians(
    n: int,
    rng: np.random.Generator,
    n_blobs: int = 5,
    sigma_range: tuple[float, float] = (1.8, 3.0),
    spread: float = 0.15,
) -> tuple[list, np.ndarray]:
    """Anisotropic 3D Gaussians whose projections are known exactly.

    Args:
        n: box size in pixels.
        rng: source of amplitudes, centres and covariances.
        n_blobs: number of Gaussians.
        sigma_range: range of the principal standard deviations in pixels.
        spread: centres are uniform in ``[-spread*n, spread*n]`` on each axis (pixels from
            the centre ``n//2``).

    Returns:
        ``(blobs, volume)``: ``blobs`` is a list of ``(amplitude, centre (x, y, z), cov 3x3)``
        in pixels, ``volume`` the float32 ``(n, n, n)`` sampling of their sum.
    """
    blobs = []
    for _ in range(n_blobs):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        cov = q @ np.diag(rng.uniform(*sigma_range, 3) ** 2) @ q.T
        blobs.append((rng.uniform(0.5, 1.0), rng.uniform(-spread * n, spread * n, 3), cov))
    g = np.arange(n) - n // 2
    pts = np.stack(np.meshgrid(g, g, g, indexing="ij")[::-1], -1).astype(np.float64)  # (x,y,z)
    vol = np.zeros((n, n, n))
    for a, c, cov in blobs:
        d = pts - c
        vol += a * np.exp(-0.5 * np.einsum("...i,ij,...j->...", d, np.linalg.inv(cov), d))
    return blobs, vol.astype(np.float32)


def analytic_projections(blobs: list, n: int, rotations: np.ndarray) -> np.ndarray:
    """Exact line integrals along z of ``p = R v`` for the Gaussians of :func:`analytic_gaussians`.

    Each 3D Gaussian projects to a 2D Gaussian with the rotated covariance's x-y block, so
    the projections carry no interpolation error: the ground truth for projectors and
    reconstructors. ``rotations`` is ``(k, 3, 3)``; returns float64 ``(k, n, n)``.
    """
    g = np.arange(n) - n // 2
    yy, xx = np.meshgrid(g, g, indexing="ij")
    p = np.stack([xx, yy], -1).astype(np.float64)
    out = np.zeros((len(rotations), n, n))
    for i, r in enumerate(rotations):
        for a, c, cov in blobs:
            c22 = (r @ cov @ r.T)[:2, :2]
            scale = a * np.sqrt(2 * np.pi * np.linalg.det(cov) / np.linalg.det(c22))
            d = p - (r @ c)[:2]
            out[i] += scale * np.exp(-0.5 * np.einsum("...i,ij,...j->...", d, np.linalg.inv(c22), d))
    return out
