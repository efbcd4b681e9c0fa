"""Golden case 18 (the language): ``emsh run proc.spi --data-ext dat`` must reproduce what
the real SPIDER wrote: lang_doc.dat (keys T0, values T5) and the files named by templates
(names T0; their pixels, made by MO, exactly)."""

import shutil
import subprocess
import sys

import numpy as np
import pytest

import emsh.io as eio
from emsh.io.docfile import read_doc
from emsh.lang.checker import check_file

MADE = {"obj_g07_001.dat", "obj_g07_002.dat", "obj_g07_003.dat", "obj_g12_012.dat",
        "tmpl005.dat", "fmt_5_12.dat"}


@pytest.fixture
def case18(golden, tmp_path):
    src = golden / "18-language"
    for p in src.glob("*.spi"):
        shutil.copy(p, tmp_path / p.name)
    return src, tmp_path


def test_golden18_run_reproduces_spider(case18):
    src, work = case18
    done = subprocess.run([sys.executable, "-m", "emsh", "run", "proc.spi", "--data-ext", "dat"],
                          cwd=work, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    made = {p.name for p in work.iterdir() if not p.name.endswith(".spi")}
    assert made == MADE | {"lang_doc.dat", "results.spi.1"}

    ours, spider = read_doc(work / "lang_doc.dat"), read_doc(src / "lang_doc.dat")
    assert ours.keys.tolist() == spider.keys.tolist()
    assert ours.nregs.tolist() == spider.nregs.tolist()
    v, w = spider.values, ours.values
    assert np.all(np.abs(v - w) <= 1e-5 * np.abs(v) + 1e-6), np.abs(v - w).max()
    # the quirks, by key: 2**3**2, -3**2, INT(-7.5), loop indices, recursion, by-reference
    row = dict(zip(ours.keys.tolist(), ours.values.tolist()))
    assert row[2][1:3] == [512.0, -9.0] and row[3][1] == -7.0
    assert row[10][1] == 10 and row[11][1] == 1 and row[13][1] == 12
    assert row[41][0] == 3 and row[40][:2] == pytest.approx([6.11, 1.5], abs=1e-6)
    assert row[43][1] == 99

    for name in MADE:
        np.testing.assert_array_equal(eio.read(work / name), eio.read(src / name))

    log = (work / "results.spi.1").read_text()
    assert " .OPERATION: @lang_scale([u],[s])" in log
    assert log.count("-- START OF: lang_inner.spi --") == 5  # 1 + 3 (recursion) + 1


def test_golden18_checks_clean(case18, monkeypatch):
    _, work = case18
    monkeypatch.chdir(work)
    assert [str(p) for p in check_file("proc.spi", data_ext="dat")] == []
