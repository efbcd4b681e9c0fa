"""The defocus-group reconstruction pipeline: run its procedures, score it against truth.

The pipeline itself is a set of emsh procedures (``procedures/recon/*.proc`` in the
repository, SPIDER's "reconstruction with reference projections and defocus groups"
tech). This module is the Python side used by the demo, the benchmark and the tests:

* :func:`install_procedures` copies the procedures into a project folder (``procs/``)
  and writes its ``procs/params.proc`` from a :class:`ReconParams`;
* :func:`run_procedure` runs one of them with :class:`emsh.session.Session` in the
  project folder (serially, or under MPI with the communicator of the process);
* :func:`simulate_particle_project` writes the files of the windowing step
  (``Particles/``, ``Power_Spectra/groups``, ``truth/``) straight from
  :func:`emsh.sim.particles.simulate_particles`, to exercise the steps after windowing
  without micrographs;
* :func:`evaluate` scores a finished project against its ``truth/`` folder (defocus
  error, picking recall, angular error of the refined alignment, FSC of the final map
  and of a reconstruction of the same particles with their true angles and shifts).

Conventions: coordinates in docs are 1-based pixel positions (x = column, y = row);
angles are SPIDER's (psi, theta, phi) in degrees; defocus in Å, underfocus positive.
"""

from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from emsh.errors import UsageError

__all__ = ["ReconParams", "install_procedures", "run_procedure", "run_pipeline",
           "simulate_particle_project", "evaluate", "procedures_folder", "STEPS"]

#: The step procedures run_all.proc calls, in order (each can also be run alone).
STEPS = ("powdefocus", "pick", "prepare", "refine")


def procedures_folder() -> Path:
    """``procedures/recon`` of the repository this plugin is installed from."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent / "procedures" / "recon"
        if (cand / "run_all.proc").is_file():
            return cand
    raise UsageError("procedures/recon/run_all.proc not found above "
                     f"{here.parent}; is emsh_defocus installed from the repository?")


@dataclass
class ReconParams:
    """The values of ``procs/params.proc`` (global variables of every step).

    Attributes:
        apix: pixel size (Å); kv, cs, amp: voltage (kV), Cs (mm), amplitude contrast
            (fraction, as emsh/RELION; params.proc holds SPIDER's ratio for TF C3).
        box, radius: particle box and radius (px).
        n_mics: number of micrographs (Micrographs/mic001.mrc ...).
        n_groups: defocus groups.
        tile, res_lo, res_hi: power-spectrum tile (px) and fitting range (Å).
        pick_threshold, max_picks: DG PICK threshold (SD, 0 = auto) and picks per micrograph.
        steps: angular step (deg) of each refinement iteration.
        ranges: restricted search range (deg) of each iteration (0 = all).
        shifts: AP SH translation range (px) of each iteration (step 1).
        keep: DG SELECT keep fraction (0-1) or -CC threshold.
        merge_snr: SNR of the TF CTS Wiener merge.
        start_res: low-pass (Å) of the initial reference.
        views_every: per-view averages at the last iteration only (0) or every one (1).
        ctf_sign: SPIDER's TF sign; -1 for white particles (emsh's simulations).
    """

    apix: float = 2.0
    kv: float = 300.0
    cs: float = 2.7
    amp: float = 0.07
    box: int = 64
    radius: int = 24
    n_mics: int = 12
    n_groups: int = 6
    tile: int = 256
    res_lo: float = 30.0
    res_hi: float = 6.0
    pick_threshold: float = 0.0
    max_picks: int = 0
    steps: tuple = (15.0, 8.0, 4.0)
    ranges: tuple = (0.0, 20.0, 10.0)
    shifts: tuple = (3, 2, 1)
    keep: float = 0.9
    merge_snr: float = 2.0
    start_res: float = 25.0
    views_every: int = 0
    ctf_sign: float = -1.0
    extra: dict = field(default_factory=dict)

    def spider_acr(self) -> float:
        """SPIDER's amplitude-contrast ratio for TF C3 from the fraction ``amp``."""
        phi = np.arcsin(np.clip(self.amp, 0.0, 1.0))
        return float(np.sin(phi) / (np.sin(phi) + np.cos(phi)))

    def params_text(self) -> str:
        """The text of params.proc."""
        n = len(self.steps)
        if not (len(self.ranges) == len(self.shifts) == n):
            raise UsageError("ReconParams: steps, ranges and shifts need one value per iteration")
        lam = 12.398 / np.sqrt(self.kv * (1022.0 + self.kv))
        rows = [
            ("apix", self.apix, "pixel size (A)"),
            ("kv", self.kv, "voltage (kV)"),
            ("lambda", round(float(lam), 6), "electron wavelength (A), SPIDER's formula"),
            ("cs", self.cs, "spherical aberration (mm)"),
            ("amp", self.amp, "amplitude contrast (fraction)"),
            ("acr", round(self.spider_acr(), 6), "amplitude contrast ratio as TF C3 asks it"),
            ("box", self.box, "particle box (px)"),
            ("radius", self.radius, "particle radius (px)"),
            ("nmic", self.n_mics, "micrographs Micrographs/mic001.mrc ..."),
            ("ngroups", self.n_groups, "defocus groups"),
            ("tile", self.tile, "power spectrum tile (px)"),
            ("res-lo", self.res_lo, "defocus fit: lowest resolution (A)"),
            ("res-hi", self.res_hi, "defocus fit: highest resolution (A)"),
            ("pick-thr", self.pick_threshold, "picking threshold (SD), 0 = automatic"),
            ("pick-max", self.max_picks, "most picks per micrograph, 0 = no limit"),
            ("niter", n, "refinement iterations"),
            ("keep", self.keep, "DG SELECT: keep fraction, or -CC threshold"),
            ("merge-snr", self.merge_snr, "TF CTS Wiener SNR"),
            ("views-every", self.views_every, "per-view averages: 1 every iteration, 0 last"),
            ("ctf-sign", self.ctf_sign, "TF C3 sign: -1 for white particles"),
            ("start-res", self.start_res, "low-pass of the starting reference (A)"),
        ]
        lines = ["; Parameters of the defocus-group pipeline (global variables of every step).",
                 "; Written by emsh_defocus.pipeline; edit the values for your data.", ""]
        for name, value, why in rows:
            lines.append(f"GLOBAL [{name}] = {_num(value)}".ljust(36) + f"; {why}")
        for name, value in self.extra.items():
            lines.append(f"GLOBAL [{name}] = {_num(value)}")
        lists = (("steps", self.steps, "angular step (deg) per iteration"),
                 ("ranges", self.ranges, "AP SH search range (deg) around the previous "
                                         "direction, 0 = all"),
                 ("shifts", self.shifts, "AP SH translation range (px) per iteration"))
        for name, vals, why in lists:
            lines.append(f"GLOBAL [{name}] = '{','.join(_num(v) for v in vals)}'".ljust(36)
                         + f"; {why}")
        lines.append("RE")
        return "\n".join(lines) + "\n"


