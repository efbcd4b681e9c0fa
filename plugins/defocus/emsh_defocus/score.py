"""Scoring a defocus-group project against the truth of simulated data.

:func:`evaluate` compares a finished project (see :mod:`.pipeline`) with its ``truth/``
folder: defocus error of ``DG DEFOCUS``, picking recall and precision of ``DG PICK``
(picks matched one-to-one to true centres within a tolerance), angular error of the
refined alignment (picked particles matched to true ones by micrograph and nearest
centre; geodesic distance between rotations, and between view directions), FSC of the
final map against the true map, and of a reconstruction of the same kept particles with
their true angles and shifts through the same ``recon`` procedure.

Conventions: coordinates are 1-based pixel positions (x = column, y = row); angles are
SPIDER's (psi, theta, phi) in degrees; defocus in Å, underfocus positive.
"""

from __future__ import annotations

from pathlib import Path

from emsh.errors import UsageError

import numpy as np

from .pick import match_picks
from .pipeline import _write_doc, run_procedure

__all__ = ["evaluate", "truth_of_particles", "particle_angles", "angular_errors",
           "alignment_vs_truth", "defocus_vs_truth", "picking_vs_truth", "read_param",
           "last_iteration", "true_angle_reconstruction"]


def _doc(path):
    from emsh.io.docfile import read_doc

    return read_doc(path)


def _rows(path) -> tuple[np.ndarray, np.ndarray]:
    """(keys, registers) of a doc, the last line of each key, keys ascending."""
    d = _doc(path)
    keys = np.array(sorted(set(d.keys.tolist())), dtype=np.int64)
    return keys, np.array([d.get(int(k)) for k in keys]) if keys.size else np.zeros((0, 0))


def _match(picked: np.ndarray, true: np.ndarray, tol: float) -> np.ndarray:
    """Index of the true centre each pick matches (-1: none), one-to-one within ``tol``."""
    return match_picks(picked, true, tol)[2]


def truth_of_particles(project, tol: float | None = None) -> dict:
    """Match every windowed particle (Particles/particles) to a true particle.

    Returns arrays over the windowed particles (in particle-id order): ``group``,
    ``member``, ``mic``, ``matched`` (bool), true ``angles`` (psi, theta, phi) and
    ``offset`` (true centre minus box centre, px; content sits that far from the box
    centre), plus ``recall``/``precision`` of the picks against the truth.
    """
    project = Path(project)
    box = int(_rows(project / "truth" / "params.spi")[1][0, 4])
    tol = box / 4.0 if tol is None else tol
    _, parts = _rows(project / "Particles" / "particles.spi")
    n = len(parts)
    angles, offset = np.zeros((n, 3)), np.zeros((n, 2))
    matched = np.zeros(n, bool)
    for mic in np.unique(parts[:, 1]).astype(int):
        _, tr = _rows(project / "truth" / f"coords{mic:03d}.spi")
        sub = project / "truth" / f"subpixel{mic:03d}.spi"
        if sub.is_file():                        # exact centres (simulate_project writes them)
            tr[:, :2] = _rows(sub)[1][:, :2]
        idx = np.nonzero(parts[:, 1] == mic)[0]
        j = _match(parts[idx, 2:4], tr[:, :2], tol)
        ok = j >= 0
        matched[idx[ok]] = True
        angles[idx[ok]] = tr[j[ok], 2:5]
        offset[idx[ok]] = tr[j[ok], :2] - parts[idx[ok], 2:4]
    mics = sorted(int(p.stem[6:]) for p in (project / "truth").glob("coords*.spi"))
    n_true = sum(len(_rows(project / "truth" / f"coords{m:03d}.spi")[1]) for m in mics)
    return {"group": parts[:, 5].astype(int), "member": parts[:, 6].astype(int),
            "mic": parts[:, 1].astype(int), "matched": matched, "angles": angles,
            "offset": offset, "recall": matched.sum() / max(n_true, 1),
            "precision": matched.sum() / max(n, 1), "n_true": n_true, "n_picked": n}


def particle_angles(regs: np.ndarray) -> np.ndarray:
    """(psi, theta, phi) of the raw particle from AP SH registers (one row per image).

    The aligned image ``RT SQ(raw, r6, (r7, r8))`` is the projection at registers 1-3
    (mirrored matches already written as (-psi, 180 + theta, phi)), and a projection at
    psi is the psi = 0 one turned by ``RT SQ`` angle psi; so the raw particle is the
    projection at (r1 - r6, r2, r3).
    """
    return np.column_stack([regs[:, 0] - regs[:, 5], regs[:, 1], regs[:, 2]])


