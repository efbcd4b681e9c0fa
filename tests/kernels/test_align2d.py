"""Multi-reference 2-D alignment (emsh.kernels.align2d): ground truth, identities, SPIDER."""

from __future__ import annotations

import numpy as np
import pytest

import emsh.io as io
from emsh.errors import UsageError
from emsh.io.docfile import read_doc
from emsh.kernels import align2d as A
from emsh.kernels.transform import mirror_x, rotate_shift_quadratic

N = 64


def blob_image(n: int, rng, k: int = 8) -> np.ndarray:
    """A particle-like image: anisotropic Gaussian blobs within 0.28 n of the centre."""
    y, x = np.mgrid[:n, :n] - n // 2
    img = np.zeros((n, n))
    for _ in range(k):
        cx, cy = rng.uniform(-0.28 * n, 0.28 * n, 2)
        sa, sb = rng.uniform(1.5, 4.0, 2)
        th = rng.uniform(0, np.pi)
        u = (x - cx) * np.cos(th) + (y - cy) * np.sin(th)
        v = -(x - cx) * np.sin(th) + (y - cy) * np.cos(th)
        img += rng.uniform(0.5, 1.0) * np.exp(-0.5 * ((u / sa) ** 2 + (v / sb) ** 2))
    return img.astype(np.float32)


def make_set(rng, n_img: int, n_ref: int, snr: float | None, max_shift: float = 2.0):
    """Images made from references by a known mirror, rotation and sub-pixel shift.

    Returns refs, images and the true alignment (ref, angle, shift, mirror) in the
    kernel's convention: mirror_x^m(RT SQ(image, angle, shift)) equals the reference.
    """
    refs = np.stack([blob_image(N, rng) for _ in range(n_ref)])
    ref = rng.integers(0, n_ref, n_img)
    mir = rng.random(n_img) < 0.5
    beta = rng.uniform(-180, 180, n_img)
    u = rng.uniform(-max_shift, max_shift, (n_img, 2))
    src = refs[ref].copy()
    src[mir] = mirror_x(src[mir])
    imgs = rotate_shift_quadratic(src, beta, u)
    if snr is not None:
        sd = imgs.std(axis=(1, 2), keepdims=True) / np.sqrt(snr)
        imgs = imgs + (rng.standard_normal(imgs.shape) * sd).astype(np.float32)
    b = np.deg2rad(beta)
    shift = -np.stack([np.cos(b) * u[:, 0] - np.sin(b) * u[:, 1],
                       np.sin(b) * u[:, 0] + np.cos(b) * u[:, 1]], -1)
    return refs, imgs, (ref, np.mod(-beta, 360), shift, mir)


