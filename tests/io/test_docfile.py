"""SPIDER doc files against the real SPIDER's files (golden cases 01-18, case 15 in full)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from emsh.errors import DataFormatError, OutputExistsError, UsageError
from emsh.io.docfile import (
    DocFile, DocWriter, combine_docs, find_line, format_comment_key, format_data_line,
    format_header_line, format_text_comment, format_value, read_doc, sort_doc, ud_next_order,
    write_doc,
)

CASE15 = "15-doc-sd-ud"
# AP SH and AP REF write their own fixed-decimal data lines (not SD's layout).
OWN_LAYOUT = {"apsh_doc.dat", "apsh_doc2.dat", "apref_doc.dat"}
WHEN = datetime(2026, 11, 21, 15, 4, 26)


def _golden_docs(golden: Path) -> list[Path]:
    return [f for f in sorted(golden.glob("*/*.dat")) if b"\x00" not in f.read_bytes()[:2048]]


def _mask(text: str) -> str:
    return re.sub(r"\d\d-[A-Z]{3}-\d{4} AT \d\d:\d\d:\d\d", "DD-MMM-YYYY AT HH:MM:SS", text)


def test_every_golden_doc_parses_with_exact_counts(golden):
    docs = _golden_docs(golden)
    assert len(docs) == 65
    assert len({f.parent.name for f in docs}) == 18
    counts = {f"{f.parent.name[:2]}/{f.name}": read_doc(f) for f in docs}
    expect = {  # n_lines, n_cols, max_key (UD N), number of text comments
        "01/hdr_doc.dat": (15, 8, 31, 0),
        "09/fq_doc.dat": (4, 4, 20, 0),
        "11/ang15.dat": (84, 3, 84, 1),
        "11/ang30.dat": (20, 3, 20, 1),
        "11/ang20r.dat": (30, 3, 30, 1),
        "12/fsc_oddeven.dat": (39, 5, 41, 1),
        "12/fsc_halves.dat": (20, 5, 21, 1),
        "12/sel_odd.dat": (42, 1, 42, 0),
        "15/data_doc.dat": (7, 4, 100, 2),
        "15/readback_doc.dat": (16, 5, 41, 0),
        "16/apref_doc.dat": (6, 15, 6, 2),
        "16/apref_reg_doc.dat": (1, 11, 1, 0),
        "16/sel_ref002.dat": (0, 0, 0, 2),
        "16/sel_ref011.dat": (2, 3, 2, 2),
        "17/apsh_doc.dat": (6, 15, 6, 2),
        "18/lang_doc.dat": (24, 4, 43, 0),
    }
    for name, (n, c, k, ncom) in expect.items():
        d = counts[name]
        assert (d.n_lines, d.n_cols, d.max_key, len(d.comments)) == (n, c, k, ncom), name
    assert all(d.header is not None and d.header.project_ext == "spi" for d in counts.values())
    assert all(not d.skipped for d in counts.values())
    ang = counts["11/ang15.dat"]
    assert ang.comments == ["          PSI,         THETA,          PHI"]
    np.testing.assert_array_equal(ang.keys, np.arange(1, 85))
    assert ang.get(84).tolist() == [0.0, 90.0, 179.95]                 # VO EA, T0 as printed
    fsc = counts["12/fsc_oddeven.dat"]
    assert fsc.keys[0] == 3 and fsc.registers(1)[0] == pytest.approx(0.025)
    apsh = counts["17/apsh_doc.dat"]
    assert apsh.registers(4).tolist() == [3, 11, 18, 1, 11, 8]          # reference numbers
    assert apsh.registers(15).tolist() == [1, 1, 1, 1, -1, 1]          # MIR-CC
    assert apsh.get(-2)[-1] == 6.0                                     # #PARTICLES
    wide = counts["16/apref_reg_doc.dat"]
    assert wide.get(1)[2] == pytest.approx(107.970)


def test_spider_written_lines_reproduced_byte_for_byte(golden):
    """Every line SD / SPIDER's doc writer made (697 data lines) re-formats identically."""
    ndata = 0
    for f in _golden_docs(golden):
        raw = f.read_text().splitlines()
        mine = read_doc(f).lines()
        assert len(mine) == len(raw), f
        for a, b in zip(mine, raw):
            if f.name in OWN_LAYOUT and not b.lstrip().startswith(";"):
                continue
            assert a == b, f"{f}: {b!r} != {a!r}"
            ndata += not b.startswith(" ;")
    assert ndata == 697
    hdr = (golden / CASE15 / "data_doc.dat").read_text().splitlines()[0]
    assert format_header_line("spi", "dat", "data_doc.dat", WHEN) == hdr


