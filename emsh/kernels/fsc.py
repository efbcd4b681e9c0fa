"""Fourier shell (3D) and ring (2D) correlation, resolution, SPIDER's FSC/RF 3 doc rows.

Shells follow SPIDER (``pr3d.f``/``pr3db.f``): with shell width ``w`` (in
reciprocal-space index units, SPIDER's "shell width" answer) there are
``inc = int(max(shape) / w) // 2 + 1`` shells; the voxel at normalised frequency
``r`` (cycles/pixel, each axis scaled by its own size) goes to shell
``L = nint(2 r (inc - 1)) + 1`` (1-based), shells with ``L > inc`` are dropped and
shell ``L`` is reported at ``(L - 1) / (inc - 1) / 2`` cycles/pixel. The origin
is left out and empty shells are not reported, so with ``w = 1`` the first
reported shell is number 2 (frequency ``1/n``) and with ``w = 0.5`` it is 3.
Each half-spectrum voxel counts twice (its Hermitian partner), as in SPIDER.

FSC = sum Re(F1 conj F2) / sqrt(sum |F1|^2 sum |F2|^2) per shell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emsh import fft as _fft
from emsh.errors import UsageError

__all__ = ["ShellStats", "shell_stats", "fsc", "resolution", "spider_mask",
           "fsc_doc_rows", "rf3_doc_rows", "ssnr_from_fsc"]

_TNM = float(np.log(1.0 / np.finfo(np.float32).tiny))   # SPIDER's ALOG(1/TINY)
_NSCALE = 20


@dataclass
class ShellStats:
    """Per-shell sums of two transforms (only shells that hold voxels).

    Attributes:
        keys: 1-based shell numbers ``L`` (SPIDER's doc keys).
        freq: shell frequency in cycles/pixel.
        count: voxels per shell (each half-spectrum voxel counted twice).
        cross: sum of Re(F1 conj F2); ``power1``, ``power2``: sums of ``|F|^2``.
        inc: number of shells including empty ones.
        pr, amp: phase-residue sums per scale ``(nscale, shells)`` (RF 3 only, else None).
    """
    keys: np.ndarray
    freq: np.ndarray
    count: np.ndarray
    cross: np.ndarray
    power1: np.ndarray
    power2: np.ndarray
    inc: int
    pr: np.ndarray | None = None
    amp: np.ndarray | None = None

    @property
    def fsc(self) -> np.ndarray:
        """The correlation per shell (0 where either power is zero)."""
        den = self.power1 * self.power2
        ok = (self.power1 > 0) & (self.power2 > 0)
        return np.where(ok, self.cross / np.sqrt(np.where(ok, den, 1.0)), 0.0)


def spider_mask(shape: tuple[int, ...], radius: float) -> np.ndarray:
    """SPIDER's FSC mask: ``exp(-0.5 (r/radius)^4)`` about the centre ``n//2`` (float32)."""
    if not radius > 0:
        raise UsageError(f"mask radius must be positive, got {radius}")
    grids = np.meshgrid(*[(np.arange(s, dtype=np.float32) - s // 2) ** 2 for s in shape],
                        indexing="ij")
    eee = np.float32(0.5) * sum(grids) / np.float32(radius) ** 2
    val = np.exp(np.float32(-0.5) * (np.float32(2) * eee) ** 2)
    return np.where(eee >= _TNM, np.float32(0), val).astype(np.float32)


def _prepare(a, b, mask) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if a.shape != b.shape:
        raise UsageError(f"FSC needs equal shapes, got {a.shape} and {b.shape}")
    if a.ndim not in (2, 3) or min(a.shape) < 2:
        raise UsageError(f"FSC needs 2D images or 3D volumes, got shape {a.shape}")
    if mask is not None:
        if np.isscalar(mask) or np.ndim(mask) == 0:
            m = spider_mask(a.shape, float(mask)) if float(mask) > 0 else None
        else:
            m = np.asarray(mask, dtype=np.float32)
            if m.shape != a.shape:
                raise UsageError(f"mask shape {m.shape} differs from the data {a.shape}")
        if m is not None:
            a, b = a * m, b * m
    return a, b


def _shell_index(shape: tuple[int, ...], width: float, cone: str | None, max_tilt: float):
    """Shell number per rfft voxel (0 = not used) and the shell count ``inc``."""
    if not width > 0:
        raise UsageError(f"shell width must be positive, got {width}")
    shp = tuple(shape) if len(shape) == 3 else (1,) + tuple(shape)
    nz, ny, nx = shp
    inc = int(np.float32(max(shp)) / np.float32(width)) // 2 + 1
    nd2, nr2, ns2 = nx // 2, ny // 2, max(1, nz // 2)
    iii = np.arange(nx // 2 + 1)
    iij = np.arange(ny)
    iij = np.where(iij > nr2, iij - ny, iij)
    iik = np.arange(nz)
    iik = np.where(iik > ns2, iik - nz, iik)
    f32 = np.float32
    pii = (iii.astype(f32) / f32(nd2)) ** 2
    pj = (iij.astype(f32) / f32(nr2)) ** 2
    pk = (iik.astype(f32) / f32(ns2)) ** 2
    r = np.sqrt(pii[None, None, :] + pj[None, :, None] + pk[:, None, None]) * f32(0.5)
    K, J, I = np.meshgrid(iik, iij, iii, indexing="ij")
    keep = (I > 0) | ((K >= 0) & ((J >= 0) | (K != 0)))
    keep &= r > 0
    if cone is not None and max_tilt != 90.0:
        zang = np.float32((90.0 - max_tilt) * np.pi / 180.0)
        pkb = np.broadcast_to(pk[:, None, None], r.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            if cone.upper() == "C":
                ang = np.arccos(np.minimum(1.0, np.sqrt(pkb) / np.where(r > 0, r, 1)))
            else:
                r1 = np.sqrt(pii[None, None, :] + pk[:, None, None]) * f32(0.5)
                ang = np.where(r1 == 0, 0.0, np.arccos(np.minimum(1.0, np.sqrt(pkb)
                                                                  / np.where(r1 > 0, r1, 1))))
        keep &= ~(ang < zang)
    L = np.floor(r * f32(2 * (inc - 1)) + f32(0.5)).astype(np.int64) + 1
    keep &= L <= inc
    return np.where(keep, L, 0), inc


def shell_stats(a, b, width: float = 1.0, mask=None, phase_residue: bool = False,
                scales: tuple[float, float] = (0.2, 2.0), cone: str | None = None,
                max_tilt: float = 90.0) -> ShellStats:
    """Per-shell sums of the transforms of ``a`` and ``b`` (SPIDER's shell scheme).

    Args:
        a, b: real images ``(ny, nx)`` or volumes ``(nz, ny, nx)`` of equal shape.
        width: shell width in reciprocal index units (SPIDER's answer; 1 = one voxel).
        mask: ``None``, a radius (SPIDER's super-Gaussian mask) or a mask array.
        phase_residue: also compute RF 3's phase-residue sums over ``scales``.
        scales: lower and upper amplitude scale of ``b`` for the phase residue.
        cone: ``"C"`` (missing cone) or ``"W"`` (wedge) exclusion for RF 3, with
            ``max_tilt`` in degrees; 90 excludes nothing.
    """
    a, b = _prepare(a, b, mask)
    L, inc = _shell_index(a.shape, width, cone, max_tilt)
    fa = _fft.rfftn(a, ndim=a.ndim).reshape(L.shape)
    fb = _fft.rfftn(b, ndim=b.ndim).reshape(L.shape)
    sel = L > 0
    idx = L[sel]
    A, B = fa[sel].astype(np.complex128), fb[sel].astype(np.complex128)
    nb = inc + 1
    count = 2 * np.bincount(idx, minlength=nb)
    cross = np.bincount(idx, weights=(A * np.conj(B)).real, minlength=nb)
    p1 = np.bincount(idx, weights=np.abs(A) ** 2, minlength=nb)
    p2 = np.bincount(idx, weights=np.abs(B) ** 2, minlength=nb)
    pr = amp = None
    if phase_residue:
        pha = np.where(A.real != 0, np.degrees(np.arctan2(A.imag, A.real)), 0.0)
        phb = np.where(B.real != 0, np.degrees(np.arctan2(B.imag, B.real)), 0.0)
        dph = pha - phb
        dph = np.where(dph > 180, 360 - dph, dph)
        dph = np.where(dph < -180, 360 + dph, dph)
        qa, qb = np.abs(A), np.abs(B)
        s1, s2 = scales
        ds = (s2 - s1) / (_NSCALE - 1)
        pr = np.empty((_NSCALE, nb))
        amp = np.empty((_NSCALE, nb))
        for i in range(_NSCALE):
            mean_amp = 0.5 * (qa + qb * (s1 + i * ds))
            pr[i] = np.bincount(idx, weights=mean_amp * dph * dph, minlength=nb)
            amp[i] = np.bincount(idx, weights=mean_amp, minlength=nb)
    keys = np.nonzero(count[1:])[0] + 1
    freq = (keys - 1) / (inc - 1) * 0.5 if inc > 1 else np.zeros(keys.shape)
    return ShellStats(keys=keys, freq=freq, count=count[keys], cross=cross[keys],
                      power1=p1[keys], power2=p2[keys], inc=inc,
                      pr=None if pr is None else pr[:, keys],
                      amp=None if amp is None else amp[:, keys])


def fsc(a, b, mask=None, width: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """FSC of two volumes or FRC of two images.

    Args:
        a, b: real arrays of equal shape, 2D or 3D.
        mask: ``None``, a radius in pixels (SPIDER's ``exp(-0.5 (r/R)^4)`` mask) or an array.
        width: shell width in reciprocal index units (1 = one Fourier voxel).

    Returns:
        ``(freq, curve)``: shell frequencies in cycles/pixel and the correlation.
    """
    st = shell_stats(a, b, width=width, mask=mask)
    return st.freq, st.fsc


def _crossing(keys, freq, curve, threshold):
    """SPIDER's rule: the last shell (key >= 3) where the curve falls below ``threshold``
    from a previous reported shell at or above it. Returns (prev_key, fraction, f0, f1)."""
    hit = None
    for i in range(1, len(curve)):
        if keys[i] >= 3 and curve[i - 1] >= threshold and curve[i] < threshold:
            hit = i
    if hit is None:
        return None
    c0, c1 = curve[hit - 1], curve[hit]
    frac = (threshold - c0) / (c1 - c0)
    return keys[hit] - 1, frac, freq[hit - 1], freq[hit]


def resolution(freq, curve, threshold: float = 0.5) -> float:
    """Frequency (cycles/pixel) where the curve last falls below ``threshold``.

    Linear interpolation between the two shells around the last downward crossing,
    as SPIDER's ``FSC`` does. Without a crossing the last frequency is returned.
    """
    freq = np.asarray(freq, dtype=np.float64)
    curve = np.asarray(curve, dtype=np.float64)
    if freq.size == 0:
        raise UsageError("resolution needs a non-empty curve")
    keys = np.arange(freq.size) + 3          # every crossing after the first shell counts
    c = _crossing(keys, freq, curve, threshold)
    if c is None:
        return float(freq[-1])
    _, frac, f0, f1 = c
    return float(f0 + frac * (f1 - f0))


def _registers(st: ShellStats, curve: np.ndarray, cutoff: float):
    """SPIDER's (shell, frequency) registers; without a crossing SPIDER puts the last
    shell number and the last FSC *value* (not a frequency) there."""
    c = _crossing(st.keys, st.freq, curve, cutoff)
    if c is None:
        return float(st.keys[-1]), float(curve[-1])
    prev_key, frac, f0, f1 = c
    return float(prev_key + frac), float(f0 + frac * (f1 - f0))


def fsc_doc_rows(a, b, width: float = 0.5, mask_radius: float = 0.0, voxel_size: float = 1.0,
                 cutoff: float = 0.5):
    """The rows and registers SPIDER's ``FSC`` operation writes.

    Args:
        a, b: real volumes (or images).
        width: shell width answer (reciprocal space units).
        mask_radius: super-Gaussian mask radius in pixels; 0 = no mask.
        voxel_size: pixel size in Å.
        cutoff: FSC threshold for the registers.

    Returns:
        ``(rows, registers)``: rows ``[(key, [norm_freq, resolution_A, fsc,
        sqrt(fsc+), sqrt(2 fsc+/(fsc+ + 1))]), ...]`` (``fsc+ = max(fsc, 0)``) and
        ``(shell, frequency, resolution_A)``.
    """
    st = shell_stats(a, b, width=width, mask=mask_radius if mask_radius > 0 else None)
    curve = st.fsc
    fmax = 0.5 / float(voxel_size)
    rows = []
    for key, f, c in zip(st.keys, st.freq, curve):
        res = 999999.0 if f == 0 else 0.5 / (fmax * f)
        z = max(float(c), 0.0)
        s1, s2 = (0.0, 0.0) if z == 0 else (np.sqrt(z), np.sqrt(2 * z / (z + 1)))
        rows.append((int(key), [float(f), float(res), float(c), float(s1), float(s2)]))
    shell, sf = _registers(st, curve, cutoff)
    res = 0.5 / (fmax * sf) if sf != 0 else 0.0
    return rows, (shell, sf, float(res))


def rf3_doc_rows(a, b, width: float = 0.5, scales: tuple[float, float] = (0.2, 2.0),
                 cone: str = "C", max_tilt: float = 90.0, factor: float = 3.0):
    """The rows and registers SPIDER's ``RF 3`` writes (phase residue and FSC).

    Returns:
        ``(rows, registers)``: rows ``[(key, [norm_freq, dph_degrees, fsc, fsc_crit,
        voxels]), ...]`` and ``(shell, frequency)`` at FSC 0.5. ``fsc_crit`` is
        ``min(1, factor / sqrt(voxels))``. As in SPIDER, the phase residue is
        the amplitude-weighted RMS phase difference at the lower ``scales`` value
        (SPIDER's search for the best scale never accepts a candidate).
    """
    st = shell_stats(a, b, width=width, phase_residue=True, scales=scales, cone=cone,
                     max_tilt=max_tilt)
    curve = st.fsc
    rows = []
    for i, key in enumerate(st.keys):
        amp, pr = st.amp[0, i], st.pr[0, i]
        dph = float(np.sqrt(pr / amp)) if amp > np.finfo(np.float32).tiny else 0.0
        crit = min(1.0, factor / np.sqrt(float(st.count[i])))
        rows.append((int(key), [float(st.freq[i]), dph, float(curve[i]), float(crit),
                                float(st.count[i])]))
    return rows, _registers(st, curve, 0.5)


def ssnr_from_fsc(curve, halves: bool = True) -> np.ndarray:
    """Spectral SNR from an FSC curve.

    Args:
        curve: FSC values.
        halves: ``True`` when the FSC is between two half-set maps: returns the SNR
            of the full map, ``2 FSC / (1 - FSC)``. ``False``: ``FSC / (1 - FSC)``,
            the SNR of each of the two maps.

    Values are clipped to FSC in [0, 1 - 1e-6].
    """
    c = np.clip(np.asarray(curve, dtype=np.float64), 0.0, 1.0 - 1e-6)
    s = c / (1.0 - c)
    return 2.0 * s if halves else s