def angular_errors(est: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(full rotation error, viewing-direction error) in degrees, per particle."""
    from emsh.geom.euler import angular_distance, doc_angles_to_matrix, projection_direction

    full = angular_distance(doc_angles_to_matrix(est), doc_angles_to_matrix(true))
    d1 = projection_direction(est[:, 2], est[:, 1])
    d2 = projection_direction(true[:, 2], true[:, 1])
    view = np.degrees(np.arccos(np.clip(np.sum(d1 * d2, -1), -1.0, 1.0)))
    return full, view


def alignment_vs_truth(project, it: int, truth: dict | None = None) -> dict:
    """Angular errors of iteration ``it``'s alignment for the matched particles (all, and
    those DG SELECT kept)."""
    project = Path(project)
    truth = truth_of_particles(project) if truth is None else truth
    folder = project / "Refinement" / f"it{it:02d}"
    est = np.zeros((len(truth["group"]), 3))
    kept = np.zeros(len(truth["group"]), bool)
    for g in np.unique(truth["group"]):
        keys, regs = _rows(folder / f"align{g:03d}.spi")
        where = {int(k): i for i, k in enumerate(keys)}
        sel = np.nonzero(truth["group"] == g)[0]
        rows = regs[[where[int(m)] for m in truth["member"][sel]]]
        est[sel] = particle_angles(rows)
        good = set(_rows(folder / f"good{g:03d}.spi")[1][:, 0].astype(int).tolist())
        kept[sel] = [int(m) in good for m in truth["member"][sel]]
    m = truth["matched"]
    full, view = angular_errors(est[m], truth["angles"][m])
    k = kept[m]
    grp = truth["group"][m]
    by_group = {int(g): round(float(np.median(full[grp == g])), 2) for g in np.unique(grp)}
    return {"median_rot_err_deg": float(np.median(full)),
            "median_rot_err_by_group_deg": by_group,
            "median_view_err_deg": float(np.median(view)),
            "median_rot_err_kept_deg": float(np.median(full[k])) if k.any() else float("nan"),
            "n_matched": int(m.sum()), "n_kept": int(kept.sum()), "kept": kept}


def defocus_vs_truth(project) -> dict | None:
    """Median relative error of DG DEFOCUS's mean defocus and median astigmatism error."""
    project = Path(project)
    est_f, tru_f = project / "Power_Spectra" / "defocus.spi", project / "truth" / "defocus.spi"
    if not (est_f.is_file() and tru_f.is_file()):
        return None
    k1, est = _rows(est_f)
    k2, tru = _rows(tru_f)
    where = {int(k): i for i, k in enumerate(k2)}
    tru = tru[[where[int(k)] for k in k1]]
    rel = np.abs(est[:, 1] - tru[:, 1]) / tru[:, 1]
    return {"median_defocus_err_pct": round(100 * float(np.median(rel)), 3),
            "max_defocus_err_pct": round(100 * float(rel.max()), 3),
            "median_astig_err_A": round(float(np.median(np.abs(est[:, 2] - tru[:, 2]))), 1)}


def picking_vs_truth(project, tol: float | None = None) -> dict | None:
    """Recall and precision of DG PICK's coordinates (Particles/coords) against the truth."""
    project = Path(project)
    docs = sorted((project / "Particles" / "coords").glob("coo*.spi"))
    if not docs:
        return None
    box = int(_rows(project / "truth" / "params.spi")[1][0, 4])
    tol = box / 4.0 if tol is None else tol
    hit = n_pick = n_true = 0
    for f in sorted((project / "truth").glob("coords*.spi")):
        mic = f.stem[6:]
        tr = _rows(f)[1]
        n_true += len(tr)
        pf = project / "Particles" / "coords" / f"coo{mic}.spi"
        if not pf.is_file():
            continue
        pk = _rows(pf)[1]
        if pk.size == 0:
            continue
        n_pick += len(pk)
        hit += int((_match(pk[:, :2], tr[:, :2], tol) >= 0).sum())
    return {"recall": round(hit / max(n_true, 1), 4), "precision": round(hit / max(n_pick, 1), 4),
            "n_true": n_true, "n_picked": n_pick}


def read_param(project, name: str) -> str:
    """Value of ``GLOBAL [name] = value`` in the project's procs/params.proc (as text)."""
    import re

    text = (Path(project) / "procs" / "params.proc").read_text()
    m = re.search(rf"^GLOBAL \[{re.escape(name)}\] = ('?)([^';]*)\1", text, re.M)
    if m is None:
        raise UsageError(f"{project}/procs/params.proc: no [{name}]")
    return m.group(2).strip()