@pytest.mark.parametrize("value,text", [
    (1.0, "  1.00000    "), (-1.0, " -1.00000    "), (-1.651642e-09, "-1.651642E-09"),
    (0.707193, " 0.707193    "), (0.0, "  0.00000    "), (21500.0, "  21500.0    "),
    (123456789.0, " 1.234568E+08"), (-0.000012345, "-1.234500E-05"), (0.0625, " 6.250000E-02"),
    (1.0e-4, " 1.000000E-04"), (0.1, " 0.100000    "), (0.09999999, " 0.100000    "),
    (0.099999, " 9.999900E-02"), (999999.0, "  999999.    "), (1.0e6, " 1.000000E+06"),
    (-90.0, " -90.0000    "), (17777.7, "  17777.7    "), (0.3333333, " 0.333333    "),
])
def test_format_value_is_fortran_1pg13_6(value, text):
    assert format_value(value) == text
    assert len(text) == 13


def test_line_layouts():
    assert format_data_line(1, [1, -1, -1.651642e-09, 0.707193]) == \
        "    1 4   1.00000      -1.00000     -1.651642E-09  0.707193     "
    assert format_data_line(123456, [2.0]).startswith("123456 1   2.00000")
    assert format_data_line(1234567, [2.0]).startswith("   1234567    1   2.00000")
    assert format_data_line(1, np.arange(10)).startswith("         1   10   0.00000")
    assert format_comment_key(-1, [2.82, 200]) == " ;       1 2   2.82000       200.000    "
    assert format_text_comment("  key a", upper=True) == " ;   KEY A"
    assert format_value(-0.0) == " -0.00000    " and format_value(np.inf) == "     Infinity"
    for bad in (lambda: format_data_line(0, [1]), lambda: format_comment_key(-1, np.ones(10)),
                lambda: format_data_line(1.5, [1]), lambda: format_text_comment("a\nb"),
                lambda: format_data_line(1, [1e39])):
        with pytest.raises(UsageError):
            bad()


def _sd_data_doc(path: str) -> None:
    """The SD operations of case 15's proc.spi (values from its register assignments)."""
    with DocWriter(path, when=WHEN) as w:
        w.comment("  KEY      DEFOCUS     GROUP    WEIGHT    ANGLE", upper=True)
        w.write(5, [21500, 3, 0.75, -12.5])
        w.write(2, [15250.5, 1, 1.0, 33.25])
        w.write(9, [30100, 4, 0.125, 170])
        w.write(3, [18000, 2, 0.5, -90])
        w.write(12, [21500, 3, 0.0625, 1.0e-4])
        w.write(-1, [2.82, 200])
        # SD // after the interpreter's substitution ({%F6.3%[pix]}, {***[kv]}, [mic])
        w.comment("PIXEL SIZE 2.820 A AT 200 KV, RAW [pix], FROM mic_0042")
        w.write(2, [17777.7, 2, 0.3333333, 45])
        w.write(100, [123456789, -0.000012345])


def test_case15_sd_ud_and_doc_sort_reproduced(golden, tmp_path, monkeypatch):
    gold = golden / CASE15
    monkeypatch.chdir(tmp_path)
    _sd_data_doc("data_doc.dat")
    assert _mask(Path("data_doc.dat").read_text()) == _mask((gold / "data_doc.dat").read_text())

    d = read_doc("data_doc.dat")
    assert (d.max_key, d.n_cols, d.n_lines) == (100, 4, 7)            # UD N
    with DocWriter("readback_doc.dat", when=WHEN) as w:
        w.write(1, d.get(9)[:4])
        w.write(2, d.get(2)[:4])                                       # last of key 2
        w.write(3, d.get(-1)[:2])                                      # comment key
        w.write(4, d.get(100)[:2])
        w.write(5, [d.max_key, d.n_cols, d.n_lines])
        w.write(6, d.row(d.next_line_with_key(3))[:2])                 # UD S
        w.write(7, d.get(12))                                          # UD IC
        w.write(8, d.get(5))
        for n, (key, regs) in enumerate(ud_next_order(d), 1):          # UD NEXT
            w.write(20 + n, [key, *regs[:2]])
        key, regs = find_line(d, 2, 2)                                 # UD FIND found
        w.write(40, [key, *regs[:4]])
        key, regs = find_line(d, 1, 99999)                             # UD FIND not found
        w.write(41, [key])
    assert _mask(Path("readback_doc.dat").read_text()) == \
        _mask((gold / "readback_doc.dat").read_text())

    runs = {"sort_def": (1, True, False), "sort_ang_desc": (-4, False, False),
            "sort_key": (0, True, False), "sort_grp_nodup": (2, True, True)}
    for name, (col, renumber, unique) in runs.items():
        out = sort_doc(d, col, renumber=renumber, remove_duplicates=unique)
        out.save(f"{name}.dat", when=WHEN)
        assert _mask(Path(f"{name}.dat").read_text()) == \
            _mask((gold / f"{name}.dat").read_text()), name


