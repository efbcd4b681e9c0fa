"""FS statistics against the real SPIDER program (golden case 02), normalisation, profiles."""

from __future__ import annotations

import numpy as np
import pytest

import emsh.io
from emsh.errors import UsageError
from emsh.io.docfile import read_doc
from emsh.kernels.stats import fs_stats, normalize, radial_profile


def t5(spider: float, ours: float, scale: float) -> bool:
    """MANIFEST T5: |v - w| <= 1e-5 |v| + 1e-6 S."""
    return abs(spider - ours) <= 1e-5 * abs(spider) + 1e-6 * scale


@pytest.mark.parametrize("key,address", [
    (1, "img_t.dat"), (2, "img_g.dat"), (3, "vol_g.dat"), (4, "img_e.dat"),
    (5, "stk.dat@1"), (6, "stk.dat@2"), (7, "stk.dat@3")])
def test_fs_matches_spider_t5(golden, key, address):
    d = golden / "02-fs-stats"
    x = emsh.io.read(d / address)
    spider = read_doc(d / "stats_doc.dat").get(key)
    ours = fs_stats(x)
    assert spider.size == len(ours) == 4
    scale = float(np.abs(x).max())
    for v, w in zip(spider, ours):
        assert t5(v, w, scale), (key, spider, ours)


def test_fs_whole_stack_lists_members_and_registers_get_the_last(golden):
    d = golden / "02-fs-stats"
    stk = emsh.io.read(d / "stk.dat@")
    doc = read_doc(d / "stats_doc.dat")
    assert doc.keys.tolist() == list(range(1, 10)) and np.all(doc.nregs == 4)
    mx, mn, av, sd = fs_stats(stk, ndim=2)
    assert mx.shape == (3,)
    for i in range(3):
        for v, w in zip(doc.get(5 + i), (mx[i], mn[i], av[i], sd[i])):
            assert t5(v, w, 2.0)
    for key in (8, 9):                     # stk@ and stk@* with 1,3: the last member
        for v, w in zip(doc.get(key), (mx[-1], mn[-1], av[-1], sd[-1])):
            assert t5(v, w, 2.0)


def test_fs_sd_uses_n_minus_1(rng):
    x = rng.standard_normal((4, 7, 9)).astype(np.float32)
    mx, mn, av, sd = fs_stats(x, ndim=2)
    flat = x.reshape(4, -1).astype(np.float64)
    np.testing.assert_allclose(sd, flat.std(axis=1, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(av, flat.mean(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(mx, flat.max(axis=1))
    np.testing.assert_array_equal(mn, flat.min(axis=1))
    one = fs_stats(x[2])
    assert one == (mx[2], mn[2], av[2], sd[2])
    assert fs_stats(np.ones((1, 1)))[3] == 0.0


def test_normalize_under_mask_and_background(rng):
    imgs = (rng.standard_normal((3, 32, 32)) * [[[2.0]], [[0.5]], [[3.0]]] + 7.0).astype(np.float32)
    mask = np.zeros((32, 32), bool)
    mask[4:20, 6:30] = True
    out = normalize(imgs, mask=mask, ndim=2)
    sel = out[:, mask]
    np.testing.assert_allclose(sel.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(sel.std(axis=1), 1, rtol=1e-5)
    y, x = np.mgrid[:32, :32]
    bg = (x - 16) ** 2 + (y - 16) ** 2 > 10**2
    out = normalize(imgs, radius=10, ndim=2)
    np.testing.assert_allclose(out[:, bg].mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(out[:, bg].std(axis=1), 1, rtol=1e-5)
    for i in range(3):
        np.testing.assert_allclose(out[i], normalize(imgs[i], radius=10), rtol=1e-6)
    whole = normalize(imgs[0])
    assert abs(float(whole.mean())) < 1e-5 and abs(float(whole.std()) - 1) < 1e-5


def test_normalize_refuses_constant_or_empty(rng):
    with pytest.raises(UsageError):
        normalize(np.ones((8, 8), np.float32))
    with pytest.raises(UsageError):
        normalize(rng.standard_normal((8, 8)), mask=np.zeros((8, 8), bool))


def test_radial_profile_of_radius_is_the_shell_radius():
    n = 41
    y, x = np.mgrid[:n, :n]
    r = np.hypot(x - 20, y - 20)
    prof = radial_profile(r.astype(np.float32))
    assert prof.shape == (21,)
    assert prof[0] == 0.0
    k = np.arange(1, 21)
    assert np.all(np.abs(prof[1:] - k) <= 0.5)          # shell k holds radii in [k-0.5, k+0.5)
    ref = np.array([r[np.rint(r) == i].mean() for i in k])
    np.testing.assert_allclose(prof[1:], ref, rtol=1e-6)
    stack = np.stack([r, 2 * r, r + 1]).astype(np.float32)
    p = radial_profile(stack, ndim=2)
    np.testing.assert_allclose(p[1], 2 * prof, rtol=1e-6)
    np.testing.assert_allclose(p[2], prof + 1, rtol=1e-6)
    vol = np.ones((16, 16, 16), np.float32) * 3
    np.testing.assert_allclose(radial_profile(vol), 3.0)
