"""SPIDER's ``TF`` operations reproduced exactly: ``TF C3``/``TF CT3``, ``TF CT``/``TF C``,
``TF COR`` and ``TF CTS``.

The arrays follow SPIDER's float32 arithmetic and its quirks (``TF C3`` turns
astigmatism into a constant defocus offset; ``TF CT`` flips the astigmatism on the
kx = 0 column and takes azimuths from the integer frequency indices). The answers
are a :class:`emsh.kernels.ctf.SpiderTF`; how they map onto emsh's CTF convention
is explained in :mod:`emsh.kernels.ctf`, which also re-exports every name here.
Results are in SPIDER's Fourier-file layout (:func:`emsh.kernels.fourier.spider_ft`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from emsh.errors import UsageError
from emsh.kernels.fourier import check_size, spider_ft, spider_ift

if TYPE_CHECKING:                      # only for annotations: ctf imports this module
    from emsh.kernels.ctf import SpiderTF

__all__ = ["spider_tf_c3", "spider_tf_ct", "tf_cor", "tf_cts"]

_F = np.float32


# ----------------------------------------------------------------------------- TF C3 / CT

def _tfd32(cs1, dz, lam, q, ds, ak, wgh, env) -> np.ndarray:
    """SPIDER's ``TFD`` in float32 with its order of operations (``tfd.f``)."""
    cs1, lam, q, ds, wgh, env = (_F(v) for v in (cs1, lam, q, ds, wgh, env))
    pi2 = np.float64(-9.8696050643920898400000)            # -pi^2, double as in SPIDER
    kpp = np.float64(11.09035491943359380000)               # 16 ln 2
    f1 = _F(1.0) / np.sqrt(cs1 * lam)
    f2 = np.sqrt(np.sqrt(cs1 * (lam * lam * lam)))
    q1 = (q * f2) * (q * f2)
    env1 = env / (f2 * f2)
    akk = ak * f2
    a2 = akk * akk
    kappa = _F(np.float64(ds * ds * f1) * pi2 / kpp)
    dz1 = dz * f1
    p = a2 * akk - dz1 * akk
    ch = np.exp(a2 * a2 * kappa)
    b = (np.exp(pi2 * np.float64(q1) * (p * p).astype(np.float64)) * ch
         * np.exp(-env1 * a2)).astype(_F)
    qqt = _F(2.0 * np.pi) * (_F(0.25) * (a2 * a2) - _F(0.5) * dz1 * a2)   # float32, as built
    return b * np.sin(qqt - wgh)


def _spider_common(ans: SpiderTF, flip: bool, geh_zero_means_none: bool):
    q, ds = (0.0, 0.0) if flip else (ans.source_size, ans.defocus_spread)
    if flip or (ans.geh == 0 and geh_zero_means_none):
        env = 0.0
    elif ans.geh == 0:
        raise UsageError("SPIDER TF C3: Gaussian envelope half-width 0 (SPIDER divides by it)")
    else:
        env = float(_F(1.0) / (_F(ans.geh) * _F(ans.geh)))
    acr = _F(ans.acr)
    wgh = np.arctan(acr / (_F(1.0) - acr))
    return _F(max(ans.cs_mm, 1e-4)) * _F(1e7), ans.lambda_A, q, ds, wgh, env


def _spider_out(tf: np.ndarray, ans: SpiderTF, flip: bool) -> np.ndarray:
    sgn = _F(ans.sign)
    val = np.where(tf >= 0, _F(1.0), _F(-1.0)) * sgn if flip else tf * sgn
    return val.astype(np.complex64)


