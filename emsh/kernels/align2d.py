"""Batched 2-D multi-reference alignment: rotation, translation and mirror search.

The kernel behind ``AP SH``/``AP REF``, ISAC2's EQ-K-means and class averaging. For
every image, every reference and every shift on a grid it finds the in-plane
rotation of best correlation, straight and mirrored, and returns the best match.

Result convention (what every field means):

* ``angle`` (degrees, ``[0, 360)``) and ``shift`` ``(sx, sy)`` (pixels) are the
  parameters to give ``RT SQ`` (:func:`emsh.kernels.transform.rotate_shift_quadratic`)
  to bring the image onto the reference: ``rotate_shift_quadratic(img, angle, shift)``
  matches ``refs[ref]``. A positive angle turns content counter-clockwise as displayed.
* ``mirror``: the image matches the mirrored reference; then
  ``mirror_x(rotate_shift_quadratic(img, angle, shift))`` matches ``refs[ref]``
  (rotate and shift first, then mirror x -> -x about column ``nx//2``). This is
  SPIDER's convention: ``RT SQ`` with registers 6, 7, 8 and the direction written as
  ``(-psi, 180 + theta, phi)``. :func:`apply_alignment` applies a result.
* ``cc``: normalised correlation in ``[-1, 1]`` over the annulus between the first and
  last ring (area-weighted, means removed), at the best sampled shift.

Method (see :mod:`emsh.kernels.polar`): images are resampled on rings at every
candidate centre with one cached sparse bilinear matrix (measured 3-4x faster than
Fourier-shifting each image and resampling once; see ``bench/bench_align2d.py``), ring
FFTs give coefficients ``I[m, ring, row]``; for each angular frequency ``m`` one
complex GEMM multiplies them by the weighted, conjugated reference coefficients of all
references, straight and mirrored (the mirror reuses the same coefficients:
``(-1)^m R`` instead of ``conj(R)``); only rings that have frequency ``m`` take part.
One batched inverse real FFT of length ``maxrin`` gives correlation against angle;
the best grid shift is refined with a quadratic fit over its 3x3 neighbours, the
image is resampled at that sub-pixel centre and the angle of the peak is refined on
an 8 times finer angular grid (zero-padded inverse FFT) with a 3-point parabola
(SPHIRE fits a 7-point parabola at the grid shift; the angle error at a shift half a
pixel off the centre was up to 1.2 degrees without this step). Images are processed
in chunks of one size (fewer than one blank image per chunk fills the last, so that
every FFT is planned once) and references in blocks, so that working memory stays near
``WORK_BYTES``; results per image do not depend on the chunking, so callers may split
particles over MPI ranks freely.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emsh import fft as _fft
from emsh.errors import UsageError
from emsh.kernels import polar as _polar
from emsh.kernels.polar import PreparedReferences, RingTable, prepare_references
from emsh.kernels.transform import mirror_x, rotate_shift_quadratic

__all__ = [
    "AlignResult", "PreparedReferences", "prepare_references", "multiref_align",
    "align_to_reference", "apply_alignment", "compose_alignment", "to_spider_apsh",
    "shift_grid", "WORK_BYTES",
]

_F = np.float32
WORK_BYTES = 256 * 2**20       # target working memory per chunk of images
_MAX_SHIFTS = 40_000


@dataclass
class AlignResult:
    """Best match per image (all arrays have the image axis first).

    Attributes:
        ref: 0-based index of the best reference, int ``(n,)``.
        angle: rotation in degrees ``[0, 360)`` to apply with ``RT SQ``, ``(n,)``.
        shift: ``(sx, sy)`` in pixels to apply with ``RT SQ`` after the rotation, ``(n, 2)``.
        mirror: True where the mirrored reference matched, ``(n,)``.
        cc: normalised peak correlation, ``(n,)``.
        all_cc: best correlation per reference ``(n, n_refs)`` (over shifts, sampled
            angles and mirror), or None unless asked for.
        inc_angle, inc_shift, inc_mirror: what this search found on top of ``previous``
            (equal to angle/shift/mirror when there was no previous alignment).
        n_searched: references searched per image, int ``(n,)``.
    """

    ref: np.ndarray
    angle: np.ndarray
    shift: np.ndarray
    mirror: np.ndarray
    cc: np.ndarray
    all_cc: np.ndarray | None
    inc_angle: np.ndarray
    inc_shift: np.ndarray
    inc_mirror: np.ndarray
    n_searched: np.ndarray

    def __len__(self) -> int:
        return len(self.ref)


def shift_grid(shift_range, shift_step=1.0) -> tuple[np.ndarray, int, int]:
    """Candidate sampling-centre shifts ``(S, 2)`` as ``(sx, sy)``, x fastest, and grid size.

    ``shift_range`` is one number or ``(range_x, range_y)``; the grid runs from
    ``-range`` to ``+range`` in steps of ``shift_step`` on each axis.
    """
    try:
        rng = np.broadcast_to(np.asarray(shift_range, dtype=np.float64), (2,))
        step = float(shift_step)
    except (TypeError, ValueError):
        raise UsageError(f"shift range {shift_range!r} step {shift_step!r}: expected one "
                         "range or (range_x, range_y) and a step, in pixels") from None
    if not np.all(np.isfinite(rng)) or np.any(rng < 0) or not np.isfinite(step) or step <= 0:
        raise UsageError(f"shift range {shift_range!r} step {shift_step!r}: expected "
                         "ranges >= 0 and a step > 0")
    nh = np.floor(rng / step + 1e-6).astype(np.int64)
    if np.prod(2 * nh + 1) > _MAX_SHIFTS:
        raise UsageError(f"shift range {shift_range!r} step {step:g} gives "
                         f"{int(np.prod(2 * nh + 1))} shifts; at most {_MAX_SHIFTS}")
    xs = step * np.arange(-nh[0], nh[0] + 1)
    ys = step * np.arange(-nh[1], nh[1] + 1)
    g = np.stack(np.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2)
    return g, len(xs), len(ys)


def _angle_indices(M: int, psi_range, psi_delta) -> np.ndarray | None:
    """Allowed angle indices j (angle 360 j / M) or None for all."""
    j = np.arange(M)
    keep = np.ones(M, bool)
    if psi_range is not None:
        pr = float(psi_range)
        if not np.isfinite(pr) or pr < 0:
            raise UsageError(f"psi_range={psi_range!r}: expected degrees >= 0")
        keep &= np.minimum(j, M - j) * 360.0 / M <= pr + 1e-9
    if psi_delta is not None:
        pd = float(psi_delta)
        if not np.isfinite(pd) or pd <= 0:
            raise UsageError(f"psi_delta={psi_delta!r}: expected degrees > 0")
        keep &= j % max(1, int(round(pd * M / 360.0))) == 0
    if keep.all():
        return None
    return j[keep]


def _refine_angles(spec: np.ndarray, j: np.ndarray, M: int, up: int = 8) -> np.ndarray:
    """Sub-sample peak positions (in coarse samples) of correlation spectra ``spec`` (b, nfreq).

    The correlation against angle is a trigonometric polynomial; evaluating it on an
    ``up`` times finer grid (zero-padded inverse FFT) within one coarse sample of the
    coarse peak ``j`` and fitting a 3-point parabola there gives the peak to a small
    fraction of the coarse step, without the bias of a parabola over coarse samples.
    """
    b, nf = spec.shape
    fine = np.zeros((b, up * M // 2 + 1), np.complex64)
    fine[:, :nf] = spec
    if M % 2 == 0:
        fine[:, nf - 1] *= 0.5       # the coarse Nyquist term splits into +-M/2
    curve = _fft.irfftn(fine, (up * M,), 1)
    k = np.arange(-up - 1, up + 2)
    win = np.take_along_axis(curve, (up * j[:, None] + k) % (up * M), axis=-1).astype(np.float64)
    i = np.argmax(win[:, 1:-1], axis=1) + 1
    r = np.arange(b)
    lo, mid, hi = win[r, i - 1], win[r, i], win[r, i + 1]
    den = lo - 2 * mid + hi
    off = np.where(den < 0, 0.5 * (lo - hi) / np.where(den < 0, den, -1.0), 0.0)
    return j + (k[i] + np.clip(off, -0.5, 0.5)) / up


def _quad_peak(z: np.ndarray) -> np.ndarray:
    """Vertex ``(dx, dy)`` of quadratics fitted to 3x3 patches ``z`` (n, 3, 3), NaN = missing.

    A full 2-D least-squares quadratic when all nine values exist and it has a maximum;
    otherwise 3-point parabolas along each axis through the centre. Offsets are clipped
    to half a grid step.
    """
    n = len(z)
    out = np.zeros((n, 2))
    for axis, sl in ((0, (slice(None), 1, slice(None))), (1, (slice(None), slice(None), 1))):
        line = z[sl]
        lo, mid, hi = line[:, 0], line[:, 1], line[:, 2]
        den = lo - 2 * mid + hi
        ok = np.isfinite(lo) & np.isfinite(hi) & (den < 0)
        out[:, axis] = np.where(ok, 0.5 * (lo - hi) / np.where(ok, den, -1.0), 0.0)
    full = np.all(np.isfinite(z.reshape(n, 9)), axis=1)
    if full.any():
        yy, xx = np.mgrid[-1:2, -1:2]
        x, y = xx.ravel(), yy.ravel()
        basis = np.stack([np.ones(9), x, y, x * x, x * y, y * y], 1)
        coef = np.linalg.pinv(basis) @ z[full].reshape(-1, 9).T          # (6, nf)
        _, bx, by, cxx, cxy, cyy = coef
        det = 4 * cxx * cyy - cxy**2
        good = (cxx < 0) & (det > 0)
        dx = np.where(good, (cxy * by - 2 * cyy * bx) / np.where(good, det, 1.0), 0.0)
        dy = np.where(good, (cxy * bx - 2 * cxx * by) / np.where(good, det, 1.0), 0.0)
        idx = np.nonzero(full)[0][good]
        out[idx, 0], out[idx, 1] = dx[good], dy[good]
    return np.clip(out, -0.5, 0.5)


def _rtsq_shift(angle_deg: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """RT SQ shift that brings a feature at ``centre`` (sx, sy) to the centre after rotating."""
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    return -np.stack([c * centre[:, 0] + s * centre[:, 1],
                      -s * centre[:, 0] + c * centre[:, 1]], -1)


def compose_alignment(first, second) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parameters of applying ``first``, then ``second`` (each ``(angle, shift, mirror)``).

    Each is what :func:`apply_alignment` applies: rotate+shift (``RT SQ``), then mirror.
    Returns ``(angle [0, 360), shift (n, 2), mirror)`` of the combined transform.
    """
    a1, t1, m1 = (np.asarray(v) for v in first)
    a2, t2, m2 = (np.asarray(v) for v in second)
    m1 = np.broadcast_to(m1.astype(bool), np.shape(a2) or np.shape(a1))
    a2e = np.where(m1, -a2, a2)
    t2e = np.array(np.broadcast_to(t2, np.broadcast_shapes(np.shape(t2), np.shape(t1))),
                   dtype=np.float64)
    t2e[..., 0] = np.where(m1, -t2e[..., 0], t2e[..., 0])
    r = np.deg2rad(a2e)
    c, s = np.cos(r), np.sin(r)
    t1 = np.asarray(t1, dtype=np.float64)
    shift = np.stack([c * t1[..., 0] + s * t1[..., 1], -s * t1[..., 0] + c * t1[..., 1]], -1)
    return (np.mod(a1 + a2e, 360.0), shift + t2e, np.logical_xor(m1, m2.astype(bool)))


