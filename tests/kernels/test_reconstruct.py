"""Direct Fourier reconstruction: SPIDER's BP 32F / BP 3F on their golden data, ground
truth from analytic projections, CTF/Wiener, partial sums, shifts and symmetry."""

from __future__ import annotations

import numpy as np
import pytest

import emsh.io as eio
from emsh.errors import UsageError
from emsh.geom.euler import doc_angles_to_matrix
from emsh.geom.orientations import even_sphere
from emsh.geom.symmetry import Symmetry
from emsh.io.docfile import read_doc
from emsh.kernels.fsc import fsc, fsc_doc_rows
from emsh.kernels import reconstruct as recon_mod
from emsh.kernels.reconstruct import FourierReconstructor, bp32f, reconstruct
from emsh.sim.phantoms import analytic_gaussians, analytic_projections


@pytest.fixture(scope="module")
def bp_case(golden):
    case = golden / "12-bp-recon"
    doc = read_doc(case / "angles.dat")
    ang = np.stack([doc.get(int(k))[:3] for k in sorted(doc.keys)])     # (psi, theta, phi)
    prj = eio.read(case / "prj.dat")
    assert prj.shape == (84, 40, 40) and ang.shape == (84, 3)
    return case, prj, ang


def _t4(out, ref) -> float:
    return float(np.abs(out - ref).max() / np.abs(ref).max())


def test_bp32f_matches_spider(bp_case):
    """Full volume within T4 of BP 32F and BP 3F; the random halves statistically."""
    case, prj, ang = bp_case
    full, h1, h2 = bp32f(prj, ang, rng=np.random.default_rng(4321))
    assert full.shape == (40, 40, 40) and full.dtype == np.float32
    assert _t4(full, eio.read(case / "bp32f_full.dat")) <= 5e-4
    assert _t4(full, eio.read(case / "bp3f_full.dat")) <= 5e-4
    # halves: SPIDER's split cannot be reproduced; compare FSC(h1, h2) per shell
    rows, _ = fsc_doc_rows(h1, h2, width=1.0, mask_radius=17, voxel_size=2.0)
    ref = read_doc(case / "fsc_halves.dat")
    assert [k for k, _ in rows] == sorted(int(k) for k in ref.keys)
    for key, vals in rows:
        assert abs(vals[2] - ref.get(key)[2]) <= 0.05, f"shell {key}"
    # the halves hold 42 images each and are not the full volume
    assert 0.5 < np.corrcoef(h1.ravel(), full.ravel())[0, 1] < 0.99999


@pytest.mark.parametrize("name, sel", [("bp3f_odd", "sel_odd"), ("bp3f_even", "sel_even")])
def test_bp3f_selection_matches_spider(bp_case, name, sel):
    case, prj, ang = bp_case
    doc = read_doc(case / f"{sel}.dat")
    idx = np.array([int(doc.get(int(k))[0]) for k in sorted(doc.keys)]) - 1
    assert idx.size == 42
    out = reconstruct(prj[idx], ang[idx])
    assert _t4(out, eio.read(case / f"{name}.dat")) <= 5e-4


# ------------------------------------------------------------------------------ ground truth
def _phantom(n, rng, nblobs=8):
    """Anisotropic Gaussians well inside the reconstruction sphere, and the sampled volume."""
    return analytic_gaussians(n, rng, n_blobs=nblobs, sigma_range=(1.0, 2.0), spread=0.18)


def _projections(blobs, n, rot):
    return analytic_projections(blobs, n, rot).astype(np.float32)


@pytest.fixture(scope="module")
def truth():
    rng = np.random.default_rng(3)
    n, k = 32, 500
    blobs, vol = _phantom(n, rng)
    ang = even_sphere(k)
    ang[:, 0] = rng.uniform(0, 360, k)                        # random psi
    rot = doc_angles_to_matrix(ang)
    return dict(n=n, blobs=blobs, vol=vol, ang=ang, rot=rot, prj=_projections(blobs, n, rot),
                rng=rng)


def test_ground_truth_reconstruction(truth):
    rec = reconstruct(truth["prj"], truth["ang"])
    freq, curve = fsc(rec, truth["vol"])
    assert curve[freq <= 0.4].min() >= 0.9, np.round(curve, 3)
    assert np.corrcoef(rec.ravel(), truth["vol"].ravel())[0, 1] > 0.99


