"""ISAC2's working stack (A.2 step 2): centre, shrink, crop/pad and normalise.

The pre-alignment shifts (:mod:`.prealign`) are applied at full size before shrinking,
as SPHIRE does; CTF phase flipping and VPP whitening (:mod:`.correct`) come before
this module. Filament mode (``filament_width``) normalises with a horizontal band
instead of the circle and multiplies the band in unless ``filament_mask_ignore``.
"""

from __future__ import annotations

import numpy as np

from emsh.errors import UsageError
from emsh.kernels.masks import filament_mask, radius_grid
from emsh.kernels.transform import resample_fourier, shift_fourier

__all__ = ["shrink_ratio", "prepare_stack", "working_size", "shrink", "subtract_inside_mean",
           "filament_band", "FILAMENT_EDGE"]

#: soft edge of the filament band (working pixels), raised cosine outside the flat part
FILAMENT_EDGE = 2.0

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


def _check_stack(imgs: np.ndarray, radius: float) -> None:
    if imgs.ndim != 3 or imgs.shape[1] != imgs.shape[2] or len(imgs) == 0:
        raise UsageError(f"ISAC2: expected a stack of square images, got shape {imgs.shape}")
    if radius >= imgs.shape[-1] / 2:
        raise UsageError(f"ISAC2: radius {radius} px does not fit the {imgs.shape[-1]} px "
                         "images")


def subtract_inside_mean(images, radius: float) -> np.ndarray:
    """Each image minus its mean inside ``radius`` (pixels, about ``n//2``), float32."""
    imgs = np.asarray(images, dtype=np.float32)
    _check_stack(imgs, radius)
    inside = radius_grid(imgs.shape[1:]) <= radius
    return imgs - imgs[:, inside].mean(axis=1)[:, None, None]


def shrink(images, s: float) -> np.ndarray:
    """Resample ``(n, nx, nx)`` images by ``s`` to ``int(nx s + 0.5)`` px about ``n//2``.

    Fourier cropping/padding (:func:`emsh.kernels.transform.resample_fourier`) with the
    centre index ``nx//2`` mapped to ``m//2``.
    """
    x = np.asarray(images, dtype=np.float32)
    nx = x.shape[-1]
    m = working_size(nx, s)
    if m == nx:
        return x.copy()
    x = np.roll(x, (-(nx // 2), -(nx // 2)), axis=(1, 2))
    x = resample_fourier(x, (m, m))
    return np.ascontiguousarray(np.roll(x, (m // 2, m // 2), axis=(1, 2)))


def filament_band(size: int, width: float, edge: float = FILAMENT_EDGE) -> np.ndarray:
    """Horizontal band mask ``(size, size)``: 1 within ``width/2`` rows of ``size//2``,
    raised-cosine fall to 0 over ``edge`` more pixels (filaments lie along x)."""
    if not 0 < width < size:
        raise UsageError(f"ISAC2: filament width {width:g} px must be between 0 and the "
                         f"{size} px working box")
    return filament_mask((size, size), width, angle=0.0, edge=edge)


def prepare_stack(images, radius: float, *, target_radius: int = 29, target_nx: int = 76,
                  shifts=None, filament_width: float = -1.0,
                  filament_mask_ignore: bool = False) -> tuple[np.ndarray, float]:
    """The normalised, shrunk working stack of ISAC2.

    1. subtract the mean inside ``radius`` (original pixels);
    2. apply the pre-alignment ``shifts`` (original pixels, Fourier shift);
    3. resample by ``s = target_radius / radius`` to ``int(nx s + 0.5)`` (Fourier
       cropping/padding about the centre ``n//2``);
    4. crop to ``target_nx`` when larger;
    5. normalise ``(x - mean inside r) / sigma outside r`` with ``r = target_radius``
       (or ``new_size/2 - 2`` when the shrunk image is smaller than ``target_nx``);
       in filament mode (``filament_width > 0``, original pixels) inside/outside are
       those of the horizontal band of width ``filament_width s``
       (:func:`filament_band`), which then multiplies the images unless
       ``filament_mask_ignore``;
    6. zero-pad to ``target_nx`` when smaller.

    Args:
        images: ``(n, nx, nx)`` square particle images.
        radius: particle radius in original pixels.
        target_radius, target_nx: as ISAC2's options.
        shifts: ``(n, 2)`` centring shifts ``(sx, sy)`` (original px) or None.
        filament_width: band width in original pixels, -1 (or <= 0) for no band.
        filament_mask_ignore: normalise with the band but do not multiply it in.

    Returns:
        ``(stack (n, target_nx, target_nx) float32, s)``.
    """
    imgs = np.asarray(images, dtype=np.float32)
    _check_stack(imgs, radius)
    n, nx = imgs.shape[0], imgs.shape[-1]
    s = shrink_ratio(radius, target_radius)
    m = working_size(nx, s)
    if n * max(m, target_nx) ** 2 > _MAX_PIXELS:
        raise UsageError(f"ISAC2: {n} images of {m} px is too large a working stack")
    x = subtract_inside_mean(imgs, radius)
    if shifts is not None:
        sh = np.asarray(shifts, dtype=np.float64)
        if sh.shape != (n, 2) or not np.all(np.isfinite(sh)):
            raise UsageError(f"ISAC2: expected ({n}, 2) finite pre-alignment shifts, "
                             f"got {sh.shape}")
        if np.any(sh != 0):
            x = shift_fourier(x, sh)
    x = shrink(x, s)
    if m > target_nx:
        x = _window(x, target_nx)
        m = target_nx
    band = None
    if filament_width is not None and filament_width > 0:
        band = filament_band(m, filament_width * s)
        inside = band >= 0.5
    else:
        r = target_radius if m >= target_nx else m / 2 - 2
        inside = radius_grid((m, m)) <= r
    if inside.all() or not inside.any():
        raise UsageError(f"ISAC2: the normalisation mask leaves no pixels inside or outside "
                         f"in a {m} px box")
    mean_in = x[:, inside].mean(axis=1)
    sd_out = x[:, ~inside].std(axis=1)
    if np.any(sd_out == 0):
        bad = int(np.flatnonzero(sd_out == 0)[0]) + 1
        raise UsageError(f"ISAC2: image {bad} is constant outside the radius")
    x = (x - mean_in[:, None, None]) / sd_out[:, None, None]
    if band is not None and not filament_mask_ignore:
        x = x * band
    if m < target_nx:
        x = _window(x, target_nx)
    return np.ascontiguousarray(x, dtype=np.float32), s
