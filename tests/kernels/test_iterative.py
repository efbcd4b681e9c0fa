"""Richardson (Landweber) iterative reconstruction, SPIDER's BP RP (emsh.kernels.iterative).

Ground truth: analytic Gaussian blobs (emsh.sim.phantoms) whose projections are exact
line integrals (no projector in the data, so no inverse crime), n = 32, taken at the 84
quasi-even directions of VO EA 15 degrees over the hemisphere, reconstructed inside a
sphere of radius 14.

Thresholds: with 84 directions the data determine the object well to about 0.28
cycles/pixel (direct Fourier reconstruction, BP 3F, reaches FSC 0.9 there and falls
beyond). Landweber's iteration converges the low frequencies first; with lambda =
0.9 / (images * radius) twenty iterations bring the correction below 1e-4 of its start, so
shells up to 0.25 cycles/pixel must match the phantom (FSC >= 0.97) and the curve must
stay within 0.15 of BP 3F's up to 0.3 cycles/pixel.
"""

from __future__ import annotations

import numpy as np
import pytest

from emsh.errors import UsageError
from emsh.geom.orientations import voea
from emsh.kernels import iterative as I
from emsh.kernels.fsc import fsc
from emsh.kernels.project import rotation_matrices
from emsh.kernels.reconstruct import reconstruct
from emsh.sim.phantoms import analytic_gaussians, analytic_projections

N, RADIUS, ITER = 32, 14.0, 20


@pytest.fixture(scope="module")
def case():
    blobs, vol = analytic_gaussians(N, np.random.default_rng(3), n_blobs=6)
    ang = voea(15.0, (0, 90), (0, 359.9))
    prj = analytic_projections(blobs, N, rotation_matrices(ang)).astype(np.float32)
    lam = 0.9 / (len(ang) * RADIUS)
    sums = I.ProjectionSums(N, RADIUS)
    sums.add(prj, ang)
    res = I.richardson(sums, lam, max_iter=ITER)
    return dict(vol=vol * I.sphere_mask(N, RADIUS), ang=ang, prj=prj, lam=lam, sums=sums,
                res=res)


def _hf_fraction(v, cut=0.3):
    """Power above ``cut`` cycles/pixel over the total power."""
    p = np.abs(np.fft.fftn(v)) ** 2
    f = np.fft.fftfreq(v.shape[0])
    r = np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + f[None, None, :] ** 2)
    return float(p[r > cut].sum() / p.sum())


def test_reconstruction_matches_the_phantom(case):
    res = case["res"]
    freq, curve = fsc(res.volume, case["vol"])
    _, direct = fsc(reconstruct(case["prj"], case["ang"]), case["vol"])
    assert res.iterations == ITER and res.stopped == "iterations"
    assert res.n_images == 84 and res.n_orientations == 84
    assert np.all(curve[freq <= 0.25] >= 0.97), curve
    assert np.all(curve[freq <= 0.3] >= direct[freq <= 0.3] - 0.15), (curve, direct)
    assert np.all(res.volume[~I.sphere_mask(N, RADIUS)] == 0)
    assert abs(res.background) < 1e-3          # the blobs leave the outside nearly empty


def test_residual_and_correction_fall_every_iteration(case):
    res = case["res"]
    r, c = np.array(res.residuals), np.array(res.corrections)
    assert len(r) == len(c) == ITER
    assert np.all(np.diff(r) < 0) and np.all(np.diff(c) < 0)
    assert r[-1] < 1e-3 * r[0] and c[-1] < 1e-3 * c[0]


def test_correction_limit_and_a_too_large_lambda_stop_early(case):
    limit = case["res"].corrections[3]
    res = I.richardson(case["sums"], case["lam"], limit=limit * 1.0001, max_iter=ITER)
    assert res.iterations == 4 and res.stopped == "limit"
    np.testing.assert_allclose(res.corrections, case["res"].corrections[:4], rtol=1e-6)
    big = I.richardson(case["sums"], 20 * case["lam"], max_iter=ITER)   # diverges
    assert big.stopped == "no decrease" and big.iterations < ITER
    assert big.corrections[-1] >= big.corrections[-2]


def test_min_max_constraints_bound_the_volume(case):
    res0, prj = case["res"], case["prj"]
    res = I.richardson(case["sums"], case["lam"], max_iter=6, mode=7,
                       vmin=res0.background, vmax=0.5 * float(prj.max()))
    assert res.min_floor is not None and res.max_ceiling is not None
    inside = res.volume[I.sphere_mask(N, RADIUS)]
    assert inside.min() >= res.min_floor and inside.max() <= res.max_ceiling
    assert res0.volume.max() > res.max_ceiling + 0.1    # unconstrained, it goes higher
    only_min = I.richardson(case["sums"], case["lam"], max_iter=3, mode=2,
                            vmin=float(prj.min()) - 1.0, vmax=0.0)
    assert only_min.min_floor is None and only_min.max_ceiling is None  # never below min


