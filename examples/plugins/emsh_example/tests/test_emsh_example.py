"""Tests of the example plugin: `pip install -e .` here, then `pytest tests`."""

import io

import numpy as np
import pytest

import emsh.io as eio
from emsh.errors import ProcedureError
from emsh.io.docfile import read_doc
from emsh.parallel import SerialComm
from emsh.registry import Registry
from emsh.session import Session
from emsh_example import PLUGIN


def gaussian(n: int, sigma: float, step: float = 1.0) -> np.ndarray:
    """A centred Gaussian sampled every ``step`` pixels; centre at index n//2."""
    y, x = (np.mgrid[:n, :n] - n // 2) * step
    return np.exp(-(x**2 + y**2) / (2 * sigma**2)).astype(np.float32)


@pytest.fixture
def run(tmp_path, monkeypatch):
    """Run procedure text with only this plugin loaded, in a temporary folder."""
    monkeypatch.chdir(tmp_path)
    registry = Registry([PLUGIN])
    assert registry.problems == []

    def run_text(text: str) -> dict:
        session = Session(registry, SerialComm(), data_ext="dat", out=io.StringIO())
        session.run_text(text)
        return session.top_ns

    return run_text


def test_bin_samples_a_band_limited_image_on_the_coarse_grid(run):
    eio.write("blob.dat", gaussian(64, sigma=4.0), apix=1.5)
    regs = run("BIN [nx]\nblob\nsmall\n2\n")
    small = eio.read("small.dat")
    assert regs["nx"] == 32 and small.shape == (32, 32)
    assert np.abs(small - gaussian(32, sigma=4.0, step=2.0)).max() < 1e-4
    assert eio.info("small.dat").apix == pytest.approx(3.0)


def test_bin_a_whole_stack_and_the_apix_option(run):
    stack = np.stack([gaussian(48, s) for s in (3.0, 4.0, 5.0)])
    eio.write("stk.dat", stack, stack=True)
    run("BIN apix=2 [nx]\nstk@\nsmall@\n3\n")
    small = eio.read("small.dat@")
    assert small.shape == (3, 16, 16)
    for member, sigma in zip(small, (3.0, 4.0, 5.0)):
        assert np.abs(member - gaussian(16, sigma, step=3.0)).max() < 2e-3
    assert eio.info("small.dat").apix == pytest.approx(6.0)


def test_prof_of_a_disc(run):
    y, x = np.mgrid[:32, :32] - 16
    eio.write("disc.dat", (np.hypot(x, y) < 8.5).astype(np.float32))
    regs = run("PROF [n],[edge]\ndisc\nprof\n0\n")
    doc = read_doc("prof.dat")
    assert regs["n"] == 17 and regs["edge"] == 0.0
    assert np.array_equal(doc.values[:, 0], np.arange(17))
    assert np.array_equal(doc.values[:9, 1], np.ones(9))
    assert np.array_equal(doc.values[9:, 1], np.zeros(8))


def test_a_bad_factor_is_refused_before_any_work(run):
    eio.write("tiny.dat", np.ones((8, 8), np.float32))
    with pytest.raises(ProcedureError, match="fewer than 2 pixels"):
        run("BIN\ntiny\nout\n8\n")
