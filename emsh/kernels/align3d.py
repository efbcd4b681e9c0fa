"""3D alignment of subtomograms in Fourier space with missing-region (constrained) correlation.

Conventions:

* Volumes are cubic float32 ``(n, n, n)`` in (z, y, x) order, centre at index ``n//2``.
* A rotation ``R`` (3x3, acting on (x, y, z) column vectors, e.g.
  :func:`emsh.geom.euler.spider_to_matrix`) turns a volume's content:
  ``v_R(p) = v(Rᵀ p)``, as :func:`emsh.kernels.transform.rotate3d`. Its spectrum
  (about the centre) is ``V_R(k) = V(Rᵀ k)``.
* The model is ``subtomo(p) ≈ ref_R(p - s)``: the reference turned by ``R`` and moved
  by ``s = (dz, dy, dx)`` voxels (positive = towards higher indices).
* Spectra are numpy rfft layout ``(n, n, n//2+1)`` of the volume with its centre moved
  to index 0 (``rfftn(ifftshift(v))``); frequencies in cycles/pixel.

The score of ``(R, s)`` is the normalised cross-correlation over the Fourier region
measured in both volumes (constrained correlation, Förster et al. 2008; Xmipp
``ml_tomo --maxCC``)::

    W(k)  = band(k) · M_sub(k) · M_ref(Rᵀ k)            (DC excluded)
    cc(s) = Σ_k W X(k) conj(V_R(k)) e^{2πi k·s} / sqrt(Σ_k W |X|² · Σ_k W |V_R|²)

with sums over the full spectrum (Hermitian halves counted twice). ``cc`` for all
shifts comes from one batched inverse FFT per chunk of rotations.

The reference is rotated in Fourier space: its transform is zero-padded (``pad``
times the box), pre-divided by the trilinear kernel's real-space profile
(``sinc²(x/P)`` per axis, the gridding correction) and sampled with trilinear
interpolation at ``Rᵀ k`` inside the band limit.
"""

from __future__ import annotations

import numpy as np

from emsh import fft as _fft
from emsh.errors import UsageError
from emsh.kernels.wedge import MissingRegion, frequency_grid

__all__ = ["FourierReference", "prepare_reference", "rotate_fourier", "align3d",
           "refine_local", "local_rotations", "rotvec_to_matrix"]

_F = np.float32
_MAX_ELEMENTS = 2**31         # refuse absurd requests before allocating
_CHUNK_ELEMENTS = 2**23       # real voxels per batched inverse FFT (32 MiB of float32)


# ---------------------------------------------------------------- reference spectra


class FourierReference:
    """A reference prepared for Fourier-space rotation (see :func:`prepare_reference`).

    Attributes:
        n: box size of the reference.
        size: padded box size ``P``.
        spectrum: complex64 ``(P, P, P//2+1)`` rfft of the padded, centred volume.
    """

    def __init__(self, spectrum: np.ndarray, n: int):
        self.spectrum, self.n, self.size = spectrum, int(n), int(spectrum.shape[0])
        self._ext = _extend(spectrum)

    def sample(self, pts: np.ndarray) -> np.ndarray:
        """Trilinear samples at ``pts (..., 3)``, (z, y, x) in padded-grid units."""
        return _sample(self._ext, self.size, pts)


def _cube(vol, what: str) -> np.ndarray:
    v = np.ascontiguousarray(np.asarray(vol, dtype=_F))
    if v.ndim != 3 or not (v.shape[0] == v.shape[1] == v.shape[2]) or v.shape[0] < 4:
        raise UsageError(f"{what}: expected a cubic volume (n, n, n) with n >= 4, got shape {v.shape}")
    if v.size > _MAX_ELEMENTS // 64:
        raise UsageError(f"{what}: volume of shape {v.shape} is too large for 3D alignment")
    if not np.all(np.isfinite(v)):
        raise UsageError(f"{what}: volume contains NaN or infinite values")
    return v


