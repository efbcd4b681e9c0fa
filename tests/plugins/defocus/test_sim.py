"""DG SIM: the simulated data set and its truth files agree with the micrographs."""

import numpy as np
import pytest

from emsh import fft as _fft
from emsh import io as eio
from emsh.errors import ProcedureError, UsageError
from emsh.io.docfile import read_doc
from emsh.kernels.ctf import CTFParams, ctf_2d
from emsh.kernels.project import FourierProjector
from emsh.parallel import SerialComm
from emsh.registry import Registry
from emsh.session import Session
from emsh.ops import PLUGIN as BUILTIN
from emsh_defocus import PLUGIN
from emsh_defocus.simdata import load_truth, simulate_dataset

APIX, BOX, SIZE = 2.0, 48, 512   # the sizes of test_ctf.py: FFT plans are shared


@pytest.fixture(scope="module")
def clean_set(tmp_path_factory):
    """Nearly noiseless, few particles, low defocus: each particle checkable on its own."""
    folder = tmp_path_factory.mktemp("dgsim_clean")
    truth = simulate_dataset(folder, n_mics=2, per_mic=8, box=BOX, apix=APIX, mic_size=SIZE,
                             snr=1e4, defocus_um=(0.6, 0.9), seed=11, astig_A=300.0,
                             background=0.0)
    return folder, truth


def _ctf_projections(truth, mic, pad):
    """The CTF-modulated projections of micrograph ``mic``'s particles in ``pad`` boxes."""
    proj = FourierProjector(truth.volume).project(truth.angles_of(mic))
    big = np.zeros((len(proj), pad, pad), np.float32)
    o = pad // 2 - BOX // 2
    big[:, o:o + BOX, o:o + BOX] = proj
    u, v, a = truth.defocus[mic - 1]
    p = CTFParams(u, v, a, truth.kv, truth.cs, truth.amp, 50.0, 0.0, truth.apix)
    return _fft.irfftn(_fft.rfftn(big) * ctf_2d(p, (pad, pad)), (pad, pad), 2)


def test_truth_coordinates_land_on_the_projections(clean_set):
    folder, truth = clean_set
    pad, search = 96, 3
    hits, ccs = 0, []
    for m in (1, 2):
        mic = eio.read(folder / "Micrographs" / f"mic{m:03d}.mrc")
        refs = _ctf_projections(truth, m, pad)
        r = refs.reshape(len(refs), -1)
        r = (r - r.mean(1, keepdims=True)) / r.std(1, keepdims=True)
        bigm = np.pad(mic, pad)
        for k, (x, y) in enumerate(truth.coords[m - 1]):
            ix, iy = int(x) - 1 + pad, int(y) - 1 + pad          # 1-based -> 0-based
            best, at = -2.0, None
            for dy in range(-search, search + 1):
                for dx in range(-search, search + 1):
                    y0, x0 = iy + dy - pad // 2, ix + dx - pad // 2
                    w = bigm[y0:y0 + pad, x0:x0 + pad].ravel()
                    cc = float(np.dot((w - w.mean()) / w.std(), r[k]) / w.size)
                    if cc > best:
                        best, at = cc, (dx, dy)
            hits += at == (0, 0)
            ccs.append(best)
    # every particle's CTF-modulated projection peaks exactly at its written centre pixel
    assert hits == 16
    assert np.median(ccs) > 0.8


def test_truth_files_round_trip_and_layout(clean_set):
    folder, truth = clean_set
    back = load_truth(folder)
    assert back.n_mics == 2 and back.n_particles == 16 and back.box == BOX
    assert back.apix == APIX and back.kv == 300.0 and back.amp == pytest.approx(0.07)
    assert np.allclose(back.defocus, truth.defocus, rtol=1e-5, atol=1e-3)
    assert np.array_equal(np.concatenate(back.coords), np.concatenate(truth.coords))
    assert np.allclose(back.angles, truth.angles, atol=1e-3)
    assert np.array_equal(back.volume, truth.volume)
    assert back.radius == pytest.approx(truth.radius, abs=1e-4)
    assert sorted(p.name for p in (folder / "Micrographs").iterdir()) == ["mic001.mrc",
                                                                          "mic002.mrc"]
    assert eio.read(folder / "Micrographs" / "mic001.mrc").shape == (SIZE, SIZE)
    assert (folder / "truth" / "coords002.spi").is_file()
    # the exact centres are within half a pixel of the written pixels
    for c, s in zip(truth.coords, truth.subpixel):
        assert np.all(np.abs(c - s) <= 0.5)


