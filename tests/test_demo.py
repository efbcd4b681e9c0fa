"""The demo that `make demo` runs, on a smaller problem: real code path, scored against truth."""

import numpy as np

import emsh.io as eio
from emsh.demo import run
from emsh.io.star import read_star


def test_demo_reconstructs_the_truth_and_writes_readable_files(tmp_path, capsys):
    fig = run(n=32, n_particles=800, snr=0.5, apix=3.0, seed=3, out_root=tmp_path)
    out = tmp_path / "run-001"
    # measured 6.46 A against the truth and 6.48 A between halves (Nyquist 6 A); a wrong
    # shift, angle or CTF convention costs several Angstrom
    assert fig["fsc_0.5_vs_truth_A"] < 7.0
    assert fig["fsc_0.143_halves_A"] < 7.0
    assert eio.read(out / "particles.mrcs").shape == (800, 32, 32)
    star = read_star(out / "particles_truth.star")
    assert len(star["particles"]) == 800
    truth = eio.read(out / "truth.mrc")
    m = eio.read(out / "map.mrc")
    assert np.corrcoef(truth.ravel(), m.ravel())[0, 1] > 0.88  # measured 0.91 (noisy, Wiener-filtered)
    assert (out / "fsc.png").stat().st_size > 1000
    assert "gold-standard FSC 0.143 resolution" in capsys.readouterr().out
    # a second run never touches the first one's files
    run(n=32, n_particles=50, snr=0.5, apix=3.0, seed=3, out_root=tmp_path)
    assert (tmp_path / "run-002" / "map.mrc").exists()
    assert eio.read(out / "particles.mrcs").shape == (800, 32, 32)