def _num(v) -> str:
    v = float(v)
    return str(int(v)) if v == int(v) else repr(v)


# ----------------------------------------------------------------------------- running

def install_procedures(project, params: ReconParams) -> Path:
    """Copy ``procedures/recon/*.proc`` into ``project/procs`` and write its params.proc.

    Existing procedure files there are replaced (they are copies); returns the folder.
    """
    project = Path(project)
    dst = project / "procs"
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(procedures_folder().glob("*.proc")):
        if f.name != "params.proc":
            shutil.copyfile(f, dst / f.name)
    (dst / "params.proc").write_text(params.params_text())
    return dst


@contextmanager
def _in_folder(folder: Path):
    old = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


def run_procedure(project, name: str, comm=None, *, args=(), lines=(), log: bool = True,
                  quiet: bool = True) -> float:
    """Run ``procs/<name>.proc`` in the project folder; returns the seconds it took.

    Args:
        project: the project folder (the procedures' paths are relative to it).
        name: procedure name without extension (``run_all``, ``refine``, ``recon`` ...).
        comm: communicator (default: :func:`emsh.parallel.get_comm`, MPI when under mpiexec).
        args: values of the procedure's parameters (``refproj`` takes ``[it],[delta]``).
        lines: answer lines for a procedure that reads its caller's lines (``recon``
            reads its folder). With args or lines the procedure is called from a small
            wrapper procedure, ``procs/_call_<name>.proc``.
        log: write a results log (``results.proc.N``) in the project folder.
        quiet: keep operation messages out of the terminal (they still go to the log).
    """
    import io

    from emsh.session import Session

    project = Path(project).resolve()
    proc = project / "procs" / f"{name}.proc"
    if not proc.is_file():
        raise UsageError(f"{proc}: no such procedure (install_procedures first)")
    if args or lines:
        call = f"@{name}" + (f"({','.join(_num(a) for a in args)})" if args else "")
        proc = project / "procs" / f"_call_{name}.proc"
        proc.write_text(call + "\n" + "".join(f"{ln}\n" for ln in lines) + "RE\n")
    t0 = time.perf_counter()
    with _in_folder(project):
        session = Session(comm=comm, project_ext="proc", results=True if log else None,
                          echo=not quiet, out=io.StringIO() if quiet else None)
        try:
            session.run_file(proc)
        finally:
            session.close()
    return time.perf_counter() - t0


