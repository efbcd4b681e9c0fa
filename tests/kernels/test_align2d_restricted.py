"""The restricted search (``allowed``) gives what the masked exhaustive search gives."""

import numpy as np

from emsh.kernels import align2d
from emsh.kernels.transform import rotate_shift_quadratic


def _data(rng, K=24, n=40, size=40):
    y, x = np.mgrid[:size, :size] - size // 2
    refs = []
    for k in range(K):
        c = rng.uniform(-8, 8, (3, 2))
        img = sum(np.exp(-((x - a) ** 2 + (y - b) ** 2) / 18.0) for a, b in c)
        refs.append(img)
    refs = np.asarray(refs, np.float32)
    truth = rng.integers(0, K, n)
    imgs = rotate_shift_quadratic(refs[truth], rng.uniform(0, 360, n), rng.uniform(-2, 2, (n, 2)))
    imgs += 0.05 * rng.standard_normal(imgs.shape).astype(np.float32)
    return refs, imgs, truth


def test_grouped_restricted_search_equals_masked_search(rng):
    refs, imgs, truth = _data(rng)
    K, n = len(refs), len(imgs)
    allowed = np.zeros((n, K), bool)
    for i, t in enumerate(truth):           # the true reference and 2-4 others
        allowed[i, t] = True
        allowed[i, rng.choice(K, rng.integers(2, 5), replace=False)] = True
    assert align2d._worth_grouping(allowed)
    kw = dict(first_ring=2, last_ring=14, shift_range=3, mirror=True, return_all_cc=True)
    fast = align2d.multiref_align(imgs, refs, allowed=allowed, **kw)
    old = align2d._worth_grouping
    try:
        align2d._worth_grouping = lambda a: False
        slow = align2d.multiref_align(imgs, refs, allowed=allowed, **kw)
    finally:
        align2d._worth_grouping = old
    assert np.array_equal(fast.ref, slow.ref) and np.array_equal(fast.mirror, slow.mirror)
    assert np.array_equal(fast.ref, truth)
    d = np.abs((fast.angle - slow.angle + 180) % 360 - 180)
    assert d.max() < 0.05 and np.abs(fast.shift - slow.shift).max() < 0.02
    assert np.allclose(fast.cc, slow.cc, atol=1e-4)
    assert np.array_equal(np.isfinite(fast.all_cc), allowed)
    assert np.allclose(fast.all_cc[allowed], slow.all_cc[allowed], atol=1e-4)
    assert np.array_equal(fast.n_searched, allowed.sum(1))


def test_bucket_sizes_cover_and_are_few():
    sizes = {align2d._bucket(n) for n in range(1, 3000)}
    assert all(align2d._bucket(n) >= n for n in range(1, 3000))
    assert len(sizes) < 40
    rows = {align2d._bucket_rows(n) for n in range(1, 5000)}
    assert all(n <= align2d._bucket_rows(n) <= max(1.125 * n, align2d._bucket(n))
               for n in range(1, 5000))
    assert len(rows) < 80 and align2d._bucket_rows(200) == 208
