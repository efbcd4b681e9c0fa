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
``pad`` and ``window`` live in :mod:`emsh.kernels.padding` and are re-exported here.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage

from emsh import config
from emsh import fft as _fft
from emsh.errors import UsageError
from emsh.geom.euler import spider_to_matrix
# pad, window and MAX_ELEMENTS are re-exported; _images is shared with padding
from emsh.kernels.padding import MAX_ELEMENTS, _images, pad, window

__all__ = [
    "rotate_shift_quadratic", "shift_integer", "shift_bilinear", "shift_trilinear",
    "shift_linear", "shift_fourier", "pad", "window", "resample_fourier", "rotate3d",
    "mirror_x",
]

_F = np.float32


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
    i = np.trunc(X).astype(np.int32)
    j = np.trunc(Y).astype(np.int32)
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
    idx = np.int64 if n * (size + 2 * pad) >= 2**31 else np.int32
    base = (np.arange(n, dtype=idx) * (size + 2 * pad) + pad - nx - 1)[:, None, None]
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
    def chunk(s, e):
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

    # small chunks stay in cache; numpy releases the GIL, so threads share the chunks
    step = max(1, (1 << 16) // (nx * ny))
    _over_threads(chunk, n, step)
    return out.reshape(lead + (ny, nx))


def _over_threads(fn, n: int, step: int) -> None:
    """Call ``fn(start, stop)`` on chunks of ``step`` items, over emsh's worker threads."""
    bounds = [(s, min(n, s + step)) for s in range(0, n, step)]
    workers = min(config.fft_threads(), len(bounds))
    if workers <= 1:
        for s, e in bounds:
            fn(s, e)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for f in [pool.submit(fn, s, e) for s, e in bounds]:
            f.result()


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

