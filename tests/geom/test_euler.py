"""Euler-angle conventions: SPIDER matrices, inverses, other packages, distances."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from emsh.errors import UsageError
from emsh.geom import euler as E


def _random_rotations(rng, n=1000):
    q = rng.normal(size=(n, 4))
    return Rotation.from_quat(q / np.linalg.norm(q, axis=1)[:, None]).as_matrix()


def _random_angles(rng, n=1000):
    return rng.uniform(-400, 400, n), rng.uniform(-200, 200, n), rng.uniform(-400, 400, n)


# ------------------------------------------------------------------ hand-checked matrices


def test_phi_90_is_passive_turn_about_z():
    R = E.spider_to_matrix(90, 0, 0)
    # Rz(90) = [[0, 1, 0], [-1, 0, 0], [0, 0, 1]]: x -> -y, y -> x, z fixed.
    np.testing.assert_allclose(R, [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-15)
    np.testing.assert_allclose(R @ [1, 0, 0], [0, -1, 0], atol=1e-15)
    np.testing.assert_allclose(R @ [0, 1, 0], [1, 0, 0], atol=1e-15)
    np.testing.assert_allclose(E.spider_to_matrix(0, 0, 90), R, atol=1e-15)  # psi alone: same axis


def test_theta_90_turns_about_y():
    R = E.spider_to_matrix(0, 90, 0)
    # Ry(90) = [[0, 0, -1], [0, 1, 0], [1, 0, 0]]: x -> z, z -> -x.
    np.testing.assert_allclose(R, [[0, 0, -1], [0, 1, 0], [1, 0, 0]], atol=1e-15)


def test_composite_order_is_psi_theta_phi():
    # Ry(90) @ Rz(90), worked by hand.
    np.testing.assert_allclose(E.spider_to_matrix(90, 90, 0), [[0, 0, -1], [-1, 0, 0], [0, 1, 0]], atol=1e-15)
    # Rz(90) @ Ry(90).
    np.testing.assert_allclose(E.spider_to_matrix(0, 90, 90), [[0, 1, 0], [0, 0, 1], [1, 0, 0]], atol=1e-15)


# ------------------------------------------------------------------ inverse


def test_matrix_to_spider_inverts_1000_random_rotations(rng):
    R = _random_rotations(rng)
    phi, theta, psi = E.matrix_to_spider(R)
    assert np.abs(E.spider_to_matrix(phi, theta, psi) - R).max() < 1e-10
    assert (theta >= 0).all() and (theta <= 180).all()
    for a in (phi, psi):
        assert (a >= 0).all() and (a < 360).all()


def test_angles_matrix_angles_round_trip(rng):
    phi, theta, psi = _random_angles(rng)
    R = E.spider_to_matrix(phi, theta, psi)
    R2 = E.spider_to_matrix(*E.matrix_to_spider(R))
    assert np.abs(R2 - R).max() < 1e-10
    # canonical_spider is arithmetic and gives the same canonical numbers
    c = np.stack(E.canonical_spider(phi, theta, psi))
    m = np.stack(E.matrix_to_spider(R))
    d = np.abs(c - m)
    d = np.minimum(d, 360 - d)
    assert d.max() < 1e-8


@pytest.mark.parametrize("theta", [0.0, 180.0, 1e-14, 180 - 1e-14])
def test_gimbal_lock_is_canonical(rng, theta):
    phi, psi = rng.uniform(0, 360, 50), rng.uniform(0, 360, 50)
    R = E.spider_to_matrix(phi, theta, psi)
    p2, t2, s2 = E.matrix_to_spider(R)
    assert np.all(p2 == 0.0)
    assert np.all(t2 == (0.0 if theta < 90 else 180.0))
    assert np.abs(E.spider_to_matrix(p2, t2, s2) - R).max() < 1e-10
    expect = np.mod(psi + phi if theta < 90 else psi - phi, 360)
    d = np.abs(s2 - expect)
    assert np.minimum(d, 360 - d).max() < 1e-9


def test_canonical_spider_exact_values():
    assert E.canonical_spider(30, 180, 40) == (0.0, 180.0, 10.0)
    assert E.canonical_spider(30, 0, 40) == (0.0, 0.0, 70.0)
    assert E.canonical_spider(30, -20, 40) == (210.0, 20.0, 220.0)
    assert E.canonical_spider(-90, 45, 450) == (270.0, 45.0, 90.0)


def test_doc_order_helpers(rng):
    a = np.stack([rng.uniform(0, 360, 20), rng.uniform(0, 180, 20), rng.uniform(0, 360, 20)], 1)
    R = E.doc_angles_to_matrix(a)
    np.testing.assert_allclose(R, E.spider_to_matrix(a[:, 2], a[:, 1], a[:, 0]))
    np.testing.assert_allclose(E.doc_angles_to_matrix(E.matrix_to_doc_angles(R)), R, atol=1e-12)
    with pytest.raises(UsageError):
        E.doc_angles_to_matrix(np.zeros((3, 2)))
    with pytest.raises(UsageError):
        E.matrix_to_spider(np.zeros((2, 3)))


# ------------------------------------------------------------------ other packages


def test_eman_matrix_explicit():
    # Rz(phi) Rx(alt) Rz(az) with Rx(90) = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]
    np.testing.assert_allclose(E.eman_matrix(0, 90, 0), [[1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-15)
    # EMAN2's last row: (sin alt sin az, -sin alt cos az, cos alt)
    az, alt = np.radians(33.0), np.radians(71.0)
    row = [np.sin(alt) * np.sin(az), -np.sin(alt) * np.cos(az), np.cos(alt)]
    np.testing.assert_allclose(E.eman_matrix(33, 71, 12)[2], row, atol=1e-15)
    # SPIDER (0, 0, 0) is EMAN2 (90, 0, -90)
    assert tuple(map(float, E.spider_to_eman(0, 0, 0))) == (90.0, 0.0, -90.0)


def test_eman_conversions_both_ways_1000(rng):
    phi, theta, psi = _random_angles(rng)
    R = E.spider_to_matrix(phi, theta, psi)
    az, alt, ph = E.spider_to_eman(phi, theta, psi)
    assert np.abs(E.eman_matrix(az, alt, ph) - R).max() < 1e-10
    back = E.eman_to_spider(az, alt, ph)
    for x, y in zip(back, (phi, theta, psi)):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-12)
    # and from random EMAN2 angles back to SPIDER
    az, alt, ph = _random_angles(rng)
    assert np.abs(E.spider_to_matrix(*E.eman_to_spider(az, alt, ph)) - E.eman_matrix(az, alt, ph)).max() < 1e-10


@pytest.mark.parametrize("to, frm", [(E.spider_to_relion, E.relion_to_spider), (E.spider_to_xmipp, E.xmipp_to_spider)])
def test_relion_xmipp_same_matrix(rng, to, frm):
    phi, theta, psi = _random_angles(rng)
    rot, tilt, ps = to(phi, theta, psi)
    # Xmipp/RELION Euler_angles2matrix equals scipy's intrinsic ZYZ matrix transposed.
    A = Rotation.from_euler("ZYZ", np.stack([rot, tilt, ps], 1), degrees=True).as_matrix().transpose(0, 2, 1)
    assert np.abs(A - E.spider_to_matrix(phi, theta, psi)).max() < 1e-10
    # its last row is (sin tilt cos rot, sin tilt sin rot, cos tilt)
    r, t = np.radians(rot), np.radians(tilt)
    np.testing.assert_allclose(A[:, 2], np.stack([np.sin(t) * np.cos(r), np.sin(t) * np.sin(r), np.cos(t)], 1), atol=1e-12)
    for x, y in zip(frm(rot, tilt, ps), (phi, theta, psi)):
        np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------ directions and distances


def test_projection_direction_is_last_row_and_ignores_psi(rng):
    phi, theta, psi = _random_angles(rng, 200)
    d = E.projection_direction(phi, theta)
    np.testing.assert_allclose(d, E.spider_to_matrix(phi, theta, psi)[:, 2], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(E.projection_direction(0, 0), [0, 0, 1], atol=1e-15)
    np.testing.assert_allclose(E.projection_direction(90, 90), [0, 1, 0], atol=1e-15)
    p2, t2 = E.direction_to_spider(3.0 * d)
    np.testing.assert_allclose(E.projection_direction(p2, t2), d, atol=1e-12)
    assert tuple(map(float, E.direction_to_spider([0, 0, -2]))) == (0.0, 180.0)


def test_angular_distance_known_values(rng):
    R = _random_rotations(rng, 100)
    for ang in (0.0, 1e-7, 30.0, 135.0, 180.0):
        d = E.angular_distance(R, R @ E.spider_to_matrix(ang, 0, 0))
        np.testing.assert_allclose(d, ang, atol=1e-7)
    # tilt by theta about y is also a rotation by theta
    np.testing.assert_allclose(E.angular_distance(R, R @ E.spider_to_matrix(0, 25, 0)), 25.0, atol=1e-9)
    R2 = _random_rotations(rng, 100)
    np.testing.assert_allclose(E.angular_distance(R, R2), E.angular_distance(R2, R), atol=1e-9)
    # against scipy's magnitude of the relative rotation
    ref = np.degrees(Rotation.from_matrix(R @ R2.transpose(0, 2, 1)).magnitude())
    np.testing.assert_allclose(E.angular_distance(R, R2), ref, atol=1e-7)


def test_angular_distance_sym(rng):
    R = _random_rotations(rng, 50)
    # R and R g give identical projections of a C4 volume
    g = E.spider_to_matrix(90, 0, 0)
    np.testing.assert_allclose(E.angular_distance_sym(R, R @ g, "c4"), 0.0, atol=1e-6)
    assert np.all(E.angular_distance(R, R @ g) > 89.9)
    # 50 degrees about z is 40 away from the nearest C4 mate
    np.testing.assert_allclose(E.angular_distance_sym(R, R @ E.spider_to_matrix(50, 0, 0), "c4"), 40.0, atol=1e-7)
    # left multiplication is not a symmetry of the projections
    assert np.all(E.angular_distance_sym(R, g @ R, "c4") >= 0)
    d_ico = E.angular_distance_sym(R, _random_rotations(rng, 50), "icos")
    assert d_ico.max() < 45  # the icosahedral fundamental zone is small


def test_convention_matches_spider_projections(golden):
    """PJ 3Q sums the volume along z of p = R x: check on SPIDER's own projections."""
    from scipy.ndimage import map_coordinates

    from emsh.io import spider
    from emsh.io.docfile import read_doc

    case = golden / "11-voea-pj3q"
    vol = spider.read(case / "phantom.dat")
    prj = spider.read(case / "prjh.dat")
    angles = read_doc(case / "ang_hand.dat").values  # psi, theta, phi; includes theta 135, 180
    n = vol.shape[0]
    ax = np.arange(n) - n // 2
    z, y, x = np.meshgrid(ax, ax, ax, indexing="ij")
    p = np.stack([x, y, z]).reshape(3, -1)  # projection-frame coordinates (x, y, z)
    for (psi, theta, phi), img in zip(angles, prj):
        R = E.spider_to_matrix(phi, theta, psi)
        corr = []
        for M in (R.T, R):  # volume point x = R^T p (our convention), or the transpose
            xv = M @ p + n // 2
            proj = map_coordinates(vol, xv[::-1], order=1).reshape(n, n, n).sum(axis=0)
            corr.append(np.corrcoef(proj.ravel(), img.ravel())[0, 1])
        assert corr[0] > 0.9999
        if psi != 0 and theta not in (0, 180):
            assert corr[1] < 0.95
