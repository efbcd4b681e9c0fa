"""The defocus-group pipeline end to end (procedures/recon) on a small simulated data set.

Six 512-px micrographs of adenylate kinase at 3 Å/px (240 particles, 48-px boxes,
SNR 1, defocus 1-3 µm with astigmatism), three defocus groups, two refinement
iterations (15° then 8°, restricted to 15° around the previous direction). Every step
runs as emsh procedures through emsh.session, and the result is scored against the
simulation's truth.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import emsh.io as eio
from emsh.errors import UsageError
from emsh_defocus import pipeline as P
from emsh_defocus import score as S

MPIEXEC = Path(sys.executable).parent / "mpiexec"
EMSH = Path(sys.executable).parent / "emsh"

PARAMS = P.ReconParams(apix=3.0, box=48, radius=12, n_mics=6, n_groups=3, tile=128,
                       res_lo=30.0, res_hi=8.0, steps=(15.0, 8.0), ranges=(0.0, 15.0),
                       shifts=(2, 1), keep=0.9, merge_snr=2.0, start_res=25.0)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recon")
    P.simulate_project(folder, n_mics=6, per_mic=40, box=48, apix=3.0, mic_size=512, snr=1.0,
                       defocus_um=(1.0, 3.0), seed=3)
    times = P.run_pipeline(folder, PARAMS)
    return folder, times, S.evaluate(folder)


@pytest.mark.slow
def test_pipeline_recovers_defocus_particles_and_map(project):
    folder, times, r = project
    assert set(times) == set(P.STEPS)
    # measured: median defocus error 0.3 %, recall 0.98, precision 1.0
    assert r["defocus"]["median_defocus_err_pct"] < 2.0
    assert r["picking"]["recall"] >= 0.9 and r["picking"]["precision"] >= 0.9
    # measured 11.3 Å against the truth (true-angle reconstruction of the same
    # particles: 9.6 Å, ratio 0.85); the 25 Å start alone gives > 25 Å
    assert r["fsc_vs_truth_0.5_A"] < 16.0
    assert r["resolution_ratio"] > 0.8
    assert r["fsc_halves_0.143_A"] < 16.0
    # ADK at 3 Å/px is a 10-px blob: views are poorly defined (measured median view
    # error 15°, rotation error 17°); a wrong angle convention gives ~90°, a wrong
    # in-plane sign ~100° of rotation error with the same view error
    assert r["alignment"]["median_view_err_deg"] < 22.0
    assert r["alignment"]["median_rot_err_deg"] < 25.0
    assert r["alignment"]["n_kept"] >= 0.85 * r["alignment"]["n_matched"]
    assert [p["it"] for p in r["per_iteration"]] == [1, 2]


@pytest.mark.slow
def test_pipeline_writes_the_files_of_every_step(project):
    folder, _, r = project
    it = folder / "Refinement" / "it02"
    for f in ("Power_Spectra/pw001.spi", "Power_Spectra/groups.spi", "Particles/data003.spi",
              "Particles/coords/coo006.spi", "Refinement/ctf003.spi", "Reference/start.spi",
              "Refinement/final_map.spi", "Refinement/final_map_filtered.spi"):
        assert (folder / f).is_file(), f
    for png in ("cc_hist.png", "views.png", "fsc.png"):
        assert (it / png).stat().st_size > 2000, png
    assert (folder / "Refinement" / "final_fsc.png").is_file()
    # per-view averages: one per direction holding particles, each the mean of its members
    n_sel = sum(len(S._rows(it / f"good{g:03d}.spi")[0]) for g in (1, 2, 3))
    assert eio.read(it / "views" / "aligned.spi").shape == (n_sel, 48, 48)
    keys, cnt = S._rows(it / "views" / "counts.spi")
    v = int(keys[np.argmax(cnt[:, 0])])
    members = S._rows(it / "views" / f"sel{v:04d}.spi")[1][:, 0].astype(int)
    aligned = eio.read(it / "views" / "aligned.spi")
    avg = eio.read(f"{it / 'views' / 'avg.spi'}@{v}")
    assert np.allclose(avg, aligned[members - 1].mean(0), atol=1e-4)
    # the final map is the last iteration's merged volume
    assert np.array_equal(eio.read(folder / "Refinement" / "final_map.spi"),
                          eio.read(it / "vol.spi"))


def test_params_and_procedures_errors(tmp_path):
    with pytest.raises(UsageError, match="one value per iteration"):
        P.ReconParams(steps=(15.0, 8.0), ranges=(0.0,), shifts=(2, 1)).params_text()
    with pytest.raises(UsageError, match="no such procedure"):
        P.run_procedure(tmp_path, "refine")
    P.install_procedures(tmp_path, PARAMS)
    assert S.read_param(tmp_path, "steps") == "15,8"
    assert float(S.read_param(tmp_path, "acr")) == pytest.approx(0.0656, abs=1e-3)
    with pytest.raises(UsageError, match="no finished refinement"):
        S.last_iteration(tmp_path)
    edited = tmp_path / "procs" / "align.proc"
    edited.write_text(edited.read_text() + "; my change\n")
    with pytest.warns(UserWarning, match="kept your edited align.proc"):
        P.install_procedures(tmp_path, PARAMS)
    assert edited.read_text().endswith("; my change\n")
    P.install_procedures(tmp_path, PARAMS, overwrite=True)
    assert "; my change" not in edited.read_text()


def _one_iteration_copy(src: Path, dst: Path) -> None:
    for sub in ("Particles", "Power_Spectra", "Reference"):
        shutil.copytree(src / sub, dst / sub)
    (dst / "Refinement").mkdir()
    for f in (src / "Refinement").glob("ctf*.spi"):
        shutil.copyfile(f, dst / "Refinement" / f.name)
    one = P.ReconParams(**{**PARAMS.__dict__, "steps": (15.0,), "ranges": (0.0,),
                           "shifts": (2,)})
    P.install_procedures(dst, one)


@pytest.mark.slow
@pytest.mark.mpi
def test_two_ranks_give_the_serial_map(project, tmp_path):
    folder = project[0]
    a, b = tmp_path / "serial", tmp_path / "mpi"
    _one_iteration_copy(folder, a)
    _one_iteration_copy(folder, b)
    P.run_procedure(a, "refine")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3]))
    out = subprocess.run([str(MPIEXEC), "-n", "2", str(EMSH), "run", "procs/refine.proc"],
                         cwd=b, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    for name in ("align001.spi", "align003.spi"):
        ka, ra = S._rows(a / "Refinement" / "it01" / name)
        kb, rb = S._rows(b / "Refinement" / "it01" / name)
        assert np.array_equal(ka, kb)
        assert np.array_equal(ra[:, [3, 14]], rb[:, [3, 14]])      # reference, mirror
        # values are written with 2 decimals; the in-plane rotation (registers 6, 12) of
        # one image in ~70 moved by 0.18 deg between the serial and the 2-rank run
        # (AP SH's sub-sample refinement on a different image chunk), the rest by <= 0.01
        assert np.allclose(ra[:, [5, 11]], rb[:, [5, 11]], atol=0.25)
        rest = [j for j in range(15) if j not in (5, 11)]
        assert np.allclose(ra[:, rest], rb[:, rest], atol=0.011)
    va = eio.read(a / "Refinement" / "it01" / "vol.spi")
    vb = eio.read(b / "Refinement" / "it01" / "vol.spi")
    # measured 1.8e-3 of the maximum: RT SQ of angles that differ in the last decimal
    assert np.allclose(va, vb, atol=5e-3 * float(np.abs(va).max()))
