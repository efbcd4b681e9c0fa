"""Micrographs: particle positions, non-overlap, CTF over the whole field, SNR, sets."""

from __future__ import annotations

import numpy as np
import pytest

from emsh import fft as _fft
from emsh.errors import OperationError, UsageError
from emsh.kernels.ctf import CTFParams, ctf_2d
from emsh.sim._common import support_radius
from emsh.sim.micrographs import place_particles, simulate_micrograph, simulate_micrograph_set
from emsh.sim.models import model_to_map

N, APIX, SHAPE = 32, 3.0, (200, 240)


@pytest.fixture(scope="module")
def vol():
    return model_to_map("adk_closed", N, APIX)


def test_positions_match_centres_of_mass(vol):
    mic, truth = simulate_micrograph(vol, SHAPE, 12, np.random.default_rng(3), apix=APIX,
                                     defocus_A=None, snr=None)
    assert mic.shape == SHAPE and mic.dtype == np.float32
    r = support_radius(vol)
    x, y = truth["x"], truth["y"]
    # boxes fit, centres are far enough apart for the particles not to touch
    assert x.min() >= N // 2 and x.max() <= SHAPE[1] - N + N // 2
    assert y.min() >= N // 2 and y.max() <= SHAPE[0] - N + N // 2
    d = np.hypot(x[:, None] - x[None], y[:, None] - y[None]) + np.eye(len(x)) * 1e9
    assert d.min() >= 2 * r + 1
    assert np.unique(np.round(x - np.floor(x), 3)).size > 6          # sub-pixel positions
    yy, xx = np.indices(SHAPE)
    for xi, yi in zip(x, y):
        w = mic * ((xx - round(xi)) ** 2 + (yy - round(yi)) ** 2 <= r * r)
        cx, cy = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
        assert abs(cx - xi) < 1.0 and abs(cy - yi) < 1.0
        assert abs(cx - xi) < 0.1 and abs(cy - yi) < 0.1              # measured: < 0.03 px
    # the particles are where the truth says, nothing elsewhere
    outside = np.ones(SHAPE, dtype=bool)
    for xi, yi in zip(x, y):
        outside &= (xx - xi) ** 2 + (yy - yi) ** 2 > (N // 2 + 1) ** 2
    assert np.abs(mic[outside]).max() < 0.05 * mic.max()


def test_ctf_acts_on_whole_micrograph_and_snr(vol):
    kw = dict(apix=APIX, defocus_A=15000.0, astigmatism_A=1000.0, astig_angle_deg=20.0,
              amp_contrast=0.07, background=0.0)
    plain, t0 = simulate_micrograph(vol, SHAPE, 10, np.random.default_rng(4), apix=APIX,
                                    defocus_A=None)
    clean, t1 = simulate_micrograph(vol, SHAPE, 10, np.random.default_rng(4), snr=None, **kw)
    noisy, t2 = simulate_micrograph(vol, SHAPE, 10, np.random.default_rng(4), snr=0.2, **kw)
    for c in ("x", "y", "phi", "theta", "psi"):
        assert np.array_equal(t0[c], t1[c]) and np.array_equal(t1[c], t2[c])
    assert t1["defocus_u_A"][0] == 15500.0 and t1["defocus_v_A"][0] == 14500.0
    assert t1["astig_angle_deg"][0] == 20.0
    # the CTF-modulated micrograph is the CTF applied to the plain one (zero-padded)
    m = N
    Hp, Wp = _fft.good_size(SHAPE[0] + 2 * m), _fft.good_size(SHAPE[1] + 2 * m)
    big = np.zeros((Hp, Wp), np.float32)
    big[m:m + SHAPE[0], m:m + SHAPE[1]] = plain
    p = CTFParams(15500.0, 14500.0, 20.0, 300.0, 2.7, 0.07, apix=APIX)
    ref = _fft.irfftn(_fft.rfftn(big) * ctf_2d(p, (Hp, Wp)), (Hp, Wp))[m:m + SHAPE[0], m:m + SHAPE[1]]
    np.testing.assert_allclose(clean, ref, atol=1e-4 * np.abs(ref).max())
    # SNR: mean variance in the particle discs / white-noise variance, within 10 %
    noise = (noisy - clean).astype(np.float64)
    assert noise.std() == pytest.approx(t2["noise_sigma"][0], rel=0.02)
    r = support_radius(vol)
    yy, xx = np.indices(SHAPE)
    var = [clean[(xx - round(a)) ** 2 + (yy - round(b)) ** 2 <= r * r].var()
           for a, b in zip(t2["x"], t2["y"])]
    assert np.mean(var) / noise.var() == pytest.approx(0.2, rel=0.10)


def test_background_is_smooth(vol):
    kw = dict(apix=APIX, defocus_A=None)
    clean, _ = simulate_micrograph(vol, SHAPE, 3, np.random.default_rng(8), **kw)
    with_bg, t = simulate_micrograph(vol, SHAPE, 3, np.random.default_rng(8), snr=1.0,
                                     background=2.0, **kw)
    sigma = t["noise_sigma"][0]
    rest = (with_bg - clean).astype(np.float64)
    low = np.fft.rfft2(rest)
    f = np.hypot(*np.meshgrid(np.fft.rfftfreq(SHAPE[1]), np.fft.fftfreq(SHAPE[0])))
    power_low = (np.abs(low[(f > 0) & (f < 0.03)]) ** 2).mean()
    power_high = (np.abs(low[f > 0.3]) ** 2).mean()
    assert power_low > 20 * power_high                       # a low-frequency background
    assert rest.std() == pytest.approx(np.sqrt(5.0) * sigma, rel=0.1)   # sigma^2 (1 + 2^2)


def test_set_and_determinism(vol):
    a, ta = simulate_micrograph_set(vol, SHAPE, 3, np.random.default_rng(1), apix=APIX,
                                    defocus_values_A=[10000, 25000], snr=1.0)
    b, tb = simulate_micrograph_set(vol, SHAPE, 3, np.random.default_rng(1), apix=APIX,
                                    defocus_values_A=[10000, 25000], snr=1.0)
    assert a.shape == (2,) + SHAPE and np.array_equal(a, b) and ta == tb
    assert list(ta["micrograph"]) == [1, 1, 1, 2, 2, 2]
    assert list(ta["defocus_u_A"]) == [10000.0] * 3 + [25000.0] * 3


def test_errors(vol, rng):
    with pytest.raises(OperationError, match="fit"):
        simulate_micrograph(vol, (64, 64), 30, rng, apix=APIX)
    with pytest.raises(UsageError, match="smaller than"):
        place_particles((16, 64), N, 1, 10.0, rng)
    with pytest.raises(UsageError, match="defocus_values_A"):
        simulate_micrograph_set(vol, (64, 64), 1, rng, apix=APIX, defocus_A=1.0,
                                defocus_values_A=[1.0])
