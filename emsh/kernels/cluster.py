"""Clustering kernels: equal-size and minimum-size K-means, partition matching, baselines.

Used by ISAC2 (EQ-K-means: every group gets the same number of members),
SORT3D_DEPTH (K-means with a minimum group size, two-way comparison of partitions with
Hungarian matching, random-partition baselines) and ML_TOMO.

Conventions: a score matrix is ``(n, k)``, members (images, particles) by groups,
larger = better. Labels are integer arrays ``(n,)``; in matching, negative labels mean
"not assigned" and are left out. Randomness comes from a ``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from emsh.errors import UsageError

__all__ = ["eq_kmeans_assign", "kmeans", "min_size_assign", "mgsk_means", "match_partitions",
           "partition_agreement", "Agreement", "random_baseline", "contingency"]

_EXACT_MAX_N = 1000          # 'auto' solves the exact assignment up to this many members
_MAX_CELLS = 2**28           # refuse absurd score matrices / tables


def _scores(score, what: str = "score") -> np.ndarray:
    s = np.asarray(score, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] < 1 or s.shape[1] < 1:
        raise UsageError(f"{what}: expected an (n, k) matrix of members by groups, got shape {s.shape}")
    if s.size > _MAX_CELLS:
        raise UsageError(f"{what}: matrix of shape {s.shape} is too large")
    if not np.all(np.isfinite(s)):
        raise UsageError(f"{what}: contains NaN or infinite values")
    if s.shape[1] > s.shape[0]:
        raise UsageError(f"{what}: {s.shape[1]} groups for {s.shape[0]} members; need k <= n")
    return s


# ---------------------------------------------------------------- EQ-K-means (ISAC)


def eq_kmeans_assign(score, rng: np.random.Generator | None = None, method: str = "auto",
                     sphire_remainder: bool = False) -> np.ndarray:
    """Equal-size assignment of ``n`` members to ``k`` groups from a score matrix.

    Every group gets ``n//k`` or ``n//k + 1`` members (exactly ``n % k`` groups get the
    extra one), maximising the total score of the assignment:

    * ``"exact"``: the optimum, by ``scipy.optimize.linear_sum_assignment`` on the
      columns replicated into ``n//k + 1`` slots per group, with ``k - n%k`` dummy rows
      that may take only the extra slots (so the matrix is square and the sizes come
      out exactly). O(n³); for small problems.
    * ``"greedy"``: ISAC's peak-list algorithm (SPHIRE ``Util::assign_groups``): all
      ``n·k`` scores sorted in descending order are walked once; member i goes to group
      g when i is still free and g still open. A group closes at ``n//k + 1`` members
      while fewer than ``n % k`` groups have reached that size, at ``n//k`` after.
      Runs in O(nk log nk) (phases between group closures, vectorised).
    * ``"auto"``: exact up to 1000 members, greedy beyond.

    Args:
        score: ``(n, k)`` member-by-group scores, larger = better (k <= n).
        rng: breaks ties in the greedy order at random; None keeps the order of
            the flattened matrix (member-major).
        method: ``"auto"``, ``"exact"`` or ``"greedy"``.
        sphire_remainder: greedy only: SPHIRE's own remainder rule instead, where all
            groups close at ``n//k`` and the last open group takes the ``n % k`` extra
            members (sizes ``n//k`` and one ``n//k + n%k``).

    Returns:
        int64 labels ``(n,)`` in ``0 .. k-1``.
    """
    s = _scores(score)
    method = str(method).lower()
    if method not in ("auto", "exact", "greedy"):
        raise UsageError(f"eq_kmeans_assign: method {method!r}; use 'auto', 'exact' or 'greedy'")
    if method == "auto":
        method = "exact" if (s.shape[0] <= _EXACT_MAX_N and not sphire_remainder) else "greedy"
    if method == "exact":
        if sphire_remainder:
            raise UsageError("eq_kmeans_assign: sphire_remainder applies to the greedy method only")
        return _eq_exact(s)
    return _eq_greedy(s, rng, sphire_remainder)


def _eq_exact(s: np.ndarray) -> np.ndarray:
    n, k = s.shape
    q, r = divmod(n, k)
    slots = q + (1 if r else 0)
    cost = np.repeat(-s, slots, axis=1)                     # column g*slots + j: slot j of g
    if r:
        dummy = np.full((k - r, k * slots), np.inf)
        dummy[:, slots - 1::slots] = 0.0                    # dummies fill extra slots only
        cost = np.vstack([cost, dummy])
    rows, cols = linear_sum_assignment(cost)
    labels = np.empty(n, dtype=np.int64)
    real = rows < n
    labels[rows[real]] = cols[real] // slots
    return labels


def _eq_greedy(s: np.ndarray, rng, sphire: bool) -> np.ndarray:
    n, k = s.shape
    q, r = divmod(n, k)
    flat = -s.reshape(-1)
    if rng is not None:
        perm = rng.permutation(n * k)
        order = perm[np.argsort(flat[perm], kind="stable")]
    else:
        order = np.argsort(flat, kind="stable")
    rank = np.empty(n * k, dtype=np.int64)
    rank[order] = np.arange(n * k)
    rank = rank.reshape(n, k)
    pref = np.argsort(rank, axis=1)                         # each member's groups, best first
    ptr = np.zeros(n, dtype=np.int64)
    labels = np.full(n, -1, dtype=np.int64)
    counts = np.zeros(k, dtype=np.int64)
    is_open = np.ones(k, dtype=bool)
    big = 0                                                 # groups that reached q + 1
    while True:
        free = np.flatnonzero(labels < 0)
        if len(free) == 0:
            break
        cand = pref[free, ptr[free]]
        closed = ~is_open[cand]
        while closed.any():                                 # skip groups that have closed
            ptr[free[closed]] += 1
            cand[closed] = pref[free[closed], ptr[free[closed]]]
            closed = ~is_open[cand]
        o = np.argsort(rank[free, cand], kind="stable")
        free, cand = free[o], cand[o]
        if sphire:
            cap = np.full(k, q + r if is_open.sum() == 1 else q)
        else:
            cap = np.full(k, q + 1 if big < r else q)
        room = cap - counts
        srt = np.argsort(cand, kind="stable")
        g_sorted = cand[srt]
        occ = np.empty(len(cand), dtype=np.int64)
        occ[srt] = np.arange(len(cand)) - np.searchsorted(g_sorted, g_sorted, side="left")
        hits = np.flatnonzero(occ == room[cand] - 1)
        stop = int(hits[0]) + 1 if len(hits) else len(cand)
        labels[free[:stop]] = cand[:stop]
        counts += np.bincount(cand[:stop], minlength=k)
        if not len(hits):
            continue
        g = int(cand[hits[0]])
        is_open[g] = False
        if not sphire and counts[g] == q + 1:
            big += 1
            if big == r:
                is_open &= counts < q
    return labels


# ---------------------------------------------------------------- K-means


def _points(X) -> np.ndarray:
    x = np.asarray(X, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 1:
        raise UsageError(f"expected data of shape (n, d), got {np.shape(X)}")
    if x.size > _MAX_CELLS:
        raise UsageError(f"data of shape {x.shape} is too large")
    if not np.all(np.isfinite(x)):
        raise UsageError("data contain NaN or infinite values")
    return x


def _sqdist(x: np.ndarray, c: np.ndarray, x2: np.ndarray) -> np.ndarray:
    d = x2[:, None] - 2.0 * (x @ c.T) + np.sum(c * c, axis=1)[None, :]
    return np.maximum(d, 0.0)


def _kpp(x: np.ndarray, x2: np.ndarray, k: int, rng) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007)."""
    n = len(x)
    idx = [int(rng.integers(n))]
    d = _sqdist(x, x[idx], x2)[:, 0]
    for _ in range(1, k):
        tot = d.sum()
        i = int(rng.integers(n)) if tot <= 0 else int(rng.choice(n, p=d / tot))
        idx.append(i)
        d = np.minimum(d, _sqdist(x, x[i:i + 1], x2)[:, 0])
    return x[idx].copy()


def _centres(x: np.ndarray, labels: np.ndarray, k: int, old: np.ndarray | None = None) -> np.ndarray:
    cnt = np.bincount(labels, minlength=k).astype(np.float64)
    c = np.zeros((k, x.shape[1]))
    np.add.at(c, labels, x)
    empty = cnt == 0
    c[~empty] /= cnt[~empty, None]
    if empty.any() and old is not None:
        c[empty] = old[empty]
    return c


def kmeans(X, k: int, rng: np.random.Generator, n_init: int = 10, max_iter: int = 300,
           tol: float = 1e-9):
    """Lloyd's K-means with k-means++ seeding; the best of ``n_init`` runs.

    An empty cluster is re-seeded with the point farthest from its centre.

    Args:
        X: data ``(n, d)`` (or ``(n,)``).
        k: number of clusters, 1 <= k <= n.
        rng: seeds and re-seeding.
        n_init: independent starts; the one with the least inertia is returned.
        max_iter: Lloyd iterations per start.
        tol: stop when no label changes or the inertia falls by less than this fraction.

    Returns:
        ``(labels, centres, inertia)``: int64 ``(n,)``, float64 ``(k, d)`` and the sum of
        squared distances to the assigned centres.
    """
    x = _points(X)
    n = len(x)
    k = int(k)
    if not 1 <= k <= n:
        raise UsageError(f"kmeans: k must be 1 .. {n}, got {k}")
    if int(n_init) < 1 or int(max_iter) < 1:
        raise UsageError("kmeans: n_init and max_iter must be >= 1")
    x2 = np.sum(x * x, axis=1)
    best = None
    for _ in range(int(n_init)):
        c = _kpp(x, x2, k, rng)
        labels = np.full(n, -1, dtype=np.int64)
        prev = np.inf
        for _it in range(int(max_iter)):
            d = _sqdist(x, c, x2)
            new = np.argmin(d, axis=1)
            cnt = np.bincount(new, minlength=k)
            for g in np.flatnonzero(cnt == 0):              # re-seed empty clusters
                far = int(np.argmax(d[np.arange(n), new]))
                new[far] = g
                d[far] = 0.0
                cnt = np.bincount(new, minlength=k)
            inertia = float(np.sum(_sqdist(x, c, x2)[np.arange(n), new]))
            changed = np.any(new != labels)
            labels = new
            c = _centres(x, labels, k, c)
            if not changed or prev - inertia <= tol * max(prev, 1e-300):
                break
            prev = inertia
        inertia = float(np.sum(_sqdist(x, c, x2)[np.arange(n), labels]))
        if best is None or inertia < best[2]:
            best = (labels.copy(), c.copy(), inertia)
    return best


# ---------------------------------------------------------------- MGSK-means (sort3d_depth)


def _random_argmax(s: np.ndarray, rng) -> np.ndarray:
    top = s >= s.max(axis=1, keepdims=True)
    if rng is None:
        return np.argmax(top, axis=1)
    return np.argmax(top * (1.0 + rng.random(s.shape)), axis=1)


def min_size_assign(score, min_size: int, rng: np.random.Generator, strata=None) -> np.ndarray:
    """Assignment with a guaranteed minimum group size (SORT3D_DEPTH's MGSK-means rule).

    Rule: the guaranteed quota per group is ``m = min(min_size, floor(0.95 n / k))``
    (sort3d_depth caps the guaranteed fraction at 95 %). In ``m`` rounds, the groups,
    in a fresh random order each round, each take their best-scoring member not yet
    taken; then every member left goes to its best-scoring group (ties at random). So
    every group ends with at least ``m`` members.

    With ``strata`` (sort3d_depth's orientation groups) the rule runs inside each
    stratum with quota ``floor(m n_s / n)``, plus one for the strata with the largest
    remainders until the quotas add up to ``m`` (where a stratum has room), so the
    overall minimum is still ``m``.

    Args:
        score: ``(n, k)`` scores, larger = better.
        min_size: wanted minimum group size; ``min_size * k`` must not exceed ``n``.
        rng: order of the groups in each round and tie-breaks.
        strata: optional ``(n,)`` integer stratum of each member.

    Returns:
        int64 labels ``(n,)``.
    """
    s = _scores(score)
    n, k = s.shape
    min_size = int(min_size)
    if min_size < 0 or min_size * k > n:
        raise UsageError(f"min_size {min_size} with {k} groups needs at least {min_size * k} "
                         f"members; there are {n}")
    m = min(min_size, int(np.floor(0.95 * n / k)))
    if strata is None:
        groups = [np.arange(n)]
        quotas = [m]
    else:
        st = np.asarray(strata)
        if st.shape != (n,):
            raise UsageError(f"strata: expected one label per member ({n}), got shape {st.shape}")
        _, inv = np.unique(st, return_inverse=True)
        groups = [np.flatnonzero(inv == g) for g in range(inv.max() + 1)]
        sizes = np.array([len(g) for g in groups])
        exact = m * sizes / n
        quotas = np.floor(exact).astype(np.int64)
        for g in np.argsort(-(exact - quotas), kind="stable"):
            if quotas.sum() >= m:
                break
            if (quotas[g] + 1) * k <= sizes[g]:
                quotas[g] += 1
        quotas = list(quotas)
    labels = np.full(n, -1, dtype=np.int64)
    for members, mq in zip(groups, quotas):
        sub = s[members]
        taken = np.zeros(len(members), dtype=bool)
        if mq > 0:
            tie = rng.random(sub.shape)
            order = np.lexsort((tie.T, -sub.T))               # (k, n_s): members best first
            ptr = np.zeros(k, dtype=np.int64)
            for _ in range(int(mq)):
                for g in rng.permutation(k):
                    row = order[g]
                    p = ptr[g]
                    while taken[row[p]]:
                        p += 1
                    taken[row[p]] = True
                    labels[members[row[p]]] = g
                    ptr[g] = p + 1
        rest = np.flatnonzero(~taken)
        if len(rest):
            labels[members[rest]] = _random_argmax(sub[rest], rng)
    return labels


def mgsk_means(X, k: int, min_size: int, rng: np.random.Generator, *, init="kmeans++",
               strata=None, max_iter: int = 25, stop_change: float = 0.0):
    """K-means with a minimum group size (sort3d_depth's MGSK-means on feature vectors).

    Each iteration takes the group means as centres, scores every member by minus its
    squared distance to each centre and reassigns with :func:`min_size_assign`. The
    first centres are k-means++ seeds (``init="kmeans++"``); ``init="equal"`` starts,
    as sort3d_depth does, from a random equal-size partition (shuffle and cut), which
    can end in a poorer local optimum (e.g. a large cluster split in two); ``init``
    may also be initial labels. Stops when the fraction of members that changed group is
    at most ``stop_change`` (sort3d_depth uses 0.10) or after ``max_iter`` iterations,
    and returns the last assignment, as sort3d_depth does.

    Args:
        X: data ``(n, d)``.
        k: number of groups.
        min_size: minimum group size (see :func:`min_size_assign` for the 95 % cap).
        rng: initial partition, round order, ties.
        init: ``"kmeans++"``, ``"equal"`` or initial labels ``(n,)`` in ``0 .. k-1``.
        strata: optional strata for :func:`min_size_assign`.
        max_iter: iteration limit.
        stop_change: convergence threshold on the fraction of changed labels.

    Returns:
        ``(labels, centres)``.
    """
    x = _points(X)
    n = len(x)
    k = int(k)
    if not 1 <= k <= n:
        raise UsageError(f"mgsk_means: k must be 1 .. {n}, got {k}")
    x2 = np.sum(x * x, axis=1)
    if isinstance(init, str) and init == "kmeans++":
        labels = np.full(n, -1, dtype=np.int64)
        c = _kpp(x, x2, k, rng)
    elif isinstance(init, str) and init == "equal":
        labels = np.empty(n, dtype=np.int64)
        labels[rng.permutation(n)] = np.arange(n) * k // n
        c = _centres(x, labels, k)
    elif isinstance(init, str):
        raise UsageError(f"mgsk_means: init {init!r}; use 'kmeans++', 'equal' or labels")
    else:
        labels = np.asarray(init, dtype=np.int64)
        if labels.shape != (n,) or labels.min() < 0 or labels.max() >= k:
            raise UsageError(f"mgsk_means: init must hold {n} labels in 0 .. {k - 1}")
        c = _centres(x, labels, k)
    for _ in range(int(max_iter)):
        new = min_size_assign(-_sqdist(x, c, x2), min_size, rng, strata)
        change = float(np.mean(new != labels))
        labels = new
        c = _centres(x, labels, k, c)
        if change <= stop_change:
            break
    return labels, c


# ---------------------------------------------------------------- partition comparison


def contingency(labels_a, labels_b):
    """Overlap table of two labellings: ``(table, groups_a, groups_b)``.

    ``table[i, j]`` counts members with label ``groups_a[i]`` in ``a`` and
    ``groups_b[j]`` in ``b``; negative labels (unassigned) are left out.
    """
    a = np.asarray(labels_a)
    b = np.asarray(labels_b)
    if a.ndim != 1 or a.shape != b.shape:
        raise UsageError(f"labellings must be 1-D and of equal length, got {a.shape} and {b.shape}")
    if not (np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer)):
        raise UsageError("labellings must hold integer labels")
    ok = (a >= 0) & (b >= 0)
    ga = np.unique(a[a >= 0])
    gb = np.unique(b[b >= 0])
    if len(ga) * len(gb) > _MAX_CELLS:
        raise UsageError(f"too many groups to compare ({len(ga)} x {len(gb)})")
    ia = np.searchsorted(ga, a[ok])
    ib = np.searchsorted(gb, b[ok])
    table = np.bincount(ia * len(gb) + ib, minlength=len(ga) * len(gb)).reshape(len(ga), len(gb))
    return table, ga, gb


