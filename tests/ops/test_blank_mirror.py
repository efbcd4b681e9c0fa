"""BL (blank image/volume) and MR (mirror) as operations.

MR's rule is SPIDER's (mirror.f): about the centre index n//2 (1-based N/2+1), so for an
even size index i takes the value at (n - i) mod n (the first column stays, the last
takes the second's value) and for an odd size it is a plain flip. The expected arrays
below are written out index by index, not computed with the same formula.
"""

from __future__ import annotations

import io
import textwrap

import numpy as np
import pytest

import emsh.io as eio
from emsh.errors import EmshError
from emsh.parallel import SerialComm
from emsh.session import Session


def spi(tmp_path, monkeypatch, text: str) -> Session:
    monkeypatch.chdir(tmp_path)
    s = Session(comm=SerialComm(), data_ext="dat", results=False, out=io.StringIO())
    s.run_text(textwrap.dedent(text).strip() + "\n")
    return s


# ----------------------------------------------------------------------------- BL

def test_bl_as_average_spi_writes_it(tmp_path, monkeypatch):
    """average.spi: ``BL / [avg][proj] / [sp_winsiz],[sp_winsiz] / N / (0.0)``."""
    eio.write(tmp_path / "ref.dat", np.arange(12, dtype=np.float32).reshape(3, 4))
    s = spi(tmp_path, monkeypatch, """
        [w] = 6
        BL [b]
        zero
        [w],[w]
        N
        (0.0)
        BL
        two
        5,4,3
        N
        2.5
        BL [c]
        avg@2
        4,4
        Y
        ref
        """)
    z = eio.read(tmp_path / "zero.dat")
    assert z.shape == (6, 6) and z.dtype == np.float32 and np.all(z == 0)
    t = eio.read(tmp_path / "two.dat")
    assert t.shape == (3, 4, 5) and np.all(t == 2.5)
    a = eio.read(tmp_path / "avg.dat", index=2)
    assert a.shape == (4, 4) and np.all(a == 5.5)          # mean of 0..11
    assert s.top_ns["b"] == 0.0 and s.top_ns["c"] == 5.5


def test_bl_replaces_an_existing_output(tmp_path, run, monkeypatch):
    monkeypatch.chdir(tmp_path)
    eio.write("out.dat", np.ones((2, 2), np.float32))
    run("BL", dst="out.dat", nx=3, ny=2, nz=1, use_average=False, value=-1.0)
    np.testing.assert_array_equal(eio.read("out.dat"), np.full((2, 3), -1.0, np.float32))


def test_bl_bad_answers_give_one_line_errors(tmp_path, monkeypatch):
    """The reason is on the first line (a procedure error then quotes the answer line)."""
    with pytest.raises(EmshError) as err:
        spi(tmp_path, monkeypatch, "BL\nx\n0,4\nN\n1\n")
    assert "below the minimum 1" in str(err.value).splitlines()[0]
    with pytest.raises(EmshError) as err:
        spi(tmp_path, monkeypatch, "BL\nx\n4,4\nY\nmissing\n")
    assert "missing" in str(err.value).splitlines()[0]


# ----------------------------------------------------------------------------- MR

def _image(ny, nx):
    return (10 * np.arange(ny)[:, None] + np.arange(nx)[None, :]).astype(np.float32)


def test_mr_even_and_odd_sizes_follow_spider(tmp_path, monkeypatch):
    eio.write(tmp_path / "a.dat", _image(4, 6))        # even x and y
    eio.write(tmp_path / "b.dat", _image(3, 5))        # odd x and y
    spi(tmp_path, monkeypatch, "MR\na\nay\nY\nMR\na\nax\nX\nMR\nb\nby\nY\nMR\nb\nbx\nX\n")
    a, b = _image(4, 6), _image(3, 5)
    ay = eio.read(tmp_path / "ay.dat")                 # columns 0,5,4,3,2,1
    np.testing.assert_array_equal(ay, a[:, [0, 5, 4, 3, 2, 1]])
    np.testing.assert_array_equal(eio.read(tmp_path / "ax.dat"), a[[0, 3, 2, 1], :])
    np.testing.assert_array_equal(eio.read(tmp_path / "by.dat"), b[:, [4, 3, 2, 1, 0]])
    np.testing.assert_array_equal(eio.read(tmp_path / "bx.dat"), b[[2, 1, 0], :])
    # the centre column (index 3 = SPIDER's 4) stays, as a mirror about it must
    np.testing.assert_array_equal(ay[:, 3], a[:, 3])


def test_mr_volume_axes_and_the_default(tmp_path, monkeypatch, run):
    v = np.arange(4 * 3 * 4, dtype=np.float32).reshape(4, 3, 4)   # (z, y, x)
    eio.write(tmp_path / "v.dat", v)
    spi(tmp_path, monkeypatch, "MR\nv\nvz\nZ\nMR\nv\nvx\nX\nMR\nv\nvy\nY\n")
    np.testing.assert_array_equal(eio.read(tmp_path / "vz.dat"), v[[0, 3, 2, 1]])
    np.testing.assert_array_equal(eio.read(tmp_path / "vx.dat"), v[:, [2, 1, 0]])
    np.testing.assert_array_equal(eio.read(tmp_path / "vy.dat"), v[:, :, [0, 3, 2, 1]])
    run("MR", src="v.dat", numbers=None, dst="vd.dat", axis=None, axis3=None)   # default Y
    np.testing.assert_array_equal(eio.read(tmp_path / "vd.dat"), eio.read(tmp_path / "vy.dat"))


def test_mr_whole_stack_and_template_keep_members(tmp_path, monkeypatch):
    stk = np.stack([_image(4, 4) + 100 * k for k in range(3)])
    eio.write(tmp_path / "s.dat", stk, stack=True)
    spi(tmp_path, monkeypatch, "MR\ns@\nm@\nY\nMR\ns@*\n2-3\nt@*\nX\nMR\nm@2\nback\nY\n")
    np.testing.assert_array_equal(eio.read(tmp_path / "m.dat"), stk[:, :, [0, 3, 2, 1]])
    assert eio.read(tmp_path / "t.dat", index=3).tolist() == stk[2][[0, 3, 2, 1]].tolist()
    np.testing.assert_array_equal(eio.read(tmp_path / "back.dat"), stk[1])  # twice: itself


def test_mr_prompt_text_depends_on_the_input(builtin_registry):
    op = builtin_registry.get("MR")
    texts = {p.name: p.text for p in op.prompts}
    assert texts["axis"] == "MIRROR AT (Y) OR (X) AXIS (DEF=Y)"
    assert texts["axis3"] == "MIRROR AT (Z), (Y) OR (X) AXIS (DEF=Y)"


def test_mr_bad_answers_give_one_line_errors(tmp_path, monkeypatch, run):
    monkeypatch.chdir(tmp_path)
    eio.write("a.dat", _image(4, 4))
    with pytest.raises(EmshError, match="no Z axis"):
        run("MR", src="a.dat", numbers=None, dst="o.dat", axis="Z", axis3=None)
    with pytest.raises(EmshError) as err:
        spi(tmp_path, monkeypatch, "MR\na\no\nQ\n")
    assert "'Q' is not one of Y, X" in str(err.value).splitlines()[0]
