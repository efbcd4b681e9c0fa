"""SPIDER FQ against the real SPIDER program (golden case 09-fq-filters), and named filters."""

from __future__ import annotations

import numpy as np
import pytest

import emsh.io as io
from emsh.errors import UsageError
from emsh.kernels import filters as flt
from emsh.kernels.fourier import freq_radius_half

T3 = 2e-5

# (output file, input file, FQ type, answers as in proc.spi)
GOLDEN = [
    ("fq01", "in_img", 1, [0.15]), ("fq02", "in_img", 2, [6]), ("fq03", "in_img", 3, [0.1]),
    ("fq04", "in_img", 4, [0.08]), ("fq05", "in_img", 5, [0.2, 0.03]),
    ("fq06", "in_img", 6, [0.12, 0.05]), ("fq07", "in_img", 7, [0.1, 0.25]),
    ("fq08", "in_img", 8, [0.05, 0.2]), ("fq09", "in_img", 9, [0.12, 0.3]),
    ("fq10", "in_img", 10, [0.05, 0.15]), ("fq13", "in_img", 13, [0.25]),
    ("fq14", "in_img", 14, [20, 1, 0.4]), ("fq07_odd", "in_odd", 7, [4, 11]),
    ("fq03_vol", "in_vol", 3, [0.12]), ("fq07_vol", "in_vol", 7, [0.15, 0.3]),
]


