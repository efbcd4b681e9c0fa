"""The demo that `make demo` runs, on a smaller problem: real code path, scored against truth."""

import numpy as np

import emsh.io as eio
from emsh.demo import run
from emsh.io.star import read_star


def test_demo_reconstructs_the_truth_and_writes_readable_files(tmp_path, capsys):
    fig = run(n=32, n_particles=600, snr=2.0, apix=2.0, seed=3, out_root=tmp_path)
    out = tmp_path / "run-001"
    # measured 8.6 A and 8.3 A (Nyquist 4 A); a wrong shift or angle convention gives ~15 A
    assert fig["fsc_0.5_vs_truth_A"] < 9.5
    assert fig["fsc_0.143_halves_A"] < 9.5
    assert eio.read(out / "particles.mrcs").shape == (600, 32, 32)
    star = read_star(out / "particles.star")["particles"]
    assert len(star) == 600 and star["rlnImageName"][0] == "000001@particles.mrcs"
    truth = eio.read(out / "truth.mrc")
    m = eio.read(out / "map.mrc")
    assert np.corrcoef(truth.ravel(), m.ravel())[0, 1] > 0.95
    assert (out / "fsc.png").stat().st_size > 1000
    assert "gold-standard FSC 0.143 resolution" in capsys.readouterr().out
    # a second run never touches the first one's files
    run(n=32, n_particles=50, snr=2.0, apix=2.0, seed=3, out_root=tmp_path)
    assert (tmp_path / "run-002" / "map.mrc").exists()
    assert eio.read(out / "particles.mrcs").shape == (600, 32, 32)
