"""Geometric transforms of images and volumes: rotate, shift, pad, window, resample.

Conventions (see DESIGN.md):

* Arrays are float32, axis order ``(z, y, x)``; a stack has the particle axis first.
  Functions that work per image accept a leading batch axis and treat every image
  alike (with per-image parameters where the signature says so).
* Shift vectors are given in SPIDER's order ``(sx, sy[, sz])`` in pixels, x first,
  because that is how shifts appear in SPIDER answers and doc files. A positive ``sx``
  moves the content to higher column numbers, a positive ``sy`` to higher row numbers.
* The image centre is index ``n//2`` on each axis (SPIDER's ``n/2 + 1``, 1-based).
* ``pad`` and ``window`` take SPIDER's 1-based top-left coordinates ``(x, y[, z])``;
  output shapes are numpy shapes ``(ny, nx)`` or ``(nz, ny, nx)``.

``rotate_shift_quadratic`` reproduces SPIDER's ``RT SQ`` (``rtsq.f`` with the
``quadri`` interpolant) to float32 rounding, including its wrap-around rules; ``pad``,
``window`` and the ``shift_*`` functions reproduce ``PD``, ``WI``, ``SH`` and ``SH F``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from emsh import fft as _fft
from emsh.errors import UsageError
from emsh.geom.euler import spider_to_matrix

__all__ = [
    "rotate_shift_quadratic", "shift_integer", "shift_bilinear", "shift_trilinear",
    "shift_linear", "shift_fourier", "pad", "window", "resample_fourier", "rotate3d",
    "mirror_x",
]

_F = np.float32
MAX_ELEMENTS = 2**32  # refuse outputs beyond 16 GiB of float32


def _images(x, ndim: int, name: str = "input") -> tuple[np.ndarray, tuple[int, ...]]:
    """Return ``x`` as float32 ``(n, *spatial)`` plus its leading batch shape."""
    a = np.ascontiguousarray(np.asarray(x, dtype=_F))
    if a.ndim < ndim:
        raise UsageError(f"{name}: expected at least {ndim} axes, got shape {a.shape}")
    lead = a.shape[: a.ndim - ndim]
    return a.reshape((-1,) + a.shape[a.ndim - ndim:]), lead


def _per_image(v, n: int, width: int | None, name: str) -> np.ndarray:
    """Broadcast a scalar/vector parameter to one row per image (float64)."""
    a = np.asarray(v, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise UsageError(f"{name}: values must be finite numbers")
    want = (n,) if width is None else (n, width)
    try:
        if width is not None and a.ndim == 1:
            a = a[None, :]
        return np.broadcast_to(a, want).copy()
    except ValueError:
        raise UsageError(f"{name}: cannot use shape {a.shape} for {n} image(s); "
                         f"expected {'a scalar' if width is None else f'{width} values'} "
                         f"or one per image") from None


def _shift_vectors(shifts, n: int, nd: int) -> np.ndarray:
    """Shifts ``(sx, sy[, sz])`` per image, returned in array-axis order ``(.., y, x)``."""
    s = _per_image(shifts, n, nd, "shifts")
    return s[:, ::-1]


# ---------------------------------------------------------------- RT SQ


def _quadri(img: np.ndarray, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """SPIDER's ``quadri`` on a batch: ``img`` (n, ny, nx), X/Y 1-based, (n, ny, nx).

    Arithmetic is float32 in SPIDER's order. Column/row indices that leave 1..N in
    SPIDER's own code (rare, e.g. a coordinate rounding onto N+1) address the
    neighbouring memory in Fortran order; the flat indexing below does the same.
    """
    n, ny, nx = img.shape
    X = X.astype(_F, copy=True)
    Y = Y.astype(_F, copy=True)
    for A, size in ((X, nx), (Y, ny)):
        lo = A < 1
        if lo.any():  # A + (1 - INT(A)/N) * N, integer division truncating toward 0
            k = np.trunc(np.trunc(A[lo]) / size)
            A[lo] = A[lo] + ((1.0 - k) * size).astype(_F)
        hi = A > _F(size) + _F(0.5)
        if hi.any():
            A[hi] = np.fmod(A[hi] - _F(1), _F(size)) + _F(1)
    i = np.trunc(X).astype(np.int64)
    j = np.trunc(Y).astype(np.int64)
    dx = X - i.astype(_F)
    dy = Y - j.astype(_F)
    ip = np.where(i + 1 > nx, i + 1 - nx, i + 1)
    im = np.where(i - 1 < 1, i - 1 + nx, i - 1)
    jp = np.where(j + 1 > ny, j + 1 - ny, j + 1)
    jm = np.where(j - 1 < 1, j - 1 + ny, j - 1)
    # each image flattened and extended circularly by nx + 1 values on both sides, so
    # that every Fortran-order offset SPIDER can form is a plain index (no modulo)
    size, pad = nx * ny, nx + 1
    ext = np.concatenate([img.reshape(n, size)[:, size - pad:], img.reshape(n, size),
                          img.reshape(n, size)[:, :pad]], axis=1).reshape(-1)
    base = (np.arange(n, dtype=np.int64) * (size + 2 * pad) + pad - nx - 1)[:, None, None]
    rj, rjp, rjm = base + j * nx, base + jp * nx, base + jm * nx

    def at(ii, rr):
        return ext[rr + ii]

    f0 = at(i, rj)
    c1 = at(ip, rj) - f0
    c2 = (c1 - f0 + at(im, rj)) * _F(0.5)
    c3 = at(i, rjp) - f0
    c4 = (c3 - f0 + at(i, rjm)) * _F(0.5)
    # dx, dy >= 0 always, so SPIDER's corner point is (i+1, j+1) and HXC = HYC = 1
    c5 = ((at(ip, rjp) - f0) - c1) - c3
    return f0 + dx * (c1 + (dx - _F(1)) * c2 + dy * c5) + dy * (c3 + (dy - _F(1)) * c4)


def _wrap_axis(v: np.ndarray, size: int) -> np.ndarray:
    """RT SQ's fold of centred output coordinates into SPIDER's range ``[-N/2, N/2 - 1]``."""
    lo, hi = _F(-(size // 2)), _F(size // 2)
    if size % 2 == 0:
        hi, e1, e2 = hi - _F(1), _F(-size), _F(size)
    else:
        e1, e2 = _F(-size - 1), _F(size + 1)
    v = np.where(v < lo, np.minimum(v + e2, hi), v)
    return np.where(v > hi, np.maximum(v + e1, lo), v)


def rotate_shift_quadratic(imgs, angle_deg, shift=(0.0, 0.0), scale=1.0) -> np.ndarray:
    """Rotate, scale and shift images with SPIDER's quadratic interpolation (``RT SQ``).

    Each output pixel ``p`` (0-based ``(x, y)``) is
    ``out(p) = in(R(θ) (p - c - s) / scale + c)`` with ``c = (nx//2, ny//2)``,
    ``R(θ) = [[cos, -sin], [sin, cos]]`` acting on (column, row): a positive angle turns
    the content counter-clockwise as displayed (row 0 at the top). The shift is applied
    after rotation and scaling; ``p - c - s`` is folded back into the image (the output
    wraps around), and the input is read with SPIDER's 3x3 ``quadri`` interpolant with
    circular closure. Arithmetic follows SPIDER's float32 order, so results agree with
    the real program to about 1e-7 of the image maximum.

    Args:
        imgs: one image ``(ny, nx)`` or a batch ``(n, ny, nx)``. A volume given here is
            treated slice by slice, which is what ``RT SQ`` does to volumes.
        angle_deg: rotation in degrees, scalar or one per image.
        shift: ``(sx, sy)`` in pixels, or an ``(n, 2)`` array.
        scale: magnification (> 0), scalar or one per image. SPIDER maps an answer of
            0 to 1; callers that mimic the prompt must do that themselves.

    Returns:
        float32 array with the shape of ``imgs``.

    Raises:
        UsageError: for a non-positive scale or parameters that do not fit the batch.
    """
    b, lead = _images(imgs, 2, "rotate_shift_quadratic")
    n, ny, nx = b.shape
    ang = _per_image(angle_deg, n, None, "angle_deg")
    scl = _per_image(scale, n, None, "scale")
    sh = _per_image(shift, n, 2, "shift")
    if np.any(scl <= 0) or not np.all(np.isfinite(scl)):
        raise UsageError("scale: must be a positive number")
    out = np.empty_like(b)
    d2r = _F(_F(np.pi) / _F(180))
    ixc, iyc = nx // 2 + 1, ny // 2 + 1
    cols = np.arange(1, nx + 1, dtype=_F)
    rows = np.arange(1, ny + 1, dtype=_F)
    step = max(1, (1 << 21) // (nx * ny))
    for s in range(0, n, step):
        e = min(n, s + step)
        th = ang[s:e].astype(_F) * d2r
        cs = (np.cos(th) / scl[s:e].astype(_F))[:, None]
        ss = (np.sin(th) / scl[s:e].astype(_F))[:, None]
        shx = np.fmod(sh[s:e, 0].astype(_F), _F(nx))
        shy = np.fmod(sh[s:e, 1].astype(_F), _F(ny))
        xi = _wrap_axis(cols[None, :] + (_F(-ixc) - shx)[:, None], nx)   # (m, nx)
        yi = _wrap_axis(rows[None, :] + (_F(-iyc) - shy)[:, None], ny)   # (m, ny)
        ycod = yi * cs + _F(iyc)
        ysid = -yi * ss + _F(ixc)
        yold = xi[:, None, :] * ss[:, :, None] + ycod[:, :, None]
        xold = xi[:, None, :] * cs[:, :, None] + ysid[:, :, None]
        out[s:e] = _quadri(b[s:e], xold, yold)
    return out.reshape(lead + (ny, nx))


# ---------------------------------------------------------------- SH, SH F


def _nd_of(shifts) -> int:
    a = np.asarray(shifts)
    nd = a.shape[-1] if a.ndim else 0
    if nd not in (2, 3):
        raise UsageError(f"shifts: expected (sx, sy) or (sx, sy, sz), got shape {a.shape}")
    return nd


def shift_integer(x, shifts) -> np.ndarray:
    """Circular integer shift (``SH`` with whole-pixel shifts): an index permutation.

    Args:
        x: image(s) or volume(s); the number of shift components (2 or 3) says how many
            trailing axes are spatial, leading axes are a batch.
        shifts: ``(sx, sy[, sz])`` integers, or one row per image.

    Returns:
        float32 array, ``out[p] = x[(p - s) mod n]`` (equal to ``np.roll``).
    """
    nd = _nd_of(shifts)
    b, lead = _images(x, nd)
    s = _shift_vectors(shifts, b.shape[0], nd)
    if not np.all(s == np.round(s)):
        raise UsageError("shift_integer: shifts must be whole numbers")
    s = s.astype(np.int64)
    out = b
    for ax in range(nd):
        size = b.shape[1 + ax]
        idx = (np.arange(size)[None, :] - s[:, ax:ax + 1]) % size
        shape = [b.shape[0]] + [1] * nd
        shape[1 + ax] = size
        out = np.take_along_axis(out, idx.reshape(shape), axis=1 + ax)
    return np.ascontiguousarray(out).reshape(lead + b.shape[1:])


def shift_linear(x, shifts) -> np.ndarray:
    """Circular sub-pixel shift with (bi/tri)linear interpolation (SPIDER ``SH``).

    ``out(p) = x(p - s)`` where values between pixels are linear interpolates and
    coordinates wrap around the edges. Integer shifts give exactly ``np.roll``.

    Args:
        x: image(s) ``(.., ny, nx)`` with 2 shift components, or volume(s)
            ``(.., nz, ny, nx)`` with 3.
        shifts: ``(sx, sy[, sz])`` in pixels, or one row per image.
    """
    nd = _nd_of(shifts)
    b, lead = _images(x, nd)
    n = b.shape[0]
    s = _shift_vectors(shifts, n, nd)
    out = b.astype(np.float64)
    for ax in range(nd):
        size = b.shape[1 + ax]
        whole = np.floor(s[:, ax])
        frac = (s[:, ax] - whole)
        shape = [n] + [1] * nd
        shape[1 + ax] = size
        i0 = (np.arange(size)[None, :] - whole[:, None].astype(np.int64)) % size
        a0 = np.take_along_axis(out, i0.reshape(shape), axis=1 + ax)
        a1 = np.take_along_axis(out, ((i0 - 1) % size).reshape(shape), axis=1 + ax)
        w = frac.reshape([n] + [1] * nd)
        out = (1.0 - w) * a0 + w * a1
    return out.astype(_F).reshape(lead + b.shape[1:])


def shift_bilinear(x, shifts) -> np.ndarray:
    """2D circular bilinear shift (``SH`` on images); ``shifts`` is ``(sx, sy)`` per image."""
    if _nd_of(shifts) != 2:
        raise UsageError("shift_bilinear: give (sx, sy); use shift_trilinear for volumes")
    return shift_linear(x, shifts)


def shift_trilinear(x, shifts) -> np.ndarray:
    """3D circular trilinear shift (``SH`` on volumes); ``shifts`` is ``(sx, sy, sz)``."""
    if _nd_of(shifts) != 3:
        raise UsageError("shift_trilinear: give (sx, sy, sz)")
    return shift_linear(x, shifts)


def shift_fourier(x, shifts) -> np.ndarray:
    """Circular shift by a Fourier phase ramp (SPIDER ``SH F``), 2D or 3D, batched.

    The half spectrum is multiplied by ``exp(-2πi k·s/N)`` with SPIDER's frequency
    indexing: on the y (and z) axis index ``k > N/2`` means ``k - N``, so the Nyquist row
    of an even size is taken as ``+N/2``; the x axis runs 0..N/2. The inverse real FFT
    then keeps the real part of the self-conjugate terms, as SPIDER's does. Whole-pixel
    shifts are an exact index permutation, as in SPIDER.

    Args:
        x: image(s) or volume(s); 2 or 3 shift components select the spatial axes.
        shifts: ``(sx, sy[, sz])`` in pixels, or one row per image.
    """
    nd = _nd_of(shifts)
    b, lead = _images(x, nd)
    n = b.shape[0]
    s = _shift_vectors(shifts, n, nd)
    whole = np.all(s == np.round(s), axis=1)
    if whole.all():
        return shift_integer(x, shifts)
    spatial = b.shape[1:]
    F = _fft.rfftn(b, nd)
    phase = np.zeros((n,) + F.shape[1:], dtype=np.float64)
    for ax, size in enumerate(spatial):
        if ax == nd - 1:
            k = np.arange(size // 2 + 1, dtype=np.float64)
        else:
            k = np.arange(size, dtype=np.float64)
            k[k > size // 2] -= size
        shape = [1] * (nd + 1)
        shape[1 + ax] = k.size
        phase = phase + (s[:, ax].reshape([n] + [1] * nd) * (k / size).reshape(shape))
    F = F * np.exp(-2j * np.pi * phase).astype(np.complex64)
    out = _fft.irfftn(F, spatial, nd)
    if whole.any():                  # whole-pixel members: exact permutation, as SPIDER
        out[whole] = shift_integer(b[whole], s[whole][:, ::-1])
    return out.reshape(lead + spatial)


# ---------------------------------------------------------------- resampling, 3D, mirror


def _resample_axis(F: np.ndarray, axis: int, m: int) -> np.ndarray:
    """Crop or zero-pad a full (unshifted) spectrum along one axis from N to m bins."""
    n = F.shape[axis]
    if m == n:
        return F
    F = np.moveaxis(F, axis, 0)
    out = np.zeros((m,) + F.shape[1:], dtype=F.dtype)
    keep = min(m, n)
    h = (keep - 1) // 2                       # strictly positive frequencies kept
    out[: h + 1] = F[: h + 1]
    if h:
        out[m - h:] = F[n - h:]
    if keep % 2 == 0:                         # the smaller size is even: a Nyquist bin
        q = keep // 2
        if m < n:                             # ±q both land on the new Nyquist bin
            out[q] = F[q] + F[n - q]
        else:                                 # split the old Nyquist bin over ±q
            out[q] = 0.5 * F[q]
            out[m - q] = 0.5 * F[q]
    return np.moveaxis(out, 0, axis)


def resample_fourier(x, new_shape) -> np.ndarray:
    """Resample by cropping or zero-padding the Fourier transform; the mean is preserved.

    Downsampling keeps the frequencies that fit (a sharp low-pass at the new Nyquist);
    upsampling is trigonometric interpolation. An even-size Nyquist term is split or
    folded symmetrically so a real input stays real. The grid origin (index 0) is kept.

    Args:
        x: image(s)/volume(s); ``len(new_shape)`` trailing axes are spatial.
        new_shape: numpy shape of one output image/volume, e.g. ``(ny, nx)``.
    """
    new_shape = tuple(int(v) for v in new_shape)
    nd = len(new_shape)
    if nd not in (1, 2, 3) or min(new_shape) < 1:
        raise UsageError(f"new_shape: expected 1 to 3 positive sizes, got {new_shape}")
    b, lead = _images(x, nd)
    if b.shape[0] * int(np.prod(new_shape)) > MAX_ELEMENTS:
        raise UsageError(f"new_shape {new_shape}: output too large")
    F = _fft.fftn(b, nd)
    for ax, m in zip(range(1, nd + 1), new_shape):
        F = _resample_axis(F, ax, m)
    out = _fft.ifftn(F, nd).real * _F(np.prod(new_shape) / np.prod(b.shape[1:]))
    return np.ascontiguousarray(out, dtype=_F).reshape(lead + new_shape)


def rotate3d(vol, rotation, order: int = 1) -> np.ndarray:
    """Rotate a volume about its centre ``n//2`` with trilinear interpolation.

    The content turns by ``R``: ``out(p) = vol(Rᵀ (p - c) + c)`` with ``p`` the voxel
    position as ``(x, y, z)``. Voxels that come from outside the volume are 0.

    Args:
        vol: ``(nz, ny, nx)``.
        rotation: a 3x3 matrix acting on ``(x, y, z)``, or SPIDER Euler angles
            ``(phi, theta, psi)`` in degrees (``R = spider_to_matrix(phi, theta, psi)``).
        order: spline order of ``scipy.ndimage.map_coordinates`` (1 = trilinear).
    """
    v = np.asarray(vol, dtype=_F)
    if v.ndim != 3:
        raise UsageError(f"rotate3d: expected a volume (nz, ny, nx), got shape {v.shape}")
    R = np.asarray(rotation, dtype=np.float64)
    if R.shape == (3,):
        R = spider_to_matrix(*R)
    if R.shape != (3, 3):
        raise UsageError("rotation: give a 3x3 matrix or (phi, theta, psi) in degrees")
    c = np.array([s // 2 for s in v.shape[::-1]], dtype=np.float64)   # (cx, cy, cz)
    zz, yy, xx = np.meshgrid(*(np.arange(s, dtype=np.float64) for s in v.shape), indexing="ij")
    p = np.stack([xx - c[0], yy - c[1], zz - c[2]], axis=0).reshape(3, -1)
    q = R.T @ p + c[:, None]
    coords = q[::-1].reshape((3,) + v.shape)                           # (z, y, x)
    out = ndimage.map_coordinates(v, coords, order=order, mode="constant", cval=0.0)
    return out.astype(_F)


def mirror_x(x) -> np.ndarray:
    """Mirror about the vertical line through the centre column ``nx//2`` (x -> -x).

    For even ``nx`` column 0 maps to itself and ``j`` to ``nx - j``, as SPIDER's ``MR``
    and the mirrored branch of ``RT SQ`` do; for odd ``nx`` it is a plain flip. Works on
    any array whose last axis is x.
    """
    a = np.asarray(x, dtype=_F)
    nx = a.shape[-1]
    idx = (2 * (nx // 2) - np.arange(nx)) % nx
    return np.ascontiguousarray(a[..., idx])


# ---------------------------------------------------------------- PD, WI


def _corner(top_left, nd: int, name: str) -> tuple[int, ...]:
    """1-based SPIDER corner ``(x, y[, z])`` -> 0-based offsets in axis order."""
    t = tuple(int(v) for v in np.atleast_1d(top_left))
    if len(t) == 2 and nd == 3:
        t = t + (1,)
    if len(t) != nd:
        raise UsageError(f"{name}: expected {nd} coordinates (x, y{', z' if nd == 3 else ''})")
    return tuple(v - 1 for v in t[::-1])


def _out_shape(shape, x_ndim: int) -> tuple[int, ...]:
    shape = tuple(int(v) for v in shape)
    if len(shape) not in (2, 3) or min(shape) < 1 or len(shape) > x_ndim:
        raise UsageError(f"shape: expected 2 or 3 positive sizes, got {shape}")
    return shape


def _border_mean(b: np.ndarray) -> np.ndarray:
    """Mean of the outer two pixels of each image/volume, as SPIDER's ``PD B`` counts them.

    In a volume the end columns of the middle slices are summed over all rows, so the
    pixels where they meet the end rows count twice (SPIDER's ``patch.f`` does this).
    """
    if min(b.shape[1:]) < 4:
        raise UsageError("PD B: every side must have at least 4 pixels")
    d = b.astype(np.float64)
    if b.ndim == 3:
        _, ny, nx = b.shape
        rows = d[:, [0, 1, -2, -1], :].sum(axis=(1, 2))
        cols = d[:, 2:-2][:, :, [0, 1, -2, -1]].sum(axis=(1, 2))
        return (rows + cols) / (4 * nx + 4 * (ny - 4))
    _, nz, ny, nx = b.shape
    ends = d[:, [0, 1, -2, -1]].sum(axis=(1, 2, 3))
    mid = d[:, 2:-2]
    rows = mid[:, :, [0, 1, -2, -1], :].sum(axis=(1, 2, 3))
    cols = mid[:, :, :, [0, 1, -2, -1]].sum(axis=(1, 2, 3))
    return (ends + rows + cols) / (4 * nx * ny + 4 * nx * (nz - 4) + 4 * ny * (nz - 4))


def _pad_circular(b: np.ndarray, shape, off) -> np.ndarray:
    """SPIDER ``PD`` with a ``?C`` answer, reproduced from ``patch.f`` and its output.

    What that code does (checked against golden ``pd_c``): rows that run past the
    bottom edge continue at the top, in order; columns that run past the right edge are
    refilled from input column ``c + overflow`` (not the wrapped column); the background
    is never set (the golden file holds 1e-19 garbage), so emsh writes 0 there; a wrapped
    part that is exactly one row long is not written (also 0); input columns that do not
    exist for the refill are 0.
    """
    n, ny2, nx2 = b.shape
    ny1, nx1 = shape
    locy, locx = off[0] + 1, off[1] + 1
    row_src = np.full(ny1, -1, dtype=np.int64)
    ne1 = locy + ny2 - 1
    ne2 = max(0, ne1 - ny1)
    ne1 = min(ne1, ny1)
    if ne2 > 1:
        r = np.arange(1, ne2 + 1)
        row_src[r - 1] = r + ny1 - locy
    if ne1 != locy:
        r = np.arange(locy, ne1 + 1)
        row_src[r - 1] = r - locy
    col_src = np.full(nx1, -1, dtype=np.int64)
    ke1 = locx + nx2 - 1
    ke2 = max(0, ke1 - nx1)
    ke1 = min(ke1, nx1)
    c = np.arange(locx, ke1 + 1)
    col_src[c - 1] = c - locx
    if ke2:
        c = np.arange(1, ke2 + 1)
        col_src[c - 1] = np.where(c + ke2 <= nx2, c + ke2 - 1, -1)
    out = np.zeros((n, ny1, nx1), dtype=_F)
    rr, cc = np.nonzero(row_src >= 0)[0], np.nonzero(col_src >= 0)[0]
    out[:, rr[:, None], cc[None, :]] = b[:, row_src[rr][:, None], col_src[cc][None, :]]
    return out


def pad(x, shape, top_left=(1, 1), mode: str = "A", value: float | None = None):
    """Embed image(s)/volume(s) in a larger array (SPIDER ``PD``).

    Args:
        x: input; ``len(shape)`` trailing axes are spatial, leading axes a batch.
        shape: numpy shape of the output image/volume, ``(ny, nx)`` or ``(nz, ny, nx)``.
        top_left: SPIDER's 1-based ``(x, y[, z])`` of the input's first pixel in the
            output. Input pixels that fall beyond the far edges are dropped.
        mode: background ``'A'`` input average, ``'S'`` the given ``value``, ``'B'`` the
            average of the input's outer two pixels, ``'M'`` input minimum, or ``'AC'``
            SPIDER's circular pad (2D only; see ``_pad_circular`` for its exact rule).
        value: background for ``'S'``.

    Returns:
        ``(out, pad_value)``: float32 output of shape ``batch + shape`` and the background
        used (a float for one input, an array over the batch otherwise; 0 for ``'AC'``,
        whose SPIDER background is undefined).

    Raises:
        UsageError: for an unknown mode, a missing value, a corner outside the output,
            or an output larger than 16 GiB.
    """
    a = np.asarray(x)
    shape = _out_shape(shape, a.ndim)
    nd = len(shape)
    b, lead = _images(a, nd, "pad")
    off = _corner(top_left, nd, "top_left")
    if b.shape[0] * int(np.prod(shape)) > MAX_ELEMENTS:
        raise UsageError(f"pad: output shape {shape} is too large")
    if any(o < 0 or o >= s for o, s in zip(off, shape)):
        raise UsageError(f"top_left {tuple(top_left)}: must lie inside the output {shape[::-1]}")
    m = mode.upper()
    if m == "AC":
        if nd != 2 or any(i > o for i, o in zip(b.shape[1:], shape)):
            raise UsageError("PD AC: 2D only, and the output must be at least the input size")
        out = _pad_circular(b, shape, off)
        bg = np.zeros(b.shape[0])
    else:
        axes = tuple(range(1, nd + 1))
        if m == "A":
            bg = b.astype(np.float64).mean(axis=axes)
        elif m == "M":
            bg = b.min(axis=axes).astype(np.float64)
        elif m == "B":
            bg = _border_mean(b)
        elif m == "S":
            if value is None:
                raise UsageError("PD S: give the background value")
            bg = np.full(b.shape[0], float(value))
        else:
            raise UsageError(f"mode {mode!r}: expected A, S, B, M or AC")
        out = np.empty((b.shape[0],) + shape, dtype=_F)
        out[...] = bg.astype(_F).reshape((-1,) + (1,) * nd)
        src = tuple(slice(0, min(i, s - o)) for i, s, o in zip(b.shape[1:], shape, off))
        dst = tuple(slice(o, o + sl.stop) for o, sl in zip(off, src))
        out[(slice(None),) + dst] = b[(slice(None),) + src]
    bg = bg.astype(_F)
    return out.reshape(lead + shape), (float(bg[0]) if not lead else bg.reshape(lead))


def window(x, shape, top_left=(1, 1), background: float = 0.0) -> np.ndarray:
    """Cut a box out of image(s)/volume(s) (SPIDER ``WI``; ``WI B`` sets the background).

    Args:
        x: input; ``len(shape)`` trailing axes are spatial, leading axes a batch.
        shape: numpy shape of the window, ``(ny, nx)`` or ``(nz, ny, nx)``.
        top_left: SPIDER's 1-based ``(x, y[, z])`` of the window's first pixel in the
            input. It may be 0 or negative; parts of the window beyond the input's edges
            are filled with ``background``.
        background: value for window pixels outside the input (SPIDER ``WI``: 0).

    Raises:
        UsageError: when the corner lies beyond the input's far edge (SPIDER: "WINDOW
            OUTSIDE OF IMAGE") or the output would exceed 16 GiB.
    """
    a = np.asarray(x)
    shape = _out_shape(shape, a.ndim)
    nd = len(shape)
    b, lead = _images(a, nd, "window")
    off = _corner(top_left, nd, "top_left")
    if b.shape[0] * int(np.prod(shape)) > MAX_ELEMENTS:
        raise UsageError(f"window: output shape {shape} is too large")
    if any(o >= s for o, s in zip(off, b.shape[1:])):
        raise UsageError(f"top_left {tuple(top_left)}: window outside of the image "
                         f"{b.shape[1:][::-1]}")
    out = np.full((b.shape[0],) + shape, background, dtype=_F)
    src, dst = [], []
    for o, s_in, s_out in zip(off, b.shape[1:], shape):
        lo, hi = max(o, 0), min(o + s_out, s_in)
        if hi <= lo:
            return out.reshape(lead + shape)
        src.append(slice(lo, hi))
        dst.append(slice(lo - o, hi - o))
    out[(slice(None),) + tuple(dst)] = b[(slice(None),) + tuple(src)]
    return out.reshape(lead + shape)
