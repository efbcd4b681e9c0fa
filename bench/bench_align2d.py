"""Benchmark of the 2-D multi-reference alignment kernel (emsh.kernels.align2d).

Case: 200 images x 50 references, 64x64 px, rings 2..28 (27 rings, maxrin 256),
shifts -3..3 step 1 (49 centres), mirror on. Reported:

* throughput: image x reference x shift correlations per second (each one is a
  full rotational correlation, straight and mirrored), best and median of repeats
  with the references prepared once; the time to prepare the references; the
  first (cold) call, which builds the sampling table and FFT plans.
* stages: the time of each step of the search for the whole case (polar
  resampling, ring FFTs with their re-layout, band GEMMs, inverse angular FFTs, peak search), timed step by step on one chunk and
  scaled; the rest of the total is per-image refinement, normalisation and the
  interference between BLAS and FFTW threads when the steps follow each other.
* machine rates measured here: complex64 GEMM (numpy matmul, 1024^3 and the
  kernel's own band shapes) and batched inverse real FFT of length 256 through
  emsh.fft (GFLOP/s by bench_fft's convention, 0.5*2.5*N*log2 N per real transform).
* fractions: the kernel's GEMM flops per second of total kernel time over the
  GEMM rate, likewise for its FFT flops, and the bound: the time GEMM plus FFT
  would need at the machine rates over the kernel's time.
* translation: resampling every image at the 49 centres with the cached sparse
  bilinear table against shifting in Fourier space (one rfft, 49 phase ramps and
  inverse FFTs) and resampling once; the kernel uses the table.

Timings are best-of-N because the machine may be shared; medians are given too.
"""

from __future__ import annotations

import math
import time

import numpy as np

from bench._timing import best_of

from emsh import fft
from emsh.kernels import align2d as A
from emsh.kernels import polar as P

CASE = dict(n_images=200, n_refs=50, size=64, first_ring=2, last_ring=28, shift_range=3,
            shift_step=1, mirror=True)
REPEATS = 5


_best = best_of


def _data(rng):
    n = CASE["size"]
    y, x = np.mgrid[:n, :n] - n // 2
    def img():
        out = np.zeros((n, n))
        for _ in range(8):
            cx, cy = rng.uniform(-0.28 * n, 0.28 * n, 2)
            out += np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * rng.uniform(2, 4) ** 2))
        return out
    refs = np.stack([img() for _ in range(CASE["n_refs"])]).astype(np.float32)
    imgs = refs[rng.integers(0, CASE["n_refs"], CASE["n_images"])]
    imgs = imgs + rng.standard_normal(imgs.shape).astype(np.float32) * imgs.std()
    return imgs.astype(np.float32), refs


def _flops(table, rows: int, cols: int) -> tuple[float, float]:
    gemm = sum(8.0 * rows * cols * (m1 - m0) * (table.n_rings - c0)
               for m0, m1, c0 in table.bands())
    M = table.maxrin
    return gemm, rows * cols * 0.5 * 2.5 * M * math.log2(M)


def _stages(imgs, prep, shifts, nb, repeats):
    """Per-step times of the search on one chunk of ``nb`` images, scaled to the case."""
    t = prep.table
    S, M, B = len(shifts), t.maxrin, len(imgs)
    flat = imgs[:nb].reshape(nb, -1)
    out = {}
    y = P.polar_columns(flat, t, prep.shape, shifts)
    out["polar_resample"] = _best(lambda: P.polar_columns(flat, t, prep.shape, shifts), repeats)[0]
    yt = np.ascontiguousarray(y.transpose(0, 2, 1))
    out["ring_fft_and_layout"] = _best(lambda: P.gemm_coefficients(yt, t), repeats)[0]
    coef = P.gemm_coefficients(yt, t)
    out["band_gemm"] = _best(lambda: P.band_gemm(coef, prep.gemm, t.bands()), repeats)[0]
    spec = P.band_gemm(coef, prep.gemm, t.bands())
    out["angular_irfft"] = _best(lambda: fft.irfftn(spec.transpose(1, 2, 0), (M,), 1),
                                 repeats)[0]
    cc = fft.irfftn(spec.transpose(1, 2, 0), (M,), 1)

    def peak():
        j = np.argmax(cc, axis=-1)
        return np.take_along_axis(cc, j[..., None], -1)
    out["peak_search"] = _best(peak, repeats)[0]
    scale = B / nb
    return {k: round(v * scale, 4) for k, v in out.items()}, spec


