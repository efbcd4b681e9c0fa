"""Benchmark of the projection and reconstruction kernels (emsh.kernels.project/reconstruct).

Cases: box n = 64 and n = 128, padding 2 (padded grid np = 2n), random orientations,
a random volume. Reported per case:

* fourier_projection: ``FourierProjector.project`` (central slices with the 4-tap
  Kaiser-Bessel kernel + one batched inverse 2D FFT), projections per second;
  the projector's table of the padded spectrum is built before timing.
* pj3q (n = 64 only): SPIDER's real-space ``PJ 3Q`` (``project_real_trilinear``),
  projections per second.
* insertion: ``FourierReconstructor.insert`` (SPIDER BP 32F gridding: image FFTs on
  the padded grid + 4x4x4 window taps), images per second; ``finish``: the time of
  one ``finish()`` (division by the weights, inverse 3D FFT, window correction).

Fractions of this machine's limits (1 = the kernel runs as fast as the limit alone):

* ``fft_fraction`` = (time the kernel's own FFTs take alone, timed through
  emsh.fft on the same batch shape) / (kernel time). Projection and PJ 3Q: the
  inverse 2D real FFT of the (k, n, n//2+1) slices that ``project`` runs (PJ 3Q
  needs none; the ratio says how it compares with a Fourier projector's FFT
  bill). Insertion: the forward 2D real FFTs of the zero-padded (batch, np, np)
  images, in ``insert``'s batch size. Finish: one inverse 3D real FFT of np^3.
* ``gather_fraction`` (projection) = (time of ``numpy.take`` of complex64 values
  from the padded half spectrum at the same taps: 64 per slice sample, the same
  count and access pattern) / (kernel time).
* ``scatter_fraction`` (insertion) = (time of ``numpy.add.at`` of one float32
  value per tap into a float32 array of the padded half-grid size, at the same
  taps: 64 per inserted plane point, same count and access pattern) / (kernel
  time). The kernel adds three values per tap (real, imaginary, weight).
  Both baselines are timed on a slice of the taps and scaled per tap; index
  construction is not timed.

Timings are best-of-N because the machine may be shared; medians are given too (the
FFT baselines, short and sensitive to a busy core, take the best of 10).
The FFT plans come from the user's emsh cache (planned once per machine).
"""

from __future__ import annotations

import time

import numpy as np

from bench._timing import best_of

from emsh import fft
from emsh.geom.euler import doc_angles_to_matrix
from emsh.kernels.project import FourierProjector, project_real_trilinear
from emsh.kernels.reconstruct import FourierReconstructor

CASES = {64: dict(project=200, insert=120, pj3q=16), 128: dict(project=100, insert=40)}
REPEATS = 3
FFT_REPEATS = 10              # the FFT baselines are short: more repeats, same min
_BASELINE_TAPS = 4_000_000      # taps timed for the gather/scatter baselines


def _best(fn, repeats: int = REPEATS) -> tuple[float, float]:
    return best_of(fn, repeats, warm=True)


def _angles(rng, k: int) -> np.ndarray:
    return np.column_stack([rng.uniform(0, 360, k), rng.uniform(0, 180, k),
                            rng.uniform(0, 360, k)])


