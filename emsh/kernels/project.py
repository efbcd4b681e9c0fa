"""Projection of volumes: SPIDER's real-space ``PJ 3Q`` and a batched Fourier projector.

Geometry (both projectors, and :mod:`emsh.kernels.reconstruct`): with
``R = spider_to_matrix(phi, theta, psi)`` (``Rz(psi) Ry(theta) Rz(phi)``), a point
``v = (x, y, z)`` of the volume lands at ``p = R @ v`` in the projection frame and
the projection integrates along the projection's z. Equivalently the ray through
projection pixel ``(x, y)`` samples the volume at ``R.T @ (x, y, t)``, and the
central slice of a projection at 2D frequency ``(kx, ky)`` is the volume's 3D
transform at ``kx * R[0] + ky * R[1]``. Coordinates are in pixels from the centre,
index ``n//2`` on every axis (SPIDER's ``n/2+1``). Arrays are ``(z, y, x)`` volumes
and ``(n, y, x)`` stacks. Angle arrays ``(k, 3)`` are SPIDER angles in doc-file order
(psi, theta, phi), degrees, like everything in :mod:`emsh.geom`; ``(k, 3, 3)``
rotation matrices are accepted wherever angles are.
"""

from __future__ import annotations

import numpy as np

from emsh import fft as _fft
from emsh.errors import UsageError
from emsh.geom.euler import doc_angles_to_matrix
from emsh.kernels import gridding

__all__ = ["rotation_matrices", "project_real_trilinear", "backproject_real_trilinear",
           "FourierProjector"]

_MAX_ELEMENTS = 2**31  # refuse absurd requests before allocating
_CHUNK = 250_000       # samples per vectorised pass of the real-space projector
_TAP_ENTRIES = 4_000_000  # interpolation taps per pass of the Fourier projector


def rotation_matrices(angles) -> np.ndarray:
    """Rotation matrices from SPIDER angles, or matrices passed through.

    Args:
        angles: ``(n, 3)`` SPIDER angles in doc-file column order (psi, theta, phi),
            degrees, as everywhere in emsh (``emsh.geom``); one triple ``(3,)``; or
            rotation matrices ``(n, 3, 3)``. A 2-D array is always read as angle
            rows, so one matrix must be given as ``(1, 3, 3)``.

    Returns:
        float64 ``(n, 3, 3)``.
    """
    a = np.asarray(angles, dtype=np.float64)
    if a.ndim == 3 and a.shape[1:] == (3, 3):
        return a
    if a.ndim == 1 and a.shape == (3,):
        a = a[None]
    if a.ndim != 2 or a.shape[1] != 3:
        raise UsageError(f"angles must be (n, 3) as (psi, theta, phi) or (n, 3, 3) matrices, "
                         f"got shape {a.shape}")
    return doc_angles_to_matrix(a)


def _cubic(vol: np.ndarray, what: str = "volume") -> np.ndarray:
    vol = np.ascontiguousarray(vol, dtype=np.float32)
    if vol.ndim != 3 or not (vol.shape[0] == vol.shape[1] == vol.shape[2]):
        raise UsageError(f"{what} must be a cube (n, n, n), got shape {vol.shape}")
    if vol.shape[0] < 2:
        raise UsageError(f"{what} is too small: {vol.shape}")
    return vol


