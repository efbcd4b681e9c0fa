"""Particle stacks: geometry against the projectors, shift sign, CTF, SNR, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from emsh import fft as _fft
from emsh.errors import UsageError
from emsh.kernels.ctf import CTFParams, ctf_2d
from emsh.kernels.project import FourierProjector, project_real_trilinear
from emsh.sim.models import conformations, model_to_map
from emsh.sim.particles import (hemisphere_views, random_angles, simulate_2d_views,
                                simulate_particles)

N, APIX = 32, 3.0


@pytest.fixture(scope="module")
def vol():
    return model_to_map("adk_closed", N, APIX)


def _angles(t):
    return np.column_stack([t["psi"], t["theta"], t["phi"]])


def _com(img):
    y, x = np.indices(img.shape[-2:])
    w = img.sum(axis=(-2, -1))
    return (img * x).sum(axis=(-2, -1)) / w, (img * y).sum(axis=(-2, -1)) / w


def test_noiseless_equals_projector_and_pj3q(vol, rng):
    stack, truth = simulate_particles(vol, 12, rng, apix=APIX)
    assert stack.shape == (12, N, N) and stack.dtype == np.float32
    ref = FourierProjector(vol).project(_angles(truth))
    np.testing.assert_allclose(stack, ref, atol=1e-5 * np.abs(ref).max())
    # independent geometry check against SPIDER's real-space PJ 3Q
    pj = project_real_trilinear(vol, _angles(truth))
    for a, b in zip(stack, pj):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.98
    assert set(truth.columns) >= {"phi", "theta", "psi", "sx", "sy", "class_id", "defocus_u_A",
                                  "defocus_v_A", "astig_angle_deg"}
    assert np.all(truth["sx"] == 0) and np.all(truth["defocus_u_A"] == 0)


def test_given_angles_and_shift_sign(vol, rng):
    ang = np.array([[0.0, 0.0, 0.0], [30.0, 70.0, 200.0]])
    plain, _ = simulate_particles(vol, 2, rng, apix=APIX, angles=ang)
    sh = np.array([[3.0, -2.0], [-1.5, 2.5]])
    moved, truth = simulate_particles(vol, 2, rng, apix=APIX, angles=ang, shifts=sh)
    assert np.allclose(_angles(truth), ang)
    x0, y0 = _com(plain)
    x1, y1 = _com(moved)
    # +sx moves the content to higher column numbers, +sy to higher row numbers
    np.testing.assert_allclose(x1 - x0, sh[:, 0], atol=0.05)
    np.testing.assert_allclose(y1 - y0, sh[:, 1], atol=0.05)
    # the projection at (0, 0, 0) is the sum of the volume along z, centre at N//2 (up to
    # the projector's cut at the Nyquist circle: the map has ~30 % amplitude there)
    zsum = vol.sum(axis=0)
    assert np.linalg.norm(plain[0] - zsum) < 0.04 * np.linalg.norm(zsum)


def test_ctf_and_snr(vol):
    ctf = CTFParams(12000.0, 10000.0, 30.0, 300.0, 2.7, 0.1)
    kw = dict(apix=APIX, shift_range_px=2.0, ctf=ctf, defocus_range_A=(8000, 20000))
    clean, t0 = simulate_particles(vol, 200, np.random.default_rng(5), snr=None, **kw)
    noisy, t1 = simulate_particles(vol, 200, np.random.default_rng(5), snr=0.3, **kw)
    # the same seed gives the same poses and defoci with or without noise
    for c in ("phi", "theta", "psi", "sx", "sy", "defocus_u_A", "defocus_v_A"):
        np.testing.assert_array_equal(t0[c], t1[c])
    # defocus drawn in range, astigmatism kept
    mean = 0.5 * (t0["defocus_u_A"] + t0["defocus_v_A"])
    assert mean.min() >= 8000 and mean.max() <= 20000 and mean.std() > 2000
    np.testing.assert_allclose(t0["defocus_u_A"] - t0["defocus_v_A"], 2000.0)
    # image 0 = irfft(slice * CTF of its own parameters)
    p = CTFParams(t0["defocus_u_A"][0], t0["defocus_v_A"][0], 30.0, 300.0, 2.7, 0.1, apix=APIX)
    F = FourierProjector(vol).slices(_angles(t0)[:1], np.column_stack([t0["sx"], t0["sy"]])[:1])
    ref = _fft.irfftn(F * ctf_2d(p, (N, N)), (N, N))[0]
    np.testing.assert_allclose(clean[0], ref, atol=1e-4 * np.abs(ref).max())
    # measured SNR (signal variance in the mask / noise variance) within 10 %
    noise = (noisy - clean).astype(np.float64)
    sigma = t1["noise_sigma"][0]
    assert noise.std() == pytest.approx(sigma, rel=0.01)
    from emsh.sim._common import disc, support_radius

    m = disc(N, support_radius(vol))
    signal = clean[:, m].var(axis=1).mean()
    assert signal / noise.var() == pytest.approx(0.3, rel=0.10)


def test_deterministic_for_a_seed(vol):
    a, ta = simulate_particles(vol, 5, np.random.default_rng(9), apix=APIX, shift_range_px=3, snr=1.0)
    b, tb = simulate_particles(vol, 5, np.random.default_rng(9), apix=APIX, shift_range_px=3, snr=1.0)
    c, _ = simulate_particles(vol, 5, np.random.default_rng(10), apix=APIX, shift_range_px=3, snr=1.0)
    assert np.array_equal(a, b) and ta == tb
    assert not np.array_equal(a, c)


def test_classes_from_two_conformations(rng):
    maps = conformations(N, APIX)
    vols = [maps["adk_closed"], maps["adk_open"]]
    stack, truth = simulate_particles(vols, 40, rng, apix=APIX, class_fractions=(0.25, 0.75))
    cls = truth["class_id"]
    assert set(cls) == {1, 2} and 5 <= (cls == 1).sum() <= 18
    for k, v in enumerate(vols, 1):
        i = np.nonzero(cls == k)[0][:3]
        ref = FourierProjector(v).project(_angles(truth)[i])
        np.testing.assert_allclose(stack[i], ref, atol=1e-5 * np.abs(ref).max())


def test_random_angles_uniform(rng):
    a = random_angles(20000, rng)
    assert a.shape == (20000, 3)
    cos_t = np.cos(np.radians(a[:, 1]))
    assert abs(cos_t.mean()) < 0.02 and abs((cos_t**2).mean() - 1 / 3) < 0.01
    assert a[:, 0].min() >= 0 and a[:, 0].max() < 360 and a[:, 2].max() < 360


def test_2d_views(vol, rng):
    stack, truth = simulate_2d_views(vol, 4, 6, rng, apix=APIX, shift_range_px=1.5)
    assert stack.shape == (24, N, N)
    vid = truth["view_id"]
    assert sorted(np.bincount(vid)[1:]) == [6, 6, 6, 6]
    views = hemisphere_views(4)
    assert np.all(views[:, 1] < 90)
    for v in range(1, 5):
        sel = vid == v
        assert np.allclose(truth["theta"][sel], views[v - 1, 1])
        assert np.allclose(truth["phi"][sel], views[v - 1, 2])
    assert np.all(np.abs(truth["sx"]) <= 1.5) and np.unique(truth["psi"]).size == 24
    # an image is its view turned in plane: same rotational average
    i, j = np.nonzero(vid == 2)[0][:2]
    un = FourierProjector(vol).project(np.array([[truth["psi"][i], truth["theta"][i], truth["phi"][i]],
                                                 [truth["psi"][j], truth["theta"][j], truth["phi"][j]]]),
                                       np.column_stack([truth["sx"], truth["sy"]])[[i, j]])
    np.testing.assert_allclose(stack[[i, j]], un, atol=1e-5 * np.abs(un).max())


def test_bad_arguments(vol, rng):
    with pytest.raises(UsageError, match="rng"):
        simulate_particles(vol, 2, 42, apix=APIX)
    with pytest.raises(UsageError, match="snr"):
        simulate_particles(vol, 2, rng, apix=APIX, snr=-1)
    with pytest.raises(UsageError, match="angles"):
        simulate_particles(vol, 2, rng, apix=APIX, angles=np.zeros((3, 3)))
    with pytest.raises(UsageError, match="cube"):
        simulate_particles(np.zeros((8, 8, 9)), 2, rng, apix=APIX)
    with pytest.raises(UsageError, match="too|more than"):
        simulate_particles(vol, 10**9, rng, apix=APIX)
    with pytest.raises(UsageError, match="defocus_range_A"):
        simulate_particles(vol, 2, rng, apix=APIX, defocus_range_A=(1, 2))
