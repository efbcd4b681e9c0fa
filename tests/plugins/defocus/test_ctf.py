"""DG DEFOCUS and DG GROUPS: defocus and astigmatism against the simulation's truth,
defocus groups, bad input, and the same results under mpiexec."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emsh import io as eio
from emsh.errors import ProcedureError, UsageError
from emsh.io.docfile import read_doc
from emsh.ops import PLUGIN as BUILTIN
from emsh.parallel import SerialComm
from emsh.registry import Registry
from emsh.session import Session
from emsh_defocus import PLUGIN
from emsh_defocus.groups import defocus_groups
from emsh_defocus.power import power_spectrum
from emsh_defocus.simdata import simulate_dataset

BIN = Path(sys.executable).parent
N_MICS = 6

DEFOCUS = """DG DEFOCUS [n],[med]
Micrographs/mic***.mrc
{mics}
2.0, 300, 2.7, 0.07
{tile}, 30, 8
{spectra}
Power_Spectra/defocus
"""
GROUPS = """DG GROUPS [ng]
Power_Spectra/defocus
{groups}
Power_Spectra/def_groups
Power_Spectra/groups
"""
REGS = "SD 1,[n],[med],[ng]\nregs\nSD E\nregs\n"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dgctf")
    truth = simulate_dataset(folder, n_mics=N_MICS, per_mic=30, box=48, apix=2.0, mic_size=512,
                             snr=0.1, defocus_um=(1.0, 3.0), seed=3, astig_A=1000.0)
    return folder, truth


def _session():
    return Session(Registry([BUILTIN, PLUGIN]), SerialComm(), data_ext="spi", echo=False)


@pytest.fixture(scope="module")
def pipeline(dataset):
    """DG DEFOCUS then DG GROUPS, run from a procedure file in the data set's folder."""
    folder, truth = dataset
    proc = folder / "ctf.spi"
    proc.write_text(DEFOCUS.format(mics=f"1-{N_MICS}", tile=256, spectra="Power_Spectra/pw***")
                    + GROUPS.format(groups=3) + REGS)
    old = os.getcwd()
    os.chdir(folder)
    try:
        _session().run_file(proc)
    finally:
        os.chdir(old)
    return folder, truth


def test_defocus_and_astigmatism_match_the_truth(pipeline):
    folder, truth = pipeline
    doc = read_doc(folder / "Power_Spectra" / "defocus.spi")
    assert list(doc.keys) == list(range(1, N_MICS + 1)) and doc.n_cols == 5
    mic, df, astig, ang, score = doc.values.T
    assert np.array_equal(mic, doc.keys)
    rel = np.abs(df - truth.defocus_mean_A) / truth.defocus_mean_A
    assert np.median(rel) < 0.02 and rel.max() < 0.05
    # 512-px micrographs (9 tiles) measured over many seeds: astigmatism error median ~120 A
    assert np.median(np.abs(astig - truth.astig_A)) < 250.0
    big = truth.astig_A > 300.0                         # angles are defined for clear astigmatism
    dang = np.abs((ang - truth.defocus[:, 2] + 90.0) % 180.0 - 90.0)
    assert big.sum() >= 2 and np.median(dang[big]) < 20.0
    assert np.all((score > 0) & (score <= 1))
    n, med, ng = read_doc(folder / "regs.spi").get(1)
    assert n == N_MICS and ng == 3 and med == pytest.approx(np.median(df), rel=1e-5)
    # the written spectrum is the periodogram of the micrograph
    ps = eio.read(folder / "Power_Spectra" / "pw002.spi")
    mic2 = eio.read(folder / "Micrographs" / "mic002.mrc")
    assert np.allclose(ps, power_spectrum(mic2, 256), rtol=1e-4, atol=1e-6 * ps.max())


def test_groups_are_contiguous_and_balanced(pipeline):
    folder, _ = pipeline
    est = read_doc(folder / "Power_Spectra" / "defocus.spi").values
    mg = read_doc(folder / "Power_Spectra" / "def_groups.spi")
    assert list(mg.keys) == list(range(1, N_MICS + 1))
    assert np.allclose(mg.values[:, :2], est[:, :2])
    group = mg.values[:, 2].astype(int)
    assert np.bincount(group)[1:].tolist() == [2, 2, 2]
    df = mg.values[:, 1]
    for g in (1, 2):
        assert df[group == g].max() <= df[group == g + 1].min()
    gd = read_doc(folder / "Power_Spectra" / "groups.spi").values
    assert gd[:, 0].tolist() == [1, 2, 3] and gd[:, 1].tolist() == [2, 2, 2]
    for g in (1, 2, 3):
        d = df[group == g]
        assert gd[g - 1, 2:5] == pytest.approx([d.mean(), d.min(), d.max()], rel=1e-5)


