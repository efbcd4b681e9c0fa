"""Transforms against the real SPIDER program (golden cases 05, 06, 07) and identities."""

from __future__ import annotations

import numpy as np
import pytest

import emsh.io
from emsh.errors import UsageError
from emsh.io.docfile import read_doc
from emsh.kernels import transform as T


def t2(ours, spider) -> float:
    """Max abs difference relative to max|spider| (MANIFEST T1/T2/T3 measure)."""
    return float(np.abs(ours - spider).max() / np.abs(spider).max())


def blob(n, cx, cy, sx, sy):
    y, x = np.mgrid[:n, :n]
    return np.exp(-((x - cx) ** 2 / (2 * sx**2) + (y - cy) ** 2 / (2 * sy**2))).astype(np.float32)


# ------------------------------------------------------------------ RT SQ (07-rtsq)

RTSQ_SINGLE = [
    ("rt_030", 30.0, (0.0, 0.0), 1.0),
    ("rt_090", 90.0, (0.0, 0.0), 1.0),
    ("rt_m45_sh", -45.0, (2.5, -1.75), 1.0),
    ("rt_1375_s08", 137.5, (-3.25, 4.5), 0.8),
    ("rt_s125", 0.0, (0.4, 0.6), 1.25),
    ("rt_200_big", 200.0, (-20.3, 11.7), 1.0),
]


@pytest.mark.parametrize("name,angle,shift,scale", RTSQ_SINGLE)
def test_rtsq_single_images_match_spider_t2(golden, name, angle, shift, scale):
    img = emsh.io.read(golden / "07-rtsq" / "in_img.dat")
    spider = emsh.io.read(golden / "07-rtsq" / f"{name}.dat")
    ours = T.rotate_shift_quadratic(img, angle, shift, scale)
    assert ours.dtype == np.float32 and ours.shape == spider.shape
    assert t2(ours, spider) <= 1e-5          # T2: same interpolation scheme


def test_rtsq_090_is_a_pixel_permutation(golden):
    img = emsh.io.read(golden / "07-rtsq" / "in_img.dat")
    ours = T.rotate_shift_quadratic(img, 90.0)
    np.testing.assert_allclose(ours, np.roll(np.rot90(img, 1), 1, axis=0), rtol=0, atol=1e-11)


def test_rtsq_whole_stack_and_template_match_spider(golden):
    d = golden / "07-rtsq"
    stk = emsh.io.read(d / "stk.dat@")
    doc = read_doc(d / "rt_doc.dat")
    assert doc.keys.tolist() == [1, 2, 3] and np.all(doc.nregs == 4)
    p = doc.values                                      # angle, scale, sx, sy per key
    whole = T.rotate_shift_quadratic(stk, p[:, 0], p[:, 2:4], p[:, 1])
    tmpl = T.rotate_shift_quadratic(stk, p[:, 0], p[:, 2:4])   # scale register 0 -> 1
    for i in range(3):
        assert t2(whole[i], emsh.io.read(d / f"rt_stk.dat@{i + 1}")) <= 1e-5
        assert t2(tmpl[i], emsh.io.read(d / f"rt_tmpl.dat@{i + 1}")) <= 1e-5


def test_rtsq_batch_equals_loop(rng):
    imgs = rng.standard_normal((5, 36, 41)).astype(np.float32)
    ang = rng.uniform(-180, 180, 5)
    sh = rng.uniform(-30, 30, (5, 2))
    sc = rng.uniform(0.5, 1.5, 5)
    batch = T.rotate_shift_quadratic(imgs, ang, sh, sc)
    for i in range(5):
        np.testing.assert_array_equal(batch[i], T.rotate_shift_quadratic(imgs[i], ang[i], sh[i], sc[i]))


def test_rtsq_integer_shift_is_roll(rng):
    img = rng.standard_normal((30, 34)).astype(np.float32)
    out = T.rotate_shift_quadratic(img, 0.0, (3, -2))
    np.testing.assert_array_equal(out, np.roll(img, (-2, 3), axis=(0, 1)))


