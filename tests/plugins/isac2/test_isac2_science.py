"""ISAC2 science at low SNR: class purity, accounted fraction and alignment against the truth.

Simulated data (emsh.sim): distinct projection views of adenylate kinase (directions on
a cap theta <= 80 deg, so no two views are mirror images), random in-plane rotations,
shifts within ISAC's search range (+-1 px), CTF (defocus 1.0-2.5 um) and white noise
at SNR 0.1; the images are phase-flipped (what sp_isac2's --CTF does) before the
working stack is built. A small version of the acceptance benchmark
(``EMSH_BENCH_ISAC2=accept python -m bench isac2``: 20 views, 4000 images).
"""

import numpy as np
import pytest

from emsh.kernels.ctf import CTFParams, ctf_2d, phase_flip
from emsh.sim.models import load_model, model_to_map
from emsh.sim.particles import simulate_2d_views
from emsh_isac2.generation import run_isac
from emsh_isac2.params import IsacParams
from emsh_isac2.prepare import prepare_stack

BOX, APIX, RADIUS = 64, 1.2, 24          # ADK (radius ~27 A) fills ~22 px
N_VIEWS, PER_VIEW, SNR = 6, 50, 0.1


def _cap_views(n, theta_max=80.0):
    i = np.arange(n, dtype=np.float64)
    cos_t = 1.0 - (i + 0.5) / n * (1.0 - np.cos(np.radians(theta_max)))
    phi = np.mod(i * 180.0 * (3.0 - np.sqrt(5.0)), 360.0)
    return np.stack([np.zeros(n), np.degrees(np.arccos(cos_t)), phi], axis=1)


def _params(**kw):
    base = dict(img_per_grp=PER_VIEW, minimum_grp_size=16, target_radius=RADIUS,
                target_nx=BOX, maxit=8, init_iter=2, stab_ali=3, rand_seed=1)
    return IsacParams(**{**base, **kw})


@pytest.fixture(scope="module")
def views():
    """Phase-flipped working stack, 1-based true view and true in-plane angle per image."""
    rng = np.random.default_rng(3)
    vol = model_to_map(load_model("adk_closed"), BOX, APIX)
    imgs, truth = simulate_2d_views(
        vol, N_VIEWS, PER_VIEW, rng, apix=APIX, view_angles=_cap_views(N_VIEWS),
        shift_range_px=1.0, ctf=CTFParams(15000.0, bfactor_A2=50.0),
        defocus_range_A=(10000.0, 25000.0), snr=SNR)
    ctf = CTFParams(np.asarray(truth["defocus_u_A"]), np.asarray(truth["defocus_v_A"]),
                    np.asarray(truth["astig_angle_deg"]), bfactor_A2=50.0, apix=APIX)
    flipped = phase_flip(imgs, ctf_2d(ctf, (BOX, BOX)))
    work, s = prepare_stack(flipped, float(RADIUS), target_radius=RADIUS, target_nx=BOX)
    assert s == 1.0
    return work, np.asarray(truth["view_id"]), np.asarray(truth["psi"])


@pytest.mark.slow
def test_low_snr_views_are_classified_purely(views):
    work, view_id, psi = views
    res = run_isac(work, _params())
    members = res.members
    acc = sum(len(m) for m in members)
    dominant = [np.bincount(view_id[m]).argmax() for m in members]
    purity = sum(np.bincount(view_id[m]).max() for m in members) / max(acc, 1)
    # measured (seeds 3/1, three runs; FFT plans differ between runs and the rounding
    # changes the outcome): 5 classes, purity 0.952-0.958, accounted 0.573-0.71; the
    # 6th view's group was not stable. Random classes would give purity ~0.2.
    assert purity >= 0.9, purity
    assert res.accounted_fraction >= 0.5, res.accounted_fraction
    assert len(set(dominant)) >= 4, dominant
    assert len(np.unique(np.concatenate(members))) == acc          # disjoint classes
    # alignment: alpha + psi is constant within a class (alpha undoes the in-plane turn)
    good = total = 0
    for m, d in zip(members, dominant):
        m = m[view_id[m] == d]
        a = np.radians(res.all_parameters[m, 0] + psi[m])
        dev = np.degrees(np.abs(np.angle(np.exp(1j * (a - np.angle(np.exp(1j * a).mean()))))))
        good += int((dev <= 5.0).sum())
        total += len(m)
    assert good / total >= 0.9, good / total


@pytest.mark.slow
def test_pure_noise_gives_no_stable_class():
    rng = np.random.default_rng(4)
    noise = rng.standard_normal((2 * PER_VIEW, BOX, BOX)).astype(np.float32)
    work, _ = prepare_stack(noise, float(RADIUS), target_radius=RADIUS, target_nx=BOX)
    res = run_isac(work, _params(init_iter=1, maxit=6))
    # measured: 0 stable members, group pixel errors ~14-17 px (threshold 0.7 px)
    assert res.accounted_fraction == 0.0, res.log
    assert len(res.members) == 0
    assert np.all(res.all_parameters[:, 3] == -1)