def prepare_reference(ref, pad: float = 2.0, correct: bool = True) -> FourierReference:
    """Pad and transform a reference once, for many :func:`rotate_fourier` calls.

    Args:
        ref: cubic volume ``(n, n, n)``, centre at ``n//2``.
        pad: padding factor (>= 1); the padded size is even and at least ``pad * n``.
            2 keeps trilinear interpolation errors at a few percent.
        correct: divide by the trilinear kernel's real-space profile first, so that
            rotated samples are unbiased away from the grid points. (Rotations that
            map the grid onto itself, such as the identity, then read the
            over-corrected ``ref / profile``; on blob phantoms at pad 2 this moves the
            sub-voxel shift by up to 0.1 voxel, 0.04 at pad 3.)
    """
    v = _cube(ref, "reference")
    n = v.shape[0]
    pad = float(pad)
    if not (np.isfinite(pad) and 1.0 <= pad <= 8.0):
        raise UsageError(f"pad must be between 1 and 8, got {pad}")
    P = int(np.ceil(pad * n - 1e-9))
    P += P % 2
    if correct:
        u = (np.arange(n) - n // 2) / P
        p = np.sinc(u) ** 2
        v = v / (p[:, None, None] * p[None, :, None] * p[None, None, :]).astype(_F)
    big = np.zeros((P, P, P), dtype=_F)
    o = P // 2 - n // 2
    big[o:o + n, o:o + n, o:o + n] = v
    return FourierReference(_fft.rfftn(np.fft.ifftshift(big), ndim=3), n)


def _extend(A: np.ndarray) -> np.ndarray:
    """rfft-layout ``A (P, P, hx+1)`` re-laid for gathers without wrapping.

    Planes z and y run over frequencies ``-h .. h+1`` (``h = P//2``, wrapped copies),
    and one column is added at x = hx+1, filled from the Hermitian mate
    ``conj(A(-z, -y, P - hx - 1))``. Real arrays (masks) are extended the same way.
    """
    P, hx = A.shape[0], A.shape[2] - 1
    h = P // 2
    zi = np.arange(-h, h + 2) % P
    E = np.empty((len(zi), len(zi), hx + 2), dtype=A.dtype)
    E[:, :, :hx + 1] = A[zi][:, zi]
    mate = A[(-zi) % P][:, (-zi) % P][:, :, P - hx - 1]
    E[:, :, hx + 1] = np.conj(mate) if np.iscomplexobj(A) else mate
    return E


def _sample(E: np.ndarray, P: int, pts: np.ndarray) -> np.ndarray:
    """Trilinear samples at ``pts (..., 3)`` of an array extended by :func:`_extend`.

    ``pts`` are (z, y, x) in grid units of the size-``P`` grid and must lie within
    ``|p| <= P/2`` (the band of the box). Points with x < 0 are read as
    ``conj(A(-p))`` (Hermitian symmetry); for real arrays without conjugation.
    """
    h = P // 2
    lead = pts.shape[:-1]
    p = np.array(pts, dtype=_F).reshape(-1, 3)
    neg = p[:, 2] < 0
    p[neg] *= -1
    i0 = np.floor(p)
    np.clip(i0[:, :2], -h, h, out=i0[:, :2])
    np.clip(i0[:, 2], 0, E.shape[2] - 2, out=i0[:, 2])
    f = p - i0
    i0 = i0.astype(np.int64)
    sy = E.shape[2]
    sz = E.shape[1] * sy
    base = (i0[:, 0] + h) * sz + (i0[:, 1] + h) * sy + i0[:, 2]
    fz, fy, fx = f[:, 0], f[:, 1], f[:, 2]
    gz, gy, gx = 1 - fz, 1 - fy, 1 - fx
    flat = E.reshape(-1)

    def lin(b):
        return flat.take(b) * gx + flat.take(b + 1) * fx

    out = (lin(base) * gy + lin(base + sy) * fy) * gz + (lin(base + sz) * gy + lin(base + sz + sy) * fy) * fz
    if np.iscomplexobj(E):
        np.conjugate(out, out=out, where=neg)
    return out.reshape(lead)


def _rotations(R) -> np.ndarray:
    Rm = np.asarray(R, dtype=np.float64)
    if Rm.ndim == 2:
        Rm = Rm[None]
    if Rm.ndim != 3 or Rm.shape[1:] != (3, 3) or len(Rm) == 0:
        raise UsageError(f"rotations must be (3, 3) or (m, 3, 3) matrices, got shape {Rm.shape}")
    if not np.all(np.isfinite(Rm)):
        raise UsageError("rotations contain NaN or infinite values")
    return Rm


def _half_points(n: int, rmax: float, rmin: float = 0.0):
    """Flat indices, (x, y, z) frequencies (cycles/px) and Hermitian weights of the band."""
    kz, ky, kx = frequency_grid((n, n, n), half=True)
    r2 = kx * kx + ky * ky + kz * kz
    band = (r2 <= rmax * rmax + 1e-12) & (r2 > max(rmin, 0.0) ** 2)
    band &= r2 > 0
    idx = np.flatnonzero(band)
    kzz, kyy, kxx = (np.broadcast_to(k, band.shape).reshape(-1)[idx] for k in (kz, ky, kx))
    col = idx % (n // 2 + 1)
    herm = np.where((col == 0) | ((n % 2 == 0) & (col == n // 2)), 1.0, 2.0)
    return idx, np.stack([kxx, kyy, kzz]), herm


def _rotated_points(Rm: np.ndarray, k: np.ndarray, scale: float) -> np.ndarray:
    """Grid coordinates (z, y, x) of ``Rᵀ k`` scaled to a grid: ``(m, N, 3)``."""
    q = np.swapaxes(Rm, 1, 2) @ k                    # (m, 3, N) as (x, y, z)
    return np.ascontiguousarray(q[:, ::-1].transpose(0, 2, 1) * scale)


def rotate_fourier(F, R, *, rmax: float = 0.5) -> np.ndarray:
    """Spectra of a reference turned by each rotation, on the reference box's grid.

    Args:
        F: a :class:`FourierReference` (from :func:`prepare_reference`) or a cubic
            volume (prepared here with the defaults).
        R: rotation ``(3, 3)`` or batch ``(m, 3, 3)`` acting on (x, y, z).
        rmax: band limit in cycles/pixel, at most 0.5; frequencies beyond it (the
            corners of the cube included) are set to 0.

    Returns:
        complex64 ``(m, n, n, n//2+1)``: ``rfftn(ifftshift(rotate(ref, R)))`` up to
        interpolation error. ``irfftn`` and ``fftshift`` give the rotated volume.
    """
    ref = F if isinstance(F, FourierReference) else prepare_reference(F)
    n = ref.n
    Rm = _rotations(R)
    if not (0.0 < float(rmax) <= 0.5):
        raise UsageError(f"rotate_fourier: rmax must be in (0, 0.5] cycles/pixel, got {rmax}")
    if len(Rm) * n * n * (n // 2 + 1) > _MAX_ELEMENTS:
        raise UsageError(f"rotate_fourier: {len(Rm)} spectra of box {n} is too large; use chunks")
    idx, k, _ = _half_points(n, float(rmax))
    out = np.zeros((len(Rm), n * n * (n // 2 + 1)), dtype=np.complex64)
    dc = ref.spectrum[0, 0, 0]
    step = max(1, _CHUNK_ELEMENTS // max(len(idx), 1))
    for i in range(0, len(Rm), step):
        pts = _rotated_points(Rm[i:i + step], k, ref.size)
        out[i:i + step, idx] = ref.sample(pts)
    out[:, 0] = dc
    return out.reshape(len(Rm), n, n, n // 2 + 1)


# ---------------------------------------------------------------- alignment


def _mask_values(mask, n: int, idx: np.ndarray, what: str) -> np.ndarray:
    """An unrotated mask's values on the band points (MissingRegion or rfft-layout array)."""
    if isinstance(mask, MissingRegion):
        return mask.mask((n, n, n)).reshape(-1)[idx]
    m = np.asarray(mask, dtype=_F)
    if m.shape != (n, n, n // 2 + 1):
        raise UsageError(f"{what}: expected a MissingRegion or an rfft-layout mask of shape "
                         f"{(n, n, n // 2 + 1)}, got {m.shape}")
    return m.reshape(-1)[idx]


def _rotated_mask_values(mask, Rm: np.ndarray, k: np.ndarray, n: int) -> np.ndarray:
    """``M(Rᵀ k)`` on the band points for each rotation: exact or trilinear."""
    if isinstance(mask, MissingRegion):
        q = np.swapaxes(Rm, 1, 2) @ k
        return mask.at(q[:, 0], q[:, 1], q[:, 2]).astype(_F)
    return _sample(_extend(np.asarray(mask, dtype=_F)), n, _rotated_points(Rm, k, n))


def _shift_window(n: int, max_shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the n³ map within ``|s| <= max_shift`` and their shifts (dz, dy, dx)."""
    s = np.fft.fftfreq(n) * n
    dz, dy, dx = np.meshgrid(s, s, s, indexing="ij")
    ok = dz * dz + dy * dy + dx * dx <= max_shift * max_shift + 1e-9
    flat = np.flatnonzero(ok)
    return flat, np.stack([dz.reshape(-1)[flat], dy.reshape(-1)[flat], dx.reshape(-1)[flat]], 1)


def align3d(subtomo, ref, rotations, *, mask_sub=None, mask_ref=None, max_shift: float,
            lowpass: float | None = None, highpass: float | None = None, pad: float = 2.0,
            chunk: int | None = None):
    """Best rotation and shift of a reference onto a subtomogram by constrained correlation.

    For every rotation the shifted correlation map comes from one batched inverse FFT;
    the best shift within ``|s| <= max_shift`` is kept and refined to sub-voxel
    precision (least-squares quadratic through the peak's 3x3x3 neighbourhood), and
    the rotation's score is the interpolated peak height (it may exceed the sampled
    maximum, and 1, by a little).

    Args:
        subtomo: cubic volume ``(n, n, n)``.
        ref: cubic volume ``(n, n, n)`` or a :class:`FourierReference` of box ``n``.
        rotations: ``(m, 3, 3)`` candidate rotations (of the reference, see the module
            docstring), e.g. ``doc_angles_to_matrix(so3_grid(delta))``.
        mask_sub: measured region of the subtomogram in its own frame: a
            :class:`~emsh.kernels.wedge.MissingRegion` or an rfft-layout float mask
            ``(n, n, n//2+1)`` such as :func:`~emsh.kernels.wedge.wedge_mask`. None:
            all measured.
        mask_ref: measured region (or Fourier weights) of the reference in its own
            frame; it is rotated with the reference (exactly for a MissingRegion,
            trilinearly for an array). None: all measured.
        max_shift: largest shift searched, a radius in voxels.
        lowpass, highpass: band of frequencies used, cycles/pixel (default 0.5 and 0;
            the zero frequency is always excluded).
        pad: padding of the reference transform (ignored for a FourierReference).
        chunk: rotations per batched FFT (default: about 32 MiB of maps).

    Returns:
        ``(index, shift, score, scores)``: index of the best rotation, its shift
        ``(dz, dy, dx)`` float64 in voxels, its score, and the best score over shifts of
        every rotation (float32 ``(m,)``).
    """
    x = _cube(subtomo, "subtomogram")
    n = x.shape[0]
    F = ref if isinstance(ref, FourierReference) else prepare_reference(ref, pad)
    if F.n != n:
        raise UsageError(f"reference box {F.n} differs from the subtomogram box {n}")
    Rm = _rotations(rotations)
    max_shift = float(max_shift)
    if not (np.isfinite(max_shift) and max_shift >= 0):
        raise UsageError(f"max_shift must be a non-negative number of voxels, got {max_shift}")
    lp = 0.5 if lowpass is None else float(lowpass)
    hp = 0.0 if highpass is None else float(highpass)
    if not (0.0 <= hp < lp <= 0.5):
        raise UsageError(f"band: need 0 <= highpass < lowpass <= 0.5 cycles/pixel, got {hp}, {lp}")
    idx, k, herm = _half_points(n, lp, hp)
    w = np.ones(len(idx), dtype=_F)
    if mask_sub is not None:
        w = _mask_values(mask_sub, n, idx, "mask_sub")
    keep = w > 0
    idx, k, w, herm = idx[keep], k[:, keep], w[keep], herm[keep].astype(_F)
    if len(idx) == 0:
        raise UsageError("align3d: no Fourier component lies in the band and the measured region")
    X = _fft.rfftn(np.fft.ifftshift(x), ndim=3).reshape(-1)[idx]
    hX2 = herm * (np.abs(X) ** 2).astype(_F)
    win, shifts = _shift_window(n, max_shift)
    nvox = n ** 3
    if chunk is None:
        chunk = max(1, _CHUNK_ELEMENTS // nvox)
    chunk = int(chunk)
    if chunk < 1:
        raise UsageError(f"chunk must be >= 1, got {chunk}")
    # equal chunks (the last one zero-filled) so one FFT plan serves every batch
    nchunks = -(-len(Rm) // chunk)
    chunk = -(-len(Rm) // nchunks)
    scores = np.empty(len(Rm), dtype=_F)
    found = np.empty((len(Rm), 3))
    spec = np.zeros((chunk, n * n * (n // 2 + 1)), dtype=np.complex64)
    for i in range(0, len(Rm), chunk):
        Rc = Rm[i:i + chunk]
        c = len(Rc)
        if c < chunk:
            spec[c:] = 0
        cc = _maps(F, X, hX2, w, idx, k, herm, Rc, mask_ref, n, spec)[:c]
        scores[i:i + c], found[i:i + c] = _peaks(cc, win, shifts)
    best = int(np.argmax(scores))
    return best, found[best].copy(), float(scores[best]), scores


def _quadratic_design() -> np.ndarray:
    """Pseudo-inverse mapping the 27 values of a 3x3x3 block to quadratic coefficients.

    Coefficients: ``c0, gz, gy, gx, hzz, hyy, hxx, hzy, hzx, hyx`` of
    ``f(d) = c0 + g·d + ½ dᵀ H d`` on offsets ``d`` in {-1, 0, 1}³ (z-major order).
    """
    d = np.stack(np.meshgrid(*(np.arange(-1, 2),) * 3, indexing="ij"), -1).reshape(-1, 3)
    z, y, x = d[:, 0], d[:, 1], d[:, 2]
    M = np.stack([np.ones(27), z, y, x, z * z / 2, y * y / 2, x * x / 2, z * y, z * x, y * x], 1)
    return np.linalg.pinv(M.astype(np.float64))


_QUAD = _quadratic_design()
_NEIGH = np.stack(np.meshgrid(*(np.arange(-1, 2),) * 3, indexing="ij"), -1).reshape(-1, 3)


def _peaks(cc: np.ndarray, win: np.ndarray, shifts: np.ndarray):
    """Sub-voxel peaks of correlation maps ``(c, n, n, n)`` within the shift window.

    The integer maximum inside the window is refined by a least-squares quadratic
    through its 3x3x3 neighbourhood (offset ``-H⁻¹ g``, clipped to ±0.5 voxel per
    axis, used only where the fit is a maximum). The score is the sampled maximum plus
    the fit's rise from the integer peak to the sub-voxel one (``f(d) - f(0)``): a
    fractional shift does not lower a rotation's score (which would bias the rotation),
    and an integer shift keeps its sampled value.
    """
    c, n = cc.shape[0], cc.shape[1]
    cw = cc.reshape(c, -1)[:, win]
    j = np.argmax(cw, axis=1)
    r = np.arange(c)
    b = cw[r, j].astype(np.float64)
    s = shifts[j].astype(np.float64)
    pk = np.round(s).astype(np.int64) % n
    nb = (pk[:, None, :] + _NEIGH[None]) % n                      # (c, 27, 3)
    vals = cc[r[:, None], nb[..., 0], nb[..., 1], nb[..., 2]].astype(np.float64)
    q = vals @ _QUAD.T                                             # (c, 10)
    g = q[:, 1:4]
    H = np.empty((c, 3, 3))
    H[:, 0, 0], H[:, 1, 1], H[:, 2, 2] = q[:, 4], q[:, 5], q[:, 6]
    H[:, 0, 1] = H[:, 1, 0] = q[:, 7]
    H[:, 0, 2] = H[:, 2, 0] = q[:, 8]
    H[:, 1, 2] = H[:, 2, 1] = q[:, 9]
    ok = np.all(np.linalg.eigvalsh(H) < 0, axis=1)
    off = np.zeros((c, 3))
    if ok.any():
        off[ok] = np.clip(-np.linalg.solve(H[ok], g[ok][..., None])[..., 0], -0.5, 0.5)
    gain = np.sum(g * off, 1) + 0.5 * np.einsum("ci,cij,cj->c", off, H, off)
    return (b + np.where(ok, np.maximum(gain, 0.0), 0.0)).astype(_F), s + off


def _maps(F, X, hX2, w, idx, k, herm, Rc, mask_ref, n, spec) -> np.ndarray:
    """Normalised correlation maps of rotations ``Rc``, one per row of ``spec``.

    ``spec`` is scratch ``(rows, n*n*(n//2+1))`` with ``rows >= len(Rc)``; rows past
    ``len(Rc)`` must be zero and give empty maps. Returns ``(rows, n, n, n)``.
    """
    c = len(Rc)
    V = F.sample(_rotated_points(Rc, k, F.size))                   # (c, N)
    wc = w if mask_ref is None else w * _rotated_mask_values(mask_ref, Rc, k, n)
    ex = np.sum(wc * hX2, axis=-1, dtype=np.float64)
    ev = np.sum(wc * herm * (V.real ** 2 + V.imag ** 2), axis=-1, dtype=np.float64)
    norm = np.sqrt(ex * ev)
    scale = np.where(norm > 0, n ** 3 / np.where(norm > 0, norm, 1.0), 0.0).astype(_F)
    spec[:c] = 0
    spec[:c, idx] = (wc * scale[:, None]) * X * np.conj(V)
    return _fft.irfftn(spec.reshape(len(spec), n, n, n // 2 + 1), (n, n, n), ndim=3)


# ---------------------------------------------------------------- local refinement


def rotvec_to_matrix(v) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` of rotation vectors ``(..., 3)`` (x, y, z), radians.

    The matrix turns vectors by ``|v|`` about ``v / |v|`` (right-handed, active on
    column vectors), Rodrigues' formula.
    """
    v = np.asarray(v, dtype=np.float64)
    th = np.linalg.norm(v, axis=-1)[..., None, None]
    K = np.zeros(v.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    K[..., 1, 0], K[..., 2, 0], K[..., 2, 1] = v[..., 2], -v[..., 1], v[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(th > 1e-12, np.sin(th) / th, 1.0)
        b = np.where(th > 1e-12, (1.0 - np.cos(th)) / (th * th), 0.5)
    return np.eye(3) + a * K + b * (K @ K)


def local_rotations(R0, step_deg: float, half_width: int = 1) -> np.ndarray:
    """Rotations ``exp(ω) R0`` for ω on a cubic lattice of spacing ``step_deg``.

    ω runs over the cube ``step * {-w .. w}³`` (w = ``half_width``), ``(2w+1)³``
    rotations at angular distances up to ``sqrt(3) * w * step_deg`` from ``R0``,
    nearest first; the first rotation is ``R0`` itself.

    Returns:
        float64 ``(m, 3, 3)``.
    """
    R0 = _rotations(R0)[0]
    w = int(half_width)
    if w < 1 or w > 10:
        raise UsageError(f"half_width must be 1 .. 10, got {half_width}")
    s = np.radians(float(step_deg))
    if not (np.isfinite(s) and s > 0):
        raise UsageError(f"step_deg must be positive, got {step_deg}")
    g = np.arange(-w, w + 1)
    om = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3).astype(np.float64)
    om = om[np.argsort(np.sum(om * om, axis=1), kind="stable")]
    return rotvec_to_matrix(om * s) @ R0


def refine_local(subtomo, ref, R0, *, step_deg: float, levels: int = 3, half_width: int = 1,
                 mask_sub=None, mask_ref=None, max_shift: float, lowpass: float | None = None,
                 highpass: float | None = None, pad: float = 2.0):
    """Coarse-to-fine search around a rotation: ``levels`` local grids, halving the step.

    Level ``l`` searches :func:`local_rotations` of the current best with step
    ``step_deg / 2**l`` and keeps the best (rotation, shift). Start with ``step_deg``
    about half the step of the global grid that gave ``R0``.

    Returns:
        ``(R, shift, score)``: best rotation ``(3, 3)``, shift ``(dz, dy, dx)`` voxels,
        score.
    """
    if int(levels) < 1:
        raise UsageError(f"levels must be >= 1, got {levels}")
    F = ref if isinstance(ref, FourierReference) else prepare_reference(ref, pad)
    R = _rotations(R0)[0]
    shift, score = np.zeros(3), -np.inf
    for lev in range(int(levels)):
        cand = local_rotations(R, step_deg / 2 ** lev, half_width)
        i, sh, sc, _ = align3d(subtomo, F, cand, mask_sub=mask_sub, mask_ref=mask_ref,
                               max_shift=max_shift, lowpass=lowpass, highpass=highpass)
        if sc >= score:
            R, shift, score = cand[i], sh, sc
    return R, shift, float(score)
