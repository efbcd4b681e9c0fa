"""PD, WI, SH, SH F, RT SQ, MA against golden cases 05-08 with the MANIFEST tolerances:
T0 exact (WI/PD copies, integer SH), T1 1e-5 (MA), T2 1e-5 (SH, RT SQ), T3 2e-5 (SH F),
T5 for the doc values (pad values, statistics)."""

from __future__ import annotations

import numpy as np
import pytest

from emsh import io as eio
from emsh.errors import EmshError
from emsh.io import spider
from emsh.io.docfile import read_doc, write_doc


def check(mine: str, ref, tol: float):
    a, b = eio.read(mine), eio.read(str(ref))
    assert a.shape == b.shape
    err = np.abs(a - b).max() / np.abs(b).max()
    assert err <= tol, err
    return err


def t5(mine, theirs, scale):
    mine, theirs = np.asarray(mine, float), np.asarray(theirs, float)
    assert np.all(np.abs(theirs - mine) <= 1e-5 * np.abs(theirs) + 1e-6 * scale), (mine, theirs)


# ----------------------------------------------------------------------------- PD, WI

def test_pad_and_window_match_spider(golden, tmp_path, run):
    g = golden / "05-pad-window"
    img, vol = str(g / "in_img2.dat"), str(g / "in_vol.dat")
    o = lambda n: str(tmp_path / f"{n}.dat")  # noqa: E731
    bav = run("PD", src=img, dst=o("pd_a"), nx=64, ny=64, mode="A", x=13, y=15)
    bs = run("PD", src=img, dst=o("pd_s"), nx=64, ny=60, mode="S", value=-1.25, x=5, y=9)
    bb = run("PD", src=img, dst=o("pd_b"), nx=56, ny=56, mode="B", x=1, y=1)
    bm = run("PD", src=img, dst=o("pd_m"), nx=50, ny=48, mode="M", x=11, y=13)
    run("PD", src=img, dst=o("pd_c"), nx=48, ny=48, mode="AC", x=20, y=25)
    bv = run("PD", src=vol, dst=o("pd_vol"), vnx=40, vny=44, vnz=48, mode="A", x=5, y=7, z=9)
    run("WI", src=img, dst=o("wi_in"), nx=20, ny=16, x=11, y=9)
    run("WI", src=img, dst=o("wi_out"), nx=24, ny=24, x=30, y=25)
    run("WI", src=str(g / "pd_s.dat"), dst=o("wi_back"), nx=40, ny=36, x=5, y=9)
    run("WI", src=vol, dst=o("wi_vol"), vnx=16, vny=20, vnz=12, x=9, y=7, z=10)
    for n in ("pd_a", "pd_s", "pd_m", "pd_vol", "wi_in", "wi_out", "wi_back", "wi_vol"):
        assert np.array_equal(eio.read(o(n)), eio.read(str(g / f"{n}.dat"))), n
    check(o("pd_b"), g / "pd_b.dat", 1e-5)
    check(o("pd_c"), g / "pd_c.dat", 1e-5)           # SPIDER leaves ~1e-19 garbage: emsh 0
    assert np.array_equal(eio.read(o("wi_back")), eio.read(img))
    doc = read_doc(g / "pad_doc.dat")
    t5([bav, bs, bb, bm, bv], doc.get(1), scale=2.3)
    with pytest.raises(EmshError, match="positive"):
        run("PD", src=img, dst=o("bad"), nx=0, ny=10, mode="A")


def test_pad_whole_stack_in_one_batch(tmp_path, rng, run):
    stk = str(tmp_path / "s.dat")
    data = rng.standard_normal((3, 5, 4)).astype(np.float32)
    spider.write(stk, data, stack=True)
    last = run("PD", src=stk + "@", dst=str(tmp_path / "p.dat@"), nx=8, ny=9, mode="M",
               x=2, y=3)
    out = eio.read(str(tmp_path / "p.dat@"))
    assert out.shape == (3, 9, 8) and last == pytest.approx(data[2].min())
    assert np.array_equal(out[:, 2:7, 1:5], data) and np.all(out[:, 0, 0] == data.min(axis=(1, 2)))


