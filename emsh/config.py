"""Run-time settings of emsh, read from environment variables.

Every getter reads the environment when it is called, so a test (or a user in
the shell) can change a variable and see the effect at once; the reads are
cheap. A value that cannot be understood raises :class:`emsh.errors.UsageError`
naming the variable and what it accepts.

Variables:
    EMSH_FFT: FFT backend, ``auto`` (default: measure FFTW against scipy.fft once
        per transform shape and keep the faster), ``fftw``, ``scipy`` or ``numpy``.
    EMSH_FFT_THREADS: threads per FFT (default: the CPUs this process may use).
    EMSH_FFT_PLAN_TIMELIMIT: seconds FFTW may spend planning one transform with
        FFTW_MEASURE (default 5); past it FFTW keeps the best plan found so far.
    EMSH_FFT_CACHE_MB: memory the FFTW plan cache may hold in its buffers
        (default 1024); the least recently used plans are dropped beyond it.
    EMSH_CACHE_DIR: folder for FFTW wisdom and FFT backend decisions (default
        ``$XDG_CACHE_HOME/emsh``, else ``~/.cache/emsh``).
"""

from __future__ import annotations

import os
from pathlib import Path

from emsh.errors import UsageError

__all__ = [
    "FFT_BACKENDS", "available_cpus", "fft_backend", "fft_threads", "fft_plan_timelimit",
    "fft_cache_bytes", "cache_dir",
]

#: Accepted values of ``EMSH_FFT``.
FFT_BACKENDS = ("auto", "fftw", "scipy", "numpy")


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _number(name: str, kind: type, default, minimum):
    text = _env(name)
    if text is None:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise UsageError(
            f"{name}={text!r}: expected a {'whole ' if kind is int else ''}number "
            f">= {minimum}") from None
    if value < minimum:
        raise UsageError(f"{name}={text!r}: expected a number >= {minimum}")
    return value


def fft_backend() -> str:
    """The FFT backend asked for by ``EMSH_FFT``: one of :data:`FFT_BACKENDS`."""
    text = _env("EMSH_FFT")
    if text is None:
        return "auto"
    value = text.lower()
    if value not in FFT_BACKENDS:
        raise UsageError(f"EMSH_FFT={text!r}: expected one of {', '.join(FFT_BACKENDS)}")
    return value


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def fft_threads() -> int:
    """Threads per FFT: ``EMSH_FFT_THREADS``, else the CPUs this process may use."""
    return _number("EMSH_FFT_THREADS", int, available_cpus(), 1)


def fft_plan_timelimit() -> float:
    """Seconds FFTW may spend on one FFTW_MEASURE plan (``EMSH_FFT_PLAN_TIMELIMIT``)."""
    return _number("EMSH_FFT_PLAN_TIMELIMIT", float, 5.0, 0.0)


def fft_cache_bytes() -> int:
    """Bytes the FFTW plan cache may hold (``EMSH_FFT_CACHE_MB``, in MiB)."""
    return int(_number("EMSH_FFT_CACHE_MB", float, 1024.0, 0.0) * 2**20)


def cache_dir() -> Path:
    """Folder for emsh's machine-specific caches (FFTW wisdom, backend choices).

    It is not created here; writers create it when they first save and carry on
    without saving when they cannot.
    """
    text = _env("EMSH_CACHE_DIR")
    if text is not None:
        return Path(text).expanduser()
    xdg = _env("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "emsh"
