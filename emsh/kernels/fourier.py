"""SPIDER Fourier-file conventions, half-spectrum frequency grids, power spectra.

SPIDER's forward ``FT`` of a real image is the complex conjugate of numpy's
``rfftn`` (forward sign ``exp(+2 pi i k x / N)``), unnormalised; its inverse
divides by N, so ``spider_ift(spider_ft(x), x.shape) == x``. A SPIDER Fourier
file stores exactly this half spectrum (``emsh.io.read`` returns it as stored),
last axis ``nx//2 + 1``, origin at index 0 on every axis.

Frequencies of a half spectrum are in cycles/pixel. On the full axes (y, z) the
index ``i`` is frequency ``i/n`` for ``i <= n//2`` and ``(i - n)/n`` above, as in
SPIDER (``IY > NY/2 -> IY - NY``) and RELION, so for even ``n`` the Nyquist row
is ``+0.5``. Angles are ``atan2(ky, kx)`` with ky along axis 0 (rows) and kx along
the last axis, in radians.

Arrays are float32 / complex64, axis order ``(z, y, x)``; functions taking
``ndim`` transform the last ``ndim`` axes and treat leading axes as a batch
(``ndim=None``: the whole array is one image or volume).
"""

from __future__ import annotations

import numpy as np

from emsh import fft as _fft
from emsh.errors import UsageError

__all__ = [
    "spider_ft", "spider_ift", "half_shape", "axis_freq", "freq_grid_half", "freq_radius_half",
    "freq_angle_half", "spatial", "rotational_power_spectrum", "radial_average",
    "periodogram",
]

#: Largest number of elements a grid or batch may hold (float32: 8 GiB).
MAX_ELEMENTS = 2**31


def check_size(shape, what: str = "array") -> tuple[int, ...]:
    """Shape as ints; refuses non-positive sizes and more than :data:`MAX_ELEMENTS`."""
    shape = tuple(int(s) for s in shape)
    if not shape or min(shape) < 1:
        raise UsageError(f"{what}: shape {shape} must have positive sizes")
    if int(np.prod(shape, dtype=np.float64)) > MAX_ELEMENTS:
        raise UsageError(f"{what}: shape {shape} exceeds {MAX_ELEMENTS} elements")
    return shape


def spatial(x, ndim: int | None, dtype=np.float32) -> tuple[np.ndarray, tuple[int, ...], int]:
    """Reshape ``x`` to ``(batch, *spatial)``; returns the array, leading shape and ndim."""
    a = np.ascontiguousarray(np.asarray(x, dtype=dtype))
    nd = (a.ndim if a.ndim <= 3 else 0) if ndim is None else int(ndim)
    if nd not in (1, 2, 3) or a.ndim < nd:
        raise UsageError(f"expected 1 to 3 transformed axes; got shape {a.shape} with "
                         f"ndim={ndim} (give ndim for a stack)")
    lead = a.shape[: a.ndim - nd]
    check_size(a.shape)
    return a.reshape((-1,) + a.shape[a.ndim - nd:]), lead, nd


