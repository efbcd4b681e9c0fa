"""Benchmark of the ISAC2 plugin (plugins/isac2): speed and classification quality.

Parts:

* ``eq_kmeans``: one EQ-K-means iteration at SPHIRE's working size (76 px box, outer
  ring 29, shifts -1..1 = 9 centres, mirror): multi-reference alignment of N images to
  K averages with the full (N, K) correlation matrix, the equal-size assignment, the
  re-alignment of images assigned to a reference other than their best, and the new
  averages. Reported as images per second (best and median of repeats), with the
  alignment and the assignment also timed alone, for K = 10 and K = 40.
* ``projected_20k``: the wall time of a whole run of 20,000 images at 76 px with
  SPHIRE's defaults, projected from measured pieces (:func:`projected_run`: one
  EQ-K-means iteration at K = 100, one within-group alignment pass, one stability test;
  stated assumptions on stages and accounted fraction per generation).
* ``classification``: a whole ISAC2 run (working stack + generations) on simulated
  views of adenylate kinase (:func:`simulate_views`): ``n_views`` projection
  directions at least ~25 degrees apart also modulo the antipode (so no two views are
  mirror images), uniform random in-plane rotations, shifts uniform in +-1 px (ISAC's
  search range xr = 1), CTF (defocus 1.0-2.5 um, 300 kV, Cs 2.7 mm, 10 % amplitude
  contrast, B 50 A^2), white noise at the given SNR (emsh.sim's definition: signal
  variance over the particle disc / noise variance), 76 px at 1 A/px, so that the
  particle radius is ~29 px and ISAC's shrink ratio is 1. The benchmark phase-flips
  the images itself (:func:`emsh.kernels.ctf.phase_flip`, what sp_isac2's ``--CTF``
  does) before the working stack is made. Reported: classes, purity (members from
  the dominant true view over all accounted images; also modulo mirror-related views,
  which ISAC's mirror search may legitimately merge: views whose directions are within
  10 degrees of each other's antipode count as one), accounted fraction, views
  covered, the agreement of the in-plane angles within classes, wall and CPU time of the
  simulation, of the working stack and of the generations, and per generation the
  pool size, K, stages, EQ-K-means iterations and stability stages with their times.

Size (environment variable ``EMSH_BENCH_ISAC2``):

* unset or ``quick`` (``make bench``): the EQ-K-means timings and a small
  classification (8 views x 60 images, SNR 0.1, img_per_grp 60, minimum_grp_size 20,
  shortened within-group alignment: maxit 8, stab_ali 3, init_iter 2).
* ``accept``: the acceptance case of issue #6: 20 views x 200 = 4000 images, SNR 0.1,
  SPHIRE's defaults (img_per_grp 200, minimum_grp_size 60, thld_err 0.7, stab_ali 5,
  maxit 30, init_iter 7). Targets: purity >= 0.95, accounted >= 0.7.
* ``20k`` or a number N: N images over 20 views with SPHIRE's defaults (20k = 20,000
  images, K = 100 in generation 1; expect many hours on 2 cores).

``EMSH_BENCH_ISAC2_SNR`` and ``EMSH_BENCH_ISAC2_VIEWS`` override the SNR and the
number of views; ``EMSH_BENCH_ISAC2_PARAMS`` overrides ISAC parameters, e.g.
``"maxit=12,stab_ali=3,init_iter=3"`` (reported under ``params``). Progress lines (time-stamped) go to stderr, so that a long run can be
followed. Timings on a shared machine are noisy; CPU time is given next to wall time.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager

import numpy as np

from bench._timing import best_of

import emsh_isac2.generation as _gen
from emsh.kernels.align2d import multiref_align
from emsh.kernels.cluster import eq_kmeans_assign
from emsh.kernels.ctf import CTFParams
from emsh.sim.models import load_model, model_to_map
from emsh.sim.particles import simulate_2d_views
from emsh_isac2.correct import flip_phases
from emsh_isac2.eqkmeans import eq_kmeans_iteration
from emsh_isac2.generation import run_isac
from emsh_isac2.params import IsacParams
from emsh_isac2.prepare import prepare_stack

N_IMAGES, BOX, OU = 1000, 76, 29
REPEATS = 3
APIX = 1.0                      # A/px: ADK's radius (~27 A) is ~29 px at this size
MIRROR_TOL_DEG = 10.0
CTF_KW = dict(voltage_kV=300.0, cs_mm=2.7, amp_contrast=0.1, bfactor_A2=50.0)
DEFOCUS_RANGE_A = (10000.0, 25000.0)

_best = best_of


# ----------------------------------------------------------------------------- data

def cap_views(n: int, theta_max: float = 80.0) -> np.ndarray:
    """``n`` projection directions spread on the cap ``theta <= theta_max`` (Fibonacci).

    Keeping away from the equator keeps every direction far from the antipode of every
    other one, so no two views are mirror images (for n = 20 and 80 degrees the closest
    pair, counting antipodes, is 25.7 degrees apart). Returns ``(n, 3)`` (psi, theta,
    phi) in degrees, psi = 0.
    """
    i = np.arange(n, dtype=np.float64)
    cos_t = 1.0 - (i + 0.5) / n * (1.0 - np.cos(np.radians(theta_max)))
    phi = np.mod(i * 180.0 * (3.0 - np.sqrt(5.0)), 360.0)
    return np.stack([np.zeros(n), np.degrees(np.arccos(cos_t)), phi], axis=1)


def _directions(views: np.ndarray) -> np.ndarray:
    t, p = np.radians(views[:, 1]), np.radians(views[:, 2])
    return np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=1)


def view_separation(views: np.ndarray) -> dict:
    """Smallest angle (deg) between two view directions, straight and modulo antipode."""
    d = _directions(views)
    c = d @ d.T
    np.fill_diagonal(c, -1.0)
    straight = np.degrees(np.arccos(np.clip(c.max(), -1, 1)))
    ca = np.abs(d @ d.T)
    np.fill_diagonal(ca, 0.0)
    anti = np.degrees(np.arccos(np.clip(ca.max(), -1, 1)))
    return {"min_deg": round(float(straight), 1), "min_deg_mod_mirror": round(float(anti), 1)}


def mirror_groups(views: np.ndarray, tol_deg: float = MIRROR_TOL_DEG) -> np.ndarray:
    """0-based label per view; views within ``tol_deg`` of another's antipode share one."""
    d = _directions(views)
    lab = np.arange(len(d))
    near = (d @ d.T) < -np.cos(np.radians(tol_deg))
    for i, j in zip(*np.nonzero(near)):
        a, b = lab[i], lab[j]
        lab[lab == max(a, b)] = min(a, b)
    return lab


