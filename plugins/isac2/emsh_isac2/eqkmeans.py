"""One EQ-K-means iteration of ISAC (A.2 step 5.1-5.5).

Multi-reference alignment of all images against the current averages gives the
``(n, K)`` correlation matrix; :func:`emsh.kernels.cluster.eq_kmeans_assign` splits the
images into K equal groups; each image keeps the alignment to its *assigned* average;
new averages are the aligned group means, low-passed and re-centred.

MPI: both alignments (all images against all averages, then the re-alignment of the
images moved to another group) are split over the ranks with
:func:`~emsh_isac2.align.align_over_ranks`, the averages by group
(:func:`~emsh_isac2.align.group_averages`); the assignment is computed by every rank
from the gathered, identical rows, with the same random draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emsh.kernels.align2d import compose_alignment
from emsh.kernels.cluster import eq_kmeans_assign
from emsh.kernels.filters import tanh_lowpass

from .align import Alignment, align_over_ranks, group_averages

__all__ = ["EqKmeansStep", "eq_kmeans_iteration"]


@dataclass
class EqKmeansStep:
    """Result of one iteration: ``labels (n,)``, ``ali`` (to the assigned average),
    ``cc (n, K)`` similarity matrix, ``averages (K, ny, nx)``."""

    labels: np.ndarray
    ali: Alignment
    cc: np.ndarray
    averages: np.ndarray


def eq_kmeans_iteration(images, refs, rng: np.random.Generator, *, ou: int, ir: int = 1,
                        rs: int = 1, xr: float = 1, yr: float = -1, ts: float = 1.0,
                        fl: float = 0.2, FF: float = 0.2, method: str = "greedy",
                        sphire_remainder: bool = True,
                        current: Alignment | None = None, comm=None) -> EqKmeansStep:
    """Align ``images`` to every reference, assign equal groups, and average.

    Args:
        images: ``(n, ny, nx)`` normalised working images.
        refs: ``(K, ny, nx)`` current averages.
        rng: breaks ties in the assignment.
        ou, ir, rs: rings (pixels); xr, yr, ts: shift search (yr=-1: xr).
        fl, FF: tanh low-pass of the new averages.
        method, sphire_remainder: as in :func:`emsh.kernels.cluster.eq_kmeans_assign`
            (default: SPHIRE's greedy peak-list walk and its remainder rule).
        current: present parameters; the search is centred on each image's present
            particle centre (its translation only, as SPHIRE's peak-list search).
        comm: communicator; the alignments are split over its ranks, and every rank
            returns the same step (the rng must be in the same state on every rank).

    Returns:
        :class:`EqKmeansStep`. Each group's parameters are composed with minus the
        group's mean shift, so that averages stay centred (SPHIRE's ``fshift``).
    """
    imgs = np.asarray(images, dtype=np.float32)
    n, K = len(imgs), len(refs)
    yrange = xr if yr == -1 else yr
    kw = dict(first_ring=ir, last_ring=ou, ring_step=rs, shift_range=(xr, yrange),
              shift_step=ts, mirror=True)
    if current is not None:
        n0 = np.zeros(n)
        _, centre, _ = compose_alignment((current.angle, current.shift, np.zeros(n, bool)),
                                         (-current.angle, np.zeros((n, 2)), np.zeros(n, bool)))
        far = np.hypot(centre[:, 0], centre[:, 1]) > max(imgs.shape[-1] // 2 - ou - 1, 0)
        centre[far] = 0.0
        kw["previous"] = (n0, centre, np.zeros(n, bool))
    res = align_over_ranks(imgs, refs, comm, return_all_cc=True, **kw)
    cc = np.asarray(res.all_cc, dtype=np.float64)
    labels = eq_kmeans_assign(cc, rng, method=method, sphire_remainder=sphire_remainder)
    if comm is not None and comm.size > 1:      # rank 0's labels: same control flow on all
        labels = comm.bcast(labels)
    ali = Alignment(res.angle.copy(), res.shift.copy(), res.mirror.copy())
    moved = np.flatnonzero(labels != res.ref)
    if len(moved):
        allowed = np.zeros((len(moved), K), dtype=bool)
        allowed[np.arange(len(moved)), labels[moved]] = True
        kw2 = dict(kw)
        if "previous" in kw2:
            kw2["previous"] = tuple(v[moved] for v in kw2["previous"])
        r2 = align_over_ranks(imgs[moved], refs, comm, allowed=allowed, **kw2)
        ali.put(moved, Alignment(r2.angle, r2.shift, r2.mirror))
    ali = remove_mean_shift(ali, labels, K)
    avg = tanh_lowpass(group_averages(imgs, labels, K, ali, comm), fl, FF, ndim=2)
    return EqKmeansStep(labels, ali, cc.astype(np.float32), avg.astype(np.float32))


def remove_mean_shift(ali: Alignment, labels, K: int) -> Alignment:
    """Compose each image's parameters with minus its group's mean (post-mirror) shift."""
    lab = np.asarray(labels, dtype=np.int64)
    post = ali.shift.copy()
    post[:, 0] = np.where(ali.mirror, -post[:, 0], post[:, 0])
    counts = np.maximum(np.bincount(lab, minlength=K), 1)
    mean = np.stack([np.bincount(lab, post[:, i], minlength=K) / counts for i in (0, 1)], -1)
    back = -mean[lab]                                   # compose flips x for mirrored
    zero = np.zeros(len(lab))
    a, s, m = compose_alignment(ali.as_tuple(), (zero, back, zero.astype(bool)))
    return Alignment(a, s, m)
