"""ISAC2 stability test (pixel error over independent alignments): parameters and images."""

import numpy as np
import pytest

from emsh.kernels.align2d import compose_alignment
from emsh.kernels.stats import normalize
from emsh.sim.models import load_model, model_to_map
from emsh.sim.particles import simulate_2d_views
from emsh_isac2.stability import multi_align_stability, pixel_errors
from emsh_isac2.align import within_group_refinement


def _consistent_runs(rng, L=5, m=60, noise_deg=0.3, noise_px=0.1):
    """Runs l = 0..L-2 are the last run seen through a random global transform, plus noise."""
    a_last = rng.uniform(0, 360, m)
    s_last = rng.uniform(-2, 2, (m, 2))
    m_last = rng.integers(0, 2, m).astype(bool)
    ang, sh, mir = [], [], []
    for _ in range(L - 1):
        h = (np.full(m, rng.uniform(0, 360)), np.tile(rng.uniform(-1, 1, 2), (m, 1)),
             np.full(m, bool(rng.integers(0, 2))))
        a, s, mm = compose_alignment((a_last, s_last, m_last), h)
        ang.append(a + rng.normal(0, noise_deg, m))
        sh.append(s + rng.normal(0, noise_px, (m, 2)))
        mir.append(mm)
    ang.append(a_last)
    sh.append(s_last)
    mir.append(m_last)
    return np.array(ang), np.array(sh), np.array(mir)


def test_pixel_error_formula():
    ang = np.array([[10.0, 0.0], [10.0, 90.0]])
    sh = np.array([[[1.0, 0.0], [0.0, 0.0]], [[-1.0, 0.0], [0.0, 0.0]]])
    e = pixel_errors(ang, sh, d=58.0)
    # particle 0: equal angles, x = +-1 -> var 1; particle 1: 90 deg apart, no shift
    assert e[0] == pytest.approx(1.0, abs=1e-12)
    assert e[1] == pytest.approx(np.sqrt(58.0**2 / 4 * (1 - np.sqrt(0.5))), rel=1e-12)


def test_consistent_parameters_are_stable(rng):
    ang, sh, mir = _consistent_runs(rng)
    st = multi_align_stability(ang, sh, mir, d=58.0, thld_err=0.7)
    assert st.mirror_consistent.all()
    assert st.stable.mean() >= 0.95
    assert st.group_error < 0.7
    # the averaged parameters are those of the last run (up to the noise)
    dang = np.abs((st.params.angle - ang[-1] + 180) % 360 - 180)
    assert np.median(dang) < 0.5 and np.median(np.abs(st.params.shift - sh[-1])) < 0.2
    assert np.array_equal(st.params.mirror, mir[-1])


def test_inconsistent_parameters_are_unstable(rng):
    L, m = 5, 60
    ang = rng.uniform(0, 360, (L, m))
    sh = rng.uniform(-2, 2, (L, m, 2))
    mir = rng.integers(0, 2, (L, m)).astype(bool)
    st = multi_align_stability(ang, sh, mir, d=58.0, thld_err=0.7)
    assert st.stable.sum() == 0
    assert st.mirror_consistent.mean() < 0.3       # 1/16 expected by chance
    assert st.group_error > 5.0


def test_mirror_flip_of_one_particle_is_caught(rng):
    ang, sh, mir = _consistent_runs(rng, m=30)
    mir[1, 7] = ~mir[1, 7]
    st = multi_align_stability(ang, sh, mir, d=58.0, thld_err=0.7)
    assert not st.mirror_consistent[7] and not st.stable[7]
    assert st.mirror_consistent.sum() == 29


@pytest.fixture(scope="module")
def one_view():
    rng = np.random.default_rng(11)
    vol = model_to_map(load_model("adk_closed"), 48, 2.0, resolution=10)
    imgs, truth = simulate_2d_views(vol, 2, 30, rng, apix=2.0, shift_range_px=1.0, snr=1.0)
    return normalize(imgs, radius=18), np.asarray(truth["view_id"])


def _stability_of(images, seed):
    rng = np.random.default_rng(seed)
    lab = np.zeros(len(images), dtype=np.int64)
    runs = [within_group_refinement(images, lab, 1, rng, ou=18, maxit=8)[1] for _ in range(3)]
    return multi_align_stability(np.stack([r.angle for r in runs]),
                                 np.stack([r.shift for r in runs]),
                                 np.stack([r.mirror for r in runs]), d=36.0, thld_err=0.7)


def test_group_of_one_view_is_stable_and_noise_is_not(one_view):
    imgs, views = one_view
    pure = imgs[views == 1]
    st = _stability_of(pure, 1)
    assert st.stable.mean() >= 0.8, st.err
    noise = np.random.default_rng(3).standard_normal(pure.shape).astype(np.float32)
    st_noise = _stability_of(noise, 1)
    assert st_noise.stable.mean() <= 0.1
    assert st_noise.group_error > 3 * st.group_error
