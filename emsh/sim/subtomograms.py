"""Subtomograms with known orientation and shift, missing wedge and noise.

Each subtomogram is the volume turned by ``R = spider_to_matrix(phi, theta, psi)``
(a point ``x`` of the volume lands at ``R x``, the geometry of the projector, so
summing a noiseless, wedge-free subtomogram along z gives the projection at the same
angles), shifted by ``(sx, sy, sz)`` pixels (positive moves the content to higher
x / y / z index). The rotation is done in Fourier space: the padded, gridding-
corrected 3D transform of the volume (:class:`emsh.kernels.project.FourierProjector`)
is interpolated at ``R^T k`` for every frequency ``k`` inside the Nyquist sphere,
so there is no real-space interpolation blur.

The tilt series measures only part of Fourier space; the spectrum of the
subtomogram (signal and noise alike, as in a reconstructed tomogram) is multiplied
by :func:`emsh.kernels.wedge.wedge_mask` in the subtomogram's own (microscope) frame:
beam along z, tilt axis y by default.

SNR: the variance of the noiseless wedge-filtered subtomogram over a ball of
``mask_radius`` voxels about the centre, averaged over the stack, divided by the
variance of the (wedge-filtered) noise. The noise is drawn after every pose.
"""

from __future__ import annotations

import numpy as np

from emsh import fft as _fft
from emsh.errors import UsageError
from emsh.kernels import gridding
from emsh.kernels.project import FourierProjector, rotation_matrices
from emsh.kernels.wedge import wedge_mask
from emsh.sim._common import (as_angles, as_shifts, ball, check_count, check_rng, check_size,
                              check_snr, mask_radius_of, masked_variance, random_angles, volumes)
from emsh.sim.particles import _classes
from emsh.table import Table

__all__ = ["simulate_subtomograms", "rotate_shift_fourier"]

_POINTS_PER_PASS = 1 << 19   # frequency samples interpolated per vectorised pass


