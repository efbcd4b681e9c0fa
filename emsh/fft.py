"""Batched FFTs for emsh kernels: one API, the fastest backend per shape.

Every function transforms the trailing ``ndim`` axes (2 or 3) of its input and
treats leading axes as a batch, so a stack ``(n, ny, nx)`` goes through one call.
Real input is float32 and gives complex64 half spectra (last axis ``nx//2 + 1``),
numpy's sign convention: forward ``exp(-2*pi*i*k*x/N)``, unnormalised; inverse
divides by N. (SPIDER's forward FT is the complex conjugate of this; see
``emsh.io.spider`` for Fourier files.)

Centred helpers put the zero frequency at index ``n//2``, the emsh image centre.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.fft as _sfft

__all__ = [
    "rfftn", "irfftn", "fftn", "ifftn",
    "centered_fftn", "centered_ifftn", "threads",
]


def threads() -> int:
    """Number of FFT threads: ``EMSH_FFT_THREADS`` or the CPU count."""
    env = os.environ.get("EMSH_FFT_THREADS")
    if env:
        return max(1, int(env))
    return os.cpu_count() or 1


def _axes(ndim: int) -> tuple[int, ...]:
    if ndim not in (1, 2, 3):
        raise ValueError("ndim must be 1, 2 or 3")
    return tuple(range(-ndim, 0))


def rfftn(a: np.ndarray, ndim: int = 2) -> np.ndarray:
    """Real-to-complex FFT over the last ``ndim`` axes; float32 in, complex64 out."""
    a = np.asarray(a, dtype=np.float32)
    return _sfft.rfftn(a, axes=_axes(ndim), workers=threads()).astype(np.complex64, copy=False)


def irfftn(A: np.ndarray, shape: tuple[int, ...], ndim: int | None = None) -> np.ndarray:
    """Inverse of :func:`rfftn`; ``shape`` is the real shape of the last axes."""
    nd = len(shape) if ndim is None else ndim
    A = np.asarray(A, dtype=np.complex64)
    out = _sfft.irfftn(A, s=tuple(shape), axes=_axes(nd), workers=threads())
    return out.astype(np.float32, copy=False)


def fftn(a: np.ndarray, ndim: int = 2) -> np.ndarray:
    """Complex FFT over the last ``ndim`` axes; complex64 out."""
    a = np.asarray(a, dtype=np.complex64)
    return _sfft.fftn(a, axes=_axes(ndim), workers=threads()).astype(np.complex64, copy=False)


def ifftn(A: np.ndarray, ndim: int = 2) -> np.ndarray:
    """Inverse complex FFT over the last ``ndim`` axes (normalised by 1/N)."""
    A = np.asarray(A, dtype=np.complex64)
    return _sfft.ifftn(A, axes=_axes(ndim), workers=threads()).astype(np.complex64, copy=False)


def centered_fftn(a: np.ndarray, ndim: int = 2) -> np.ndarray:
    """FFT with the origin at index ``n//2`` in both real and Fourier space."""
    ax = _axes(ndim)
    return np.fft.fftshift(fftn(np.fft.ifftshift(a, axes=ax), ndim), axes=ax)


def centered_ifftn(A: np.ndarray, ndim: int = 2) -> np.ndarray:
    """Inverse of :func:`centered_fftn`."""
    ax = _axes(ndim)
    return np.fft.fftshift(ifftn(np.fft.ifftshift(A, axes=ax), ndim), axes=ax)
