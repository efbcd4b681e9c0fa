"""3D alignment with missing wedges: Fourier rotation, constrained correlation, ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from emsh import fft
from emsh.errors import UsageError
from emsh.geom.euler import angular_distance, doc_angles_to_matrix, spider_to_matrix
from emsh.geom.orientations import so3_grid
from emsh.kernels import align3d as A
from emsh.kernels import wedge as W
from emsh.kernels.transform import rotate3d
from emsh.sim.phantoms import gaussian_blobs

N = 32
STEP = 30.0


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(20261122)
    vol = gaussian_blobs(N, rng)
    grid = doc_angles_to_matrix(so3_grid(STEP))            # 588 rotations
    return vol, grid, A.prepare_reference(vol)


def spectrum(v):
    return fft.rfftn(np.fft.ifftshift(v), 3)


def volume(F):
    return np.fft.fftshift(fft.irfftn(F, (N, N, N), 3))


def shifted(v, s):
    """``v`` moved by ``s = (dz, dy, dx)`` voxels (Fourier phase shift, any fraction)."""
    kz, ky, kx = W.frequency_grid(v.shape)
    ph = np.exp(-2j * np.pi * (kz * s[0] + ky * s[1] + kx * s[2]))
    return volume(spectrum(v) * ph)


def observe(v, mask, rng, noise):
    """Add white noise (``noise`` x the signal's std) and keep the measured region."""
    if noise:
        v = v + rng.normal(0.0, noise * v.std(), v.shape).astype(np.float32)
    return volume(spectrum(v) * mask)


# ---------------------------------------------------------------- Fourier rotation


@pytest.mark.parametrize("n", [24, 21])
def test_rotate_fourier_identity_is_the_transform(n):
    rng = np.random.default_rng(1)
    v = gaussian_blobs(n, rng)
    F = A.prepare_reference(v, correct=False)
    out = A.rotate_fourier(F, np.eye(3))[0]
    want = fft.rfftn(np.fft.ifftshift(v), 3)
    kz, ky, kx = W.frequency_grid((n, n, n))
    band = np.broadcast_to(kx**2 + ky**2 + kz**2 <= 0.25, out.shape)
    err = np.abs(out - want)[band].max() / np.abs(want).max()
    assert err < 1e-5
    assert np.all(out[~band] == 0)


def test_rotate_fourier_matches_real_space_rotation(setup):
    vol, _, F = setup
    R = spider_to_matrix([37, 200], [61, 130], [123, 15])
    spectra = A.rotate_fourier(F, R)
    assert spectra.shape == (2, N, N, N // 2 + 1)
    for i in range(2):
        want = rotate3d(vol, R[i], order=3)                 # cubic spline: error 3e-4
        got = volume(spectra[i])
        rel = np.linalg.norm(got - want) / np.linalg.norm(want)
        assert rel < 0.045                                  # measured 0.032 at pad 2
    F3 = A.prepare_reference(vol, pad=3)
    got = volume(A.rotate_fourier(F3, R[0])[0])
    want = rotate3d(vol, R[0], order=3)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 0.02   # measured 0.013


# ---------------------------------------------------------------- ground truth alignment


def test_on_grid_rotation_and_integer_shift_are_recovered(setup):
    vol, grid, F = setup
    rng = np.random.default_rng(7)
    j = 211
    truth = np.array([3.0, -2.0, 4.0])
    mask = W.wedge_mask((N, N, N), -60, 60)
    sub = observe(shifted(rotate3d(vol, grid[j], order=3), truth), mask, rng, noise=1.0)
    i, s, score, scores = A.align3d(sub, F, grid, mask_sub=mask, max_shift=6)
    assert i == j
    np.testing.assert_allclose(s, truth, atol=0.25)
    assert scores.shape == (len(grid),) and scores[i] == score == scores.max()
    assert 0.6 < score < 1.05
    assert score - np.median(scores) > 0.2                  # a clear peak


def test_between_grid_rotation_with_wedge_and_noise(setup):
    vol, grid, F = setup
    rng = np.random.default_rng(11)
    mask = W.MissingRegion.make("wedge", {"tilt_min_deg": -60, "tilt_max_deg": 60})
    Rt = spider_to_matrix(143.0, 71.0, 262.0)
    nearest = angular_distance(Rt[None], grid).min()
    assert nearest > 8.0                                    # really between grid points
    truth = np.array([-2.6, 1.4, 3.3])
    sub = observe(shifted(rotate3d(vol, Rt, order=3), truth), mask.mask((N, N, N)), rng, noise=1.0)
    i, s, score, _ = A.align3d(sub, F, grid, mask_sub=mask, max_shift=6)
    assert angular_distance(grid[i], Rt) <= STEP
    assert angular_distance(grid[i], Rt) <= nearest + 5.0   # the nearest or a close neighbour
    assert np.abs(s - truth).max() < 1.0
    R, s2, score2 = A.refine_local(sub, F, grid[i], step_deg=STEP / 2, levels=4,
                                   mask_sub=mask, max_shift=6)
    assert angular_distance(R, Rt) < 3.0
    assert np.abs(s2 - truth).max() < 0.5
    assert score2 >= score


def test_constrained_correlation_ignores_the_missing_region(setup):
    vol, _, F = setup
    mask = W.wedge_mask((N, N, N), -45, 45)
    sub = observe(shifted(vol, (1.0, -3.0, 2.0)), mask, None, 0.0)
    _, s, with_mask, _ = A.align3d(sub, F, np.eye(3)[None], mask_sub=mask, max_shift=5)
    _, _, without, _ = A.align3d(sub, F, np.eye(3)[None], max_shift=5)
    np.testing.assert_allclose(s, [1.0, -3.0, 2.0], atol=0.15)   # gridding correction: 0.11
    assert with_mask > 0.99                                 # a perfect match where measured
    assert without < 0.95                                   # the wedge's zeros count against it


def test_reference_with_its_own_missing_region(setup):
    vol, grid, F = setup
    rng = np.random.default_rng(3)
    n3 = (N, N, N)
    ref_region = W.MissingRegion.make("wedge", {"tilt_min_deg": -50, "tilt_max_deg": 50,
                                                "tilt_axis": "x"})
    ref = observe(vol, ref_region.mask(n3), rng, 0.0)
    sub_region = W.MissingRegion.make("pyramid", {"y_range": (-60, 60), "x_range": (-55, 55)})
    j = 402
    sub = observe(shifted(rotate3d(vol, grid[j], order=3), (0.0, 2.0, -1.0)),
                  sub_region.mask(n3), rng, 0.5)
    Fr = A.prepare_reference(ref)
    for mask_ref in (ref_region, ref_region.mask(n3)):      # exact and interpolated rotation
        i, s, score, _ = A.align3d(sub, Fr, grid[::3], mask_sub=sub_region, mask_ref=mask_ref,
                                   max_shift=4)
        assert 3 * i == j
        np.testing.assert_allclose(s, [0.0, 2.0, -1.0], atol=0.3)


def test_chunking_does_not_change_results(setup):
    vol, grid, F = setup
    rng = np.random.default_rng(5)
    sub = observe(rotate3d(vol, grid[17], order=3), W.wedge_mask((N, N, N), -60, 60), rng, 0.3)
    a = A.align3d(sub, F, grid[:40], max_shift=3, chunk=7, lowpass=0.3, highpass=0.02)
    b = A.align3d(sub, F, grid[:40], max_shift=3, lowpass=0.3, highpass=0.02)
    assert a[0] == b[0] == 17
    np.testing.assert_allclose(a[3], b[3], rtol=1e-5, atol=1e-6)


def test_local_rotations_geometry():
    R0 = spider_to_matrix(10.0, 20.0, 30.0)
    loc = A.local_rotations(R0, 4.0, half_width=1)
    assert loc.shape == (27, 3, 3)
    np.testing.assert_allclose(loc[0], R0, atol=1e-12)
    d = angular_distance(loc, R0)
    assert d.max() == pytest.approx(4.0 * np.sqrt(3), rel=1e-6)
    np.testing.assert_allclose(np.sort(d)[1:7], 4.0, rtol=1e-9)
    Rv = A.rotvec_to_matrix(np.array([0.0, 0.0, np.pi / 2]))
    np.testing.assert_allclose(Rv @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)


def test_invalid_arguments(setup):
    vol, grid, F = setup
    with pytest.raises(UsageError):
        A.align3d(vol[:, :, :30], F, grid[:2], max_shift=2)
    with pytest.raises(UsageError):
        A.align3d(vol, F, grid[:2, :2], max_shift=2)
    with pytest.raises(UsageError):
        A.align3d(vol, F, grid[:2], max_shift=-1)
    with pytest.raises(UsageError):
        A.align3d(vol, F, grid[:2], max_shift=2, lowpass=0.7)
    with pytest.raises(UsageError):
        A.align3d(vol, F, grid[:2], max_shift=2, mask_sub=np.ones((N, N, N)))
    with pytest.raises(UsageError):
        A.align3d(vol, A.prepare_reference(vol[:16, :16, :16]), grid[:2], max_shift=2)
    with pytest.raises(UsageError):
        A.prepare_reference(vol, pad=0.5)