def simulate_views(n_views: int, per_view: int, snr: float, seed: int = 11, *,
                   box: int = BOX, apix: float = APIX):
    """Phase-flipped images of ``n_views`` ADK views; returns ``(images, truth, views)``.

    See the module docstring for the imaging parameters.
    """
    rng = np.random.default_rng(seed)
    vol = model_to_map(load_model("adk_closed"), box, apix)
    views = cap_views(n_views)
    imgs, truth = simulate_2d_views(vol, n_views, per_view, rng, apix=apix, view_angles=views,
                                    shift_range_px=1.0, ctf=CTFParams(15000.0, **CTF_KW),
                                    defocus_range_A=DEFOCUS_RANGE_A, snr=snr)
    keys = ("defocus_u_A", "defocus_v_A", "astig_angle_deg", "voltage_kV", "cs_mm",
            "amp_contrast", "bfactor_A2", "phase_shift_deg")
    ctf = CTFParams(**{k: np.asarray(truth[k], dtype=np.float64) for k in keys}, apix=apix)
    return flip_phases(imgs, ctf), truth, views


# ----------------------------------------------------------------------------- scores

def class_scores(members, view_id, psi, all_parameters, mirror_label=None,
                 tol_deg: float = 5.0) -> dict:
    """Purity, coverage and in-plane consistency of ISAC classes against the truth.

    Args:
        members: per class, 0-based ids of its (stable) members.
        view_id: 1-based true view per image.
        psi: true in-plane angle per image (deg).
        all_parameters: ``(n, 4)`` ISAC's (alpha, sx, sy, mirror) per image.
        mirror_label: 0-based group per view for purity modulo mirror (None: none).
        tol_deg: tolerance of the in-plane check.

    Returns:
        dict: ``purity`` (dominant-view members over accounted), ``purity_mod_mirror``,
        ``views_covered`` (distinct dominant views), ``dominant_fraction`` per class,
        ``inplane_agreement``: over the dominant-view members of all classes, the
        fraction whose ``alpha + psi`` lies within ``tol_deg`` of their class's circular
        mean (ISAC's alpha undoes the image's in-plane turn psi, mirrored or not, so
        ``alpha + psi`` is constant within a class when the alignment is right).
    """
    v = np.asarray(view_id, dtype=np.int64) - 1
    prm = np.asarray(all_parameters, dtype=np.float64)
    acc = sum(len(m) for m in members)
    if acc == 0:
        return {"purity": 0.0, "purity_mod_mirror": 0.0, "views_covered": 0,
                "dominant_fraction": [], "inplane_agreement": 0.0}
    dom = [np.bincount(v[m]).max() for m in members]
    mv = v if mirror_label is None else np.asarray(mirror_label)[v]
    dom_m = [np.bincount(mv[m]).max() for m in members]
    covered = len({int(np.bincount(v[m]).argmax()) for m in members})
    good = total = 0
    for m in members:
        m = np.asarray(m)
        m = m[v[m] == np.bincount(v[m]).argmax()]
        a = np.radians(prm[m, 0] + np.asarray(psi)[m])
        mean = np.angle(np.exp(1j * a).mean())
        dev = np.degrees(np.abs(np.angle(np.exp(1j * (a - mean)))))
        good += int((dev <= tol_deg).sum())
        total += len(m)
    return {"purity": round(float(sum(dom) / acc), 4),
            "purity_mod_mirror": round(float(sum(dom_m) / acc), 4),
            "views_covered": covered,
            "dominant_fraction": [round(float(d / len(m)), 3) for d, m in zip(dom, members)],
            "inplane_agreement": round(good / max(total, 1), 4)}