# ----------------------------------------------------------------------------- SH, SH F

def test_shifts_match_spider(golden, tmp_path, run):
    g = golden / "06-shift"
    img, vol = str(g / "in_img.dat"), str(g / "in_vol.dat")
    o = lambda n: str(tmp_path / f"{n}.dat")  # noqa: E731
    run("SH", src=img, dst=o("sh_int"), sx=7, sy=-5)
    assert np.array_equal(eio.read(o("sh_int")), np.roll(eio.read(img), (-5, 7), axis=(0, 1)))
    assert np.array_equal(eio.read(o("sh_int")), eio.read(str(g / "sh_int.dat")))
    run("SH", src=img, dst=o("sh_sub"), sx=3.3, sy=-2.6)
    run("SH", src=img, dst=o("sh_wrap"), sx=-31.5, sy=20.25)
    run("SH", src=vol, dst=o("sh_vol"), vsx=2.5, vsy=-1.25, vsz=3.75)
    run("SH F", src=img, dst=o("shf_img"), sx=3.3, sy=-2.6)
    run("SH F", src=vol, dst=o("shf_vol"), vsx=2.5, vsy=-1.25, vsz=3.75)
    for n in ("sh_sub", "sh_wrap", "sh_vol"):
        check(o(n), g / f"{n}.dat", 1e-5)
    for n in ("shf_img", "shf_vol"):
        check(o(n), g / f"{n}.dat", 2e-5)
    run("SH", src=str(g / "stk.dat@"), dst_many=o("sh_stk") + "@",
        doc=str(g / "shift_doc.dat"), regs="1,2")
    check(o("sh_stk") + "@", str(g / "sh_stk.dat@"), 1e-5)


def test_shift_stack_default_registers_and_template(tmp_path, rng, run):
    stk = str(tmp_path / "s.dat")
    data = rng.standard_normal((3, 8, 6)).astype(np.float32)
    spider.write(stk, data, stack=True)
    doc = str(tmp_path / "d.dat")
    write_doc(doc, [1, 2, 3], [[9, 1, -2], [9, 0, 3], [9, 2, 2]])
    run("SH", src=stk + "@*", numbers="1,3", dst_many=str(tmp_path / "o.dat@*"), doc=doc,
        regs="*")                                      # * = registers 2,3
    assert np.array_equal(eio.read(str(tmp_path / "o.dat@3")), np.roll(data[2], (2, 2), (0, 1)))
    assert np.array_equal(eio.read(str(tmp_path / "o.dat@1")), np.roll(data[0], (-2, 1), (0, 1)))
    with pytest.raises(EmshError, match="register"):
        run("SH", src=stk + "@", dst_many=str(tmp_path / "x.dat@"), doc=doc, regs="1,2,3")


# ----------------------------------------------------------------------------- RT SQ

RT_SINGLE = [("rt_030", 30, 1, 0, 0), ("rt_090", 90, 1, 0, 0), ("rt_m45_sh", -45, 1, 2.5, -1.75),
             ("rt_1375_s08", 137.5, 0.8, -3.25, 4.5), ("rt_s125", 0, 1.25, 0.4, 0.6),
             ("rt_200_big", 200, 1, -20.3, 11.7)]


