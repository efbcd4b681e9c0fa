"""Benchmark of emsh.fft: FFTW plans against scipy.fft and numpy.fft, per shape.

For each shape (particle stacks and volumes) and each backend, the forward
real-to-complex and inverse complex-to-real transforms are timed through the
public emsh.fft API (so the layer's own copies and normalisation are counted),
interleaved: each repeat runs every backend once, in turn, so all see the same
background load. Reported per case: median and min time, GFLOP/s by the usual
convention (2.5 N log2 N flops per complex transform of N points, half of that
for a real one), the FFTW planning time (fresh cache, FFTW_MEASURE), the time
ratio FFTW/scipy (< 1: FFTW faster), the backend ``auto`` picks, and the
accuracy of each backend against a float64 numpy reference.

The cache folder is a fresh temporary one, so planning and auto choices are
measured from zero every run and the user's cache is left alone.
"""

from __future__ import annotations

import math
import os
import tempfile
import time

import numpy as np

from emsh import fft

CASES = [((500, 76, 76), 2), ((500, 128, 128), 2), ((64, 64, 64), 3), ((128, 128, 128), 3)]
BACKENDS = ("fftw", "scipy", "numpy")
REPEATS = 15


def _gflops(batch: int, n: int, seconds: float) -> float:
    return round(batch * 0.5 * 2.5 * n * math.log2(n) / seconds / 1e9, 2)


def _stats(times: list[float], batch: int, n: int) -> dict:
    med, best = float(np.median(times)), min(times)
    return {"median_ms": round(med * 1e3, 3), "min_ms": round(best * 1e3, 3),
            "gflops_median": _gflops(batch, n, med), "gflops_best": _gflops(batch, n, best)}


def _case(shape: tuple[int, ...], ndim: int, repeats: int, rng: np.random.Generator) -> dict:
    real = shape[-ndim:]
    n = math.prod(real)
    batch = math.prod(shape) // n
    ax = tuple(range(-ndim, 0))
    a = rng.standard_normal(shape).astype(np.float32)
    ref = np.fft.rfftn(a.astype(np.float64), axes=ax)
    F = ref.astype(np.complex64)

    def forward():
        return fft.rfftn(a, ndim)

    def inverse():
        return fft.irfftn(F, real, ndim)

    errors, plan_s = {}, {}
    for backend in BACKENDS:                       # untimed first calls (FFTW plans here)
        os.environ["EMSH_FFT"] = backend
        t0 = time.perf_counter()
        out = forward()
        first_fwd = time.perf_counter() - t0
        t0 = time.perf_counter()
        back = inverse()
        first_inv = time.perf_counter() - t0
        errors[backend] = {
            "forward_rel": float(np.abs(out - ref).max() / np.abs(ref).max()),
            "round_trip_abs": float(np.abs(back - a).max())}
        if backend == "fftw":
            plan_s = {"forward_first_call_s": round(first_fwd, 3),
                      "inverse_first_call_s": round(first_inv, 3)}
        del out, back

    times = {(b, d): [] for b in BACKENDS for d in ("forward", "inverse")}
    for rep in range(repeats):
        order = BACKENDS[rep % 3:] + BACKENDS[:rep % 3]
        for backend in order:
            os.environ["EMSH_FFT"] = backend
            for direction, call in (("forward", forward), ("inverse", inverse)):
                t0 = time.perf_counter()
                call()
                times[backend, direction].append(time.perf_counter() - t0)

    result = {"shape": list(shape), "ndim": ndim, "batch": batch, "points": n}
    for direction in ("forward", "inverse"):
        result[direction] = {b: _stats(times[b, direction], batch, n) for b in BACKENDS}
        fw, sp = result[direction]["fftw"], result[direction]["scipy"]
        result[direction]["fftw_over_scipy_time"] = {
            "median": round(fw["median_ms"] / sp["median_ms"], 3),
            "min": round(fw["min_ms"] / sp["min_ms"], 3)}
        result[direction]["fastest_median"] = min(
            BACKENDS, key=lambda b: result[direction][b]["median_ms"])
    result["fftw_planning"] = plan_s
    result["accuracy"] = errors

    os.environ["EMSH_FFT"] = "auto"                # trials after timing: they may drop plans
    auto = {}
    for direction, kind in (("forward", "rfft"), ("inverse", "irfft")):
        choice = fft.choose_backend(shape, ndim, kind)
        key = f"{kind} {'x'.join(map(str, shape))} nd{ndim} t{fft.threads()}"
        auto[direction] = {"choice": choice, "trial": fft.plan_info()["choices"].get(key)}
    result["auto"] = auto
    return result


def run(repeats: int = REPEATS) -> dict:
    """Time every case; returns a JSON-ready dict (see the module docstring)."""
    saved = {k: os.environ.get(k) for k in ("EMSH_FFT", "EMSH_CACHE_DIR")}
    rng = np.random.default_rng(7)
    out: dict = {"threads": fft.threads(), "repeats": repeats,
                 "flops_convention": "2.5*N*log2(N) per complex transform, half for real",
                 "cases": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="emsh_bench_fft_") as cache:
            os.environ["EMSH_CACHE_DIR"] = cache
            fft.clear_cache(wisdom=True)
            for shape, ndim in CASES:
                name = "x".join(map(str, shape)) + ("_stack" if ndim == 2 else "_volume")
                out["cases"][name] = _case(shape, ndim, repeats, rng)
                fft.clear_cache()                   # release this case's plan buffers
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        fft.clear_cache()
    out["summary"] = {
        name: {d: {"fftw/scipy median": c[d]["fftw_over_scipy_time"]["median"],
                   "fastest": c[d]["fastest_median"], "auto": c["auto"][d]["choice"]}
               for d in ("forward", "inverse")}
        for name, c in out["cases"].items()}
    return out