def test_doc_sort_quirks_and_errors(golden):
    d = read_doc(golden / CASE15 / "data_doc.dat")
    out = sort_doc(d, 1)
    assert 15250.5 not in out.values                                   # lost under key 2
    assert out.nregs.tolist() == [4] * 6 and out.get(6).tolist()[2:] == [0.0, 0.0]
    assert sort_doc(d, 4, descending=True).lines() == sort_doc(d, -4).lines()
    assert sort_doc(d, 0, renumber=False).keys.tolist() == [2, 3, 5, 9, 12, 100]
    with pytest.raises(UsageError):
        sort_doc(d, 5)
    assert sort_doc(DocFile([], []), 1).n_lines == 0


def test_singleton_sort_matches_a_sort_on_many_sizes(rng):
    for n in (1, 2, 11, 12, 13, 50, 400):
        vals = rng.integers(0, 7, n).astype(float)
        d = DocFile(np.arange(1, n + 1), vals[:, None])
        out = sort_doc(d, 1, renumber=False)
        assert np.all(np.diff(out.registers(1)) >= 0)
        assert sorted(out.keys.tolist()) == list(range(1, n + 1))
        np.testing.assert_array_equal(out.registers(1), vals[out.keys - 1])
        uniq = sort_doc(d, 1, remove_duplicates=True)
        np.testing.assert_array_equal(uniq.registers(1), np.unique(vals))


def test_combine_docs(golden):
    g12 = golden / "12-bp-recon"
    out = combine_docs([g12 / "sel_odd.dat", g12 / "sel_even.dat"])
    np.testing.assert_array_equal(out.keys, np.arange(1, 85))
    np.testing.assert_array_equal(out.registers(1), np.r_[1:84:2, 2:85:2])
    both = combine_docs([read_doc(golden / CASE15 / "data_doc.dat"), g12 / "sel_odd.dat"])
    assert both.n_lines == 6 + 42 and both.nregs.tolist() == [4] * 6 + [1] * 42
    assert both.comment_keys == {} and both.comments == []


def test_ud_lookups(golden):
    d = read_doc(golden / CASE15 / "data_doc.dat")
    assert [k for k, _ in ud_next_order(d)] == [2, 3, 5, 9, 12, 100]
    assert d.get(2)[0] == pytest.approx(17777.7)
    assert d.row(d.next_line_with_key(2))[0] == 15250.5                # first occurrence
    assert d.row(d.next_line_with_key(2, start=2))[0] == pytest.approx(17777.7)
    assert d.registers(0).tolist() == [5, 2, 9, 3, 12, 2, 100]
    for bad in (lambda: d.get(7), lambda: d.get(-3), lambda: d.registers(5),
                lambda: d.next_line_with_key(4), lambda: find_line(d, 5, 1.0)):
        with pytest.raises(UsageError):
            bad()
    # UD FIND compares a short line with the value the previous line left in the buffer
    short = DocFile([1, 2], [[5.0, 2.0], [3.0]])
    assert find_line(short, 2, 0.0)[0] == 0
    assert find_line(short, 1, 3.0)[0] == 2 and find_line(short, 0, 2)[0] == 2


