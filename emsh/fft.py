"""Batched FFTs for emsh kernels: one API, the fastest backend per shape.

Every function transforms the trailing ``ndim`` axes (1, 2 or 3) of its input and
treats leading axes as a batch, so a stack ``(n, ny, nx)`` goes through one call.
Real input is float32 and gives complex64 half spectra (last axis ``nx//2 + 1``),
numpy's sign convention: forward ``exp(-2*pi*i*k*x/N)``, unnormalised; inverse
divides by N. (SPIDER's forward FT is the complex conjugate of this; see
``emsh.io.spider`` for Fourier files.) Results agree across backends to float32
rounding; inputs are never modified.

Backends (``EMSH_FFT``, see :mod:`emsh.config`): ``fftw`` runs cached
``pyfftw.FFTW`` plans made with FFTW_MEASURE (planning bounded by
``EMSH_FFT_PLAN_TIMELIMIT``; wisdom kept in the cache folder so a shape is
measured once per machine); ``scipy`` is ``scipy.fft`` with ``workers``
threads; ``numpy`` is ``numpy.fft`` (one thread, for reference). ``auto`` (the
default) times FFTW against scipy.fft once per transform key (kind, full array
shape, ndim, threads), keeps the faster and remembers the choice on disk
(wisdom and choices files: :mod:`emsh.fft_store`). FFTW is slow on sizes with
a large prime factor (76 = 4*19); :func:`good_size` gives padded sizes that are
fast everywhere.

Centred helpers put the zero frequency at index ``n//2``, the emsh image centre.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

import numpy as np
import scipy.fft as _sfft

from emsh import config
from emsh.errors import UsageError
from emsh.fft_store import _Disk, _key_text

__all__ = [
    "rfftn", "irfftn", "fftn", "ifftn", "centered_fftn", "centered_ifftn",
    "threads", "good_size", "choose_backend", "plan_info", "clear_cache",
]

_log = logging.getLogger(__name__)

#: Transform kinds: name -> (input dtype, output dtype, FFTW direction).
_KINDS = {
    "rfft": (np.float32, np.complex64, "FFTW_FORWARD"),
    "irfft": (np.complex64, np.float32, "FFTW_BACKWARD"),
    "fft": (np.complex64, np.complex64, "FFTW_FORWARD"),
    "ifft": (np.complex64, np.complex64, "FFTW_BACKWARD"),
}
_MAX_PLANS = 64
_AUTO_MIN_ELEMENTS = 4096      # smaller transforms go to scipy.fft without a trial
_TRIAL_BUDGET_S = 0.4          # timing budget per auto decision, after the first runs


def threads() -> int:
    """Threads per FFT: ``EMSH_FFT_THREADS`` or the CPUs this process may use."""
    return config.fft_threads()


def _axes(ndim: int) -> tuple[int, ...]:
    if ndim not in (1, 2, 3):
        raise UsageError(f"FFT ndim={ndim!r}: expected 1, 2 or 3 transformed axes")
    return tuple(range(-ndim, 0))


def _as(a, dtype, ndim: int, name: str) -> np.ndarray:
    _axes(ndim)
    if dtype is np.float32 and np.iscomplexobj(a):
        raise UsageError(f"{name}: expected real input, got {np.asarray(a).dtype}; "
                         "use fftn for complex data")
    a = np.asarray(a, dtype=dtype)
    if a.ndim < ndim:
        raise UsageError(f"{name}: a {ndim}-D transform needs at least {ndim} axes; "
                         f"got an array of shape {a.shape}")
    if a.size == 0:
        raise UsageError(f"{name}: empty array of shape {a.shape}; nothing to transform")
    return a


def good_size(n: int, *, primes: tuple[int, ...] = (2, 3, 5), even: bool = False) -> int:
    """Smallest size >= ``n`` whose prime factors all lie in ``primes``.

    Use it to pad boxes before transforms (76 -> 80). FFTW and pocketfft are fast
    on 2, 3, 5; add 7 with ``primes=(2, 3, 5, 7)`` when a closer size matters more.

    Args:
        n: wanted size (>= 1).
        primes: allowed prime factors.
        even: also require an even size (keeps the centre n//2 symmetric).
    """
    n = int(n)
    if n < 1:
        raise UsageError(f"good_size: n={n}; expected a size >= 1")
    m = n
    while True:
        if not (even and m % 2):
            rest = m
            for p in primes:
                while rest % p == 0:
                    rest //= p
            if rest == 1:
                return m
        m += 1


# --------------------------------------------------------------------------- public transforms

def rfftn(a: np.ndarray, ndim: int = 2) -> np.ndarray:
    """Real-to-complex FFT over the last ``ndim`` axes; float32 in, complex64 half spectrum out."""
    a = _as(a, np.float32, ndim, "rfftn")
    return _transform("rfft", a, ndim, a.shape)


def irfftn(A: np.ndarray, shape: tuple[int, ...], ndim: int | None = None) -> np.ndarray:
    """Inverse of :func:`rfftn` (normalised by 1/N); complex64 in, float32 out.

    Args:
        A: half spectra, last axis ``shape[-1]//2 + 1``.
        shape: real shape of the transformed axes (its last ``ndim`` entries are used).
        ndim: transformed axes; default ``len(shape)``.
    """
    shape = tuple(int(s) for s in shape)
    nd = len(shape) if ndim is None else ndim
    if len(shape) < nd or min(shape, default=0) < 1:
        raise UsageError(f"irfftn: shape={shape} does not give {nd} positive sizes")
    A = _as(A, np.complex64, nd, "irfftn")
    real = shape[len(shape) - nd:]
    half = real[:-1] + (real[-1] // 2 + 1,)
    if A.shape[A.ndim - nd:] != half:
        raise UsageError(f"irfftn: half spectra of shape {A.shape[A.ndim - nd:]} do not match "
                         f"real shape {real} (expected {half})")
    return _transform("irfft", A, nd, A.shape[:A.ndim - nd] + real)


def fftn(a: np.ndarray, ndim: int = 2) -> np.ndarray:
    """Complex FFT over the last ``ndim`` axes; complex64 out."""
    a = _as(a, np.complex64, ndim, "fftn")
    return _transform("fft", a, ndim, a.shape)


def ifftn(A: np.ndarray, ndim: int = 2) -> np.ndarray:
    """Inverse complex FFT over the last ``ndim`` axes (normalised by 1/N)."""
    A = _as(A, np.complex64, ndim, "ifftn")
    return _transform("ifft", A, ndim, A.shape)


def centered_fftn(a: np.ndarray, ndim: int = 2) -> np.ndarray:
    """FFT with the origin at index ``n//2`` in both real and Fourier space."""
    ax = _axes(ndim)
    return np.fft.fftshift(fftn(np.fft.ifftshift(a, axes=ax), ndim), axes=ax)


def centered_ifftn(A: np.ndarray, ndim: int = 2) -> np.ndarray:
    """Inverse of :func:`centered_fftn`."""
    ax = _axes(ndim)
    return np.fft.fftshift(ifftn(np.fft.ifftshift(A, axes=ax), ndim), axes=ax)


def choose_backend(shape: tuple[int, ...], ndim: int = 2, kind: str = "rfft") -> str:
    """Backend that a transform of this full array shape would use; decides it if needed.

    Args:
        shape: full real-space (or complex, for ``fft``/``ifft``) shape, batch axes included.
        ndim: transformed trailing axes.
        kind: ``rfft``, ``irfft``, ``fft`` or ``ifft``.
    """
    if kind not in _KINDS:
        raise UsageError(f"choose_backend: kind={kind!r}; expected one of {', '.join(_KINDS)}")
    _axes(ndim)
    shape = tuple(int(s) for s in shape)
    if len(shape) < ndim or min(shape, default=0) < 1:
        raise UsageError(f"choose_backend: shape {shape} has no {ndim} positive trailing sizes")
    return _backend_for(kind, shape, ndim, threads())


# --------------------------------------------------------------------------- backends

def _spectrum_shape(kind: str, full: tuple[int, ...]) -> tuple[int, ...]:
    return full[:-1] + (full[-1] // 2 + 1,) if kind in ("rfft", "irfft") else full


def _run_library(lib, kind, a, ndim, full, **workers):
    """numpy.fft or scipy.fft (pocketfft): same names, same conventions."""
    ax = _axes(ndim)
    if kind == "irfft":
        out = lib.irfftn(a, s=full[len(full) - ndim:], axes=ax, **workers)
    else:
        out = getattr(lib, kind + "n")(a, axes=ax, **workers)
    return out.astype(_KINDS[kind][1], copy=False)


def _run_numpy(kind, a, ndim, full, nthreads):
    return _run_library(np.fft, kind, a, ndim, full)


def _run_scipy(kind, a, ndim, full, nthreads):
    return _run_library(_sfft, kind, a, ndim, full, workers=nthreads)


_pyfftw_mod = None


def _pyfftw():
    """The pyfftw module, or None when it cannot be imported."""
    global _pyfftw_mod
    if _pyfftw_mod is None:
        try:
            import pyfftw
        except ImportError:
            _pyfftw_mod = False
        else:
            _pyfftw_mod = pyfftw
    return _pyfftw_mod or None


class _Plan:
    """One FFTW plan with its aligned scratch input; runs under its own lock."""

    __slots__ = ("fftw", "inbuf", "out_shape", "out_dtype", "scale", "lock", "nbytes",
                 "plan_s", "calls")

    def __init__(self, kind, full, ndim, nthreads):
        pyfftw = _pyfftw()
        in_dt, self.out_dtype, direction = _KINDS[kind]
        spec = _spectrum_shape(kind, full)
        in_shape, self.out_shape = (spec, full) if kind == "irfft" else (full, spec)
        self.inbuf = pyfftw.empty_aligned(in_shape, dtype=in_dt)
        outbuf = pyfftw.empty_aligned(self.out_shape, dtype=self.out_dtype)
        inverse = direction == "FFTW_BACKWARD"
        flags = ("FFTW_MEASURE", "FFTW_DESTROY_INPUT") if inverse else ("FFTW_MEASURE",)
        t0 = time.perf_counter()
        # MEASURE overwrites both buffers while planning; they hold no data yet.
        self.fftw = pyfftw.FFTW(self.inbuf, outbuf, axes=_axes(ndim), direction=direction,
                                flags=flags, threads=nthreads,
                                planning_timelimit=config.fft_plan_timelimit())
        self.plan_s = time.perf_counter() - t0
        self.scale = 1.0 / float(np.prod(full[len(full) - ndim:])) if inverse else None
        self.lock = threading.Lock()
        self.nbytes = self.inbuf.nbytes + outbuf.nbytes
        self.calls = 0

    def __call__(self, a: np.ndarray) -> np.ndarray:
        out = _pyfftw().empty_aligned(self.out_shape, dtype=self.out_dtype)
        with self.lock:
            if self.scale is not None:          # inverse: normalise while copying (FFTW does not)
                np.multiply(a, np.float32(self.scale), out=self.inbuf)
                src = self.inbuf                # and FFTW may destroy its input
            elif a.flags.c_contiguous and a.ctypes.data % self.fftw.input_alignment == 0:
                src = a                         # out-of-place forward plans keep their input
            else:
                np.copyto(self.inbuf, a)
                src = self.inbuf
            self.fftw.update_arrays(src, out)
            self.fftw.execute()
            self.fftw.update_arrays(self.inbuf, out)   # hold no reference to the caller's input
            self.calls += 1
        return out


class _Cache:
    """Thread-safe LRU of FFTW plans, bounded in count and in bytes of buffers."""

    def __init__(self):
        self.plans: OrderedDict[tuple, _Plan] = OrderedDict()
        self.lock = threading.Lock()
        self.plan_lock = threading.Lock()      # the FFTW planner is not thread-safe
        self.created = 0
        self.hits = 0

    def get(self, key) -> _Plan:
        with self.lock:
            plan = self.plans.get(key)
            if plan is not None:
                self.plans.move_to_end(key)
                self.hits += 1
                return plan
        with self.plan_lock:
            with self.lock:
                plan = self.plans.get(key)
            if plan is None:
                _disk.load_wisdom(_pyfftw())
                plan = _Plan(*key)
                _disk.save_wisdom(_pyfftw())
                with self.lock:
                    self.plans[key] = plan
                    self.created += 1
                    self._evict(key)
        return plan

    def drop(self, key) -> None:
        with self.lock:
            self.plans.pop(key, None)

    def _evict(self, keep) -> None:
        limit = config.fft_cache_bytes()
        while len(self.plans) > 1:
            held = sum(p.nbytes for p in self.plans.values())
            if len(self.plans) <= _MAX_PLANS and held <= limit:
                break
            oldest = next(iter(self.plans))
            if oldest == keep:
                break
            del self.plans[oldest]


_cache = _Cache()


def _run_fftw(kind, a, ndim, full, nthreads):
    return _cache.get((kind, full, ndim, nthreads))(a)


_RUNNERS = {"numpy": _run_numpy, "scipy": _run_scipy, "fftw": _run_fftw}


def _transform(kind: str, a: np.ndarray, ndim: int, full: tuple[int, ...]) -> np.ndarray:
    nthreads = threads()
    backend = _backend_for(kind, full, ndim, nthreads)
    return _RUNNERS[backend](kind, a, ndim, full, nthreads)


# ------------------------------------------------- backend choice (remembered by emsh.fft_store)

_disk = _Disk()
_decide_lock = threading.Lock()


def _backend_for(kind: str, full: tuple[int, ...], ndim: int, nthreads: int) -> str:
    setting = config.fft_backend()
    if setting in ("scipy", "numpy"):
        return setting
    if _pyfftw() is None:
        if setting == "fftw":
            raise UsageError("EMSH_FFT=fftw but pyfftw cannot be imported; "
                             "install pyfftw or set EMSH_FFT=scipy")
        return "scipy"
    if setting == "fftw":
        return "fftw"
    if int(np.prod(full)) < _AUTO_MIN_ELEMENTS:
        return "scipy"
    key = _key_text(kind, full, ndim, nthreads)
    rec = _disk.choice(key)
    if rec is None:
        with _decide_lock:
            rec = _disk.choice(key)
            if rec is None:
                rec = _trial(kind, full, ndim, nthreads)
                _disk.record(key, rec)
    return rec["backend"]


def _trial(kind: str, full: tuple[int, ...], ndim: int, nthreads: int) -> dict:
    """Time FFTW (MEASURE plan) against scipy.fft on scratch data; best of interleaved runs."""
    rng = np.random.default_rng(0)
    in_shape = _spectrum_shape(kind, full) if kind == "irfft" else full
    x = rng.standard_normal(in_shape, dtype=np.float32)
    if _KINDS[kind][0] is np.complex64:
        x = x + 1j * rng.standard_normal(in_shape, dtype=np.float32)
    plan_key = (kind, full, ndim, nthreads)
    plan = _cache.get(plan_key)
    runs = {"fftw": lambda: plan(x), "scipy": lambda: _run_scipy(kind, x, ndim, full, nthreads)}
    best = dict.fromkeys(runs, float("inf"))
    for run in runs.values():            # first touches of memory, not timed
        run()
    t_end = time.perf_counter() + _TRIAL_BUDGET_S
    for i in range(9):
        for name in (("fftw", "scipy") if i % 2 == 0 else ("scipy", "fftw")):
            t0 = time.perf_counter()
            runs[name]()
            best[name] = min(best[name], time.perf_counter() - t0)
        if i >= 2 and time.perf_counter() > t_end:
            break
    winner = "fftw" if best["fftw"] < best["scipy"] else "scipy"
    if winner == "scipy":
        _cache.drop(plan_key)            # free its buffers; the wisdom stays
    return {"backend": winner, "fftw_ms": round(best["fftw"] * 1e3, 4),
            "scipy_ms": round(best["scipy"] * 1e3, 4), "plan_s": round(plan.plan_s, 3)}


# --------------------------------------------------------------------------- inspection

def plan_info() -> dict:
    """State of the FFT layer, for debugging: settings, files, cached plans, choices."""
    d, wpath, cpath = _disk.paths()
    try:
        backend = config.fft_backend()
    except UsageError as exc:
        backend = f"invalid ({exc})"
    with _cache.lock:
        plans = [{"kind": k[0], "shape": list(k[1]), "ndim": k[2], "threads": k[3],
                  "plan_s": round(p.plan_s, 4), "calls": p.calls, "bytes": p.nbytes}
                 for k, p in _cache.plans.items()]
        created, hits = _cache.created, _cache.hits
    with _disk.lock:
        choices = {k: dict(v) for k, v in _disk.choices.items()}
        wisdom_loaded = _disk.wisdom_dir == d
    return {
        "backend": backend, "threads": threads(), "fftw_available": _pyfftw() is not None,
        "cache_dir": str(d), "wisdom_file": str(wpath), "wisdom_loaded": wisdom_loaded,
        "choices_file": str(cpath), "choices": choices, "plans": plans,
        "plans_held": len(plans), "bytes_held": sum(p["bytes"] for p in plans),
        "bytes_limit": config.fft_cache_bytes(), "plans_created": created, "plan_hits": hits,
    }


def clear_cache(*, wisdom: bool = False, files: bool = False) -> None:
    """Drop every cached plan and the in-memory backend choices (reread from disk on next use).

    Args:
        wisdom: also forget FFTW's in-memory wisdom (the next plan reloads the file).
        files: also delete this machine's wisdom and choices files in the cache folder,
            so that every shape is planned and timed afresh.
    """
    with _cache.plan_lock, _cache.lock:
        _cache.plans.clear()
        _cache.created = _cache.hits = 0
    _disk.forget()
    if (wisdom or files) and _pyfftw() is not None:
        _pyfftw().forget_wisdom()
    if files:
        for path in _disk.paths()[1:]:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                _log.debug("cannot delete %s: %s", path, exc)
