"""Group averages and ISAC's reference-free within-group alignment (A.3).

Alignment parameters follow :mod:`emsh.kernels.align2d`: ``(angle, shift, mirror)``
applied as ``RT SQ`` (quadratic interpolation) then mirror x -> -x; image centre at
``n//2``. All groups of a labelling are refined together: one call of the aligner per
pass, each image allowed only its own group's average.

MPI: :func:`align_over_ranks` runs the aligner on this rank's block of images
(``comm.my_slice``) against all references and gathers the rows on every rank, so that
all ranks continue with the same parameters. The aligner's result for an image does not
depend on the other images of its batch up to float rounding; it is bit-for-bit the
same when FFTs use scipy.fft and BLAS one thread (measured), else within ~1e-7 in
correlation. :func:`group_averages` splits the groups over the ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from emsh.errors import UsageError
from emsh.kernels.align2d import AlignResult, apply_alignment, compose_alignment, multiref_align
from emsh.kernels.filters import tanh_lowpass

__all__ = ["Alignment", "class_labels", "group_averages", "within_group_refinement", "reset_far_shifts",
           "align_over_ranks"]


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


def align_over_ranks(images, refs, comm=None, *, previous=None, allowed=None,
                     **kw) -> AlignResult:
    """:func:`~emsh.kernels.align2d.multiref_align` with the images split over MPI ranks.

    Each rank aligns its block ``comm.my_slice(n)`` of ``images`` (with the matching
    rows of ``previous``, an ``(angles, shifts, mirror)`` tuple, and of ``allowed``)
    to all ``refs``; the per-image results are gathered in rank order, so every rank
    returns the result for all ``n`` images.
    ``comm`` None or of size 1: one plain call. Other keywords go to ``multiref_align``.
    """
    if comm is None or comm.size == 1:
        return multiref_align(images, refs, previous=previous, allowed=allowed, **kw)
    imgs = np.asarray(images, dtype=np.float32)
    n = len(imgs)
    mine = comm.my_slice(n)
    if mine.stop > mine.start:
        prev = None if previous is None else tuple(
            v[mine] if np.ndim(v) >= 1 and len(v) == n else v for v in previous)
        res = multiref_align(imgs[mine], refs, previous=prev,
                             allowed=None if allowed is None else np.asarray(allowed)[mine],
                             **kw)
        part = {f.name: getattr(res, f.name) for f in fields(AlignResult)}
    else:
        part = None
    parts = [p for p in comm.allgather(part) if p is not None]
    return AlignResult(**{name: (None if parts[0][name] is None else
                                 np.concatenate([p[name] for p in parts]))
                          for name in parts[0]})


def class_labels(members, n: int) -> np.ndarray:
    """Class index (0-based) of each of ``n`` images from per-class member ids; -1 for
    images in no class."""
    lab = np.full(n, -1, dtype=np.int64)
    for k, m in enumerate(members):
        lab[np.asarray(m, dtype=np.int64)] = k
    return lab


def group_averages(images, labels, n_groups: int, ali: Alignment | None = None,
                   comm=None) -> np.ndarray:
    """Mean of the members of each group after applying their alignment.

    Each group's sum runs over its members in index order in float64, so a group's
    average does not depend on the other groups; under MPI the groups are split over
    the ranks (``comm.my_slice(K)``: each rank rotates only the members of its groups)
    and the averages gathered, giving every rank the serial result bit for bit.

    Args:
        images: ``(n, ny, nx)``.
        labels: int ``(n,)`` group of each image; negative = no group.
        n_groups: K.
        ali: per-image parameters (None: images as they are).
        comm: communicator (None: serial).

    Returns:
        float32 ``(K, ny, nx)``; an empty group's average is zero.
    """
    imgs = np.asarray(images, dtype=np.float32)
    lab = np.asarray(labels, dtype=np.int64)
    mine = slice(0, n_groups) if comm is None else comm.my_slice(n_groups)
    sel = np.flatnonzero((lab >= mine.start) & (lab < mine.stop))
    sel = sel[np.argsort(lab[sel], kind="stable")]           # by group, then by index
    out = np.zeros((mine.stop - mine.start,) + imgs.shape[1:], np.float32)
    if len(sel):
        part = imgs[sel]
        if ali is not None:
            part = apply_alignment(part, ali.angle[sel], ali.shift[sel], ali.mirror[sel])
        g, start, count = np.unique(lab[sel], return_index=True, return_counts=True)
        for k, s0, c in zip(g - mine.start, start, count):     # a loop over groups
            out[k] = (part[s0:s0 + c].sum(0, dtype=np.float64) / c).astype(np.float32)
    if comm is not None and comm.size > 1:
        out = np.concatenate(comm.allgather(out), axis=0)
    return out


def reset_far_shifts(ali: Alignment, nx: int, ou: int) -> None:
    """Zero the parameters of images shifted beyond ``nx//2 - ou - 1`` px (SPHIRE's reset)."""
    limit = max(nx // 2 - ou - 1, 0)
    far = np.hypot(ali.shift[:, 0], ali.shift[:, 1]) > limit
    ali.angle[far], ali.shift[far], ali.mirror[far] = 0.0, 0.0, False


def within_group_refinement(images, labels, n_groups: int, rng: np.random.Generator, *,
                            ou: int, ir: int = 1, rs: int = 1, xr: float = 1, yr: float = -1,
                            ts: float = 1.0, dst: float = 90.0, maxit: int = 30,
                            FH: float = 0.45, FF: float = 0.2, randomize: bool = True,
                            start: Alignment | None = None,
                            comm=None) -> tuple[np.ndarray, Alignment]:
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
        comm: communicator; the alignment passes are split over its ranks
            (:func:`align_over_ranks`); every rank gets the same result.

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
    serial = comm is None or comm.size == 1
    for it in range(maxit - 1):
        fl = 0.1 + (FH - 0.1) * it / (maxit - 1)
        discrete = it % 4 == 0 and it + 1 <= maxit - 10
        kw = dict(first_ring=ir, last_ring=ou, ring_step=rs, shift_range=(xr, yrange),
                  shift_step=ts, mirror=True, psi_delta=dst if discrete else None,
                  allowed=allowed)
        if serial:
            # rotate once: the same images make the averages and are aligned to them
            # (what the aligner's `previous` would do again), then compose
            rot = apply_alignment(imgs, ali.angle, ali.shift, ali.mirror)
            avg = tanh_lowpass(group_averages(rot, lab, n_groups), fl, FF, ndim=2)
            res = multiref_align(rot, avg, **kw)
            ali = Alignment(*compose_alignment(ali.as_tuple(), (res.angle, res.shift,
                                                                res.mirror)))
        else:       # each rank rotates only its groups (averages) and its images (search)
            avg = tanh_lowpass(group_averages(imgs, lab, n_groups, ali, comm), fl, FF, ndim=2)
            res = align_over_ranks(imgs, avg, comm, previous=ali.as_tuple(), **kw)
            ali = Alignment(res.angle, res.shift, res.mirror)
        reset_far_shifts(ali, imgs.shape[-1], ou)
    avg = tanh_lowpass(group_averages(imgs, lab, n_groups, ali, comm), FH, FF, ndim=2)
    return avg.astype(np.float32), ali