def match_partitions(labels_a, labels_b):
    """Hungarian matching of the groups of two partitions, maximising the total overlap.

    Equivalent to sort3d_depth's ``Munkres`` on ``max - overlap`` (ties may be broken
    differently). With different numbers of groups, ``min(k_a, k_b)`` pairs are made.

    Returns:
        ``(pairs, overlaps)``: int64 ``(m, 2)`` of (label in a, label in b), ordered by
        the label in a, and int64 ``(m,)`` member counts of each matched intersection.
    """
    table, ga, gb = contingency(labels_a, labels_b)
    if table.size == 0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
    rows, cols = linear_sum_assignment(table, maximize=True)
    pairs = np.stack([ga[rows], gb[cols]], axis=1).astype(np.int64)
    return pairs, table[rows, cols].astype(np.int64)


@dataclass(frozen=True)
class Agreement:
    """Two-way comparison of partitions (see :func:`partition_agreement`).

    Attributes:
        pairs: ``(m, 2)`` matched labels (a, b).
        overlaps: ``(m,)`` members in each matched intersection.
        sizes_a, sizes_b: ``(m,)`` sizes of the matched groups.
        jaccard: ``(m,)`` per-group reproducibility ``|A ∩ B| / |A ∪ B|`` (sort3d_depth
            reports it in percent).
        expected: ``(m,)`` overlap expected by chance, ``n_k² / N`` with
            ``n_k = (|A| + |B|) / 2`` (sort3d_depth's within-box rule).
        reproducible: ``(m,)`` bool, overlap larger than ``expected``.
        fraction: members in matched intersections over all ``N`` members.
    """

    pairs: np.ndarray
    overlaps: np.ndarray
    sizes_a: np.ndarray
    sizes_b: np.ndarray
    jaccard: np.ndarray
    expected: np.ndarray
    reproducible: np.ndarray
    fraction: float


