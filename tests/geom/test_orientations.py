"""Orientation generators: SPIDER VO EA against the golden files, EMAN2's generator, grids."""

from __future__ import annotations

import re

import numpy as np
import pytest

from emsh.errors import UsageError
from emsh.geom.euler import angular_distance_sym, doc_angles_to_matrix, projection_direction
from emsh.geom.orientations import eman_orientations, even_sphere, so3_grid, voea
from emsh.geom.symmetry import Symmetry
from emsh.io.docfile import read_doc

CASE = "11-voea-pj3q"
# (doc file, answers given to VO EA in proc.spi, number of directions SPIDER reported)
VOEA_RUNS = [
    ("ang15", (15, (0, 0), (0, 0)), 84),
    ("ang30", (30, (0, 90), (0, 359.9)), 20),
    ("ang20r", (20, (30, 120), (10, 190)), 30),
]


def _six_figures(x: np.ndarray) -> np.ndarray:
    return np.array([float(f"{v:.6g}") for v in np.ravel(x)]).reshape(np.shape(x))


@pytest.mark.parametrize("name, answers, count", VOEA_RUNS)
def test_voea_reproduces_spider_exactly(golden, name, answers, count):
    doc = read_doc(golden / CASE / f"{name}.dat")
    assert doc.n_lines == count
    np.testing.assert_array_equal(doc.keys, np.arange(1, count + 1))
    assert np.all(doc.nregs == 3)
    ours = voea(*answers)
    assert ours.shape == (count, 3)
    # T0: our angles printed to 6 significant figures equal the printed doc values
    np.testing.assert_array_equal(_six_figures(ours), doc.values)


def test_voea_counts_match_spider_log(golden):
    log = (golden / CASE / "results.spi.1").read_text()
    reported = [int(n) for n in re.findall(r"NUMBER OF DIRECTIONS:\s*(\d+)", log)]
    assert reported == [len(voea(*answers)) for _, answers, _ in VOEA_RUNS]


def test_voea_known_structure():
    a = voea(15)
    _, rings = np.unique(a[:, 1], return_counts=True)
    assert rings.tolist() == [1, 5, 10, 15, 19, 22, 12]  # theta 0, 15, .., 90
    assert np.all(a[:, 0] == 0)
    eq = a[a[:, 1] == 90, 2]
    assert eq.max() < 180  # default range: theta = 90 keeps phi < 180 only
    np.testing.assert_array_equal(voea(30)[1:5, 2], np.float32([0, 89.975, 179.95, 269.925]))


def test_voea_defaults():
    ref = voea(15, (0, 90), (0, 359.9))
    np.testing.assert_array_equal(voea(15, (0, 0), (0, 0)), ref)
    np.testing.assert_array_equal(voea(None, None, None), ref)
    np.testing.assert_array_equal(voea(), ref)
    # a non-default phi range disables the equator cut
    full = voea(15, (0, 90), (0.5, 359.9))
    assert len(full) > len(ref) and full[full[:, 1] == 90, 2].max() > 180
    assert len(voea(10, (50, 40))) == 0  # empty theta range, as a Fortran DO loop


@pytest.mark.parametrize("bad", [dict(delta=0), dict(delta=-5), dict(delta=float("nan")),
                                 dict(theta_range=(0, "x")), dict(delta=1e-5)])
def test_voea_rejects_bad_input(bad):
    with pytest.raises(UsageError):
        voea(**bad)


# ------------------------------------------------------------------ EMAN2 generator


def test_eman_counts_c1():
    # EMAN2 libEM/symmetry.cpp EmanOrientationGenerator, delta 15/10/5 (inc_mirror=0)
    assert [len(eman_orientations(d, "c1")) for d in (15, 10, 5)] == [93, 210, 833]
    assert [len(eman_orientations(d, "c1", inc_mirror=True)) for d in (15, 10, 5)] == [185, 419, 1665]
    assert len(eman_orientations(5, "c2")) == 436
    assert len(eman_orientations(5, "c4")) == 221


def test_eman_angles_follow_eman_transform():
    a = eman_orientations(15, "c1")
    np.testing.assert_array_equal(a[0], [0.0, 0.0, 0.0])  # the pole
    ring = a[a[:, 1] == 15]
    assert np.all(ring[:, 0] == 90.0)  # EMAN2 phi = 0 is SPIDER psi = 90
    h = 15 / np.sin(np.radians(15))
    np.testing.assert_allclose(np.mod(ring[:, 2] + 90, 360), np.arange(len(ring)) * h, atol=1e-3)
    # odd C at the equator keeps only half the circle (az <= 180)
    eq = a[a[:, 1] == 90]
    assert len(eq) == 13 and np.mod(eq[:, 2] + 90, 360).max() == pytest.approx(180.0)


