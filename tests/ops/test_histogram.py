"""HD D / HD RD: bin counts against numpy.histogram, SPIDER's bin layout and statistics,
the doc layout, the text plot, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from emsh.errors import DataFormatError, OperationError
from emsh.io.docfile import read_doc, write_doc
from emsh.ops.histogram import doc_histogram, histogram_mode


def _doc(path, column_values, other=None):
    v = np.asarray(column_values, dtype=np.float64)
    rows = np.stack([np.arange(v.size, dtype=float) if other is None else other, v], 1)
    write_doc(path, np.arange(1, v.size + 1), rows, overwrite=True)
    return str(path)


def test_counts_match_numpy_on_integer_edges(tmp_path, rng, run):
    u = rng.uniform(0, 127, 500)
    v = np.r_[0.0, 127.0, u[np.abs(u - np.round(u)) > 1e-6]]   # 128 bins of width 1 from 0
    doc = _doc(tmp_path / "d.dat", v)
    mean, mode, sd = run("HD D", doc=doc, column=2, n_bins=128, out=str(tmp_path / "h.dat"))
    h = read_doc(tmp_path / "h.dat")
    assert h.keys.tolist() == list(range(1, 129))
    assert h.registers(1).tolist() == list(range(128))                   # lower boundaries
    assert h.registers(2).tolist() == np.histogram(v, np.arange(129.0))[0].tolist()
    assert h.comments[0].strip() == "BIN   BOUNDARY     OCCUPANCY"
    assert mean == pytest.approx(v.mean()) and sd == pytest.approx(v.std(ddof=1))


def test_counts_match_numpy_on_random_data(tmp_path, rng, run, fake_session):
    v = rng.normal(3.0, 2.0, 2000)
    s = fake_session()
    run("HD", session=s, doc=_doc(tmp_path / "d.dat", v), column=2, n_bins=40,
        out=str(tmp_path / "h.dat"))
    h = read_doc(tmp_path / "h.dat")
    w = (v.max() - v.min()) / 39
    edges = v.min() + w * np.arange(41)
    want = np.histogram(v[v < v.max()], edges)[0]
    want[-1] += 1                                      # the maximum opens the last bin
    assert h.registers(2).astype(int).tolist() == want.tolist()
    np.testing.assert_allclose(h.registers(1), edges[:40], rtol=1e-5, atol=1e-5)
    assert any("HIST. MEAN:" in ln for ln in s.logged)
    assert any(f"{40.0:11.4g}" in ln and "NO. OF BINS:" in ln for ln in s.logged)


def test_mode_is_refined_between_the_fullest_bins():
    lower, counts, width, _ = doc_histogram(np.r_[0.0, [4.2] * 6, [5.1] * 6, 10.0], 11)
    assert width == 1.0 and counts[4] == counts[5] == 6
    # the last of the equal maxima (bin 5), refined by the parabola through 4, 5, 6
    assert histogram_mode(lower, counts, width) == pytest.approx(5 + (6 - 0) * 0.5 / (6 - 12))
    lower, counts, width, _ = doc_histogram(np.r_[0.0, 0.1, 0.2, 9.0], 10)
    assert histogram_mode(lower, counts, width) == 0.0               # edge bin: no parabola


def test_last_line_of_a_key_counts(tmp_path, run):
    path = tmp_path / "d.dat"
    write_doc(path, [1, 2, 3, 2], np.array([[0.0], [5.0], [10.0], [1.0]]))
    run("HD D", doc=str(path), column=1, n_bins=11, out=str(tmp_path / "h.dat"))
    counts = read_doc(tmp_path / "h.dat").registers(2)
    assert counts.sum() == 3 and counts[[0, 1, 10]].tolist() == [1, 1, 1]


def test_range_variant_leaves_out_values_outside(tmp_path, rng, run):
    v = rng.uniform(-5, 15, 800)
    doc = _doc(tmp_path / "d.dat", v)
    mean, _, sd = run("HD R", doc=doc, column=2, n_bins=11, hmin=0.0, hmax=10.0,
                      out=str(tmp_path / "h.dat"))
    counts = read_doc(tmp_path / "h.dat").registers(2)
    inside = v[(v >= 0) & (v < 11)]                    # 11 bins of width 1 from 0
    assert counts.tolist() == np.histogram(inside, np.arange(12.0))[0].tolist()
    assert mean == pytest.approx(inside.mean()) and sd == pytest.approx(inside.std(ddof=1))


def test_star_draws_the_histogram_in_the_log(tmp_path, run, fake_session):
    s = fake_session()
    run("HD D", session=s, doc=_doc(tmp_path / "d.dat", [0, 1, 1, 1, 2]), column=2,
        n_bins=3, out=None)
    bars = [ln for ln in s.logged if "|" in ln]
    assert [ln.count("*") for ln in bars] == [17, 50, 17]
    assert not list(tmp_path.glob("h*"))


def test_bad_input(tmp_path, run):
    doc = _doc(tmp_path / "d.dat", [1.0, 2.0, 3.0])
    with pytest.raises(OperationError, match=r"register 3 not in 1\.\.2"):
        run("HD D", doc=doc, column=3, n_bins=10, out=None)
    with pytest.raises(OperationError, match="at least 2"):
        run("HD D", doc=doc, column=2, n_bins=1, out=None)
    with pytest.raises(OperationError, match="one value"):
        run("HD D", doc=_doc(tmp_path / "c.dat", [4.0, 4.0]), column=2, n_bins=10, out=None)
    with pytest.raises(OperationError, match="range 5 .. 5 is empty"):
        run("HD RD", doc=doc, column=2, n_bins=10, hmin=5.0, hmax=5.0, out=None)
    with pytest.raises(DataFormatError, match="missing.dat"):
        run("HD D", doc=str(tmp_path / "missing.dat"), column=1, n_bins=10, out=None)