def partition_agreement(labels_a, labels_b) -> Agreement:
    """Per-group reproducibility and the reproducible fraction of two partitions.

    The groups are matched with :func:`match_partitions`; ``N`` is the number of
    members (the length of the labellings, unassigned ones included).
    """
    table, ga, gb = contingency(labels_a, labels_b)
    N = len(np.asarray(labels_a))
    pairs, ov = match_partitions(labels_a, labels_b)
    sa = np.bincount(np.searchsorted(ga, np.asarray(labels_a)[np.asarray(labels_a) >= 0]),
                     minlength=len(ga))
    sb = np.bincount(np.searchsorted(gb, np.asarray(labels_b)[np.asarray(labels_b) >= 0]),
                     minlength=len(gb))
    size_a = sa[np.searchsorted(ga, pairs[:, 0])] if len(pairs) else np.zeros(0, np.int64)
    size_b = sb[np.searchsorted(gb, pairs[:, 1])] if len(pairs) else np.zeros(0, np.int64)
    union = size_a + size_b - ov
    jac = np.where(union > 0, ov / np.maximum(union, 1), 0.0)
    nk = 0.5 * (size_a + size_b)
    expected = nk * nk / max(N, 1)
    return Agreement(pairs, ov, size_a.astype(np.int64), size_b.astype(np.int64), jac, expected,
                     ov > expected, float(ov.sum()) / max(N, 1))


