"""Micrographs with particles at known positions, orientations and defocus.

A micrograph is built as the microscope would: particle projections (see
:mod:`emsh.sim.particles` for the geometry) are placed at non-overlapping sub-pixel
positions, the CTF acts on the whole micrograph at once (so each particle's signal
spreads beyond its box, as in real data; the micrograph is zero-padded by a box
width first, so nothing wraps around), then white Gaussian noise and a smooth
low-frequency background (uneven ice, a Gaussian-filtered random field) are added.

Contrast: the CTF has emsh's sign (positive at zero frequency), so particles are
white at low resolution, as in extracted particle images; a raw micrograph from a
microscope has the opposite sign (negate the result to mimic one).

Positions: ``x`` is the 0-based column and ``y`` the 0-based row of the particle
centre (the point of the volume at voxel ``N//2``), sub-pixel. Every particle's
``N x N`` box, with its centre pixel ``round(x), round(y)`` at box index
``N//2``, lies inside the micrograph.

SNR: the variance of the noiseless CTF-modulated micrograph over a disc of
``mask_radius`` pixels around each particle, averaged over the particles, divided by
the white-noise variance (the background is not counted as noise).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from emsh import fft as _fft
from emsh.errors import OperationError, UsageError
from emsh.kernels.ctf import CTFParams, ctf_2d
from emsh.kernels.project import FourierProjector
from emsh.sim._common import (as_angles, check_count, check_rng, check_size, check_snr, disc,
                              mask_radius_of, random_angles, volumes)
from emsh.sim.particles import _check_apix, _classes
from emsh.table import Table

__all__ = ["simulate_micrograph", "simulate_micrograph_set", "place_particles"]

_MAX_TRIES = 2000   # candidate positions drawn per particle before giving up


def place_particles(shape, box: int, n: int, min_distance: float,
                    rng: np.random.Generator) -> np.ndarray:
    """Random sub-pixel centres ``(n, 2)`` as (x, y), pairwise at least ``min_distance`` apart.

    Candidates are drawn uniformly where a ``box`` window around the rounded centre
    fits in the micrograph and kept if far enough from those already kept (dart
    throwing), so the result is deterministic for a seed.

    Raises:
        OperationError: fewer than ``n`` centres fit.
    """
    H, W = shape
    lo = box // 2
    hi_x, hi_y = W - box + box // 2, H - box + box // 2
    if hi_x < lo or hi_y < lo:
        raise UsageError(f"micrograph {shape} is smaller than the particle box {box}")
    d2 = float(min_distance) ** 2
    kept = np.empty((n, 2))
    count = 0
    tries = 0
    while count < n:
        if tries > _MAX_TRIES * n:
            raise OperationError(f"only {count} of {n} particles fit in a {H}x{W} micrograph "
                                 f"{min_distance:.1f} pixels apart; use fewer particles, a "
                                 f"larger micrograph or a smaller min_distance")
        cand = np.column_stack([rng.uniform(lo, hi_x, 256), rng.uniform(lo, hi_y, 256)])
        for c in cand:
            tries += 1
            if count and np.min(np.sum((kept[:count] - c) ** 2, axis=1)) < d2:
                continue
            kept[count] = c
            count += 1
            if count == n:
                break
    return kept


def _paste(canvas: np.ndarray, images: np.ndarray, ix: np.ndarray, iy: np.ndarray) -> None:
    """Add ``images`` (k, N, N) into ``canvas`` with their pixel ``N//2`` at (ix, iy)."""
    N = images.shape[1]
    W = canvas.shape[1]
    off = np.arange(N) - N // 2
    rows = iy[:, None, None] + off[None, :, None]
    cols = ix[:, None, None] + off[None, None, :]
    np.add.at(canvas.reshape(-1), (rows * W + cols).ravel(), images.ravel())


def _smooth_field(shape, sigma_px: float, rng: np.random.Generator) -> np.ndarray:
    """A random field low-passed by a Gaussian of ``sigma_px``, scaled to unit std."""
    f = ndimage.gaussian_filter(rng.normal(size=shape), sigma_px, mode="wrap")
    sd = f.std()
    return f / sd if sd > 0 else f


