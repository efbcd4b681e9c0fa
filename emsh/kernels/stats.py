"""Image statistics: SPIDER's ``FS`` numbers, normalisation, radial profiles.

Every function takes ``ndim``, the number of trailing spatial axes of one image or
volume; leading axes are a batch and results come back per image. ``ndim=None`` means
the whole array is one image/volume. Sums run in float64.
"""

from __future__ import annotations

import numpy as np

from emsh.errors import UsageError
from emsh.kernels.masks import radius_grid

__all__ = ["fs_stats", "normalize", "radial_profile"]

_F = np.float32


def _split(x, ndim: int | None) -> tuple[np.ndarray, tuple[int, ...], int]:
    a = np.asarray(x)
    nd = a.ndim if ndim is None else int(ndim)
    if nd < 1 or nd > a.ndim:
        raise UsageError(f"ndim={ndim}: does not fit an array of shape {a.shape}")
    lead = a.shape[: a.ndim - nd]
    return a.reshape((-1,) + a.shape[a.ndim - nd:]), lead, nd


def _out(v: np.ndarray, lead: tuple[int, ...]):
    return float(v[0]) if not lead else v.reshape(lead)


def fs_stats(x, ndim: int | None = None):
    """Maximum, minimum, mean and standard deviation, as SPIDER's ``FS`` reports them.

    The standard deviation divides by ``N - 1`` (0 for a single pixel).

    Args:
        x: image, volume, or a batch of them.
        ndim: spatial axes per item (2 for a stack of images); None = whole array.

    Returns:
        ``(max, min, mean, sd)``: floats for one item, arrays over the batch otherwise.
    """
    b, lead, nd = _split(x, ndim)
    if b.shape[1:] and min(b.shape[1:]) == 0:
        raise UsageError("fs_stats: empty image")
    d = b.reshape(b.shape[0], -1).astype(np.float64)
    n = d.shape[1]
    mean = d.mean(axis=1)
    ss = ((d - mean[:, None]) ** 2).sum(axis=1)
    sd = np.sqrt(ss / (n - 1)) if n > 1 else np.zeros_like(mean)
    return (_out(d.max(axis=1), lead), _out(d.min(axis=1), lead),
            _out(mean, lead), _out(sd, lead))


def normalize(x, mask=None, radius: float | None = None, ndim: int | None = None) -> np.ndarray:
    """Scale each image to zero mean and unit standard deviation over chosen pixels.

    The statistics come from ``mask`` when given (pixels where it is True), else from
    the background outside ``radius`` (pixels farther than ``radius`` from the centre
    ``n//2``: RELION's ``--norm --bg_radius`` convention), else from the whole image.
    The standard deviation is the population one (divide by N), as RELION uses; the
    whole image is then shifted and scaled.

    Args:
        x: image(s)/volume(s).
        mask: boolean array of one image's shape.
        radius: background radius in pixels (ignored when ``mask`` is given).
        ndim: spatial axes per item; None = whole array.

    Returns:
        float32 array shaped like ``x``.

    Raises:
        UsageError: when the mask selects no pixels, or an image is constant there.
    """
    b, lead, nd = _split(x, ndim)
    shape = b.shape[1:]
    if mask is not None:
        sel = np.broadcast_to(np.asarray(mask, dtype=bool), shape)
    elif radius is not None:
        sel = radius_grid(shape) > float(radius)
    else:
        sel = np.ones(shape, dtype=bool)
    count = int(sel.sum())
    if count == 0:
        raise UsageError("normalize: the mask or radius leaves no pixels for the statistics")
    d = b.astype(np.float64)
    flat = d.reshape(d.shape[0], -1)[:, sel.reshape(-1)]
    mean = flat.mean(axis=1)
    sd = flat.std(axis=1)
    bad = np.nonzero(sd == 0)[0]
    if bad.size:
        raise UsageError(f"normalize: image {int(bad[0]) + 1} is constant under the mask")
    out = (d - mean.reshape((-1,) + (1,) * nd)) / sd.reshape((-1,) + (1,) * nd)
    return out.astype(_F).reshape(lead + shape)


def radial_profile(x, ndim: int | None = None, centre=None, rmax: int | None = None) -> np.ndarray:
    """Rotational (spherical) average over shells of width 1 pixel.

    Pixel ``p`` belongs to shell ``round(|p - c|)`` (c = ``n//2`` per axis unless
    ``centre`` gives 0-based ``(x, y[, z])``). Shells with no pixels are 0.

    Args:
        x: image(s)/volume(s).
        ndim: spatial axes per item; None = whole array.
        centre: 0-based ``(x, y[, z])``.
        rmax: last shell returned; default ``min(shape)//2``.

    Returns:
        float32 ``batch + (rmax + 1,)``.
    """
    b, lead, nd = _split(x, ndim)
    shape = b.shape[1:]
    if rmax is None:
        rmax = min(shape) // 2
    rmax = int(rmax)
    if rmax < 0:
        raise UsageError("radial_profile: rmax must be >= 0")
    shell = np.rint(radius_grid(shape, centre)).astype(np.int64).reshape(-1)
    use = shell <= rmax
    nshell = rmax + 1
    counts = np.bincount(shell[use], minlength=nshell).astype(np.float64)
    d = b.reshape(b.shape[0], -1)[:, use].astype(np.float64)
    idx = (np.arange(b.shape[0])[:, None] * nshell + shell[use][None, :]).reshape(-1)
    sums = np.bincount(idx, weights=d.reshape(-1), minlength=b.shape[0] * nshell)
    prof = sums.reshape(b.shape[0], nshell) / np.maximum(counts, 1.0)
    return prof.astype(_F).reshape(lead + (nshell,))