def random_baseline(sizes, n: int | None, rng: np.random.Generator, trials: int = 1000):
    """Jaccard reproducibility of groups between two random partitions (sort3d_depth).

    Both partitions split a set of ``n`` elements into groups with the given sizes,
    scaled to add up to ``n`` (largest remainders, each at least 1; sort3d_depth uses
    n = 100, or 3k for k >= 50); they are matched with :func:`match_partitions` and
    each group of the first records the Jaccard index with its match. sort3d_depth
    keeps a real group when its reproducibility exceeds ``mean + 2 std``.

    Args:
        sizes: ``(k,)`` group sizes (positive).
        n: elements of the simulated set; None uses ``sum(sizes)``.
        rng: the random partitions.
        trials: number of simulated pairs.

    Returns:
        ``(mean, std)``: float64 ``(k,)`` each, in the order of ``sizes``.
    """
    sz = np.asarray(sizes, dtype=np.float64)
    if sz.ndim != 1 or len(sz) < 1 or np.any(sz <= 0) or not np.all(np.isfinite(sz)):
        raise UsageError(f"random_baseline: sizes must be positive numbers, got {sizes!r}")
    k = len(sz)
    n = int(round(sz.sum())) if n is None else int(n)
    if n < k:
        raise UsageError(f"random_baseline: n={n} is smaller than the number of groups {k}")
    trials = int(trials)
    if not 1 <= trials <= 10_000_000 or trials * n > _MAX_CELLS:
        raise UsageError(f"random_baseline: trials={trials} out of range")
    exact = 1.0 + sz / sz.sum() * (n - k)
    cnt = np.floor(exact).astype(np.int64)
    for g in np.argsort(-(exact - cnt), kind="stable")[: n - cnt.sum()]:
        cnt[g] += 1
    template = np.repeat(np.arange(k), cnt)
    A = rng.permuted(np.tile(template, (trials, 1)), axis=1)
    B = rng.permuted(np.tile(template, (trials, 1)), axis=1)
    idx = (np.arange(trials)[:, None] * k + A) * k + B
    tables = np.bincount(idx.ravel(), minlength=trials * k * k).reshape(trials, k, k)
    jac = np.empty((trials, k))
    for t in range(trials):
        rows, cols = linear_sum_assignment(tables[t], maximize=True)
        ov = tables[t][rows, cols]
        jac[t, rows] = ov / (cnt[rows] + cnt[cols] - ov)
    return jac.mean(axis=0), jac.std(axis=0)