def run_pipeline(project, params: ReconParams, comm=None, *, steps=STEPS,
                 quiet: bool = True) -> dict:
    """Install the procedures and run the given steps in order; returns seconds per step.
    Under MPI (``comm`` with several ranks) rank 0 installs them and every rank runs."""
    if comm is None or comm.rank == 0:
        install_procedures(project, params)
    if comm is not None:
        comm.barrier()
    return {s: round(run_procedure(project, s, comm, quiet=quiet), 2) for s in steps}


# ----------------------------------------------------------------------------- test data

def _write_doc(path, keys, rows, heading=None):
    from emsh.io.docfile import write_doc

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_doc(path, np.asarray(keys), np.asarray(rows, dtype=np.float64), heading=heading,
              overwrite=True)


def write_start_reference(project, volume, rng: np.random.Generator,
                          noise: float = 0.1) -> Path:
    """``Reference/input.spi``: ``volume`` plus white noise of ``noise`` times its SD.

    prepare.proc low-pass filters it to ``start_res`` Å: the start is the truth seen at
    low resolution with a perturbation, as a reference from an earlier study would be.
    """
    import emsh.io as eio

    v = np.asarray(volume, dtype=np.float32)
    v = v + rng.normal(0.0, noise * float(v.std()), v.shape).astype(np.float32)
    out = Path(project) / "Reference" / "input.spi"
    out.parent.mkdir(parents=True, exist_ok=True)
    eio.write(out, v, overwrite=True)
    return out