def apply_alignment(images, angles, shifts, mirror=False) -> np.ndarray:
    """Apply alignment parameters: ``RT SQ`` (quadratic interpolation), then mirror x -> -x.

    Args:
        images: ``(ny, nx)`` or ``(n, ny, nx)``.
        angles: degrees, scalar or ``(n,)``.
        shifts: ``(sx, sy)`` or ``(n, 2)`` pixels, applied after the rotation.
        mirror: bool or ``(n,)``: mirror about column ``nx//2`` after rotating.
    """
    out = rotate_shift_quadratic(images, angles, shifts)
    m = np.asarray(mirror, dtype=bool)
    if out.ndim == 2:
        return mirror_x(out) if m.any() else out
    m = np.broadcast_to(m, out.shape[:1])
    if m.any():
        out[m] = mirror_x(out[m])
    return out


def _chunking(prep: PreparedReferences, S: int, chunk) -> tuple[int, int]:
    """Images per chunk and reference columns per block."""
    t = prep.table
    cols = prep.gemm.shape[2]
    per_col_row = t.nfreq * 8 + t.maxrin * 8          # spectrum + correlation
    qb = int(min(cols, max(1, WORK_BYTES // 2 // (S * per_col_row))))
    if chunk is not None:
        if isinstance(chunk, bool) or int(chunk) < 1:
            raise UsageError(f"chunk={chunk!r}: expected a number of images >= 1")
        return int(chunk), qb
    per_image = S * (qb * per_col_row + t.n_rings * t.nfreq * 8 + t.total * 12)
    return int(max(1, WORK_BYTES // per_image)), qb


def _search(images, prep, shifts, grid, angle_idx, discrete, allowed, chunk, want_all):
    """Exhaustive search; returns (col, shift index, angle deg, centre (sx, sy), cc, all_cc)."""
    t = prep.table
    B = images.shape[0]
    S, M, K = len(shifts), t.maxrin, prep.n_refs
    cols = prep.gemm.shape[2]
    nb, qb = _chunking(prep, S, chunk)
    nb = -(-B // -(-B // nb))                 # equal chunks: ceil(B / number of chunks)
    n_real = B
    if B % nb:
        # blank images fill the last chunk: every chunk has the same shape, so the FFT
        # layer plans each transform once (a new batch size costs a new FFTW plan)
        pad = nb - B % nb
        images = np.concatenate([images, np.zeros((pad,) + images.shape[1:], _F)])
        if allowed is not None:
            allowed = np.concatenate([allowed, np.ones((pad, K), bool)])
        B += pad
    area = np.repeat(t.area, t.lengths).astype(_F)
    flat = images.reshape(B, -1)
    res_col, res_s = np.empty(B, np.int64), np.empty(B, np.int64)
    res_ang, res_cen, res_cc = np.empty(B), np.empty((B, 2)), np.empty(B)
    all_cc = np.empty((B, K), _F) if want_all else None
    for i0 in range(0, B, nb):
        b = min(nb, B - i0)
        ib = np.arange(b)
        y = _polar.polar_columns(flat[i0:i0 + b], t, prep.shape, shifts)   # (S, N, b)
        # plain reductions, not BLAS: a threaded BLAS call here leaves spinning threads
        # that slow the FFTW threads of the ring FFTs that follow
        y -= (np.einsum("n,snb->sb", area, y) / float(area.sum()))[:, None, :]
        norm = np.sqrt(np.maximum(np.einsum("n,snb,snb->sb", area, y, y), 0))   # (S, b)
        coef = _polar.gemm_coefficients(np.ascontiguousarray(y.transpose(0, 2, 1)), t)
        best_v = np.empty((S * b, cols), _F)
        best_j = np.empty((S * b, cols), np.int64)
        for q0 in range(0, cols, qb):
            q1 = min(cols, q0 + qb)
            spec = _polar.band_gemm(coef, prep.gemm[:, :, q0:q1], t.bands())
            cc = _fft.irfftn(spec.transpose(1, 2, 0), (M,), 1)           # (rows, q, M)
            del spec
            if angle_idx is not None:
                cc = np.take(cc, angle_idx, axis=-1)
            j = np.argmax(cc, axis=-1)
            best_v[:, q0:q1] = np.take_along_axis(cc, j[..., None], -1)[..., 0]
            best_j[:, q0:q1] = j if angle_idx is None else angle_idx[j]
            del cc
        bv = best_v.reshape(S, b, cols)
        bv /= np.where(norm > 0, norm, np.inf).astype(_F)[:, :, None]
        if allowed is not None:
            blk = np.broadcast_to(~allowed[i0:i0 + b][None], (S, b, K))
            bv[:, :, :K][blk] = -np.inf
            bv[:, :, K:][blk[..., :cols - K]] = -np.inf
        if want_all:
            per_ref = bv.max(axis=0)                                        # (b, cols)
            all_cc[i0:i0 + b] = np.maximum(per_ref[:, :K], per_ref[:, K:]) if cols > K \
                else per_ref
        flat_bv = bv.transpose(1, 0, 2).reshape(b, S * cols)
        pick = np.argmax(flat_bv, axis=1)
        s, col = pick // cols, pick % cols
        j = best_j.reshape(S, b, cols)[s, ib, col]
        res_cc[i0:i0 + b] = flat_bv[ib, pick]
        cen = shifts[s].copy()
        if S > 1:
            nxs, nys = grid
            g = bv[:, ib, col].T.reshape(b, nys, nxs).astype(np.float64)
            pad = np.pad(g, ((0, 0), (1, 1), (1, 1)), constant_values=np.nan)
            iy, ix = s // nxs, s % nxs
            patch = np.stack([pad[ib, iy + dy, ix + dx] for dy in range(3) for dx in range(3)], 1)
            patch[~np.isfinite(patch)] = np.nan
            step = shifts[1, 0] - shifts[0, 0] if nxs > 1 else shifts[nxs, 1] - shifts[0, 1]
            cen += _quad_peak(patch.reshape(b, 3, 3)) * step
        if discrete:
            ang = j.astype(np.float64)
        else:       # rings again at the refined centre, then the angle on a fine grid
            rc = _polar.ring_fft(_polar.polar_at(images[i0:i0 + b], t, cen), t)
            sp = np.einsum("mcb,bcm->bm", prep.gemm[:, :, col], rc)
            ang = _refine_angles(sp, j, M)
        res_col[i0:i0 + b], res_s[i0:i0 + b] = col, s
        res_ang[i0:i0 + b], res_cen[i0:i0 + b] = ang * 360.0 / M, cen
    n = n_real
    return (res_col[:n], res_s[:n], res_ang[:n], res_cen[:n], res_cc[:n],
            None if all_cc is None else all_cc[:n])


def _ccf_shifts(rot: np.ndarray, refs: np.ndarray, rx: int, ry: int) -> np.ndarray:
    """Shift u (sx, sy) with |u| <= range maximising sum ref(p) rot(p - u); sub-pixel refined."""
    n, ny, nx = rot.shape
    ccf = _fft.irfftn(_fft.rfftn(refs) * np.conj(_fft.rfftn(rot)), (ny, nx))
    dy, dx = np.arange(-ry - 1, ry + 2), np.arange(-rx - 1, rx + 2)
    win = ccf[:, (dy % ny)[:, None], (dx % nx)[None, :]].astype(np.float64)
    inner = win[:, 1:-1, 1:-1].reshape(n, -1)
    k = np.argmax(inner, axis=1)
    iy, ix = k // (2 * rx + 1) + 1, k % (2 * rx + 1) + 1
    i = np.arange(n)
    patch = np.stack([win[i, iy + a, ix + c] for a in (-1, 0, 1) for c in (-1, 0, 1)], 1)
    off = _quad_peak(patch.reshape(n, 3, 3))
    return np.stack([dx[ix] + off[:, 0], dy[iy] + off[:, 1]], -1)


def multiref_align(images, refs, *, first_ring: int, last_ring: int, shift_range,
                   shift_step: float = 1.0, ring_step: int = 1, mirror: bool = True,
                   psi_range: float | None = None, psi_delta: float | None = None,
                   previous=None, allowed=None, shift_after_rotation: bool = False,
                   return_all_cc: bool = False, chunk: int | None = None) -> AlignResult:
    """Align every image to the best of many references (rotation, shift, mirror).

    Args:
        images: ``(n, ny, nx)`` (or one ``(ny, nx)``).
        refs: ``(K, ny, nx)`` references, or a :class:`PreparedReferences` made with the
            same rings (then ``mirror`` must match how it was prepared).
        first_ring, last_ring, ring_step: rings in pixels (see :class:`RingTable`).
        shift_range: search ``-range..+range`` px on both axes, or ``(range_x, range_y)``;
            the image is resampled with its centre moved by each candidate shift. Last
            ring plus range must stay inside the image (:func:`~emsh.kernels.polar.polar_limit`).
        shift_step: grid step in pixels. The best grid shift is refined by a quadratic fit.
        mirror: also try mirrored references.
        psi_range: only rotations within +-psi_range degrees (of ``previous`` when given).
        psi_delta: only rotations that are multiples of psi_delta degrees (rounded to the
            angular sampling), without sub-sample refinement (SPHIRE's discrete search).
        previous: earlier alignment (an :class:`AlignResult` or ``(angles, shifts,
            mirror)``): images are first transformed by it (``RT SQ``, then mirror;
            SPIDER's "shift/rotate input first"), and the result is the composition
            (cumulative); ``inc_*`` holds this search alone, relative to the
            transformed image.
        allowed: bool ``(n, K)``: which references each image may match (all if None).
        shift_after_rotation: ``AP REF``'s search: rotations and references are chosen on
            the unshifted rings, then the shift is found by 2-D cross-correlation with
            the chosen reference within ``shift_range`` (whole pixels, refined);
            ``cc`` and ``all_cc`` are then those of the unshifted rings.
        return_all_cc: also return the best correlation per reference (``all_cc``).
        chunk: images per chunk (default: sized to ``WORK_BYTES``).

    Returns:
        :class:`AlignResult` (conventions in the module docstring).
    """
    imgs = _polar.as_stack(images, "images")
    table = RingTable(first_ring, last_ring, ring_step)
    if isinstance(refs, PreparedReferences):
        prep = refs
        if prep.table != table or prep.mirror != bool(mirror):
            raise UsageError("refs: prepared with other rings or mirror setting")
    else:
        prep = prepare_references(refs, table, mirror)
    if imgs.shape[-2:] != tuple(prep.shape):
        raise UsageError(f"images are {imgs.shape[-1]}x{imgs.shape[-2]} but references "
                         f"{prep.shape[1]}x{prep.shape[0]}")
    B, K = imgs.shape[0], prep.n_refs
    if return_all_cc and B * K > 2**31:
        raise UsageError(f"return_all_cc: {B} x {K} correlations is too large a matrix")
    if allowed is not None:
        allowed = np.asarray(allowed, dtype=bool)
        if allowed.shape != (B, K):
            raise UsageError(f"allowed: expected shape ({B}, {K}), got {allowed.shape}")
        if not allowed.any(axis=1).all():
            bad = int(np.nonzero(~allowed.any(axis=1))[0][0])
            raise UsageError(f"allowed: image {bad} (0-based) may match no reference")
    shifts, nxs, nys = shift_grid(shift_range, shift_step)
    _polar.check_fit(table, prep.shape, shifts)
    if allowed is not None and _worth_grouping(allowed):
        kw = dict(first_ring=first_ring, last_ring=last_ring, shift_range=shift_range,
                  shift_step=shift_step, ring_step=ring_step, mirror=mirror,
                  psi_range=psi_range, psi_delta=psi_delta,
                  shift_after_rotation=shift_after_rotation, chunk=chunk)
        return _grouped(imgs, prep, allowed, previous, return_all_cc, kw)
    if previous is not None:
        p_ang, p_sh, p_mir = _previous(previous, B)
        imgs = apply_alignment(imgs, p_ang, p_sh, p_mir)
    angle_idx = _angle_indices(table.maxrin, psi_range, psi_delta)
    discrete = psi_delta is not None
    if shift_after_rotation:
        zero = np.zeros((1, 2))
        col, _, ang, _, cc, all_cc = _search(imgs, prep, zero, (1, 1), angle_idx, discrete,
                                             allowed, chunk, return_all_cc)
        ang = _in_window(ang, psi_range)
        mir = col >= K
        ref = np.where(mir, col - K, col)
        rot = apply_alignment(imgs, ang, np.zeros((B, 2)), mir)
        rx, ry = (int(np.floor(v + 1e-6)) for v in np.abs(shifts).max(axis=0))
        u = _ccf_shifts(rot, prep.images[ref], rx, ry)
        inc_shift = np.where(mir[:, None], u * [-1.0, 1.0], u)
    else:
        col, _, ang, cen, cc, all_cc = _search(imgs, prep, shifts, (nxs, nys), angle_idx,
                                               discrete, allowed, chunk, return_all_cc)
        ang = _in_window(ang, psi_range)
        mir = col >= K
        ref = np.where(mir, col - K, col)
        inc_shift = _rtsq_shift(ang, cen)
    inc_angle = np.mod(ang, 360.0)
    inc_angle[inc_angle >= 360.0 - 1e-9] = 0.0
    n_searched = np.full(B, K) if allowed is None else allowed.sum(1)
    if previous is None:
        angle, shift, mirr = inc_angle.copy(), inc_shift.copy(), mir.copy()
    else:
        angle, shift, mirr = compose_alignment((p_ang, p_sh, p_mir), (inc_angle, inc_shift, mir))
    return AlignResult(ref=ref, angle=angle, shift=shift, mirror=mirr, cc=cc, all_cc=all_cc,
                       inc_angle=inc_angle, inc_shift=inc_shift, inc_mirror=mir,
                       n_searched=n_searched)


def _bucket(n: int) -> int:
    """Batch sizes rounded up to few distinct values (each new shape costs FFT plans)."""
    if n <= 8:
        return 1 << max(n - 1, 0).bit_length()
    if n <= 64:
        return -(-n // 8) * 8
    b = 64
    while b < n:
        b = b * 3 // 2 if (b & (b - 1)) == 0 else b * 4 // 3
    return b


def _bucket_rows(n: int) -> int:
    """Image counts per restricted-search group: :func:`_bucket` below 128, above it
    rounded up to a sixteenth of the next power of two (at most 12.5 % padding, eight
    sizes per octave), so that equal large groups (ISAC's img_per_grp) waste little."""
    if n < 128:
        return _bucket(n)
    step = 1 << (n.bit_length() - 4)
    return -(-n // step) * step


def _worth_grouping(allowed: np.ndarray) -> bool:
    """A restricted search pays off when images may match a small part of the gallery."""
    K = allowed.shape[1]
    return K >= 4 and allowed.sum(1).mean() <= K / 4


def _grouped(imgs, prep, allowed, previous, return_all_cc, kw) -> AlignResult:
    """Restricted search: images that may match the same references are aligned together
    against just those (padded to a bucketed count with disallowed copies), so the cost
    follows the references each image may match, not the whole gallery."""
    B, K = allowed.shape
    prev = None if previous is None else _previous(previous, B)
    keys, inverse = np.unique(allowed, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    out = dict(ref=np.zeros(B, np.int64), angle=np.zeros(B), shift=np.zeros((B, 2)),
               mirror=np.zeros(B, bool), cc=np.zeros(B), inc_angle=np.zeros(B),
               inc_shift=np.zeros((B, 2)), inc_mirror=np.zeros(B, bool))
    all_cc = np.full((B, K), -np.inf, _F) if return_all_cc else None
    for g, key in enumerate(keys):
        rows = np.flatnonzero(inverse == g)
        refs = np.flatnonzero(key)
        q = _bucket(len(refs))
        sub_refs = np.concatenate([refs, np.full(q - len(refs), refs[0])])
        cols = np.concatenate([sub_refs, sub_refs + K]) if prep.mirror else sub_refs
        sub = PreparedReferences(prep.table, prep.shape, prep.images[sub_refs], prep.mirror,
                                 np.ascontiguousarray(prep.gemm[:, :, cols]))
        take = np.concatenate([rows, np.full(_bucket_rows(len(rows)) - len(rows), rows[0])])
        ok = np.zeros((len(take), q), bool)
        ok[:, :len(refs)] = True
        p = None if prev is None else tuple(v[take] for v in prev)
        r = multiref_align(imgs[take], sub, allowed=ok, previous=p,
                           return_all_cc=return_all_cc, **kw)
        n = len(rows)
        for name in out:
            out[name][rows] = getattr(r, name)[:n]
        out["ref"][rows] = sub_refs[r.ref[:n]]
        if all_cc is not None:
            all_cc[np.ix_(rows, refs)] = r.all_cc[:n, :len(refs)]
    return AlignResult(all_cc=all_cc, n_searched=allowed.sum(1), **out)


def _in_window(ang: np.ndarray, psi_range) -> np.ndarray:
    """Keep refined angles inside +-psi_range (the sub-sample step may cross its edge)."""
    if psi_range is None:
        return ang
    half = np.mod(ang + 180.0, 360.0) - 180.0
    return np.clip(half, -float(psi_range), float(psi_range))


def _previous(previous, B: int):
    if isinstance(previous, AlignResult):
        a, s, m = previous.angle, previous.shift, previous.mirror
    else:
        try:
            a, s, m = previous
        except (TypeError, ValueError):
            raise UsageError("previous: expected an AlignResult or "
                             "(angles, shifts, mirror)") from None
    try:
        a = np.broadcast_to(np.asarray(a, dtype=np.float64), (B,)).copy()
        s = np.broadcast_to(np.asarray(s, dtype=np.float64), (B, 2)).copy()
        m = np.broadcast_to(np.asarray(m, dtype=bool), (B,)).copy()
    except ValueError:
        raise UsageError(f"previous: parameters do not fit {B} images") from None
    return a, s, m


def align_to_reference(images, ref, *, shift_range, shift_step: float = 1.0,
                       mirror: bool = True, psi_delta: float | None = None,
                       psi_range: float | None = None, first_ring: int = 1,
                       last_ring: int | None = None, previous=None,
                       chunk: int | None = None) -> AlignResult:
    """Align images to one reference (e.g. members to their class average).

    Same search and conventions as :func:`multiref_align` with ``K = 1``; ``last_ring``
    defaults to the largest that fits with the shift range. ``result.ref`` is all 0.
    """
    r = _polar.as_stack(ref, "ref")
    if r.shape[0] != 1:
        raise UsageError(f"ref: expected one image, got {r.shape[0]}")
    if last_ring is None:
        reach = float(np.abs(shift_grid(shift_range, shift_step)[0]).max())
        last_ring = int(np.floor(_polar.polar_limit(r.shape[-2:]) - reach + 1e-9))
        if last_ring < first_ring:
            raise UsageError(f"shift range {shift_range!r} leaves no ring in a "
                             f"{r.shape[-1]}x{r.shape[-2]} image")
    return multiref_align(images, r, first_ring=first_ring, last_ring=last_ring,
                          shift_range=shift_range, shift_step=shift_step, mirror=mirror,
                          psi_range=psi_range, psi_delta=psi_delta, previous=previous,
                          chunk=chunk)


def to_spider_apsh(result: AlignResult, ref_angles, *, image_numbers=None, ref_numbers=None,
                   angle_change=None) -> np.ndarray:
    """The 15 ``AP SH`` output registers per image, float64 ``(n, 15)``.

    Registers: 1-3 psi, theta, phi of the best reference (``(-psi, 180 + theta, phi)``
    when mirrored); 4 reference number; 5 image number; 6 cumulative rotation; 7, 8
    cumulative sx, sy (for ``RT SQ``); 9 references searched; 10 angular change (-1
    without a previous alignment); 11 correlation (emsh's normalised peak CC, where
    SPIDER writes an unnormalised value); 12-14 this pass's rotation and shifts; 15
    +1, or -1 when mirrored.

    Args:
        result: from :func:`multiref_align`.
        ref_angles: ``(K, 3)`` psi, theta, phi of the references (doc-file order).
        image_numbers: numbers written to register 5 (default 1..n).
        ref_numbers: numbers of the references (default 1..K).
        angle_change: register 10 per image (default -1).
    """
    ang = np.asarray(ref_angles, dtype=np.float64)
    n = len(result)
    if ang.ndim != 2 or ang.shape[1] < 3 or len(ang) <= int(result.ref.max(initial=0)):
        raise UsageError(f"ref_angles: expected (n_refs, 3) psi, theta, phi; got {ang.shape}")
    psi, theta, phi = (ang[result.ref, i].copy() for i in range(3))
    m = np.asarray(result.mirror, dtype=bool)
    psi[m], theta[m] = -psi[m], 180.0 + theta[m]
    refnum = (result.ref + 1 if ref_numbers is None
              else np.asarray(ref_numbers, dtype=np.float64)[result.ref])
    imgnum = np.arange(1, n + 1) if image_numbers is None else np.asarray(image_numbers)
    change = -1.0 if angle_change is None else np.asarray(angle_change, dtype=np.float64)
    regs = np.empty((n, 15))
    regs[:, 0], regs[:, 1], regs[:, 2] = psi, theta, phi
    regs[:, 3], regs[:, 4], regs[:, 5] = refnum, imgnum, result.angle
    regs[:, 6:8] = result.shift
    regs[:, 8], regs[:, 9], regs[:, 10] = result.n_searched, change, result.cc
    regs[:, 11], regs[:, 12:14] = result.inc_angle, result.inc_shift
    regs[:, 14] = np.where(m, -1.0, 1.0)
    return regs
