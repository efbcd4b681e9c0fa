"""Throughput of the heavy SPIDER operations, run as procedures through a Session.

Every timing is a procedure run in-process by :class:`emsh.session.Session` (the same code
path as ``emsh run``: prompts parsed, files read and written), on 64 px data made from a
64^3 Gaussian-blob phantom (emsh.sim.phantoms):

* ``PJ 3Q``: projections of the 64^3 volume at the directions of VO EA 10 degrees
  (hemisphere); projections per second.
* ``AP SH``: images x references per second, shift range 4 (81 shifts, step 1), rings
  2..26 (the last ring plus the range must stay below NX/2 - 1 = 31, so 2..28 is not
  allowed with range 4 at 64 px), mirror check on; also per image x reference x shift
  (each a full rotational correlation, straight and mirrored). References: 100 PJ 3Q
  projections; images: randomly rotated (0-360 deg) and shifted (+-3 px) references
  with noise (SNR 1).
* ``BP 32F``: images per second for the full volume and both random halves of 2000
  images at the 100 reference directions.
* ``BP RP 3``: seconds per iteration of one volume (a half set of 1000 images at 100
  distinct directions, as after AP SH in the defocus-group tech), from the difference of
  a 1-iteration and a 3-iteration run (the first iteration only backprojects the data).

The quick case (default) fits in about two minutes on a shared 2-core machine; set
``EMSH_BENCH_FULL=1`` for the 500 x 100 AP SH case. Each measurement is one run (they
are long); ``MD VB OFF`` keeps the per-image log lines out, as the tech's procedures do.
"""

from __future__ import annotations

import io
import os
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from bench._timing import best_of

N = 64
QUICK = dict(apsh_images=80, apsh_refs=100, bp_images=2000, bprp_iters=3)
FULL = dict(apsh_images=500, apsh_refs=100, bp_images=2000, bprp_iters=3)
SHIFT, RINGS = 4, (2, 26)


def _session():
    from emsh.parallel import SerialComm
    from emsh.session import Session

    return Session(comm=SerialComm(), data_ext="dat", results=False, out=io.StringIO(),
                   echo=False)


def _run(text: str) -> float:
    """Seconds to run a procedure text (with MD VB OFF first) in the current folder."""
    body = "MD\nVB OFF\n" + textwrap.dedent(text).strip() + "\n"
    s = _session()
    t0 = time.perf_counter()
    s.run_text(body)
    return time.perf_counter() - t0


def _data(case: dict, rng) -> dict:
    """Phantom, reference directions, AP SH images and the 2000-image stack (untimed)."""
    import emsh.io as eio
    from emsh.geom.orientations import voea
    from emsh.io.docfile import write_doc
    from emsh.kernels.project import project_real_trilinear
    from emsh.kernels.transform import rotate_shift_quadratic
    from emsh.sim.phantoms import gaussian_blobs

    vol = gaussian_blobs(N, rng, n_blobs=14)
    eio.write("vol.dat", vol)
    ang = voea(10.0, (0, 90), (0, 359.9))
    write_doc("ang.dat", np.arange(1, len(ang) + 1), ang, data_ext="dat")
    nref = case["apsh_refs"]
    refs = project_real_trilinear(vol, ang[:nref], N // 2 - 2)
    eio.write("refs.dat", refs, stack=True)
    sd = float(refs.std())
    k = case["apsh_images"]
    pick = rng.integers(0, nref, k)
    exp = rotate_shift_quadratic(refs[pick], rng.uniform(0, 360, k),
                                 rng.uniform(-3, 3, (k, 2)))
    exp = exp + rng.normal(0, sd, exp.shape).astype(np.float32)
    eio.write("exp.dat", exp.astype(np.float32), stack=True)
    m = case["bp_images"]
    pick = rng.integers(0, nref, m)
    imgs = refs[pick] + rng.normal(0, sd, (m, N, N)).astype(np.float32)
    eio.write("imgs.dat", imgs.astype(np.float32), stack=True)
    write_doc("iang.dat", np.arange(1, m + 1), ang[pick], data_ext="dat")
    return dict(n_dirs=len(ang), nref=nref, k=k, m=m, distinct=int(np.unique(pick).size))


def run() -> dict:
    case = FULL if os.environ.get("EMSH_BENCH_FULL") == "1" else QUICK
    out: dict = {"case": dict(case, size=N, shift_range=SHIFT, rings=list(RINGS),
                              full=case is FULL)}
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            d = _data(case, np.random.default_rng(7))
            t, _ = best_of(lambda: _run(f"""
                PJ 3Q
                vol
                {N // 2 - 2}
                1-{d['n_dirs']}
                ang
                prj@***
                """), 1)
            out["pj3q"] = {"projections": d["n_dirs"], "volume": f"{N}^3", "seconds": round(t, 2),
                           "projections_per_s": round(d["n_dirs"] / t, 1)}

            t, _ = best_of(lambda: _run(f"""
                AP SH
                refs@***
                1-{d['nref']}
                {SHIFT},1
                {RINGS[0]},{RINGS[1]},1,1
                ang
                exp@***
                1-{d['k']}
                *
                0
                Y
                apsh_doc
                """), 1)
            shifts = (2 * SHIFT + 1) ** 2
            pairs = d["k"] * d["nref"]
            out["ap_sh"] = {"images": d["k"], "refs": d["nref"], "shifts": shifts,
                            "seconds": round(t, 2),
                            "image_refs_per_s": round(pairs / t, 1),
                            "image_ref_shift_correlations_per_s": round(pairs * shifts / t, 0),
                            "ok": Path("apsh_doc.dat").exists()}

            t, _ = best_of(lambda: _run(f"""
                MD
                SET SEED
                5
                BP 32F
                imgs@****
                1-{d['m']}
                iang
                *
                full
                half1
                half2
                """), 1)
            out["bp_32f"] = {"images": d["m"], "seconds": round(t, 2),
                             "images_per_s": round(d["m"] / t, 1)}

            def bprp(iters: int) -> float:
                return _run(f"""
                    MD
                    SET SEED
                    12345
                    BP RP 3 [niter]
                    imgs@****
                    1-{d['m']}
                    {N // 2 - 2}
                    iang
                    *
                    *
                    rp1
                    rp2
                    2e-6, 0
                    {iters}, 0
                    .5, .5
                    .5
                    """)
            t1 = bprp(1)
            tn = bprp(case["bprp_iters"])
            per = (tn - t1) / (2 * (case["bprp_iters"] - 1))         # two half volumes
            out["bp_rp_3"] = {"images_per_half": d["m"] // 2, "distinct_directions":
                              d["distinct"], "seconds_1_iteration_run": round(t1, 2),
                              f"seconds_{case['bprp_iters']}_iteration_run": round(tn, 2),
                              "seconds_per_iteration": round(per, 2)}
        finally:
            os.chdir(here)
    return out