# ----------------------------------------------------------------------------- timing

class _Clock:
    """Wall and CPU time since creation."""

    def __init__(self):
        self.w, self.c = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.w, time.process_time() - self.c


@contextmanager
def _timed_calls(names):
    """Wrap functions of emsh_isac2.generation (looked up by name at call time there) so
    that each call's wall/CPU time and problem size (n images, K) are recorded."""
    calls, saved = [], {}

    def wrap(name, fn):
        def timed(*args, **kw):
            n = len(args[0]) if args else -1
            K = next((a for a in args[1:] if isinstance(a, (int, np.integer))), None)
            if K is None:
                K = len(args[1]) if len(args) > 1 and hasattr(args[1], "__len__") else -1
            clk = _Clock()
            out = fn(*args, **kw)
            w, c = clk.read()
            calls.append({"fn": name, "n": n, "K": int(K), "wall_s": w, "cpu_s": c,
                          "t_end": time.perf_counter()})
            return out
        return timed

    for name in names:
        fn = getattr(_gen, name, None)
        if callable(fn):
            saved[name] = fn
            setattr(_gen, name, wrap(name, fn))
    try:
        yield calls
    finally:
        for name, fn in saved.items():
            setattr(_gen, name, fn)


def _per_generation(calls, gen_ends) -> list[dict]:
    """Group the timed calls by generation (a call belongs to the first generation that
    ended after it)."""
    out, t0 = [], -np.inf
    for g, t_end in enumerate(gen_ends, start=1):
        mine = [c for c in calls if t0 < c["t_end"] <= t_end]
        t0 = t_end
        eq = [c for c in mine if c["fn"] == "eq_kmeans_iteration"]
        st = [c for c in mine if c["fn"] == "stability_stage"]
        row = {"generation": g, "n": eq[0]["n"] if eq else None,
               "K": eq[0]["K"] if eq else None, "eq_kmeans_iterations": len(eq),
               "stability_stages": len(st)}
        if eq:
            row["eq_kmeans_s_per_iteration"] = {
                "wall": round(float(np.mean([c["wall_s"] for c in eq])), 2),
                "cpu": round(float(np.mean([c["cpu_s"] for c in eq])), 2)}
        if st:
            row["stability_s_per_stage"] = {
                "wall": round(float(np.mean([c["wall_s"] for c in st])), 2),
                "cpu": round(float(np.mean([c["cpu_s"] for c in st])), 2)}
        row["total_wall_s"] = round(sum(c["wall_s"] for c in mine), 1)
        out.append(row)
    return out