def _freqs3(N: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kz = np.fft.fftfreq(N)[:, None, None]
    ky = np.fft.fftfreq(N)[None, :, None]
    kx = np.fft.rfftfreq(N)[None, None, :]
    return kz, ky, kx


def _rotated_spectra(proj: FourierProjector, rot: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Half spectra ``(k, N, N, N//2+1)`` of the volume turned by ``rot`` and shifted."""
    N, np_ = proj.n, proj.np_
    kz, ky, kx = np.broadcast_arrays(*_freqs3(N))
    inside = (kx * kx + ky * ky + kz * kz) < 0.25
    k = np.stack([kx[inside], ky[inside], kz[inside]], axis=1)          # (m, 3) as (x, y, z)
    c = N // 2
    out = np.zeros((rot.shape[0],) + kx.shape, dtype=np.complex64)
    per = max(1, _POINTS_PER_PASS // k.shape[0])
    for s in range(0, rot.shape[0], per):
        r = rot[s:s + per]
        q = np.einsum("mi,bij->bmj", k, r)                  # R^T k, (b, m, 3) as (x, y, z)
        vals = gridding.interpolate_rfft3(proj.spectrum, q[..., ::-1] * np_, proj.kernel)
        phase = -2j * np.pi * (k.sum(axis=1)[None, :] * c + shifts[s:s + per] @ k.T)
        out[s:s + per][:, inside] = (vals * np.exp(phase)).astype(np.complex64)
    return out


def rotate_shift_fourier(volume, angles, shifts=None, pad: float = 2.0) -> np.ndarray:
    """Copies of a volume turned and shifted by Fourier-space gridding interpolation.

    Args:
        volume: float32 ``(N, N, N)``.
        angles: ``(k, 3)`` SPIDER (psi, theta, phi) in degrees, doc order.
        shifts: ``(k, 3)`` ``(sx, sy, sz)`` in pixels (default none).
        pad: padding factor of the gridding.

    Returns:
        float32 ``(k, N, N, N)``: ``out(p) = vol(R^T (p - s))`` about voxel ``N//2``,
        band-limited to the Nyquist sphere.
    """
    vol = volumes(volume)[0]
    N = vol.shape[0]
    a = np.asarray(angles, dtype=np.float64).reshape(-1, 3)
    k = a.shape[0]
    check_size(k, (N, N, N), "rotate_shift_fourier")
    sh = np.zeros((k, 3)) if shifts is None else np.asarray(shifts, dtype=np.float64).reshape(k, 3)
    spec = _rotated_spectra(FourierProjector(vol, pad=pad), rotation_matrices(a), sh)
    return np.stack([_irfft3(f, N) for f in spec])


def _irfft3(spec: np.ndarray, N: int) -> np.ndarray:
    # one subtomogram at a time: a single FFT plan of shape (N, N, N) serves any count
    return _fft.irfftn(spec, (N, N, N))


def simulate_subtomograms(volume, n: int, rng: np.random.Generator, *,
                          tilt_range=(-60.0, 60.0), tilt_axis: str = "y", snr=None,
                          angles=None, shifts=None, shift_range_px: float = 0.0,
                          mask_radius=None, classes=None, class_fractions=None,
                          pad: float = 2.0) -> tuple[np.ndarray, Table]:
    """Subtomograms of one or several volumes at known poses, with a missing wedge.

    Args:
        volume: float32 ``(N, N, N)`` or a sequence of same-sized volumes (classes).
        n: number of subtomograms.
        rng: source of angles, shifts, classes and noise.
        tilt_range: ``(min, max)`` tilt of the series in degrees; ``None`` for no wedge.
        tilt_axis: ``'y'`` (default) or ``'x'``, see :func:`emsh.kernels.wedge.wedge_mask`.
        snr: as in the module docstring; ``None`` for noiseless subtomograms.
        angles: ``(n, 3)`` (psi, theta, phi) in degrees; default uniform on SO(3).
        shifts: ``(n, 3)`` ``(sx, sy, sz)`` in pixels; default uniform in
            ``[-shift_range_px, shift_range_px]`` per axis.
        shift_range_px: see ``shifts``.
        mask_radius: radius in voxels of the ball for the signal variance; default
            the support radius of the volume(s).
        classes, class_fractions: as in :func:`emsh.sim.particles.simulate_particles`.
        pad: padding factor of the Fourier interpolation.

    Returns:
        ``(stack, truth)``: float32 ``(n, N, N, N)`` and a Table with ``phi, theta,
        psi, sx, sy, sz, class_id, tilt_min_deg, tilt_max_deg, tilt_axis,
        noise_sigma`` (the standard deviation of the noise as it is in the output).
    """
    check_rng(rng)
    vols = volumes(volume)
    n = check_count(n, "number of subtomograms")
    N = vols[0].shape[0]
    check_size(n, (N, N, N), "simulate_subtomograms")
    ang = random_angles(n, rng) if angles is None else as_angles(angles, n)
    sh = as_shifts(shifts, shift_range_px, n, 3, rng)
    cls = _classes(classes, class_fractions, len(vols), n, rng)
    radius = max(mask_radius_of(v, mask_radius) for v in vols)
    if tilt_range is None:
        lo, hi = -90.0, 90.0
        W = np.ones((N, N, N // 2 + 1), dtype=np.float32)
    else:
        lo, hi = (float(t) for t in tilt_range)
        W = wedge_mask((N, N, N), lo, hi, tilt_axis=tilt_axis)
    rot = rotation_matrices(ang)
    stack = np.empty((n, N, N, N), dtype=np.float32)
    batch = max(1, (1 << 24) // (N * N * N))
    for k, vol in enumerate(vols):
        members = np.nonzero(cls == k + 1)[0]
        if members.size == 0:
            continue
        proj = FourierProjector(vol, pad=pad)
        for s in range(0, members.size, batch):
            idx = members[s:s + batch]
            for i, f in zip(idx, _rotated_spectra(proj, rot[idx], sh[idx])):
                stack[i] = _irfft3(f * W, N)

    sigma = _add_wedged_noise(stack, snr, W, ball(N, radius), rng, batch)
    cols = {"phi": ang[:, 2], "theta": ang[:, 1], "psi": ang[:, 0], "sx": sh[:, 0],
            "sy": sh[:, 1], "sz": sh[:, 2], "class_id": cls, "tilt_min_deg": np.full(n, lo),
            "tilt_max_deg": np.full(n, hi), "tilt_axis": np.full(n, str(tilt_axis)),
            "noise_sigma": np.full(n, sigma)}
    return stack, Table(cols, name="subtomograms")


def _add_wedged_noise(stack, snr, W, mask, rng, batch) -> float:
    """Add white noise filtered by the wedge ``W`` at the requested SNR; returns its std."""
    snr = check_snr(snr)
    if snr is None:
        return 0.0
    N = stack.shape[1]
    # fraction of the full spectrum that is measured (Parseval: the filtered white
    # noise keeps this fraction of its variance); the half layout counts columns
    # 1..(N-1)//2 twice
    weight = np.full(W.shape[-1], 2.0)
    weight[0] = 1.0
    if N % 2 == 0:
        weight[-1] = 1.0
    frac = float((W * weight).sum() / N**3)
    if frac <= 0:
        raise UsageError("the tilt range measures nothing; no noise level can be set")
    target = float(masked_variance(stack, mask).mean()) / snr
    sigma0 = np.sqrt(target / frac)
    for s in range(0, stack.shape[0], batch):
        part = stack[s:s + batch]
        white = rng.normal(0.0, sigma0, part.shape).astype(np.float32)
        for j in range(part.shape[0]):
            part[j] += _irfft3(_fft.rfftn(white[j], 3) * W, N)
    return float(np.sqrt(target))
