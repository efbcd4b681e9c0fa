"""Atomic models -> density maps: bundled ADK, axis order and handedness, alignment."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from emsh.errors import DataFormatError, UsageError
from emsh.sim import models
from emsh.sim.models import (ADK_DOMAINS, AtomicModel, aligned_conformations, conformations,
                             load_model, model_to_map, save_model, superpose)


def _one_atom(xyz, element="S", b=0.0) -> AtomicModel:
    return AtomicModel(xyz=np.array([xyz], dtype=np.float64), element=np.array([element]),
                       b_iso=np.array([b]), occupancy=np.array([1.0]), atom_name=np.array([element]),
                       res_name=np.array(["MET"]), res_seq=np.array([1]), chain=np.array(["A"]))


def test_bundled_models_are_adk_chain_a_heavy_atoms():
    closed, opened = load_model("adk_closed"), load_model("adk_open")
    for m in (closed, opened):
        assert len(m) == 1656
        assert set(m.element) == {"C", "N", "O", "S"}
        assert set(m.chain) == {"A"}
        assert m.res_seq.min() == 1 and m.res_seq.max() == 214
    assert np.array_equal(closed.atom_name, opened.atom_name)
    # 1AKE and 4AKE differ by the LID/NMP closure: about 7 Å CA RMSD overall, ~2 Å on CORE
    _, _, rmsd_all = superpose(opened, closed)
    _, _, rmsd_core = superpose(opened, closed, ADK_DOMAINS["CORE"])
    assert 6.0 < rmsd_all < 8.5
    assert rmsd_core < 2.5


def test_axis_order_single_atom_peak():
    # atom at (x, y, z) = (+4, -2, +3) voxels from the centre -> peak at [z, y, x]
    apix, box = 1.5, 24
    m = _one_atom((4 * apix, -2 * apix, 3 * apix))
    vol = model_to_map(m, box, apix, centre=(0.0, 0.0, 0.0))
    assert vol.dtype == np.float32 and vol.shape == (box,) * 3 and vol.flags.c_contiguous
    c = box // 2
    assert np.unravel_index(np.argmax(vol), vol.shape) == (c + 3, c - 2, c + 4)


def test_density_sits_on_atoms_not_on_mirror():
    apix, box = 1.5, 64
    m = load_model("adk_closed")
    vol = model_to_map(m, box, apix)
    c = box // 2
    p = np.round((m.xyz - m.centre_of_mass()) / apix).astype(int) + c   # (x, y, z) voxels
    at_atoms = vol[p[:, 2], p[:, 1], p[:, 0]].mean()
    transposed = vol[p[:, 0], p[:, 1], p[:, 2]].mean()                  # the [x, y, z] mistake
    q = 2 * c - p                                                       # the inverted (mirror) hand
    mirror = vol[q[:, 2], q[:, 1], q[:, 0]].mean()
    assert at_atoms > 0.5 * vol.max()
    assert at_atoms > 2.0 * transposed
    assert at_atoms > 2.0 * mirror
    # centre of mass of the map is the box centre
    g = np.indices(vol.shape).reshape(3, -1)
    com = (g * vol.reshape(-1)).sum(1) / vol.sum()
    assert np.allclose(com, c, atol=0.1)


def test_blur_rule_and_resolution():
    apix, box = 2.0, 32
    m = _one_atom((0.0, 0.0, 0.0), "C", b=0.0)
    sharp = model_to_map(m, box, apix, centre=(0.0, 0.0, 0.0))
    blurred = model_to_map(m, box, apix, resolution=8.0, centre=(0.0, 0.0, 0.0))
    # the blur keeps the integral (sum * voxel volume, independent of the sampling) ...
    fine = model_to_map(m, 2 * box, apix / 2, resolution=8.0, centre=(0.0, 0.0, 0.0))
    assert blurred.sum() * apix**3 == pytest.approx(fine.sum() * (apix / 2) ** 3, rel=1e-4)
    # a sharp atom blurred only by the rule (sigma >= apix/2) is sampled with little
    # aliasing: its sample sum is its integral to within 2 exp(-pi^2/2) = 1.4 % (Poisson sum)
    assert sharp.sum() == pytest.approx(blurred.sum(), rel=0.025)
    # ... and widens the atom
    assert blurred.max() < 0.5 * sharp.max()
    assert models.resolution_to_b(8.0) == pytest.approx(256.0)


def test_conformations_share_core_and_differ_in_lid():
    apix, box = 2.0, 48
    maps = conformations(box, apix)
    closed, opened = maps["adk_closed"], maps["adk_open"]
    assert closed.shape == opened.shape == (box,) * 3
    assert closed.sum() == pytest.approx(opened.sum(), rel=1e-3)      # same atoms, same B
    mods, centre = aligned_conformations()
    c = box // 2

    def mean_at(vol, m, ranges):
        sel = (m.atom_name == "CA") & m.residues_in(ranges)
        p = np.round((m.xyz[sel] - centre) / apix).astype(int) + c
        return vol[p[:, 2], p[:, 1], p[:, 0]].mean()

    cl = mods["adk_closed"]
    core_own, core_other = mean_at(closed, cl, ADK_DOMAINS["CORE"]), mean_at(opened, cl, ADK_DOMAINS["CORE"])
    lid_own, lid_other = mean_at(closed, cl, ADK_DOMAINS["LID"]), mean_at(opened, cl, ADK_DOMAINS["LID"])
    assert core_other > 0.6 * core_own            # CORE superposed: density in both maps
    assert lid_other < 0.4 * lid_own              # LID moved away in the open state
    r = (closed * opened).sum() / np.sqrt((closed**2).sum() * (opened**2).sum())
    assert 0.3 < r < 0.9


def test_load_fixes_missing_element_column_and_drops_waters(tmp_path):
    lines = [
        "ATOM      1  N   GLY A   1       1.000   2.000   3.000  1.00 10.00",
        "ATOM      2  CA  GLY A   1       2.000   2.000   3.000  1.00 10.00",
        "ATOM      3  HA2 GLY A   1       2.500   2.500   3.000  1.00 10.00",
        "ATOM      4  C   GLY A   1       3.000   2.000   3.000  1.00 10.00",
        "ATOM      5  O   GLY A   1       3.500   3.000   3.000  1.00 10.00",
        "HETATM    6  O   HOH A 101       9.000   9.000   9.000  1.00 10.00",
        "HETATM    7 ZN    ZN A 102       8.000   8.000   8.000  1.00 10.00",
        "END",
    ]
    path = tmp_path / "md.pdb"
    path.write_text("\n".join(lines) + "\n")
    m = load_model(path)
    assert list(m.element) == ["N", "C", "C", "O"]
    assert list(m.atom_name) == ["N", "CA", "C", "O"]
    assert len(load_model(path, hydrogens=True)) == 5
    out = tmp_path / "round.pdb.gz"
    save_model(m, out)
    with gzip.open(out, "rt") as fh:
        assert "ATOM" in fh.read()
    back = load_model(out)
    assert np.allclose(back.xyz, m.xyz) and list(back.element) == list(m.element)


def test_errors(tmp_path):
    with pytest.raises(UsageError, match="adk_closed"):
        load_model("no_such_model")
    bad = tmp_path / "empty.pdb"
    bad.write_text("HETATM    1  O   HOH A   1       0.000   0.000   0.000  1.00 10.00\nEND\n")
    with pytest.raises(DataFormatError, match="empty.pdb"):
        load_model(bad)
    with pytest.raises(UsageError, match="larger box"):
        model_to_map("adk_closed", 16, 1.0)
    with pytest.raises(UsageError, match="box"):
        model_to_map("adk_closed", 100000, 1.0)
