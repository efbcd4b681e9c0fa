"""DG PICK: the picker against the truth of simulated micrographs, matching, the operation
serially and under mpiexec."""

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emsh import io as eio
from emsh.errors import ProcedureError, UsageError
from emsh.io.docfile import read_doc
from emsh.parallel import SerialComm
from emsh.registry import Registry
from emsh.session import Session
from emsh_defocus import PLUGIN
from emsh_defocus.pick import auto_threshold, match_picks, pick_particles, score_map
from emsh_defocus.simdata import simulate_dataset

REPO = Path(__file__).resolve().parents[3]
MPIEXEC = Path(sys.executable).parent / "mpiexec"
BOX = 64


@pytest.fixture(autouse=True)
def _scipy_fft(monkeypatch):
    """No per-shape FFT backend timing: these tests are about picking."""
    monkeypatch.setenv("EMSH_FFT", "scipy")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """3 micrographs of 512 px, 20 ADK particles each, 2 A/px, SNR 0.1, defocus 1-3 um."""
    folder = tmp_path_factory.mktemp("sim")
    old = os.environ.get("EMSH_FFT")
    os.environ["EMSH_FFT"] = "scipy"
    try:
        truth = simulate_dataset(folder, n_mics=3, per_mic=20, box=BOX, apix=2.0,
                                 mic_size=512, snr=0.1, defocus_um=(1.0, 3.0), seed=6)
    finally:
        if old is None:
            os.environ.pop("EMSH_FFT")
        else:
            os.environ["EMSH_FFT"] = old
    return folder, truth


def run_proc(folder, text):
    s = Session(Registry([PLUGIN]), SerialComm(), data_ext="spi", out=io.StringIO())
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        s.run_text(text)
    finally:
        os.chdir(cwd)
    return s


# ----------------------------------------------------------------------------- the picker

def test_recall_and_precision_on_simulated_micrographs(dataset):
    folder, truth = dataset
    assert 1.0 <= truth.defocus_mean_A.min() / 1e4 and truth.defocus_mean_A.max() / 1e4 <= 3.0
    hits = picks = 0
    for m in range(1, 4):
        mic = eio.read(folder / "Micrographs" / f"mic{m:03d}.mrc")
        xy, score = pick_particles(mic, truth.radius, BOX)
        assert np.all(np.diff(score) <= 0)                       # highest first
        assert np.all(xy == np.round(xy)) and xy.min() >= 1      # 1-based pixels
        _, _, index = match_picks(xy, truth.subpixel[m - 1], truth.radius / 2)
        hits += int(np.sum(index >= 0))
        picks += len(xy)
    recall, precision = hits / 60, hits / picks
    assert recall >= 0.9, (recall, precision)
    assert precision >= 0.8, (recall, precision)


def test_wrong_polarity_finds_little(dataset):
    folder, truth = dataset
    mic = eio.read(folder / "Micrographs" / "mic001.mrc")
    xy, _ = pick_particles(mic, truth.radius, BOX, polarity=-1)
    recall, precision, _ = match_picks(xy, truth.subpixel[0], truth.radius / 2)
    assert precision < 0.5
    # a dark copy (raw-micrograph contrast) is picked as well with polarity -1
    good, _ = pick_particles(mic, truth.radius, BOX)
    dark, _ = pick_particles(-mic, truth.radius, BOX, polarity=-1)
    assert np.array_equal(good, dark)


def test_isolated_blobs_are_found_exactly_with_edges_and_spacing_respected(rng):
    H = W = 256
    yy, xx = np.mgrid[:H, :W]
    centres = np.array([[60, 70], [140, 60], [200, 190], [90, 180], [180, 120]])  # 0-based
    mic = rng.normal(0, 1, (H, W)).astype(np.float32)
    for x, y in centres:
        mic += 3.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 4.0 ** 2))
    mic += 4.0 * np.exp(-((xx - 12) ** 2 + (yy - 128) ** 2) / (2 * 4.0 ** 2))
    xy, score = pick_particles(mic, 10, 48)
    recall, precision, _ = match_picks(xy, centres + 1.0, 1.5)
    assert recall == 1.0 and precision == 1.0
    assert np.all(xy >= 48 // 2 + 1) and np.all(xy <= 256 - 48 + 48 // 2 + 1)
    xy3, _ = pick_particles(mic, 10, 48, max_picks=3)
    assert np.array_equal(xy3, xy[:3])
    high, s_high = pick_particles(mic, 10, 48, threshold=float(score.max()) - 1e-3)
    assert len(high) == 1 and np.array_equal(high[0], xy[0])
    d = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1))
    assert d[np.triu_indices(len(xy), 1)].min() >= 20


