"""Fourier-gridding helpers shared by the projector and the reconstructor.

Layout: 3D spectra use numpy's rfft layout ``(nz, ny, nx//2 + 1)`` with the zero
frequency at index 0 and the real-space centre (index ``n//2``) moved to the
origin before the transform, so a spectrum holds the transform of the volume
about its centre. Frequencies of a padded grid of size ``np_`` are in grid units
(cycles per ``np_`` pixels); multiply cycles/pixel by ``np_`` to get them.

Two kernel families live here:

* :class:`Kernel` — interpolation kernels for :class:`~emsh.kernels.project.FourierProjector`
  (trilinear, Kaiser-Bessel) with their real-space profiles for pre-compensation.
* The tabulated generalised Kaiser-Bessel window of SPIDER's ``BP 32F``/``BP 3F``
  (Lewitt's form, 5 taps, alpha 6.5, radius 0.9*2 grid units, 5000-entry table
  read by nearest entry) and its real-space correction (``WINDKB2A``).
"""

from __future__ import annotations

import numpy as np
import scipy.special as _sp

from emsh import fft as _fft
from emsh.errors import UsageError

__all__ = [
    "padded_size", "rfft_freqs", "padded_rfft3", "Kernel", "interpolate_rfft3", "spread_full3",
    "SPIDER_KB_TAPS", "spider_kb_table", "spider_window",
]


def padded_size(n: int, pad: float) -> int:
    """Even padded size ``>= pad * n`` (FFT-friendly sizes are the FFT layer's concern)."""
    m = int(np.ceil(float(pad) * n - 1e-9))
    return m + (m % 2)