def test_defocus_groups_kernel():
    rng = np.random.default_rng(8)
    d = rng.uniform(8000, 30000, 11)
    mics = np.arange(3, 14)
    g = defocus_groups(mics, d, 4)
    assert np.bincount(g.group)[1:].tolist() == [3, 3, 3, 2]
    order = np.argsort(d)
    assert np.all(np.diff(g.group[order]) >= 0)                 # contiguous in defocus
    s = g.summary()
    assert s[:, 0].tolist() == [1, 2, 3, 4] and np.all(s[:-1, 4] <= s[1:, 3])
    tie = defocus_groups([5, 1, 2, 9], [1e4, 1e4, 2e4, 2e4], 2)
    assert tie.group.tolist() == [1, 1, 2, 2]
    with pytest.raises(UsageError, match=r"number of groups must be 1\.\.11"):
        defocus_groups(mics, d, 12)
    with pytest.raises(UsageError, match="appears twice"):
        defocus_groups([1, 1], [1e4, 2e4], 1)


@pytest.mark.parametrize("mics, tile, groups, why", [
    ("1-7", 256, 3, "mic007.mrc: micrograph not found"),
    ("1-2", 32, 3, "tile size must be >= 64 px, got 32"),
    ("1-2", 1024, 3, "mic001.mrc: tile size 1024 px is larger than the micrograph"),
    ("1-2", 256, 5, "number of groups must be 1..2 (the number of micrographs), got 5"),
])
def test_bad_input_gives_one_line_errors(dataset, tmp_path, monkeypatch, mics, tile, groups, why):
    folder, _ = dataset
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Micrographs").symlink_to(folder / "Micrographs")
    proc = tmp_path / "bad.spi"
    proc.write_text(DEFOCUS.format(mics=mics, tile=tile, spectra="*")
                    + GROUPS.format(groups=groups))
    with pytest.raises(ProcedureError) as err:
        _session().run_file(proc)
    assert why in err.value.reason and "\n" not in err.value.reason


@pytest.mark.mpi
def test_two_ranks_write_what_one_writes(dataset, tmp_path):
    folder, _ = dataset
    proc = DEFOCUS.format(mics="1-3", tile=256, spectra="Power_Spectra/pw***")
    for run in ("serial", "mpi"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "Micrographs").symlink_to(folder / "Micrographs")
        (tmp_path / run / "d.spi").write_text(proc)
    serial = subprocess.run([str(BIN / "emsh"), "run", "d.spi"], cwd=tmp_path / "serial",
                            capture_output=True, text=True, timeout=120)
    assert serial.returncode == 0, serial.stderr
    mpi = subprocess.run([str(BIN / "mpiexec"), "-n", "2", str(BIN / "emsh"), "run", "d.spi"],
                         cwd=tmp_path / "mpi", capture_output=True, text=True, timeout=180)
    assert mpi.returncode == 0, mpi.stderr

    def table(run):
        lines = (tmp_path / run / "Power_Spectra" / "defocus.spi").read_text().splitlines()
        heads = [ln for ln in lines if ln.startswith(" ;") and "DEFOCUS" in ln]
        rows = [[float(v) for v in ln.split()] for ln in lines if not ln.startswith(" ;")]
        return heads, np.array(rows)

    # The same fits; FFT back ends chosen per process may round differently, so the
    # values agree to well below the printed precision rather than digit for digit.
    (h1, t1), (h2, t2) = table("serial"), table("mpi")
    assert h1 == h2 and t1.shape == t2.shape == (3, 7)
    assert np.array_equal(t1[:, :3], t2[:, :3])
    assert np.allclose(t1[:, 3:6], t2[:, 3:6], rtol=1e-4, atol=0.05)
    assert np.allclose(t1[:, 6], t2[:, 6], rtol=1e-3, atol=1e-4)
    for m in (1, 2, 3):
        a = eio.read(tmp_path / "serial" / "Power_Spectra" / f"pw{m:03d}.spi")
        b = eio.read(tmp_path / "mpi" / "Power_Spectra" / f"pw{m:03d}.spi")
        assert np.allclose(a, b, rtol=1e-5, atol=1e-7 * a.max())
