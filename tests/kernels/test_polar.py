"""Ring tables, polar resampling, ring FFTs and weights (emsh.kernels.polar)."""

from __future__ import annotations

import numpy as np
import pytest

from emsh.errors import UsageError
from emsh.kernels import polar as P
from emsh.kernels.transform import rotate_shift_quadratic


def smooth_image(n: int, rng) -> np.ndarray:
    y, x = np.mgrid[:n, :n] - n // 2
    img = np.zeros((n, n))
    for _ in range(6):
        cx, cy = rng.uniform(-0.25 * n, 0.25 * n, 2)
        s = rng.uniform(2.0, 4.0)
        img += rng.uniform(0.5, 1.0) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
    return img.astype(np.float32)


def test_ring_table_matches_the_full_circle_rule():
    t = P.RingTable(1, 29)
    assert t.n_rings == 29
    assert list(t.lengths) == [8, 16] + [32] * 3 + [64] * 5 + [128] * 10 + [256] * 9
    assert t.total == 4024 and t.maxrin == 256 and t.nfreq == 129
    assert list(t.offsets[:4]) == [0, 8, 24, 56] and t.offsets[-1] == 4024
    assert t.groups == ((8, 0, 1), (16, 1, 2), (32, 2, 5), (64, 5, 10), (128, 10, 20),
                        (256, 20, 29))
    t2 = P.RingTable(2, 28)
    assert t2.n_rings == 27 and t2.total == 3760 and t2.maxrin == 256
    t3 = P.RingTable(3, 15, 4)
    assert list(t3.radii) == [3, 7, 11, 15] and list(t3.lengths) == [32, 64, 128, 128]
    assert np.allclose(t.area, 2 * np.pi * t.radii / t.lengths)
    assert P.RingTable(2, 28) == t2 and hash(P.RingTable(2, 28)) == hash(t2)