def test_score_map_is_in_sd_units_on_noise(rng):
    z = score_map(rng.normal(size=(256, 256)).astype(np.float32), 8, 32)
    inner = z[16:241, 16:241]                  # the centres whose 32 px box fits
    assert abs(np.median(inner)) < 1e-5 and np.all(z[:16] == 0)
    assert 0.9 < np.median(np.abs(inner)) * 1.4826 < 1.1


def test_auto_threshold_splits_two_populations(rng):
    h = np.concatenate([rng.normal(2, 0.3, 300), rng.normal(6, 0.5, 40)])
    t = auto_threshold(h)
    assert 3.0 < t < 5.0
    assert auto_threshold([3.0]) == float("-inf")


def test_match_picks_is_one_to_one():
    true = np.array([[10.0, 10.0], [30.0, 10.0], [50.0, 50.0]])
    picked = np.array([[11.0, 10.0], [12.0, 10.0], [29.0, 11.0], [90.0, 90.0]])
    recall, precision, index = match_picks(picked, true, 3.0)
    assert recall == pytest.approx(2 / 3) and precision == pytest.approx(2 / 4)
    assert index.tolist() in ([0, -1, 1, -1], [-1, 0, 1, -1])
    assert index[0] == 0                       # the closer pick gets the particle
    assert match_picks(np.zeros((0, 2)), true, 3.0)[:2] == (0.0, 0.0)
    assert match_picks(np.zeros((0, 2)), np.zeros((0, 2)), 3.0)[:2] == (1.0, 1.0)


def test_bad_picker_input_is_refused():
    with pytest.raises(UsageError, match="larger than"):
        pick_particles(np.zeros((40, 40), np.float32), 10, 64)
    with pytest.raises(UsageError, match="diameter"):
        pick_particles(np.zeros((128, 128), np.float32), 20, 32)
    with pytest.raises(UsageError, match="polarity"):
        pick_particles(np.zeros((128, 128), np.float32), 8, 32, polarity=0)


# ----------------------------------------------------------------------------- the operation

PICK = "DG PICK [n]\nMicrographs/mic***.mrc\n1-3\n{r},64\n0,0\nParticles/coords/coo***\n"


def test_dg_pick_writes_one_doc_per_micrograph(dataset):
    folder, truth = dataset
    s = run_proc(folder, PICK.format(r=truth.radius))
    total = 0
    for m in range(1, 4):
        doc = read_doc(folder / "Particles" / "coords" / f"coo{m:03d}.spi")
        xy, score = pick_particles(eio.read(folder / "Micrographs" / f"mic{m:03d}.mrc"),
                                   truth.radius, BOX)
        assert np.array_equal(doc.keys, np.arange(1, len(xy) + 1))
        assert np.allclose(doc.values[:, :2], xy) and np.allclose(doc.values[:, 2], score,
                                                                   atol=1e-3)
        total += len(xy)
    assert s.get_register("n") == total


def test_dg_pick_errors_are_one_line(dataset, tmp_path):
    folder, truth = dataset
    with pytest.raises(ProcedureError, match="mic009.mrc.*not found"):
        run_proc(folder, PICK.replace("1-3", "9").format(r=truth.radius))
    eio.write(tmp_path / "mic001.mrc", np.zeros((48, 48), np.float32))
    with pytest.raises(ProcedureError, match="larger than micrograph 1") as err:
        run_proc(tmp_path, "DG PICK\nmic***.mrc\n1\n10,64\n0\ncoo***\n")
    assert "\n" not in err.value.reason and "mic001.mrc: 48x48 px" in err.value.reason


@pytest.mark.mpi
def test_dg_pick_under_mpiexec_equals_serial(dataset, tmp_path):
    folder, truth = dataset
    (tmp_path / "proc.spi").write_text(
        PICK.format(r=truth.radius).replace("Micrographs/", f"{folder}/Micrographs/")
        + "[n]\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), EMSH_FFT="scipy")
    cmd = [sys.executable, "-m", "emsh", "run", "proc.spi"]
    for name, prefix in (("serial", []), ("mpi", [str(MPIEXEC), "-n", "2"])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "proc.spi").write_text((tmp_path / "proc.spi").read_text())
        done = subprocess.run(prefix + cmd, cwd=tmp_path / name, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    for m in range(1, 4):
        a = read_doc(tmp_path / "serial" / "Particles" / "coords" / f"coo{m:03d}.spi")
        b = read_doc(tmp_path / "mpi" / "Particles" / "coords" / f"coo{m:03d}.spi")
        assert a.n_lines > 5
        assert np.array_equal(a.keys, b.keys) and np.array_equal(a.values, b.values)
