"""SPIDER FT conventions against the real SPIDER program (golden case 10-ft), grids, spectra."""

from __future__ import annotations

import numpy as np
import pytest

import emsh.io as io
from emsh.errors import UsageError
from emsh.kernels.fourier import (axis_freq, freq_angle_half, freq_grid_half, freq_radius_half,
                                  half_shape, periodogram, radial_average,
                                  rotational_power_spectrum, spider_ft, spider_ift)

T1, T3 = 1e-5, 2e-5
CASES = ["e", "o", "ns", "v", "vo"]          # 64^2, 45^2, 48x40, 32^3, 27^3


def _rel(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(b).max())


@pytest.mark.parametrize("name", CASES)
def test_ft_matches_spider_golden(golden, name):
    """ft_<name>.dat: SPIDER's FT, compared complex value by complex value (T3)."""
    x = io.read(golden / "10-ft" / f"in_{name}.dat")
    want = io.read(golden / "10-ft" / f"ft_{name}.dat")
    got = spider_ft(x)
    assert got.dtype == np.complex64 and got.shape == want.shape == half_shape(x.shape)
    assert _rel(got, want) <= T3


@pytest.mark.parametrize("name", CASES)
def test_inverse_ft_matches_spider_golden(golden, name):
    """ift_<name>.dat: SPIDER's inverse FT of its own Fourier file (T3), and = input (T1)."""
    x = io.read(golden / "10-ft" / f"in_{name}.dat")
    F = io.read(golden / "10-ft" / f"ft_{name}.dat")
    want = io.read(golden / "10-ft" / f"ift_{name}.dat")
    got = spider_ift(F, x.shape)
    assert got.dtype == np.float32 and got.shape == x.shape
    assert _rel(got, want) <= T3
    assert _rel(got, x) <= T1


def test_spider_ft_is_conjugate_numpy_and_round_trips(rng):
    x = rng.standard_normal((3, 20, 17)).astype(np.float32)
    F = spider_ft(x, ndim=2)
    assert F.shape == (3, 20, 9)
    np.testing.assert_allclose(F, np.conj(np.fft.rfft2(x)), rtol=0, atol=2e-5 * np.abs(F).max())
    np.testing.assert_allclose(spider_ift(F, (20, 17)), x, rtol=0, atol=1e-5)
    v = rng.standard_normal((9, 10, 11)).astype(np.float32)
    np.testing.assert_allclose(spider_ift(spider_ft(v), v.shape), v, rtol=0, atol=1e-5)
    # a single frequency: SPIDER's sign puts +i on exp(+2 pi i k x / N)
    n = 16
    wave = np.cos(2 * np.pi * 3 * np.arange(n) / n) + np.sin(2 * np.pi * 3 * np.arange(n) / n)
    F1 = spider_ft(np.tile(wave, (n, 1)).astype(np.float32))
    assert np.isclose(F1[0, 3], n * n / 2 * (1 + 1j), rtol=1e-5)


def test_spider_ift_refuses_mismatched_shapes():
    with pytest.raises(UsageError):
        spider_ift(np.zeros((8, 5), np.complex64), (8, 10))
    with pytest.raises(UsageError):
        spider_ift(np.zeros((8, 5), np.float32), (8, 8))


def test_frequency_grids_follow_spider_wrap():
    ky, kx = freq_grid_half((6, 7))
    assert ky.shape == (6, 1) and kx.shape == (1, 4)
    np.testing.assert_allclose(ky.ravel(), [0, 1 / 6, 2 / 6, 3 / 6, -2 / 6, -1 / 6])
    np.testing.assert_allclose(kx.ravel(), [0, 1 / 7, 2 / 7, 3 / 7])
    np.testing.assert_allclose(axis_freq(5), [0, .2, .4, -.4, -.2])
    r = freq_radius_half((6, 7))
    assert r.shape == (6, 4) and np.isclose(r[3, 3], np.hypot(0.5, 3 / 7))
    a = freq_angle_half((8, 8))
    assert np.isclose(a[2, 0], np.pi / 2) and np.isclose(a[6, 0], -np.pi / 2)
    assert np.isclose(a[1, 1], np.pi / 4) and np.isclose(a[7, 1], -np.pi / 4)
    kz, ky3, kx3 = freq_grid_half((4, 6, 8))
    assert kz.shape == (4, 1, 1) and ky3.shape == (1, 6, 1) and kx3.shape == (1, 1, 5)


def test_rotational_power_spectrum_of_white_noise(rng):
    x = rng.normal(0.0, 2.0, size=(4, 64, 64)).astype(np.float32)
    f, p = rotational_power_spectrum(x, ndim=2)
    assert p.shape == (4, 33) and np.isclose(f[-1], 0.5)
    assert abs(np.mean(p[:, 4:]) - 4.0) < 0.15              # variance 4 at every shell
    # a pure cosine at 8/64 cycles/pixel lands in shell 8 only (besides the mean)
    c = np.cos(2 * np.pi * 8 * np.arange(64) / 64)[None, :] * np.ones((64, 1))
    _, pc = rotational_power_spectrum(c.astype(np.float32))
    assert np.argmax(pc) == 8 and pc[8] > 100 * np.delete(pc, 8).max()


def test_radial_average_and_periodogram(rng):
    r2 = (np.arange(33)[:, None] - 16) ** 2 + (np.arange(33)[None, :] - 16) ** 2
    _, prof = radial_average(np.sqrt(r2))
    np.testing.assert_allclose(prof[1:], np.arange(1, 17), atol=0.25)
    m = rng.normal(0.0, 1.5, size=(256, 256)).astype(np.float32)
    ps = periodogram(m, 64, overlap=0.5)
    assert ps.shape == (64, 64) and ps.dtype == np.float32
    assert ps[32, 32] < 1e-6                                  # tile means removed
    assert abs(float(np.delete(ps.ravel(), 32 * 64 + 32).mean()) - 2.25) < 0.1
    np.testing.assert_allclose(ps[1:, 1:], ps[1:, 1:][::-1, ::-1], rtol=1e-5)   # P(-k) = P(k)
    with pytest.raises(UsageError):
        periodogram(m, 512)