def half_shape(shape) -> tuple[int, ...]:
    """Half-spectrum shape of a real shape: last axis ``nx//2 + 1``."""
    shape = check_size(shape, "half_shape")
    return shape[:-1] + (shape[-1] // 2 + 1,)


def spider_ft(x, ndim: int | None = None) -> np.ndarray:
    """SPIDER forward ``FT``: ``conj(rfftn(x))``, unnormalised, complex64 half spectra.

    Args:
        x: real image(s) or volume(s); leading axes beyond ``ndim`` are a batch.
        ndim: transformed trailing axes (default: all of ``x``, at most 3).
    """
    a, lead, nd = spatial(x, ndim)
    F = np.conj(_fft.rfftn(a, nd))
    return F.reshape(lead + F.shape[1:])


def spider_ift(F, shape) -> np.ndarray:
    """Inverse of :func:`spider_ft` (divides by N): SPIDER half spectra to real float32.

    Args:
        F: complex half spectra in SPIDER's convention, batch axes first.
        shape: real shape of the transformed axes (``(ny, nx)`` or ``(nz, ny, nx)``);
            needed because an odd and an even ``nx`` give the same half length.
    """
    shape = check_size(shape, "spider_ift")
    nd = len(shape)
    A = np.asarray(F)
    if not np.iscomplexobj(A):
        raise UsageError(f"spider_ift: expected complex half spectra, got {A.dtype}")
    if A.ndim < nd or A.shape[A.ndim - nd:] != half_shape(shape):
        raise UsageError(f"spider_ift: spectra of shape {A.shape} do not fit real shape {shape}"
                         f" (expected trailing {half_shape(shape)})")
    lead = A.shape[: A.ndim - nd]
    A = np.conj(A.astype(np.complex64, copy=False)).reshape((-1,) + A.shape[A.ndim - nd:])
    out = _fft.irfftn(A, (A.shape[0],) + shape, nd)
    return out.reshape(lead + shape)


def axis_freq(n: int) -> np.ndarray:
    """Frequencies (cycles/pixel) of a full FFT axis: ``i/n`` for ``i <= n//2``, else ``(i-n)/n``."""
    i = np.arange(n, dtype=np.float64)
    return np.where(i > n // 2, i - n, i) / n


def freq_grid_half(shape) -> tuple[np.ndarray, ...]:
    """Per-axis frequencies (cycles/pixel) of a half spectrum, as an open grid.

    Args:
        shape: real shape ``(nx,)``, ``(ny, nx)`` or ``(nz, ny, nx)``.

    Returns:
        One float64 array per axis in ``(z, y, x)`` order, each shaped to broadcast
        against :func:`half_shape` (e.g. ``ky`` is ``(ny, 1)``, ``kx`` is ``(1, nx//2+1)``).
        Index ``i <= n//2`` is ``i/n``, higher indices are ``(i - n)/n``.
    """
    shape = check_size(shape, "freq_grid_half")
    nd = len(shape)
    out = []
    for ax, n in enumerate(shape):
        f = (np.arange(n // 2 + 1, dtype=np.float64) / n) if ax == nd - 1 else axis_freq(n)
        out.append(f.reshape([f.size if i == ax else 1 for i in range(nd)]))
    return tuple(out)


def freq_radius_half(shape) -> np.ndarray:
    """Radial frequency ``|k|`` (cycles/pixel, float64) of every half-spectrum element."""
    r2 = sum(g * g for g in freq_grid_half(shape))
    return np.sqrt(np.broadcast_to(r2, half_shape(shape)))


def freq_angle_half(shape) -> np.ndarray:
    """Angle ``atan2(ky, kx)`` (radians, float64) of every element of a 2D half spectrum."""
    shape = check_size(shape, "freq_angle_half")
    if len(shape) != 2:
        raise UsageError(f"freq_angle_half: expected a 2D shape (ny, nx), got {shape}")
    ky, kx = freq_grid_half(shape)
    return np.arctan2(np.broadcast_to(ky, half_shape(shape)), kx)


def _half_weights(nx: int) -> np.ndarray:
    """How many full-spectrum elements each half-spectrum column stands for (1 or 2)."""
    w = np.full(nx // 2 + 1, 2.0)
    w[0] = 1.0
    if nx % 2 == 0:
        w[-1] = 1.0
    return w


def rotational_power_spectrum(imgs, ndim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rotationally averaged power spectrum ``mean |F|^2 / N`` per shell.

    Shell ``j`` holds the elements with ``round(|k| * n) == j``, ``n`` the smallest
    transformed size, for ``j = 0 .. n//2``; white noise of variance s2 gives s2.

    Args:
        imgs: real image(s)/volume(s), batch axes first.
        ndim: transformed axes (default: all, at most 3).

    Returns:
        ``(freq, power)``: shell frequencies ``j/n`` in cycles/pixel (float64) and the
        float64 profiles, shape ``lead + (n//2 + 1,)``.
    """
    a, lead, nd = spatial(imgs, ndim)
    shape = a.shape[1:]
    n = min(shape)
    P = np.abs(_fft.rfftn(a, nd)).astype(np.float64) ** 2 / float(np.prod(shape))
    shell = np.rint(freq_radius_half(shape) * n).astype(np.int64)
    w = np.broadcast_to(_half_weights(shape[-1]), shell.shape)
    keep = shell <= n // 2
    idx, wk = shell[keep], w[keep]
    m = n // 2 + 1
    count = np.bincount(idx, weights=wk, minlength=m)
    flat = (idx[None, :] + m * np.arange(P.shape[0])[:, None]).ravel()   # one bincount for all
    prof = np.bincount(flat, weights=(P[:, keep] * wk).ravel(), minlength=m * P.shape[0])
    prof = prof.reshape(P.shape[0], m) / np.maximum(count, 1e-300)
    return np.arange(n // 2 + 1) / n, prof.reshape(lead + (n // 2 + 1,))


def radial_average(a, ndim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Average of a centred array (origin at index ``n//2``) over rings of width 1 pixel.

    Args:
        a: centred image(s)/volume(s), e.g. a displayed power spectrum.
        ndim: spatial axes (default all, at most 3).

    Returns:
        ``(radius, mean)``: integer radii ``0 .. min(n)//2`` and float64 means, shape
        ``lead + (min(n)//2 + 1,)``.
    """
    b, lead, nd = spatial(a, ndim, np.float64)
    shape = b.shape[1:]
    r2 = sum(((np.arange(s) - s // 2) ** 2).reshape([s if i == ax else 1 for i in range(nd)])
             for ax, s in enumerate(shape))
    ring = np.rint(np.sqrt(r2)).astype(np.int64).ravel()
    m = min(shape) // 2 + 1
    keep = ring < m
    count = np.bincount(ring[keep], minlength=m)
    flat = (ring[keep][None, :] + m * np.arange(b.shape[0])[:, None]).ravel()
    out = np.bincount(flat, weights=b.reshape(b.shape[0], -1)[:, keep].ravel(),
                      minlength=m * b.shape[0]).reshape(b.shape[0], m)
    return np.arange(m), (out / np.maximum(count, 1)).reshape(lead + (m,))


def periodogram(micrograph, box: int, overlap: float = 0.5) -> np.ndarray:
    """Averaged power spectrum of overlapping square tiles (Welch periodogram).

    Each ``box`` x ``box`` tile has its mean removed; ``|FFT|^2 / box^2`` is averaged
    over tiles and returned centred (origin at ``box//2``), float32.

    Args:
        micrograph: 2D real image (or a stack of them, averaged together).
        box: tile size in pixels (>= 16 and not larger than the micrograph).
        overlap: fraction of a tile shared by neighbours, in [0, 0.9].
    """
    m = np.asarray(micrograph, dtype=np.float32)
    m = m.reshape((-1,) + m.shape[-2:]) if m.ndim >= 2 else m
    box = int(box)
    if m.ndim != 3 or box < 16 or box > min(m.shape[-2:]) or not 0 <= overlap <= 0.9:
        raise UsageError(f"periodogram: need a 2D micrograph at least {box} px on a side, "
                         f"16 <= box and 0 <= overlap <= 0.9 (got {m.shape}, {overlap})")
    step = max(1, int(round(box * (1.0 - overlap))))
    ny, nx = m.shape[-2:]
    ys = np.arange(0, ny - box + 1, step)
    xs = np.arange(0, nx - box + 1, step)
    acc = np.zeros((box, box // 2 + 1), dtype=np.float64)
    count = 0
    for y in ys:                                  # one batched FFT per row of tiles
        tiles = np.stack([m[:, y:y + box, x:x + box] for x in xs], axis=1).reshape(-1, box, box)
        tiles = tiles - tiles.mean(axis=(1, 2), keepdims=True)
        acc += (np.abs(_fft.rfftn(tiles, 2)).astype(np.float64) ** 2).sum(axis=0)
        count += tiles.shape[0]
    half = acc / (count * box * box)
    full = np.empty((box, box), dtype=np.float64)
    full[:, : box // 2 + 1] = half
    cols = np.arange(box // 2 + 1, box)           # Hermitian partners: P(-k) = P(k)
    rows = (-np.arange(box)) % box
    full[:, cols] = half[rows][:, box - cols]
    return np.fft.fftshift(full).astype(np.float32)