def angle_err(a, b):
    return np.abs((np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0)


KW = dict(first_ring=1, last_ring=28, shift_range=3, shift_step=1)


def test_ground_truth_at_snr_1(rng):
    refs, imgs, (ref, ang, shift, mir) = make_set(rng, 60, 6, snr=1.0)
    r = A.multiref_align(imgs, refs, mirror=True, **KW)
    assert np.all(r.ref == ref) and np.all(r.mirror == mir)
    da = angle_err(r.angle, ang)
    ds = np.linalg.norm(r.shift - shift, axis=1)
    assert np.median(da) < 0.5 and np.mean(da <= 1.0) >= 0.95, da
    assert np.median(ds) < 0.25 and np.mean(ds <= 0.5) >= 0.95, ds
    assert np.all((r.cc > 0.5) & (r.cc <= 1.0))
    # the recovered parameters do bring the images onto their references
    back = A.apply_alignment(imgs[:5], r.angle[:5], r.shift[:5], r.mirror[:5])
    for b, k in zip(back, ref[:5]):
        assert np.corrcoef(b.ravel(), refs[k].ravel())[0, 1] > 0.6


def test_noise_free_accuracy(rng):
    refs, imgs, (ref, ang, shift, mir) = make_set(rng, 20, 3, snr=None)
    r = A.multiref_align(imgs, refs, **KW)
    assert np.all(r.ref == ref) and np.all(r.mirror == mir)
    assert angle_err(r.angle, ang).max() < 0.3
    assert np.linalg.norm(r.shift - shift, axis=1).max() < 0.15
    assert np.all(r.inc_angle == r.angle) and np.all(r.n_searched == 3)


def test_identity_and_mirror_identity(rng):
    refs = np.stack([blob_image(N, rng) for _ in range(3)])
    r = A.multiref_align(refs, refs, **KW)
    assert list(r.ref) == [0, 1, 2] and not r.mirror.any()
    assert np.allclose(r.cc, 1.0, atol=1e-4)
    assert angle_err(r.angle, 0).max() < 0.02 and np.abs(r.shift).max() < 0.02
    m = A.multiref_align(mirror_x(refs), refs, **KW)
    assert list(m.ref) == [0, 1, 2] and m.mirror.all()
    assert np.allclose(m.cc, 1.0, atol=1e-4) and angle_err(m.angle, 0).max() < 0.02
    s = A.multiref_align(mirror_x(refs), refs, mirror=False, **KW)
    assert not s.mirror.any() and np.all(s.cc < 0.99)


def test_batched_equals_one_image_at_a_time(rng):
    refs, imgs, _ = make_set(rng, 10, 4, snr=2.0)      # chunks of 4, 4 and 2 (+2 blank)
    prep = A.prepare_references(refs, A.RingTable(1, 28))
    whole = A.multiref_align(imgs, prep, return_all_cc=True, **KW)
    chunked = A.multiref_align(imgs, prep, return_all_cc=True, chunk=4, **KW)
    for i in range(len(imgs)):
        one = A.multiref_align(imgs[i], prep, return_all_cc=True, **KW)
        for res in (whole, chunked):
            assert res.ref[i] == one.ref[0] and res.mirror[i] == one.mirror[0]
            assert angle_err(res.angle[i], one.angle[0]) < 1e-2     # float32 GEMM rounding
            assert np.allclose(res.shift[i], one.shift[0], atol=1e-3)
            assert np.allclose(res.all_cc[i], one.all_cc[0], atol=1e-4)


def test_all_cc_and_allowed_references(rng):
    refs, imgs, (ref, *_rest) = make_set(rng, 8, 5, snr=4.0)
    r = A.multiref_align(imgs, refs, return_all_cc=True, **KW)
    assert r.all_cc.shape == (8, 5)
    assert np.allclose(r.all_cc[np.arange(8), r.ref], r.cc)
    assert np.all(r.all_cc.max(1) == r.all_cc[np.arange(8), r.ref])
    allowed = np.ones((8, 5), bool)
    allowed[np.arange(8), ref] = False
    s = A.multiref_align(imgs, refs, allowed=allowed, return_all_cc=True, **KW)
    assert np.all(s.ref != ref) and np.all(s.n_searched == 4)
    assert np.all(np.isneginf(s.all_cc[np.arange(8), ref]))
    assert np.all(s.cc < r.cc)


def test_restricted_and_discrete_angles(rng):
    refs, imgs, (ref, ang, shift, mir) = make_set(rng, 6, 2, snr=None)
    # previous = truth rotated by 7 degrees: the +-10 degree search finds the rest
    prev_ang = np.mod(ang + 7.0, 360.0)
    prev = (prev_ang, np.zeros((6, 2)), np.zeros(6, bool))
    r = A.multiref_align(imgs, refs, previous=prev, psi_range=10.0, **KW)
    assert np.all(r.ref == ref) and np.all(r.mirror == mir)
    assert np.all(angle_err(r.inc_angle, 0) <= 10.0 + 1e-6)
    assert angle_err(r.angle, ang).max() < 0.6
    assert np.linalg.norm(r.shift - shift, axis=1).max() < 0.3
    d = A.multiref_align(imgs, refs, psi_delta=90.0, **KW)
    assert np.all(np.isin(np.round(d.angle, 9), [0.0, 90.0, 180.0, 270.0]))
    w = A.multiref_align(imgs, refs, psi_range=1.0, shift_range=0, first_ring=1, last_ring=28)
    assert np.all(angle_err(w.angle, 0) <= 1.0 + 1e-6)


def test_previous_alignment_is_composed(rng):
    refs, imgs, (ref, ang, shift, mir) = make_set(rng, 6, 2, snr=None)
    first = A.multiref_align(imgs, refs, **KW)
    again = A.multiref_align(imgs, refs, previous=first, **KW)
    assert np.all(again.ref == ref) and np.all(again.mirror == mir)
    assert angle_err(again.inc_angle, 0).max() < 0.3 and np.abs(again.inc_shift).max() < 0.2
    assert angle_err(again.angle, ang).max() < 0.4
    assert np.linalg.norm(again.shift - shift, axis=1).max() < 0.25


def test_compose_matches_applying_twice(rng):
    img = blob_image(N, rng)
    p1 = (np.array([35.0]), np.array([[1.5, -0.5]]), np.array([True]))
    p2 = (np.array([-80.0]), np.array([[-1.0, 2.0]]), np.array([True]))
    twice = A.apply_alignment(A.apply_alignment(img[None], *p1), *p2)[0]
    a, s, m = A.compose_alignment(p1, p2)
    assert not m[0]
    once = A.apply_alignment(img[None], a, s, m)[0]
    y, x = np.mgrid[:N, :N] - N // 2
    inside = x**2 + y**2 < 20**2          # away from what RT SQ wrapped around the edge
    assert np.abs(once - twice)[inside].max() < 0.02 * np.abs(img).max()
    assert np.abs(A.apply_alignment(img, 0.0, (0.0, 0.0), True) - mirror_x(img)).max() == 0


def test_align_to_reference(rng):
    refs, imgs, (_, ang, shift, mir) = make_set(rng, 10, 1, snr=1.0)
    r = A.align_to_reference(imgs, refs[0], shift_range=3, shift_step=1, mirror=True)
    assert np.all(r.ref == 0) and np.all(r.mirror == mir)
    assert np.median(angle_err(r.angle, ang)) < 1.0
    assert np.median(np.linalg.norm(r.shift - shift, axis=1)) < 0.5


def test_bad_arguments(rng):
    refs = np.stack([blob_image(N, rng) for _ in range(2)])
    with pytest.raises(UsageError, match="beyond"):
        A.multiref_align(refs, refs, first_ring=1, last_ring=30, shift_range=3)
    with pytest.raises(UsageError):
        A.multiref_align(refs[:, :40, :40], refs, **KW)
    with pytest.raises(UsageError):
        A.multiref_align(refs, refs, allowed=np.ones((2, 3), bool), **KW)
    with pytest.raises(UsageError):
        A.multiref_align(refs, refs, chunk=0, **KW)
    with pytest.raises(UsageError):
        A.multiref_align(refs, refs, first_ring=1, last_ring=20, shift_range=2, shift_step=0)
    with pytest.raises(UsageError):
        A.multiref_align(np.full_like(refs, np.nan), refs, **KW)
    with pytest.raises(UsageError):
        A.multiref_align(refs, refs, previous=(1, 2), **KW)


# ---------------------------------------------------------------- SPIDER golden cases


def _doc(path):
    d = read_doc(path)
    return np.array([d.get(k) for k in d.keys])


def _spider_inputs(golden, case):
    base = golden / case
    refs, exp = io.read(str(base / "refs.dat")), io.read(str(base / "exp.dat"))
    return refs, exp, _doc(base / "refangles.dat")[:, :3]


def _check_against(regs, want):
    assert np.array_equal(regs[:, 3], want[:, 3])                  # reference numbers
    assert np.array_equal(regs[:, 4], want[:, 4])                  # image numbers
    assert np.array_equal(np.sign(regs[:, 14]), np.sign(want[:, 14]))   # mirror flags
    assert np.allclose(regs[:, 1:3], want[:, 1:3], atol=0.01)      # theta (240 when mirrored), phi
    assert angle_err(regs[:, 5], want[:, 5]).max() <= 0.5
    assert np.abs(regs[:, 6:8] - want[:, 6:8]).max() <= 0.3
    assert np.array_equal(regs[:, 8], want[:, 8])                  # NPROJ


def test_golden_apsh_pass1(golden):
    refs, exp, ref_angles = _spider_inputs(golden, "17-apsh")
    r = A.multiref_align(exp, refs, first_ring=2, last_ring=14, shift_range=4, shift_step=1,
                         mirror=True)
    regs = A.to_spider_apsh(r, ref_angles)
    want = _doc(golden / "17-apsh" / "apsh_doc.dat")
    assert list(regs[:, 3]) == [3, 11, 18, 1, 11, 8]
    assert list(regs[:, 14]) == [1, 1, 1, 1, -1, 1] and regs[4, 1] == 240.0
    assert angle_err(regs[:, 5], [334.95, 59.94, 220.05, 0.0, 98.18, 169.11]).max() <= 0.5
    _check_against(regs, want)
    assert np.array_equal(regs[:, 5], regs[:, 11]) and np.all(regs[:, 9] == -1)


def test_golden_apsh_pass2_restricted(golden):
    """Pass 2: previous alignment applied first, references within 35 degrees only."""
    refs, exp, ref_angles = _spider_inputs(golden, "17-apsh")
    prev = _doc(golden / "17-apsh" / "apsh_doc.dat")

    def unit(theta, phi):
        t, p = np.deg2rad(theta), np.deg2rad(phi)
        return np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1)

    cosd = unit(prev[:, 1], prev[:, 2]) @ unit(ref_angles[:, 1], ref_angles[:, 2]).T
    dist = np.degrees(np.arccos(np.clip(cosd, -1, 1)))
    allowed = np.minimum(dist, 180 - dist) <= 35.0       # a mirrored match is the antipode
    r = A.multiref_align(exp, refs, first_ring=2, last_ring=14, shift_range=2, shift_step=1,
                         previous=(prev[:, 5], prev[:, 6:8], prev[:, 14] < 0), allowed=allowed)
    _check_against(A.to_spider_apsh(r, ref_angles),
                   _doc(golden / "17-apsh" / "apsh_doc2.dat"))


