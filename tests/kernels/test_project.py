"""Projection kernels: SPIDER's PJ 3Q on its golden data, adjoints, the projection-slice
theorem against analytic projections, and agreement of the two projectors."""

from __future__ import annotations

import numpy as np
import pytest

import emsh.io as eio
from emsh.errors import UsageError
from emsh.geom.euler import doc_angles_to_matrix
from emsh.io.docfile import read_doc
from emsh.kernels import gridding
from emsh.kernels import project as project_mod
from emsh.sim.phantoms import analytic_gaussians, analytic_projections
from emsh.kernels.project import (
    FourierProjector,
    backproject_real_trilinear,
    project_real_trilinear,
)


def _doc_angles(path) -> np.ndarray:
    doc = read_doc(path)
    return np.stack([doc.get(int(k))[:3] for k in sorted(doc.keys)])   # (psi, theta, phi)


# ------------------------------------------------------------------------------ golden
@pytest.mark.parametrize("stack, angles, radius, count", [
    ("prj30", "ang30", 18, 20),      # VO EA 30 directions, PJ 3Q radius 18
    ("prjh", "ang_hand", 19, 5),     # psi != 0, theta 135 and 180, radius 19 (bound checks)
])
def test_pj3q_matches_spider(golden, stack, angles, radius, count):
    case = golden / "11-voea-pj3q"
    vol = eio.read(case / "phantom.dat")
    ref = eio.read(case / f"{stack}.dat")
    ang = _doc_angles(case / f"{angles}.dat")
    assert ref.shape == (count, 40, 40) and ang.shape == (count, 3)
    out = project_real_trilinear(vol, ang, radius)
    assert out.shape == ref.shape and out.dtype == np.float32
    # T2: same interpolation scheme, max error <= 1e-5 * max|spider| for every projection
    tol = 1e-5 * np.abs(ref).max()
    err = np.abs(out - ref).max(axis=(1, 2))
    assert err.max() <= tol, f"worst projection {err.argmax() + 1}: {err.max()} > {tol}"
    # a member read on its own is the same as in the whole stack
    one = eio.read(f"{case / stack}.dat@{count}")
    np.testing.assert_array_equal(one, ref[-1])


def test_pj3q_matrices_equal_angles(golden):
    case = golden / "11-voea-pj3q"
    vol = eio.read(case / "phantom.dat")
    ang = _doc_angles(case / "ang_hand.dat")
    a = project_real_trilinear(vol, ang, 19)
    b = project_real_trilinear(vol, doc_angles_to_matrix(ang), 19)
    np.testing.assert_allclose(a, b, atol=1e-6 * np.abs(a).max())


