"""CTF kernels: SPIDER TF C3 / TF CT / TF COR on golden case 13-ctf, conventions, estimation."""

from __future__ import annotations

import numpy as np
import pytest

import emsh.io as io
from emsh.errors import UsageError
from emsh.io.docfile import read_doc
from emsh.kernels import ctf as C
from emsh.kernels.fourier import periodogram, spider_ft, spider_ift
from emsh.table import Table

T3 = 2e-5
LAMBDA_REG = float(np.float32(12.398 / np.sqrt(300 * (1022.0 + 300))))   # [lambda] in proc.spi

# the answers of case 13 (proc.spi), in SPIDER's prompt order
TF_C3_A = C.SpiderTF(2.0, 15000, 300, 0.2, 0.005, 100, 0, 0, 0.1, 0.15, -1)
TF_C3_B = C.SpiderTF(2.0, 25000, LAMBDA_REG, 0.2, 0, 0, 400, 30, 0.07, 10000, 1)
TF_CT_A = C.SpiderTF(2.0, 20000, 300, 0.2, 0, 0, 600, 45, 0.1, 0.0, -1)
TF_CT_B = C.SpiderTF(2.0, 12000, 300, 0.2, 0, 0, 0, 0, 0.15, 0.0, 1)


def _rel(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(b).max())


def _kv_for_lambda(lam: float) -> float:
    """Voltage whose exact (CODATA) wavelength is ``lam``: to compare with SPIDER's formula."""
    m, hc = 510.99895, 12.398419843320026
    return -m + np.sqrt(m * m + (hc / lam) ** 2)


@pytest.mark.parametrize("name,answers", [("ctf3_a", TF_C3_A), ("ctf3_b", TF_C3_B)])
def test_tf_c3_matches_spider_golden(golden, name, answers):
    """ctf3_a (envelope terms, sign -1), ctf3_b (legacy lambda answer, astigmatism, +1): T3."""
    want = io.read(golden / "13-ctf" / f"{name}.dat")
    got = C.spider_tf_c3(answers, 40)
    assert got.dtype == np.complex64 and got.shape == want.shape == (40, 40, 21)
    assert _rel(got, want) <= T3
    assert np.all(got.imag == 0)


@pytest.mark.parametrize("name,answers", [("ctf2_a", TF_CT_A), ("ctf2_b", TF_CT_B)])
def test_tf_ct_matches_spider_golden(golden, name, answers):
    """ctf2_a (astigmatism 600 Å at 45°, sign -1), ctf2_b (sign +1): only +-1, all equal."""
    want = io.read(golden / "13-ctf" / f"{name}.dat")
    got = C.spider_tf_ct(answers, 64)
    assert got.shape == want.shape == (64, 33)
    assert set(np.unique(want.real)) == {-1.0, 1.0}
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("inp,ctf,out,shape", [
    ("obj2", "ctf2_a", "cor2_a", None), ("obj2_ft", "ctf2_b", "cor2_b", (64, 64)),
    ("obj3", "ctf3_a", "cor3_a", None), ("obj3_ft", "ctf3_b", "cor3_b", (40, 40, 40))])
def test_tf_cor_matches_spider_golden(golden, inp, ctf, out, shape):
    """TF COR on real and Fourier images/volumes (cor2_a, cor2_b, cor3_a, cor3_b): T3."""
    x = io.read(golden / "13-ctf" / f"{inp}.dat")
    c = io.read(golden / "13-ctf" / f"{ctf}.dat")
    want = io.read(golden / "13-ctf" / f"{out}.dat")
    got = C.tf_cor(x, c, shape)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert _rel(got, want) <= T3


def test_spider_fourier_inputs_and_doc_values(golden):
    """obj2_ft/obj3_ft are SPIDER FTs; ctf_doc key 5 = Cs, kV, pixel, fmax, lambda (T5)."""
    for name in ("obj2", "obj3"):
        x = io.read(golden / "13-ctf" / f"{name}.dat")
        assert _rel(spider_ft(x), io.read(golden / "13-ctf" / f"{name}_ft.dat")) <= T3
    cs, kv, pix, fmax, lam = read_doc(golden / "13-ctf" / "ctf_doc.dat").get(5)
    assert (cs, kv, pix) == (2.0, 300.0, 2.5)
    assert abs(C.SpiderTF.fmax_from_apix(pix) - fmax) <= 1e-5 * fmax
    assert abs(C.SpiderTF(cs, 1e4, kv).lambda_A - lam) <= 1e-5 * lam
    assert abs(C.SpiderTF(cs, 1e4, lam).lambda_A - lam) <= 1e-7      # a value < 1 is lambda
    assert abs(float(C.wavelength_A(300.0)) - 0.0196875) < 2e-6
    assert abs(float(C.wavelength_A(200.0)) - 0.0250793) < 2e-6
    with pytest.raises(UsageError):
        C.SpiderTF(cs, 1e4, 1.0).lambda_A