def test_golden_apref_shift_after_rotation(golden):
    refs, exp, ref_angles = _spider_inputs(golden, "16-apref-vomq")
    r = A.multiref_align(exp, refs, first_ring=2, last_ring=15, shift_range=4, mirror=True,
                         shift_after_rotation=True)
    regs = A.to_spider_apsh(r, ref_angles)
    assert list(regs[:, 3]) == [3, 11, 18, 1, 11, 8]
    assert list(r.mirror) == [False, False, False, False, True, False]
    _check_against(regs, _doc(golden / "16-apref-vomq" / "apref_doc.dat"))


def test_to_spider_apsh_registers():
    res = A.AlignResult(ref=np.array([1, 0]), angle=np.array([10.0, 350.0]),
                        shift=np.array([[1.0, -2.0], [0.5, 0.25]]),
                        mirror=np.array([False, True]), cc=np.array([0.9, 0.8]), all_cc=None,
                        inc_angle=np.array([1.0, 2.0]), inc_shift=np.zeros((2, 2)),
                        inc_mirror=np.array([False, True]), n_searched=np.array([2, 2]))
    regs = A.to_spider_apsh(res, [[5.0, 30.0, 90.0], [0.0, 60.0, 200.0]],
                            image_numbers=[7, 9], angle_change=[3.0, 4.0])
    assert regs.shape == (2, 15)
    assert list(regs[0]) == [0.0, 60.0, 200.0, 2, 7, 10.0, 1.0, -2.0, 2, 3.0, 0.9, 1.0, 0, 0, 1]
    assert list(regs[1, :5]) == [-5.0, 210.0, 90.0, 1, 9] and regs[1, 14] == -1
