"""MA against the real SPIDER program (golden case 08) and the soft masks."""

from __future__ import annotations

import numpy as np
import pytest

import emsh.io
from emsh.errors import UsageError
from emsh.io.docfile import read_doc
from emsh.kernels.masks import filament_mask, ma_mask, soft_circle, soft_sphere
from emsh.kernels.stats import fs_stats


# SPIDER's answers (1-based centres) from 08-mask/proc.spi; emsh centres are 0-based.
MA_CASES = [  # key, output, input, radii, kind, background, value, centre, falloff
    (1, "ma_d_a", "in_img", (20, 0), "D", "A", None, (29, 29), None),
    (2, "ma_d_e", "in_img", (22.5, 6), "D", "E", -0.5, (29, 29), None),
    (3, "ma_c_p", "in_img", (15, 0), "C", "P", None, (29, 29), 6.0),
    (4, "ma_g_c", "in_img", (12, 0), "G", "C", None, (24, 33), 4.5),
    (5, "ma_t_m", "in_img", (10, 0), "T", "M", None, (29, 29), None),
    (6, "ma_vol", "in_vol", (13, 0), "C", "E", 0.0, (19, 19, 19), 5.0),
]


@pytest.mark.parametrize("key,out,src,radii,kind,bg,value,centre,falloff", MA_CASES)
def test_ma_matches_spider(golden, key, out, src, radii, kind, bg, value, centre, falloff):
    d = golden / "08-mask"
    x = emsh.io.read(d / f"{src}.dat")
    spider = emsh.io.read(d / f"{out}.dat")
    ours = ma_mask(x, radii, kind, bg, value=value, centre=tuple(c - 1 for c in centre),
                   falloff=falloff)
    assert ours.shape == spider.shape and ours.dtype == np.float32
    assert np.abs(ours - spider).max() <= 1e-5 * np.abs(spider).max()          # T1
    stats = read_doc(d / "mask_doc.dat").get(key)
    assert stats.size == 4
    scale = float(np.abs(spider).max())
    for v, w in zip(stats, fs_stats(ours)):                                  # T5
        assert abs(v - w) <= 1e-5 * abs(v) + 1e-6 * scale


def test_ma_default_centre_is_n_over_2(golden):
    x = emsh.io.read(golden / "08-mask" / "in_img.dat")
    np.testing.assert_array_equal(ma_mask(x, (20, 0), "D", "A"),
                                  ma_mask(x, (20, 0), "D", "A", centre=(28, 28)))


def test_ma_batch_equals_loop(rng):
    imgs = rng.standard_normal((3, 24, 26)).astype(np.float32)
    for kind, bg, fall in (("D", "C", None), ("C", "P", 3.0), ("G", "A", 2.0), ("T", "M", None)):
        radii = (8, 3) if kind != "T" else (8, 0)
        batch = ma_mask(imgs, radii, kind, bg, falloff=fall, ndim=2)
        for i in range(3):
            np.testing.assert_array_equal(batch[i], ma_mask(imgs[i], radii, kind, bg, falloff=fall))


def test_ma_disk_semantics(rng):
    img = rng.standard_normal((21, 21)).astype(np.float32) + 5
    out = ma_mask(img, (6, 2), "D", "E", value=-1.0)
    y, x = np.mgrid[:21, :21]
    r2 = (x - 10) ** 2 + (y - 10) ** 2
    keep = (r2 <= 36) & (r2 >= 4)
    np.testing.assert_array_equal(out[keep], img[keep])
    assert np.all(out[~keep] == -1.0)
    inner_only = ma_mask(img, (0, 3), "D", "E", value=0.0)       # outer 0: no outer mask
    assert np.all(inner_only[r2 < 9] == 0) and np.array_equal(inner_only[r2 >= 9], img[r2 >= 9])


def test_ma_rejects_bad_answers(rng):
    img = rng.standard_normal((16, 16)).astype(np.float32)
    with pytest.raises(UsageError):
        ma_mask(img, (3, 5))                       # inner > outer
    with pytest.raises(UsageError):
        ma_mask(img, (5, 2), "T")                  # true Gaussian with inner radius
    with pytest.raises(UsageError):
        ma_mask(img, (5, 0), "C")                  # no falloff
    with pytest.raises(UsageError):
        ma_mask(img, (2, 0), centre=(40, 40))      # wholly outside


def test_soft_circle_and_sphere_profiles():
    m = soft_circle(33, 8.0, 4.0)
    assert m.shape == (33, 33) and m.dtype == np.float32
    assert m[16, 16] == 1.0 and m[16, 16 + 8] == 1.0
    assert abs(m[16, 16 + 10] - 0.5) < 1e-6          # half way down the edge
    assert m[16, 16 + 12] == 0.0 and m[0, 0] == 0.0
    s = soft_sphere(24, 5.0, 2.0)
    assert s.shape == (24, 24, 24)
    np.testing.assert_allclose(s[12, 12], soft_circle(24, 5.0, 2.0)[12], atol=1e-7)
    hard = soft_circle((10, 12), 3.0, 0.0)
    assert set(np.unique(hard)) == {0.0, 1.0} and hard[5, 6] == 1.0 and hard[5, 10] == 0.0


def test_filament_mask_orientation_and_edges():
    n = 40
    m0 = filament_mask((n, n), width=8, angle=0.0, edge=4.0)
    assert np.all(m0[20 - 4:20 + 5, :] == 1.0)       # flat band of rows around the centre
    assert np.all(m0[:20 - 8, :] == 0.0)
    np.testing.assert_allclose(filament_mask((n, n), 8, angle=90.0), m0.T, atol=1e-6)
    m45 = filament_mask((n, n), 4, angle=45.0, edge=0.0)
    assert m45[20 - 10, 20 + 10] == 1.0 and m45[20 + 10, 20 + 10] == 0.0   # CCW as displayed
    short = filament_mask((n, n), 8, length=10, angle=0.0, edge=2.0)
    assert short[20, 20] == 1.0 and short[20, 20 + 5] == 1.0 and short[20, 20 + 8] == 0.0