@pytest.mark.parametrize("out,inp,ftype,answers", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_fq_matches_spider_golden(golden, out, inp, ftype, answers):
    """Every FQ output of case 09 (13 types, pixel radii, odd size, volumes) within T3."""
    x = io.read(golden / "09-fq-filters" / f"{inp}.dat")
    want = io.read(golden / "09-fq-filters" / f"{out}.dat")
    got = flt.fq(x, ftype, answers)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.abs(got - want).max() <= T3 * np.abs(want).max()


def test_fq_on_a_stack_equals_member_by_member(golden):
    img = io.read(golden / "09-fq-filters" / "in_img.dat")
    want = io.read(golden / "09-fq-filters" / "fq07.dat")
    stack = np.stack([img, 2.0 * img + 1.0, img[::-1].copy()])
    got = flt.fq(stack, 7, [0.1, 0.25], ndim=2)
    assert got.shape == stack.shape
    assert np.abs(got[0] - want).max() <= T3 * np.abs(want).max()
    np.testing.assert_allclose(got[2], flt.fq(img[::-1], 7, [0.1, 0.25]), atol=1e-6)
    # padding with the border average: a constant image comes back unchanged
    const = np.full((2, 24, 30), 3.5, np.float32)
    np.testing.assert_allclose(flt.fq(const, 3, [0.05], ndim=2), const, atol=1e-5)


def _gain_of(fn, shape=(32, 32)) -> np.ndarray:
    """Recover a filter's gain: filter a delta at the origin and transform."""
    d = np.zeros(shape, np.float32)
    d[(0,) * len(shape)] = 1.0
    return np.fft.rfftn(fn(d)).real


def test_named_filter_gains_follow_their_formulas():
    f = freq_radius_half((32, 32))
    g = _gain_of(lambda d: flt.tanh_lowpass(d, 0.2, 0.1))
    c = np.pi / (2 * 0.1 * 0.2)
    np.testing.assert_allclose(g, 0.5 * (np.tanh(c * (f + 0.2)) - np.tanh(c * (f - 0.2))), atol=1e-6)
    np.testing.assert_allclose(_gain_of(lambda d: flt.gaussian_lowpass(d, 0.1)),
                               np.exp(-f**2 / 0.02), atol=1e-6)
    hp = _gain_of(lambda d: flt.gaussian_highpass(d, 0.1))
    assert np.isclose(hp[0, 0], 1.0) and np.isclose(hp[0, 8], 1 - np.exp(-0.25**2 / 0.02), atol=1e-6)
    np.testing.assert_allclose(_gain_of(lambda d: flt.fermi(d, 0.2, 0.02)),
                               1 / (1 + np.exp(np.clip((f - 0.2) / 0.02, -10, 10))), atol=1e-6)
    rc = _gain_of(lambda d: flt.raised_cosine(d, 0.1, 0.3))
    assert np.isclose(rc[0, 3], 1.0) and np.isclose(rc[0, 10], 0.0, atol=1e-6)
    assert np.isclose(rc[0, 6], 0.5 * (1 + np.cos(np.pi * (6 / 32 - 0.1) / 0.2)), atol=1e-6)
    bp = _gain_of(lambda d: flt.bandpass(d, 0.1, 0.3, width=0.05))
    assert np.isclose(bp[0, 0], 0.0, atol=1e-6) and np.isclose(bp[0, 6], 1.0, atol=1e-6)
    assert np.isclose(bp[0, 15], 0.0, atol=1e-6) and 0 < bp[0, 2] < 1
    bw = _gain_of(lambda d: flt.butterworth(d, 0.1, 0.25))
    order = 2 * np.log10(0.882 / np.sqrt(10.624**2 - 1)) / np.log10(0.1 / 0.25)
    want = 1 / np.sqrt(1 + (np.sqrt(2) - 1) * (f / (0.1 / 0.882 ** (2 / order))) ** order)
    np.testing.assert_allclose(bw, want, atol=1e-6)
    assert np.isclose(order, 5.42235994, rtol=1e-6)       # SPIDER printed ORD: 5.42235994
    assert abs(bw[0, 8] - 0.1453) < 1e-3                   # gain at the stop frequency


def test_named_filters_equal_unpadded_fq():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 40, 40)).astype(np.float32)
    pairs = [(flt.butterworth(x, 0.1, 0.25, ndim=2), flt.fq(x, 7, [0.1, 0.25], 2, pad=False)),
             (flt.butterworth(x, 0.05, 0.2, high=True, ndim=2), flt.fq(x, 8, [0.05, 0.2], 2, pad=False)),
             (flt.fermi(x, 0.2, 0.03, ndim=2), flt.fq(x, 5, [0.2, 0.03], 2, pad=False)),
             (flt.fermi(x, 0.1, 0.03, high=True, ndim=2), flt.fq(x, 6, [0.1, 0.03], 2, pad=False)),
             (flt.gaussian_lowpass(x, 0.1, ndim=2), flt.fq(x, 3, [0.1], 2, pad=False)),
             (flt.raised_cosine(x, 0.1, 0.3, high=True, ndim=2), flt.fq(x, 10, [0.1, 0.3], 2, pad=False)),
             (flt.gaussian_lowpass(x, 0.1, ndim=2, pad=True), flt.fq(x, 3, [0.1], 2))]
    for a, b in pairs:
        np.testing.assert_allclose(a, b, atol=2e-6)
    # without padding, the high-passes keep the zero-frequency term (the mean)
    for t, p in ((2, [0.2]), (4, [0.1]), (6, [0.1, 0.03]), (8, [0.05, 0.2])):
        y = flt.fq(x, t, p, ndim=2, pad=False)
        np.testing.assert_allclose(y.mean(axis=(1, 2)), x.mean(axis=(1, 2)), atol=1e-5)


def test_fq_elliptic_butterworth_and_errors():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((32, 32)).astype(np.float32)
    iso = flt.fq(x, 7, [0.1, 0.25, 0.1, 0.25])
    assert np.isfinite(iso).all() and np.abs(iso).max() > 0
    ell = flt.fq(x, 8, [0.05, 0.2, 0.1, 0.3], pad=False)
    assert np.isfinite(ell).all() and np.isclose(ell.mean(), x.mean(), atol=1e-5)
    g = _gain_of(lambda d: flt.fq(d, 7, [0.05, 0.2, 0.1, 0.3], pad=False))
    assert g[0, 0] == pytest.approx(1.0) and g[0, 4] < g[4, 0]   # narrower pass band along x
    with pytest.raises(UsageError):
        flt.fq(x, 11, [0.1])
    with pytest.raises(UsageError):
        flt.fq(x, 5, [0.1])
    with pytest.raises(UsageError):
        flt.fq(np.zeros((8, 8, 8), np.float32), 7, [0.1, 0.2, 0.1, 0.3])
    with pytest.raises(UsageError):
        flt.tanh_lowpass(x, 0.0, 0.1)
