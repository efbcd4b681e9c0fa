"""Helpers shared by the simulators: random poses, support radius, masks, noise level."""

from __future__ import annotations

import numpy as np

from emsh.errors import UsageError

MAX_ELEMENTS = 2**31  # refuse outputs larger than this many values before allocating


def check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise UsageError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                         f"got {type(rng).__name__}")
    return rng


def check_count(n, what: str) -> int:
    try:
        k = int(n)
    except (TypeError, ValueError):
        raise UsageError(f"{what} must be a whole number, got {n!r}") from None
    if k < 1 or k != n:
        raise UsageError(f"{what} must be a whole number >= 1, got {n!r}")
    return k


def check_size(count: int, shape: tuple[int, ...], what: str) -> None:
    total = float(count) * float(np.prod(shape, dtype=np.float64))
    if total > MAX_ELEMENTS:
        raise UsageError(f"{what}: {count} x {shape} is {total:.3g} values, more than the "
                         f"{MAX_ELEMENTS} emsh allows in one array")


def check_snr(snr) -> float | None:
    """``None`` or ``inf`` means no noise."""
    if snr is None:
        return None
    s = float(snr)
    if np.isnan(s) or s <= 0:
        raise UsageError(f"snr must be > 0 (or None for no noise), got {snr}")
    return None if np.isinf(s) else s


def random_angles(n: int, rng: np.random.Generator) -> np.ndarray:
    """Orientations drawn uniformly on SO(3), as SPIDER angles in doc order (psi, theta, phi).

    phi and psi are uniform in [0, 360) and ``cos(theta)`` uniform in [-1, 1] (the Haar
    measure for ZYZ angles), so projection directions cover the sphere evenly.

    Returns:
        float64 ``(n, 3)`` in degrees, columns (psi, theta, phi).
    """
    n = check_count(n, "number of orientations")
    check_rng(rng)
    phi = rng.uniform(0.0, 360.0, n)
    theta = np.degrees(np.arccos(np.clip(1.0 - 2.0 * rng.uniform(0.0, 1.0, n), -1.0, 1.0)))
    psi = rng.uniform(0.0, 360.0, n)
    return np.stack([psi, theta, phi], axis=1)


def as_angles(angles, n: int) -> np.ndarray:
    """Validate given angles ``(n, 3)`` in doc order (psi, theta, phi)."""
    a = np.asarray(angles, dtype=np.float64)
    if a.ndim == 1 and a.shape == (3,):
        a = np.broadcast_to(a, (n, 3))
    if a.shape != (n, 3) or not np.all(np.isfinite(a)):
        raise UsageError(f"angles must be finite ({n}, 3) as (psi, theta, phi) in degrees, "
                         f"got shape {np.shape(angles)}")
    return np.array(a)


def as_shifts(shifts, shift_range, n: int, ndim: int, rng: np.random.Generator) -> np.ndarray:
    """Given shifts ``(n, ndim)`` or ones drawn uniformly in ``[-range, range]`` per axis."""
    if shifts is not None:
        s = np.asarray(shifts, dtype=np.float64)
        if s.shape == (ndim,):
            s = np.broadcast_to(s, (n, ndim))
        if s.shape != (n, ndim) or not np.all(np.isfinite(s)):
            raise UsageError(f"shifts must be finite ({n}, {ndim}) in pixels, got shape {np.shape(shifts)}")
        return np.array(s)
    r = float(shift_range)
    if not np.isfinite(r) or r < 0:
        raise UsageError(f"shift_range_px must be >= 0 pixels, got {shift_range}")
    if r == 0:
        return np.zeros((n, ndim))
    return rng.uniform(-r, r, (n, ndim))


def cube(volume, what: str = "volume") -> np.ndarray:
    v = np.ascontiguousarray(volume, dtype=np.float32)
    if v.ndim != 3 or not (v.shape[0] == v.shape[1] == v.shape[2]) or v.shape[0] < 4:
        raise UsageError(f"{what} must be a cube (N, N, N) with N >= 4, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise UsageError(f"{what} holds NaN or infinite values")
    return v


def volumes(volume) -> list[np.ndarray]:
    """One cubic volume, or a sequence / (k, N, N, N) array of same-sized volumes."""
    if isinstance(volume, np.ndarray) and volume.ndim == 3:
        return [cube(volume)]
    vols = [cube(v, f"volume {i + 1}") for i, v in enumerate(volume)]
    if not vols:
        raise UsageError("no volumes given")
    if len({v.shape for v in vols}) != 1:
        raise UsageError(f"volumes differ in size: {sorted({v.shape for v in vols})}")
    return vols


def support_radius(vol: np.ndarray, threshold: float = 0.01) -> float:
    """Radius (pixels, from voxel N//2) of the smallest centred sphere holding every voxel
    whose magnitude exceeds ``threshold`` times the volume's maximum magnitude."""
    n = vol.shape[0]
    a = np.abs(vol)
    top = float(a.max())
    if top == 0:
        return float(n // 2 - 1)
    z, y, x = np.nonzero(a > threshold * top)
    c = n // 2
    r = float(np.sqrt(((z - c) ** 2 + (y - c) ** 2 + (x - c) ** 2).max()))
    return min(r, float(n // 2 - 1))


def disc(n: int, radius: float) -> np.ndarray:
    """Boolean ``(n, n)`` disc of ``radius`` pixels about pixel ``n//2``."""
    t = np.arange(n) - n // 2
    return (t[:, None] ** 2 + t[None, :] ** 2) <= radius * radius


def ball(n: int, radius: float) -> np.ndarray:
    """Boolean ``(n, n, n)`` ball of ``radius`` pixels about voxel ``n//2``."""
    t = np.arange(n) - n // 2
    return (t[:, None, None] ** 2 + t[None, :, None] ** 2 + t[None, None, :] ** 2) <= radius * radius


def masked_variance(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Variance of each image (leading axis) over the pixels of ``mask`` (float64)."""
    v = x.reshape(x.shape[0], -1)[:, mask.ravel()].astype(np.float64)
    return v.var(axis=1)


def mask_radius_of(volume: np.ndarray, mask_radius) -> float:
    if mask_radius is None:
        return support_radius(volume)
    r = float(mask_radius)
    if not np.isfinite(r) or r <= 0:
        raise UsageError(f"mask_radius must be > 0 pixels, got {mask_radius}")
    return r