@pytest.mark.slow
def test_smoothing_removes_high_frequencies(case):
    lam = case["lam"]
    tl = 0.1                                   # tau * lambda: the Laplacian step weight
    s = (tl / lam) / (1 + tl / lam)
    res = I.richardson(case["sums"], lam, max_iter=ITER, mode=1, smooth=s)
    freq, curve = fsc(res.volume, case["vol"])
    assert np.all(curve[freq <= 0.2] >= 0.95)
    assert _hf_fraction(res.volume) < 0.1 * _hf_fraction(case["res"].volume)


def test_images_at_one_orientation_are_summed(case):
    """Three copies of every image at lambda equal one copy at 3 lambda (A^T A triples)."""
    ang, prj = case["ang"], case["prj"]
    triple = I.ProjectionSums(N, RADIUS)
    for part in range(3):                      # in chunks, copies spread over the chunks
        triple.add(prj[part::3].repeat(3, axis=0), ang[part::3].repeat(3, axis=0))
    assert triple.n_images == 252 and triple.n_orientations == 84
    a = I.richardson(triple, case["lam"] / 3, max_iter=3)
    b = I.richardson(case["sums"], case["lam"], max_iter=3)
    assert np.abs(a.volume - b.volume).max() <= 1e-5 * np.abs(b.volume).max()


def test_symmetry_gives_a_symmetric_volume():
    blobs, _ = analytic_gaussians(24, np.random.default_rng(5), n_blobs=4)
    ang = voea(30.0, (0, 90), (0, 359.9))
    prj = analytic_projections(blobs, 24, rotation_matrices(ang)).astype(np.float32)
    sums = I.ProjectionSums(24, 10)
    sums.add(prj, ang)
    c2 = rotation_matrices(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 180.0]]))
    res = I.richardson(sums, 0.5 / (len(ang) * 2 * 10), max_iter=4, symmetry=c2)
    v = res.volume                         # 180 deg about z through index 12: (y, x) -> -(y, x)
    turned = np.roll(v[:, ::-1, ::-1], 1, axis=(1, 2))
    assert np.abs(turned - v).max() <= 1e-3 * np.abs(v).max()
    assert res.n_orientations == len(ang)
    r = np.array(res.residuals)             # ||p - P x||^2 over the mates: positive, falling
    assert np.all(r > 0) and np.all(np.diff(r) < 0)


def test_a_constant_background_is_taken_out(case):
    """Images + 5 give background 5 and the volume of the images themselves."""
    ang, prj = case["ang"], case["prj"]
    shifted = I.ProjectionSums(N, RADIUS)
    shifted.add(prj + np.float32(5.0), ang)
    a = I.richardson(shifted, case["lam"], max_iter=3)
    b = I.richardson(case["sums"], case["lam"], max_iter=3)
    assert abs(a.background - 5.0 - b.background) < 1e-4
    assert np.abs(a.volume - b.volume).max() <= 1e-4 * np.abs(b.volume).max()
    assert np.allclose(a.residuals, b.residuals, rtol=1e-3)


@pytest.mark.parametrize("call, match", [
    (lambda s: I.richardson(s, 0.0), "lambda must be positive"),
    (lambda s: I.richardson(s, 1e-4, mode=4), "mode must be one of"),
    (lambda s: I.richardson(s, 1e-4, max_iter=0), "iteration limit"),
    (lambda s: I.richardson(s, 1e-2, mode=1, smooth=0.99), r"smoothing constant must be"),
    (lambda s: s.add(np.zeros((2, 32, 30), np.float32), np.zeros((2, 3))), "must be 32 x 32"),
    (lambda s: s.add(np.zeros((2, 32, 32), np.float32), np.zeros((3, 3))), "2 images but 3"),
    (lambda s: I.ProjectionSums(32, 40), "radius of the reconstructed object"),
    (lambda s: I.richardson(I.ProjectionSums(32, 10), 1e-4), "no images"),
])
def test_bad_input_gives_one_line_errors(call, match):
    s = I.ProjectionSums(32, 10)
    s.add(np.ones((2, 32, 32), np.float32), np.zeros((2, 3)))
    with pytest.raises(UsageError, match=match) as err:
        call(s)
    assert "\n" not in str(err.value)
