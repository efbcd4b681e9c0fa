"""Truth tables written as RELION STAR and SPIDER doc files, read back."""

from __future__ import annotations

import numpy as np
import pytest

from emsh.errors import OutputExistsError, UsageError
from emsh.io.docfile import read_doc
from emsh.io.star import read_star
from emsh.kernels.ctf import CTFParams
from emsh.sim.particles import simulate_particles
from emsh.sim.truth import write_truth
from emsh.table import Table


@pytest.fixture(scope="module")
def truth():
    vol = np.zeros((8, 8, 8), np.float32)
    vol[3:5, 3:5, 3:5] = 1
    _, t = simulate_particles(vol, 7, np.random.default_rng(0), apix=2.0, shift_range_px=3,
                              ctf=CTFParams(15000.0, 14000.0, 25.0), snr=2.0)
    t["view_id"] = np.arange(1, 8)
    return t


def test_star_pixels(truth, tmp_path):
    star, doc = write_truth(truth, tmp_path / "truth")
    assert star.name == "truth.star" and doc.name == "truth.spi"
    p = read_star(star)["particles"]
    np.testing.assert_allclose(p["rlnAngleRot"], truth["phi"])
    np.testing.assert_allclose(p["rlnAngleTilt"], truth["theta"])
    np.testing.assert_allclose(p["rlnAnglePsi"], truth["psi"])
    np.testing.assert_allclose(p["rlnOriginX"], -truth["sx"])          # RELION: opposite sign
    np.testing.assert_allclose(p["rlnOriginY"], -truth["sy"])
    np.testing.assert_allclose(p["rlnDefocusU"], 15000.0)
    np.testing.assert_allclose(p["rlnDefocusAngle"], 25.0)
    assert list(p["rlnClassNumber"]) == [1] * 7
    assert list(p["emshViewId"]) == list(range(1, 8))


def test_star_relion31_with_optics(truth, tmp_path):
    star, _ = write_truth(truth, tmp_path / "t31", apix=2.0, stack_name="parts.mrcs")
    blocks = read_star(star)
    o, p = blocks["optics"], blocks["particles"]
    assert o["rlnImagePixelSize"][0] == 2.0 and o["rlnVoltage"][0] == 300.0
    np.testing.assert_allclose(p["rlnOriginXAngst"], -2.0 * truth["sx"])
    assert p["rlnImageName"][2] == "000003@parts.mrcs"
    assert np.all(p["rlnOpticsGroup"] == 1) and "rlnVoltage" not in p


def test_doc_file(truth, tmp_path):
    _, doc = write_truth(truth, tmp_path / "truth", doc_ext="dat")
    assert doc.suffix == ".dat"
    d = read_doc(doc)
    assert list(d.keys) == list(range(1, 8))
    regs = d.values
    # registers: PSI, THETA, PHI first (SPIDER's angle-doc order), then the rest
    np.testing.assert_allclose(regs[:, 0], truth["psi"], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(regs[:, 1], truth["theta"], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(regs[:, 2], truth["phi"], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(regs[:, 3], truth["sx"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(regs[:, 4], truth["sy"], rtol=1e-5, atol=1e-5)
    assert regs.shape[1] == len(truth.columns)
    text = doc.read_text()
    assert "PSI" in text and "VIEW_ID" in text


def test_no_overwrite_and_text_columns(truth, tmp_path):
    write_truth(truth, tmp_path / "x")
    with pytest.raises(OutputExistsError):
        write_truth(truth, tmp_path / "x")
    write_truth(truth, tmp_path / "x", overwrite=True)
    t = Table({"phi": [1.0, 2.0], "tilt_axis": ["y", "y"]})
    _, doc = write_truth(t, tmp_path / "txt")
    assert read_doc(doc).values.shape == (2, 1)
    assert list(read_star(tmp_path / "txt.star")["particles"]["emshTiltAxis"]) == ["y", "y"]
    with pytest.raises(UsageError):
        write_truth(Table(), tmp_path / "empty")
