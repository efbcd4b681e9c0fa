"""ISAC2's working stack (A.2 step 2): centre, shrink, crop/pad and normalise.

Pre-alignment (step 1) is not implemented: the images are used as they are, which is
SPHIRE's ``--skip_prealignment`` (zero initial shifts). CTF phase flipping and VPP
whitening are not applied here either (see the plugin README).
"""

from __future__ import annotations

import numpy as np

from emsh.errors import UsageError
from emsh.kernels.masks import radius_grid
from emsh.kernels.transform import resample_fourier

__all__ = ["shrink_ratio", "prepare_stack", "working_size"]

_MAX_PIXELS = 2**31


def shrink_ratio(radius: float, target_radius: int) -> float:
    """SPHIRE's ``s = target_radius / radius`` (both in pixels)."""
    if not radius > 0:
        raise UsageError(f"ISAC2: particle radius must be > 0 px, got {radius}")
    return float(target_radius) / float(radius)


def working_size(nx: int, s: float) -> int:
    """Box size after shrinking, ``int(nx s + 0.5)``."""
    return max(int(nx * s + 0.5), 1)


def _window(imgs: np.ndarray, size: int) -> np.ndarray:
    """Centre crop or zero pad each image to ``size`` (centre index n//2 kept)."""
    n, m = imgs.shape[0], imgs.shape[-1]
    out = np.zeros((n, size, size), dtype=np.float32)
    if m >= size:
        a = m // 2 - size // 2
        out[:] = imgs[:, a:a + size, a:a + size]
    else:
        a = size // 2 - m // 2
        out[:, a:a + m, a:a + m] = imgs
    return out


def prepare_stack(images, radius: float, *, target_radius: int = 29,
                  target_nx: int = 76) -> tuple[np.ndarray, float]:
    """The normalised, shrunk working stack of ISAC2.

    1. subtract the mean inside ``radius`` (original pixels);
    2. resample by ``s = target_radius / radius`` to ``int(nx s + 0.5)`` (Fourier
       cropping/padding about the centre ``n//2``);
    3. crop to ``target_nx`` when larger;
    4. normalise ``(x - mean inside r) / sigma outside r`` with ``r = target_radius``
       (or ``new_size/2 - 2`` when the shrunk image is smaller than ``target_nx``);
    5. zero-pad to ``target_nx`` when smaller.

    Args:
        images: ``(n, nx, nx)`` square particle images.
        radius: particle radius in original pixels.
        target_radius, target_nx: as ISAC2's options.

    Returns:
        ``(stack (n, target_nx, target_nx) float32, s)``.
    """
    imgs = np.asarray(images, dtype=np.float32)
    if imgs.ndim != 3 or imgs.shape[1] != imgs.shape[2] or len(imgs) == 0:
        raise UsageError(f"ISAC2: expected a stack of square images, got shape {imgs.shape}")
    n, nx = imgs.shape[0], imgs.shape[-1]
    if radius >= nx / 2:
        raise UsageError(f"ISAC2: radius {radius} px does not fit the {nx} px images")
    s = shrink_ratio(radius, target_radius)
    m = working_size(nx, s)
    if n * max(m, target_nx) ** 2 > _MAX_PIXELS:
        raise UsageError(f"ISAC2: {n} images of {m} px is too large a working stack")
    inside = radius_grid((nx, nx)) <= radius
    x = imgs - imgs[:, inside].mean(axis=1)[:, None, None]
    if m != nx:
        x = np.roll(x, (-(nx // 2), -(nx // 2)), axis=(1, 2))
        x = resample_fourier(x, (m, m))
        x = np.roll(x, (m // 2, m // 2), axis=(1, 2))
    if m > target_nx:
        x = _window(x, target_nx)
        m = target_nx
    r = target_radius if m >= target_nx else m / 2 - 2
    rr = radius_grid((m, m))
    mean_in = x[:, rr <= r].mean(axis=1)
    sd_out = x[:, rr > r].std(axis=1)
    if np.any(sd_out == 0):
        bad = int(np.flatnonzero(sd_out == 0)[0]) + 1
        raise UsageError(f"ISAC2: image {bad} is constant outside the radius")
    x = (x - mean_in[:, None, None]) / sd_out[:, None, None]
    if m < target_nx:
        x = _window(x, target_nx)
    return np.ascontiguousarray(x, dtype=np.float32), s
