"""SD / UD / DOC operations against the real SPIDER (golden case 15 and the SD docs of 01-18).

The operations run through an OpContext around the stand-in session of conftest.py
(registers, numbers and ``[name]`` in expressions, ``{***[v]}``/``{%F..%[v]}`` and string
variables in substitution). The end-to-end run of case 15 through the interpreter is the
last test of this file.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from emsh.errors import OperationError
from emsh.io.docfile import read_doc
from emsh.ops._docs_impl import DocState, parse_items
from emsh.ops.docs import OPERATIONS
from emsh.registry import Registry
from emsh.spec import Plugin

CASE15 = "15-doc-sd-ud"
CASE15_OUT = ("data_doc", "readback_doc", "sort_def", "sort_ang_desc", "sort_key", "sort_grp_nodup")
SD_DOCS = ("01-io-models/hdr_doc", "02-fs-stats/stats_doc", "03-cp-copy/copy_doc",
           "04-arith/arith_doc", "05-pad-window/pad_doc", "06-shift/shift_doc", "07-rtsq/rt_doc",
           "07-rtsq/rt_stats", "08-mask/mask_doc", "09-fq-filters/fq_doc", "10-ft/ft_doc",
           "11-voea-pj3q/ang_hand", "11-voea-pj3q/pj_doc", "12-bp-recon/bp_doc",
           "12-bp-recon/sel_even", "12-bp-recon/sel_odd", "13-ctf/ctf_doc", "14-asr/asr_doc",
           "14-asr/sel", "16-apref-vomq/apref_reg_doc", "16-apref-vomq/exp_rtsq",
           "16-apref-vomq/exp_true_ang", "17-apsh/exp_rtsq", "17-apsh/exp_true_ang",
           "18-language/lang_doc")
REGISTRY = Registry([Plugin("docs-test", operations=list(OPERATIONS))])


def _masked(path: Path) -> str:
    """The file's bytes (line ends as written) with the header's date and time masked."""
    return re.sub(r"\d\d-[A-Z]{3}-\d{4} AT \d\d:\d\d:\d\d", "DATE AT TIME",
                  path.read_bytes().decode("latin-1"))


@pytest.fixture
def run(tmp_path, monkeypatch, line_runner):
    """Runs doc operation lines (conftest's LineRunner) in an empty folder; this module's
    ``run`` replaces conftest's keyword-argument runner."""
    monkeypatch.chdir(tmp_path)
    return line_runner(REGISTRY)


# ----------------------------------------------------------------------------- case 15
def _replay_case15(run) -> dict[str, dict[str, float]]:
    """proc.spi of case 15, operation by operation; returns register snapshots."""
    seen = {}
    run("SD /  KEY      DEFOCUS     GROUP    WEIGHT    ANGLE", "data_doc")
    for key, d, g, w, a in ((5, 21500, 3, 0.75, -12.5), (2, 15250.5, 1, 1.0, 33.25),
                            (9, 30100, 4, 0.125, 170), (3, 18000, 2, 0.5, -90),
                            (12, 21500, 3, 0.0625, 1.0e-4)):
        run.set(**{"def": d, "grp": g, "w": w, "ang": a})
        run(f"SD {key},[def],[grp],[w],[ang]", "data_doc")
    run.set(pix=2.82, kv=200)
    run("SD -1,[pix],[kv]", "data_doc")
    run.session.strings["mic"] = "mic_0042"
    run("SD //  pixel size {%F6.3%[pix]} A at {***[kv]} kV, raw [pix], from [mic]", "data_doc")
    run.set(**{"def": 17777.7, "grp": 2, "w": 0.3333333, "ang": 45})
    run("SD 2,[def],[grp],[w],[ang]", "data_doc")
    run.set(big=123456789, tiny=-0.000012345)
    run("SD 100,[big],[tiny]", "data_doc")
    run("SD E", "data_doc")

    run("UD 9,[a1],[a2],[a3],[a4]", "data_doc")
    run("SD 1,[a1],[a2],[a3],[a4]", "readback_doc")
    run("UD 2,[a1],[a2],[a3],[a4]", "data_doc")
    run("SD 2,[a1],[a2],[a3],[a4]", "readback_doc")
    run("UD -1,[p1],[p2]", "data_doc")
    run("SD 3,[p1],[p2]", "readback_doc")
    run("UD 100,[b1],[b2]", "data_doc")
    run("SD 4,[b1],[b2]", "readback_doc")
    run("UD E")
    run("UD N [maxkey],[ncols],[nkeys]", "data_doc.dat")      # with the extension too
    seen["UD N"] = {k: run.regs[k] for k in ("maxkey", "ncols", "nkeys")}
    run("SD 5,[maxkey],[ncols],[nkeys]", "readback_doc")
    run("UD S 3,[a1],[a2]", "data_doc")
    run("SD 6,[a1],[a2]", "readback_doc")
    run("UD E")
    run("UD IC 12,[a1],[a2],[a3],[a4]", "data_doc")
    run("SD 7,[a1],[a2],[a3],[a4]", "readback_doc")
    run("UD IC 5,[a1],[a2],[a3],[a4]", "data_doc")
    run("SD 8,[a1],[a2],[a3],[a4]", "readback_doc")
    run("UD ICE", "data_doc")
    run.set(n=0)
    while True:                                   # DO ... IF ([key] .LE. 0) EXIT ... ENDDO
        run("UD NEXT [key],[a1],[a2]", "data_doc")
        if run.regs["key"] <= 0:
            break
        run.set(n=run.regs["n"] + 1)
        run.set(rk=20 + run.regs["n"])
        run("SD [rk],[key],[a1],[a2]", "readback_doc")
    seen["UD NEXT end"] = {"key": run.regs["key"], "n": run.regs["n"]}
    run("UD NEXT E", "data_doc")
    run("UD FIND [key],[a1],[a2],[a3],[a4]", "data_doc", "2,2")
    seen["UD FIND"] = {k: run.regs[k] for k in ("key", "a1", "a2", "a3", "a4")}
    run("SD 40,[key],[a1],[a2],[a3],[a4]", "readback_doc")
    run("UD FIND [key],[a1],[a2]", "data_doc", "1,99999")
    seen["UD FIND none"] = {"key": run.regs["key"]}
    run("SD 41,[key]", "readback_doc")
    run("UD FIND E", "data_doc")
    run("SD E", "readback_doc")

    run("DOC SORT", "data_doc", "sort_def", "1", "Y,N")
    run("DOC SORT", "data_doc", "sort_ang_desc", "-4", "N,N")
    run("DOC SORT", "data_doc", "sort_key", "0", "Y,N")
    run("DOC SORT", "data_doc", "sort_grp_nodup", "2", "Y,Y")
    return seen


def test_case15_outputs_match_spider_byte_for_byte(run, golden, tmp_path):
    seen = _replay_case15(run)
    for name in CASE15_OUT:
        assert _masked(tmp_path / f"{name}.dat") == _masked(golden / CASE15 / f"{name}.dat"), name
    # the values SPIDER printed in results.spi.1
    assert seen["UD N"] == {"maxkey": 100.0, "ncols": 4.0, "nkeys": 7.0}
    assert seen["UD NEXT end"] == {"key": 0.0, "n": 6.0}
    assert seen["UD FIND"]["key"] == 2.0
    assert seen["UD FIND"]["a1"] == pytest.approx(17777.7, rel=1e-7)
    assert seen["UD FIND none"] == {"key": 0.0}
    log = "\n".join(run.session.logged)
    assert "Doc file has:4  registers and:7 keys,  Highest key in use:100" in log
    assert "NO DOCUMENT FILES LEFT IN-CORE" in log


def test_case15_header_and_comment_lines(run, tmp_path):
    _replay_case15(run)
    lines = (tmp_path / "data_doc.dat").read_text().splitlines()
    assert re.fullmatch(r" ;spi/dat   \d\d-[A-Z]{3}-\d{4} AT \d\d:\d\d:\d\d   data_doc\.dat",
                        lines[0])
    assert lines[1] == " ;   KEY      DEFOCUS     GROUP    WEIGHT    ANGLE"
    assert lines[8] == " ; PIXEL SIZE 2.820 A AT 200 KV, RAW [pix], FROM mic_0042"
    assert lines[7] == " ;       1 2   2.82000       200.000    "


@pytest.mark.parametrize("doc", SD_DOCS)
def test_sd_rewrites_the_sd_docs_of_every_case(run, golden, tmp_path, doc):
    src = golden / f"{doc}.dat"
    out = Path(doc).name
    lines = src.read_text().splitlines()
    for line in lines[1:]:
        toks = line.split()
        key, n = int(toks[0]), int(toks[1])
        run.set(**{f"r{i}": float(t) for i, t in enumerate(toks[2:2 + n], 1)})
        run(f"SD {key}," + ",".join(f"[r{i}]" for i in range(1, n + 1)), out)
    run("SD E", out)
    assert _masked(tmp_path / f"{out}.dat") == _masked(src)


# ----------------------------------------------------------------------------- SD details
def test_parse_items():
    assert parse_items("5,[def],[grp]") == ["5", "[def]", "[grp]"]
    assert parse_items(" 12 [a1] [a2]") == ["12", "[a1]", "[a2]"]
    assert parse_items("[k] + 1, [a]") == ["[k] + 1", "[a]"]
    assert parse_items("[k] -1,[a]") == ["[k]", "-1", "[a]"]
    assert parse_items("(2*[k]),[a b]") == ["(2*[k])", "[a b]"]


def test_sd_key_expression_truncation_and_errors(run, tmp_path):
    run.set(k=3.9, x=1.5)
    run("SD [k]+1,[x]", "d")
    run("SD -2.7,[x]", "d")
    run("SD E", "d")
    body = (tmp_path / "d.dat").read_text().splitlines()[1:]
    assert body == ["    4 1   1.50000     ", " ;       2 1   1.50000    "]
    with pytest.raises(OperationError, match="invalid key 0"):
        run("SD 0.5,[x]", "d")
    with pytest.raises(OperationError, match="saves no registers"):
        run("SD 5", "d")


def test_sd_appends_to_an_existing_file_without_a_new_header(run, tmp_path):
    run.set(x=1)
    run("SD 1,[x]", "d")
    run("SD E", "d")
    run("SD 2,[x]", "d")
    text = (tmp_path / "d.dat").read_text().splitlines()
    assert len(text) == 3 and text[0].startswith(" ;spi/dat") and text[2].startswith("    2 1")


def test_sd_starts_a_new_file_when_the_open_one_was_deleted(run, tmp_path):
    run.set(x=1)
    run("SD 1,[x]", "d")
    (tmp_path / "d.dat").unlink()
    run("SD 2,[x]", "d")
    lines = (tmp_path / "d.dat").read_text().splitlines()
    assert lines[0].startswith(" ;spi/dat") and [ln[:5] for ln in lines[1:]] == ["    2"]


def test_sd_refuses_a_file_held_by_ud(run, tmp_path):
    run.set(x=1)
    run("SD 1,[x]", "d")
    run("UD IC 1,[y]", "d")
    with pytest.raises(OperationError, match="UD ICE"):
        run("SD 2,[x]", "d")
    run("UD ICE", "d")
    run("UD 1,[y]", "d")
    with pytest.raises(OperationError, match="UD E"):
        run("SD 2,[x]", "d")
    run("UD E")
    run("SD 2,[x]", "d")
    assert read_doc(tmp_path / "d.dat").keys.tolist() == [1, 2]


def test_ud_closes_an_open_sd_file_and_sd_appends_after(run, tmp_path):
    run.set(x=7)
    run("SD 1,[x]", "d")               # no SD E
    run("UD 1,[y]", "d")
    assert run.regs["y"] == 7.0
    assert any("HASN'T BEEN CLOSED" in t for t in run.session.logged)
    run("UD E")
    run("SD 2,[x]", "d")
    run("SD E", "d")
    assert read_doc(tmp_path / "d.dat").keys.tolist() == [1, 2]


# ----------------------------------------------------------------------------- UD details
@pytest.fixture
def doc4(run, tmp_path):
    """keys 3, 1, 3, 2 (key 3 twice); 2-3 registers."""
    for key, a, b in ((3, 10, 11), (1, 20, 21), (3, 30, 31), (2, 40, 41)):
        run.set(a=a, b=b)
        run(f"SD {key},[a],[b]", "d4")
    run.set(a=50)
    run("SD 5,[a]", "d4")
    run("SD E", "d4")
    return tmp_path / "d4.dat"


def test_ud_s_goes_forward_and_wraps(run, doc4):
    got = []
    for _ in range(3):
        run("UD S 3,[a]", "d4")
        got.append(run.regs["a"])
    assert got == [10.0, 30.0, 10.0]
    run("UD 3,[a]", "d4")
    assert run.regs["a"] == 30.0          # last line of the key
    with pytest.raises(OperationError, match="key not found"):
        run("UD 4,[a]", "d4")


def test_ud_leaves_registers_past_the_line(run, doc4):
    run.set(c=-1)
    run("UD 5,[a],[c]", "d4")
    assert (run.regs["a"], run.regs["c"]) == (50.0, -1.0)
    assert any("left unchanged" in t for t in run.session.logged)


def test_ud_rereads_a_file_changed_on_disk(run, doc4):
    run("UD 1,[a]", "d4")
    text = doc4.read_text() + "    1 1   99.0000     \n"
    doc4.write_text(text)
    os.utime(doc4, ns=(1, 1))                # a new stamp whatever the clock resolution
    run("UD 1,[a]", "d4")
    assert run.regs["a"] == 99.0


def test_ud_next_restarts_and_find_continues_from_next(run, doc4):
    keys = []
    for _ in range(6):
        run("UD NEXT [k],[a],[b]", "d4")
        keys.append(run.regs["k"])
    assert keys == [1.0, 2.0, 3.0, 5.0, 0.0, 1.0]
    run("UD NEXT [k],[a],[b]", "d4")                 # now at key 2; FIND starts after it
    run("UD FIND [k],[a]", "d4", "1,20")            # key 1 is behind: not found
    assert run.regs["k"] == 0.0
    run("UD FIND [k],[a],[b]", "d4", "2,31")        # restarts from the top
    assert (run.regs["k"], run.regs["a"], run.regs["b"]) == (3.0, 30.0, 31.0)
    run("UD FIND [k],[a]", "d4", "1,50")
    assert (run.regs["k"], run.regs["a"]) == (5.0, 50.0)
    with pytest.raises(OperationError, match="not available"):
        run("UD FIND [k],[a]", "d4", "3,1")
    run("UD NEXT E", "d4")
    assert run.state["emsh.ops.docs"].incore == {}


def test_ud_ic_errors(run, doc4):
    with pytest.raises(OperationError, match="comment keys"):
        run("UD IC -1,[a]", "d4")
    with pytest.raises(OperationError, match="3 registers requested"):
        run("UD IC 1,[a],[b],[c]", "d4")
    with pytest.raises(OperationError, match="register variable"):
        run("UD IC 1,a", "d4")
    run("UD IC 5,[a],[b]", "d4")
    assert (run.regs["a"], run.regs["b"]) == (50.0, 0.0)
    with pytest.raises(OperationError, match="file not found"):
        run("UD 1,[a]", "missing")


def test_state_close_closes_writers(run):
    run.set(x=1)
    run("SD 1,[x]", "d")
    st: DocState = run.state["emsh.ops.docs"]
    assert len(st.writers) == 1
    st.close()
    assert st.writers == {}


# ----------------------------------------------------------------------------- DOC
def test_doc_sort_append_combine_create_stat(run, doc4, tmp_path):
    run("DOC SORT A", "d4", "s", "-1", "Y")
    run("DOC SORT A", "d4", "s", "0", "N")
    lines = (tmp_path / "s.dat").read_text().splitlines()
    assert [ln.split()[:3] for ln in lines] == [
        ["1", "2", "50.0000"], ["2", "2", "40.0000"], ["3", "2", "30.0000"],
        ["4", "2", "20.0000"], ["1", "2", "20.0000"], ["2", "2", "40.0000"],
        ["3", "2", "30.0000"], ["5", "2", "50.0000"]]          # no header: SORT A

    run("DOC CREATE", "sel001", "0", "4,7")
    run("DOC CREATE", "sel002", "2", "9")
    sel1, sel2 = read_doc(tmp_path / "sel001.dat"), read_doc(tmp_path / "sel002.dat")
    assert sel1.keys.tolist() == [4, 7] and sel1.values[:, 0].tolist() == [1.0, 1.0]
    assert sel2.keys.tolist() == [1] and sel2.row(0).tolist() == [0.0, 9.0]

    run("DOC COMBINE", "sel***", "1,2", "all")
    run("DOC COMBINE", "sel***", "2", "all")                 # appends, keys from 1 again
    comb = read_doc(tmp_path / "all.dat")
    assert comb.keys.tolist() == [1, 2, 3, 1]
    assert [r.tolist() for r in comb.rows()] == [[1.0], [1.0], [0.0, 9.0], [0.0, 9.0]]
    assert (tmp_path / "all.dat").read_text().count(";spi/dat") == 1

    n, lo, hi, tot, avg, sig = run("DOC STAT", "d4", "1")
    vals = np.array([20.0, 40.0, 30.0, 50.0])               # per key, last line
    assert (n, lo, hi, tot, avg) == (4.0, 20.0, 50.0, 140.0, 35.0)
    assert sig == pytest.approx(vals.std(ddof=1), rel=1e-6)


def test_doc_sort_replaces_an_existing_output_and_closes_its_writer(run, doc4, tmp_path):
    run.set(x=1)
    run("SD 1,[x]", "out")
    run("DOC SORT", "d4", "out", "1", "Y,N")
    doc = read_doc(tmp_path / "out.dat")
    assert doc.keys.tolist() == [1, 2, 3, 4] and doc.values[:, 0].tolist() == [20, 30, 40, 50]
    assert "emsh.ops.docs" in run.state and not run.state["emsh.ops.docs"].writers


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def case15_run(golden, tmp_path_factory):
    """Case 15's proc.spi run by the interpreter (Session.run_file, data extension dat) in
    an empty folder; returns that folder."""
    from emsh.session import Session

    work = tmp_path_factory.mktemp("case15")
    shutil.copy(golden / CASE15 / "proc.spi", work / "proc.spi")
    here = os.getcwd()
    os.chdir(work)
    try:
        session = Session(data_ext="dat", results=True, echo=False)
        session.run_file("proc.spi")
        session.close()
    finally:
        os.chdir(here)
    return work


@pytest.mark.parametrize("name", CASE15_OUT)
def test_case15_through_the_interpreter(case15_run, golden, name):
    mine, ref = read_doc(case15_run / f"{name}.dat"), read_doc(golden / CASE15 / f"{name}.dat")
    assert mine.keys.tolist() == ref.keys.tolist()                            # T0
    assert mine.nregs.tolist() == ref.nregs.tolist()
    scale = np.abs(ref.values).max()
    assert np.all(np.abs(mine.values - ref.values)
                  <= 1e-5 * np.abs(ref.values) + 1e-6 * scale)                # T5
    assert mine.comment_keys.keys() == ref.comment_keys.keys()
    # byte for byte but the date and time of the header: the layout of the header, the
    # SD / heading with its blanks, the data lines, the comment key and the SD // comment
    assert _masked(case15_run / f"{name}.dat") == _masked(golden / CASE15 / f"{name}.dat")


def test_case15_heading_keeps_its_blanks_through_the_interpreter(case15_run, golden):
    """``SD /  KEY      DEFOCUS`` keeps every blank of the text (the parser must hand raw
    operation text over as written)."""
    assert (case15_run / "data_doc.dat").read_text().splitlines()[1] == \
        " ;   KEY      DEFOCUS     GROUP    WEIGHT    ANGLE"