def test_spider_tf_c_agrees_with_emsh_convention():
    """TF C (straight 2D CTF) from SPIDER answers == ctf_2d of the converted parameters,
    except SPIDER's kx = 0 column, where the astigmatism has the opposite sign. (SPIDER
    takes the azimuth from frequency indices, so this holds for square images only.)"""
    ans = C.SpiderTF(2.0, 18000, 300, 0.25, 0, 0, 900, 30, 0.1, 0.0, -1)
    spi = C.spider_tf_ct(ans, 48, flip=False).real
    p = ans.to_params()
    p.voltage_kV = _kv_for_lambda(ans.lambda_A)
    mine = C.ctf_2d(p, (48, 48))
    assert np.abs(spi[:, 1:] - mine[:, 1:]).max() < 2e-4
    swapped = C.ctf_2d(C.CTFParams(p.defocus_v_A, p.defocus_u_A, p.astig_angle_deg, p.voltage_kV,
                                   p.cs_mm, p.amp_contrast, 0, 0, p.apix), (48, 48))
    assert np.abs(spi[:, 0] - swapped[:, 0]).max() < 2e-4
    assert np.abs(spi[:, 0] - mine[:, 0]).max() > 0.1                # the quirk is real


def test_sphire_formula_agrees_with_emsh_convention():
    """SPHIRE's CTF (research note 0.3) computed directly == ctf_2d(from_sphire(...), sign=-1)."""
    dz, dfdiff, dfang, b, ac, kv, cs, apix = 2.1, 0.15, 25.0, 40.0, 10.0, 300.0, 2.0, 1.7
    ny, nx = 36, 40
    ky = np.fft.fftfreq(ny)[:, None] / apix
    ky = np.where(np.arange(ny)[:, None] == ny // 2, 0.5 / apix, ky)
    kx = (np.arange(nx // 2 + 1) / nx)[None, :] / apix
    k, th = np.hypot(kx, ky), np.arctan2(ky, kx)
    lam = 12.398 / np.sqrt(kv * (1022 + kv))
    w = ac / 100
    dzz = dz - dfdiff / 2 * np.sin(2 * (th + np.radians(dfang)))
    sphire = -np.sin(np.pi * (dzz * 1e4 * lam * k**2 - cs * 1e7 * lam**3 * k**4 / 2)
                     + np.arctan(w / np.sqrt(1 - w * w))) * np.exp(-b * k**2 / 4)
    p = C.CTFParams.from_sphire(dz, dfdiff, dfang, b, ac, _kv_for_lambda(lam), cs, apix)
    assert p.defocus_u_A >= p.defocus_v_A
    np.testing.assert_allclose(C.ctf_2d(p, (ny, nx), sign=-1), sphire, atol=2e-5)


def test_converters_round_trip():
    p = C.CTFParams(23000.0, 21500.0, 37.0, 200.0, 2.7, 0.07, 55.0, 30.0, 1.3)
    q = C.CTFParams.from_relion(p.to_relion())
    assert q == p
    table = Table({"rlnDefocusU": [2e4, 3e4], "rlnDefocusV": [1.9e4, 2.95e4],
                   "rlnDefocusAngle": [10.0, 170.0], "rlnVoltage": [300.0, 300.0],
                   "rlnSphericalAberration": [2.7, 2.7], "rlnAmplitudeContrast": [0.1, 0.1]})
    t = C.CTFParams.from_relion(table, apix=1.1)
    assert t.batch_size == 2 and np.allclose(t.defocus_v_A, [1.9e4, 2.95e4]) and t.phase_shift_deg == 0
    sp = p.to_sphire()
    assert np.isclose(sp["defocus"], 2.225) and np.isclose(sp["dfdiff"], 0.15)
    s = C.CTFParams.from_sphire(sp["defocus"], sp["dfdiff"], sp["dfang"], sp["bfactor"],
                                sp["ampcont"], sp["voltage"], sp["cs"], sp["apix"])
    for f in ("defocus_u_A", "defocus_v_A", "astig_angle_deg", "amp_contrast"):
        assert np.isclose(getattr(s, f), getattr(p, f), rtol=1e-12, atol=1e-9), f
    for use_lambda in (False, True):
        a = p.to_spider(use_lambda=use_lambda)
        assert (a.kv_or_lambda < 1) == use_lambda and a.sign == -1 and np.isclose(a.fmax, 0.5 / 1.3)
        r = a.to_params()
        for f in ("defocus_u_A", "defocus_v_A", "astig_angle_deg", "voltage_kV", "cs_mm",
                  "amp_contrast", "bfactor_A2", "apix"):
            assert np.isclose(getattr(r, f), getattr(p, f), rtol=1e-9), (f, use_lambda)
        assert C.CTFParams.from_spider(a) == r
    b = C.SpiderTF(2.0, 25000, 0.0197, 0.2, 0, 0, 400, 30, 0.07, 0.5, 1)
    b2 = b.to_params().to_spider(sign=1, use_lambda=True)
    for f in ("cs_mm", "defocus_A", "kv_or_lambda", "fmax", "astig_A", "astig_azimuth_deg", "acr",
              "geh"):
        assert np.isclose(getattr(b2, f), getattr(b, f), rtol=1e-9), f
    neg = C.SpiderTF(2.0, 25000, 300, 0.2, 0, 0, -400, 30).to_params()   # negative DZA: swap axes
    assert neg.defocus_u_A == 25200 and np.isclose(neg.astig_angle_deg, 75.0)


def test_zero_frequency_sign_and_batches():
    """Convention: sign=+1 gives CTF(0) = +amplitude contrast; SPIDER's sign -1 agrees."""
    p = C.CTFParams(np.array([15000.0, 22000.0, 30000.0]), np.array([14000.0, 22000.0, 29000.0]),
                    np.array([0.0, 45.0, 100.0]), 300.0, 2.7, 0.08, 0.0, 0.0, 1.5)
    c = C.ctf_2d(p, (32, 30))
    assert c.shape == (3, 32, 16) and c.dtype == np.float32
    np.testing.assert_allclose(c[:, 0, 0], 0.08, rtol=1e-6)
    assert np.allclose(C.ctf_2d(p, (32, 30), sign=-1)[:, 0, 0], -0.08)
    one = C.CTFParams(22000.0, 22000.0, 45.0, 300.0, 2.7, 0.08, 0.0, 0.0, 1.5)
    np.testing.assert_array_equal(C.ctf_2d(one, (32, 30)), c[1])
    full = C.ctf_2d(one, (32, 30), half=False)
    assert full.shape == (32, 30)
    np.testing.assert_allclose(full[:, :16], c[1], atol=1e-7)
    np.testing.assert_allclose(full[1:, 1:], full[1:, 1:][::-1, ::-1], atol=1e-6)   # C(-k) = C(k)
    spi = C.spider_tf_c3(C.SpiderTF(2.0, 20000, 300, 0.2, 0, 0, 0, 0, 0.08, 1e4, -1), 16)
    assert np.isclose(spi[0, 0, 0].real, C.SpiderTF(2.0, 2e4, acr=0.08).to_params().amp_contrast)
    prof = C.ctf_1d(one, [0.0, 0.1])
    assert prof.shape == (2,) and np.isclose(prof[0], 0.08)
    with pytest.raises(UsageError):
        C.CTFParams(np.zeros(2), np.zeros(3)).batch_size


def test_phase_flip_wiener_and_apply(rng):
    imgs = rng.standard_normal((4, 32, 32)).astype(np.float32)
    p = C.CTFParams(rng.uniform(1e4, 3e4, 4), None, 0.0, 300.0, 2.7, 0.1, 0.0, 0.0, 2.0)
    ctf = C.ctf_2d(p, (32, 32))
    twice = C.phase_flip(C.phase_flip(imgs, ctf), ctf)
    np.testing.assert_allclose(twice, imgs, atol=2e-5)
    F = np.fft.rfft2(imgs)
    np.testing.assert_allclose(C.apply_ctf(F, ctf), F * ctf, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(C.apply_ctf(imgs, ctf), np.fft.irfft2(F * ctf, s=(32, 32)),
                               atol=1e-5)
    w = C.wiener(imgs, ctf, 5.0)
    np.testing.assert_allclose(w, np.fft.irfft2(F * ctf / (ctf**2 + 0.2), s=(32, 32)), atol=1e-4)
    flipped = C.phase_flip(C.apply_ctf(imgs, ctf), ctf)      # phase flip leaves |CTF| >= 0
    assert np.all(np.fft.rfft2(flipped).real * F.real >= -1e-3)
    with pytest.raises(UsageError):
        C.wiener(imgs, ctf, 0.0)


def test_tf_cts_is_the_wiener_merge(rng):
    vols = rng.standard_normal((2, 12, 12, 12)).astype(np.float32)
    ctfs = np.stack([C.spider_tf_c3(C.SpiderTF(2.0, d, 300, 0.2, 0, 0, 0, 0, 0.1, 1e4, -1), 12)
                     for d in (15000, 25000)])
    got = C.tf_cts(vols, ctfs, 3.0)
    F = spider_ft(vols, 3)
    want = spider_ift((F * np.conj(ctfs)).sum(0) / ((np.abs(ctfs) ** 2).sum(0) + 1 / 3.0),
                      (12, 12, 12))
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(C.tf_cts(F, ctfs, 3.0, shape=(12, 12, 12)), got, atol=1e-6)
    ones = np.ones((1, 12, 12, 7), np.complex64)
    np.testing.assert_allclose(C.tf_cts(vols[:1], ones, 4.0), vols[0] * 0.8, atol=1e-5)
    with pytest.raises(UsageError):
        C.tf_cor(F[0], ctfs[0])                  # Fourier input needs the real shape


def _micrograph_spectrum(p: C.CTFParams, rng, n: int = 768, box: int = 256) -> np.ndarray:
    """Periodogram of a simulated micrograph: white object x CTF x envelope + coloured noise."""
    obj = np.fft.rfft2(rng.standard_normal((n, n)))
    ky = np.fft.fftfreq(n)[:, None]
    kx = np.fft.rfftfreq(n)[None, :]
    s = np.hypot(ky, kx)
    signal = obj * C.ctf_2d(p, (n, n))
    background = np.fft.rfft2(rng.standard_normal((n, n))) * 1.5 / (1 + (s / 0.08) ** 2)
    img = np.fft.irfft2(signal + background, s=(n, n)) + 0.7 * rng.standard_normal((n, n))
    return periodogram(img.astype(np.float32), box)


def test_estimate_defocus_on_simulated_micrographs(rng, monkeypatch):
    """Known defocus 1-3 µm with astigmatism up to 0.15 µm: median relative error < 2 %."""
    monkeypatch.setenv("EMSH_FFT", "scipy")       # small transforms; no FFTW planning here
    errs, angle_errs = [], []
    for _ in range(5):
        mean, astig = rng.uniform(10000, 30000), rng.uniform(300, 1500)
        truth = C.CTFParams(mean + astig / 2, mean - astig / 2, rng.uniform(0, 180), 300.0, 2.7,
                            0.1, 80.0, 0.0, 2.0)
        fit = C.estimate_defocus(_micrograph_spectrum(truth, rng), 2.0, 300.0, 2.7, 0.1,
                                 defocus_range_A=(5000, 40000))
        q = fit.params
        errs += [abs(q.defocus_u_A - truth.defocus_u_A) / truth.defocus_u_A,
                 abs(q.defocus_v_A - truth.defocus_v_A) / truth.defocus_v_A]
        d = abs(q.astig_angle_deg - truth.astig_angle_deg) % 180
        angle_errs.append(min(d, 180 - d))
        assert 0 < fit.score <= 1
    assert np.median(errs) < 0.02
    assert max(errs) < 0.05
    assert np.median(angle_errs) < 10.0


def test_estimate_defocus_refuses_bad_input():
    with pytest.raises(UsageError):
        C.estimate_defocus(np.ones((40, 50)), 1.0)
    with pytest.raises(UsageError):
        C.estimate_defocus(np.ones((64, 64)), 2.0, res_range_A=(30.0, 3.0))
