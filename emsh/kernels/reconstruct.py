"""Direct Fourier reconstruction with gridding (SPIDER's ``BP 3F`` / ``BP 32F``).

The algorithm is SPIDER's (``bp3f.f``, ``bp32f.f``, ``oneline.f``): each image is
freed of the mean outside its inscribed circle, zero-padded to ``pad * n`` (2 in
SPIDER), Fourier transformed and inserted on its central plane with a 5x5x5
tabulated generalised Kaiser-Bessel window; data and window weights are summed
separately. :meth:`FourierReconstructor.finish` divides the data by the weights
(where the weight exceeds 0.1), transforms back, divides by the window's
real-space profile, subtracts the mean of the outermost shell and zeroes outside
the sphere of radius ``n//2``. With ``pad=2`` and no CTF the result equals
SPIDER's ``BP 3F``/``BP 32F`` to float32 rounding.

Extensions over SPIDER: per-image shifts, weights and CTFs (the data term gets
``CTF * F``, the weight term ``CTF**2``, so a Wiener-regularised division is
available via ``finish(wiener_snr=...)``), and arbitrary padding.

Partial sums: the accumulators ``data`` (complex64) and ``weights`` (float32)
are plain arrays of shape ``(np, np, np//2 + 1)``; reconstructors built on
disjoint particle subsets can be added (:meth:`FourierReconstructor.add`, or an
MPI ``Allreduce`` of both arrays) before :meth:`~FourierReconstructor.finish`.

Geometry as in :mod:`emsh.kernels.project`: an image taken at ``R =
spider_to_matrix(phi, theta, psi)`` holds, at 2D frequency ``(kx, ky)``, the
volume's transform at ``kx * R[0] + ky * R[1]``. Angle arrays ``(k, 3)`` are in
doc-file order (psi, theta, phi), degrees; ``(k, 3, 3)`` matrices are accepted too.
"""

from __future__ import annotations

import numpy as np

from emsh import fft as _fft
from emsh.errors import UsageError
from emsh.kernels import gridding
from emsh.kernels.project import rotation_matrices

__all__ = ["FourierReconstructor", "bp32f", "reconstruct"]

_MAX_VOXELS = 2**31
_ENTRIES_PER_PASS = 12_000_000  # stencil entries per vectorised pass (~100 MB scratch)
_WEIGHT_FLOOR = 0.1             # SPIDER's NRMW2 threshold


def _as_stack(images) -> np.ndarray:
    img = np.asarray(images, dtype=np.float32)
    if img.ndim == 2:
        img = img[None]
    if img.ndim != 3 or img.shape[1] != img.shape[2]:
        raise UsageError(f"images must be a square stack (k, n, n), got shape {img.shape}")
    return img


