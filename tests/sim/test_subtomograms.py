"""Subtomograms: rotation consistent with the projector, shifts, missing wedge, SNR."""

from __future__ import annotations

import numpy as np
import pytest

from emsh.errors import UsageError
from emsh.kernels.project import FourierProjector
from emsh.kernels.wedge import wedge_mask
from emsh.sim._common import ball, support_radius
from emsh.sim.models import model_to_map
from emsh.sim.subtomograms import rotate_shift_fourier, simulate_subtomograms

N, APIX = 24, 4.0


@pytest.fixture(scope="module")
def vol():
    return model_to_map("adk_closed", N, APIX)


def _angles(t):
    return np.column_stack([t["psi"], t["theta"], t["phi"]])


def test_z_sum_is_the_projection(vol, rng):
    st, t = simulate_subtomograms(vol, 6, rng, tilt_range=None, shift_range_px=2.0)
    assert st.shape == (6, N, N, N) and st.dtype == np.float32
    ref = FourierProjector(vol).project(_angles(t), np.column_stack([t["sx"], t["sy"]]))
    np.testing.assert_allclose(st.sum(axis=1), ref, atol=1e-5 * np.abs(ref).max())


def test_identity_pose_and_shift_sign(vol, rng):
    ang = np.zeros((2, 3))
    sh = np.array([[0.0, 0.0, 0.0], [2.0, -1.0, 3.0]])
    st, _ = simulate_subtomograms(vol, 2, rng, tilt_range=None, angles=ang, shifts=sh)
    # identity: the volume itself, band-limited to the Nyquist sphere
    k = np.sqrt(sum(f**2 for f in np.meshgrid(np.fft.fftfreq(N), np.fft.fftfreq(N),
                                              np.fft.rfftfreq(N), indexing="ij")))
    spec = np.fft.rfftn(np.fft.ifftshift(vol.astype(np.float64))) * (k < 0.5)
    ref = np.fft.fftshift(np.fft.irfftn(spec, (N, N, N), axes=(0, 1, 2)))
    assert np.linalg.norm(st[0] - ref) < 2e-3 * np.linalg.norm(ref)
    g = np.indices((N, N, N)).reshape(3, -1)
    com = [(g * s.reshape(-1)).sum(1) / s.sum() for s in st]
    np.testing.assert_allclose(com[1] - com[0], sh[1, ::-1], atol=0.05)   # (z, y, x)
    # a turned copy: phi = 90 is R = Rz(90), which takes x = (1, 0, 0) to R x = (0, -1, 0);
    # out(p) = vol(R^T p) = vol(-py, px, pz), i.e. out[z, iy, ix] = vol[z, ix, 2c - iy]
    turned = rotate_shift_fourier(vol, [[0.0, 0.0, 90.0]])[0]
    c = N // 2
    iy, ix = np.meshgrid(np.arange(N), np.arange(N), indexing="ij")
    direct = st[0][:, ix, (2 * c - iy) % N]
    assert np.linalg.norm(turned - direct) < 2e-3 * np.linalg.norm(direct)


def test_missing_wedge_is_empty_and_snr(vol):
    kw = dict(tilt_range=(-50.0, 60.0), shift_range_px=1.0)
    clean, t0 = simulate_subtomograms(vol, 12, np.random.default_rng(2), snr=None, **kw)
    noisy, t1 = simulate_subtomograms(vol, 12, np.random.default_rng(2), snr=0.5, **kw)
    assert np.array_equal(_angles(t0), _angles(t1))
    assert t1["tilt_min_deg"][0] == -50.0 and t1["tilt_max_deg"][0] == 60.0
    W = wedge_mask((N, N, N), -50.0, 60.0)
    assert 0.1 < 1 - W.mean() < 0.5
    F = np.abs(np.fft.rfftn(noisy.astype(np.float64), axes=(1, 2, 3)))
    assert F[:, W == 0].max() < 1e-5 * F.max()
    assert np.median(F[:, W == 1]) > 1e3 * F[:, W == 0].max()
    noise = (noisy - clean).astype(np.float64)
    assert noise.std() == pytest.approx(t1["noise_sigma"][0], rel=0.02)
    m = ball(N, support_radius(vol))
    signal = clean[:, m].var(axis=1).mean()
    assert signal / noise.var() == pytest.approx(0.5, rel=0.10)


def test_deterministic(vol):
    a, ta = simulate_subtomograms(vol, 2, np.random.default_rng(4), snr=1.0)
    b, tb = simulate_subtomograms(vol, 2, np.random.default_rng(4), snr=1.0)
    assert np.array_equal(a, b) and ta == tb


def test_errors(vol, rng):
    with pytest.raises(UsageError, match="tilt range"):
        simulate_subtomograms(vol, 1, rng, tilt_range=(30, -30))
    with pytest.raises(UsageError, match="shifts"):
        simulate_subtomograms(vol, 2, rng, shifts=np.zeros((2, 2)))