def test_round_trip_and_table(tmp_path, rng):
    keys = np.r_[1:40, 99_999, 100_000, 999_999, 1_000_000]
    vals = (rng.standard_normal((keys.size, 3)) * 10.0 ** rng.integers(-9, 9, (keys.size, 3)))
    vals[0] = [0.0, -0.0, 1.0]
    p = tmp_path / "rt.dat"
    write_doc(p, keys, vals, heading="  A  B  C", comments=["note"], comment_keys={7: [1, 2]},
              when=WHEN)
    d = read_doc(p)
    np.testing.assert_array_equal(d.keys, keys)
    np.testing.assert_allclose(d.values, vals.astype(np.float32), rtol=5e-6, atol=0)
    assert d.comments == ["  A  B  C", "note"] and d.get(-7).tolist() == [1.0, 2.0]
    assert d.header.when == WHEN and d.header.name == str(p)
    d.save(tmp_path / "rt2.dat", when=WHEN)
    assert (tmp_path / "rt2.dat").read_text().splitlines()[1:] == p.read_text().splitlines()[1:]
    t = d.to_table()
    assert t.columns == ["key", "reg1", "reg2", "reg3"] and len(t) == keys.size
    back = DocFile.from_table(t)
    assert back.lines() == [ln for ln in d.lines() if not ln.startswith(" ;")]
    ragged = DocFile([3, 1], [[1.0], [1.0, 2.0, 3.0]])
    assert ragged.nregs.tolist() == [1, 3] and ragged.values[0].tolist() == [1.0, 0.0, 0.0]


def test_doc_writer_appends_like_sd(tmp_path):
    p = tmp_path / "app.dat"
    with DocWriter(p, when=WHEN) as w:
        w.write(1, [1.0])
    w2 = DocWriter(p)
    w2.write(2, [2.0])
    w2.comment("done")
    w2.close()
    lines = p.read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith(" ;spi/dat   21-NOV-2026")
    assert read_doc(p).keys.tolist() == [1, 2]
    DocWriter(tmp_path / "never.dat").close()
    assert not (tmp_path / "never.dat").exists()


def test_tolerant_reading(tmp_path):
    p = tmp_path / "mixed.dat"
    p.write_text(
        " ;spi/dat   01-JAN-2000 AT 00:00:00   mixed.dat\n"
        "\n"
        "      1 3    0.00   30.00   89.97\n"          # AP SH fixed decimals
        "; bad jweb comment\n"
        "     13   12.000000    5.000000    9.000000\n"  # pre-2004 (I6,I1,F12.6): key 1, 3 values
        "    2 2  -12.345678-123.456789\n"              # values touching: fixed fallback
        "    3 2 1.0D-4, 2.5-3\n"                       # Fortran reals, comma separator
        "    0 1   5.0\n"                               # key 0: skipped
        "    4 0\n"                                     # empty line: skipped
        "    5 1   7.0\r\n")
    d = read_doc(p)
    assert d.keys.tolist() == [1, 1, 2, 3, 5]
    np.testing.assert_allclose(d.rows()[1], [12.0, 5.0, 9.0])
    np.testing.assert_allclose(d.rows()[2], [-12.345678, -123.456789])
    np.testing.assert_allclose(d.rows()[3], [1.0e-4, 2.5e-3])
    assert [n for n, _ in d.skipped] == [8, 9] and d.comments == ["bad jweb comment"]


@pytest.mark.parametrize("content,where", [
    (" ;spi/dat   01-JAN-2000 AT 00:00:00   x\n    1 2   1.0   abc\n", "line 2: 'abc'"),
    ("    1 1   1.0\n\n    2 3   1.0   2.0\n", "line 3: key 2 says 3 values"),
    ("", "empty file"),
    ("   \n\n", "empty file"),
    ("hello there\n", "line 1"),
])
def test_bad_input_names_file_and_line(tmp_path, content, where):
    p = tmp_path / "bad.dat"
    p.write_text(content)
    with pytest.raises(DataFormatError) as e:
        read_doc(p)
    assert str(p) in str(e.value) and where in str(e.value)


def test_binary_and_missing_files(tmp_path, golden):
    with pytest.raises(DataFormatError, match="binary"):
        read_doc(golden / "01-io-models" / "img_t.dat")
    p = tmp_path / "b.dat"
    p.write_bytes(b"    1 1   1.0\n\x01\x02\xff\n")
    with pytest.raises(DataFormatError, match="line 2: binary"):
        read_doc(p)
    with pytest.raises(DataFormatError, match="not found"):
        read_doc(tmp_path / "none.dat")
    with pytest.raises(DataFormatError, match="binary"):
        DocWriter(golden / "01-io-models" / "img_t.dat").write(1, [1.0])


def test_no_overwrite_without_permission(tmp_path):
    p = tmp_path / "o.dat"
    write_doc(p, [1], [[1.0]])
    with pytest.raises(OutputExistsError):
        write_doc(p, [1], [[2.0]])
    with pytest.raises(OutputExistsError):
        read_doc(p).save(p)
    write_doc(p, [1], [[2.0]], overwrite=True)
    assert read_doc(p).get(1).tolist() == [2.0]
    with pytest.raises(UsageError):
        write_doc(tmp_path / "n.dat", [1, 2], [[1.0]])
