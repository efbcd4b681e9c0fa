"""Defocus and astigmatism estimation from a 2D power spectrum (:func:`estimate_defocus`).

The CTF model and its conventions are those of :mod:`emsh.kernels.ctf`, which also
re-exports :func:`estimate_defocus` and :class:`DefocusFit`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from emsh.errors import UsageError
from emsh.kernels.ctf import CTFParams, _ctf_values, wavelength_A

__all__ = ["DefocusFit", "estimate_defocus"]


@dataclass
class DefocusFit:
    """Result of :func:`estimate_defocus`.

    Attributes:
        params: fitted CTF parameters (U >= V, angle in [0, 180)).
        score: fraction of the spectrum's variance in the fitting band that the model
            (smooth background + smooth envelope x CTF^2) explains, 0..1.
        res_range_A: the resolution band used (low, high), Å.
    """

    params: CTFParams
    score: float
    res_range_A: tuple[float, float]


class _Model:
    """Least-squares fit ``d = bg(s) + env(s) * CTF^2`` with Legendre polynomials in s."""

    def __init__(self, d, s, theta, degree, base: CTFParams):
        self.d, self.s2 = d, s * s
        self.c2, self.sn2 = np.cos(2 * theta), np.sin(2 * theta)
        x = 2.0 * (s - s.min()) / max(s.max() - s.min(), 1e-12) - 1.0
        self.Q = np.polynomial.legendre.legvander(x, degree)
        self.tss = float(((d - d.mean()) ** 2).sum())
        self.base = base

    def ctf2(self, mean, a, b):
        dev = np.hypot(a, b)
        ang = 0.5 * np.degrees(np.arctan2(b, a))
        p = replace(self.base, defocus_u_A=mean + dev, defocus_v_A=mean - dev,
                    astig_angle_deg=ang, apix=1.0)
        out = np.empty((1, self.s2.size))
        _ctf_values(p.arrays(), self.s2, self.c2, self.sn2, 1.0, out)
        return out[0] ** 2

    def score(self, mean, a=0.0, b=0.0) -> float:
        X = np.hstack([self.Q, self.Q * self.ctf2(mean, a, b)[:, None]])
        xtd = X.T @ self.d
        try:
            beta = np.linalg.solve(X.T @ X, xtd)
        except np.linalg.LinAlgError:
            beta = np.linalg.lstsq(X, self.d, rcond=None)[0]
        rss = float(self.d @ self.d - beta @ xtd)
        return 1.0 - rss / max(self.tss, 1e-300)


def estimate_defocus(power_spectrum_2d, apix: float, kV: float = 300.0, cs: float = 2.7,
                     amp_contrast: float = 0.1, defocus_range_A=(5000.0, 50000.0),
                     res_range_A=(30.0, None), astig_max_A: float | None = None,
                     degree: int = 4) -> DefocusFit:
    """Fit defocus and astigmatism to a (periodogram-averaged) 2D power spectrum.

    The spectrum is divided by a smooth fit of its rotational average; in the band
    ``res_range_A`` it is modelled as ``bg(s) + env(s) CTF^2(s, th)`` with ``bg`` and
    ``env`` Legendre polynomials fitted by least squares for each candidate, so no
    separate background subtraction or envelope is needed. The mean defocus is
    searched on a grid (phase step pi/4 at the band's high end) against the
    rotational average, then the astigmatism on a grid over the full 2D half plane,
    then all three are refined (Nelder-Mead).

    Args:
        power_spectrum_2d: square ``(n, n)`` power spectrum, centred (origin at ``n//2``),
            e.g. from :func:`emsh.kernels.fourier.periodogram`.
        apix: pixel size (Å).
        kV, cs, amp_contrast: voltage (kV), Cs (mm), amplitude contrast (fraction).
        defocus_range_A: (min, max) mean defocus searched, Å.
        res_range_A: (low, high) resolution band in Å; high defaults to ``3 * apix``.
        astig_max_A: largest ``U - V`` searched (default 10 % of the top of the range).
        degree: polynomial degree of the background and envelope.
    """
    ps = np.asarray(power_spectrum_2d, dtype=np.float64)
    if ps.ndim != 2 or ps.shape[0] != ps.shape[1] or ps.shape[0] < 32:
        raise UsageError(f"estimate_defocus: expected a square 2D spectrum >= 32 px, got {ps.shape}")
    lo_d, hi_d = (float(v) for v in defocus_range_A)
    res_lo = float(res_range_A[0])
    res_hi = float(res_range_A[1]) if res_range_A[1] else 3.0 * apix
    if not (0 < lo_d < hi_d and res_lo > res_hi >= 2.0 * apix):
        raise UsageError(f"estimate_defocus: bad ranges (defocus {defocus_range_A}, "
                         f"resolution {res_lo}..{res_hi} Å with apix {apix})")
    n = ps.shape[0]
    s_lo, s_hi = 1.0 / res_lo, 1.0 / res_hi
    lam = float(wavelength_A(kV))
    base = CTFParams(lo_d, lo_d, 0.0, kV, cs, amp_contrast, 0.0, 0.0, 1.0)

    # rotational average, and a smooth (quadratic in s) fit of its logarithm to whiten
    idx = (np.arange(n) - n // 2) / (n * apix)
    ky, kx = np.meshgrid(idx, idx, indexing="ij")
    s = np.hypot(ky, kx)
    ring = np.rint(s * n * apix).astype(np.int64)
    prof = np.bincount(ring.ravel(), ps.ravel()) / np.maximum(np.bincount(ring.ravel()), 1)
    s_r = np.arange(prof.size) / (n * apix)
    band_r = (s_r >= s_lo) & (s_r <= s_hi) & (prof > 0)
    if band_r.sum() < 3 * (degree + 2):
        raise UsageError("estimate_defocus: too few frequencies in the band; widen res_range_A")
    coef = np.polyfit(s_r[band_r], np.log(prof[band_r]), 2)

    def white(v):
        return np.exp(np.polyval(coef, v))

    # stage 1: mean defocus from the rotational average
    m1 = _Model(prof[band_r] / white(s_r[band_r]), s_r[band_r], np.zeros(band_r.sum()), degree, base)
    step = 1.0 / (4.0 * lam * s_hi * s_hi)
    grid = np.arange(lo_d, hi_d + step, step)
    scores = np.array([m1.score(d) for d in grid])
    best = float(grid[int(np.argmax(scores))])
    r = minimize_scalar(lambda d: -m1.score(d), bounds=(max(lo_d, best - step), best + step),
                        method="bounded", options={"xatol": 1.0})
    mean = float(r.x)

    # stage 2: astigmatism on the half plane, then refine everything
    sel = (s >= s_lo) & (s <= s_hi) & ((ky > 0) | ((ky == 0) & (kx > 0)))
    m2 = _Model(ps[sel] / white(s[sel]), s[sel], np.arctan2(ky[sel], kx[sel]), degree, base)
    h = 0.5 * (astig_max_A if astig_max_A is not None else 0.1 * hi_d)
    ab = np.arange(-h, h + step / 2, step / 2) if h > 0 else np.zeros(1)
    cands = [(m2.score(mean, a, b), mean, a, b) for a in ab for b in ab if np.hypot(a, b) <= h]
    cands.sort(key=lambda c: -c[0])
    fits = []
    for _, dm, a, b in cands[:3]:
        simplex = np.array([[dm, a, b], [dm + step / 4, a, b], [dm, a + step / 4, b],
                            [dm, a, b + step / 4]])
        fits.append(minimize(lambda p: -m2.score(*p), [dm, a, b], method="Nelder-Mead",
                             options={"initial_simplex": simplex, "xatol": 1.0, "fatol": 1e-7}))
    f = min(fits, key=lambda r: r.fun)
    mean, a, b = (float(v) for v in f.x)
    dev = float(np.hypot(a, b))
    ang = float(np.mod(0.5 * np.degrees(np.arctan2(b, a)), 180.0))
    params = CTFParams(mean + dev, mean - dev, ang, kV, cs, amp_contrast, 0.0, 0.0, apix)
    return DefocusFit(params, float(-f.fun), (res_lo, res_hi))
