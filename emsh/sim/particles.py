"""Single-particle images with known orientation, shift, CTF, class and noise.

Image formation (every function here): the volume is projected by
:class:`emsh.kernels.project.FourierProjector` (central slices; a point ``x`` of the
volume lands at ``p = R x`` with ``R = spider_to_matrix(phi, theta, psi)``, the
geometry of SPIDER's ``PJ 3Q``), shifted by ``(sx, sy)`` pixels (positive moves the
content to higher column / row numbers, as SPIDER's ``SH``), multiplied in Fourier
space by the CTF of :func:`emsh.kernels.ctf.ctf_2d` (emsh's sign: positive at zero
frequency, so positive density stays white in the first lobe), and white Gaussian
noise is added. Images are float32 ``(n, N, N)`` with the centre at pixel ``N//2``.

SNR (here and in :mod:`emsh.sim.micrographs`): the variance of the noiseless,
CTF-modulated image over the pixels of the particle mask (a disc of
``mask_radius`` pixels about the centre; by default the radius of the volume's
support, see :func:`emsh.sim._common.support_radius`), averaged over the stack,
divided by the noise variance. One noise level serves the whole stack, as in
real data. The noise is drawn after every pose, so the same seed with
``snr=None`` gives the same images without noise.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from emsh import fft as _fft
from emsh.errors import UsageError
from emsh.kernels.ctf import CTFParams, ctf_2d
from emsh.kernels.project import FourierProjector
from emsh.sim._common import (as_angles, as_shifts, check_count, check_rng, check_size, check_snr,
                              disc, mask_radius_of, masked_variance, random_angles, volumes)
from emsh.table import Table

__all__ = ["simulate_particles", "simulate_2d_views", "random_angles", "hemisphere_views",
           "draw_ctf", "add_noise"]

_BATCH = 256


def draw_ctf(ctf, n: int, rng: np.random.Generator, apix: float,
             defocus_range_A=None) -> CTFParams | None:
    """Per-particle CTF parameters (a batch of ``n``) from a template.

    Args:
        ctf: ``None`` (no CTF) or :class:`CTFParams` with scalars or ``n``-long arrays.
            Its ``apix`` is replaced by ``apix``.
        n: number of particles.
        rng: draws the defoci when ``defocus_range_A`` is given.
        apix: pixel size in Å.
        defocus_range_A: optional ``(low, high)``: each particle's mean defocus is drawn
            uniformly in this range; ``ctf``'s astigmatism (U - V) and angle are kept.
    """
    if ctf is None:
        if defocus_range_A is not None:
            raise UsageError("defocus_range_A needs a ctf (CTFParams) to take the other values from")
        return None
    if not isinstance(ctf, CTFParams):
        raise UsageError(f"ctf must be an emsh.kernels.ctf.CTFParams, got {type(ctf).__name__}")
    b = ctf.batch_size
    if b is not None and b != n:
        raise UsageError(f"ctf holds {b} parameter sets for {n} particles")
    arr = {k: np.array(v) for k, v in replace(ctf, apix=float(apix)).arrays().items()}
    arr = {k: np.broadcast_to(v, (n,)).copy() for k, v in arr.items()}
    if defocus_range_A is not None:
        lo, hi = (float(v) for v in defocus_range_A)
        if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo <= hi):
            raise UsageError(f"defocus_range_A must be 0 <= low <= high Å, got {defocus_range_A}")
        half = 0.5 * (arr["defocus_u_A"] - arr["defocus_v_A"])
        mean = rng.uniform(lo, hi, n)
        arr["defocus_u_A"], arr["defocus_v_A"] = mean + half, mean - half
    return CTFParams(**arr)


def _ctf_columns(params: CTFParams | None, n: int) -> dict[str, np.ndarray]:
    if params is None:
        zero = np.zeros(n)
        return {"defocus_u_A": zero, "defocus_v_A": zero, "astig_angle_deg": zero}
    a = params.arrays()
    return {"defocus_u_A": a["defocus_u_A"], "defocus_v_A": a["defocus_v_A"],
            "astig_angle_deg": a["astig_angle_deg"], "voltage_kV": a["voltage_kV"],
            "cs_mm": a["cs_mm"], "amp_contrast": a["amp_contrast"],
            "bfactor_A2": a["bfactor_A2"], "phase_shift_deg": a["phase_shift_deg"]}


def add_noise(stack: np.ndarray, snr, mask: np.ndarray, rng: np.random.Generator,
              ndim: int = 2) -> float:
    """Add white Gaussian noise in place at the stack's SNR; returns the noise sigma.

    ``sigma^2 = mean_i var(stack_i over mask) / snr`` (see the module docstring).
    """
    snr = check_snr(snr)
    if snr is None:
        return 0.0
    signal = float(masked_variance(stack, mask).mean())
    sigma = float(np.sqrt(signal / snr))
    for s in range(0, stack.shape[0], _BATCH):
        part = stack[s:s + _BATCH]
        part += rng.normal(0.0, sigma, part.shape).astype(np.float32)
    return sigma


def simulate_particles(volume, n: int, rng: np.random.Generator, *, apix: float,
                       angles=None, shifts=None, shift_range_px: float = 0.0, ctf=None,
                       defocus_range_A=None, snr=None, mask_radius=None, classes=None,
                       class_fractions=None, pad: float = 2.0) -> tuple[np.ndarray, Table]:
    """Projections of one or several volumes at known poses, with CTF and noise.

    Args:
        volume: float32 ``(N, N, N)``, or a sequence of same-sized volumes (classes,
            e.g. the values of :func:`emsh.sim.models.conformations`).
        n: number of images.
        rng: source of every random choice (angles, shifts, classes, defoci, noise).
        apix: pixel size in Å (for the CTF).
        angles: ``(n, 3)`` SPIDER angles in doc order (psi, theta, phi), degrees;
            default uniform on SO(3) (:func:`random_angles`).
        shifts: ``(n, 2)`` shifts ``(sx, sy)`` in pixels; default drawn uniformly in
            ``[-shift_range_px, shift_range_px]`` on each axis.
        shift_range_px: see ``shifts``.
        ctf: ``None`` for no CTF, or :class:`emsh.kernels.ctf.CTFParams` (one set
            or ``n`` sets); its ``apix`` is replaced by ``apix``.
        defocus_range_A: ``(low, high)`` to draw each particle's mean defocus
            (see :func:`draw_ctf`).
        snr: signal-to-noise ratio as defined in the module docstring; ``None`` for
            noiseless images.
        mask_radius: radius in pixels of the disc over which the signal variance is
            taken; default the support radius of the volume(s).
        classes: 1-based class of each image (``(n,)`` ints) when several volumes
            are given; default drawn with ``class_fractions`` (default equal).
        class_fractions: probabilities of the classes.
        pad: padding factor of the Fourier projector.

    Returns:
        ``(stack, truth)``: float32 ``(n, N, N)`` and a Table with one row per image:
        ``phi, theta, psi`` (deg), ``sx, sy`` (px), ``class_id`` (1-based),
        ``defocus_u_A, defocus_v_A, astig_angle_deg`` (0 without CTF; with a CTF also
        ``voltage_kV, cs_mm, amp_contrast, bfactor_A2, phase_shift_deg``) and
        ``noise_sigma``.
    """
    check_rng(rng)
    vols = volumes(volume)
    n = check_count(n, "number of particles")
    N = vols[0].shape[0]
    check_size(n, (N, N), "simulate_particles")
    apix = _check_apix(apix)
    ang = random_angles(n, rng) if angles is None else as_angles(angles, n)
    sh = as_shifts(shifts, shift_range_px, n, 2, rng)
    cls = _classes(classes, class_fractions, len(vols), n, rng)
    params = draw_ctf(ctf, n, rng, apix, defocus_range_A)
    radius = max(mask_radius_of(v, mask_radius) for v in vols)

    stack = np.empty((n, N, N), dtype=np.float32)
    for k, vol in enumerate(vols):
        members = np.nonzero(cls == k + 1)[0]
        if members.size == 0:
            continue
        proj = FourierProjector(vol, pad=pad)
        for s in range(0, members.size, _BATCH):
            idx = members[s:s + _BATCH]
            F = proj.slices(ang[idx], sh[idx])
            if params is not None:
                F = F * ctf_2d(params.take(idx), (N, N))
            stack[idx] = _fft.irfftn(F, (N, N))
    sigma = add_noise(stack, snr, disc(N, radius), rng)

    cols = {"phi": ang[:, 2], "theta": ang[:, 1], "psi": ang[:, 0],
            "sx": sh[:, 0], "sy": sh[:, 1], "class_id": cls}
    cols.update(_ctf_columns(params, n))
    cols["noise_sigma"] = np.full(n, sigma)
    return stack, Table(cols, name="particles")


def hemisphere_views(n_views: int) -> np.ndarray:
    """``n_views`` well-spread projection directions on the upper hemisphere.

    A Fibonacci spiral: ``cos(theta_i) = 1 - (i + 1/2) / n``, ``phi_i = i * 137.508``
    degrees (golden angle), psi = 0. Restricting to theta < 90 keeps any two views
    from being mirror images of one another (opposite directions).

    Returns:
        ``(n_views, 3)`` float64 (psi, theta, phi), degrees.
    """
    n = check_count(n_views, "number of views")
    i = np.arange(n, dtype=np.float64)
    theta = np.degrees(np.arccos(1.0 - (i + 0.5) / n))
    phi = np.mod(i * 180.0 * (3.0 - np.sqrt(5.0)), 360.0)
    return np.stack([np.zeros(n), theta, phi], axis=1)


def simulate_2d_views(volume, n_views: int, n_per_view: int, rng: np.random.Generator, *,
                      apix: float, view_angles=None, shift_range_px: float = 0.0, ctf=None,
                      defocus_range_A=None, snr=None, mask_radius=None, shuffle: bool = True,
                      pad: float = 2.0) -> tuple[np.ndarray, Table]:
    """Images of a few known views, each turned in plane and shifted: 2D classification data.

    Every image shows one of ``n_views`` projection directions (phi, theta), turned
    by a random in-plane angle psi (uniform in [0, 360)) and shifted by a random
    ``(sx, sy)`` within ``shift_range_px``; psi enters the projector exactly
    (``R = Rz(psi) Ry(theta) Rz(phi)``), so no image is interpolated twice.

    Args:
        volume: float32 ``(N, N, N)``.
        n_views: number of distinct views.
        n_per_view: images per view.
        rng: source of in-plane angles, shifts, defoci, order and noise.
        apix: pixel size in Å.
        view_angles: ``(n_views, 3)`` (psi, theta, phi) of the views (psi ignored);
            default :func:`hemisphere_views`.
        shift_range_px, ctf, defocus_range_A, snr, mask_radius, pad: as in
            :func:`simulate_particles`.
        shuffle: put the images in random order (else grouped by view).

    Returns:
        ``(stack, truth)`` as :func:`simulate_particles`, plus the column ``view_id``
        (1-based). psi is the in-plane angle of each image.
    """
    check_rng(rng)
    nv = check_count(n_views, "number of views")
    per = check_count(n_per_view, "images per view")
    views = hemisphere_views(nv) if view_angles is None else as_angles(view_angles, nv)
    view_id = np.repeat(np.arange(1, nv + 1), per)
    if shuffle:
        view_id = view_id[rng.permutation(view_id.size)]
    ang = views[view_id - 1].copy()
    ang[:, 0] = rng.uniform(0.0, 360.0, view_id.size)
    stack, truth = simulate_particles(volume, view_id.size, rng, apix=apix, angles=ang,
                                      shift_range_px=shift_range_px, ctf=ctf,
                                      defocus_range_A=defocus_range_A, snr=snr,
                                      mask_radius=mask_radius, pad=pad)
    truth["view_id"] = view_id
    truth.name = "views"
    return stack, truth


def _check_apix(apix) -> float:
    a = float(apix)
    if not np.isfinite(a) or a <= 0:
        raise UsageError(f"apix must be > 0 Å/pixel, got {apix}")
    return a


def _classes(classes, fractions, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
    if classes is not None:
        c = np.asarray(classes)
        if c.shape != (n,) or c.dtype.kind not in "iu" or c.min() < 1 or c.max() > k:
            raise UsageError(f"classes must be ({n},) integers in 1..{k}")
        return c.astype(np.int64)
    if k == 1:
        return np.ones(n, dtype=np.int64)
    p = np.full(k, 1.0 / k) if fractions is None else np.asarray(fractions, dtype=np.float64)
    if p.shape != (k,) or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
        raise UsageError(f"class_fractions must be {k} non-negative numbers summing to 1")
    return rng.choice(k, size=n, p=p).astype(np.int64) + 1