def _taps(pts: np.ndarray, first_offset: float, np_: int) -> np.ndarray:
    """Rows of the 4x4x4 taps around points ``(m, 3)`` = (x, y, z) in grid units, on an
    ``(np, np, np//2+1)`` half grid (points mirrored to x >= 0, z and y wrapped)."""
    pts = np.where(pts[:, :1] < 0, -pts, pts)
    first = np.floor(pts - first_offset).astype(np.int64) + 1
    t = np.arange(4)
    nh = np_ // 2 + 1
    x = np.minimum(np.abs(first[:, 0, None] + t), np_ // 2)
    y = (first[:, 1, None] + t) % np_
    z = (first[:, 2, None] + t) % np_
    rows = (z[:, :, None, None] * np_ + y[:, None, :, None]) * nh + x[:, None, None, :]
    return rows.reshape(-1)


def _plane_points(rot: np.ndarray, kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
    return (kx[:, None] * rot[:, None, 0] + ky[:, None] * rot[:, None, 1]).reshape(-1, 3)


def _per_tap(fn_of_rows, rows: np.ndarray) -> float:
    """Seconds per tap of ``fn_of_rows`` on (at most) the first _BASELINE_TAPS rows."""
    sub = rows[:_BASELINE_TAPS]
    best, _ = _best(lambda: fn_of_rows(sub))
    return best / sub.size


def _projection(n: int, vol: np.ndarray, k: int, rng) -> dict:
    ang = _angles(rng, k)
    fp = FourierProjector(vol)
    best, med = _best(lambda: fp.project(ang))
    slices = fp.slices(ang)
    t_fft, _ = _best(lambda: fft.irfftn(slices, (n, n)), FFT_REPEATS)
    # gather baseline: the 64 taps of every in-circle slice sample
    ky, kx = np.fft.fftfreq(n)[:, None], np.fft.rfftfreq(n)[None, :]
    inside = (kx ** 2 + ky ** 2) < 0.25
    kxs, kys = np.broadcast_to(kx, inside.shape)[inside], np.broadcast_to(ky, inside.shape)[inside]
    rot = doc_angles_to_matrix(ang)
    rows = _taps(_plane_points(rot[:8], kxs, kys) * fp.np_, 2.0, fp.np_)
    flat = fp.spectrum.reshape(-1)
    taps = 64 * inside.sum() * k
    t_gather = _per_tap(lambda r: flat.take(r), rows) * taps
    return {"projections": k, "per_s": round(k / best, 1), "per_s_median": round(k / med, 1),
            "fft_fraction": round(t_fft / best, 3), "gather_fraction": round(t_gather / best, 3),
            "taps_per_s_M": round(taps / best / 1e6, 1),
            "baseline_gather_taps_per_s_M": round(taps / t_gather / 1e6, 1)}


def _pj3q(n: int, vol: np.ndarray, k: int, rng) -> dict:
    ang = _angles(rng, k)
    best, med = _best(lambda: project_real_trilinear(vol, ang), 2)
    spec = np.zeros((k, n, n // 2 + 1), np.complex64)
    t_fft, _ = _best(lambda: fft.irfftn(spec, (n, n)), FFT_REPEATS)
    return {"projections": k, "per_s": round(k / best, 1), "per_s_median": round(k / med, 1),
            "fft_fraction": round(t_fft / best, 3)}


def _insertion(n: int, vol: np.ndarray, k: int, rng) -> dict:
    ang = _angles(rng, k)
    imgs = FourierProjector(vol).project(ang)
    rec = FourierReconstructor(n)
    np_ = rec.np_
    best, med = _best(lambda: FourierReconstructor(n).insert(imgs, ang))
    # the FFTs insert() runs: zero-padded images in its own batch size
    m = rec._plane[0].size
    batch = min(k, max(1, rec._entries_per_pass() // (64 * m)))
    padded = np.zeros((batch, np_, np_), np.float32)
    t_one, _ = _best(lambda: fft.rfftn(padded, 2), FFT_REPEATS)
    t_fft = t_one * k / batch
    # scatter baseline: the 64 taps of every inserted plane point
    ii, jj = rec._plane
    rot = doc_angles_to_matrix(ang)
    rows = _taps(_plane_points(rot[:8], ii.astype(float), jj.astype(float)), 1.8, np_)
    grid = np.zeros(np_ * np_ * (np_ // 2 + 1), np.float32)
    ones = np.ones(min(rows.size, _BASELINE_TAPS), np.float32)
    taps = 64 * m * k
    t_scatter = _per_tap(lambda r: np.add.at(grid, r, ones[:r.size]), rows) * taps
    rec.insert(imgs, ang)
    t_fin, t_fin_med = _best(rec.finish)
    big = np.zeros((np_, np_, np_ // 2 + 1), np.complex64)
    t_fft3, _ = _best(lambda: fft.irfftn(big, (np_, np_, np_)), FFT_REPEATS)
    return {"images": k, "per_s": round(k / best, 1), "per_s_median": round(k / med, 1),
            "fft_fraction": round(t_fft / best, 3), "scatter_fraction": round(t_scatter / best, 3),
            "taps_per_s_M": round(taps / best / 1e6, 1),
            "baseline_scatter_taps_per_s_M": round(taps / t_scatter / 1e6, 1),
            "fft_batch": [batch, np_, np_],
            "finish_s": round(t_fin, 4), "finish_s_median": round(t_fin_med, 4),
            "finish_fft_fraction": round(t_fft3 / t_fin, 3)}


def run() -> dict:
    """Time every case; returns a JSON-ready dict (see the module docstring)."""
    rng = np.random.default_rng(5)
    out: dict = {"threads_fft": fft.threads(), "repeats": REPEATS, "pad": 2, "cases": {}}
    for n, sizes in CASES.items():
        vol = rng.standard_normal((n, n, n)).astype(np.float32)
        case = {"fourier_projection": _projection(n, vol, sizes["project"], rng)}
        if "pj3q" in sizes:
            case["pj3q"] = _pj3q(n, vol, sizes["pj3q"], rng)
        case["insertion"] = _insertion(n, vol, sizes["insert"], rng)
        out["cases"][f"n{n}"] = case
        fft.clear_cache()                                 # release this size's plan buffers
    out["summary"] = {
        name: {"project_per_s": c["fourier_projection"]["per_s"],
               "insert_per_s": c["insertion"]["per_s"], "finish_s": c["insertion"]["finish_s"],
               **({"pj3q_per_s": c["pj3q"]["per_s"]} if "pj3q" in c else {})}
        for name, c in out["cases"].items()}
    return out
