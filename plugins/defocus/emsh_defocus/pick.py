"""Reference-free particle picking: locally normalised correlation with a blob.

The idea is SPIDER's local fast correlation (Roseman's FLCF): the micrograph is
correlated with a template ``t`` that is non-zero only inside a circular mask ``M``,
and at each position the correlation is divided by the standard deviation of the
micrograph under the mask there, so uneven ice and contrast do not bias the score.

Steps of :func:`score_map` (whole micrograph, FFTs via :mod:`emsh.fft`):

1. the mean is removed and the micrograph is padded by reflection to an FFT-friendly
   size (the pad is at least the mask radius, so the edges do not wrap around);
2. band-pass (:func:`emsh.kernels.filters.bandpass`) from ``f_low`` to ``f_high``
   cycles/pixel (defaults ``0.3 / radius`` and ``2.25 / radius``): off goes the slowly
   varying background and the noise above the particle's own scale;
3. the template is a Gaussian of ``sigma = radius / 3`` inside a mask of radius
   ``2 * radius``, made zero-mean over the mask and of unit norm, so
   ``C(x) = sum_M t f(x + .)`` needs no local-mean term;
4. ``S1 = M * f`` and ``S2 = M * f^2`` (local sums under the mask) give the local
   variance ``v = S2/N - (S1/N)^2`` (``N`` mask pixels) and the score
   ``c = polarity * C / sqrt(N v)``, a correlation coefficient in [-1, 1];
5. ``c`` is expressed in SD units of the score map: ``z = (c - median) / (1.4826 MAD)``
   over the positions whose box fits in the micrograph.

Polarity: +1 picks white particles (positive density), as in emsh's simulated
micrographs (emsh's CTF is positive at zero frequency, see :mod:`emsh.sim.micrographs`)
and in phase-flipped or contrast-inverted data; -1 picks dark particles, as in a raw
micrograph from the microscope (SPIDER's own micrographs).

:func:`pick_particles` then takes the local maxima of ``z``, drops those whose
``box`` window would cross the micrograph's edge (the rule of
:func:`emsh_defocus.window.fits_in`, so every pick can be windowed), keeps peaks
greedily from the highest so that no two are closer than ``min_distance`` (default the
particle diameter), and keeps those above the threshold: given in SD units, or (0)
chosen by Otsu's method on the heights of the peaks that survive, which separates the
particle peaks from the noise peaks.

Coordinates are 1-based (x = column, y = row): array index + 1, as SPIDER's pickers
write them.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

from emsh import fft as _fft
from emsh.errors import UsageError
from emsh.kernels.filters import bandpass

from .window import fits_in

__all__ = ["score_map", "pick_particles", "auto_threshold", "match_picks"]

_NOISE_FLOOR = 1.0      # peaks below this (SD units) are never picks and not used by Otsu


def _offsets(R: int, shape) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays placing a ``(2R+1)^2`` kernel centred at the origin of ``shape`` (wrap)."""
    t = np.arange(-R, R + 1)
    return np.ix_(t % shape[0], t % shape[1])


@lru_cache(maxsize=4)
def _kernels(shape, sigma: float, mask_radius: float) -> tuple[np.ndarray, float]:
    """Half spectra ``(2, ...)`` of the mask and the template, and the mask's pixel count
    (cached: the micrographs of a data set share them; treat the result as read-only)."""
    R = int(np.ceil(mask_radius))
    yy, xx = np.mgrid[-R:R + 1, -R:R + 1]
    rr2 = (xx * xx + yy * yy).astype(np.float64)
    mask = rr2 <= mask_radius * mask_radius
    blob = np.exp(-rr2 / (2.0 * sigma * sigma))
    t = np.where(mask, blob - blob[mask].mean(), 0.0)
    t /= np.sqrt(np.sum(t * t))
    k = np.zeros((2,) + tuple(shape), dtype=np.float32)
    ix = _offsets(R, shape)
    k[0][ix] = mask
    k[1][ix] = t
    return _fft.rfftn(k), float(mask.sum())


def _check(mic, radius, box) -> tuple[np.ndarray, float, int]:
    a = np.asarray(mic, dtype=np.float32)
    if a.ndim != 2:
        raise UsageError(f"expected a 2-D micrograph, got shape {a.shape}")
    r, b = float(radius), int(box)
    if not (np.isfinite(r) and r >= 1.0):
        raise UsageError(f"particle radius must be >= 1 px, got {radius}")
    if b < 2 * r:
        raise UsageError(f"box size {b} px is smaller than the particle diameter {2 * r:g} px")
    if b > min(a.shape):
        raise UsageError(f"box size {b} px is larger than the {a.shape[1]}x{a.shape[0]} "
                         "micrograph")
    if not np.all(np.isfinite(a)):
        raise UsageError("the micrograph holds NaN or infinite values")
    return a, r, b