def last_iteration(project) -> int:
    """Number of the last finished iteration (Refinement/itNN with a resolution doc)."""
    its = [int(p.parent.name[2:]) for p in Path(project).glob("Refinement/it*/resolution.spi")]
    if not its:
        raise UsageError(f"{project}: no finished refinement iteration (Refinement/itNN)")
    return max(its)


def true_angle_reconstruction(project, truth: dict, kept: np.ndarray, comm=None) -> Path:
    """Reconstruct the kept, matched particles at their TRUE angles and shifts with the
    pipeline's own recon.proc (same groups, CTFs, merge and filter); returns the folder
    (``Truth_recon``: vol, vol_h1, vol_h2, fsc, ref)."""
    import emsh.io as eio
    from emsh.kernels.transform import rotate_shift_quadratic

    project = Path(project)
    out = project / "Truth_recon"
    rank = 0 if comm is None else comm.rank
    if rank == 0:
        out.mkdir(exist_ok=True)
        use = kept & truth["matched"]
        for g in np.unique(truth["group"]):
            sel = np.nonzero((truth["group"] == g) & use)[0]
            members = truth["member"][sel]
            stack = eio.read(project / "Particles" / f"data{g:03d}.spi")
            ali = np.zeros_like(stack)
            ali[members - 1] = rotate_shift_quadratic(stack[members - 1], 0.0,
                                                      -truth["offset"][sel])
            eio.write(out / f"ali{g:03d}.spi", ali, stack=True, overwrite=True)
            regs = np.zeros((len(stack), 3))
            regs[members - 1] = truth["angles"][sel]
            _write_doc(out / f"align{g:03d}.spi", np.arange(1, len(stack) + 1), regs)
            _write_doc(out / f"good{g:03d}.spi", np.arange(1, len(sel) + 1),
                       members[:, None].astype(float))
    if comm is not None:
        comm.barrier()
    run_procedure(project, "recon", comm, lines=["Truth_recon"])
    return out


def _fsc_res(a, b, apix: float, radius: float, threshold: float = 0.5) -> float:
    from emsh.kernels.fsc import fsc, resolution

    freq, curve = fsc(a, b, mask=radius)
    return apix / resolution(freq, curve, threshold)


def evaluate(project, comm=None, *, it: int | None = None) -> dict:
    """Score a finished project against its truth/ folder (see the module docstring).

    The FSC against the true map uses a soft spherical mask of the particle radius;
    ``resolution_ratio`` is the refined map's FSC-0.5 frequency over that of the
    true-angle reconstruction of the same particles (1 = as good as perfect alignment).
    """
    import emsh.io as eio

    project = Path(project)
    it = last_iteration(project) if it is None else it
    tp = _rows(project / "truth" / "params.spi")[1][0]
    apix, radius = float(tp[0]), float(read_param(project, "radius"))
    truth = truth_of_particles(project)
    ali = alignment_vs_truth(project, it, truth)
    tdir = true_angle_reconstruction(project, truth, ali.pop("kept"), comm)
    true_map = eio.read(project / "truth" / "map.mrc")
    vol = eio.read(project / "Refinement" / f"it{it:02d}" / "vol.spi")
    vol_true = eio.read(tdir / "vol.spi")
    r_ref = _fsc_res(vol, true_map, apix, radius)
    r_true = _fsc_res(vol_true, true_map, apix, radius)
    steps = _rows(project / "Refinement" / "resolution.spi")[1]
    res = {"iteration": it, "final_step_deg": float(steps[it - 1, 1]),
           "defocus": defocus_vs_truth(project), "picking": picking_vs_truth(project),
           "windowed": {"n": truth["n_picked"], "matched_frac": round(float(truth["precision"]), 4)},
           "alignment": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in ali.items()},
           "fsc_halves_0.5_A": round(float(steps[it - 1, 4]), 2),
           "fsc_halves_0.143_A": round(float(steps[it - 1, 5]), 2),
           "fsc_vs_truth_0.5_A": round(r_ref, 2),
           "true_angles_fsc_vs_truth_0.5_A": round(r_true, 2),
           "resolution_ratio": round(r_true / r_ref, 3),
           "per_iteration": [{"it": int(r[0]), "step": r[1], "range": r[2], "kept": int(r[3]),
                              "fsc_0.5_A": round(r[4], 2), "fsc_0.143_A": round(r[5], 2)}
                             for r in steps]}
    return res