def test_ctf_wiener_reconstruction(truth):
    """Images recorded through varying CTFs (applied on a field twice the box, then
    windowed) are restored by CTF-weighted insertion and a Wiener division."""
    n, k = truth["n"], 300
    m = 2 * n
    field = _projections(truth["blobs"], m, truth["rot"][:k])
    ky = np.fft.fftfreq(m)[:, None]
    kx = np.fft.rfftfreq(m)[None, :]
    a = truth["rng"].uniform(20, 60, k)
    ctf = (-np.sin(a[:, None, None] * (kx ** 2 + ky ** 2) + 0.1)).astype(np.float32)
    spec = np.fft.rfft2(np.fft.ifftshift(field, axes=(-2, -1))) * ctf
    field = np.fft.fftshift(np.fft.irfft2(spec, s=(m, m)), axes=(-2, -1))
    o = m // 2 - n // 2
    imgs = field[:, o:o + n, o:o + n].astype(np.float32)
    rec = FourierReconstructor(n)
    assert rec.np_ == m                                       # CTF given on the padded grid
    rec.insert(imgs, truth["ang"][:k], ctf=ctf)
    freq, curve = fsc(rec.finish(wiener_snr=1000.0), truth["vol"])
    assert curve[freq <= 0.4].min() >= 0.97, np.round(curve, 3)
    # ignoring the CTF gives a poor map
    plain = reconstruct(imgs, truth["ang"][:k])
    assert fsc(plain, truth["vol"])[1][freq <= 0.4].min() < 0.5


def test_partial_sums_add_up(truth):
    """Reconstructors over disjoint subsets add to the one over all images (MPI model)."""
    prj, ang, n = truth["prj"][:60], truth["ang"][:60], truth["n"]
    whole = FourierReconstructor(n)
    whole.insert(prj, ang)
    a, b = FourierReconstructor(n), FourierReconstructor(n)
    a.insert(prj[::2], ang[::2])
    b.insert(prj[1::2], ang[1::2])
    a.add(b)
    d, w = a.accumulators()
    np.testing.assert_allclose(w, whole.weights, rtol=1e-5, atol=1e-5 * whole.weights.max())
    np.testing.assert_allclose(d, whole.data, rtol=1e-5, atol=1e-5 * np.abs(whole.data).max())
    v1, v2 = a.finish(), whole.finish()
    assert np.abs(v1 - v2).max() <= 1e-5 * np.abs(v2).max()
    # finish() leaves the sums alone
    np.testing.assert_array_equal(a.accumulators()[1], w)


def test_shifts_undo_image_shifts(truth):
    prj, ang, n = truth["prj"][:80], truth["ang"][:80], truth["n"]
    rng = np.random.default_rng(7)
    s = rng.integers(-3, 4, (80, 2))
    moved = np.stack([np.roll(p, (dy, dx), axis=(0, 1)) for p, (dx, dy) in zip(prj, s)])
    ref = reconstruct(prj, ang)
    out = reconstruct(moved, ang, shifts=-s)
    assert np.abs(out - ref).max() <= 1e-3 * np.abs(ref).max()
    wrong = reconstruct(moved, ang, shifts=s)
    assert np.abs(wrong - ref).max() > 0.1 * np.abs(ref).max()


def test_symmetry_equals_explicit_mates(truth):
    prj, ang, n = truth["prj"][:12], truth["ang"][:12], truth["n"]
    c4 = Symmetry.parse("c4")
    a = FourierReconstructor(n, symmetry=c4)
    a.insert(prj, ang)
    b = FourierReconstructor(n)
    rot = doc_angles_to_matrix(ang)
    mates = (rot[:, None] @ c4.operators[None]).reshape(-1, 3, 3)
    b.insert(np.repeat(prj, 4, axis=0), mates)
    np.testing.assert_allclose(a.weights, b.weights, rtol=1e-5, atol=1e-5 * b.weights.max())
    assert np.abs(a.finish() - b.finish()).max() <= 1e-5 * np.abs(b.finish()).max()


