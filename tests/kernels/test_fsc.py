"""FSC/FRC: SPIDER's FSC and RF 3 docs and registers on golden data, identities,
resolution interpolation, the SPIDER mask and spectral SNR."""

from __future__ import annotations

import numpy as np
import pytest

import emsh.io as eio
from emsh.errors import UsageError
from emsh.io.docfile import read_doc
from emsh.kernels.fsc import (
    fsc,
    fsc_doc_rows,
    resolution,
    rf3_doc_rows,
    shell_stats,
    spider_mask,
    ssnr_from_fsc,
)

# (doc, volume 1, volume 2, shell width, mask radius, cutoff, bp_doc key of the registers)
FSC_CASES = [
    ("fsc_oddeven", "bp3f_odd", "bp3f_even", 0.5, 0, 0.5, 2),
    ("fsc_halves", "bp32f_h1", "bp32f_h2", 1.0, 17, 0.5, 3),
    ("fsc_vs_phantom", "bp32f_full", "phantom", 0.5, 0, 0.143, 4),
]


@pytest.mark.parametrize("doc, v1, v2, width, radius, cutoff, regkey", FSC_CASES)
def test_fsc_doc_matches_spider(golden, doc, v1, v2, width, radius, cutoff, regkey):
    case = golden / "12-bp-recon"
    a, b = eio.read(case / f"{v1}.dat"), eio.read(case / f"{v2}.dat")
    rows, regs = fsc_doc_rows(a, b, width=width, mask_radius=radius, voxel_size=2.0,
                              cutoff=cutoff)
    ref = read_doc(case / f"{doc}.dat")
    keys = [k for k, _ in rows]
    assert keys == sorted(int(k) for k in ref.keys)             # T0, incl. the key quirk
    assert keys[0] == (3 if width == 0.5 else 2)
    for key, vals in rows:
        want = ref.get(key)
        assert len(vals) == len(want) == 5
        assert abs(vals[0] - want[0]) <= 1e-5 * want[0]          # normalised frequency
        assert abs(vals[1] - want[1]) <= 1e-5 * want[1]          # resolution in Å
        for j in (2, 3, 4):                                      # FSC and its filters
            assert abs(vals[j] - want[j]) <= 2e-3, f"key {key} register {j + 1}"
    shell, freq, res = regs
    want = read_doc(case / "bp_doc.dat").get(regkey)
    shell_step = width / 40 * 1.0                                 # one shell in cycles/pixel
    assert abs(shell - want[0]) <= 0.05
    assert abs(freq - want[1]) <= 0.05 * shell_step
    assert abs(res - want[2]) <= 0.05 * shell_step * want[2] / want[1]


def test_fsc_without_crossing_uses_spiders_fallback(golden):
    """No crossing at 0.143: SPIDER stores the last shell and the last FSC *value*."""
    case = golden / "12-bp-recon"
    rows, (shell, sf, res) = fsc_doc_rows(eio.read(case / "bp32f_full.dat"),
                                          eio.read(case / "phantom.dat"), width=0.5,
                                          voxel_size=2.0, cutoff=0.143)
    assert shell == rows[-1][0] == 41
    assert sf == pytest.approx(rows[-1][1][2])
    assert res == pytest.approx(2.0 / sf)


def test_rf3_doc_matches_spider(golden):
    case = golden / "12-bp-recon"
    rows, (shell, freq) = rf3_doc_rows(eio.read(case / "bp3f_odd.dat"),
                                       eio.read(case / "bp3f_even.dat"), width=0.5)
    ref = read_doc(case / "rf3_oddeven.dat")
    assert [k for k, _ in rows] == sorted(int(k) for k in ref.keys)
    for key, vals in rows:
        want = ref.get(key)
        assert abs(vals[0] - want[0]) <= 1e-5 * want[0]
        assert abs(vals[1] - want[1]) <= 1e-3 * want[1] + 1e-3    # phase residue, degrees
        assert abs(vals[2] - want[2]) <= 2e-3                      # FSC
        assert abs(vals[3] - want[3]) <= 1e-5 * want[3]            # FSCCRIT
        assert vals[4] == want[4]                                  # voxel count
    want = read_doc(case / "bp_doc.dat").get(5)
    assert abs(shell - want[0]) <= 0.05
    assert abs(freq - want[1]) <= 0.05 * 0.5 / 40


