"""Polar (ring) representation of images for rotational alignment.

An image is sampled on concentric rings around its centre (index ``n//2`` on each
axis); each ring is Fourier transformed along the angle, and rotational
cross-correlations of whole images become sums over rings of products of these
coefficients (see :mod:`emsh.kernels.align2d`).

Conventions:

* Ring table: the ring of radius ``r`` (pixels) has ``L_r`` samples, the power of
  two just above ``round(2*pi*r)`` (between 1 and 2 samples per pixel of
  circumference; SPIDER's and SPHIRE's "full circle" table). ``maxrin`` is the
  largest ``L_r``, the length of the angular correlation.
* Sample ``k`` of ring ``r`` lies at angle ``phi_k = 2*pi*k/L_r`` measured from
  +x (columns) towards +y (rows), i.e. clockwise as displayed with row 0 at the
  top, at ``(x, y) = (cx + sx + r cos phi_k, cy + sy + r sin phi_k)``, read with
  bilinear interpolation; ``(sx, sy)`` shifts the sampling centre. With this
  choice ``rotate_shift_quadratic(img, a)`` (``RT SQ``) turns the polar image
  ``p(r, phi)`` into ``p(r, phi + a)``.
* Ring coefficients use numpy's forward sign, unnormalised, and are stored dense
  as ``(..., n_rings, maxrin//2 + 1)``: ring ``r`` fills frequencies
  ``0..L_r/2`` and is zero above.
* Inner products weight every sample by the area it stands for, ``2*pi*r/L_r``,
  so a polar correlation approximates the integral of ``f*g`` over the annulus.

Resampling at many centres is one sparse matrix product (four bilinear weights per
sample), built once per (table, image shape, shifts) and cached.

Ring correlation: :func:`prepare_references` turns references into weighted
coefficient columns (straight and mirrored), :func:`gemm_coefficients` lays image
coefficients out per frequency, and :func:`band_gemm` multiplies the two for all
frequencies; an inverse real FFT of length ``maxrin`` of the result is the
correlation against rotation angle (used by :mod:`emsh.kernels.align2d`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as _sp

from emsh import fft as _fft
from emsh.blas import matmul_rows
from emsh.errors import UsageError

__all__ = [
    "RingTable", "polar_transform", "ring_fft", "ring_weights", "ring_power_weights",
    "ring_moments", "normalize_rings", "polar_limit", "sampling_matrix", "polar_columns",
    "polar_at",
    "MAX_RING",
]

_F = np.float32
MAX_RING = 4096          # radius limit: L_r <= 32768 as in SPHIRE's table
_MAX_SAMPLES = 2**28     # refuse sampling tables beyond ~3 GiB


class RingTable:
    """Radii, sample counts and offsets of the rings used for polar alignment.

    Args:
        first_ring: innermost radius in pixels (>= 1).
        last_ring: outermost radius in pixels (>= first_ring).
        ring_step: radius increment between rings (>= 1).

    Attributes:
        radii: ring radii, int ``(n_rings,)``.
        lengths: samples per ring ``L_r`` (powers of two), int ``(n_rings,)``.
        offsets: start of each ring in the concatenated polar vector, ``(n_rings + 1,)``.
        total: samples over all rings (``offsets[-1]``).
        maxrin: longest ring, the length of the angular correlation.
        nfreq: ``maxrin // 2 + 1``, the last axis of the dense coefficient layout.
        area: per-sample area weights ``2*pi*r/L_r``, float64 ``(n_rings,)``.
        groups: ``(L, first, stop)`` runs of consecutive rings of equal length.
    """

    def __init__(self, first_ring: int, last_ring: int, ring_step: int = 1):
        vals = []
        for name, v in (("first_ring", first_ring), ("last_ring", last_ring),
                        ("ring_step", ring_step)):
            if isinstance(v, bool) or not float(v).is_integer():
                raise UsageError(f"RingTable: {name}={v!r}; expected a whole number of pixels")
            vals.append(int(v))
        first, last, step = vals
        if first < 1 or last < first or step < 1:
            raise UsageError(f"RingTable: rings {first}..{last} step {step}; expected "
                             "1 <= first_ring <= last_ring and ring_step >= 1")
        if last > MAX_RING:
            raise UsageError(f"RingTable: last_ring={last} exceeds {MAX_RING} pixels")
        self.first_ring, self.last_ring, self.ring_step = first, last, step
        self.radii = np.arange(first, last + 1, step, dtype=np.int64)
        jp = np.rint(2.0 * np.pi * self.radii)
        self.lengths = np.minimum(2 ** (np.floor(np.log2(jp)).astype(np.int64) + 1), 32768)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        self.total = int(self.offsets[-1])
        self.maxrin = int(self.lengths.max())
        self.nfreq = self.maxrin // 2 + 1
        self.area = 2.0 * np.pi * self.radii / self.lengths
        groups, start = [], 0
        for i in range(1, len(self.radii) + 1):
            if i == len(self.radii) or self.lengths[i] != self.lengths[start]:
                groups.append((int(self.lengths[start]), start, i))
                start = i
        self.groups = tuple(groups)
        self._xy = None

    def offsets_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """Sample positions relative to the ring centre, ``(dx, dy)`` float64 ``(total,)``."""
        if self._xy is None:
            rr = np.repeat(self.radii, self.lengths).astype(np.float64)
            k = np.arange(self.total) - np.repeat(self.offsets[:-1], self.lengths)
            phi = 2.0 * np.pi * k / np.repeat(self.lengths, self.lengths)
            self._xy = (rr * np.cos(phi), rr * np.sin(phi))
        return self._xy

    @property
    def n_rings(self) -> int:
        return len(self.radii)

    def key(self) -> tuple[int, int, int]:
        return (self.first_ring, self.last_ring, self.ring_step)

    def __eq__(self, other) -> bool:
        return isinstance(other, RingTable) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        return (f"RingTable(first_ring={self.first_ring}, last_ring={self.last_ring}, "
                f"ring_step={self.ring_step}: {self.n_rings} rings, {self.total} samples, "
                f"maxrin={self.maxrin})")

    def bands(self) -> tuple[tuple[int, int, int], ...]:
        """Bands ``(m0, m1, c0)``: for ``m0 <= m < m1`` only rings ``c0..`` have a term ``m``."""
        out, m0 = [], 0
        for c, L in enumerate(self.lengths):
            m1 = int(L) // 2 + 1
            if m1 > m0:
                out.append((m0, m1, c))
                m0 = m1
        return tuple(out)


def polar_limit(shape: tuple[int, int]) -> int:
    """Largest ring radius plus shift that keeps every sample inside an image of ``shape``.

    ``(min(ny, nx) - 1) // 2``: from the centre ``n//2`` to the last pixel on the short side.
    """
    return (min(int(shape[-2]), int(shape[-1])) - 1) // 2


def _as_shifts(shifts) -> np.ndarray:
    s = np.zeros((1, 2)) if shifts is None else np.asarray(shifts, dtype=np.float64)
    if s.ndim == 1:
        s = s[None, :]
    if s.ndim != 2 or s.shape[1] != 2 or len(s) == 0 or not np.all(np.isfinite(s)):
        raise UsageError(f"shifts: expected (sx, sy) pairs as an (n, 2) array of finite "
                         f"numbers; got shape {np.shape(shifts)}")
    return s


def check_fit(table: RingTable, shape, shifts: np.ndarray) -> None:
    """Refuse rings plus shifts that reach beyond the image (see :func:`polar_limit`)."""
    reach = table.last_ring + float(np.abs(shifts).max())
    limit = polar_limit(shape)
    if reach > limit + 1e-9:
        raise UsageError(f"last ring {table.last_ring} plus shift {np.abs(shifts).max():g} "
                         f"reaches {reach:g} px from the centre, beyond the {shape[-1]}x"
                         f"{shape[-2]} image (limit {limit}); use a smaller last ring or "
                         "shift range")


@functools.lru_cache(maxsize=8)
def _sampling_matrix(key, shape: tuple[int, int], shifts_key: tuple) -> _sp.csr_matrix:
    """Sparse ``(n_shifts * total, ny * nx)`` bilinear resampling matrix (float32)."""
    table = RingTable(*key)
    ny, nx = shape
    sh = np.asarray(shifts_key, dtype=np.float64).reshape(-1, 2)
    dx, dy = table.offsets_xy()
    x = (nx // 2 + sh[:, :1] + dx).ravel()
    y = (ny // 2 + sh[:, 1:] + dy).ravel()
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    cols = np.stack([(y0 % ny) * nx + x0 % nx, (y0 % ny) * nx + (x0 + 1) % nx,
                     ((y0 + 1) % ny) * nx + x0 % nx, ((y0 + 1) % ny) * nx + (x0 + 1) % nx], 1)
    w = np.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx], 1)
    n = len(x)
    mat = _sp.csr_matrix((w.ravel().astype(_F), cols.ravel().astype(np.int32),
                          np.arange(0, 4 * n + 1, 4, dtype=np.int64)), shape=(n, ny * nx))
    mat.sum_duplicates()
    return mat


def sampling_matrix(table: RingTable, shape, shifts=None) -> _sp.csr_matrix:
    """The cached sparse bilinear matrix mapping flattened images to polar samples.

    Row ``s * table.total + i`` is sample ``i`` (concatenated rings) at centre shift ``s``.
    """
    sh = _as_shifts(shifts)
    shape = (int(shape[-2]), int(shape[-1]))
    check_fit(table, shape, sh)
    if len(sh) * table.total > _MAX_SAMPLES:
        raise UsageError(f"{len(sh)} shifts x {table.total} ring samples is too large a "
                         "sampling table; use fewer shifts or rings")
    return _sampling_matrix(table.key(), shape, tuple(map(float, sh.ravel())))


def polar_columns(flat: np.ndarray, table: RingTable, shape, shifts=None) -> np.ndarray:
    """Polar samples of flattened images, images last: ``(n_shifts, total, n_images)`` float32.

    This layout (one sparse-times-dense product, no transposition) is what
    :mod:`emsh.kernels.align2d` consumes.
    """
    mat = sampling_matrix(table, shape, shifts)
    out = mat @ np.ascontiguousarray(flat.T)
    return np.asarray(out, dtype=_F).reshape(-1, table.total, flat.shape[0])


def polar_transform(imgs, table: RingTable, shifts=None) -> np.ndarray:
    """Resample images on the rings of ``table`` (bilinear interpolation).

    Args:
        imgs: ``(ny, nx)`` or ``(n, ny, nx)``.
        table: the rings.
        shifts: sampling-centre offsets ``(sx, sy)`` in pixels from ``(nx//2, ny//2)``:
            None (the centre), one pair, or an ``(n_shifts, 2)`` array.

    Returns:
        float32 ``(..., total)`` for no or one shift, ``(..., n_shifts, total)`` for an
        ``(n_shifts, 2)`` array; rings are concatenated (``table.offsets``).

    Raises:
        UsageError: when a ring plus shift leaves the image (see :func:`polar_limit`).
    """
    a = np.asarray(imgs, dtype=_F)
    if a.ndim not in (2, 3):
        raise UsageError(f"polar_transform: expected (ny, nx) or (n, ny, nx), got {a.shape}")
    many = shifts is not None and np.ndim(shifts) == 2
    b = a.reshape(-1, a.shape[-2] * a.shape[-1])
    cols = polar_columns(b, table, a.shape[-2:], shifts)          # (S, total, n)
    out = np.ascontiguousarray(cols.transpose(2, 0, 1))
    if not many:
        out = out[:, 0]
    return out[0] if a.ndim == 2 else out


def polar_at(imgs, table: RingTable, centres) -> np.ndarray:
    """Polar samples of each image around its own centre offset (bilinear, circular).

    Args:
        imgs: ``(n, ny, nx)``.
        table: the rings.
        centres: ``(n, 2)`` offsets ``(sx, sy)`` from ``(nx//2, ny//2)``, one per image.

    Returns:
        float32 ``(n, total)``.
    """
    a = np.asarray(imgs, dtype=_F)
    c = np.asarray(centres, dtype=np.float64)
    if a.ndim != 3 or c.shape != (a.shape[0], 2):
        raise UsageError(f"polar_at: expected (n, ny, nx) images and (n, 2) centres; got "
                         f"{a.shape} and {c.shape}")
    check_fit(table, a.shape[-2:], np.abs(c).max(axis=0, keepdims=True))
    n, ny, nx = a.shape
    dx, dy = table.offsets_xy()
    x = nx // 2 + c[:, :1] + dx
    y = ny // 2 + c[:, 1:] + dy
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0).astype(_F), (y - y0).astype(_F)
    idx = np.int32 if a.size < 2**31 else np.int64     # flat indices, fewer bytes to move
    x0, y0 = x0.astype(idx), y0.astype(idx)
    np.remainder(x0, nx, out=x0)
    np.remainder(y0, ny, out=y0)
    x1, y1 = x0 + 1, y0 + 1
    x1[x1 == nx] = 0
    y1[y1 == ny] = 0
    rows = (np.arange(n, dtype=idx) * idx(ny * nx))[:, None]
    y0 *= nx
    y0 += rows
    y1 *= nx
    y1 += rows
    g = a.reshape(-1)
    top = g.take(y0 + x0) * (1 - fx)
    top += g.take(y0 + x1) * fx
    bottom = g.take(y1 + x0) * (1 - fx)
    bottom += g.take(y1 + x1) * fx
    top *= 1 - fy
    bottom *= fy
    top += bottom
    return top


def ring_fft(polar, table: RingTable) -> np.ndarray:
    """Fourier coefficients of every ring, dense ``(..., n_rings, nfreq)`` complex64.

    Ring ``r`` occupies frequencies ``0..L_r/2`` (numpy's forward sign, unnormalised);
    higher entries are zero.
    """
    p = np.asarray(polar, dtype=_F)
    if p.shape[-1] != table.total:
        raise UsageError(f"ring_fft: last axis {p.shape[-1]} is not the table's "
                         f"{table.total} samples")
    lead = p.shape[:-1]
    out = np.zeros(lead + (table.n_rings, table.nfreq), dtype=np.complex64)
    for L, c0, c1 in table.groups:
        seg = p[..., table.offsets[c0]:table.offsets[c1]].reshape(lead + (c1 - c0, L))
        out[..., c0:c1, :L // 2 + 1] = _fft.rfftn(seg, 1)
    return out


def ring_weights(table: RingTable) -> np.ndarray:
    """Weights ``(n_rings, nfreq)`` that turn ring products into area-weighted correlations.

    With ``S[m] = sum_r w[r, m] * conj(A[r, m]) * B[r, m]``, the inverse real FFT of
    length ``maxrin`` of ``S`` is ``sum_r (2 pi r / L_r) sum_k a_r(phi_k) b_r(phi_k + psi_j)``
    at ``psi_j = 2 pi j / maxrin``: the ring's own weight ``(2 pi r/L_r)(maxrin/L_r)``,
    halved at the ring's Nyquist frequency when ``L_r < maxrin`` (that term is counted
    twice by the longer transform), zero above it.
    """
    L = table.lengths[:, None]
    m = np.arange(table.nfreq)[None, :]
    w = np.where(m <= L // 2, (table.area[:, None] * table.maxrin / L), 0.0)
    w = np.where((m == L // 2) & (L < table.maxrin), 0.5 * w, w)
    return w.astype(_F)


def ring_power_weights(table: RingTable) -> np.ndarray:
    """Weights ``u`` with ``sum u |C|^2`` = area-weighted sum of squared samples (Parseval)."""
    L = table.lengths[:, None]
    m = np.arange(table.nfreq)[None, :]
    u = np.where((m == 0) | (m == L // 2), 1.0, 2.0) * table.area[:, None] / L
    return np.where(m <= L // 2, u, 0.0)


def ring_moments(coef, table: RingTable) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted mean and centred norm of polar images from their ring coefficients.

    Returns:
        ``(mean, norm)`` over the leading axes of ``coef`` (float64): ``mean`` is the
        weighted average of all samples, ``norm`` the square root of the weighted sum
        of squared deviations from it.
    """
    c = np.asarray(coef)
    total_area = float(np.sum(table.area * table.lengths))
    mean = (c[..., 0].real.astype(np.float64) @ table.area) / total_area
    power = (np.abs(c.astype(np.complex128)) ** 2 * ring_power_weights(table)).sum(axis=(-2, -1))
    norm = np.sqrt(np.maximum(power - mean**2 * total_area, 0.0))
    return mean, norm


def normalize_rings(coef, table: RingTable) -> np.ndarray:
    """Ring coefficients with the weighted mean removed and unit weighted norm.

    Coefficients of a constant polar image (norm 0) come back as zeros.
    """
    c = np.array(coef, dtype=np.complex64)
    mean, norm = ring_moments(c, table)
    c[..., 0] -= (mean[..., None] * table.lengths).astype(_F)
    scale = np.where(norm > 0, 1.0 / np.where(norm > 0, norm, 1.0), 0.0)
    c *= scale[..., None, None].astype(_F)
    return c


# ---------------------------------------------------------------- ring correlation

def as_stack(x, name: str) -> np.ndarray:
    """``x`` as a C-contiguous float32 stack ``(n, ny, nx)``; rejects complex, empty, NaN."""
    a = np.asarray(x)
    if np.iscomplexobj(a) or a.ndim not in (2, 3) or a.size == 0:
        raise UsageError(f"{name}: expected real images (ny, nx) or (n, ny, nx), got "
                         f"{a.dtype} {a.shape}")
    a = np.ascontiguousarray(a, dtype=_F).reshape((-1,) + a.shape[-2:])
    if not np.all(np.isfinite(a)):
        raise UsageError(f"{name}: contains NaN or infinite pixels")
    return a


@dataclass
class PreparedReferences:
    """References in the form the search multiplies with; reusable across image chunks.

    Attributes:
        table: the rings.
        shape: image shape ``(ny, nx)``.
        images: the references, float32 ``(K, ny, nx)``.
        mirror: whether mirrored columns are present.
        gemm: ``(nfreq, n_rings, cols)`` complex64 weighted coefficients: columns
            ``0..K-1`` hold ``w * conj(R)``, columns ``K..2K-1`` (with mirror) ``w * (-1)^m R``.
    """

    table: RingTable
    shape: tuple[int, int]
    images: np.ndarray
    mirror: bool
    gemm: np.ndarray

    @property
    def n_refs(self) -> int:
        return self.images.shape[0]


def prepare_references(refs, table: RingTable, mirror: bool = True) -> PreparedReferences:
    """Ring coefficients of the references, centred, unit-norm and weighted for the GEMM.

    Args:
        refs: ``(K, ny, nx)`` (or one ``(ny, nx)``) reference images.
        table: rings to use.
        mirror: also prepare mirrored columns.
    """
    r = as_stack(refs, "refs")
    coef = normalize_rings(ring_fft(polar_transform(r, table), table), table)  # (K, C, nfreq)
    w = ring_weights(table)
    straight = np.conj(coef) * w
    cols = [straight]
    if mirror:
        sign = np.where(np.arange(table.nfreq) % 2 == 0, 1, -1).astype(_F)
        cols.append(coef * (w * sign))
    gemm = np.ascontiguousarray(np.concatenate(cols, 0).transpose(2, 1, 0), dtype=np.complex64)
    return PreparedReferences(table, r.shape[-2:], r, bool(mirror), gemm)


def gemm_coefficients(y: np.ndarray, t: RingTable) -> np.ndarray:
    """Ring FFTs of polar rows ``y`` (S, b, total), laid out ``(nfreq, S*b, n_rings)`` for GEMMs.

    Entries above a ring's Nyquist frequency are zero (the GEMM bands never read them).
    """
    S, b, _ = y.shape
    coef = np.zeros((t.nfreq, S, b, t.n_rings), np.complex64)
    for L, c0, c1 in t.groups:
        seg = y[:, :, t.offsets[c0]:t.offsets[c1]].reshape(S, b, c1 - c0, L)
        coef[:L // 2 + 1, :, :, c0:c1] = _fft.rfftn(seg, 1).transpose(3, 0, 1, 2)
    return coef.reshape(t.nfreq, S * b, t.n_rings)


def band_gemm(coef: np.ndarray, gemm: np.ndarray, bands) -> np.ndarray:
    """``spec[m] = coef[m] @ gemm[m]`` over the frequency bands (only rings that have ``m``).

    Args:
        coef: image coefficients ``(nfreq, rows, n_rings)`` (:func:`gemm_coefficients`).
        gemm: reference columns ``(nfreq, n_rings, cols)`` (:class:`PreparedReferences`).
        bands: ``table.bands()``.

    Returns:
        complex64 ``(nfreq, rows, cols)``: one batched complex GEMM per band.

    The products run with single-threaded BLAS over emsh's own threads
    (:func:`emsh.blas.matmul_rows`): OpenBLAS's spinning threads otherwise slow the
    FFTW threads that run next.
    """
    out = np.empty((coef.shape[0], coef.shape[1], gemm.shape[2]), np.complex64)
    for m0, m1, c0 in bands:
        matmul_rows(coef[m0:m1, :, c0:], gemm[m0:m1, c0:], out[m0:m1])
    return out