def test_weights_scale_images(truth):
    prj, ang, n = truth["prj"][:20], truth["ang"][:20], truth["n"]
    a = FourierReconstructor(n)
    a.insert(prj, ang, weights=np.full(20, 2.0))
    b = FourierReconstructor(n)
    b.insert(prj, ang)
    np.testing.assert_allclose(a.weights, 2 * b.weights, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(a.data, 2 * b.data, rtol=1e-5, atol=1e-5 * np.abs(b.data).max())


def test_reconstructor_input_errors():
    r = FourierReconstructor(16)
    img = np.zeros((3, 16, 16), np.float32)
    with pytest.raises(UsageError):
        r.insert(img, np.zeros((2, 3)))
    with pytest.raises(UsageError):
        r.insert(np.zeros((3, 12, 12), np.float32), np.zeros((3, 3)))
    with pytest.raises(UsageError):
        r.insert(img, np.zeros((3, 3)), shifts=np.zeros((2, 2)))
    with pytest.raises(UsageError):
        r.insert(img, np.zeros((3, 3)), ctf=np.ones((3, 5, 5), np.float32))
    with pytest.raises(UsageError):
        r.insert(img, np.zeros((3, 3)), weights=[1, -1, 1])
    with pytest.raises(UsageError):
        r.add(FourierReconstructor(20))
    with pytest.raises(UsageError):
        r.finish(wiener_snr=0)
    with pytest.raises(UsageError):
        FourierReconstructor(2)
    with pytest.raises(UsageError):
        bp32f(img[:1], np.zeros((1, 3)))


# ------------------------------------------------------------------------------ fast insertion
class _TapByTap(FourierReconstructor):
    """Reference insertion: SPIDER's window taps, each mapped on its own to the stored
    half grid (taps with x < 0 go conjugated to (-z, -y, -x)), summed in float64."""

    def _grid(self, vals, rot, wfac, work=None):
        np_, h = self.np_, self.np_ // 2
        f32 = np.float32
        fi, fj = (c.astype(f32)[None, :, None] for c in self._plane)
        dm = rot.astype(f32)
        pos = fi * dm[:, None, 0] + fj * dm[:, None, 1]
        flip = pos[..., 0] < 0
        pos = np.where(flip[..., None], -pos, pos)
        val = np.where(flip, np.conj(vals), vals)
        wf = np.broadcast_to(np.ones(1, f32) if wfac is None else wfac, flip.shape)
        r = np.trunc(pos + f32(0.5) + f32(np_)).astype(int) - np_
        ok = ((r[..., 0] <= h - 3) & (r[..., 1] >= -h + 4) & (r[..., 1] <= h - 3)
              & (r[..., 2] >= -h + 4) & (r[..., 2] <= h - 3))
        pos, val, wf = pos[ok], val[ok], wf[ok]
        first = np.ceil(pos - self._reach).astype(int)
        tab = lambda a, t: self._tab[np.minimum(np.floor(np.abs(   # noqa: E731
            pos[:, a] - (first[:, a] + t).astype(f32)) * self._fltb + f32(0.5)).astype(int), 4999)]
        size = np_ * np_ * (h + 1)
        for tz, ty, tx in np.ndindex(4, 4, 4):
            w = tab(0, tx) * (tab(1, ty) * tab(2, tz))
            x, y, z = first[:, 0] + tx, first[:, 1] + ty, first[:, 2] + tz
            neg = x < 0
            z, y = np.where(neg, -z, z) % np_, np.where(neg, -y, y) % np_
            idx = (z * np_ + y) * (h + 1) + np.abs(x)
            v = w * np.where(neg, np.conj(val), val)
            re, im = np.bincount(idx, v.real, size), np.bincount(idx, v.imag, size)
            self.data.reshape(-1)[:] += (re + 1j * im).astype(np.complex64)
            self.weights.reshape(-1)[:] += np.bincount(idx, w * wf, size).astype(np.float32)


def test_insertion_equals_tap_by_tap(monkeypatch):
    """Sparse-product insertion (scratch grid, x = -1 column folded onto its Hermitian
    partner, several passes) gives the tap-by-tap sums, with CTFs and image weights."""
    rng = np.random.default_rng(11)
    n, k = 16, 9
    img = rng.standard_normal((k, n, n)).astype(np.float32)
    ang = np.column_stack([rng.uniform(0, 360, k), rng.uniform(0, 180, k), rng.uniform(0, 360, k)])
    ang[0] = (0.0, 90.0, 0.0)                                     # plane through kx = 0
    ang[1] = (30.0, 0.0, 0.0)
    ctf = rng.uniform(-1, 1, (k, n, n // 2 + 1)).astype(np.float32)
    wts = rng.uniform(0.5, 2, k)
    monkeypatch.setattr(recon_mod, "_ENTRIES_PER_PASS", 1)        # one image per pass
    for kw in ({}, {"ctf": ctf, "weights": wts}):
        fast, ref = FourierReconstructor(n), _TapByTap(n)
        fast.insert(img, ang, **kw)
        ref.insert(img, ang, **kw)
        assert np.abs(fast.data - ref.data).max() <= 2e-6 * np.abs(ref.data).max()
        assert np.abs(fast.weights - ref.weights).max() <= 2e-6 * ref.weights.max()
        assert np.count_nonzero(ref.weights[:, :, 1]) > 0          # the folded column is used
        vf, vr = fast.finish(), ref.finish()
        assert np.abs(vf - vr).max() <= 1e-5 * np.abs(vr).max()


def test_pass_size_does_not_change_sums(truth, monkeypatch):
    prj, ang, n = truth["prj"][:24], truth["ang"][:24], truth["n"]
    one = FourierReconstructor(n)
    one.insert(prj, ang)
    monkeypatch.setattr(recon_mod, "_ENTRIES_PER_PASS", 1)
    many = FourierReconstructor(n)
    many.insert(prj, ang)
    np.testing.assert_allclose(many.weights, one.weights, rtol=1e-5, atol=1e-6 * one.weights.max())
    np.testing.assert_allclose(many.data, one.data, rtol=1e-5, atol=1e-6 * np.abs(one.data).max())
