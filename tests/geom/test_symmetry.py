"""Point groups: operators, closure, asymmetric units, reduction and expansion."""

from __future__ import annotations

import numpy as np
import pytest

from emsh.errors import UsageError
from emsh.geom.euler import (
    angular_distance,
    angular_distance_sym,
    direction_to_spider,
    doc_angles_to_matrix,
    projection_direction,
)
from emsh.geom.orientations import even_sphere
from emsh.geom.symmetry import Symmetry

GROUPS = (
    [(f"c{n}", n) for n in range(1, 13)]
    + [(f"d{n}", 2 * n) for n in range(2, 8)]
    + [("tet", 12), ("oct", 24), ("icos", 60)]
)
POINT_GROUPS = ["c1", "c2", "c3", "c5", "c6", "d2", "d3", "d4", "d7", "tet", "oct", "icos"]


def _rotation_angles(ops):
    return np.degrees(np.arccos(np.clip((np.trace(ops, axis1=1, axis2=2) - 1) / 2, -1, 1)))


def _random_directions(rng, n):
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1)[:, None]


def _random_angles(rng, n):
    return np.stack([rng.uniform(0, 360, n), np.degrees(np.arccos(rng.uniform(-1, 1, n))), rng.uniform(0, 360, n)], 1)


@pytest.mark.parametrize("name, order", GROUPS)
def test_operators_form_a_group(name, order):
    sym = Symmetry.parse(name)
    ops = sym.operators
    assert sym.order == order and ops.shape == (order, 3, 3) and ops.dtype == np.float64
    np.testing.assert_allclose(ops[0], np.eye(3), atol=1e-15)
    np.testing.assert_allclose(ops @ ops.transpose(0, 2, 1), np.broadcast_to(np.eye(3), ops.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(ops), 1.0, atol=1e-12)
    flat = ops.reshape(order, 9)
    # all distinct
    pair = np.abs(flat[:, None] - flat[None]).max(-1)
    assert (pair + np.eye(order) * 9).min() > 1e-3
    # closure: every product is an element; inverses too
    prod = (ops[:, None] @ ops[None]).reshape(-1, 9)
    assert np.abs(prod[:, None] - flat[None]).max(-1).min(-1).max() < 1e-12
    inv = ops.transpose(0, 2, 1).reshape(-1, 9)
    assert np.abs(inv[:, None] - flat[None]).max(-1).min(-1).max() < 1e-12


@pytest.mark.parametrize(
    "name, counts",
    [  # number of elements by rotation angle: 0, 180, 120, 90, 72, 144
        ("tet", {0: 1, 180: 3, 120: 8}),
        ("oct", {0: 1, 180: 9, 120: 8, 90: 6}),
        ("icos", {0: 1, 180: 15, 120: 20, 72: 12, 144: 12}),
        ("d7", {0: 1, 180: 7, 360 / 7: 2, 720 / 7: 2, 1080 / 7: 2}),
    ],
)
def test_conjugacy_class_sizes(name, counts):
    ang = _rotation_angles(Symmetry.parse(name).operators)
    for a, k in counts.items():
        assert np.sum(np.abs(ang - a) < 1e-6) == k, (name, a)
    assert sum(counts.values()) == len(ang)


def test_axis_placement_follows_eman2():
    # cN and the first half of dN turn about z; dN has a two-fold along x
    c4 = Symmetry.parse("C4").operators
    np.testing.assert_allclose(c4[:, 2], np.broadcast_to([0, 0, 1], (4, 3)), atol=1e-15)
    d3 = Symmetry.parse("d3").operators
    assert np.abs(d3 - np.diag([1.0, -1.0, -1.0])).max(axis=(1, 2)).min() < 1e-12
    # icos: five-fold about z, and a two-fold about y (three-fold towards +x after EMAN2's offset)
    ico = Symmetry.parse("icos").operators
    z5 = np.abs(ico[:, 2, 2] - 1) < 1e-12
    assert z5.sum() == 5
    assert np.abs(ico - np.diag([-1.0, 1.0, -1.0])).max(axis=(1, 2)).min() < 1e-12
    # tet: three-fold about z; oct: four-fold about z
    assert (np.abs(Symmetry.parse("tet").operators[:, 2, 2] - 1) < 1e-12).sum() == 3
    assert (np.abs(Symmetry.parse("oct").operators[:, 2, 2] - 1) < 1e-12).sum() == 4


@pytest.mark.parametrize("name", POINT_GROUPS)
@pytest.mark.parametrize("inc_mirror", [True, False])
def test_asymmetric_units_tile_the_sphere(rng, name, inc_mirror):
    sym = Symmetry.parse(name)
    v = _random_directions(rng, 3000)
    mates = np.einsum("kji,nj->nki", sym.operators, v)  # g^T d for every operator g
    if not inc_mirror:
        mates = np.concatenate([mates, -mates], axis=1)
    phi, theta = direction_to_spider(mates)
    hits = sym.in_asymmetric_unit(phi, theta, inc_mirror).sum(axis=1)
    assert np.all(hits == 1)


@pytest.mark.parametrize("name", POINT_GROUPS)
def test_asymmetric_unit_area(name):
    sym = Symmetry.parse(name)
    a = even_sphere(200_000)
    frac = sym.in_asymmetric_unit(a[:, 2], a[:, 1]).mean()
    assert frac * sym.order == pytest.approx(1.0, abs=0.01)  # area 4 pi / order
    half = sym.in_asymmetric_unit(a[:, 2], a[:, 1], inc_mirror=False).mean()
    assert half * 2 * sym.order == pytest.approx(1.0, abs=0.01)


def test_asymmetric_unit_bounds_eman_convention():
    c4 = Symmetry.parse("c4")
    b = c4.asu_bounds(inc_mirror=False)
    assert (b["alt_max"], b["az_max"]) == (90.0, 90.0)
    # EMAN2 az = phi + 90: az in [0, 90] is phi in [-90, 0]
    inside = c4.in_asymmetric_unit([-80, -10, 10, 100, -45], [45, 45, 45, 45, 120], inc_mirror=False)
    assert inside.tolist() == [True, True, False, False, False]
    assert c4.in_asymmetric_unit(-45, 120, inc_mirror=True)
    assert Symmetry.parse("d5").asu_bounds(False)["az_max"] == pytest.approx(36.0)
    assert Symmetry.parse("d5").asu_bounds(True)["az_max"] == pytest.approx(72.0)
    ico = Symmetry.parse("icos").asu_bounds(inc_mirror=True)
    assert ico["az_max"] == pytest.approx(72.0) and ico["az_offset"] == 234.0
    # the platonic alt_max is acos(1 / (sqrt(3) tan(pi / m))): 37.38 for icos
    assert ico["alt_max"] == pytest.approx(np.degrees(np.arccos(1 / (np.sqrt(3) * np.tan(np.pi / 5)))))
    for name in POINT_GROUPS:  # the top view is in every unit
        assert Symmetry.parse(name).in_asymmetric_unit(0.0, 0.0)


@pytest.mark.parametrize("name", POINT_GROUPS)
def test_reduce_to_asu(rng, name):
    sym = Symmetry.parse(name)
    a = _random_angles(rng, 300)
    r = sym.reduce_to_asu(a)
    assert r.shape == a.shape
    assert sym.in_asymmetric_unit(r[:, 2], r[:, 1]).all()
    Ra, Rr = doc_angles_to_matrix(a), doc_angles_to_matrix(r)
    # same projection: Rr = Ra g for an operator g
    rel = Ra.transpose(0, 2, 1) @ Rr
    assert np.abs(rel[:, None] - sym.operators[None]).max(axis=(2, 3)).min(axis=1).max() < 1e-10
    np.testing.assert_allclose(angular_distance_sym(Ra, Rr, sym), 0.0, atol=1e-5)
    # idempotent
    np.testing.assert_allclose(doc_angles_to_matrix(sym.reduce_to_asu(r)), Rr, atol=1e-10)


@pytest.mark.parametrize("name", ["c1", "c3", "d4", "oct", "icos"])
def test_reduce_to_half_unit_with_mirror(rng, name):
    sym = Symmetry.parse(name)
    a = _random_angles(rng, 300)
    r, mirrored = sym.reduce_to_asu(a, inc_mirror=False, return_mirror=True)
    assert sym.in_asymmetric_unit(r[:, 2], r[:, 1], inc_mirror=False).all()
    assert 0 < mirrored.mean() < 1
    Ra, Rr = doc_angles_to_matrix(a), doc_angles_to_matrix(r)
    Rr = np.where(mirrored[:, None, None], np.diag([-1.0, 1.0, -1.0]) @ Rr, Rr)  # undo the x-mirror
    np.testing.assert_allclose(angular_distance_sym(Ra, Rr, sym), 0.0, atol=1e-5)
    # a mirrored view looks along the opposite direction: SPIDER's (-psi, 180 + theta, phi)
    m = np.flatnonzero(mirrored)[0]
    d_red = projection_direction(r[m, 2], r[m, 1])
    mates = np.einsum("kji,j->ki", sym.operators, projection_direction(a[m, 2], a[m, 1]))
    assert np.abs(mates + d_red).max(axis=1).min() < 1e-10


def test_expand(rng):
    sym = Symmetry.parse("d3")
    a = _random_angles(rng, 5)
    e = sym.expand(a)
    assert e.shape == (5 * 6, 3)
    R, Re = doc_angles_to_matrix(a), doc_angles_to_matrix(e).reshape(5, 6, 3, 3)
    np.testing.assert_allclose(Re, R[:, None] @ sym.operators, atol=1e-10)
    np.testing.assert_allclose(Re[:, 0], R, atol=1e-10)
    d = angular_distance(Re[:, :, None], Re[:, None])
    assert (d + 360 * np.eye(6)).min() > 1  # distinct orientations
    # the six mates of a direction reduce to the same unit point
    red = sym.reduce_to_asu(e)
    dirs = projection_direction(red[:, 2], red[:, 1]).reshape(5, 6, 3)
    assert np.abs(dirs - dirs[:, :1]).max() < 1e-9


def test_helical_operators():
    h = Symmetry.parse("h10:1:-22.03:4.7")
    assert h.kind == "h" and h.order == 10 and not h.is_group
    assert (h.twist, h.rise, h.nstart, h.maxtilt) == (-22.03, 4.7, 1, 1.0)
    k = np.arange(10)
    ang = np.degrees(np.arctan2(h.operators[:, 0, 1], h.operators[:, 0, 0]))
    np.testing.assert_allclose(np.mod(ang - k * -22.03 + 180, 360) - 180, 0.0, atol=1e-9)
    np.testing.assert_allclose(h.translations[:, 2], k * 4.7, atol=1e-12)
    np.testing.assert_allclose(h.translations[:, :2], 0.0)
    # two starts: operators alternate between the starts, EMAN2's order
    h2 = Symmetry.parse("h6,2,30,10,3", apix=2.0)
    ang2 = np.degrees(np.arctan2(h2.operators[:, 0, 1], h2.operators[:, 0, 0]))
    np.testing.assert_allclose(np.mod(ang2, 360), [0, 180, 30, 210, 60, 240], atol=1e-9)
    np.testing.assert_allclose(h2.translations[:, 2], [0, 0, 5, 5, 10, 10])
    assert h2.maxtilt == 3.0
    assert h2.in_asymmetric_unit(123.0, 88.0) and not h2.in_asymmetric_unit(0.0, 80.0)
    with pytest.raises(UsageError):
        h.reduce_to_asu(np.zeros((1, 3)))
    assert h.expand(np.zeros((2, 3))).shape == (20, 3)


@pytest.mark.parametrize("bad", ["", "x3", "c0", "d", "c2.5", "icosa", "h10", "h10:1:abc:2", "h1:1:1:1:1:1"])
def test_bad_names(bad):
    with pytest.raises(UsageError):
        Symmetry.parse(bad)


def test_names_are_canonical():
    assert Symmetry.parse(" D7 ").name == "d7"
    assert Symmetry.parse("ICOS5").name == "icos"
    assert Symmetry.parse("c1").order == 1
