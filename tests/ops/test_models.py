"""MO and MO 3 (model patterns) against the real SPIDER program's outputs (golden case 01,
T1: elementwise 1e-5 of max|spider|), their formulas against ground truth, and their
list prompts (sine waves, sphere centres) read by the interpreter."""

from __future__ import annotations

import numpy as np
import pytest

from emsh import io as eio
from emsh.errors import EmshError
from emsh.io import spider
from emsh.kernels import models as K
from emsh.parallel import SerialComm
from emsh.registry import Registry
from emsh.session import Session


def t1(a, b):
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()


# ----------------------------------------------------------------------------- golden 01

MO_CASES = [
    ("img_t", "MO", dict(nx=64, ny=64, pattern="T")),
    ("img_c", "MO", dict(nx=48, ny=40, pattern="C", radius=15.5)),
    ("img_g2", "MO", dict(nx=40, ny=40, pattern="G2", cx=17, cy=23, sx=6, sy=4)),
    ("img_s", "MO", dict(nx=50, ny=50, pattern="S", nwaves=2,
                         waves=["1.0,45.0,1,3", "0.5,90.0,-2,5"])),
    ("img_w", "MO", dict(nx=32, ny=36, pattern="W")),
    ("img_b", "MO", dict(nx=35, ny=33, pattern="B", background=2.5)),
    ("vol_g2", "MO 3", dict(nx=32, ny=32, nz=32, pattern="G2", cx=14, cy=17, cz=20,
                            sx=6, sy=4, sz=3)),
    ("vol_t", "MO 3", dict(nx=32, ny=32, nz=32, pattern="T")),
    ("vol_sp", "MO 3", dict(nx=36, ny=32, nz=28, pattern="SPA", density=1.5, rout=3.0,
                            rin=0.0, centres=["12,14,10", "20,18,16", "22,18,16", "0,0,0"])),
]


@pytest.mark.parametrize("name,code,answers", MO_CASES, ids=[c[0] for c in MO_CASES])
def test_model_matches_spider(golden, tmp_path, name, code, answers, run):
    out = str(tmp_path / f"{name}.dat")
    run(code, dst=out, **answers)
    ref = golden / "01-io-models" / f"{name}.dat"
    t1(eio.read(out), eio.read(ref))
    mine, theirs = spider.read_header(out), spider.read_header(ref)
    for w in ("nx", "ny", "nz", "iform", "labrec", "labbyt", "lenbyt", "irec"):
        assert mine[w] == theirs[w], w
    assert (tmp_path / f"{name}.dat").stat().st_size == ref.stat().st_size


def test_model_stack_member_by_member(golden, tmp_path, run):
    out = str(tmp_path / "stk.dat")
    run("MO", dst=out + "@1", nx=40, ny=40, pattern="G2", cx=21, cy=21, sx=5, sy=5)
    run("MO", dst=out + "@2", nx=40, ny=40, pattern="G2", cx=15, cy=25, sx=4, sy=7)
    run("MO", dst=out + "@3", nx=40, ny=40, pattern="C", radius=9.5)
    run("MO", dst=out + "@4", nx=40, ny=40, pattern="T")
    run("MO", dst=out + "@5", nx=40, ny=40, pattern="B", background=-0.75)
    ref = golden / "01-io-models" / "stk.dat"
    t1(eio.read(out + "@"), eio.read(str(ref) + "@"))
    assert spider.read_stack_headers(out)[:, 26].tolist() == [1, 2, 3, 4, 5]
    h = spider.read_header(out)
    assert (h["istack"], h["maxim"], h[25]) == (2, 5, -1.0)
    assert (tmp_path / "stk.dat").stat().st_size == ref.stat().st_size


def test_model_short_centre_takes_volume_centre_and_plain_sp_does_not_add(tmp_path, run):
    out = str(tmp_path / "v.dat")
    run("MO 3", dst=out, nx=20, ny=20, nz=20, pattern="SP", density=0.0, rout=2.0, rin=0.0,
        centres=["8,8", "9,8,11", "0,0,0", "3,3,3"])
    v = eio.read(out)
    assert v[10, 7, 7] == 2.0    # centre (8, 8, 20/2+1): 0-based (7, 7, 10); density 0 means 2
    assert v[10, 7, 8] == 2.0            # overlap of spheres 1 and 2 does not add for SP
    assert v[2, 2, 2] == 0.0             # the sphere after 0,0,0 is not drawn
    assert v.max() == 2.0