def _valid(shape, box: int) -> np.ndarray:
    """Boolean ``shape``: centres whose ``box`` window lies inside the micrograph."""
    H, W = shape
    ok = np.zeros(shape, dtype=bool)
    lo = box // 2
    ok[lo:H - box + lo + 1, lo:W - box + lo + 1] = True
    return ok


def score_map(mic, radius: float, box: int, *, polarity: int = 1, f_low: float = 0.0,
              f_high: float = 0.0, sigma: float = 0.0, mask_radius: float = 0.0
              ) -> np.ndarray:
    """The picking score in SD units of the map, float32 ``(rows, columns)``.

    Args:
        mic: micrograph ``(rows, columns)``.
        radius: particle radius (px).
        box: box size (px); only positions whose box fits count for the statistics
            (the others are set to the median, 0).
        polarity: +1 for white particles, -1 for dark ones (module docstring).
        f_low, f_high: band-pass limits in cycles/pixel (0: ``0.3/radius``,
            ``min(2.25/radius, 0.45)``).
        sigma: Gaussian template's sigma (px; 0: ``radius/3``).
        mask_radius: radius of the correlation mask (px; 0: ``2 * radius``).
    """
    a, r, b = _check(mic, radius, box)
    if polarity not in (1, -1):
        raise UsageError(f"polarity must be 1 (white particles) or -1 (dark), got {polarity}")
    fl = float(f_low) or 0.3 / r
    fh = float(f_high) or min(2.25 / r, 0.45)
    sig = float(sigma) or r / 3.0
    rm = float(mask_radius) or 2.0 * r
    if not 0 <= fl < fh <= 0.5:
        raise UsageError(f"band-pass needs 0 <= f_low < f_high <= 0.5 cycles/px, got "
                         f"{fl:g}, {fh:g}")
    H, W = a.shape
    R = int(np.ceil(rm))
    if R >= min(H, W):
        raise UsageError(f"mask radius {rm:g} px does not fit in the {W}x{H} micrograph")
    Hp, Wp = _fft.good_size(H + 2 * R), _fft.good_size(W + 2 * R)
    padded = np.pad(a - np.float32(a.mean(dtype=np.float64)),
                    ((R, Hp - H - R), (R, Wp - W - R)), mode="reflect")
    g = bandpass(padded, fl, fh, width=min(0.3 / r, 0.05))
    K, n = _kernels((Hp, Wp), sig, rm)
    G = _fft.rfftn(np.stack([g, g * g]))
    prod = np.stack([G[0] * K[0], G[1] * K[0], G[0] * K[1]])
    s1, s2, c = _fft.irfftn(prod, (Hp, Wp), ndim=2)[:, R:R + H, R:R + W].astype(np.float64)
    var = s2 / n - (s1 / n) ** 2
    tiny = 1e-12 * max(float(np.max(var)), 1e-30)
    score = np.where(var > tiny, c / np.sqrt(n * np.maximum(var, tiny)), 0.0) * polarity
    valid = _valid((H, W), b)
    vals = score[valid]
    med = float(np.median(vals))
    mad = 1.4826 * float(np.median(np.abs(vals - med)))
    z = (score - med) / (mad if mad > 0 else 1.0)
    z[~valid] = 0.0
    return z.astype(np.float32)


def auto_threshold(heights) -> float:
    """Otsu's threshold on peak heights: the split maximising the between-class variance.

    Returns the midpoint between the two values at the split; ``-inf`` for fewer than two
    heights (then every peak is kept).
    """
    v = np.sort(np.asarray(heights, dtype=np.float64).ravel())
    n = v.size
    if n < 2:
        return float("-inf")
    k = np.arange(1, n)
    c = np.cumsum(v)[:-1]
    m0 = c / k
    m1 = (v.sum() - c) / (n - k)
    between = k * (n - k) * (m0 - m1) ** 2
    i = int(np.argmax(between))
    return float(0.5 * (v[i] + v[i + 1]))