class FourierReconstructor:
    """Accumulates images in Fourier space and inverts them to a volume.

    Args:
        n: box size of the images and of the volume (pixels).
        pad: padding factor of the Fourier grid (SPIDER uses 2).
        symmetry: optional point group: an :class:`emsh.geom.symmetry.Symmetry` or
            ``(m, 3, 3)`` rotation matrices ``g`` (e.g. from a symmetry doc); each image
            is inserted at ``R @ g`` for every ``g``. SPIDER additionally symmetrises
            the final volume in real space; inserting every mate makes that
            unnecessary here.

    Attributes:
        data: complex64 ``(np, np, np//2+1)`` sum of window * CTF * image transforms.
        weights: float32 same shape, sum of window * CTF**2.
    """

    def __init__(self, n: int, pad: float = 2, symmetry=None):
        n = int(n)
        if n < 4:
            raise UsageError(f"box size must be at least 4 pixels, got {n}")
        self.n = n
        self.pad = float(pad)
        if not (1.5 <= self.pad <= 8):
            raise UsageError(f"pad must be between 1.5 and 8, got {pad}")
        self.np_ = gridding.padded_size(n, pad)
        size = self.np_ * self.np_ * (self.np_ // 2 + 1)
        if size > _MAX_VOXELS:
            raise UsageError(f"padded grid {self.np_}^3 is too large")
        self.data = np.zeros((self.np_, self.np_, self.np_ // 2 + 1), dtype=np.complex64)
        self.weights = np.zeros(self.data.shape, dtype=np.float32)
        self._tab, self._fltb, _ = gridding.spider_kb_table(self.np_)
        last = int(np.nonzero(self._tab)[0].max())                # last non-zero entry
        self._reach = np.float32((last + 0.5) / float(self._fltb))  # grid units: 1.8 (< 2)
        if symmetry is None:
            self.symmetry = None
        else:
            trans = getattr(symmetry, "translations", None)
            if trans is not None and np.any(np.asarray(trans) != 0):
                raise UsageError("helical symmetry (operators with shifts) is not supported "
                                 "by Fourier insertion; symmetrise the volume instead")
            ops = getattr(symmetry, "operators", symmetry)
            s = np.asarray(ops, dtype=np.float64).reshape(-1, 3, 3)
            self.symmetry = None if s.shape[0] == 0 else s
        self._plane = self._half_plane()
        self._plane_f32 = (self._plane[0].astype(np.float32), self._plane[1].astype(np.float32))
        t = np.arange(4)                                          # scratch rows of the 4^3 taps
        self._tap_offsets = ((t[:, None, None] * self.np_ + t[None, :, None]) * (self.np_ // 2 + 2)
                             + t[None, None, :]).reshape(-1).astype(np.int32)
        self._window = None                                       # spider_window, on first finish

    # ------------------------------------------------------------------ accumulators
    def accumulators(self) -> tuple[np.ndarray, np.ndarray]:
        """The two arrays to sum over particle subsets (e.g. MPI Allreduce), in place."""
        return self.data, self.weights

    def add(self, other: "FourierReconstructor") -> "FourierReconstructor":
        """Add another reconstructor's sums (same ``n`` and padding) into this one."""
        if other.data.shape != self.data.shape:
            raise UsageError(f"cannot add reconstructors of grids {other.data.shape} "
                             f"and {self.data.shape}")
        self.data += other.data
        self.weights += other.weights
        return self

    def copy(self) -> "FourierReconstructor":
        """An independent copy of this reconstructor and its sums."""
        new = FourierReconstructor.__new__(FourierReconstructor)
        new.__dict__.update(self.__dict__)
        new.data = self.data.copy()
        new.weights = self.weights.copy()
        return new

    # ------------------------------------------------------------------ insertion
    def _half_plane(self) -> tuple[np.ndarray, np.ndarray]:
        """Points (I, J) that SPIDER inserts: I in 0..h, J in -h+1..h, I^2+J^2 < h^2."""
        h = self.np_ // 2
        i = np.arange(0, h + 1)
        j = np.arange(-h + 1, h + 1)
        jj, ii = np.meshgrid(j, i, indexing="ij")
        keep = (ii * ii + jj * jj < h * h) & ~((ii == 0) & (jj < 0))
        return ii[keep], jj[keep]

    def _image_spectra(self, img: np.ndarray, shifts, ctf,
                       batch: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
        """Padded, origin-centred rfft of each image at the inserted points (numpy sign)."""
        k, n, _ = img.shape
        np_ = self.np_
        c = n // 2
        r = np.float32(n // 2)
        t = (np.arange(n, dtype=np.float32) - c) ** 2
        outside = (t[:, None] + t[None, :]) > r * r
        mean = img[:, outside].astype(np.float64).mean(axis=1) if outside.any() else np.zeros(k)
        # a fixed batch size keeps one FFT plan for every pass
        big = np.zeros((max(k, batch), np_, np_), dtype=np.float32)
        o = np_ // 2 - c
        big[:k, o:o + n, o:o + n] = img - mean[:, None, None].astype(np.float32)
        spec = _fft.rfftn(np.fft.ifftshift(big, axes=(-2, -1)), ndim=2)[:k]
        ii, jj = self._plane
        rows = jj % np_
        vals = spec[:, rows, ii]                                  # (k, m)
        if shifts is not None:
            sh = np.asarray(shifts, dtype=np.float64).reshape(-1, 2)
            if sh.shape[0] != k:
                raise UsageError(f"{sh.shape[0]} shifts for {k} images")
            ph = np.exp(-2j * np.pi * (ii[None] * sh[:, 0, None] + jj[None] * sh[:, 1, None]) / np_)
            vals = (vals * ph).astype(np.complex64)
        ctf_vals = None
        if ctf is not None:
            ctf_vals = self._ctf_at_points(np.asarray(ctf, dtype=np.float32), k)
            vals = (vals * ctf_vals).astype(np.complex64)
        return vals, ctf_vals

    def _ctf_at_points(self, ctf: np.ndarray, k: int) -> np.ndarray:
        """CTF values at the inserted points from rfft-layout arrays of the padded or image grid."""
        if ctf.ndim == 2:
            ctf = np.broadcast_to(ctf, (k,) + ctf.shape)
        np_, n = self.np_, self.n
        ii, jj = self._plane
        if ctf.shape == (k, np_, np_ // 2 + 1):
            return ctf[:, jj % np_, ii]
        if ctf.shape == (k, n, n // 2 + 1):
            fx = ii * (n / np_)
            fy = jj * (n / np_)
            x0 = np.floor(fx).astype(np.int64)
            y0 = np.floor(fy).astype(np.int64)
            dx, dy = (fx - x0).astype(np.float32), (fy - y0).astype(np.float32)
            x1 = np.minimum(x0 + 1, n // 2)
            x0 = np.minimum(x0, n // 2)
            g = lambda y, x: ctf[:, y % n, x]                    # noqa: E731
            return ((1 - dy) * ((1 - dx) * g(y0, x0) + dx * g(y0, x1))
                    + dy * ((1 - dx) * g(y0 + 1, x0) + dx * g(y0 + 1, x1)))
        raise UsageError(f"CTF arrays must have shape ({k}, {n}, {n // 2 + 1}) or "
                         f"({k}, {np_}, {np_ // 2 + 1}) in rfft layout, got {ctf.shape}")

    def insert(self, images, angles, shifts=None, ctf=None, weights=None) -> None:
        """Insert a batch of images.

        Args:
            images: float32 ``(k, n, n)`` (or one ``(n, n)``), centre at ``n//2``.
            angles: ``(k, 3)`` SPIDER (psi, theta, phi) in degrees (doc-file order) or
                ``(k, 3, 3)`` matrices.
            shifts: optional ``(k, 2)`` ``(sx, sy)`` in pixels applied to each image
                before insertion (positive moves content to higher x / y, as ``SH``).
            ctf: optional CTF per image in rfft layout, ``(k, n, n//2+1)`` on the
                image grid (interpolated) or ``(k, np, np//2+1)`` on the padded grid;
                one 2D array is used for all images. Data get ``CTF * F``, weights
                ``CTF**2``; phase-flipped images with ``|CTF|`` also work.
            weights: optional ``(k,)`` non-negative per-image weights.
        """
        img = _as_stack(images)
        if img.shape[1] != self.n:
            raise UsageError(f"images are {img.shape[1]} pixels but the reconstructor is {self.n}")
        rot = rotation_matrices(angles)
        k = img.shape[0]
        if rot.shape[0] != k:
            raise UsageError(f"{k} images but {rot.shape[0]} orientations")
        w_img = None
        if weights is not None:
            w_img = np.asarray(weights, dtype=np.float32).reshape(-1)
            if w_img.shape[0] != k or np.any(w_img < 0) or not np.all(np.isfinite(w_img)):
                raise UsageError(f"weights must be {k} finite non-negative numbers")
        if shifts is not None:
            shifts = np.asarray(shifts, dtype=np.float64)
            if shifts.size != 2 * k:
                raise UsageError(f"shifts must be ({k}, 2), got shape {shifts.shape}")
        if ctf is not None and np.ndim(ctf) == 3 and np.shape(ctf)[0] != k:
            raise UsageError(f"{np.shape(ctf)[0]} CTF arrays for {k} images")
        nsym = 1 if self.symmetry is None else self.symmetry.shape[0]
        per = max(1, self._entries_per_pass() // (64 * self._plane[0].size * nsym))
        cap = min(per, k) * nsym * self._plane[0].size           # most points in one pass
        work = (np.empty((cap, 64), np.float32), np.empty((cap, 64), np.int32))
        scratch = None                                            # the passes' sums, folded once
        for s in range(0, k, per):
            vals, ctf_vals = self._image_spectra(
                img[s:s + per],
                None if shifts is None else np.asarray(shifts).reshape(-1, 2)[s:s + per],
                ctf if ctf is None or np.ndim(ctf) == 2 else np.asarray(ctf)[s:s + per],
                batch=min(per, k))
            wfac = ctf_vals ** 2 if ctf_vals is not None else None
            if w_img is not None:
                vals = vals * w_img[s:s + per, None]
                wfac = (w_img[s:s + per, None] if wfac is None else wfac * w_img[s:s + per, None])
            r = rot[s:s + per]
            if self.symmetry is not None:                         # every mate in one pass
                r = (r[:, None] @ self.symmetry[None]).reshape(-1, 3, 3)
                vals = np.repeat(vals, nsym, axis=0)
                wfac = None if wfac is None else np.repeat(wfac, nsym, axis=0)
            part = self._grid(vals, r, wfac, work)
            if scratch is None:
                scratch = part
            elif part is not None:
                scratch += part
        if scratch is not None:
            self._fold(scratch.reshape(self.np_, self.np_, self.np_ // 2 + 2, 3))

    def _entries_per_pass(self) -> int:
        """Stencil entries per pass: bounded memory, and enough to repay the pass's O(grid) sum."""
        return min(max(_ENTRIES_PER_PASS, 2 * self.np_ * self.np_ * (self.np_ // 2 + 2)),
                   4 * _ENTRIES_PER_PASS)

    def _grid(self, vals: np.ndarray, rot: np.ndarray, wfac: np.ndarray | None,
              work: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray | None:
        """SPIDER's ONELINE for a batch: spread each point over its window.

        Every point is moved to ``x >= 0`` (``p -> -p`` with the conjugate value) and
        rounded as SPIDER does; points whose window would leave the grid are
        skipped. SPIDER visits the 5 points round(p)-2 .. round(p)+2 per axis, but
        its window vanishes beyond 1.8 grid units, so the 4 points from
        ``ceil(p - reach)`` on carry every non-zero weight; weights are SPIDER's
        tabulated ones, multiplied in float32 in its order (``TX * (TY * TZ)``).
        The taps are summed with one sparse product into a scratch grid centred in
        z and y with one extra column for ``x = -1`` (so a point's 64 rows are its
        first row plus fixed offsets); the caller adds it to the accumulators with
        :meth:`_fold`. ``work``: weight and row buffers for at least as many points,
        reused across passes (fresh large arrays cost a page fault per 4 KiB).

        Returns:
            float32 ``(np * np * (np//2 + 2), 3)`` sums (real, imag, weight), or
            ``None`` when no point lies inside the grid.
        """
        np_ = self.np_
        h = np_ // 2
        nx = h + 2                                                # columns x = -1 .. h
        f32 = np.float32
        dm = rot.astype(f32)                                      # (k, 3, 3): rows R[0], R[1]
        fi, fj = self._plane_f32
        pos = fi[None, :, None] * dm[:, None, 0, :] + fj[None, :, None] * dm[:, None, 1, :]
        flip = pos[..., 0] < 0                                    # (k, m); pos is (X, Y, Z)
        np.negative(pos, out=pos, where=flip[..., None])
        base = (np.trunc((pos + f32(0.5)) + f32(np_)).astype(np.int32) - np_)
        ok = ((base[..., 0] <= h - 3) & (base[..., 1] >= -h + 4) & (base[..., 1] <= h - 3)
              & (base[..., 2] >= -h + 4) & (base[..., 2] <= h - 3))
        sel = np.flatnonzero(ok)
        if sel.size == 0:
            return None
        pos = np.ascontiguousarray(pos.reshape(-1, 3)[sel].T)    # (3, p): X, Y, Z rows
        cols = np.empty((sel.size, 3), dtype=f32)                # real, imag, weight factor
        v = vals.reshape(-1)[sel]
        cols[:, 0] = v.real
        cols[:, 1] = np.where(flip.reshape(-1)[sel], -v.imag, v.imag)
        cols[:, 2] = 1 if wfac is None else np.broadcast_to(wfac, ok.shape).reshape(-1)[sel]
        first = np.ceil(pos - self._reach).astype(np.int32)      # (3, p)
        taps = (first[:, None, :] + np.arange(4, dtype=np.int32)[None, :, None]).astype(f32)
        dist = np.abs(pos[:, None, :] - taps)                    # (3, 4, p)
        dist *= self._fltb
        dist += f32(0.5)
        ti = np.floor(dist, out=dist).astype(np.int32)
        tw = self._tab[np.minimum(ti, self._tab.size - 1, out=ti)]   # (3, 4, p)
        p = sel.size
        wbuf, rbuf = work if work is not None else (np.empty((p, 64), f32),
                                                    np.empty((p, 64), np.int32))
        twt = np.ascontiguousarray(tw.transpose(2, 0, 1))            # (p, 3, 4)
        wzy = np.einsum("pz,py->pzy", twt[:, 2], twt[:, 1]).reshape(p, 16)
        wg = wbuf[:p]
        np.einsum("pt,px->ptx", wzy, twt[:, 0], out=wg.reshape(p, 16, 4))   # (p, z*y*x)
        row0 = ((first[2] + h) * np_ + (first[1] + h)) * nx + (first[0] + 1)
        rows = rbuf[:p]
        np.add(row0[:, None], self._tap_offsets, out=rows)
        return gridding.scatter_rows(np_ * np_ * nx, rows, wg, cols)

    def _fold(self, acc: np.ndarray) -> None:
        """Add a scratch sum ``(np, np, h + 2, 3)`` (real, imag, weight) to the accumulators.

        Scratch index ``(z + h, y + h, x + 1)`` holds frequency ``(z, y, x)``; the
        ``x = -1`` column belongs, conjugated, to ``(-z, -y, 1)``.
        """
        np_ = self.np_
        h = np_ // 2
        d, w = self.data, self.weights
        for dz, az in ((slice(0, h), slice(h, np_)), (slice(h, np_), slice(0, h))):
            for dy, ay in ((slice(0, h), slice(h, np_)), (slice(h, np_), slice(0, h))):
                blk = acc[az, ay, 1:]
                d[dz, dy] += blk[..., :2].view(np.complex64)[..., 0]   # (real, imag) pairs
                w[dz, dy] += blk[..., 2]
        m = (h - np.arange(np_)) % np_                            # scratch row of -z
        part = acc[:, :, 0][m][:, m]
        d1 = d[:, :, 1]
        d1.real += part[..., 0]
        d1.imag -= part[..., 1]
        w[:, :, 1] += part[..., 2]

    # ------------------------------------------------------------------ inversion
    def _symmetrise_plane0(self, x: np.ndarray, w: np.ndarray) -> None:
        """SPIDER's SYMPLANE0: merge Hermitian partners on the kx = 0 plane, in place."""
        np_ = self.np_
        h = np_ // 2
        f = np.r_[np.arange(0, h), np.arange(np_ - h + 1, np_)]     # |k| <= h-1 indices
        zz, yy = np.meshgrid(f, f, indexing="ij")
        sel = ~((zz == 0) & (yy == 0))
        zz, yy = zz[sel], yy[sel]
        mz, my = (-zz) % np_, (-yy) % np_
        px, pw = x[:, :, 0], w[:, :, 0]
        nx_ = px[zz, yy] + np.conj(px[mz, my])
        nw_ = pw[zz, yy] + pw[mz, my]
        px[zz, yy] = nx_
        pw[zz, yy] = nw_

    def finish(self, wiener_snr: float | None = None, sphere: bool = True) -> np.ndarray:
        """The reconstructed volume ``(n, n, n)`` float32, centre at ``n//2``.

        Args:
            wiener_snr: ``None`` divides by the weights where they exceed 0.1 and
                zeroes the rest (SPIDER); a number divides by ``weights + 1/snr``
                everywhere (Wiener filter for CTF-weighted sums).
            sphere: apply SPIDER's final window step: subtract the mean of the
                outermost shell of radius ``n//2`` and zero outside that sphere.
                With ``False`` only the window correction is applied.

        The accumulators are not modified, so more images may be inserted later.
        """
        x = self.data.copy()
        w = self.weights.copy()
        self._symmetrise_plane0(x, w)
        if wiener_snr is None:
            good = w > _WEIGHT_FLOOR
            np.divide(x, w, out=x, where=good)
            x[~good] = 0
        else:
            snr = float(wiener_snr)
            if not snr > 0:
                raise UsageError(f"wiener_snr must be positive, got {wiener_snr}")
            w += np.float32(1.0 / snr)
            x /= w
        np_, n = self.np_, self.n
        big = _fft.irfftn(x, (np_, np_, np_))
        # the centred n^3 box of fftshift(big), read straight from the unshifted array
        idx = (np.arange(n) - n // 2) % np_
        vol = big[np.ix_(idx, idx, idx)]
        if self._window is None:
            self._window = gridding.spider_window(n, np_)
        wkb, lr = self._window
        r2 = (n // 2) ** 2
        inside = lr <= r2
        vol = np.where(inside, vol / wkb, vol).astype(np.float32)
        if sphere:
            rim = (lr >= (n // 2 - 1) ** 2) & inside
            tnr = np.float32(vol[rim].astype(np.float64).mean())
            vol = np.where(inside, vol - tnr, np.float32(0)).astype(np.float32)
        return vol


def bp32f(images, angles, rng: np.random.Generator | None = None, pad: float = 2,
          symmetry=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SPIDER ``BP 32F``: the full reconstruction and two from a random half split.

    The first half gets ``k//2`` images chosen at random (SPIDER's random list);
    the full volume is the sum of both halves' accumulators, so it equals
    ``BP 3F`` of all images.

    Args:
        images: ``(k, n, n)`` stack.
        angles: ``(k, 3)`` SPIDER (psi, theta, phi) or ``(k, 3, 3)`` matrices.
        rng: source of the split (a fixed-seed generator when ``None``).
        pad: Fourier padding (SPIDER: 2).
        symmetry: as :class:`FourierReconstructor`.

    Returns:
        ``(full, half1, half2)`` float32 volumes.
    """
    img = _as_stack(images)
    rot = rotation_matrices(angles)
    k = img.shape[0]
    if rot.shape[0] != k:
        raise UsageError(f"{k} images but {rot.shape[0]} orientations")
    if k < 2:
        raise UsageError("BP 32F needs at least two images to split")
    g = rng if rng is not None else np.random.default_rng(0)
    first = np.zeros(k, dtype=bool)
    first[g.permutation(k)[: k // 2]] = True
    n = img.shape[1]
    r1 = FourierReconstructor(n, pad, symmetry)
    r2 = FourierReconstructor(n, pad, symmetry)
    r1.insert(img[first], rot[first])
    r2.insert(img[~first], rot[~first])
    h1 = r1.finish()
    h2 = r2.finish()
    full = r1.add(r2).finish()
    return full, h1, h2


def reconstruct(images, angles, shifts=None, ctf=None, weights=None, pad: float = 2,
                symmetry=None, wiener_snr: float | None = None) -> np.ndarray:
    """One-call direct Fourier reconstruction (``BP 3F`` with the extensions of
    :class:`FourierReconstructor`); arguments as :meth:`FourierReconstructor.insert`
    and :meth:`FourierReconstructor.finish`."""
    img = _as_stack(images)
    rec = FourierReconstructor(img.shape[1], pad, symmetry)
    rec.insert(img, angles, shifts=shifts, ctf=ctf, weights=weights)
    return rec.finish(wiener_snr=wiener_snr)
