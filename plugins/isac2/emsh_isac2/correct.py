"""ISAC2's image corrections at full size (A.2 steps 1.2 and 2.2): CTF phase flip, VPP whitening.

* ``CTF``: each image's Fourier transform is multiplied by the sign of its own CTF
  (:func:`emsh.kernels.ctf.phase_flip` with :func:`emsh.kernels.ctf.ctf_2d`; emsh's
  sign convention, positive at zero frequency), so every frequency carries the object's
  own phase; amplitudes are not corrected.
* ``VPP`` (phase-plate data, whose CTF is not flipped): every image is filtered by the
  1-D table ``rpw[k] = N / sum_i sqrt(P_i[k])``, ``rpw[0] = 1``, with ``P_i`` the
  rotational power spectrum of image i (shell k,
  :func:`emsh.kernels.fourier.rotational_power_spectrum`) and N the number of images: the stack's mean rotational amplitude becomes flat
  (whitening). Between shells the table is interpolated linearly in frequency.

Both work on batches of ``_CHUNK`` images (one CTF array per image at a time).
"""

from __future__ import annotations

import numpy as np

from emsh.errors import UsageError
from emsh.kernels.ctf import CTFParams, ctf_2d, phase_flip
from emsh.kernels.filters import apply_gain
from emsh.kernels.fourier import freq_radius_half, rotational_power_spectrum
from emsh.parallel import SerialComm

__all__ = ["flip_phases", "vpp_table", "apply_table"]

_CHUNK = 256


def flip_phases(images, ctf: CTFParams) -> np.ndarray:
    """Phase-flip every image with its own CTF.

    Args:
        images: ``(n, ny, nx)`` real images (any origin: the sign of a CTF is an even,
            real filter, so it commutes with shifts).
        ctf: a batch of ``n`` parameter sets (or scalars for one CTF for all); its
            ``apix`` is the images' pixel size.

    Returns:
        float32 ``(n, ny, nx)``.
    """
    imgs = np.asarray(images, dtype=np.float32)
    n = len(imgs)
    b = ctf.batch_size
    if b is not None and b != n:
        raise UsageError(f"ISAC2 CTF: {b} parameter sets for {n} images")
    out = np.empty_like(imgs)
    for i in range(0, n, _CHUNK):
        sl = slice(i, min(n, i + _CHUNK))
        c = ctf_2d(ctf if b is None else ctf.take(sl), imgs.shape[1:])
        out[sl] = phase_flip(imgs[sl], c)
    return out


def vpp_table(images, *, n_total: int | None = None, comm=None) -> tuple[np.ndarray, np.ndarray]:
    """SPHIRE's VPP whitening table ``rpw`` from the images' rotational power spectra.

    Args:
        images: ``(n, ny, nx)`` (under MPI: this rank's block).
        n_total: number of images over all ranks (default ``len(images)``).
        comm: communicator summing the spectra over ranks (None: serial).

    Returns:
        ``(freq cycles/px, rpw)`` float64, shells ``0 .. n//2``.
    """
    comm = SerialComm() if comm is None else comm
    imgs = np.asarray(images, dtype=np.float32)
    total = len(imgs) if n_total is None else int(n_total)
    size = min(imgs.shape[1:])
    freq = np.arange(size // 2 + 1) / size
    acc = np.zeros(len(freq))
    for i in range(0, len(imgs), _CHUNK):
        _, p = rotational_power_spectrum(imgs[i:i + _CHUNK], ndim=2)
        acc += np.sqrt(np.maximum(p, 0.0)).sum(axis=0)
    acc = comm.allreduce(acc)
    if np.any(acc[1:] <= 0):
        raise UsageError("ISAC2 VPP: the images have no power at some frequency")
    rpw = total / np.where(acc > 0, acc, 1.0)
    rpw[0] = 1.0
    return freq, rpw


def apply_table(images, freq, table) -> np.ndarray:
    """Filter images by a 1-D radial table (interpolated linearly, constant past the end)."""
    f = np.asarray(freq, dtype=np.float64)
    t = np.asarray(table, dtype=np.float64)
    out = np.empty(np.shape(images), dtype=np.float32)
    imgs = np.asarray(images, dtype=np.float32)
    for i in range(0, len(imgs), _CHUNK):
        out[i:i + _CHUNK] = apply_gain(
            imgs[i:i + _CHUNK], lambda shape: np.interp(freq_radius_half(shape), f, t), ndim=2)
    return out