def test_rtsq_rotate_back_recovers_smooth_interior():
    n = 64
    img = blob(n, 30, 35, 6, 5) + 0.5 * blob(n, 40, 26, 5, 4)        # smooth: band-limited
    y, x = np.mgrid[:n, :n]
    inner = (x - n // 2) ** 2 + (y - n // 2) ** 2 <= 20**2
    for angle in (37.0, 123.0):
        there = T.rotate_shift_quadratic(img, angle, (1.5, -2.0))
        back = T.rotate_shift_quadratic(T.rotate_shift_quadratic(there, 0.0, (-1.5, 2.0)), -angle)
        assert np.abs(back - img)[inner].max() < 4e-3 * img.max()      # measured 2.4e-3
        assert np.abs(there - img).max() > 0.3                         # it really moved


def test_rtsq_rejects_bad_parameters(rng):
    img = rng.standard_normal((8, 8)).astype(np.float32)
    with pytest.raises(UsageError):
        T.rotate_shift_quadratic(img, 10.0, scale=0.0)
    with pytest.raises(UsageError):
        T.rotate_shift_quadratic(np.stack([img, img]), [1.0, 2.0, 3.0])


# ------------------------------------------------------------------ SH / SH F (06-shift)


def test_sh_integer_is_exact_roll(golden):
    d = golden / "06-shift"
    img = emsh.io.read(d / "in_img.dat")
    spider = emsh.io.read(d / "sh_int.dat")
    np.testing.assert_array_equal(T.shift_integer(img, (7, -5)), spider)      # T0
    np.testing.assert_array_equal(T.shift_bilinear(img, (7, -5)), spider)
    np.testing.assert_array_equal(spider, np.roll(img, (-5, 7), axis=(0, 1)))


@pytest.mark.parametrize("name,shift", [("sh_sub", (3.3, -2.6)), ("sh_wrap", (-31.5, 20.25))])
def test_sh_subpixel_matches_spider_t2(golden, name, shift):
    d = golden / "06-shift"
    ours = T.shift_bilinear(emsh.io.read(d / "in_img.dat"), shift)
    assert t2(ours, emsh.io.read(d / f"{name}.dat")) <= 1e-5


def test_sh_volume_trilinear_matches_spider_t2(golden):
    d = golden / "06-shift"
    ours = T.shift_trilinear(emsh.io.read(d / "in_vol.dat"), (2.5, -1.25, 3.75))
    assert t2(ours, emsh.io.read(d / "sh_vol.dat")) <= 1e-5


def test_sh_whole_stack_with_doc_shifts(golden):
    d = golden / "06-shift"
    doc = read_doc(d / "shift_doc.dat")
    assert doc.keys.tolist() == [1, 2, 3] and np.all(doc.nregs == 2)
    shifts = doc.values                                 # sx, sy per key
    ours = T.shift_bilinear(emsh.io.read(d / "stk.dat@"), shifts)
    for i in range(3):
        assert t2(ours[i], emsh.io.read(d / f"sh_stk.dat@{i + 1}")) <= 1e-5


@pytest.mark.parametrize("name,src,shift", [
    ("shf_img", "in_img", (3.3, -2.6)), ("shf_vol", "in_vol", (2.5, -1.25, 3.75))])
def test_sh_f_matches_spider_t3(golden, name, src, shift):
    d = golden / "06-shift"
    ours = T.shift_fourier(emsh.io.read(d / f"{src}.dat"), shift)
    assert t2(ours, emsh.io.read(d / f"{name}.dat")) <= 2e-5                  # T3


def test_bilinear_integer_shift_equals_roll(rng):
    img = rng.standard_normal((4, 21, 26)).astype(np.float32)
    for s in [(5, -3), (-40, 60), (0, 0)]:
        np.testing.assert_array_equal(T.shift_bilinear(img, s), np.roll(img, (s[1], s[0]), axis=(1, 2)))
    vol = rng.standard_normal((9, 10, 11)).astype(np.float32)
    np.testing.assert_array_equal(T.shift_trilinear(vol, (2, -1, 4)), np.roll(vol, (4, -1, 2), axis=(0, 1, 2)))


def test_linear_shift_of_a_ramp_is_exact_inside():
    x = np.tile(np.arange(20, dtype=np.float32), (6, 1))
    out = T.shift_bilinear(x, (0.25, 0.0))
    np.testing.assert_allclose(out[:, 1:], x[:, 1:] - 0.25, atol=1e-6)


def test_fourier_shift_of_a_cosine_is_analytic():
    n = 48
    x = np.arange(n)
    img = (np.cos(2 * np.pi * 5 * x / n)[None, :] * np.cos(2 * np.pi * 3 * x / n)[:, None]).astype(np.float32)
    out = T.shift_fourier(img, (1.7, -0.4))
    ref = np.cos(2 * np.pi * 5 * (x - 1.7) / n)[None, :] * np.cos(2 * np.pi * 3 * (x + 0.4) / n)[:, None]
    np.testing.assert_allclose(out, ref, atol=2e-6)


def test_fourier_shift_round_trip(rng):
    img = rng.standard_normal((3, 45, 39)).astype(np.float32)          # odd: no Nyquist term
    s = np.array([[1.3, -2.7], [0.5, 0.25], [-11.1, 7.9]])
    back = T.shift_fourier(T.shift_fourier(img, s), -s)
    np.testing.assert_allclose(back, img, atol=2e-5)
    vol = rng.standard_normal((15, 17, 13)).astype(np.float32)
    back = T.shift_fourier(T.shift_fourier(vol, (0.3, 1.6, -2.2)), (-0.3, -1.6, 2.2))
    np.testing.assert_allclose(back, vol, atol=2e-5)


def test_shift_batch_equals_loop(rng):
    imgs = rng.standard_normal((4, 16, 18)).astype(np.float32)
    s = rng.uniform(-20, 20, (4, 2))
    lin, fou = T.shift_bilinear(imgs, s), T.shift_fourier(imgs, s)
    for i in range(4):
        np.testing.assert_array_equal(lin[i], T.shift_bilinear(imgs[i], s[i]))
        np.testing.assert_allclose(fou[i], T.shift_fourier(imgs[i], s[i]), atol=1e-6)


def test_shift_rejects_bad_vectors(rng):
    img = rng.standard_normal((8, 8)).astype(np.float32)
    with pytest.raises(UsageError):
        T.shift_bilinear(img, (1.0, 2.0, 3.0))
    with pytest.raises(UsageError):
        T.shift_integer(img, (1.5, 0))
    with pytest.raises(UsageError):
        T.shift_fourier(img, (1.0,))


# ------------------------------------------------------------------ PD / WI (05-pad-window)

PD_CASES = [  # name, numpy shape, SPIDER top-left, mode, value, pad_doc register
    ("pd_a", (64, 64), (13, 15), "A", None, 1),
    ("pd_s", (60, 64), (5, 9), "S", -1.25, 2),
    ("pd_b", (56, 56), (1, 1), "B", None, 3),
    ("pd_m", (48, 50), (11, 13), "M", None, 4),
]


@pytest.mark.parametrize("name,shape,tl,mode,value,reg", PD_CASES)
def test_pd_matches_spider(golden, name, shape, tl, mode, value, reg):
    d = golden / "05-pad-window"
    src = emsh.io.read(d / "in_img2.dat")
    spider = emsh.io.read(d / f"{name}.dat")
    ours, bg = T.pad(src, shape, tl, mode, value)
    assert ours.shape == spider.shape
    y0, x0 = tl[1] - 1, tl[0] - 1
    inside = (slice(y0, y0 + src.shape[0]), slice(x0, x0 + src.shape[1]))
    np.testing.assert_array_equal(ours[inside], spider[inside])             # T0 copied region
    assert t2(ours, spider) <= 1e-5                                         # T1 background
    v = read_doc(d / "pad_doc.dat").get(1)[reg - 1]
    assert abs(v - bg) <= 1e-5 * abs(v) + 1e-6 * np.abs(src).max()          # T5 pad value
    if mode in ("S", "M"):
        assert np.all(spider[0, :] == bg) and np.all(ours[0, :] == spider[0, :])


def test_pd_circular_matches_spider(golden):
    d = golden / "05-pad-window"
    src = emsh.io.read(d / "in_img2.dat")
    spider = emsh.io.read(d / "pd_c.dat")
    ours, bg = T.pad(src, (48, 48), (20, 25), "AC")
    assert bg == 0.0
    data = spider > 1e-6
    np.testing.assert_array_equal(ours[data], spider[data])                 # copied pixels exact
    assert t2(ours, spider) <= 1e-5
    np.testing.assert_array_equal(ours[24:48, 19:48], src[0:24, 0:29])     # main block
    np.testing.assert_array_equal(ours[0:12, 19:48], src[24:36, 0:29])     # rows wrap
    np.testing.assert_array_equal(ours[24:48, 0:11], src[0:24, 11:22])     # SPIDER's column refill
    assert np.all(ours[12:24] == 0) and np.all(ours[:, 11:19] == 0)


def test_pd_volume_average(golden):
    d = golden / "05-pad-window"
    src = emsh.io.read(d / "in_vol.dat")
    spider = emsh.io.read(d / "pd_vol.dat")
    ours, bg = T.pad(src, (48, 44, 40), (5, 7, 9), "A")
    np.testing.assert_array_equal(ours[8:40, 6:38, 4:36], src)
    assert t2(ours, spider) <= 1e-5
    v = read_doc(d / "pad_doc.dat").get(1)[4]
    assert abs(v - bg) <= 1e-5 * abs(v) + 1e-6


@pytest.mark.parametrize("name,src,shape,tl", [
    ("wi_in", "in_img2", (16, 20), (11, 9)),
    ("wi_out", "in_img2", (24, 24), (30, 25)),
    ("wi_back", "pd_s", (36, 40), (5, 9)),
    ("wi_vol", "in_vol", (12, 20, 16), (9, 7, 10)),
])
def test_wi_matches_spider_exactly(golden, name, src, shape, tl):
    d = golden / "05-pad-window"
    ours = T.window(emsh.io.read(d / f"{src}.dat"), shape, tl)
    np.testing.assert_array_equal(ours, emsh.io.read(d / f"{name}.dat"))   # T0


def test_wi_back_returns_the_original(golden):
    d = golden / "05-pad-window"
    np.testing.assert_array_equal(emsh.io.read(d / "wi_back.dat"), emsh.io.read(d / "in_img2.dat"))


def test_pad_then_window_is_identity(rng):
    imgs = rng.standard_normal((3, 17, 22)).astype(np.float32)
    for mode in ("A", "B", "M"):
        big, bg = T.pad(imgs, (40, 41), (6, 9), mode)
        assert bg.shape == (3,)
        np.testing.assert_array_equal(T.window(big, (17, 22), (6, 9)), imgs)
    vol = rng.standard_normal((7, 8, 9)).astype(np.float32)
    big, _ = T.pad(vol, (12, 13, 14), (2, 3, 4), "S", 5.0)
    np.testing.assert_array_equal(T.window(big, (7, 8, 9), (2, 3, 4)), vol)


def test_window_before_the_edge_fills_background(rng):
    img = rng.standard_normal((10, 12)).astype(np.float32)
    w = T.window(img, (6, 6), (-1, 0), background=7.0)
    np.testing.assert_array_equal(w[1:, 2:], img[:5, :4])
    assert np.all(w[0] == 7.0) and np.all(w[:, :2] == 7.0)


def test_pad_batch_equals_loop(rng):
    imgs = rng.standard_normal((3, 12, 10)).astype(np.float32)
    big, bg = T.pad(imgs, (20, 21), (3, 4), "B")
    for i in range(3):
        one, b1 = T.pad(imgs[i], (20, 21), (3, 4), "B")
        np.testing.assert_array_equal(big[i], one)
        assert bg[i] == np.float32(b1)


def test_pad_window_reject_bad_corners(rng):
    img = rng.standard_normal((10, 12)).astype(np.float32)
    with pytest.raises(UsageError):
        T.pad(img, (20, 20), (0, 1))
    with pytest.raises(UsageError):
        T.pad(img, (20, 20), (1, 1), "S")          # no value
    with pytest.raises(UsageError):
        T.window(img, (4, 4), (13, 1))            # beyond the right edge
    with pytest.raises(UsageError):
        T.pad(img, (2**20, 2**20), (1, 1), "S", 0.0)


# ------------------------------------------------------------------ resampling, 3D, mirror


@pytest.mark.parametrize("n,m", [(32, 64), (32, 45), (33, 50), (31, 48)])
def test_resample_up_then_down_is_identity_and_keeps_mean(rng, n, m):
    x = rng.standard_normal((2, n, n)).astype(np.float32) + 3.0
    up = T.resample_fourier(x, (m, m))
    assert up.shape == (2, m, m)
    np.testing.assert_allclose(up.mean(axis=(1, 2)), x.mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(T.resample_fourier(up, (n, n)), x, atol=5e-6)
    if m == 2 * n:
        np.testing.assert_allclose(up[:, ::2, ::2], x, atol=5e-6)   # interpolates through samples


def test_resample_down_of_bandlimited_is_exact():
    n = 64
    x = np.arange(n)
    img = np.cos(2 * np.pi * 3 * x / n)[None, :] * np.cos(2 * np.pi * 5 * x / n)[:, None] + 0.7
    small = T.resample_fourier(img.astype(np.float32), (32, 32))
    x2 = np.arange(32)
    ref = np.cos(2 * np.pi * 3 * x2 / 32)[None, :] * np.cos(2 * np.pi * 5 * x2 / 32)[:, None] + 0.7
    np.testing.assert_allclose(small, ref, atol=2e-6)


def test_rotate3d_moves_a_blob_where_the_matrix_says():
    from emsh.geom.euler import spider_to_matrix
    n = 32
    z, y, x = np.mgrid[:n, :n, :n].astype(np.float64)

    def ball(p):
        return np.exp(-((x - 16 - p[0]) ** 2 + (y - 16 - p[1]) ** 2 + (z - 16 - p[2]) ** 2) / 18.0)

    p = np.array([5.0, -3.0, 4.0])
    inside = (x - 16) ** 2 + (y - 16) ** 2 + (z - 16) ** 2 <= 15**2   # voxels with a source
    for angles in ((90.0, 0.0, 0.0), (30.0, 50.0, -20.0)):
        R = spider_to_matrix(*angles)
        out = T.rotate3d(ball(p).astype(np.float32), angles)
        assert np.abs(out - ball(R @ p))[inside].max() < 0.05         # trilinear error
        assert np.abs(out - ball(R.T @ p))[inside].max() > 0.5         # the sense matters
    np.testing.assert_allclose(T.rotate3d(ball(p).astype(np.float32), (90.0, 0.0, 0.0))[inside],
                               ball(spider_to_matrix(90.0, 0, 0) @ p)[inside], atol=1e-6)
    np.testing.assert_array_equal(T.rotate3d(ball(p).astype(np.float32), np.eye(3)),
                                  ball(p).astype(np.float32))


def test_mirror_x_keeps_the_centre_column(rng):
    for nx in (8, 9):
        img = rng.standard_normal((3, 5, nx)).astype(np.float32)
        m = T.mirror_x(img)
        np.testing.assert_array_equal(m[..., nx // 2], img[..., nx // 2])
        np.testing.assert_array_equal(T.mirror_x(m), img)
    even = np.arange(6, dtype=np.float32)
    np.testing.assert_array_equal(T.mirror_x(even), [0, 5, 4, 3, 2, 1])


def test_rtsq_extreme_parameters_stay_finite(rng):
    imgs = rng.standard_normal((4, 13, 18)).astype(np.float32)
    out = T.rotate_shift_quadratic(imgs, [-700.0, 45.0, 359.0, 1e3], [[500, -480], [0.5, 0.5],
                                   [-17.9, 12.1], [0, 0]], [0.05, 4.0, 0.3, 1.0])
    assert np.isfinite(out).all()
    assert np.abs(out).max() <= 3 * np.abs(imgs).max()


def test_fourier_shift_mixed_batch_keeps_whole_pixel_members_exact(rng):
    imgs = rng.standard_normal((3, 20, 22)).astype(np.float32)
    s = np.array([[2.0, -3.0], [0.5, 1.25], [0.0, 0.0]])
    out = T.shift_fourier(imgs, s)
    np.testing.assert_array_equal(out[0], np.roll(imgs[0], (-3, 2), axis=(0, 1)))
    np.testing.assert_array_equal(out[2], imgs[2])
    np.testing.assert_allclose(out[1], T.shift_fourier(imgs[1], s[1]), atol=1e-6)
    with pytest.raises(UsageError):
        T.shift_fourier(imgs, [np.nan, 0.0])
