"""Missing-region masks: geometry against tilt planes, Xmipp's formulas, rotations."""

from __future__ import annotations

import numpy as np
import pytest

from emsh import fft
from emsh.errors import UsageError
from emsh.geom.euler import projection_direction, spider_to_matrix
from emsh.kernels import wedge as W
from emsh.kernels.transform import rotate3d


def xmipp_wedge_y(n, theta0, thetaf):
    """Xmipp's wedge_y test on the integer half grid, written from its tangent form."""
    tg0 = -1.0 / np.tan(np.radians(thetaf))
    tgf = -1.0 / np.tan(np.radians(theta0))
    z = (np.fft.fftfreq(n) * n)[:, None, None]
    x = np.arange(n // 2 + 1)[None, None, :]
    pos = (x <= tg0 * z) | (x >= tgf * z)
    neg = (x <= tgf * z) | (x >= tg0 * z)
    return np.broadcast_to(np.where(z >= 0, pos, neg), (n, n, n // 2 + 1))


def test_symmetric_wedge_values():
    m = W.wedge_mask((32, 32, 32), -60, 60)
    assert m.shape == (32, 32, 17) and m.dtype == np.float32
    # (kz, ky, kx) integer frequencies: 30 deg from the kx axis is measured,
    # 70 deg is missing; the kz axis is missing, the ky (tilt) axis and DC measured
    assert m[3, 0, 5] == 1 and m[5, 0, 3] == 1            # atan(5/3) = 59 deg
    assert m[-11, 4, 4] == 0                              # atan(11/4) = 70 deg
    assert m[7, 0, 0] == 0 and m[0, 9, 0] == 1 and m[0, 0, 0] == 1
    frac = m.mean()
    assert 0.6 < frac < 0.72                              # 120 of 180 degrees measured


@pytest.mark.parametrize("lo,hi", [(-60, 60), (-63.20, 64.47), (-40, 55), (-75, 30)])
def test_wedge_matches_xmipp_formula(lo, hi):
    n = 32
    ours = W.wedge_mask((n, n, n), lo, hi).astype(bool)
    theirs = xmipp_wedge_y(n, lo, hi)
    # Xmipp tests the Nyquist planes at one sign only; ours are symmetrised there
    inner = (slice(None), slice(None), slice(0, n // 2))
    keep = np.ones(n, bool)
    keep[n // 2] = False
    np.testing.assert_array_equal(ours[inner][keep], theirs[inner][keep])
    nyq = ours[n // 2]
    assert np.all(nyq >= theirs[n // 2])


def test_measured_planes_are_the_tilt_images_central_sections(rng):
    region = W.MissingRegion.make("wedge", {"tilt_min_deg": -50, "tilt_max_deg": 35})
    k = rng.normal(size=(2000, 3))
    for t in (-50, -20, 0, 17, 35):
        d = projection_direction(0.0, t)                   # beam of SPIDER (0, t, 0)
        on = k - np.outer(k @ d, d)                        # points on the central section
        assert region.at(on[:, 0], on[:, 1], on[:, 2]).all()
    for t in (-70, -55, 40, 80):                           # planes outside the series
        d = projection_direction(0.0, t)
        on = k - np.outer(k @ d, d)
        on[:, 1] = 0.0                                     # off the tilt axis
        assert not region.at(on[:, 0], on[:, 1], on[:, 2]).any()


def test_half_and_full_layouts_agree_and_are_symmetric():
    shape = (16, 20, 24)                                   # non-cubic: angles in cycles/px
    half = W.wedge_mask(shape, -45, 60, half=True)
    full = W.wedge_mask(shape, -45, 60, half=False)
    np.testing.assert_array_equal(full[:, :, :12], half[:, :, :12])   # column 12: +-0.5
    flipped = full[np.negative(np.arange(16)) % 16][:, np.negative(np.arange(20)) % 20][:, :, np.negative(np.arange(24)) % 24]
    np.testing.assert_array_equal(full, flipped)
    # an exact 45 degree boundary in physical frequency on a non-cubic box
    kz, ky, kx = W.frequency_grid(shape, half=False)
    on45 = np.isclose(np.abs(np.broadcast_to(kz, full.shape)), np.abs(np.broadcast_to(kx, full.shape)))
    assert full[on45].all()                                # -45 boundary counts as measured


def test_wedge_about_x_is_wedge_about_y_with_axes_swapped():
    wy = W.wedge_mask((24, 24, 24), -55, 40, tilt_axis="y", half=False)
    wx = W.wedge_mask((24, 24, 24), -55, 40, tilt_axis="x", half=False)
    np.testing.assert_array_equal(wx, np.swapaxes(wy, 1, 2))


def test_pyramid_is_union_of_wedges_and_cone_geometry():
    shape = (24, 24, 24)
    p = W.pyramid_mask(shape, (-60, 60), (-50, 50))
    wy = W.wedge_mask(shape, -60, 60)
    wx = W.wedge_mask(shape, -50, 50, tilt_axis="x")
    np.testing.assert_array_equal(p, np.maximum(wy, wx))
    assert p.mean() > wy.mean()
    c = W.cone_mask(shape, 30)
    assert c[0, 0, 0] == 1 and c[5, 0, 0] == 0            # DC measured, kz axis missing
    assert c[4, 0, 3] == 1 and c[5, 0, 2] == 0            # 37 deg outside, 22 deg inside
    assert c[4, 3, 0] == 1 and c[8, 2, 2] == 0
    np.testing.assert_array_equal(
        W.MissingRegion.from_xmipp("cone", 60).mask(shape), c)


def test_from_xmipp_rows():
    shape = (16, 16, 16)
    np.testing.assert_array_equal(W.MissingRegion.from_xmipp("wedge_y", -63.2, 64.47).mask(shape),
                                  W.wedge_mask(shape, -63.2, 64.47))
    np.testing.assert_array_equal(W.MissingRegion.from_xmipp("wedge_x", 0, 0, -30, 45).mask(shape),
                                  W.wedge_mask(shape, -30, 45, tilt_axis="x"))
    np.testing.assert_array_equal(W.MissingRegion.from_xmipp("pyramid", -60, 60, -50, 55).mask(shape),
                                  W.pyramid_mask(shape, (-60, 60), (-50, 55)))


def test_rotated_mask_identity_and_quarter_turn():
    shape = (20, 20, 20)
    p = {"tilt_min_deg": -60, "tilt_max_deg": 45}
    np.testing.assert_array_equal(W.rotated_mask("wedge", p, np.eye(3), shape=shape),
                                  W.wedge_mask(shape, -60, 45))
    # turning the content by +90 degrees about z moves x onto y: a y-axis series
    # becomes an x-axis series with the same range
    Rz90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(W.rotated_mask("wedge", p, Rz90, shape=shape),
                                  W.wedge_mask(shape, -60, 45, tilt_axis="x"))


def test_rotated_mask_batch_matches_single():
    shape = (12, 12, 12)
    R = spider_to_matrix([10, 80, 200], [30, 95, 150], [0, 45, 300])
    batch = W.rotated_mask("cone", {"half_angle_deg": 40}, R, shape=shape)
    assert batch.shape == (3, 12, 12, 7)
    for i in range(3):
        np.testing.assert_array_equal(batch[i], W.rotated_mask("cone", {"half_angle_deg": 40}, R[i],
                                                               shape=shape))


def test_rotated_mask_is_where_a_rotated_subtomogram_has_power(rng):
    n = 32
    vol = rng.normal(size=(n, n, n)).astype(np.float32)
    m = W.wedge_mask((n, n, n), -50, 50)
    sub = np.fft.fftshift(fft.irfftn(fft.rfftn(np.fft.ifftshift(vol), 3) * m, (n, n, n), 3))
    R = spider_to_matrix(30, 50, 70)
    turned = rotate3d(sub, R, order=3)
    power = np.abs(fft.rfftn(np.fft.ifftshift(turned), 3)) ** 2
    kz, ky, kx = W.frequency_grid((n, n, n))
    inner = np.broadcast_to(kx * kx + ky * ky + kz * kz, power.shape) < 0.35 ** 2
    good = W.rotated_mask("wedge", {"tilt_min_deg": -50, "tilt_max_deg": 50}, R, shape=(n, n, n))
    wrong = W.rotated_mask("wedge", {"tilt_min_deg": -50, "tilt_max_deg": 50}, R.T, shape=(n, n, n))
    ratio = power[inner & (good == 0)].mean() / power[inner & (good == 1)].mean()
    assert ratio < 0.1
    # the transposed rotation (the wrong convention) does not describe the data
    bad = power[inner & (wrong == 0)].mean() / power[inner & (wrong == 1)].mean()
    assert bad > 0.5


def test_invalid_parameters():
    with pytest.raises(UsageError):
        W.wedge_mask((8, 8, 8), 60, -60)
    with pytest.raises(UsageError):
        W.wedge_mask((8, 8, 8), -95, 60)
    with pytest.raises(UsageError):
        W.wedge_mask((8, 8, 8), -60, 60, tilt_axis="z")
    with pytest.raises(UsageError):
        W.cone_mask((8, 8, 8), 90)
    with pytest.raises(UsageError):
        W.rotated_mask("sphere", {}, np.eye(3), shape=(8, 8, 8))
    with pytest.raises(UsageError):
        W.rotated_mask("cone", {"tilt": 3}, np.eye(3), shape=(8, 8, 8))
    with pytest.raises(UsageError):
        W.wedge_mask((8, 8), -60, 60)
    with pytest.raises(UsageError):
        W.MissingRegion.from_xmipp("wedge_z", -60, 60)