def simulate_micrograph(volume, shape, n_particles: int, rng: np.random.Generator, *,
                        apix: float, defocus_A: float | None = 15000.0,
                        astigmatism_A: float = 0.0, astig_angle_deg: float = 0.0,
                        kV: float = 300.0, cs_mm: float = 2.7, amp_contrast: float = 0.1,
                        bfactor_A2: float = 0.0, snr=None, min_distance: float | None = None,
                        angles=None, background: float = 0.5, mask_radius=None,
                        classes=None, pad: float = 2.0) -> tuple[np.ndarray, Table]:
    """One micrograph with ``n_particles`` copies of the volume at random poses.

    Args:
        volume: float32 ``(N, N, N)`` or a sequence of same-sized volumes (classes,
            drawn with equal probability unless ``classes`` gives them).
        shape: micrograph ``(rows, columns)`` in pixels.
        n_particles: number of particles.
        rng: source of positions, angles, classes and noise.
        apix: pixel size in Å.
        defocus_A: mean defocus (underfocus positive, Å); ``None`` for no CTF.
        astigmatism_A: ``U - V`` in Å (U = defocus + astigmatism/2).
        astig_angle_deg: angle of U from the x axis (emsh/RELION convention).
        kV, cs_mm, amp_contrast, bfactor_A2: the other CTF parameters.
        snr: see the module docstring; ``None`` for no noise and no background.
        min_distance: least distance between centres in pixels; default
            ``2 * mask_radius + 1`` (particles do not touch).
        angles: ``(n, 3)`` (psi, theta, phi) in degrees; default uniform on SO(3).
        background: standard deviation of the smooth background in units of the
            white-noise sigma (0 for none); its correlation length is a sixteenth of
            the micrograph's smaller side.
        mask_radius: particle radius in pixels; default the volume's support radius.
        classes: 1-based class per particle for several volumes.
        pad: padding factor of the Fourier projector.

    Returns:
        ``(micrograph, truth)``: float32 ``(rows, columns)`` and a Table with ``x, y``
        (0-based column and row of each centre), ``phi, theta, psi``, ``class_id``,
        ``defocus_u_A, defocus_v_A, astig_angle_deg`` (0 without CTF; with a CTF also
        ``voltage_kV, cs_mm, amp_contrast``) and ``noise_sigma``.
    """
    check_rng(rng)
    vols = volumes(volume)
    N = vols[0].shape[0]
    H, W = _shape2(shape)
    n = check_count(n_particles, "number of particles")
    check_size(1, (H + N, W + N), "simulate_micrograph")
    apix = _check_apix(apix)
    radius = max(mask_radius_of(v, mask_radius) for v in vols)
    dmin = 2.0 * radius + 1.0 if min_distance is None else float(min_distance)
    if not np.isfinite(dmin) or dmin < 0:
        raise UsageError(f"min_distance must be >= 0 pixels, got {min_distance}")
    bg = float(background)
    if not np.isfinite(bg) or bg < 0:
        raise UsageError(f"background must be >= 0, got {background}")

    xy = place_particles((H, W), N, n, dmin, rng)
    ang = random_angles(n, rng) if angles is None else as_angles(angles, n)
    cls = _classes(classes, None, len(vols), n, rng)
    ixy = np.floor(xy + 0.5).astype(np.int64)
    frac = xy - ixy

    m = N                                        # zero margin against CTF wrap-around
    Hp, Wp = _fft.good_size(H + 2 * m), _fft.good_size(W + 2 * m)
    canvas = np.zeros((Hp, Wp), dtype=np.float32)
    for k, vol in enumerate(vols):
        idx = np.nonzero(cls == k + 1)[0]
        if idx.size:
            proj = FourierProjector(vol, pad=pad).project(ang[idx], frac[idx])
            _paste(canvas, proj, ixy[idx, 0] + m, ixy[idx, 1] + m)

    cols = {"x": xy[:, 0], "y": xy[:, 1], "phi": ang[:, 2], "theta": ang[:, 1],
            "psi": ang[:, 0], "class_id": cls}
    if defocus_A is None:
        cols.update(defocus_u_A=np.zeros(n), defocus_v_A=np.zeros(n), astig_angle_deg=np.zeros(n))
    else:
        u = float(defocus_A) + 0.5 * float(astigmatism_A)
        v = float(defocus_A) - 0.5 * float(astigmatism_A)
        params = CTFParams(u, v, float(astig_angle_deg), float(kV), float(cs_mm),
                           float(amp_contrast), float(bfactor_A2), 0.0, apix)
        F = _fft.rfftn(canvas) * ctf_2d(params, (Hp, Wp))
        canvas = _fft.irfftn(F, (Hp, Wp))
        cols.update(defocus_u_A=np.full(n, u), defocus_v_A=np.full(n, v),
                    astig_angle_deg=np.full(n, float(astig_angle_deg)),
                    voltage_kV=np.full(n, float(kV)), cs_mm=np.full(n, float(cs_mm)),
                    amp_contrast=np.full(n, float(amp_contrast)))
    mic = np.ascontiguousarray(canvas[m:m + H, m:m + W])

    sigma = 0.0
    snr = check_snr(snr)
    if snr is not None:
        sigma = float(np.sqrt(_particle_variance(mic, ixy, N, radius) / snr))
        noise = rng.normal(0.0, sigma, (H, W))
        if bg > 0:
            noise += bg * sigma * _smooth_field((H, W), max(1.0, min(H, W) / 16.0), rng)
        mic += noise.astype(np.float32)
    cols["noise_sigma"] = np.full(n, sigma)
    return mic, Table(cols, name="particles")


