"""The demo that `make demo` runs, on a smaller problem: real code path, scored against truth."""

import pytest

import emsh.io as eio
from emsh.demo import _new_run_folder, run


@pytest.mark.slow
def test_demo_runs_the_defocus_pipeline_into_a_new_folder(tmp_path, capsys):
    (tmp_path / "run-001").mkdir()                     # an earlier run: left alone
    (tmp_path / "run-001" / "keep.txt").write_text("x")
    fig = run(n_mics=4, per_mic=40, steps=(15.0,), seed=5, out_root=tmp_path)
    out = tmp_path / "run-002"
    assert fig["folder"] == str(out)
    assert (tmp_path / "run-001" / "keep.txt").read_text() == "x"
    # the 25 Å start alone scores > 25 Å against the truth; one 15° pass on ~150
    # particles reaches ~13-15 Å (Nyquist 6 Å)
    assert fig["fsc_0.5_vs_truth_A"] < 20.0
    assert fig["defocus_median_err_pct"] < 2.0
    assert fig["picking_recall"] > 0.85
    m = eio.read(out / "Refinement" / "final_map.spi")
    assert m.shape == (48, 48, 48)
    assert (out / "Refinement" / "final_fsc.png").stat().st_size > 2000
    assert (out / "Refinement" / "it01" / "views.png").is_file()
    text = capsys.readouterr().out
    assert "final resolution (FSC of half maps)" in text and "final_map.spi" in text


def test_run_folders_are_numbered_and_never_reused(tmp_path):
    a = _new_run_folder(tmp_path)
    b = _new_run_folder(tmp_path)
    assert (a.name, b.name) == ("run-001", "run-002")
    (tmp_path / "run-007").mkdir()
    assert _new_run_folder(tmp_path).name == "run-008"
