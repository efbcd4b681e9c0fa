"""Group averages and ISAC's reference-free within-group alignment (A.3).

Alignment parameters follow :mod:`emsh.kernels.align2d`: ``(angle, shift, mirror)``
applied as ``RT SQ`` (quadratic interpolation) then mirror x -> -x; image centre at
``n//2``. All groups of a labelling are refined together: one call of the aligner per
pass, each image allowed only its own group's average.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emsh.errors import UsageError
from emsh.kernels.align2d import apply_alignment, compose_alignment, multiref_align
from emsh.kernels.filters import tanh_lowpass

__all__ = ["Alignment", "group_averages", "within_group_refinement", "reset_far_shifts"]


@dataclass
class Alignment:
    """Per-image 2-D alignment: angle (deg) ``(n,)``, shift ``(n, 2)`` px, mirror ``(n,)``."""

    angle: np.ndarray
    shift: np.ndarray
    mirror: np.ndarray

    @classmethod
    def zeros(cls, n: int) -> Alignment:
        """Identity parameters for ``n`` images."""
        return cls(np.zeros(n), np.zeros((n, 2)), np.zeros(n, dtype=bool))

    def take(self, idx) -> Alignment:
        """Parameters of a subset of images."""
        return Alignment(self.angle[idx].copy(), self.shift[idx].copy(), self.mirror[idx].copy())

    def put(self, idx, other: Alignment) -> None:
        """Set the parameters of images ``idx`` from ``other``."""
        self.angle[idx], self.shift[idx], self.mirror[idx] = other.angle, other.shift, other.mirror

    def as_tuple(self):
        """``(angle, shift, mirror)`` for the aligner's ``previous``."""
        return self.angle, self.shift, self.mirror


def group_averages(images, labels, n_groups: int, ali: Alignment | None = None) -> np.ndarray:
    """Mean of the members of each group after applying their alignment.

    Args:
        images: ``(n, ny, nx)``.
        labels: int ``(n,)`` group of each image; negative = no group.
        n_groups: K.
        ali: per-image parameters (None: images as they are).

    Returns:
        float32 ``(K, ny, nx)``; an empty group's average is zero.
    """
    imgs = np.asarray(images, dtype=np.float32)
    lab = np.asarray(labels, dtype=np.int64)
    if ali is not None:
        imgs = apply_alignment(imgs, ali.angle, ali.shift, ali.mirror)
    onehot = np.zeros((n_groups, len(lab)), dtype=np.float32)
    ok = lab >= 0
    onehot[lab[ok], np.flatnonzero(ok)] = 1.0
    counts = onehot.sum(1)
    sums = onehot @ imgs.reshape(len(lab), -1)
    out = sums / np.maximum(counts, 1.0)[:, None]
    return out.reshape((n_groups,) + imgs.shape[1:]).astype(np.float32)


def reset_far_shifts(ali: Alignment, nx: int, ou: int) -> None:
    """Zero the parameters of images shifted beyond ``nx//2 - ou - 1`` px (SPHIRE's reset)."""
    limit = max(nx // 2 - ou - 1, 0)
    far = np.hypot(ali.shift[:, 0], ali.shift[:, 1]) > limit
    ali.angle[far], ali.shift[far], ali.mirror[far] = 0.0, 0.0, False


def within_group_refinement(images, labels, n_groups: int, rng: np.random.Generator, *,
                            ou: int, ir: int = 1, rs: int = 1, xr: float = 1, yr: float = -1,
                            ts: float = 1.0, dst: float = 90.0, maxit: int = 30,
                            FH: float = 0.45, FF: float = 0.2, randomize: bool = True,
                            start: Alignment | None = None) -> tuple[np.ndarray, Alignment]:
    """Reference-free alignment of the members of every group (SPHIRE's algorithm).

    For ``Iter = 0 .. maxit-1``: the group average of the members rotated by their
    current parameters is low-passed with ``tanh_lowpass(fl, FF)``,
    ``fl = 0.1 + (FH - 0.1) Iter / (maxit - 1)``; except at the last iteration every
    member is then aligned to its group's average, locally (+-xr, +-yr in steps ts
    around its current shift) with mirror, by discrete angles (multiples of ``dst``)
    when ``Iter % 4 == 0 and Iter + 1 <= maxit - 10`` and continuous angles otherwise.

    Args:
        images: ``(n, ny, nx)`` members (normalised).
        labels: int ``(n,)`` group of each image in ``0..n_groups-1``.
        n_groups: number of groups K.
        rng: draws the random start (angle U[0, 360), mirror U{0, 1}); the particle
            centre implied by ``start`` is kept.
        ou, ir, rs: outer ring, inner ring, ring step (pixels).
        xr, yr, ts: local translational search range and step (yr=-1: xr).
        dst: discrete angular step (degrees).
        maxit: iterations (maxit - 1 alignment passes).
        FH, FF: final cut-off and fall-off of the tanh low-pass.
        randomize: start from random angles and mirrors.
        start: starting parameters (default zero).

    Returns:
        ``(averages (K, ny, nx) float32, low-passed at FH; parameters Alignment)``.
    """
    imgs = np.asarray(images, dtype=np.float32)
    lab = np.asarray(labels, dtype=np.int64)
    n = len(imgs)
    if imgs.ndim != 3 or lab.shape != (n,) or n == 0:
        raise UsageError(f"within_group_refinement: expected (n, ny, nx) images and (n,) "
                         f"labels, got {imgs.shape} and {lab.shape}")
    if lab.min() < 0 or lab.max() >= n_groups:
        raise UsageError(f"within_group_refinement: labels must lie in 0..{n_groups - 1}")
    if maxit < 2:
        raise UsageError(f"within_group_refinement: maxit={maxit}, need >= 2")
    ali = Alignment.zeros(n) if start is None else start.take(slice(None))
    if randomize:                      # new angle and mirror; the particle centre is kept
        new = rng.uniform(0.0, 360.0, n)
        no = np.zeros(n, dtype=bool)
        _, centre, _ = compose_alignment((ali.angle, ali.shift, no), (-ali.angle, 0.0, no))
        _, shift, _ = compose_alignment((np.zeros(n), centre, no), (new, 0.0, no))
        ali = Alignment(new, shift, rng.integers(0, 2, n).astype(bool))
    allowed = np.zeros((n, n_groups), dtype=bool)
    allowed[np.arange(n), lab] = True
    yrange = xr if yr == -1 else yr
    for it in range(maxit - 1):
        fl = 0.1 + (FH - 0.1) * it / (maxit - 1)
        avg = tanh_lowpass(group_averages(imgs, lab, n_groups, ali), fl, FF, ndim=2)
        discrete = it % 4 == 0 and it + 1 <= maxit - 10
        res = multiref_align(imgs, avg, first_ring=ir, last_ring=ou, ring_step=rs,
                             shift_range=(xr, yrange), shift_step=ts, mirror=True,
                             psi_delta=dst if discrete else None, previous=ali.as_tuple(),
                             allowed=allowed)
        ali = Alignment(res.angle, res.shift, res.mirror)
        reset_far_shifts(ali, imgs.shape[-1], ou)
    avg = tanh_lowpass(group_averages(imgs, lab, n_groups, ali), FH, FF, ndim=2)
    return avg.astype(np.float32), ali