def rfft_freqs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ky, kx)`` in cycles/pixel for an ``(n, n//2+1)`` rfft layout, broadcastable."""
    ky = np.fft.fftfreq(n)[:, None]
    kx = np.fft.rfftfreq(n)[None, :]
    return ky, kx


def padded_rfft3(vol: np.ndarray, np_: int) -> np.ndarray:
    """rfft of ``vol`` zero-padded to ``np_`` with its centre (``n//2``) moved to the origin."""
    n = vol.shape[0]
    big = np.zeros((np_, np_, np_), dtype=np.float32)
    o = np_ // 2 - n // 2
    big[o:o + n, o:o + n, o:o + n] = vol
    return _fft.rfftn(np.fft.ifftshift(big), ndim=3)


class Kernel:
    """A separable interpolation kernel for Fourier-space sampling.

    Attributes:
        name: ``"trilinear"`` or ``"kb"``.
        width: taps per axis.
        beta: Kaiser-Bessel shape parameter (``"kb"`` only).
    """

    def __init__(self, name: str, width: int, beta: float = 0.0):
        self.name, self.width, self.beta = name, int(width), float(beta)

    @classmethod
    def named(cls, name: str, pad: float) -> "Kernel":
        """``"trilinear"`` or ``"kb"`` (4 taps, beta from Beatty et al. for this ``pad``)."""
        if name == "trilinear":
            return cls("trilinear", 2)
        if name == "kb":
            w, p = 4, max(float(pad), 1.25)
            beta = np.pi * np.sqrt((w / p) ** 2 * (p - 0.5) ** 2 - 0.8)
            return cls("kb", w, beta)
        raise UsageError(f"unknown interpolation kernel {name!r}; use 'kb' or 'trilinear'")

    def weights(self, d: np.ndarray) -> np.ndarray:
        """Kernel value at offsets ``d`` in grid units."""
        d = np.abs(d)
        if self.name == "trilinear":
            return np.clip(1.0 - d, 0.0, None)
        h = self.width / 2.0
        arg = 1.0 - (d / h) ** 2
        return np.where(arg >= 0, _sp.i0(self.beta * np.sqrt(np.clip(arg, 0, None)))
                        / _sp.i0(self.beta), 0.0)

    def profile(self, u: np.ndarray) -> np.ndarray:
        """Continuous Fourier transform of the kernel at ``u`` cycles per grid step.

        This is the real-space factor the kernel imposes on the volume (``u =
        x / np_`` for a voxel ``x`` pixels from the centre of the padded grid).
        """
        u = np.asarray(u, dtype=np.float64)
        if self.name == "trilinear":
            return np.sinc(u) ** 2
        w, b = self.width, self.beta
        q = b * b - (np.pi * w * u) ** 2
        s = np.sqrt(np.abs(q))
        with np.errstate(invalid="ignore", divide="ignore"):
            pos = np.where(s > 1e-8, np.sinh(s) / np.where(s > 0, s, 1), 1.0)
            neg = np.where(s > 1e-8, np.sin(s) / np.where(s > 0, s, 1), 1.0)
        return w * np.where(q >= 0, pos, neg) / _sp.i0(b)

    def real_profile_3d(self, n: int, np_: int) -> np.ndarray:
        """Separable profile on an ``(n, n, n)`` volume centred at ``n//2`` (float32)."""
        p = self.profile((np.arange(n) - n // 2) / np_).astype(np.float32)
        return p[:, None, None] * p[None, :, None] * p[None, None, :]


def _taps(p: np.ndarray, width: int) -> np.ndarray:
    """First tap index for each coordinate (taps are first .. first+width-1)."""
    return np.floor(p - width / 2.0).astype(np.int64) + 1


def interpolate_rfft3(spec: np.ndarray, pts: np.ndarray, kernel: Kernel) -> np.ndarray:
    """Interpolate a 3D rfft-layout spectrum at points ``(..., 3)`` = (z, y, x) grid units.

    Taps on the missing half (x < 0 after wrapping) use Hermitian symmetry
    ``F(-k) = conj(F(k))``.
    """
    npz, npy, nh = spec.shape
    np_ = npy
    flat = spec.reshape(-1)
    shape = pts.shape[:-1]
    p = pts.reshape(-1, 3)
    w = kernel.width
    first = _taps(p, w)                                   # (m, 3)
    wts = [[kernel.weights(p[:, a] - (first[:, a] + t)) for t in range(w)] for a in range(3)]
    out = np.zeros(p.shape[0], dtype=np.complex128)
    for tz in range(w):
        jz = first[:, 0] + tz
        for ty in range(w):
            jy = first[:, 1] + ty
            wzy = wts[0][tz] * wts[1][ty]
            for tx in range(w):
                jx = (first[:, 2] + tx) % np_
                direct = jx <= np_ // 2
                sx = np.where(direct, jx, np_ - jx)
                sy = np.where(direct, jy, -jy) % np_
                sz = np.where(direct, jz, -jz) % np_
                v = flat[(sz * npy + sy) * nh + sx]
                v = np.where(direct, v, np.conj(v))
                out += (wzy * wts[2][tx]) * v
    return out.reshape(shape)


def spread_full3(pts: np.ndarray, values: np.ndarray, kernel: Kernel, np_: int) -> np.ndarray:
    """Adjoint of interpolation on a full (non-Hermitian) ``np_^3`` complex grid.

    Adds ``kernel(p - j) * value`` to every grid point ``j`` (wrapped) around each
    point ``p`` (``(..., 3)`` = (z, y, x) grid units). Returns complex128 ``(np_,)*3``.
    """
    p = pts.reshape(-1, 3)
    v = np.broadcast_to(values, pts.shape[:-1]).reshape(-1)
    w = kernel.width
    first = _taps(p, w)
    wts = [[kernel.weights(p[:, a] - (first[:, a] + t)) for t in range(w)] for a in range(3)]
    size = np_ ** 3
    re = np.zeros(size)
    im = np.zeros(size)
    for tz in range(w):
        jz = (first[:, 0] + tz) % np_
        for ty in range(w):
            jy = (first[:, 1] + ty) % np_
            wzy = wts[0][tz] * wts[1][ty]
            for tx in range(w):
                jx = (first[:, 2] + tx) % np_
                idx = (jz * np_ + jy) * np_ + jx
                ww = wzy * wts[2][tx]
                re += np.bincount(idx, weights=ww * v.real, minlength=size)
                im += np.bincount(idx, weights=ww * v.imag, minlength=size)
    return (re + 1j * im).reshape(np_, np_, np_)


# --------------------------------------------------------------------------------------
# SPIDER's BP 32F / BP 3F window

SPIDER_KB_TAPS = 5          # LN
_SPIDER_LTAB = 4999
_SPIDER_ALPHA = 6.5


def spider_kb_table(np_: int) -> tuple[np.ndarray, np.float32, float]:
    """SPIDER's tabulated gridding window for a padded size ``np_``.

    Entry ``i`` is the window at ``i / fltb`` grid units; SPIDER reads it at the
    nearest entry, ``tab[nint(|d| * fltb)]``.

    Returns:
        ``(tab, fltb, aaaa)``: float32 table of 5000 entries, the entries per grid
        unit (float32), and the window radius in cycles/voxel.
    """
    ln2 = SPIDER_KB_TAPS // 2
    v = np.float32(SPIDER_KB_TAPS - 1) / np.float32(2.0) / np.float32(np_)
    aaaa = np.float32(0.9) * v
    alpha = np.float32(_SPIDER_ALPHA)
    b0 = np.float32(np.sqrt(alpha) * _sp.i1(np.float64(alpha)))
    fltb = np.float32(_SPIDER_LTAB) / np.float32(ln2 + 1)
    i = np.arange(_SPIDER_LTAB + 1, dtype=np.float32)
    s = i / fltb / np.float32(np_)
    inside = s <= aaaa
    xt = np.sqrt(np.clip(np.float32(1.0) - (s / aaaa) ** 2, 0, None)).astype(np.float32)
    ax = (alpha * xt).astype(np.float64)
    tab = np.where(inside, np.sqrt(ax) * _sp.i1(ax) / np.float64(b0), 0.0).astype(np.float32)
    return tab, fltb, float(aaaa)


def spider_window(n: int, np_: int) -> tuple[np.ndarray, np.ndarray]:
    """Real-space correction of SPIDER's window (``WINDKB2A``) on an ``(n, n, n)`` volume.

    Returns:
        ``(wkb, lr)``: float32 ``|window transform|`` per voxel (divide the volume by
        it inside the sphere) and the integer squared radius of each voxel from the
        centre ``n//2``; SPIDER's sphere is ``lr <= (n//2)**2``.
    """
    _, _, aaaa = spider_kb_table(np_)
    c = n // 2
    t = (np.arange(n) - c) ** 2
    lr = t[:, None, None] + t[None, :, None] + t[None, None, :]
    alpha = np.float32(_SPIDER_ALPHA)
    nu = 1.5
    wkb0 = np.float64(alpha) ** nu / _sp.iv(nu, np.float64(alpha))
    qrt = np.float32((np.float32(2 * np.pi) * np.float32(aaaa)) ** 2)
    radii, inverse = np.unique(lr, return_inverse=True)
    sigma = (qrt * radii.astype(np.float32) - alpha * alpha).astype(np.float64)
    art = np.sqrt(np.abs(sigma))
    safe = np.where(art > 0, art, 1.0)
    grow = wkb0 * _sp.iv(nu, safe) / safe ** nu
    osc = wkb0 * _sp.jv(nu, safe) / safe ** nu
    wkb = np.where(np.abs(sigma) < 1e-7, 1.0, np.where(sigma > 0, osc, grow))
    return np.abs(wkb).astype(np.float32)[inverse.reshape(lr.shape)], lr