def _machine_rates(spec_shape, coef_like, gemm_like, table, repeats):
    """GFLOP/s of complex64 GEMM (square, and the kernel's band shapes as one threaded
    numpy matmul per band) and of a contiguous batch of length-256 inverse real FFTs."""
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((1024, 1024)) + 1j * rng.standard_normal((1024, 1024))).astype(
        np.complex64)
    a @ a
    t_sq, _ = _best(lambda: a @ a, repeats)
    spec = np.empty(spec_shape, np.complex64)

    def bands():
        for m0, m1, c0 in table.bands():
            np.matmul(coef_like[m0:m1, :, c0:], gemm_like[m0:m1, c0:], out=spec[m0:m1])
    bands()
    t_b, _ = _best(bands, repeats)
    rows, cols = spec_shape[1], spec_shape[2]
    g_flops, f_flops = _flops(table, rows, cols)
    x = np.ascontiguousarray(spec.transpose(1, 2, 0)).reshape(-1, table.nfreq)
    fft.irfftn(x, (table.maxrin,), 1)
    t_f, _ = _best(lambda: fft.irfftn(x, (table.maxrin,), 1), repeats)
    return {"cgemm_1024_gflops": round(8 * 1024**3 / t_sq / 1e9, 1),
            "cgemm_band_shapes_direct_gflops": round(g_flops / t_b / 1e9, 1),
            "irfft256_gflops": round(f_flops / t_f / 1e9, 2)}


def _translation(imgs, table, shifts, nb, repeats):
    """Table resampling at every centre vs Fourier shifts + one-centre resampling (ms/case)."""
    n = imgs.shape[-1]
    b = imgs[:nb]
    flat = b.reshape(nb, -1)
    t_table, _ = _best(lambda: P.polar_columns(flat, table, (n, n), shifts), repeats)
    k = np.fft.fftfreq(n)[:, None], np.fft.rfftfreq(n)[None, :]
    ramps = np.exp(2j * np.pi * (k[1][None] * shifts[:, 0, None, None]
                                 + k[0][None] * shifts[:, 1, None, None])).astype(np.complex64)
    P.sampling_matrix(table, (n, n))

    def fourier():
        F = fft.rfftn(b)                                           # (nb, n, n/2+1)
        moved = fft.irfftn(F[None] * ramps[:, None], (n, n))       # (S, nb, n, n)
        return P.polar_columns(moved.reshape(-1, n * n), table, (n, n))
    fourier()
    t_fourier, _ = _best(fourier, repeats)
    scale = len(imgs) / nb * 1e3
    return {"sparse_table_ms": round(t_table * scale, 1),
            "fourier_shift_ms": round(t_fourier * scale, 1),
            "chosen": "sparse_table"}


def run(repeats: int = REPEATS) -> dict:
    """Time the case; returns a JSON-ready dict (see the module docstring)."""
    rng = np.random.default_rng(11)
    imgs, refs = _data(rng)
    c = CASE
    table = P.RingTable(c["first_ring"], c["last_ring"])
    kw = dict(first_ring=c["first_ring"], last_ring=c["last_ring"],
              shift_range=c["shift_range"], shift_step=c["shift_step"], mirror=c["mirror"])
    t0 = time.perf_counter()
    prep = A.prepare_references(refs, table, c["mirror"])
    A.multiref_align(imgs, prep, **kw)
    cold = time.perf_counter() - t0
    t_prep, _ = _best(lambda: A.prepare_references(refs, table, c["mirror"]), repeats)
    t_best, t_med = _best(lambda: A.multiref_align(imgs, prep, **kw), repeats)

    shifts, _, _ = A.shift_grid(c["shift_range"], c["shift_step"])
    S = len(shifts)
    nb, _ = A._chunking(prep, S, None)
    stages, spec = _stages(imgs, prep, shifts, nb, repeats)
    cols = prep.gemm.shape[2]
    coef = P.gemm_coefficients(np.ascontiguousarray(
        P.polar_columns(imgs[:nb].reshape(nb, -1), table, prep.shape, shifts)
        .transpose(0, 2, 1)), table)
    rates = _machine_rates(spec.shape, coef, prep.gemm, table, repeats)
    g_flops, f_flops = _flops(table, S * c["n_images"], cols)
    n_corr = c["n_images"] * c["n_refs"] * S
    gemm_rate = rates["cgemm_1024_gflops"] * 1e9
    fft_rate = rates["irfft256_gflops"] * 1e9
    return {
        "case": dict(c, shifts=S, rings=table.n_rings, maxrin=table.maxrin,
                     ring_samples=table.total),
        "threads": fft.threads(), "repeats": repeats, "chunk_images": nb,
        "cold_first_call_s": round(cold, 3),
        "prepare_refs_s": round(t_prep, 4),
        "align_s": {"best": round(t_best, 4), "median": round(t_med, 4)},
        "correlations_per_s": {"best": round(n_corr / t_best), "median": round(n_corr / t_med)},
        "rotational_ccfs_per_s_incl_mirror": round(2 * n_corr / t_best),
        "kernel_gflops": {"gemm": round(g_flops / t_best / 1e9, 2),
                          "irfft": round(f_flops / t_best / 1e9, 2)},
        "stages_s": stages,
        "stage_gflops": {"band_gemm": round(g_flops / stages["band_gemm"] / 1e9, 1),
                         "angular_irfft": round(f_flops / stages["angular_irfft"] / 1e9, 2)},
        "machine": rates,
        "fraction_of_gemm_rate": round(g_flops / t_best / gemm_rate, 3),
        "fraction_of_fft_rate": round(f_flops / t_best / fft_rate, 3),
        "gemm_plus_fft_bound_fraction": round((g_flops / gemm_rate + f_flops / fft_rate)
                                              / t_best, 3),
        "translation": _translation(imgs, table, shifts, nb, repeats),
    }