def simulate_particle_project(project, *, n_groups: int = 3, mics_per_group: int = 2,
                              per_mic: int = 60, box: int = 48, apix: float = 3.0,
                              snr: float = 0.3, defocus_um=(1.0, 3.0), astig_A: float = 300.0,
                              shift_px: float = 2.0, seed: int = 1, kv: float = 300.0,
                              cs: float = 2.7, amp: float = 0.07,
                              model: str = "adk_closed") -> dict:
    """Write what the picking and windowing steps would: particles with known truth.

    Every "micrograph" has its own defocus (with astigmatism) and ``per_mic`` particles
    at random orientations with random sub-pixel offsets of up to ``shift_px`` from the
    box centre; micrographs are grouped by defocus (``mics_per_group`` each). Writes
    Particles/data001... (background noise SD 1), sel001..., particles, group_counts,
    Power_Spectra/def_groups and groups (defocus from the truth), truth/ (map.mrc,
    params, defocus, coords001... as the interface describes; particle ``(x, y)`` in
    Particles/particles is the box centre, the true centre is offset by the shift) and
    Reference/input. Returns a summary dict.
    """
    import emsh.io as eio
    from emsh.kernels.ctf import CTFParams
    from emsh.sim.models import load_model, model_to_map
    from emsh.sim.particles import simulate_particles

    project = Path(project)
    rng = np.random.default_rng(seed)
    vol = model_to_map(load_model(model), box, apix)
    n_mics = n_groups * mics_per_group
    defocus = np.sort(rng.uniform(defocus_um[0], defocus_um[1], n_mics)) * 1e4
    astig = rng.uniform(0.0, astig_A, n_mics)
    angle = rng.uniform(0.0, 180.0, n_mics)
    group = np.repeat(np.arange(1, n_groups + 1), mics_per_group)
    (project / "truth").mkdir(parents=True, exist_ok=True)
    eio.write(project / "truth" / "map.mrc", vol, apix=apix, overwrite=True)
    _write_doc(project / "truth" / "params.spi", [1],
               [[apix, kv, cs, amp, box, 0.0, n_mics]])
    _write_doc(project / "truth" / "defocus.spi", np.arange(1, n_mics + 1),
               np.column_stack([np.arange(1, n_mics + 1), defocus, astig, angle,
                                defocus + astig / 2, defocus - astig / 2]))
    spacing = box + 8
    side = int(np.ceil(np.sqrt(per_mic)))
    parts, sel_rows, id_rows = {g: [] for g in range(1, n_groups + 1)}, {g: [] for g in range(
        1, n_groups + 1)}, []
    pid = 0
    for m in range(n_mics):
        ctf = CTFParams(defocus[m] + astig[m] / 2, defocus[m] - astig[m] / 2, angle[m], kv, cs,
                        amp, apix=apix)
        imgs, t = simulate_particles(vol, per_mic, rng, apix=apix, shift_range_px=shift_px,
                                     ctf=ctf, snr=snr)
        imgs /= np.float32(t["noise_sigma"][0])
        k = np.arange(per_mic)
        X = (box + spacing * (k % side)).astype(float)          # 1-based box centres
        Y = (box + spacing * (k // side)).astype(float)
        xt, yt = X + t["sx"], Y + t["sy"]
        _write_doc(project / "truth" / f"coords{m + 1:03d}.spi", k + 1,
                   np.column_stack([xt, yt, t["psi"], t["theta"], t["phi"]]))
        g = int(group[m])
        for i in range(per_mic):
            pid += 1
            parts[g].append(imgs[i])
            member = len(parts[g])
            sel_rows[g].append([member, pid, m + 1, X[i], Y[i], defocus[m]])
            id_rows.append([pid, m + 1, X[i], Y[i], defocus[m], g, member])
    counts = []
    for g in range(1, n_groups + 1):
        eio.write(project / "Particles" / f"data{g:03d}.spi", np.stack(parts[g]), stack=True,
                  overwrite=True)
        rows = np.asarray(sel_rows[g])
        _write_doc(project / "Particles" / f"sel{g:03d}.spi", rows[:, 0], rows)
        counts.append([g, len(rows), rows[:, 5].mean()])
    ids = np.asarray(id_rows)
    _write_doc(project / "Particles" / "particles.spi", ids[:, 0], ids)
    _write_doc(project / "Particles" / "group_counts.spi", np.arange(1, n_groups + 1), counts)
    _write_doc(project / "Power_Spectra" / "def_groups.spi", np.arange(1, n_mics + 1),
               np.column_stack([np.arange(1, n_mics + 1), defocus, group]))
    grp_rows = [[g, mics_per_group, defocus[group == g].mean(), defocus[group == g].min(),
                 defocus[group == g].max()] for g in range(1, n_groups + 1)]
    _write_doc(project / "Power_Spectra" / "groups.spi", np.arange(1, n_groups + 1), grp_rows)
    write_start_reference(project, vol, rng)
    return {"n_particles": pid, "n_mics": n_mics, "n_groups": n_groups, "box": box,
            "apix": apix, "snr": snr}


# ----------------------------------------------------------------------------- scoring

def _doc(path):
    from emsh.io.docfile import read_doc

    return read_doc(path)


def _rows(path) -> tuple[np.ndarray, np.ndarray]:
    """(keys, registers) of a doc, the last line of each key, keys ascending."""
    d = _doc(path)
    keys = np.array(sorted(set(d.keys.tolist())), dtype=np.int64)
    return keys, np.array([d.get(int(k)) for k in keys]) if keys.size else np.zeros((0, 0))


def _match(picked: np.ndarray, true: np.ndarray, tol: float) -> np.ndarray:
    """Index of the true centre each pick matches (-1: none), one pick per true centre,
    nearest first, within ``tol`` pixels."""
    out = np.full(len(picked), -1, dtype=np.int64)
    if len(picked) == 0 or len(true) == 0:
        return out
    d = np.hypot(picked[:, None, 0] - true[None, :, 0], picked[:, None, 1] - true[None, :, 1])
    taken = np.zeros(len(true), bool)
    for i, j in zip(*np.unravel_index(np.argsort(d, axis=None), d.shape)):
        if d[i, j] > tol:
            break
        if out[i] < 0 and not taken[j]:
            out[i], taken[j] = j, True
    return out


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
    return {"median_rot_err_deg": float(np.median(full)),
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


# ----------------------------------------------------------------------------- end to end

def simulate_project(project, *, n_mics: int, per_mic: int, box: int, apix: float,
                     mic_size: int, snr: float, defocus_um=(1.0, 3.0), seed: int = 1,
                     start_noise: float = 0.1, **kwargs):
    """Simulated micrographs (DG SIM's :func:`emsh_defocus.simdata.simulate_dataset`) plus
    the exact sub-pixel centres (truth/subpixel001...) and Reference/input (the true map
    with white noise, ``start_noise`` times its SD; prepare.proc low-passes it).
    Returns the :class:`~emsh_defocus.simdata.DatasetTruth`."""
    from emsh_defocus.simdata import simulate_dataset

    project = Path(project)
    truth = simulate_dataset(project, n_mics=n_mics, per_mic=per_mic, box=box, apix=apix,
                             mic_size=mic_size, snr=snr, defocus_um=tuple(defocus_um),
                             seed=seed, **kwargs)
    for m, xy in enumerate(truth.subpixel, start=1):
        _write_doc(project / "truth" / f"subpixel{m:03d}.spi", np.arange(1, len(xy) + 1), xy)
    write_start_reference(project, truth.volume, np.random.default_rng(seed + 1), start_noise)
    return truth