# ------------------------------------------------------------------------------ identities
def test_fsc_identities(rng):
    a = rng.standard_normal((24, 24, 24)).astype(np.float32)
    f, c = fsc(a, a)
    np.testing.assert_allclose(c, 1.0, atol=1e-6)
    assert f[0] == pytest.approx(1 / 24) and f[-1] == pytest.approx(0.5)
    np.testing.assert_allclose(fsc(a, -3 * a)[1], -1.0, atol=1e-6)
    b = rng.standard_normal(a.shape).astype(np.float32)
    np.testing.assert_allclose(fsc(a, b)[1], fsc(2 * a, 5 * b)[1], atol=1e-6)
    # independent noise: |FSC| stays within a few 1/sqrt(voxels per shell)
    st = shell_stats(a, b)
    assert np.all(np.abs(st.fsc) <= 4 / np.sqrt(st.count))
    # 2D: FRC with the same shells
    img = rng.standard_normal((32, 32)).astype(np.float32)
    fr, cr = fsc(img, img)
    assert fr.size == 16 and np.allclose(cr, 1.0, atol=1e-6)


def test_fsc_of_noisy_copies_gives_snr(rng):
    """Two copies of a signal with independent noise: FSC = S/(S+N), so
    ssnr_from_fsc(halves=False) returns the per-shell S/N."""
    n = 32
    sig = rng.standard_normal((n, n, n))
    noise_sd = 0.7
    a = (sig + noise_sd * rng.standard_normal(sig.shape)).astype(np.float32)
    b = (sig + noise_sd * rng.standard_normal(sig.shape)).astype(np.float32)
    f, c = fsc(a, b)
    snr = ssnr_from_fsc(c, halves=False)
    sel = f > 0.1                                              # shells with many voxels
    assert np.median(snr[sel]) == pytest.approx(1 / noise_sd ** 2, rel=0.05)
    np.testing.assert_allclose(snr[f > 0.2], 1 / noise_sd ** 2, rtol=0.35)
    assert np.median(ssnr_from_fsc(c)[sel]) == pytest.approx(2 / noise_sd ** 2, rel=0.05)
    np.testing.assert_allclose(ssnr_from_fsc([0.5, 0.0, 1.2]), [2.0, 0.0, 2 * (1 - 1e-6) / 1e-6])


def test_mask_argument(rng):
    a = rng.standard_normal((20, 20, 20)).astype(np.float32)
    b = rng.standard_normal((20, 20, 20)).astype(np.float32)
    m = spider_mask(a.shape, 6.0)
    assert m[10, 10, 10] == 1.0
    assert m[10, 10, 16] == pytest.approx(np.exp(-0.5))
    np.testing.assert_allclose(fsc(a, b, mask=6.0)[1], fsc(a * m, b * m)[1], atol=1e-6)
    np.testing.assert_allclose(fsc(a, b, mask=m)[1], fsc(a * m, b * m)[1], atol=1e-6)


def test_resolution_last_crossing():
    f = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    c = np.array([0.9, 0.4, 0.7, 0.3, 0.1])                   # crosses 0.5 twice
    assert resolution(f, c, 0.5) == pytest.approx(0.3 + 0.1 * (0.5 - 0.7) / (0.3 - 0.7))
    assert resolution(f, c, 0.143) == pytest.approx(0.4 + 0.1 * (0.143 - 0.3) / (0.1 - 0.3))
    assert resolution(f, np.ones(5)) == 0.5                    # no crossing: last frequency


def test_fsc_input_errors():
    with pytest.raises(UsageError):
        fsc(np.zeros((8, 8, 8)), np.zeros((8, 8, 9)))
    with pytest.raises(UsageError):
        fsc(np.zeros(8), np.zeros(8))
    with pytest.raises(UsageError):
        fsc(np.zeros((8, 8)), np.zeros((8, 8)), width=0)
    with pytest.raises(UsageError):
        fsc(np.zeros((8, 8)), np.zeros((8, 8)), mask=np.ones((4, 4)))
    with pytest.raises(UsageError):
        resolution([], [])
