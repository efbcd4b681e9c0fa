"""AR, AD, MU, SU against golden case 04 (T1 images, T5 arith_doc), and the formula
evaluator against SPIDER's documented expression rules."""

from __future__ import annotations

import numpy as np
import pytest

from emsh import io as eio
from emsh.errors import UsageError
from emsh.io import spider
from emsh.io.docfile import read_doc
from emsh.ops.arith import PixelFormula


def t1(a, b):
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()


def value(text, p1=0.0, **regs):
    return float(PixelFormula(text, lambda r: regs[r.strip("[]")])(np.array(p1)))


# ----------------------------------------------------------------------------- evaluator

@pytest.mark.parametrize("text,want", [
    ("2*(-6)+SQR(16)+INT(3.9)+ABS(-2)**2", -1.0),       # research note a.7, verified in SPIDER
    ("2**3**2", 512.0), ("-3**2", -9.0), ("INT(-7.5)", -7.0), ("(1+2)*3-4/8", 8.5),
    ("SIN(90)", 1.0), ("COS(180)", -1.0), ("TAN(45)", 1.0), ("ATA(1)", 45.0),
    ("ASI(0.5)", 30.0), ("ACO(0)", 90.0), ("LOG(1000)", 3.0), ("LON(EXP(2))", 2.0),
    ("PAD(33)", 64.0), ("PAD(64)", 64.0), ("3.4e-1*10", 3.4), (".5+P1", 2.5),
    ("p1*[k]", 6.0), ("sqrt(p1*8)", 4.0),
])
def test_formula_values(text, want):
    assert value(text, p1=2.0, k=3.0) == pytest.approx(want, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("text,why", [
    ("P1+", "expected"), ("FOO(1)", "unknown name"), ("P1*(2", r"expected '\)'"),
    ("P1 2", "unexpected"), ("P1 $ 2", "cannot read"),
])
def test_formula_errors(text, why):
    with pytest.raises(UsageError, match=why):
        value(text)


def test_formula_random_draws_one_value_per_pixel():
    f = PixelFormula("RAN(1)+RNN(0)*0", None, np.random.default_rng(1))
    out = f(np.zeros((50, 40)))
    assert out.shape == (50, 40) and np.unique(out).size == 2000 and 0 <= out.min() < out.max() < 1


# ----------------------------------------------------------------------------- golden 04

def test_ar_ad_mu_su_match_spider(golden, tmp_path, run, fake_session):
    g = golden / "04-arith"
    a, b, c = (str(g / f"in_{x}.dat") for x in "abc")
    s = fake_session(k=0.25, off=-1.5)
    out = lambda n: str(tmp_path / f"{n}.dat")  # noqa: E731
    run("AR", s, src=a, dst=out("ar_lin"), formula="P1*3+[off]")
    run("AR", s, src=a, dst=out("ar_trig"), formula="SIN(P1*90)+COS(P1*45)**2")
    run("AR", s, src=b, dst=out("ar_exp"), formula="EXP(-P1*2)+SQR(ABS(P1)+[k])")
    run("AR", s, src=c, dst=out("ar_int"), formula="INT(P1*7.0)/2")
    run("AD", src=a, src2=b, dst=out("ad_abc"), more=[c])
    run("AD", src=b, src2=b, dst=out("ad_bb"), more=[])
    run("MU", src=a, src2=b, dst=out("mu_ab"), more=[])
    run("MU", src=a, src2=b, dst=out("mu_abc"), more=[c])
    run("SU", src=a, src2=b, dst=out("su_ab"), more=["*"])
    run("SU", src=a, src2=b, dst=out("su_abc"), more=[c])
    names = ["ar_lin", "ar_trig", "ar_exp", "ar_int", "ad_abc", "ad_bb", "mu_ab", "mu_abc",
             "su_ab", "su_abc"]
    doc = read_doc(g / "arith_doc.dat")
    for key, n in enumerate(names, 1):
        mine = eio.read(out(n))
        t1(mine, eio.read(str(g / f"{n}.dat")))
        want = doc.get(key)
        got = np.array(run("FS", src=out(n)))
        scale = np.abs(mine).max()
        assert np.all(np.abs(want - got) <= 1e-5 * np.abs(want) + 1e-6 * scale), n
    # integer truncation, and the float32 sums are SPIDER's bit for bit
    assert np.array_equal(eio.read(out("ad_abc")), eio.read(str(g / "ad_abc.dat")))
    assert np.array_equal(eio.read(out("ar_int")), eio.read(str(g / "ar_int.dat")))


def test_arith_on_whole_stacks_and_templates(tmp_path, rng, run):
    stk = str(tmp_path / "s.dat")
    data = rng.standard_normal((3, 6, 5)).astype(np.float32)
    spider.write(stk, data, stack=True)
    run("AR", src=stk + "@", dst=str(tmp_path / "o.dat@"), formula="P1*P1-1")
    assert np.allclose(eio.read(str(tmp_path / "o.dat@")), data * data - 1, atol=1e-6)
    run("AR", src=stk + "@*", numbers=[3, 1], dst=str(tmp_path / "t***.dat"), formula="-P1")
    assert np.array_equal(eio.read(str(tmp_path / "t003.dat")), -data[2])
    run("AD", src=stk + "@", src2=stk + "@2", dst=str(tmp_path / "a.dat@"), more=[])
    assert np.array_equal(eio.read(str(tmp_path / "a.dat@")), data + data[1])
    other = str(tmp_path / "small.dat")
    spider.write(other, np.zeros((4, 5), np.float32))
    with pytest.raises(UsageError, match="differs"):
        run("MU", src=stk + "@1", src2=other, dst=str(tmp_path / "x.dat"), more=[])
