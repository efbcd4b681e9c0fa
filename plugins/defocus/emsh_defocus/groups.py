"""Defocus groups: micrographs sorted by defocus and cut into contiguous ranges.

Micrographs are ordered by mean defocus (ties by micrograph number) and split into
``n_groups`` consecutive blocks whose sizes differ by at most one (the larger blocks
first), so every group spans a contiguous defocus range, group 1 holds the smallest
defoci, and the micrograph counts are balanced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emsh.errors import UsageError
from emsh.parallel import split_range

__all__ = ["DefocusGroups", "defocus_groups"]


@dataclass
class DefocusGroups:
    """Result of :func:`defocus_groups`.

    Attributes:
        mics: int64 ``(n,)`` micrograph numbers, in the input order.
        defocus_A: float64 ``(n,)`` their mean defocus (Å).
        group: int64 ``(n,)`` 1-based group of each micrograph.
    """

    mics: np.ndarray
    defocus_A: np.ndarray
    group: np.ndarray

    @property
    def n_groups(self) -> int:
        return int(self.group.max()) if self.group.size else 0

    def summary(self) -> np.ndarray:
        """float64 ``(n_groups, 5)``: group, n_mics, mean, min, max defocus (Å)."""
        rows = []
        for g in range(1, self.n_groups + 1):
            d = self.defocus_A[self.group == g]
            rows.append([g, d.size, d.mean(), d.min(), d.max()])
        return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def defocus_groups(mics, defocus_A, n_groups: int) -> DefocusGroups:
    """Split micrographs into ``n_groups`` contiguous defocus ranges of balanced size.

    Args:
        mics: micrograph numbers (distinct).
        defocus_A: mean defocus of each (Å).
        n_groups: number of groups, 1 .. number of micrographs.

    Raises:
        UsageError: no micrographs, repeated numbers, or an impossible group count.
    """
    mics = np.asarray(mics, dtype=np.int64).ravel()
    d = np.asarray(defocus_A, dtype=np.float64).ravel()
    n = mics.size
    if n == 0 or d.size != n:
        raise UsageError(f"defocus groups: need one defocus per micrograph "
                         f"({n} micrographs, {d.size} defoci)")
    if np.unique(mics).size != n:
        raise UsageError("defocus groups: a micrograph number appears twice")
    k = int(n_groups)
    if k != n_groups or not 1 <= k <= n:
        raise UsageError(f"number of groups must be 1..{n} (the number of micrographs), "
                         f"got {n_groups}")
    order = np.lexsort((mics, d))
    group = np.empty(n, dtype=np.int64)
    for g in range(k):
        group[order[split_range(n, k, g)]] = g + 1
    return DefocusGroups(mics, d, group)