def _particle_variance(mic: np.ndarray, ixy: np.ndarray, N: int, radius: float) -> float:
    """Mean over particles of the micrograph's variance in a disc around each centre."""
    mask = disc(N, radius)
    off = np.arange(N) - N // 2
    rows = ixy[:, 1, None, None] + off[None, :, None]
    cols = ixy[:, 0, None, None] + off[None, None, :]
    win = mic[rows, cols]                                        # (n, N, N)
    vals = win.reshape(win.shape[0], -1)[:, mask.ravel()].astype(np.float64)
    return float(vals.var(axis=1).mean())


def _shape2(shape) -> tuple[int, int]:
    try:
        H, W = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise UsageError(f"micrograph shape must be (rows, columns), got {shape!r}") from None
    if H < 1 or W < 1:
        raise UsageError(f"micrograph shape must be positive, got {shape!r}")
    return H, W


def simulate_micrograph_set(volume, shape, n_particles: int, rng: np.random.Generator, *,
                            defocus_values_A, **kwargs) -> tuple[np.ndarray, Table]:
    """Several micrographs, one per defocus value (a defocus series for CTF work).

    Args:
        volume, shape, n_particles, rng: as :func:`simulate_micrograph` (per micrograph).
        defocus_values_A: mean defocus of each micrograph (Å).
        **kwargs: passed on to :func:`simulate_micrograph` (not ``defocus_A``).

    Returns:
        ``(stack, truth)``: float32 ``(m, rows, columns)`` and the concatenated truth
        with a 1-based ``micrograph`` column first.
    """
    if "defocus_A" in kwargs:
        raise UsageError("simulate_micrograph_set: give defocus_values_A, not defocus_A")
    dfs = np.atleast_1d(np.asarray(defocus_values_A, dtype=np.float64))
    if dfs.ndim != 1 or dfs.size == 0:
        raise UsageError("defocus_values_A must be a non-empty list of defoci in Å")
    H, W = _shape2(shape)
    check_size(dfs.size, (H, W), "simulate_micrograph_set")
    out = np.empty((dfs.size, H, W), dtype=np.float32)
    tables = []
    for i, df in enumerate(dfs):
        out[i], t = simulate_micrograph(volume, (H, W), n_particles, rng, defocus_A=float(df),
                                        **kwargs)
        tables.append(t)
    cols = {"micrograph": np.repeat(np.arange(1, dfs.size + 1), [len(t) for t in tables])}
    for c in tables[0].columns:
        cols[c] = np.concatenate([t[c] for t in tables])
    return out, Table(cols, name="particles")