# ------------------------------------------------------------------------------ adjoints
def test_real_space_pair_is_adjoint(rng):
    n = 20
    x = rng.standard_normal((n, n, n)).astype(np.float32)
    y = rng.standard_normal((6, n, n)).astype(np.float32)
    ang = np.column_stack([rng.uniform(0, 360, 6), rng.uniform(0, 180, 6), rng.uniform(0, 360, 6)])
    px = project_real_trilinear(x, ang, n // 2 - 1)
    bty = backproject_real_trilinear(y, ang, n // 2 - 1)
    lhs = np.sum(px.astype(np.float64) * y)
    rhs = np.sum(x.astype(np.float64) * bty)
    assert abs(lhs - rhs) <= 1e-4 * abs(lhs)


@pytest.mark.parametrize("kernel", ["kb", "trilinear"])
def test_fourier_pair_is_adjoint(rng, kernel):
    n = 20
    x = rng.standard_normal((n, n, n)).astype(np.float32)
    y = rng.standard_normal((5, n, n)).astype(np.float32)
    ang = np.column_stack([rng.uniform(0, 360, 5), rng.uniform(0, 180, 5), rng.uniform(0, 360, 5)])
    sh = rng.uniform(-3, 3, (5, 2))
    px = FourierProjector(x, 2, kernel).project(ang, sh)
    bty = FourierProjector(n, 2, kernel).backproject(y, ang, sh)
    lhs = np.sum(px.astype(np.float64) * y)
    rhs = np.sum(x.astype(np.float64) * bty)
    assert abs(lhs - rhs) <= 1e-4 * abs(lhs)


# ------------------------------------------------------------------------------ ground truth
def _gaussian_phantom(n, rng, nblobs=5):
    return analytic_gaussians(n, rng, n_blobs=nblobs, sigma_range=(1.8, 3.0), spread=0.15)


def _analytic_projections(blobs, n, rot):
    return analytic_projections(blobs, n, rot)


def test_projection_slice_theorem(rng):
    """The 2D transform of an (analytic) projection equals the 3D transform of the volume
    on the plane kx R[0] + ky R[1]; the Fourier projector's slices agree too."""
    n = 32
    blobs, vol = _gaussian_phantom(n, rng)
    ang = np.array([[30.0, 50.0, 110.0], [-20.0, 135.0, 250.0]])     # (psi, theta, phi)
    rot = doc_angles_to_matrix(ang)
    proj = _analytic_projections(blobs, n, rot)
    f2 = np.fft.rfft2(np.fft.ifftshift(proj, axes=(-2, -1)))        # origin at the centre
    # exact 3D DFT of the sampled volume at the plane's points, for a sample of frequencies
    g = np.arange(n) - n // 2
    z, y, x = np.meshgrid(g, g, g, indexing="ij")
    xyz = np.stack([x.ravel(), y.ravel(), z.ravel()], 1).astype(np.float64)
    ky_i = rng.integers(-n // 2 + 1, n // 2, 40)
    kx_i = rng.integers(0, n // 2, 40)
    fp = FourierProjector(vol, 2, "kb")
    slices = fp.slices(ang)
    c = n // 2
    for i, r in enumerate(rot):
        k3 = (kx_i[:, None] * r[0] + ky_i[:, None] * r[1]) / n        # cycles/pixel
        dft = np.exp(-2j * np.pi * k3 @ xyz.T) @ vol.ravel().astype(np.float64)
        want = f2[i, ky_i % n, kx_i]
        scale = np.abs(f2[i]).max()
        assert np.abs(dft - want).max() <= 1e-4 * scale
        # slices() equal rfft2 of the projection with its centre at n//2
        centred = slices[i, ky_i % n, kx_i] * np.exp(2j * np.pi * (kx_i + ky_i) * c / n)
        assert np.abs(centred - want).max() <= 2e-3 * scale


@pytest.mark.parametrize("n", [32, 25])
def test_fourier_projector_against_analytic(rng, n):
    blobs, vol = _gaussian_phantom(n, rng)
    ang = np.column_stack([rng.uniform(0, 360, 8), rng.uniform(0, 180, 8), rng.uniform(0, 360, 8)])
    want = _analytic_projections(blobs, n, doc_angles_to_matrix(ang))
    got = FourierProjector(vol, 2, "kb").project(ang)
    assert np.abs(got - want).max() <= 2e-3 * want.max()
    got_tri = FourierProjector(vol, 2, "trilinear").project(ang)
    assert np.abs(got_tri - want).max() <= 2e-2 * want.max()
    real = project_real_trilinear(vol, ang, n // 2 - 1)
    assert np.abs(real - want).max() <= 5e-2 * want.max()


def test_fourier_projector_agrees_with_pj3q(golden):
    case = golden / "11-voea-pj3q"
    vol = eio.read(case / "phantom.dat")
    ang = _doc_angles(case / "ang30.dat")
    ref = eio.read(case / "prj30.dat")
    got = FourierProjector(vol).project(ang)
    for a, b in zip(got, ref):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99


def test_fourier_projector_shift_and_centre(rng):
    n = 24
    _, vol = _gaussian_phantom(n, rng, 3)
    ang = np.array([[10.0, 70.0, 200.0]])
    fp = FourierProjector(vol)
    base = fp.project(ang)[0]
    moved = fp.project(ang, shifts=[[3, -2]])[0]
    np.testing.assert_allclose(moved, np.roll(base, (-2, 3), axis=(0, 1)), atol=1e-4 * base.max())
    # theta = 0: the projection is the sum along z
    flat = fp.project(np.zeros((1, 3)))[0]
    np.testing.assert_allclose(flat, vol.sum(axis=0), atol=2e-3 * flat.max())
    np.testing.assert_allclose(np.fft.rfft2(fp.project(ang)), fp.slices(ang), atol=1e-3 * base.sum())


def test_angle_rows_and_matrices(rng):
    """(k, 3) rows are (psi, theta, phi); a (3, 3) array is three rows, not a matrix."""
    n = 16
    _, vol = _gaussian_phantom(n, rng, 2)
    rows = np.array([[0.0, 90.0, 0.0], [90.0, 0.0, 0.0], [0.0, 0.0, 90.0]])
    a = project_real_trilinear(vol, rows)
    assert a.shape == (3, n, n)
    np.testing.assert_allclose(a, project_real_trilinear(vol, doc_angles_to_matrix(rows)))
    # psi = 90 and phi = 90 at theta = 0 both turn the image by 90 degrees in-plane
    np.testing.assert_allclose(a[1], a[2], atol=1e-5 * a.max())
    assert np.abs(a[0] - a[1]).max() > 0.05 * a.max()


def test_projector_input_errors():
    with pytest.raises(UsageError):
        project_real_trilinear(np.zeros((8, 8, 9), np.float32), np.zeros((1, 3)))
    with pytest.raises(UsageError):
        project_real_trilinear(np.zeros((8, 8, 8), np.float32), np.zeros((2, 4)))
    with pytest.raises(UsageError):
        FourierProjector(np.zeros((8, 8, 8), np.float32), kernel="cubic")
    with pytest.raises(UsageError):
        FourierProjector(8).project(np.zeros((1, 3)))
    with pytest.raises(UsageError):
        backproject_real_trilinear(np.zeros((2, 8, 8), np.float32), np.zeros((3, 3)))


# ------------------------------------------------------------------------------ fast paths
def _tap_by_tap(spec, pts, kernel):
    """Reference interpolation: every tap read on its own with wrapping and Hermitian
    symmetry, exact kernel weights, float64 sums (the straightforward algorithm)."""
    np_ = spec.shape[1]
    p = pts.reshape(-1, 3)
    w = kernel.width
    first = np.floor(p - w / 2).astype(int) + 1
    out = np.zeros(p.shape[0], dtype=np.complex128)
    for t in np.ndindex(w, w, w):
        j = first + np.array(t)
        wt = np.prod([kernel.weights(p[:, a] - j[:, a]) for a in range(3)], axis=0)
        jx = j[:, 2] % np_
        direct = jx <= np_ // 2
        sx = np.where(direct, jx, np_ - jx)
        sy = np.where(direct, j[:, 1], -j[:, 1]) % np_
        sz = np.where(direct, j[:, 0], -j[:, 0]) % np_
        v = spec[sz, sy, sx].astype(np.complex128)
        out += wt * np.where(direct, v, np.conj(v))
    return out.reshape(pts.shape[:-1])


@pytest.mark.parametrize("kernel", ["kb", "trilinear"])
def test_interpolation_matches_tap_by_tap(rng, kernel):
    """Table gathers (points mirrored to x >= 0) and the general path both equal the
    tap-by-tap sum, inside the Nyquist sphere, on integer points (taps at distance
    exactly w/2), with negative x, and beyond the table (general path only)."""
    np_ = 24
    spec = gridding.padded_rfft3(rng.standard_normal((12, 12, 12)).astype(np.float32), np_)
    kern = gridding.Kernel.named(kernel, 2)
    d = rng.normal(size=(300, 3))
    inside = d / np.linalg.norm(d, axis=1)[:, None] * rng.uniform(0, 0.499, (300, 1)) * np_
    ints = rng.integers(-np_ // 2 + 1, np_ // 2, (60, 3)).astype(np.float64)
    ints[:20, 2] = 0.0                                             # on the x = 0 plane
    far = rng.uniform(-0.8, 0.8, (50, 3)) * np_
    table = gridding.SpectrumTable(spec)
    for pts in (inside, ints, np.concatenate([inside, far])):
        ref = _tap_by_tap(spec, pts, kern)
        scale = np.abs(ref).max()
        fast = gridding.interpolate_rfft3(spec, pts, kern, table)
        plain = gridding.interpolate_rfft3(spec, pts, kern)
        assert fast.dtype == np.complex64 and fast.shape == (pts.shape[0],)
        assert np.abs(fast - ref).max() <= 2e-6 * scale
        assert np.abs(plain - ref).max() <= 2e-6 * scale
    assert table.covers(gridding._mirrored_taps(inside, 4)[2], 4)
    assert not table.covers(gridding._mirrored_taps(far, 4)[2], 4)


@pytest.mark.parametrize("pad", [1.25, 2.0, 3.0, 8.0])
def test_tabulated_kaiser_bessel(pad):
    k = gridding.Kernel.named("kb", pad)
    d = np.concatenate([np.linspace(-2.5, 2.5, 20001), [0.0, 2.0, -2.0, 1e-9]])
    exact = k.weights(d)
    fast = k.fast_weights(d)
    assert fast.dtype == np.float32
    assert np.abs(fast - exact).max() <= 6e-8
    assert np.all(fast[np.abs(d) > 2] == 0)
    t = gridding.Kernel.named("trilinear", pad)
    np.testing.assert_allclose(t.fast_weights(d), t.weights(d), atol=6e-8)


def test_fourier_slices_match_reference(rng):
    """slices(): the in-circle samples of the tap-by-tap interpolation, origin moved to
    the image centre and shifted; zero outside the Nyquist circle."""
    n = 12
    vol = rng.standard_normal((n, n, n)).astype(np.float32)
    ang = np.column_stack([rng.uniform(0, 360, 4), rng.uniform(0, 180, 4), rng.uniform(0, 360, 4)])
    ang[0] = (0.0, 0.0, 0.0)                                       # integer sample points
    sh = rng.uniform(-2, 2, (4, 2))
    fp = FourierProjector(vol, 2, "kb")
    got = fp.slices(ang, sh)
    ky = np.fft.fftfreq(n)[:, None]
    kx = np.fft.rfftfreq(n)[None, :]
    rot = doc_angles_to_matrix(ang)
    pts = (kx[..., None] * rot[:, None, None, 0] + ky[..., None] * rot[:, None, None, 1])
    ref = _tap_by_tap(fp.spectrum, pts[..., ::-1] * fp.np_, fp.kernel)
    phase = np.exp(-2j * np.pi * ((kx + ky) * (n // 2) + kx * sh[:, 0, None, None]
                                  + ky * sh[:, 1, None, None]))
    ref = np.where(kx ** 2 + ky ** 2 < 0.25, ref * phase, 0)
    assert got.dtype == np.complex64
    assert np.abs(got - ref).max() <= 2e-6 * np.abs(ref).max()
    assert np.all(got[:, np.broadcast_to(kx ** 2 + ky ** 2 >= 0.25, (n, n // 2 + 1))] == 0)


def test_pj3q_corner_table_equals_per_corner_gathers(rng, monkeypatch):
    """The (n^3, 8) corner table and eight separate gathers give identical float32 sums."""
    n = 18
    vol = rng.standard_normal((n, n, n)).astype(np.float32)
    ang = np.column_stack([rng.uniform(0, 360, 5), rng.uniform(0, 180, 5), rng.uniform(0, 360, 5)])
    a = project_real_trilinear(vol, ang, 8.5)
    monkeypatch.setattr(project_mod, "_CORNER_TABLE_BYTES", 0)
    b = project_real_trilinear(vol, ang, 8.5)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a).max() > 1.0


def test_scatter_rows_adds_every_tap(rng):
    rows = rng.integers(0, 50, (40, 7))
    rows[0, 0] = 49
    w = rng.standard_normal((40, 7)).astype(np.float32)
    v = rng.standard_normal((40, 3)).astype(np.float32)
    want = np.zeros((50, 3))
    np.add.at(want, rows.ravel(), (w[..., None] * v[:, None, :]).reshape(-1, 3))
    got = gridding.scatter_rows(50, rows, w, v)
    assert got.dtype == np.float32 and got.shape == (50, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(UsageError):
        gridding.scatter_rows(49, rows, w, v)