def test_bands_cover_exactly_the_nonzero_coefficients():
    t = P.RingTable(2, 28)
    bands = t.bands()
    assert bands[0][0] == 0 and bands[-1][1] == t.nfreq
    for (m0, m1, c0), nxt in zip(bands, bands[1:] + ((t.nfreq, None, None),)):
        assert m1 == nxt[0]
        assert np.all(t.lengths[c0:] // 2 + 1 >= m1)          # every ring used has these m
        assert c0 == 0 or t.lengths[c0 - 1] // 2 + 1 <= m0    # rings left out have none


@pytest.mark.parametrize("args", [(0, 5), (5, 4), (2, 8, 0), (1.5, 8), (2, 5000)])
def test_ring_table_rejects_bad_rings(args):
    with pytest.raises(UsageError):
        P.RingTable(*args)


def test_polar_samples_of_a_plane_are_exact():
    """Bilinear interpolation reproduces a linear ramp exactly: checks positions and angles."""
    n = 40
    y, x = np.mgrid[:n, :n].astype(np.float64)
    img = (0.3 * (x - n // 2) - 0.7 * (y - n // 2) + 2.0).astype(np.float32)
    t = P.RingTable(2, 12)
    shifts = np.array([[0.0, 0.0], [1.5, -2.0], [-3.0, 0.25]])
    got = P.polar_transform(img, t, shifts)                          # (3, total)
    r = np.repeat(t.radii, t.lengths)
    k = np.arange(t.total) - np.repeat(t.offsets[:-1], t.lengths)
    phi = 2 * np.pi * k / np.repeat(t.lengths, t.lengths)
    for s, (sx, sy) in enumerate(shifts):
        want = 0.3 * (r * np.cos(phi) + sx) - 0.7 * (r * np.sin(phi) + sy) + 2.0
        assert np.abs(got[s] - want).max() < 2e-5
    at = P.polar_at(np.stack([img] * 3), t, shifts)
    assert np.abs(at - got).max() < 2e-5
    assert P.polar_transform(np.stack([img, img]), t).shape == (2, t.total)


def test_rt_sq_rotation_advances_the_polar_angle(rng):
    """RT SQ by +90 degrees turns p(r, phi) into p(r, phi + 90): the sign convention."""
    n = 48
    img = smooth_image(n, rng)
    rot = rotate_shift_quadratic(img, 90.0)
    t = P.RingTable(3, 20)
    a, b = P.polar_transform(img, t), P.polar_transform(rot, t)
    for L, c0, c1 in t.groups:
        seg_a = a[t.offsets[c0]:t.offsets[c1]].reshape(-1, L)
        seg_b = b[t.offsets[c0]:t.offsets[c1]].reshape(-1, L)
        assert np.abs(seg_b - np.roll(seg_a, -L // 4, axis=1)).max() < 1e-5 * np.abs(img).max()


def test_ring_fft_is_a_per_ring_rfft(rng):
    t = P.RingTable(1, 10)
    p = rng.standard_normal((3, t.total)).astype(np.float32)
    c = P.ring_fft(p, t)
    assert c.shape == (3, t.n_rings, t.nfreq) and c.dtype == np.complex64
    for i, L in enumerate(t.lengths):
        ring = p[:, t.offsets[i]:t.offsets[i + 1]]
        assert np.allclose(c[:, i, :L // 2 + 1], np.fft.rfft(ring, axis=-1), atol=1e-4)
        assert np.all(c[:, i, L // 2 + 1:] == 0)


@pytest.mark.parametrize("rings", [(21, 28), (2, 28)])
def test_ring_weights_give_area_weighted_correlations(rings, rng):
    """irfft(sum_r w conj(A) B) equals sum_r (2 pi r/L) sum_k a(k) b(k + shift) directly."""
    t = P.RingTable(*rings)
    a = rng.standard_normal(t.total)
    b = rng.standard_normal(t.total)
    A, Bc = P.ring_fft(a.astype(np.float32), t), P.ring_fft(b.astype(np.float32), t)
    spec = (P.ring_weights(t) * np.conj(A) * Bc).sum(0)
    cc = np.fft.irfft(spec.astype(np.complex128), t.maxrin)
    step = t.maxrin // int(t.lengths.min())        # angles every ring samples exactly
    for j in range(0, t.maxrin, step):
        direct = 0.0
        for i, L in enumerate(t.lengths):
            ra, rb = a[t.offsets[i]:t.offsets[i + 1]], b[t.offsets[i]:t.offsets[i + 1]]
            direct += t.area[i] * np.dot(ra, np.roll(rb, -(j * L // t.maxrin)))
        assert cc[j] == pytest.approx(direct, rel=1e-4, abs=1e-3)


def test_moments_and_normalisation_match_sample_space(rng):
    t = P.RingTable(2, 15)
    p = (rng.standard_normal((4, t.total)) + 5.0).astype(np.float32)
    w = np.repeat(t.area, t.lengths)
    mean_direct = (p * w).sum(1) / w.sum()
    norm_direct = np.sqrt((w * (p - mean_direct[:, None]) ** 2).sum(1))
    mean, norm = P.ring_moments(P.ring_fft(p, t), t)
    assert np.allclose(mean, mean_direct, rtol=1e-5)
    assert np.allclose(norm, norm_direct, rtol=1e-4)
    c = P.normalize_rings(P.ring_fft(p, t), t)
    m2, n2 = P.ring_moments(c, t)
    assert np.abs(m2).max() < 1e-5 and np.allclose(n2, 1.0, atol=1e-4)
    flat = P.normalize_rings(P.ring_fft(np.full((1, t.total), 3.0, np.float32), t), t)
    assert np.all(flat == 0)


def test_rings_must_fit_in_the_image():
    assert P.polar_limit((64, 64)) == 31 and P.polar_limit((41, 40)) == 19
    img = np.zeros((64, 64), np.float32)
    P.polar_transform(img, P.RingTable(2, 28), [(3.0, -3.0)])       # 28 + 3 = 31 fits
    with pytest.raises(UsageError, match="beyond"):
        P.polar_transform(img, P.RingTable(2, 29), [(3.0, 0.0)])
    with pytest.raises(UsageError):
        P.polar_transform(img, P.RingTable(2, 10), np.zeros((2, 3)))
    with pytest.raises(UsageError):
        P.ring_fft(np.zeros(10, np.float32), P.RingTable(2, 10))


def test_reference_columns_and_band_gemm(rng):
    """The GEMM path equals the direct sum over rings, straight and mirrored."""
    t = P.RingTable(2, 18)
    refs = np.stack([smooth_image(40, rng) for _ in range(3)])
    prep = P.prepare_references(refs, t, mirror=True)
    assert prep.gemm.shape == (t.nfreq, t.n_rings, 6) and prep.n_refs == 3
    R = P.normalize_rings(P.ring_fft(P.polar_transform(refs, t), t), t)     # (3, C, nfreq)
    w = P.ring_weights(t)
    sign = (-1.0) ** np.arange(t.nfreq)
    assert np.allclose(prep.gemm[:, :, 0].T, w * np.conj(R[0]), atol=1e-6)
    assert np.allclose(prep.gemm[:, :, 4].T, w * R[1] * sign, atol=1e-6)
    # 600 rows of image coefficients, 60 reference columns
    y = rng.standard_normal((6, 100, t.total)).astype(np.float32)
    coef = P.gemm_coefficients(y, t)                                        # (nfreq, 600, C)
    direct = P.ring_fft(y.reshape(600, t.total), t)                         # (600, C, nfreq)
    assert np.allclose(coef, direct.transpose(2, 0, 1), atol=1e-4)
    cols = np.tile(prep.gemm, (1, 1, 10))                                   # 60 columns
    spec = P.band_gemm(coef, cols, t.bands())
    want = np.matmul(direct.transpose(2, 0, 1).astype(np.complex128), cols.astype(np.complex128))
    assert np.abs(spec - want).max() < 1e-4 * np.abs(want).max()
    prep1 = P.prepare_references(refs[0], t, mirror=False)
    assert prep1.gemm.shape == (t.nfreq, t.n_rings, 1)


def test_mirrored_reference_columns_correlate_the_mirror_image(rng):
    """Column K+k scores the image against the x-mirrored reference k, at every angle."""
    from emsh.kernels.transform import mirror_x
    t = P.RingTable(2, 18)
    ref = smooth_image(40, rng)
    prep = P.prepare_references(ref, t, mirror=True)
    img = mirror_x(rotate_shift_quadratic(ref, -30.0))
    # mirror_x(RT SQ(img, a)) = RT SQ(ref, -30 - a) is the reference for a = -30 (330)
    c = P.gemm_coefficients(P.polar_transform(img, t)[None, None], t)
    cc = np.fft.irfft(P.band_gemm(c, prep.gemm, t.bands())[:, 0, :].T, t.maxrin)
    j = int(np.argmax(cc[1]))
    assert cc[1, j] > cc[0].max()
    assert abs(j * 360.0 / t.maxrin - 330.0) <= 360.0 / t.maxrin