def spider_tf_c3(answers: SpiderTF, n: int, flip: bool = False) -> np.ndarray:
    """SPIDER ``TF C3`` (or ``TF CT3`` with ``flip``): cubic CTF in Fourier-file layout.

    Reproduces ``trafc3.f`` in float32: frequency step ``fmax/(n//2)``, frequency
    index ``sqrt(ix^2+iy^2+iz^2)``; the astigmatism azimuth is 0 for every non-zero
    frequency, so astigmatism only shifts the defocus to ``DZ - DZA/2 sin(2 AZ)``.
    ``flip`` gives ``+-sign`` (the sign of TF) and ignores the envelope terms.

    Returns:
        complex64 ``(n, n, n//2 + 1)`` with zero imaginary parts, as SPIDER writes it.
    """
    n = int(n)
    check_size((n, n, n // 2 + 1), "TF C3")
    cs1, lam, q, ds, wgh, env = _spider_common(answers, flip, False)
    sc = _F(answers.fmax) / _F(n // 2)
    k = np.arange(n)
    k = np.where(k > n // 2, k - n, k).astype(_F)
    kx = np.arange(n // 2 + 1, dtype=_F)
    ak = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2) * sc
    pi = np.float64(3.1415926)
    azr = _F(answers.astig_azimuth_deg * (pi / 180.0))
    dz = _F(answers.defocus_A)
    half = _F(answers.astig_A) / _F(2.0)
    dzz = np.where(ak != 0, dz + half * np.sin(_F(2.0) * (_F(0.0) - azr)),
                   dz + half * np.sin(_F(2.0) * (_F(pi / 2.0) - azr))).astype(_F)
    return _spider_out(_tfd32(cs1, dzz, lam, q, ds, ak, wgh, env), answers, flip)


def spider_tf_ct(answers: SpiderTF, nx: int, ny: int | None = None, flip: bool = True):
    """SPIDER ``TF CT`` (phase flipping, default) or ``TF C`` (``flip=False``), 2D.

    Reproduces ``trafc.f`` in float32: ``s = fmax sqrt((2 kx/nx)^2 + (2 ky/ny)^2)``,
    azimuth ``atan2(ky, kx) + pi/2`` from the integer frequency indices (so not the
    true angle on non-square images), but ``pi/2`` on the whole ``kx = 0`` column (so
    there the astigmatism has the opposite sign). ``TF CT`` returns ``+-sign`` by the
    sign of TF (``TF >= 0`` gives ``+sign``); ``TF C`` returns ``sign * TF``.

    Returns:
        complex64 ``(ny, nx//2 + 1)`` with zero imaginary parts.
    """
    nx = int(nx)
    ny = nx if not ny else int(ny)
    check_size((ny, nx // 2 + 1), "TF CT")
    cs1, lam, q, ds, wgh, env = _spider_common(answers, False, True)
    if flip:
        env = 0.0
    kx = np.arange(nx // 2 + 1, dtype=_F)[None, :]
    ky = np.arange(ny)
    ky = np.where(ky > ny // 2, ky - ny, ky).astype(_F)[:, None]
    kx, ky = np.broadcast_arrays(kx, ky)
    sx, sy = _F(2.0) / _F(nx), _F(2.0) / _F(ny)
    ak = _F(answers.fmax) * np.sqrt((kx * sx) ** 2 + (ky * sy) ** 2)
    az = np.where(kx != 0, np.arctan2(ky, kx) + np.pi / 2.0, np.pi / 2.0).astype(_F)
    azr = _F(answers.astig_azimuth_deg * (np.pi / 180.0))
    dzz = (_F(answers.defocus_A) + _F(answers.astig_A) / _F(2.0)
           * np.sin(_F(2.0) * (az - azr))).astype(_F)
    return _spider_out(_tfd32(cs1, dzz, lam, q, ds, ak.astype(_F), wgh, env), answers, flip)


# ----------------------------------------------------------------------------- TF COR / CTS

def tf_cor(x, ctf, shape=None) -> np.ndarray:
    """SPIDER ``TF COR``: real result of ``spider_ift(spider_ft(x) * ctf)``.

    Args:
        x: real image/volume, or its SPIDER-convention half spectrum (a Fourier file);
            extra leading axes are a batch.
        ctf: one CTF in SPIDER Fourier layout (2D or 3D, complex or real); its number
            of axes sets the dimensionality.
        shape: real shape of ``x`` (needed when ``x`` is complex).
    """
    c = np.asarray(ctf)
    nd = c.ndim
    if np.iscomplexobj(x):
        if shape is None:
            raise UsageError("TF COR: give the real shape for Fourier input")
        F = np.asarray(x, dtype=np.complex64)
    else:
        F = spider_ft(x, nd)
        shape = np.shape(x)[np.ndim(x) - nd:]
    if F.shape[F.ndim - nd:] != c.shape:
        raise UsageError(f"TF COR: CTF of shape {c.shape} does not fit the spectrum {F.shape}")
    return spider_ift(F * c, shape)


def tf_cts(volumes, ctfs, snr: float, shape=None) -> np.ndarray:
    """SPIDER ``TF CTS``: ``spider_ift(sum F_g conj(C_g) / (sum |C_g|^2 + 1/snr))``.

    Args:
        volumes: ``(g, *real)`` real images/volumes, or ``(g, *half)`` SPIDER spectra.
        ctfs: ``(g, *half)`` CTFs in SPIDER Fourier layout, one per input.
        snr: signal-to-noise ratio (> 0).
        shape: real shape (needed for Fourier input).
    """
    if snr <= 0:
        raise UsageError("TF CTS: SNR must be > 0")
    C = np.asarray(ctfs)
    nd = C.ndim - 1
    if np.iscomplexobj(volumes):
        if shape is None:
            raise UsageError("TF CTS: give the real shape for Fourier input")
        F = np.asarray(volumes, dtype=np.complex64)
    else:
        F = spider_ft(volumes, nd)
        shape = np.shape(volumes)[1:]
    if F.shape != C.shape:
        raise UsageError(f"TF CTS: CTFs {C.shape} and inputs {F.shape} differ in shape")
    num = (F * np.conj(C)).sum(axis=0)
    den = (np.abs(C).astype(np.float64) ** 2).sum(axis=0) + 1.0 / snr
    return spider_ift((num / den).astype(np.complex64), shape)