def test_rtsq_matches_spider(golden, tmp_path, run):
    g = golden / "07-rtsq"
    img = str(g / "in_img.dat")
    errs = []
    for name, ang, scale, sx, sy in RT_SINGLE:
        out = str(tmp_path / f"{name}.dat")
        run("RT SQ", src=img, dst=out, angle=ang, scale=scale, sx=sx, sy=sy)
        errs.append(check(out, g / f"{name}.dat", 1e-5))
    run("RT SQ", src=str(g / "stk.dat@"), dst=str(tmp_path / "rt_stk.dat@"), regs="1,2,3,4",
        doc=str(g / "rt_doc.dat"))
    errs.append(check(str(tmp_path / "rt_stk.dat@"), str(g / "rt_stk.dat@"), 1e-5))
    run("RT SQ", src=str(g / "stk.dat@*"), numbers=[1, 2, 3], regs="1,0,3,4",
        doc=str(g / "rt_doc.dat"), dst_template=str(tmp_path / "rt_tmpl.dat@*"))
    errs.append(check(str(tmp_path / "rt_tmpl.dat@"), str(g / "rt_tmpl.dat@"), 1e-5))
    assert max(errs) < 5e-7
    stats = read_doc(g / "rt_stats.dat")
    for key, name in ((1, "rt_1375_s08"), (2, "rt_200_big")):
        got = run("FS", src=str(tmp_path / f"{name}.dat"))
        t5(got, stats.get(key), scale=1.0)


def test_rtsq_default_registers_and_zero_scale(tmp_path, rng, run):
    stk = str(tmp_path / "s.dat")
    data = rng.standard_normal((2, 16, 16)).astype(np.float32)
    spider.write(stk, data, stack=True)
    doc = str(tmp_path / "d.dat")
    write_doc(doc, [1, 2], [[0, 0, 0, 0, 0, 90, 0, 0], [0, 0, 0, 0, 0, 0, 3, -2]])
    run("RT SQ", src=stk + "@", dst=str(tmp_path / "o.dat@"), regs="*", doc=doc)
    out = eio.read(str(tmp_path / "o.dat@"))
    single = str(tmp_path / "one.dat")
    run("RT SQ", src=stk + "@1", dst=single, angle=90, scale=0, sx=0, sy=0)   # scale 0 -> 1
    assert np.allclose(out[0], eio.read(single), atol=1e-6)
    assert np.allclose(out[1], np.roll(data[1], (-2, 3), axis=(0, 1)), atol=1e-5)


# ----------------------------------------------------------------------------- MA

MA_CASES = [
    ("ma_d_a", dict(outer=20, inner=0, shape="D", background="A", cx=29, cy=29)),
    ("ma_d_e", dict(outer=22.5, inner=6, shape="D", background="E", value=-0.5, cx=29, cy=29)),
    ("ma_c_p", dict(outer=15, inner=0, shape="C", background="P", cx=29, cy=29, width=6)),
    ("ma_g_c", dict(outer=12, inner=0, shape="G", background="C", cx=24, cy=33, halfwidth=4.5)),
    ("ma_t_m", dict(outer=10, inner=0, shape="T", background="M", cx=29, cy=29)),
]


def test_masks_match_spider(golden, tmp_path, run):
    g = golden / "08-mask"
    doc = read_doc(g / "mask_doc.dat")
    for key, (name, answers) in enumerate(MA_CASES, 1):
        out = str(tmp_path / f"{name}.dat")
        run("MA", src=str(g / "in_img.dat"), dst=out, **answers)
        check(out, g / f"{name}.dat", 1e-5)
        t5(run("FS", src=out), doc.get(key), scale=1.5)
    out = str(tmp_path / "ma_vol.dat")
    run("MA", src=str(g / "in_vol.dat"), dst=out, outer=13, inner=0, shape="C",
        background="E", value=0.0, vcx=19, vcy=19, vcz=19, width=5)
    check(out, g / "ma_vol.dat", 1e-5)
    t5(run("FS", src=out), doc.get(6), scale=3.0)


def test_mask_default_centre_is_image_centre(tmp_path, run):
    src = str(tmp_path / "ones.dat")
    spider.write(src, np.ones((9, 10), np.float32))
    run("MA", src=src, dst=str(tmp_path / "m.dat"), outer=1, inner=0, shape="D",
        background="E", value=0.0)
    m = eio.read(str(tmp_path / "m.dat"))
    assert m.sum() == 5 and m[4, 5] == 1 and m[3, 5] == 1 and m[4, 4] == 1