def _greedy_nms(rc: np.ndarray, h: np.ndarray, min_distance: float) -> np.ndarray:
    """Indices of the peaks kept greedily from the highest, none closer than ``min_distance``."""
    if rc.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    from scipy.spatial import cKDTree

    order = np.lexsort((rc[:, 1], rc[:, 0], -h))        # highest first, ties by position
    pts = rc[order].astype(np.float64)
    reach = np.nextafter(float(min_distance), 0.0)       # strictly closer is suppressed
    pairs = cKDTree(pts).query_pairs(reach, output_type="ndarray") if reach > 0 else \
        np.zeros((0, 2), dtype=np.int64)
    lo, hi = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
    srt = np.argsort(lo, kind="stable")
    lo, hi = lo[srt], hi[srt]
    start = np.searchsorted(lo, np.arange(pts.shape[0] + 1))
    dead = np.zeros(pts.shape[0], dtype=bool)
    keep = []
    for i in range(pts.shape[0]):
        if not dead[i]:
            keep.append(i)
            dead[hi[start[i]:start[i + 1]]] = True
    return order[np.asarray(keep, dtype=np.int64)]


def pick_particles(mic, radius: float, box: int, *, threshold: float = 0.0,
                   max_picks: int = 0, polarity: int = 1, min_distance: float = 0.0,
                   f_low: float = 0.0, f_high: float = 0.0, sigma: float = 0.0,
                   mask_radius: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Pick particles in one micrograph.

    Args:
        mic: micrograph ``(rows, columns)``.
        radius: particle radius (px).
        box: box size (px); picks whose box would cross the edge are dropped.
        threshold: least score in SD units of the score map; 0 chooses it (Otsu on the
            peak heights, see the module docstring).
        max_picks: keep at most this many, the highest (0: no limit).
        polarity: +1 white particles (emsh.sim), -1 dark (raw micrographs).
        min_distance: least distance between picks (px; 0: the diameter ``2 * radius``).
        f_low, f_high, sigma, mask_radius: see :func:`score_map` (0: defaults).

    Returns:
        ``(xy, score)``: float64 ``(n, 2)`` 1-based (x, y) centre coordinates and the
        scores (SD units), highest score first.
    """
    thr = float(threshold)
    if not np.isfinite(thr) or thr < 0:
        raise UsageError(f"threshold must be >= 0 SD (0 = automatic), got {threshold}")
    if int(max_picks) < 0:
        raise UsageError(f"max picks must be >= 0 (0 = no limit), got {max_picks}")
    z = score_map(mic, radius, box, polarity=polarity, f_low=f_low, f_high=f_high,
                  sigma=sigma, mask_radius=mask_radius)
    dmin = float(min_distance) or 2.0 * float(radius)
    floor = thr if thr > 0 else _NOISE_FLOOR
    peak = (z == ndimage.maximum_filter(z, size=3, mode="nearest")) & (z > floor)
    rc = np.argwhere(peak)
    rc = rc[fits_in(rc[:, ::-1] + 1.0, z.shape, int(box))]
    h = z[rc[:, 0], rc[:, 1]].astype(np.float64)
    keep = _greedy_nms(rc, h, dmin)
    rc, h = rc[keep], h[keep]
    if thr == 0:
        ok = h > auto_threshold(h)
        rc, h = rc[ok], h[ok]
    if int(max_picks) > 0:
        rc, h = rc[:int(max_picks)], h[:int(max_picks)]
    return rc[:, ::-1].astype(np.float64) + 1.0, h


def match_picks(picked_xy, true_xy, tol_px: float) -> tuple[float, float, np.ndarray]:
    """Match picks one-to-one to true centres (Hungarian assignment), within ``tol_px``.

    The assignment maximises the number of matches, then minimises their total distance.

    Args:
        picked_xy: ``(n, 2)`` picked coordinates.
        true_xy: ``(m, 2)`` true coordinates (the same convention).
        tol_px: largest distance of a match (px).

    Returns:
        ``(recall, precision, index)``: matched / m, matched / n (1.0 when the
        denominator and the other set are both empty, else 0.0 for an empty set), and
        int64 ``(n,)``: the index into ``true_xy`` each pick matched, -1 for none.
    """
    from scipy.optimize import linear_sum_assignment

    p = np.asarray(picked_xy, dtype=np.float64).reshape(-1, 2)
    t = np.asarray(true_xy, dtype=np.float64).reshape(-1, 2)
    tol = float(tol_px)
    index = np.full(p.shape[0], -1, dtype=np.int64)
    if p.shape[0] and t.shape[0]:
        d = np.hypot(p[:, None, 0] - t[None, :, 0], p[:, None, 1] - t[None, :, 1])
        big = 1.0 + tol * (min(p.shape[0], t.shape[0]) + 1)
        cost = np.where(d <= tol, d, big)
        i, j = linear_sum_assignment(cost)
        ok = cost[i, j] <= tol
        index[i[ok]] = j[ok]
    hits = int(np.sum(index >= 0))
    recall = hits / t.shape[0] if t.shape[0] else float(p.shape[0] == 0)
    precision = hits / p.shape[0] if p.shape[0] else float(t.shape[0] == 0)
    return float(recall), float(precision), index
