"""Clustering kernels: EQ-K-means, K-means, MGSK-means, partition matching, baselines."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import hypergeom

from emsh.errors import UsageError
from emsh.kernels import cluster as C


def planted(rng, sizes, d=5, spread=0.3, sep=10.0):
    """Gaussian clusters of the given sizes around well separated centres."""
    centres = rng.normal(0.0, sep, size=(len(sizes), d))
    truth = np.repeat(np.arange(len(sizes)), sizes)
    X = centres[truth] + rng.normal(0.0, spread, size=(len(truth), d))
    perm = rng.permutation(len(truth))
    return X[perm], truth[perm]


def total(score, labels):
    return float(score[np.arange(len(labels)), labels].sum())


def sizes_ok(labels, n, k):
    c = np.bincount(labels, minlength=k)
    return set(c.tolist()) <= {n // k, n // k + 1} and int((c == n // k + 1).sum()) == n % k


# ---------------------------------------------------------------- EQ-K-means


def test_eq_exact_is_optimal_by_brute_force(rng):
    n, k = 7, 3                                # sizes 3, 2, 2 in some order
    for _ in range(5):
        s = rng.random((n, k))
        best = -np.inf
        for lab in itertools.product(range(k), repeat=n):
            lab = np.array(lab)
            if sizes_ok(lab, n, k):
                best = max(best, total(s, lab))
        got = C.eq_kmeans_assign(s, method="exact")
        assert sizes_ok(got, n, k)
        assert total(s, got) == pytest.approx(best, abs=1e-12)


def test_eq_exact_and_greedy_agree_on_easy_problem(rng):
    n, k = 90, 6
    truth = np.repeat(np.arange(k), n // k)[rng.permutation(n)]
    s = rng.normal(0.0, 0.05, size=(n, k))
    s[np.arange(n), truth] += 1.0
    exact = C.eq_kmeans_assign(s, method="exact")
    greedy = C.eq_kmeans_assign(s, rng, method="greedy")
    np.testing.assert_array_equal(exact, truth)
    np.testing.assert_array_equal(greedy, truth)


def test_eq_sizes_and_greedy_margin_on_random_problems(rng):
    gaps = []
    for _ in range(25):
        n, k = int(rng.integers(60, 150)), int(rng.integers(2, 9))
        s = rng.random((n, k))
        exact = C.eq_kmeans_assign(s, method="exact")
        greedy = C.eq_kmeans_assign(s, rng, method="greedy")
        assert sizes_ok(exact, n, k) and sizes_ok(greedy, n, k)
        te, tg = total(s, exact), total(s, greedy)
        assert tg <= te + 1e-9
        gaps.append((te - tg) / te)
    # measured over 400 such problems: max 4.4 %, mean 1.4 % below the optimum
    assert max(gaps) < 0.06
    assert np.mean(gaps) < 0.025


def test_eq_greedy_follows_the_peak_list(rng):
    # Hand case: member 0 has the top score for group 0; group 0 holds 1 member
    # (n=4, k=3 -> sizes 2, 1, 1); the walk fills as the sorted list dictates.
    s = np.array([[0.9, 0.1, 0.0],
                  [0.8, 0.7, 0.0],
                  [0.85, 0.2, 0.3],
                  [0.6, 0.5, 0.4]])
    lab = C.eq_kmeans_assign(s, method="greedy")
    # sorted: (0,g0)=.9 -> 0:g0; (2,g0)=.85 -> 2:g0 (g0 now 2 = q+1, 1 big group = r: closed)
    # (1,g0) skip; (1,g1)=.7 -> 1:g1 (g1 at q=1, closed as big == r); (3,..) -> g2
    np.testing.assert_array_equal(lab, [0, 1, 0, 2])


def test_eq_sphire_remainder_puts_the_extra_members_in_one_group(rng):
    s = rng.random((103, 10))
    lab = C.eq_kmeans_assign(s, rng, method="greedy", sphire_remainder=True)
    c = np.sort(np.bincount(lab, minlength=10))
    np.testing.assert_array_equal(c, [10] * 9 + [13])


def test_eq_large_problem_uses_greedy_and_balances(rng):
    s = rng.normal(size=(3001, 30))
    lab = C.eq_kmeans_assign(s, rng)
    assert sizes_ok(lab, 3001, 30)


def test_eq_rejects_bad_input():
    with pytest.raises(UsageError):
        C.eq_kmeans_assign(np.ones((3, 5)))
    with pytest.raises(UsageError):
        C.eq_kmeans_assign(np.ones((5, 2)), method="fast")
    with pytest.raises(UsageError):
        C.eq_kmeans_assign(np.array([[1.0, np.nan], [0.0, 1.0]]))


# ---------------------------------------------------------------- K-means, MGSK-means


def test_kmeans_recovers_planted_clusters_exactly(rng):
    X, truth = planted(rng, [40, 25, 60, 35])
    labels, centres, inertia = C.kmeans(X, 4, rng, n_init=5)
    agr = C.partition_agreement(labels, truth)
    assert agr.fraction == 1.0
    assert centres.shape == (4, 5)
    assert inertia == pytest.approx(np.sum((X - centres[labels]) ** 2))


def test_kmeans_at_moderate_noise_beats_the_true_labelling(rng):
    X, truth = planted(rng, [50, 50, 50], spread=2.0, sep=4.0)
    labels, centres, inertia = C.kmeans(X, 3, rng, n_init=10)
    true_centres = np.stack([X[truth == g].mean(0) for g in range(3)])
    assert inertia <= np.sum((X - true_centres[truth]) ** 2) + 1e-9
    table, _, _ = C.contingency(labels, truth)
    purity = table.max(axis=1).sum() / len(truth)
    assert purity > 0.9


def test_min_size_assign_guarantees_the_minimum(rng):
    n, k = 200, 4
    s = rng.normal(size=(n, k))
    s[:, 0] += 3.0                              # everyone prefers group 0
    lab = C.min_size_assign(s, 40, rng)
    c = np.bincount(lab, minlength=k)
    assert c.min() >= 40 and c.sum() == n
    assert c[0] == n - 3 * 40                   # the rest went to the favourite
    # with strata the overall minimum still holds
    strata = rng.integers(0, 5, size=n)
    lab = C.min_size_assign(s, 40, rng, strata=strata)
    assert np.bincount(lab, minlength=k).min() >= 40


def test_min_size_assign_round_robin_takes_best_members(rng):
    # 2 groups, quota 2 each: group 1 must get its two best-scoring members
    s = np.array([[5.0, 0.0], [4.0, 1.0], [3.0, 0.9], [2.0, 0.5], [1.0, 0.2], [0.5, 0.1]])
    lab = C.min_size_assign(s, 2, rng)
    assert np.bincount(lab, minlength=2).min() >= 2
    # group 1 takes its best (member 1) in round 1, then member 2 unless group 0 went
    # first in round 2 and took it; everyone else prefers group 0
    ones = set(np.flatnonzero(lab == 1).tolist())
    assert ones in ({1, 2}, {1, 3})


def test_mgsk_means_respects_min_size_on_unbalanced_clusters(rng):
    X, truth = planted(rng, [150, 30, 20])
    for init in ("kmeans++", "equal"):
        labels, centres = C.mgsk_means(X, 3, 40, rng, init=init)
        c = np.bincount(labels, minlength=3)
        assert c.min() >= 40 and c.sum() == 200
    labels, centres = C.mgsk_means(X, 3, 40, rng)
    # no tight cluster is torn apart except the big one, which has members to spare
    table, _, _ = C.contingency(labels, truth)
    np.testing.assert_array_equal(table.max(axis=0)[1:], [30, 20])
    # every group is pure or made of whole small clusters: no group mixes big + small
    # unless the min-size rule forced it (at most 40 - 20 = 20 big members per group)
    for g in range(3):
        if table[g, 1:].sum():
            assert table[g, 0] <= 20


def test_mgsk_means_recovers_balanced_clusters(rng):
    X, truth = planted(rng, [60, 70, 50])
    labels, _ = C.mgsk_means(X, 3, 20, rng)
    assert C.partition_agreement(labels, truth).fraction == 1.0


def test_min_size_rejects_impossible_request(rng):
    with pytest.raises(UsageError):
        C.min_size_assign(np.zeros((10, 3)), 4, rng)


# ---------------------------------------------------------------- matching and agreement


def test_match_recovers_permuted_labelling(rng):
    a = rng.integers(0, 6, size=300)
    perm = np.array([3, 5, 0, 1, 4, 2])
    b = perm[a] + 10                              # relabelled, different label values
    pairs, overlaps = C.match_partitions(a, b)
    np.testing.assert_array_equal(pairs[:, 0], np.arange(6))
    np.testing.assert_array_equal(pairs[:, 1], perm + 10)
    np.testing.assert_array_equal(overlaps, np.bincount(a, minlength=6))


def test_match_different_group_counts_and_unassigned():
    a = np.array([0, 0, 0, 1, 1, 2, 2, -1])
    b = np.array([7, 7, 5, 5, 5, -1, 7, 5])
    pairs, ov = C.match_partitions(a, b)
    # table rows a=0,1,2 cols b=5,7: [[1,2],[2,0],[0,1]] -> best: (0,7)=2 + (1,5)=2
    assert {tuple(p) for p in pairs.tolist()} == {(0, 7), (1, 5)}
    np.testing.assert_array_equal(ov, [2, 2])


def test_partition_agreement_values():
    a = np.array([0] * 6 + [1] * 4)
    b = np.array([0] * 5 + [1] * 5)
    agr = C.partition_agreement(a, b)
    np.testing.assert_array_equal(agr.overlaps, [5, 4])
    np.testing.assert_allclose(agr.jaccard, [5 / 6, 4 / 5])
    np.testing.assert_allclose(agr.expected, [5.5 ** 2 / 10, 4.5 ** 2 / 10])
    assert agr.reproducible.all()
    assert agr.fraction == pytest.approx(0.9)
    same = C.partition_agreement(a, a)
    assert same.fraction == 1.0 and np.all(same.jaccard == 1.0)


def test_random_baseline_matches_hypergeometric_expectation(rng):
    # two random halves of 100: overlap a ~ hypergeom(100, 50, 50), matched o = max(a, 50-a)
    mean, std = C.random_baseline([50, 50], 100, rng, trials=4000)
    a = np.arange(0, 51)
    p = hypergeom(100, 50, 50).pmf(a)
    o = np.maximum(a, 50 - a)
    jac = o / (100 - o)
    m_exp = float(np.sum(p * jac))
    s_exp = float(np.sqrt(np.sum(p * (jac - m_exp) ** 2)))
    np.testing.assert_allclose(mean, m_exp, atol=0.005)
    np.testing.assert_allclose(std, s_exp, rtol=0.1)


def test_random_baseline_scales_sizes_and_is_low_for_many_groups(rng):
    mean, std = C.random_baseline([2000, 1000, 1000, 500], 100, rng, trials=500)
    assert mean.shape == (4,) and np.all(std > 0)
    assert np.all(mean < 0.5) and mean[0] > mean[3]
    with pytest.raises(UsageError):
        C.random_baseline([10, 0], 100, rng)