def _sphere_voxels(n: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer offsets (z, y, x) from the centre inside ``radius`` (SPIDER's PREPCUB test).

    Returns the offsets ``(m, 3)`` and the flat (y, x) output pixel of each.
    """
    c = n // 2
    r2 = np.float32(radius) * np.float32(radius)
    t = np.arange(n, dtype=np.float32) - np.float32(c)
    inside = (t[:, None, None] ** 2 + t[None, :, None] ** 2 + t[None, None, :] ** 2) <= r2
    z, y, x = np.nonzero(inside)
    offs = np.stack([z - c, y - c, x - c], axis=1).astype(np.int64)
    return offs, y * n + x


def _dm_float32(rot: np.ndarray) -> np.ndarray:
    """SPIDER computes the matrix in double precision and stores it as REAL."""
    return rot.astype(np.float32)


def _runs(offs: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """x-runs of the voxel offsets (sorted z, y, x): each run's first voxel, the place
    of every voxel in a ``(maxlen, runs)`` grid of run steps, and the longest run."""
    m = offs.shape[0]
    key = offs[:, 0] * 1_000_003 + offs[:, 1]
    start = np.ones(m, dtype=bool)
    start[1:] = key[1:] != key[:-1]
    run_id = np.cumsum(start) - 1
    first = np.nonzero(start)[0]
    step_no = np.arange(m) - first[run_id]
    return first, step_no * first.size + run_id, int(step_no.max()) + 1


def _sample_positions(dm: np.ndarray, offs: np.ndarray, centre1: float,
                      runs: tuple | None = None) -> np.ndarray:
    """Volume positions (1-based, float32) of every voxel for each matrix, as PJ 3Q does.

    SPIDER computes the position of the first voxel of each x-run and then steps
    by ``R[0]`` along the run in single precision; this reproduces that sum order.
    ``runs`` is :func:`_runs` of ``offs`` (computed when not given).
    Returns ``(3, k, m)``: the X, Y and Z coordinates.
    """
    k, m = dm.shape[0], offs.shape[0]
    first, place, maxlen = _runs(offs) if runs is None else runs
    ix, iy, iz = (offs[first, 2].astype(np.float32), offs[first, 1].astype(np.float32),
                  offs[first, 0].astype(np.float32))
    out = np.empty((3, k, m), dtype=np.float32)
    c1 = np.float32(centre1)
    steps = np.empty((k, maxlen, first.size), dtype=np.float32)
    for a in range(3):
        steps[:, 0] = (ix * dm[:, 0, a, None] + iy * dm[:, 1, a, None]
                       + iz * dm[:, 2, a, None] + c1)                     # (k, runs)
        step = np.broadcast_to(dm[:, 0, a, None], (k, first.size))
        for t in range(1, maxlen):                                        # running float32 sum
            np.add(steps[:, t - 1], step, out=steps[:, t])
        out[a] = steps.reshape(k, -1).take(place, axis=1)
    return out


_CORNERS = ((0, 0, 0), (0, 0, 1), (0, 1, 0), (1, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0), (1, 1, 1))
_CORNER_TABLE_BYTES = 2**28   # largest (n**3, 8) corner table; bigger volumes gather per corner


def _corner_table(vol: np.ndarray) -> np.ndarray | None:
    """``(n**3, 8)`` float32: row ``(z*n + y)*n + x`` holds the 8 cell corners from that
    voxel in the order c000, c100, c010, c001, c110, c101, c011, c111 (``cXYZ``), so a
    trilinear sample is one 32-byte row gather. ``None`` when it would be too large."""
    n = vol.shape[0]
    if 32 * n ** 3 > _CORNER_TABLE_BYTES:
        return None
    padded = np.zeros((n + 1,) * 3, dtype=np.float32)
    padded[:n, :n, :n] = vol
    tab = np.empty((n, n, n, 8), dtype=np.float32)
    for c, (dz, dy, dx) in enumerate(_CORNERS):
        tab[..., c] = padded[dz:dz + n, dy:dy + n, dx:dx + n]
    return tab.reshape(n ** 3, 8)


def _trilinear_gather(vol: np.ndarray, pos: np.ndarray, corners: np.ndarray | None = None
                      ) -> np.ndarray:
    """Trilinear values at 1-based positions ``(3, ...)`` = (X, Y, Z) with PJ 3Q's formula.

    Samples whose 2x2x2 neighbourhood leaves the volume give 0 (SPIDER skips them).
    ``corners`` is :func:`_corner_table` of ``vol`` (faster) or ``None``.
    """
    n = vol.shape[0]
    shape = pos.shape[1:]
    X, Y, Z = (c.reshape(-1) for c in pos)
    ix, iy, iz = X.astype(np.int32), Y.astype(np.int32), Z.astype(np.int32)  # IFIX
    dx = X - ix.astype(np.float32)
    dy = Y - iy.astype(np.float32)
    dz = Z - iz.astype(np.float32)
    ok = (ix >= 1) & (ix <= n - 1) & (iy >= 1) & (iy <= n - 1) & (iz >= 1) & (iz <= n - 1)
    base = ((iz - 1).astype(np.intp) * n + (iy - 1)) * n + (ix - 1)   # 0-based lower corner
    base *= ok
    if corners is not None:
        rows = corners.view(np.dtype((np.void, 32))).reshape(-1)  # one 32-byte item per row
        c = rows.take(base).view(np.float32).reshape(-1, 8).T     # (8, samples)
        c000, c100, c010, c001, c110, c101, c011, c111 = c
    else:
        flat = vol.reshape(-1)
        c000, c100, c010, c001, c110, c101, c011, c111 = (
            flat.take(base + (dz_ * n + dy_) * n + dx_) for dz_, dy_, dx_ in _CORNERS)
    a1 = c000
    a2 = c100 - a1
    a3 = c010 - a1
    a4 = c001 - a1
    a5 = -a2 - c010 + c110
    a61 = -c001 + c101
    a6 = -a2 + a61
    a7 = -a3 - c001 + c011
    a8 = -a5 - a61 - c011 + c111
    val = a1 + dz * (a4 + a6 * dx + (a7 + a8 * dx) * dy) + a3 * dy + dx * (a2 + a5 * dy)
    np.copyto(val, np.float32(0.0), where=~ok)
    return val.reshape(shape)


def project_real_trilinear(vol: np.ndarray, angles, radius: float | None = None) -> np.ndarray:
    """Projections of a cubic volume by ray summation with trilinear interpolation (``PJ 3Q``).

    This reproduces SPIDER's ``PJ 3Q`` (``WPRO_N``): the rays are sampled at unit
    steps on the volume's own integer grid; for every voxel offset ``(x, y, z)``
    within ``radius`` of the centre, the volume is interpolated trilinearly at
    ``R.T @ (x, y, z)`` and the value is added to projection pixel ``(x, y)``.
    Samples whose interpolation cell leaves the volume are skipped. Arithmetic is
    single precision in SPIDER's order, so results match ``PJ 3Q`` to float32
    rounding.

    Args:
        vol: float32 ``(n, n, n)``.
        angles: ``(k, 3)`` SPIDER (psi, theta, phi) in degrees (doc-file order), or
            ``(k, 3, 3)`` matrices.
        radius: object radius in pixels (``PJ 3Q``'s first answer); default ``n//2 - 1``.

    Returns:
        float32 ``(k, n, n)`` projections, centre at index ``n//2``.
    """
    vol = _cubic(vol)
    n = vol.shape[0]
    rad = float(n // 2 - 1) if radius is None else float(radius)
    if not np.isfinite(rad) or rad < 0:
        raise UsageError(f"projection radius must be >= 0, got {radius}")
    dm = _dm_float32(rotation_matrices(angles))
    k = dm.shape[0]
    if k * n * n > _MAX_ELEMENTS:
        raise UsageError(f"{k} projections of {n}x{n} pixels is too large a request")
    offs, pix = _sphere_voxels(n, rad)
    out = np.zeros((k, n * n), dtype=np.float32)
    if offs.shape[0] == 0:
        return out.reshape(k, n, n)
    per = max(1, _CHUNK // max(1, offs.shape[0]))
    corners, runs = _corner_table(vol), _runs(offs)
    for s in range(0, k, per):
        pos = _sample_positions(dm[s:s + per], offs, n // 2 + 1, runs)
        val = _trilinear_gather(vol, pos, corners)                # (kk, m)
        out[s:s + per] = _scatter_sum_z(val, offs, pix, n)
    return out.reshape(k, n, n)


def _scatter_sum_z(val: np.ndarray, offs: np.ndarray, pix: np.ndarray, n: int) -> np.ndarray:
    """Sum sample values into their (y, x) pixels in increasing z, in float32 like SPIDER."""
    kk = val.shape[0]
    cube = np.zeros((kk, n, n * n), dtype=np.float32)
    cube.reshape(kk, -1)[:, (offs[:, 0] + n // 2) * (n * n) + pix] = val
    acc = cube[:, 0].copy()
    for z in range(1, n):
        acc += cube[:, z]
    return acc


def backproject_real_trilinear(images: np.ndarray, angles, radius: float | None = None) -> np.ndarray:
    """Exact adjoint of :func:`project_real_trilinear` (same samples, same weights).

    Each voxel offset inside ``radius`` takes its projection pixel's value and
    spreads it, with the trilinear weights of that sample, onto the 8 voxels around
    ``R.T @ (x, y, z)``. Sums over all images. Computed in float64, returned float32.

    Args:
        images: ``(k, n, n)`` stack (one image ``(n, n)`` is accepted).
        angles: as in :func:`project_real_trilinear`.
        radius: as in :func:`project_real_trilinear`.

    Returns:
        float32 ``(n, n, n)``.
    """
    img = np.asarray(images, dtype=np.float32)
    if img.ndim == 2:
        img = img[None]
    if img.ndim != 3 or img.shape[1] != img.shape[2]:
        raise UsageError(f"images must be a square stack (k, n, n), got {img.shape}")
    n = img.shape[1]
    rad = float(n // 2 - 1) if radius is None else float(radius)
    dm = _dm_float32(rotation_matrices(angles))
    if dm.shape[0] != img.shape[0]:
        raise UsageError(f"{img.shape[0]} images but {dm.shape[0]} orientations")
    offs, pix = _sphere_voxels(n, rad)
    acc = np.zeros(n ** 3, dtype=np.float64)
    per = max(1, _CHUNK // max(1, offs.shape[0]))
    flat_img = img.reshape(img.shape[0], -1)
    corner = np.array([(cz * n + cy) * n + cx for cz, cy, cx in _CORNERS])
    runs = _runs(offs)
    for s in range(0, dm.shape[0], per):
        pos = _sample_positions(dm[s:s + per], offs, n // 2 + 1, runs).reshape(3, -1)
        io = pos.astype(np.int32)                                 # IFIX, as the projector
        d = (pos - io.astype(np.float32)).astype(np.float64)      # (3, samples): dx, dy, dz
        ok = np.all((io >= 1) & (io <= n - 1), axis=0)
        base = ((io[2] - 1) * n + (io[1] - 1)) * n + (io[0] - 1)
        wts = np.stack([(d[0] if cx else 1.0 - d[0]) * (d[1] if cy else 1.0 - d[1])
                        * (d[2] if cz else 1.0 - d[2]) for cz, cy, cx in _CORNERS], axis=1)
        v = flat_img[s:s + per][:, pix].reshape(-1, 1).astype(np.float64) * ok[:, None]
        acc += gridding.scatter_rows(n ** 3, (base * ok)[:, None] + corner, wts, v)[:, 0]
    return acc.reshape(n, n, n).astype(np.float32)


class FourierProjector:
    """Batched projections by central-slice extraction from the padded 3D transform.

    The volume is divided by the interpolation kernel's real-space profile
    (gridding pre-compensation), zero-padded ``pad`` times, and transformed once.
    Each projection's 2D transform is then interpolated on the plane
    ``kx * R[0] + ky * R[1]`` and one batched inverse 2D FFT gives the images.
    Only frequencies strictly inside the Nyquist circle (``kx^2 + ky^2 < 1/4``
    cycles/pixel) are kept, so each slice is exactly Hermitian and
    :meth:`backproject` is the exact adjoint of :meth:`project`.

    Args:
        vol: float32 ``(n, n, n)``; or just the box size ``n`` for a projector used
            only for :meth:`backproject`.
        pad: padding factor (>= 1; 2 is accurate to about 1e-3 with ``"kb"``).
        kernel: ``"kb"`` (Kaiser-Bessel, 4 taps per axis, default) or ``"trilinear"``.
    """

    def __init__(self, vol, pad: float = 2, kernel: str = "kb"):
        if not (1 <= float(pad) <= 8):
            raise UsageError(f"pad must be between 1 and 8, got {pad}")
        if np.ndim(vol) == 0:
            self.n = int(vol)
            if self.n < 2:
                raise UsageError(f"box size must be at least 2, got {vol}")
            vol = None
        else:
            vol = _cubic(vol)
            self.n = vol.shape[0]
        self.kernel = gridding.Kernel.named(kernel, pad)
        self.np_ = gridding.padded_size(self.n, pad)
        if self.np_ ** 3 > _MAX_ELEMENTS:
            raise UsageError(f"padded volume {self.np_}^3 is too large")
        self.spectrum = None
        self._table = None
        if vol is not None:
            pre = vol / self.kernel.real_profile_3d(self.n, self.np_)
            self.spectrum = gridding.padded_rfft3(pre, self.np_)

    def _gather_table(self) -> gridding.SpectrumTable:
        """The padded spectrum extended for tap gathers, made on first use."""
        if self._table is None:
            self._table = gridding.SpectrumTable(self.spectrum)
        return self._table

    def slices(self, angles, shifts=None) -> np.ndarray:
        """Central slices, equal to ``emsh.fft.rfftn`` of the projections :meth:`project` returns.

        Args:
            angles: ``(k, 3)`` SPIDER (psi, theta, phi) or ``(k, 3, 3)`` matrices.
            shifts: optional ``(k, 2)`` shifts ``(sx, sy)`` in pixels applied to the
                projections (positive moves content to higher x / y, as ``SH``).

        Returns:
            complex64 ``(k, n, n//2 + 1)`` in numpy's rfft layout.
        """
        if self.spectrum is None:
            raise UsageError("this FourierProjector was made from a box size; give it a volume")
        rot = rotation_matrices(angles)
        k = rot.shape[0]
        n, nh = self.n, self.n // 2 + 1
        ky, kx = gridding.rfft_freqs(n)                       # cycles/pixel
        inside = np.flatnonzero(((kx ** 2 + ky ** 2) < 0.25).ravel())
        kx = np.broadcast_to(kx, (n, nh)).reshape(-1)[inside]
        ky = np.broadcast_to(ky, (n, nh)).reshape(-1)[inside]
        phase = self._phase(k, kx, ky, shifts)                # (1 or k, m)
        table = self._gather_table()
        out = np.zeros((k, n * nh), dtype=np.complex64)
        per = max(1, _TAP_ENTRIES // (inside.size * self.kernel.width ** 3))
        for s in range(0, k, per):
            r = rot[s:s + per]
            pts = kx[:, None] * r[:, None, 0, :] + ky[:, None] * r[:, None, 1, :]   # (x, y, z)
            vals = gridding.interpolate_rfft3(self.spectrum, pts[..., ::-1] * self.np_,
                                              self.kernel, table)
            vals *= phase if phase.shape[0] == 1 else phase[s:s + per]
            out[s:s + per, inside] = vals
        return out.reshape(k, n, nh)

    def _plane_points(self, rot, kx, ky):
        """Slice sample points (z, y, x) in padded grid units and the in-circle mask."""
        pts = (kx[..., None] * rot[:, None, None, 0, :] + ky[..., None] * rot[:, None, None, 1, :])
        pts = pts[..., ::-1] * self.np_
        return pts, (kx ** 2 + ky ** 2) < 0.25

    def _phase(self, k, kx, ky, shifts) -> np.ndarray:
        """Phase factors (complex64, leading axis 1 or ``k``) moving the origin to the
        image centre and applying shifts; ``kx``, ``ky`` broadcast together."""
        c = self.n // 2
        phase = (-2j * np.pi * c) * (kx + ky)
        phase = phase[None]
        if shifts is not None:
            sh = np.asarray(shifts, dtype=np.float64).reshape(-1, 2)
            if sh.shape[0] != k:
                raise UsageError(f"{sh.shape[0]} shifts for {k} orientations")
            lead = (-1,) + (1,) * np.ndim(kx + ky)
            sx, sy = sh[:, 0].reshape(lead), sh[:, 1].reshape(lead)
            phase = phase - 2j * np.pi * (kx * sx + ky * sy)
        return np.exp(phase).astype(np.complex64)

    def project(self, angles, shifts=None) -> np.ndarray:
        """Projections ``(k, n, n)`` float32, centre at ``n//2``; arguments as :meth:`slices`."""
        return _fft.irfftn(self.slices(angles, shifts), (self.n, self.n))

    def backproject(self, images, angles, shifts=None) -> np.ndarray:
        """The exact adjoint of :meth:`project` applied to a stack of images.

        Spreads each image's transform onto the padded 3D grid with the same kernel
        weights the projector reads with, transforms back, crops and applies the
        same pre-compensation. ``<project(x), y> == <x, backproject(y)>``.

        Args:
            images: ``(k, n, n)`` float32 stack.
            angles, shifts: as :meth:`slices`.

        Returns:
            float32 ``(n, n, n)``.
        """
        img = np.asarray(images, dtype=np.float32)
        if img.ndim == 2:
            img = img[None]
        n, np_ = self.n, self.np_
        if img.ndim != 3 or img.shape[1:] != (n, n):
            raise UsageError(f"images must be (k, {n}, {n}), got {img.shape}")
        rot = rotation_matrices(angles)
        if rot.shape[0] != img.shape[0]:
            raise UsageError(f"{img.shape[0]} images but {rot.shape[0]} orientations")
        ky = np.fft.fftfreq(n)[:, None]
        kx = np.fft.fftfreq(n)[None, :]
        g = _fft.fftn(img.astype(np.complex64), ndim=2) / np.float32(n * n)
        g = g * np.conj(self._phase(img.shape[0], kx, ky, shifts))
        pts, inside = self._plane_points(rot, kx, ky)
        g = np.where(inside, g, 0)
        acc = gridding.spread_full3(pts, g, self.kernel, np_)
        vol = np.fft.fftshift(_fft.ifftn(acc.astype(np.complex64), ndim=3).real) * float(np_) ** 3
        o = np_ // 2 - n // 2
        vol = vol[o:o + n, o:o + n, o:o + n]
        return (vol / self.kernel.real_profile_3d(n, np_)).astype(np.float32)