def test_dataset_statistics(tmp_path):
    truth = simulate_dataset(tmp_path, n_mics=4, per_mic=40, box=BOX, apix=APIX,
                             mic_size=SIZE, snr=0.1, defocus_um=(1.0, 2.5), seed=5,
                             astig_A=400.0)
    mean, astig = truth.defocus_mean_A, truth.astig_A
    assert np.all((mean >= 1e4) & (mean <= 2.5e4)) and np.ptp(mean) > 1000
    assert np.all((astig >= 0) & (astig <= 400)) and len(set(truth.defocus[:, 2])) == 4
    dmin = 2 * truth.radius + 1
    for xy in truth.subpixel:
        d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
        assert d[np.triu_indices(len(xy), 1)].min() >= dmin
    allxy = np.concatenate(truth.coords) - 1                     # 0-based centre pixels
    assert allxy.min() >= BOX // 2 and allxy.max() <= SIZE - BOX + BOX // 2
    # directions uniform on the sphere, psi uniform
    cos_t = np.cos(np.radians(truth.angles[:, 1]))
    assert abs(cos_t.mean()) < 0.15 and 0.25 < np.var(cos_t) < 0.42      # uniform: 0, 1/3
    assert np.histogram(truth.angles[:, 0], bins=4, range=(0, 360))[0].min() > 20
    assert truth.angles[:, 2].max() - truth.angles[:, 2].min() > 300


def test_snr_is_signal_over_noise_variance(tmp_path):
    """Same seed, two SNRs: the micrographs differ only by the noise, which gives both the
    noiseless signal and the noise, so the SNR of the docstring can be measured."""
    kw = dict(n_mics=1, per_mic=20, box=BOX, apix=APIX, mic_size=SIZE, defocus_um=(1.5, 1.5),
              seed=3, background=0.0)
    ta = simulate_dataset(tmp_path / "a", snr=0.05, **kw)
    simulate_dataset(tmp_path / "b", snr=0.2, **kw)
    a = eio.read(tmp_path / "a" / "Micrographs" / "mic001.mrc").astype(np.float64)
    b = eio.read(tmp_path / "b" / "Micrographs" / "mic001.mrc").astype(np.float64)
    k = 2.0                          # noise_a = 2 noise_b (sigma ~ 1/sqrt(snr))
    signal = (k * b - a) / (k - 1.0)
    noise_a = a - signal
    t = np.arange(BOX) - BOX // 2
    disc = (t[:, None] ** 2 + t[None, :] ** 2) <= ta.radius ** 2
    var = [signal[int(y) - 1 - BOX // 2:int(y) - 1 - BOX // 2 + BOX,
                  int(x) - 1 - BOX // 2:int(x) - 1 - BOX // 2 + BOX][disc].var()
           for x, y in ta.coords[0]]
    assert np.mean(var) / noise_a.var() == pytest.approx(0.05, rel=0.05)


def test_dg_sim_operation_and_bad_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    proc = tmp_path / "sim.spi"
    proc.write_text("DG SIM [nm],[np] seed=4 astig_A=200\nset\n2, 5\n48, 2.0\n512\n"
                    "0.1, 1.0, 2.0\nSD 1,[nm],[np]\nregs\nSD E\nregs\n")
    s = Session(Registry([BUILTIN, PLUGIN]), SerialComm(), data_ext="spi", echo=False)
    s.run_file(proc)
    assert list(read_doc(tmp_path / "regs.spi").get(1)) == [2, 10]
    truth = load_truth(tmp_path / "set")
    assert truth.n_particles == 10 and np.all(truth.astig_A <= 200)
    assert len(list((tmp_path / "set" / "truth").glob("coords*.spi"))) == 2
    bad = tmp_path / "bad.spi"
    bad.write_text("DG SIM [nm],[np]\nset2\n2, 5\n48, 2.0\n64\n0.1, 1.0, 2.0\n")
    with pytest.raises(ProcedureError) as err:
        s.run_file(bad)
    assert "micrograph size 64 px is less than twice the box" in err.value.reason
    assert "\n" not in err.value.reason
    with pytest.raises(UsageError, match="defocus min <= max"):
        simulate_dataset(tmp_path / "x", n_mics=1, per_mic=1, box=48, apix=2.0, mic_size=256,
                         snr=0.1, defocus_um=(3.0, 1.0))
