"""Iterative real-space reconstruction: Richardson's method as in SPIDER's ``BP RP`` family.

The images ``p_i`` are modelled as projections ``P_i x`` of a volume ``x`` that is zero
outside a sphere of radius ``r`` about the centre ``n//2``. ``P_i`` is emsh's ``PJ 3Q``
projector (:func:`emsh.kernels.project.project_real_trilinear`: ray sums at unit steps
with trilinear interpolation) and ``B_i`` its exact adjoint
(:func:`emsh.kernels.project.backproject_real_trilinear`), so operator norms, and hence
the relaxation ``lambda``, have SPIDER's scale. The algorithm is SPIDER's (``bprp3.f``):

1. ``a``, the mean of every pixel outside the circle of radius ``r`` over all images, is
   the background; the data are ``p_i - a``.
2. ``b = sum_i B_i (p_i - a)`` (with symmetry, over every mate ``R_i g`` too).
3. ``x_0 = 0``. Iteration ``t = 1, 2, ...``:

   * ``h = sum_i B_i P_i x`` (zero at ``t = 1``);
   * smoothing (modes 1, 3, 6, 8): ``x <- x + tau lambda L x`` inside the sphere, where
     ``L`` is the 6-neighbour Laplacian and ``tau = s / (1 - s)`` for the smoothing
     constant ``s``;
   * the correction ``q = M (b - h)`` (``M``: the sphere), its squared norm ``SQ``,
     and the step ``x <- x + lambda q`` (Landweber's iteration, the gradient step on
     ``||p - P x||^2 / 2``);
   * min/max constraints (modes 2, 3, 7, 8 / 5, 6, 7, 8): once the minimum of the
     reprojections (inside the circle of radius ``r``) falls below ``min - a``, the
     volume's minimum at that moment becomes a floor for every later iterate; the
     maximum likewise (SPIDER's rule: the given min/max are those of the projection data);
   * stop when ``SQ <= limit`` (the correction limit; 0 never stops), when ``t`` reaches
     the iteration limit, or when ``SQ`` no longer decreases (a too large lambda).

Images taken at the same orientation share ``P_i``: they are summed per distinct
orientation first (SPIDER's angle compression), so an iteration costs one projection and
one backprojection per distinct orientation however many images there are. Every
distinct orientation is handled by one rank under MPI (the images by the rank that read
them); partial sums are added with ``allreduce``, so results equal the serial ones to
float32 rounding of the sums.

Angles are SPIDER's (psi, theta, phi) in doc order, or ``(k, 3, 3)`` matrices, as in
:mod:`emsh.kernels.project`; volumes are float32 ``(n, n, n)`` in (z, y, x) order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from emsh.errors import UsageError
from emsh.kernels.project import (backproject_real_trilinear, project_real_trilinear,
                                  rotation_matrices)
from emsh.parallel import SerialComm

__all__ = ["ProjectionSums", "RichardsonResult", "constraint_flags", "richardson",
           "sphere_mask"]

_KEY_DECIMALS = 5          # matrices equal to 1e-5 are one orientation
_MODES = {0: (False, False, False), 1: (True, False, False), 2: (False, True, False),
          3: (True, True, False), 5: (False, False, True), 6: (True, False, True),
          7: (False, True, True), 8: (True, True, True)}


def constraint_flags(mode: int) -> tuple[bool, bool, bool]:
    """``(smoothing, min, max)`` of SPIDER's constraint mode: the sum of 1 (smoothing),
    2 (min) and 5 (max), with 8 for all three; there is no mode 4."""
    if int(mode) != mode or int(mode) not in _MODES:
        raise UsageError(f"constraint mode must be one of 0, 1, 2, 3, 5, 6, 7, 8, got {mode}")
    return _MODES[int(mode)]


def sphere_mask(n: int, radius: float) -> np.ndarray:
    """Voxels within ``radius`` of the centre ``n//2`` (distance <= radius), ``(n, n, n)``."""
    t = (np.arange(n, dtype=np.float32) - np.float32(n // 2)) ** 2
    return (t[:, None, None] + t[None, :, None] + t[None, None, :]) <= np.float32(radius) ** 2


def _circle(n: int, radius: float) -> np.ndarray:
    """Pixels strictly inside radius ``int(radius)`` (SPIDER's min/max mask), ``(n, n)``."""
    t = (np.arange(n, dtype=np.float64) - n // 2) ** 2
    return (t[:, None] + t[None, :]) < float(int(radius)) ** 2


def _keys(rot: np.ndarray) -> np.ndarray:
    """Rounded matrix entries ``(k, 9)``: equal rows are one orientation."""
    return np.round(rot.reshape(-1, 9), _KEY_DECIMALS) + 0.0     # + 0.0: no -0.0 keys


class ProjectionSums:
    """One rank's images of one reconstruction, summed per distinct orientation.

    Feed it the images in chunks with :meth:`add`; :func:`richardson` reduces the pieces
    of every rank. Besides the per-orientation sums it keeps what the background and the
    data residual need: the sum and count of the pixels outside the circle of radius
    ``radius``, and the sum and sum of squares of all pixels.

    Args:
        n: image size (square images ``n x n``; the volume is ``n^3``).
        radius: radius of the reconstructed sphere in pixels (``0 < radius < n``).
    """

    def __init__(self, n: int, radius: float):
        n = int(n)
        if n < 4:
            raise UsageError(f"images must be at least 4 x 4 pixels, got {n}")
        if not (np.isfinite(radius) and 0 < radius < n):
            raise UsageError(f"radius of the reconstructed object must be in (0, {n}), "
                             f"got {radius}")
        self.n, self.radius = n, float(radius)
        t = (np.arange(n, dtype=np.float64) - n // 2) ** 2
        self._outside = (t[:, None] + t[None, :]) > self.radius ** 2
        self._index: dict[bytes, int] = {}
        self._rot: list[np.ndarray] = []
        self._sums: list[np.ndarray] = []
        self._counts: list[int] = []
        self.outside_sum = 0.0
        self.outside_count = 0
        self.total_sum = 0.0
        self.total_sq = 0.0
        self.n_images = 0

    def add(self, images, angles) -> None:
        """Add a chunk of images ``(k, n, n)`` taken at ``angles`` (``(k, 3)`` or matrices)."""
        img = np.asarray(images, dtype=np.float32)
        if img.ndim == 2:
            img = img[None]
        if img.ndim != 3 or img.shape[1:] != (self.n, self.n):
            raise UsageError(f"images must be {self.n} x {self.n} (square, as the first), "
                             f"got shape {img.shape[1:]}")
        rot = rotation_matrices(angles)
        if rot.shape[0] != img.shape[0]:
            raise UsageError(f"{img.shape[0]} images but {rot.shape[0]} orientations")
        if img.shape[0] == 0:
            return
        if not np.all(np.isfinite(img)):
            raise UsageError("images contain NaN or infinite values")
        flat = img.reshape(img.shape[0], -1).astype(np.float64)
        self.outside_sum += float(flat[:, self._outside.ravel()].sum())
        self.outside_count += int(self._outside.sum()) * img.shape[0]
        self.total_sum += float(flat.sum())
        self.total_sq += float(np.einsum("ij,ij->", flat, flat))
        self.n_images += img.shape[0]
        keys, first, inverse = np.unique(_keys(rot), axis=0, return_index=True,
                                         return_inverse=True)
        part = np.zeros((keys.shape[0], flat.shape[1]))
        np.add.at(part, inverse.reshape(-1), flat)
        counts = np.bincount(inverse.reshape(-1), minlength=keys.shape[0])
        for j, key in enumerate(keys):                  # one pass per distinct orientation
            at = self._index.setdefault(key.tobytes(), len(self._rot))
            if at == len(self._rot):
                self._rot.append(rot[first[j]])
                self._sums.append(part[j])
                self._counts.append(int(counts[j]))
            else:
                self._sums[at] += part[j]
                self._counts[at] += int(counts[j])

    @property
    def n_orientations(self) -> int:
        """Distinct orientations added so far."""
        return len(self._rot)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(matrices (u, 3, 3), image sums (u, n, n) float64, counts (u,))``."""
        u, n = len(self._rot), self.n
        if u == 0:
            return np.zeros((0, 3, 3)), np.zeros((0, n, n)), np.zeros(0, dtype=np.int64)
        return (np.stack(self._rot), np.stack(self._sums).reshape(u, n, n),
                np.asarray(self._counts, dtype=np.int64))


@dataclass
class RichardsonResult:
    """What :func:`richardson` returns.

    Attributes:
        volume: float32 ``(n, n, n)``, zero outside the sphere; on the data's scale with
            the background ``a`` subtracted.
        iterations: iterations done (SPIDER's register output).
        corrections: ``SQ`` of every iteration (squared norm of ``b - sum B P x``).
        residuals: ``||p - a - P x||^2`` summed over the images for ``x_0 = 0, x_1, ...``
            up to the iterate before the last (computed from ``b`` and ``h`` at no cost).
        background: ``a``, the mean outside the circle.
        n_images: images used (all ranks).
        n_orientations: distinct orientations (before symmetry).
        min_floor, max_ceiling: the volume bounds once a constraint was activated, else None.
        stopped: ``"limit"``, ``"iterations"`` or ``"no decrease"``.
    """

    volume: np.ndarray
    iterations: int
    corrections: list[float] = field(default_factory=list)
    residuals: list[float] = field(default_factory=list)
    background: float = 0.0
    n_images: int = 0
    n_orientations: int = 0
    min_floor: float | None = None
    max_ceiling: float | None = None
    stopped: str = ""


def _expand(rot: np.ndarray, symmetry: np.ndarray | None) -> np.ndarray:
    """Every orientation times every symmetry mate (``R @ g``), ``(u * m, 3, 3)``."""
    if symmetry is None:
        return rot
    return (rot[:, None] @ symmetry[None]).reshape(-1, 3, 3)


def _backproject(images: np.ndarray, mats: np.ndarray, n: int, radius: float) -> np.ndarray:
    if mats.shape[0] == 0:
        return np.zeros((n, n, n), dtype=np.float32)
    return backproject_real_trilinear(images, mats, radius)


def _global_orientations(comm, rot, counts, symmetry):
    """The distinct orientations of every rank, in one order on all ranks, with counts."""
    parts = comm.allgather((rot, counts))
    allrot = np.concatenate([p[0] for p in parts], axis=0)
    allcnt = np.concatenate([p[1] for p in parts])
    if allrot.shape[0] == 0:
        return allrot, allcnt
    keys, first, inverse = np.unique(_keys(allrot), axis=0, return_index=True,
                                     return_inverse=True)
    cnt = np.bincount(inverse.reshape(-1), weights=allcnt, minlength=keys.shape[0])
    mats = _expand(allrot[first], symmetry)
    m = 1 if symmetry is None else symmetry.shape[0]
    return mats, np.repeat(cnt, m).astype(np.float32)


def _smooth(x: np.ndarray, weight: float, mask: np.ndarray) -> np.ndarray:
    """``(1 - 6 w) x + w * (sum of the 6 neighbours)`` inside the sphere (SPIDER's SMT3)."""
    p = np.pad(x, 1)
    nb = (p[:-2, 1:-1, 1:-1] + p[2:, 1:-1, 1:-1] + p[1:-1, :-2, 1:-1] + p[1:-1, 2:, 1:-1]
          + p[1:-1, 1:-1, :-2] + p[1:-1, 1:-1, 2:])
    y = np.float32(1.0 - 6.0 * weight) * x + np.float32(weight) * nb
    return np.where(mask, y, np.float32(0)).astype(np.float32)


def richardson(sums: ProjectionSums, lam: float, *, limit: float = 0.0, max_iter: int = 100,
               mode: int = 0, vmin: float = 0.0, vmax: float = 0.0, smooth: float = 0.0,
               symmetry=None, comm=None,
               log: Callable[[str], None] | None = None) -> RichardsonResult:
    """Richardson's constrained iterative reconstruction (SPIDER ``BP RP``).

    Args:
        sums: this rank's images (:class:`ProjectionSums`); under MPI every rank passes
            its own share and all ranks return the same volume.
        lam: relaxation ``lambda`` (> 0) on SPIDER's scale; convergence needs
            ``lam < 2 / ||sum_i B_i P_i||``, roughly ``1 / (images * radius)``.
        limit: correction limit: stop once ``SQ <= limit`` (0: never).
        max_iter: iteration limit (>= 1).
        mode: SPIDER's constraint mode (see :func:`constraint_flags`).
        vmin, vmax: minimum and maximum of the projection data (modes with min / max).
        smooth: smoothing constant ``s`` in ``[0, 1/(1 + 6 lam))`` (modes with smoothing).
        symmetry: ``(m, 3, 3)`` matrices of the point group (identity included) or None.
        comm: communicator (:class:`emsh.parallel.SerialComm` by default).
        log: called with SPIDER-style progress lines (rank 0 should pass its logger).

    Returns:
        :class:`RichardsonResult`.
    """
    comm = comm if comm is not None else SerialComm()
    say = log if log is not None else (lambda _text: None)
    if not (np.isfinite(lam) and lam > 0):
        raise UsageError(f"lambda must be positive, got {lam}")
    if int(max_iter) < 1:
        raise UsageError(f"iteration limit must be at least 1, got {max_iter}")
    use_smooth, use_min, use_max = constraint_flags(mode)
    if use_smooth and not (0.0 <= smooth < 1.0 / (1.0 + 6.0 * lam)):
        raise UsageError(f"smoothing constant must be in [0, 1/(1+6*lambda)) = "
                         f"[0, {1.0 / (1.0 + 6.0 * lam):.6g}), got {smooth}")
    sym = None if symmetry is None else rotation_matrices(symmetry)
    n, radius = sums.n, sums.radius
    stats = comm.allreduce(np.array([sums.outside_sum, sums.outside_count, sums.total_sum,
                                     sums.total_sq, sums.n_images], dtype=np.float64))
    o_sum, o_cnt, t_sum, t_sq, n_img = stats
    if n_img < 1:
        raise UsageError("no images to reconstruct from")
    aba = o_sum / o_cnt if o_cnt > 0 else 0.0
    data_sq = t_sq - 2.0 * aba * t_sum + n_img * n * n * aba * aba     # ||p - a||^2

    rot, img_sums, counts = sums.arrays()
    nsym = 1 if sym is None else sym.shape[0]
    data_sq *= nsym                   # b and h sum over the symmetry mates: so does the data
    local = (img_sums - counts[:, None, None] * aba).astype(np.float32)
    b = comm.allreduce(_backproject(np.repeat(local, nsym, axis=0), _expand(rot, sym),
                                    n, radius))
    mats, cnt = _global_orientations(comm, rot, counts, sym)
    n_orient = mats.shape[0] // nsym
    mine = comm.my_slice(mats.shape[0])
    my_mats, my_cnt = mats[mine], cnt[mine]
    say(f"  TOTAL POINTS IN PROJECTIONS: {int(o_cnt):10d}  AVERAGE OUTSIDE THE WINDOW: "
        f"{aba:10.3E}")
    say(f"  EFFECTIVE NUMBER OF ANGLES: {n_orient:7d}")

    mask = sphere_mask(n, radius)
    circle = _circle(n, radius)
    b = np.where(mask, b, np.float32(0)).astype(np.float32)
    tmin, tmax = vmin - aba, vmax - aba
    if use_min or use_max:
        say(f"  MIN & MAX AFTER AVG SUBTRACTION: {tmin:10.3E} ... {tmax:10.3E}")
    tau_lam = (smooth / (1.0 - smooth)) * lam if use_smooth else 0.0
    x = np.zeros((n, n, n), dtype=np.float32)
    res = RichardsonResult(volume=x, iterations=0, background=float(aba),
                           n_images=int(n_img), n_orientations=int(n_orient))
    bnorm = float(np.dot(b.ravel().astype(np.float64), b.ravel().astype(np.float64)))
    sq_old = np.inf
    for it in range(1, int(max_iter) + 1):
        gmin, gmax = np.inf, -np.inf
        if it > 1:
            if my_mats.shape[0]:
                proj = project_real_trilinear(x, my_mats, radius)
                if use_min or use_max:
                    inside = proj[:, circle]
                    gmin, gmax = float(inside.min()), float(inside.max())
                proj *= my_cnt[:, None, None]
            else:
                proj = np.zeros((0, n, n), dtype=np.float32)
            h = comm.allreduce(_backproject(proj, my_mats, n, radius))
            if use_min:
                gmin = comm.allreduce_scalar(gmin, "min")
            if use_max:
                gmax = comm.allreduce_scalar(gmax, "max")
            xs = x.ravel().astype(np.float64)
            res.residuals.append(float(data_sq - 2.0 * np.dot(xs, b.ravel())
                                       + np.dot(xs, h.ravel())))
            q = np.where(mask, b - h, np.float32(0)).astype(np.float32)
        else:
            res.residuals.append(float(data_sq))
            q = b
        if use_smooth:
            x = _smooth(x, tau_lam, mask)
        q64 = q.ravel().astype(np.float64)
        sq = float(np.dot(q64, q64))
        x = (x + np.float32(lam) * q).astype(np.float32)
        if it > 1 and use_min and res.min_floor is None and gmin < tmin:
            res.min_floor = float(x[mask].min())
            say(f"  MIN CONSTRAINT ACTIVATED, VALUE IN 3D: {res.min_floor:10.3E}")
        if it > 1 and use_max and res.max_ceiling is None and gmax > tmax:
            res.max_ceiling = float(x[mask].max())
            say(f"  MAX CONSTRAINT ACTIVATED, VALUE IN 3D: {res.max_ceiling:10.3E}")
        if res.min_floor is not None:
            x = np.where(mask, np.maximum(x, np.float32(res.min_floor)), x).astype(np.float32)
        if res.max_ceiling is not None:
            x = np.where(mask, np.minimum(x, np.float32(res.max_ceiling)), x).astype(np.float32)
        if comm.size > 1:                      # one iterate on every rank, bit for bit
            x = comm.bcast(x)
        res.corrections.append(sq)
        res.iterations = it
        say(f"  ITERATION: {it:5d}   SQUARED CORRECTION OF STRUCTURE:  {sq:12.4E}  "
            f"{sq / bnorm if bnorm > 0 else 0.0:12.4E}")
        if sq <= limit:
            res.stopped = "limit"
            break
        if it == int(max_iter):
            res.stopped = "iterations"
            break
        if sq >= sq_old:
            res.stopped = "no decrease"
            break
        sq_old = sq
    res.volume = x
    return res
