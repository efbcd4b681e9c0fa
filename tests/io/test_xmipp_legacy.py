"""Xmipp 2.x legacy .sel and .doc files."""

from __future__ import annotations

import numpy as np
import pytest

from emsh.errors import DataFormatError, OutputExistsError, UsageError
from emsh.io.xmipp_legacy import (
    format_xmipp_doc_line, read_sel, read_xmipp_doc, write_sel, write_xmipp_doc,
)
from emsh.table import Table

# As Xmipp 2.4's projection matching wrote it (DocLine: "%5d %-2d" then " % 10.5f").
XMIPP_DOC = """\
 ; Headerinfo columns: rot (1) , tilt (2), psi (3), Xoff (4), Yoff (5), Weight (6), Mirror (7)
 ; proj_match_class00001.xmp
    1 7     0.00000   40.00000    0.00000    0.00000    0.00000   76.00000    0.00000
 ; proj_match_class00002.xmp
    2 7     7.65957   40.00000    0.00000    0.00000    0.00000   14.00000    0.00000
"""


def test_read_xmipp_doc_maps_columns_and_names(tmp_path):
    p = tmp_path / "classes.doc"
    p.write_text(XMIPP_DOC)
    t = read_xmipp_doc(p)
    assert t.columns == ["image", "angleRot", "angleTilt", "anglePsi", "shiftX", "shiftY",
                         "weight", "flip"]
    assert t["image"].tolist() == ["proj_match_class00001.xmp", "proj_match_class00002.xmp"]
    assert t["angleRot"].tolist() == [0.0, 7.65957] and t["weight"].tolist() == [76.0, 14.0]


def test_xmipp_doc_lines_are_byte_exact_and_round_trip(tmp_path):
    p = tmp_path / "classes.doc"
    p.write_text(XMIPP_DOC)
    t = read_xmipp_doc(p)
    assert format_xmipp_doc_line(2, [7.65957, 40, 0, 0, 0, 14, 0]) == XMIPP_DOC.splitlines()[4]
    out = tmp_path / "again.doc"
    write_xmipp_doc(out, t)
    got = out.read_text().splitlines()
    assert got[1:] == XMIPP_DOC.splitlines()[1:]
    assert got[0] == (" ; Headerinfo columns: rot (1), tilt (2), psi (3), Xoff (4), Yoff (5), "
                      "Weight (6), Flip (7)")
    assert read_xmipp_doc(out) == t


def test_ml_tomo_doc_and_unnamed_columns(tmp_path, rng):
    t = Table({"image": [f"sub{i:03d}.vol" for i in range(1, 6)],
               "angleRot": rng.uniform(-180, 180, 5), "angleTilt": rng.uniform(0, 180, 5),
               "anglePsi": rng.uniform(-180, 180, 5), "shiftX": rng.normal(size=5),
               "shiftY": rng.normal(size=5), "shiftZ": rng.normal(size=5),
               "ref": np.arange(1, 6), "missingRegionNumber": np.ones(5, int),
               "pMax": rng.uniform(size=5), "logLikelihood": rng.normal(size=5) * 1e3})
    p = tmp_path / "it000015.doc"
    write_xmipp_doc(p, t)
    head = p.read_text().splitlines()[0]
    assert head.endswith("Ref (7), Wedge (8), Pmax/sumP (9), LL (10)")
    back = read_xmipp_doc(p)
    assert back.columns == t.columns
    for c in t.columns[1:]:
        np.testing.assert_allclose(back[c], t[c], atol=5e-6)
    bare = tmp_path / "bare.doc"
    bare.write_text("1 2 10. 20.\n2 1 5.\n")
    b = read_xmipp_doc(bare)
    assert b.columns == ["image", "col1", "col2"] and b["col2"].tolist() == [20.0, 0.0]
    assert b["image"].tolist() == ["", ""]


def test_sel_round_trip(tmp_path):
    p = tmp_path / "images.sel"
    p.write_text("# made by hand\nimg/a001.xmp 1\n\nimg/a002.xmp -1\n; note\nimg/a003.xmp 0\n")
    t = read_sel(p)
    assert t["image"].tolist() == ["img/a001.xmp", "img/a002.xmp", "img/a003.xmp"]
    assert t["enabled"].tolist() == [1, -1, 0]
    out = tmp_path / "out.sel"
    write_sel(out, t)
    assert out.read_text() == "img/a001.xmp 1\nimg/a002.xmp -1\nimg/a003.xmp 0\n"
    write_sel(tmp_path / "plain.sel", ["x.spi", "y.spi"])
    assert read_sel(tmp_path / "plain.sel")["enabled"].tolist() == [1, 1]


def test_bad_legacy_files(tmp_path):
    p = tmp_path / "bad.sel"
    p.write_text("a.xmp 1\nb.xmp yes\n")
    with pytest.raises(DataFormatError, match="line 2"):
        read_sel(p)
    d = tmp_path / "bad.doc"
    d.write_text(" ; x\n    1 3  1.0 2.0\n")
    with pytest.raises(DataFormatError, match="line 2: count says 3"):
        read_xmipp_doc(d)
    d.write_text("    1 2  1.0 abc\n")
    with pytest.raises(DataFormatError, match="'abc' is not a number"):
        read_xmipp_doc(d)
    (tmp_path / "e.sel").write_text("")
    with pytest.raises(DataFormatError, match="empty"):
        read_sel(tmp_path / "e.sel")
    (tmp_path / "bin.doc").write_bytes(b"\x00\x01\x02")
    with pytest.raises(DataFormatError, match="binary"):
        read_xmipp_doc(tmp_path / "bin.doc")
    with pytest.raises(OutputExistsError):
        write_sel(p, ["c.xmp"])
    with pytest.raises(UsageError):
        write_sel(tmp_path / "s.sel", ["has space.xmp"])
    with pytest.raises(UsageError):
        write_xmipp_doc(tmp_path / "n.doc", Table({"image": ["a"]}))