def test_model_patterns_ground_truth(tmp_path, run):
    o = lambda n: str(tmp_path / f"{n}.dat")  # noqa: E731
    run("MO", dst=o("g"), nx=64, ny=64, pattern="G", sx=4, sy=3)   # area-normalised
    g = eio.read(o("g"))
    assert g.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.unravel_index(g.argmax(), g.shape) == (32, 32)
    run("MO", dst=o("r"), nx=128, ny=128, pattern="R", gaussian=True, mean=2.0, sd=0.5)
    r = eio.read(o("r"))
    assert abs(r.mean() - 2.0) < 0.02 and abs(r.std() - 0.5) < 0.02
    run("MO", dst=o("u"), nx=64, ny=64, pattern="R", gaussian=False)
    u = eio.read(o("u"))
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.02
    run("MO 3", dst=o("s"), nx=16, ny=12, nz=8, pattern="S", nwaves=2,
        waves=["3, 1, 0, 0", "1, 0, 2, 1"])   # amplitudes scaled to add up to 2
    x = np.arange(16)[None, None, :]
    y, z = np.arange(12)[None, :, None], np.arange(8)[:, None, None]
    want = 1.5 * np.sin(2 * np.pi * x / 16) + 0.5 * np.sin(2 * np.pi * (2 * y / 12 + z / 8))
    assert np.allclose(eio.read(o("s")), want, atol=1e-6)
    run("MO 3", dst=o("w"), nx=5, ny=4, nz=3, pattern="W")   # SPIDER sums the row term
    w, scf = eio.read(o("w")), 2.0 / 12
    assert w[0, 0, 0] == pytest.approx(3 * scf) and w[1, 2, 3] == pytest.approx(scf * (2 + 6 + 4))
    run("MO 3", dst=o("b"), nx=4, ny=4, nz=4, pattern="B", value=-2.0)
    assert np.all(eio.read(o("b")) == -2.0)
    with pytest.raises(EmshError, match="RADII"):
        run("MO", dst=o("bad"), nx=8, ny=8, pattern="G2", sx=0, sy=1)


# ----------------------------------------------------------------------------- kernels

def test_kernel_patterns_ground_truth():
    x, y, z = K.coordinates((3, 4, 5))
    assert (x.shape, y.shape, z.shape) == ((1, 1, 5), (1, 4, 1), (3, 1, 1))
    assert (x.ravel()[0], y.ravel()[-1], z.ravel()[-1]) == (1.0, 4.0, 3.0)    # 1-based
    d = K.disc(11, 11, 2.0)                     # centre (6, 6): 0-based index 5
    assert d.dtype == np.float32 and d.sum() == 13 and d[5, 3] == 1 and d[5, 2] == 0
    g = K.gaussian((31, 33), (17, 16), (2.5, 3.0))          # unit integral, peak at centre
    assert g.sum() == pytest.approx(1.0, rel=1e-5) and np.unravel_index(g.argmax(), g.shape) \
        == (15, 16)
    g3 = K.gaussian((9, 9, 9), (5, 5, 5), (1, 1, 1), order=2, normalised=False)
    assert g3.max() == 1.0 and g3[4, 4, 5] == pytest.approx(np.exp(-0.5))   # d² = 1
    far = K.gaussian((1, 200), (1, 1), (1, 1), normalised=False)
    assert far[0, 14] == 0.0 and far[0, 12] > 0            # exp cut-off at d²/2 >= 87.34
    w = K.sine_waves((8, 16), [(2.0, np.pi / 2, (1, 0))])   # 2 cos(2π x/16)
    assert np.allclose(w, 2 * np.cos(2 * np.pi * np.arange(16) / 16)[None, :], atol=1e-6)
    r = K.random_pattern((64, 64), np.random.default_rng(3), gaussian=True, mean=-1, sd=2)
    assert abs(r.mean() + 1) < 0.1 and abs(r.std() - 2) < 0.1


def test_kernel_spheres_add_or_overwrite_and_hollow():
    items = [((5, 5, 5), 2.0, 0.0), ((6, 5, 5), 2.0, 0.0)]
    solid = K.spheres((9, 9, 9), items, density=1.5)
    added = K.spheres((9, 9, 9), items, density=1.5, add=True)
    assert solid.max() == 1.5 and added.max() == 3.0 and added[4, 4, 4] == 3.0
    assert np.array_equal(solid > 0, added > 0)
    shell = K.spheres((9, 9, 9), [((5, 5, 5), 3.0, 2.0)])
    assert shell[4, 4, 4] == 0 and shell[4, 4, 6] == 2.0 and shell[4, 4, 7] == 2.0
    assert K.sphere_truncated((2, 5, 5), 2.5, (9, 9, 9))
    assert not K.sphere_truncated((5, 5, 5), 2.5, (9, 9, 9))


# ----------------------------------------------------------------------------- interpreter

def test_wave_count_and_sphere_centres_end_their_lists_through_the_interpreter(tmp_path,
                                                                              monkeypatch):
    """``MO ... S`` reads as many wave lines as its count says, then the next statement;
    ``MO 3 ... SPA`` reads centres up to 0 0 0 written with blanks."""
    monkeypatch.chdir(tmp_path)
    s = Session(Registry.discover(), SerialComm(), data_ext="dat", echo=False)
    s.run_text("""
MO
waves
16,8
S
2
1,0,1,0
0.5,90,0,1
MO 3
balls
12,10,8
SPA
N
1.0
2.0,0.0
4,5,4
5,5,4
0 0 0
[after] = 1
""")
    x = np.arange(16)[None, :]
    y = np.arange(8)[:, None]
    want = np.sin(2 * np.pi * x / 16) + 0.5 * np.cos(2 * np.pi * y / 8)
    assert np.allclose(eio.read("waves.dat"), want, atol=1e-6)
    v = eio.read("balls.dat")
    assert v.shape == (8, 10, 12) and v.max() == 2.0 and v[3, 4, 3] == 2.0   # overlap adds
    assert s.top_ns["after"] == 1
