"""Ordering of the final class averages by mutual similarity (sp_isac2's ``sp_chains`` step).

sp_isac2 ends by running ``sp_chains.py --circular --align``: every pair of averages is
aligned (rotation, mirror, shift within ``xr + 1``), their similarity is the correlation
after alignment inside the particle radius, and the averages are put on a closed chain
(a travelling-salesman tour) that maximises the similarity of neighbours; each average
is then turned (angle and mirror, no shift) into register with its predecessor.

emsh does the same with its own kernels and a deterministic tour search:

* similarities: one call of :func:`emsh.kernels.align2d.multiref_align` of all averages
  against all (``return_all_cc``: normalised correlation over the rings ``1..ou``),
  symmetrised;
* tour: a greedy chain from every start, closed into a circle; the best one is
  improved by 2-opt moves until none helps (SPHIRE uses simulated annealing with
  ``1 - cc`` as the distance). The tour starts, as SPHIRE's, at the start of the best
  greedy chain;
* register: the transform of each average onto its predecessor (one batched
  alignment), composed along the chain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emsh.errors import UsageError
from emsh.kernels.align2d import apply_alignment, compose_alignment, multiref_align
from emsh.kernels.polar import polar_limit

__all__ = ["Ordering", "similarity_matrix", "circular_order", "order_averages",
           "tour_similarity"]


@dataclass
class Ordering:
    """Result of :func:`order_averages`.

    Attributes:
        order: indices of the input averages in their new order.
        angle, mirror: per new position, the rotation (deg) and mirror that turn the
            average into register (``apply_alignment`` convention, no shift).
        averages: the reordered, turned averages.
        similarity: the symmetric similarity matrix of the input averages.
    """

    order: np.ndarray
    angle: np.ndarray
    mirror: np.ndarray
    averages: np.ndarray
    similarity: np.ndarray


def similarity_matrix(averages, *, ou: int, xr: int = 2, ir: int = 1) -> np.ndarray:
    """Symmetric ``(K, K)`` correlation of every pair after alignment (rotation, mirror,
    shift within ``xr``); rings ``ir..ou``."""
    a = np.asarray(averages, dtype=np.float32)
    res = multiref_align(a, a, first_ring=ir, last_ring=ou, shift_range=xr, mirror=True,
                         return_all_cc=True)
    cc = res.all_cc.astype(np.float64)
    return 0.5 * (cc + cc.T)


def tour_similarity(order, sim) -> float:
    """Sum of the similarities of neighbours on the closed tour ``order``."""
    o = np.asarray(order)
    return float(sim[o, np.roll(o, -1)].sum())


def _greedy(sim: np.ndarray, start: int) -> tuple[list[int], float]:
    K = len(sim)
    left = np.ones(K, dtype=bool)
    left[start] = False
    chain, total = [start], 0.0
    for _ in range(K - 1):
        row = np.where(left, sim[chain[-1]], -np.inf)
        nxt = int(np.argmax(row))
        total += row[nxt]
        chain.append(nxt)
        left[nxt] = False
    return chain, total


def circular_order(sim) -> np.ndarray:
    """A closed tour through all items maximising the sum of neighbour similarities.

    Greedy chains from every start (the best open chain gives the start), closed, then
    2-opt: reverse a segment whenever that raises the tour's similarity.
    """
    S = np.asarray(sim, dtype=np.float64)
    K = len(S)
    if S.shape != (K, K):
        raise UsageError(f"ordering: similarity matrix must be square, got {S.shape}")
    if K <= 3:
        return np.arange(K)
    best, best_val = None, -np.inf
    for m in range(K):
        chain, val = _greedy(S, m)
        if val > best_val:
            best, best_val = chain, val
    tour = np.array(best)
    improved = True
    while improved:
        improved = False
        for i in range(1, K - 1):
            a, b = tour[i - 1], tour[i]
            js = np.arange(i + 1, K)
            c, d = tour[js], tour[(js + 1) % K]
            gain = S[a, c] + S[b, d] - S[a, b] - S[c, d]
            gain[d == a] = 0.0
            j = int(np.argmax(gain))
            if gain[j] > 1e-12:
                tour[i:js[j] + 1] = tour[i:js[j] + 1][::-1].copy()
                improved = True
    return tour


def order_averages(averages, *, ou: int, xr: int = 2, ir: int = 1) -> Ordering:
    """Order ISAC2's averages by mutual similarity and turn each into register.

    Args:
        averages: ``(K, n, n)`` class averages.
        ou, ir: outer and inner ring (px) of the comparisons.
        xr: shift search half-range (px); sp_isac2 passes ``xr + 1``.
    """
    a = np.asarray(averages, dtype=np.float32)
    K = len(a)
    if a.ndim != 3:
        raise UsageError(f"ordering: expected (K, n, n) averages, got {a.shape}")
    if K < 2:
        return Ordering(np.arange(K), np.zeros(K), np.zeros(K, bool), a.copy(),
                        np.ones((K, K)))
    ou = min(int(ou), polar_limit(a.shape[1:]) - int(np.ceil(xr)))  # rings + shift fit
    if ou <= ir:
        raise UsageError(f"ordering: {a.shape[-1]} px averages leave no ring for a search "
                         f"of +-{xr} px")
    sim = similarity_matrix(a, ou=ou, xr=xr, ir=ir)
    order = circular_order(sim)
    cur, prev = a[order[1:]], a[order[:-1]]
    allowed = np.eye(K - 1, dtype=bool)
    rel = multiref_align(cur, prev, first_ring=ir, last_ring=ou, shift_range=0,
                         mirror=True, allowed=allowed)
    ang, mir = np.zeros(K), np.zeros(K, dtype=bool)
    for k in range(1, K):          # onto the predecessor, then along with it
        t = compose_alignment((rel.angle[k - 1:k], np.zeros((1, 2)), rel.mirror[k - 1:k]),
                              (ang[k - 1:k], np.zeros((1, 2)), mir[k - 1:k]))
        ang[k], mir[k] = t[0][0], t[2][0]
    turned = apply_alignment(a[order], ang, np.zeros((K, 2)), mir)
    return Ordering(order, ang, mir, np.asarray(turned, dtype=np.float32), sim)
