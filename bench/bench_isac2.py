"""Benchmark of the ISAC2 plugin (plugins/isac2).

* ``eq_kmeans``: one EQ-K-means iteration at SPHIRE's working size (76 px box,
  outer ring 29, shifts -1..1 = 9 centres, mirror): multi-reference alignment of N
  images to K averages with the full (N, K) correlation matrix, the equal-size
  assignment, the re-alignment of images assigned to a reference other than their best,
  and the new averages. Reported as images per second (best and median of repeats),
  with the alignment and the assignment also timed alone, for K = 10 and K = 40.
* ``classification``: ISAC2 generations on simulated views of adenylate kinase
  (8 views x 50 images, 64 px shrunk to 48, SNR 0.5, random in-plane rotations and
  shifts of +-1 px); reported: classes, class purity (members from the dominant true
  view over all accounted images), accounted fraction, wall time.

Timings are best-of-N because the machine may be shared.
"""

from __future__ import annotations

import time

import numpy as np

from bench._timing import best_of

from emsh.kernels.align2d import multiref_align
from emsh.kernels.cluster import eq_kmeans_assign
from emsh.sim.models import load_model, model_to_map
from emsh.sim.particles import simulate_2d_views
from emsh_isac2.eqkmeans import eq_kmeans_iteration
from emsh_isac2.generation import run_isac
from emsh_isac2.params import IsacParams
from emsh_isac2.prepare import prepare_stack

N_IMAGES, BOX, OU = 1000, 76, 29
REPEATS = 3


_best = best_of


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


def _classification() -> dict:
    rng = np.random.default_rng(8)
    vol = model_to_map(load_model("adk_closed"), 64, 1.5, resolution=10)
    n_views, per = 8, 50
    imgs, truth = simulate_2d_views(vol, n_views, per, rng, apix=1.5, shift_range_px=1.0,
                                    snr=0.5)
    p = IsacParams(img_per_grp=per, minimum_grp_size=20, target_radius=18, target_nx=48,
                   maxit=10, init_iter=3, stab_ali=4, thld_err=0.7, rand_seed=1)
    t0 = time.perf_counter()
    work, s = prepare_stack(imgs, 24.0, target_radius=p.target_radius, target_nx=p.target_nx)
    res = run_isac(work, p)
    wall = time.perf_counter() - t0
    views = np.asarray(truth["view_id"])
    dom = sum(int(np.bincount(views[m]).max()) for m in res.members)
    n_acc = len(res.processed)
    return {"images": len(imgs), "views": n_views, "snr": 0.5, "box": 64, "work_box": 48,
            "params": {"img_per_grp": per, "minimum_grp_size": 20, "maxit": 10,
                       "init_iter": 3, "stab_ali": 4, "thld_err": 0.7},
            "classes": len(res.members), "class_sizes": [len(m) for m in res.members],
            "purity": round(dom / max(n_acc, 1), 4),
            "accounted_fraction": round(res.accounted_fraction, 4),
            "generations": max(res.generation, default=0), "wall_s": round(wall, 1)}


def run(repeats: int = REPEATS) -> dict:
    """Run both parts; returns a JSON-ready dict (see the module docstring)."""
    return {"eq_kmeans": [_eq_kmeans(K, repeats) for K in (10, 40)],
            "classification": _classification()}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