def _progress(msg: str, start: float) -> None:
    print(f"# isac2 [{time.perf_counter() - start:8.1f} s] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- parts

def _eq_kmeans(K: int, repeats: int) -> dict:
    rng = np.random.default_rng(3)
    imgs = rng.standard_normal((N_IMAGES, BOX, BOX)).astype(np.float32)
    refs = imgs[:K] + 0.5 * rng.standard_normal((K, BOX, BOX)).astype(np.float32)
    kw = dict(first_ring=1, last_ring=OU, shift_range=1, shift_step=1, mirror=True)
    eq_kmeans_iteration(imgs, refs, rng, ou=OU)                       # plans, tables
    t_it, t_it_med = _best(lambda: eq_kmeans_iteration(imgs, refs, rng, ou=OU), repeats)
    t_al, _ = _best(lambda: multiref_align(imgs, refs, return_all_cc=True, **kw), repeats)
    cc = multiref_align(imgs, refs, return_all_cc=True, **kw).all_cc
    t_as, _ = _best(lambda: eq_kmeans_assign(cc, rng, method="greedy", sphire_remainder=True),
                    repeats)
    return {"n_images": N_IMAGES, "n_refs": K, "iteration_s": round(t_it, 3),
            "images_per_s": {"best": round(N_IMAGES / t_it, 1),
                             "median": round(N_IMAGES / t_it_med, 1)},
            "alignment_s": round(t_al, 3), "assignment_s": round(t_as, 4),
            "alignment_images_x_refs_per_s": round(N_IMAGES * K / t_al)}


def projected_run(n_total: int = 20000, p: IsacParams | None = None, *, n_meas: int = 2000,
                  stages: int | None = None, accounted: float = 0.7) -> dict:
    """Projected wall time of a whole ISAC2 run of ``n_total`` images at 76 px, from
    measured pieces (a run of 20,000 images takes hours on 2 cores; ``EMSH_BENCH_ISAC2=20k``
    runs it for real).

    Measured on ``n_meas`` random images with SPHIRE's settings (``p``, default its
    defaults): one EQ-K-means iteration against ``K = n_total // img_per_grp`` averages
    (its cost grows as images x averages), one within-group alignment pass over groups
    of ``img_per_grp`` (cost per image, whatever the number of groups) and the stability
    test of one group (``stab_ali`` parameter sets). A generation with a pool of ``n``
    images and ``K = n // img_per_grp`` groups then costs, per SAC stage,
    ``iters_per_stage`` EQ-K-means iterations, ``stab_ali * (maxit - 1)`` within-group
    passes and K stability tests. Assumed: ``stages`` stages per generation (default
    ``init_iter``, SPHIRE's cap) and that each generation accounts for ``accounted`` of
    its pool (the rest makes the next pool, while ``1.2 n >= 2 img_per_grp``).
    """
    from emsh_isac2.align import within_group_refinement
    from emsh_isac2.stability import multi_align_stability

    p = IsacParams(rand_seed=1) if p is None else p
    stages = p.init_iter if stages is None else int(stages)
    rng = np.random.default_rng(5)
    K = max(n_total // p.img_per_grp, 1)
    imgs = rng.standard_normal((n_meas, BOX, BOX)).astype(np.float32)
    refs = imgs[rng.choice(n_meas, K, replace=False)].copy()
    eq_kw = dict(ou=OU, ir=p.ir, rs=p.rs, xr=p.xr, yr=p.yr, ts=p.ts, FF=p.FF)
    eq_kmeans_iteration(imgs[:256], refs, rng, **eq_kw)                    # plans, tables
    t_eq, _ = _best(lambda: eq_kmeans_iteration(imgs, refs, rng, **eq_kw), 1)
    kw = dict(ou=OU, ir=p.ir, rs=p.rs, xr=p.xr, yr=p.yr, ts=p.ts, dst=p.dst, FH=p.FH, FF=p.FF)
    Kw = max(n_meas // p.img_per_grp, 1)
    lab = np.arange(n_meas) % Kw
    within_group_refinement(imgs, lab, Kw, rng, maxit=2, **kw)             # plans
    t_wg3, _ = _best(lambda: within_group_refinement(imgs, lab, Kw, rng, maxit=3, **kw), 2)
    t_wg2, _ = _best(lambda: within_group_refinement(imgs, lab, Kw, rng, maxit=2, **kw), 2)
    t_pass = max(t_wg3 - t_wg2, 1e-9)          # one alignment pass (averages included)
    m, L = p.img_per_grp, p.stab_ali       # a stable group: runs differ by a global turn
    turn = rng.uniform(0, 360, (L, 1))
    ang = np.mod(rng.uniform(0, 360, (1, m)) + turn + rng.normal(0, 0.5, (L, m)), 360)
    sh = np.broadcast_to(rng.uniform(-1, 1, (1, m, 2)), (L, m, 2)) \
        + rng.normal(0, 0.1, (L, m, 2))
    mir = np.broadcast_to(rng.integers(0, 2, (1, m)).astype(bool), (L, m))
    t_st, _ = _best(lambda: multi_align_stability(ang, sh, mir, d=2.0 * OU,
                                                  thld_err=p.thld_err), 1)
    gens, n, total = [], float(n_total), 0.0
    while int(1.2 * n) >= 2 * p.img_per_grp and len(gens) < p.max_generations:
        k = max(int(n) // p.img_per_grp, 1)
        eq = stages * p.iters_per_stage * t_eq * (n / n_meas) * (k / K)
        wg = stages * p.stab_ali * (p.maxit - 1) * t_pass * (n / n_meas)
        st = stages * k * t_st
        gens.append({"pool": int(n), "K": k, "eq_kmeans_s": round(eq), "within_group_s":
                     round(wg), "stability_tests_s": round(st)})
        total += eq + wg + st
        n *= 1.0 - accounted
    return {"images": n_total, "box": BOX, "K_generation_1": K,
            "assumed": {"stages_per_generation": stages, "accounted_per_generation": accounted,
                        "params": {k: getattr(p, k) for k in ("img_per_grp", "stab_ali",
                                                              "maxit", "init_iter")}},
            "measured_s": {"eq_kmeans_iteration": round(t_eq, 2), "images": n_meas, "K": K,
                           "within_group_pass": round(t_pass, 2),
                           "stability_test_one_group": round(t_st, 4)},
            "eq_kmeans_images_per_s_at_K": round(n_meas / t_eq, 1),
            "within_group_images_per_s_per_pass": round(n_meas / t_pass, 1),
            "generations": gens, "projected_hours": round(total / 3600.0, 2),
            "goal_hours": 1.0}


def classification(n_views: int, per_view: int, snr: float, p: IsacParams, *,
                   seed: int = 11) -> dict:
    """Simulate, build the working stack, run ISAC2; scores and timings (see the module
    docstring)."""
    start = time.perf_counter()
    clk = _Clock()
    imgs, truth, views = simulate_views(n_views, per_view, snr, seed)
    t_sim = clk.read()
    _progress(f"simulated {len(imgs)} images ({t_sim[0]:.1f} s)", start)
    clk = _Clock()
    work, s = prepare_stack(imgs, float(p.target_radius), target_radius=p.target_radius,
                            target_nx=p.target_nx)
    t_prep = clk.read()
    del imgs
    gen_ends = []

    def log(line):
        if line.startswith("generation"):
            gen_ends.append(time.perf_counter())
        _progress(line[:160], start)

    clk = _Clock()
    with _timed_calls(("eq_kmeans_iteration", "stability_stage")) as calls:
        res = run_isac(work, p, log=log)
    t_run = clk.read()
    scores = class_scores(res.members, np.asarray(truth["view_id"]), np.asarray(truth["psi"]),
                          res.all_parameters, mirror_groups(views))
    return {"images": len(work), "views": n_views, "snr": snr, "box": BOX, "apix_A": APIX,
            "shrink_ratio": round(s, 3), "view_separation": view_separation(views),
            "params": {k: getattr(p, k) for k in ("img_per_grp", "minimum_grp_size",
                                                  "thld_err", "stab_ali", "maxit",
                                                  "init_iter", "xr", "FL", "FH",
                                                  "rand_seed")},
            "classes": len(res.members), "class_sizes": [len(m) for m in res.members],
            **scores,
            "accounted_fraction": round(res.accounted_fraction, 4),
            "generations": max(res.generation, default=0),
            "per_generation": _per_generation(calls, gen_ends),
            "time_s": {"simulate": [round(v, 1) for v in t_sim],
                       "working_stack": [round(v, 1) for v in t_prep],
                       "isac_wall": round(t_run[0], 1), "isac_cpu": round(t_run[1], 1),
                       "note": "[wall, cpu]"}}


def _overrides(p: IsacParams) -> IsacParams:
    """``p`` with the changes listed in ``EMSH_BENCH_ISAC2_PARAMS`` (``name=value,...``)."""
    text = os.environ.get("EMSH_BENCH_ISAC2_PARAMS", "").strip()
    if not text:
        return p
    changes = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        name = name.strip()
        kind = type(getattr(p, name, 0.0))
        changes[name] = (float(value) if kind is float else int(value))
    return p.replace(**changes)


def _mode() -> str:
    return os.environ.get("EMSH_BENCH_ISAC2", "quick").strip().lower() or "quick"


def run(repeats: int = REPEATS) -> dict:
    """Run the part(s) chosen by ``EMSH_BENCH_ISAC2``; a JSON-ready dict (module docstring)."""
    mode = _mode()
    snr = float(os.environ.get("EMSH_BENCH_ISAC2_SNR", "0.1"))
    if mode == "quick":
        n_views = int(os.environ.get("EMSH_BENCH_ISAC2_VIEWS", "8"))
        p = _overrides(IsacParams(img_per_grp=60, minimum_grp_size=20, maxit=8,
                                  stab_ali=3, init_iter=2, rand_seed=1))
        return {"mode": mode, "eq_kmeans": [_eq_kmeans(K, repeats) for K in (10, 40)],
                "classification": classification(n_views, 60, snr, p),
                "projected_20k": projected_run(20000)}
    if mode == "accept":
        n = 4000
    elif mode == "20k":
        n = 20000
    elif mode.isdigit():
        n = int(mode)
    else:
        raise SystemExit(f"EMSH_BENCH_ISAC2={mode!r}: expected quick, accept, 20k or a number")
    n_views = int(os.environ.get("EMSH_BENCH_ISAC2_VIEWS", "20"))
    p = _overrides(IsacParams(rand_seed=1))          # SPHIRE's defaults
    cls = classification(n_views, n // n_views, snr, p)
    return {"mode": mode, "eq_kmeans": [_eq_kmeans(K, repeats) for K in (10, 40)],
            "classification": cls}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
