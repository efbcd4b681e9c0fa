"""The emsh command line as a user runs it: a real subprocess, real files."""

import subprocess
import sys

import numpy as np

import emsh.io as eio


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "emsh", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=60)


def test_info_and_convert(tmp_path, rng):
    stack = rng.normal(size=(3, 16, 12)).astype(np.float32)
    eio.write(tmp_path / "p.spi", stack, stack=True, apix=1.5)
    out = run("info", "p.spi", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "p.spi: spider stack, 12 x 16 (x y z), 3 images, 1.5 A/px"
    out = run("convert", "p.spi", "p.mrcs", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert np.array_equal(eio.read(tmp_path / "p.mrcs"), stack)
    assert eio.info(tmp_path / "p.mrcs").apix == 1.5


def test_errors_are_one_line_and_exit_2(tmp_path):
    (tmp_path / "a.spi").write_bytes(b"\0" * 100)
    out = run("info", "a.spi", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("emsh: a.spi")
    eio.write(tmp_path / "b.spi", np.zeros((4, 4), np.float32))
    eio.write(tmp_path / "c.mrc", np.zeros((4, 4), np.float32))
    out = run("convert", "b.spi", "c.mrc", cwd=tmp_path)
    assert out.returncode == 2 and "exists" in out.stderr