@pytest.mark.parametrize("name, delta", [("c1", 10), ("c4", 10), ("d7", 10), ("tet", 8), ("oct", 8), ("icos", 5)])
@pytest.mark.parametrize("inc_mirror", [True, False])
def test_eman_points_fill_the_asymmetric_unit(rng, name, delta, inc_mirror):
    sym = Symmetry.parse(name)
    a = eman_orientations(delta, sym, inc_mirror=inc_mirror)
    assert sym.in_asymmetric_unit(a[:, 2], a[:, 1], inc_mirror).all()
    # every direction on the sphere is within delta of a generated one (or its mate)
    dirs = projection_direction(a[:, 2], a[:, 1])
    v = rng.normal(size=(2000, 3))
    v /= np.linalg.norm(v, axis=1)[:, None]
    mates = np.einsum("kji,nj->nki", sym.operators, v)
    if not inc_mirror:
        mates = np.concatenate([mates, -mates], axis=1)
    cos = np.einsum("nkc,mc->nkm", mates, dirs).max(axis=(1, 2))
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < delta


def test_eman_perturb_and_breaksym():
    with pytest.raises(UsageError):
        eman_orientations(10, "c1", perturb=True)
    base = eman_orientations(10, "c1")
    p1 = eman_orientations(10, "c1", perturb=True, rng=np.random.default_rng(5))
    p2 = eman_orientations(10, "c1", perturb=True, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(p1, p2)
    assert p1.shape == base.shape
    shift = np.abs(p1[1:, 1] - base[1:, 1])
    assert 0 < shift.mean() < 10 / 8 * 1.5 and np.array_equal(p1[0], base[0])
    sym = Symmetry.parse("c3")
    one = eman_orientations(10, sym, inc_mirror=True)
    full = eman_orientations(10, sym, inc_mirror=True, breaksym=True)
    assert len(full) == 3 * len(one)
    upper = eman_orientations(10, sym, breaksym=True)
    assert np.all(upper[:, 1] <= 90 + 1e-9) and len(upper) < len(full)


def test_eman_helical():
    a = eman_orientations(2, "h10:1:-22:4.7:4")
    assert a[:, 1].min() == pytest.approx(86.0) and a[:, 1].max() == pytest.approx(90.0)
    # EMAN2 reflects the extra "mirror" ring about alt_min (86), not the equator
    m = eman_orientations(2, "h10:1:-22:4.7:4", inc_mirror=True)
    assert m[:, 1].min() == pytest.approx(82.0) and m[:, 1].max() == pytest.approx(90.0)
    assert len(m) == 2 * len(a) - np.sum(a[:, 1] == 86.0)


# ------------------------------------------------------------------ spiral and SO(3) grid


def test_even_sphere_is_uniform():
    a = even_sphere(4000)
    assert a.shape == (4000, 3) and np.all(a[:, 0] == 0)
    v = projection_direction(a[:, 2], a[:, 1])
    assert np.linalg.norm(v.mean(axis=0)) < 1e-3
    assert np.mean(v[:, 2] > 0) == pytest.approx(0.5, abs=1e-3)
    # nearest-neighbour spacing is even: about sqrt(4 pi / n) rad
    sample = v[::40]
    cos = sample @ v.T
    cos[np.arange(len(sample)), np.arange(0, 4000, 40)] = -1
    nn = np.degrees(np.arccos(cos.max(axis=1)))
    spacing = np.degrees(np.sqrt(4 * np.pi / 4000))
    assert 0.7 * spacing < nn.min() and nn.max() < 1.3 * spacing
    assert even_sphere(0).shape == (0, 3)


def test_so3_grid_covers_rotations(rng):
    g = so3_grid(15, "c1")
    ndir = len(eman_orientations(15, "c1", inc_mirror=True))
    assert g.shape == (ndir * 24, 3)
    np.testing.assert_allclose(np.unique(g[:, 0]), np.arange(24) * 15.0)
    R = doc_angles_to_matrix(g)
    q = rng.normal(size=(200, 4))
    from scipy.spatial.transform import Rotation

    T = Rotation.from_quat(q / np.linalg.norm(q, axis=1)[:, None]).as_matrix()
    gap = np.array([angular_distance_sym(t, R, "c1").min() for t in T])
    assert gap.max() < 15
    # with symmetry the grid shrinks by about the group order and still covers SO(3)
    g4 = so3_grid(15, "d2")
    assert len(g4) < len(g) / 3
    R4 = doc_angles_to_matrix(g4)
    gap4 = np.array([angular_distance_sym(R4, t, "d2").min() for t in T[:50]])
    assert gap4.max() < 15
