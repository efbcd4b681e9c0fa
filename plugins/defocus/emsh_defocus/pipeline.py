"""The defocus-group reconstruction pipeline: run its procedures, score it against truth.

The pipeline itself is a set of emsh procedures (``procedures/recon/*.proc`` in the
repository, SPIDER's "reconstruction with reference projections and defocus groups"
tech). This module is the Python side used by the demo, the benchmark and the tests:

* :func:`install_procedures` copies the procedures into a project folder (``procs/``)
  and writes its ``procs/params.proc`` from a :class:`ReconParams`;
* :func:`run_procedure` runs one of them with :class:`emsh.session.Session` in the
  project folder (serially, or under MPI with the communicator of the process);
* :func:`evaluate` (from :mod:`.score`) scores a finished project against its
  ``truth/`` folder.

Conventions: coordinates in docs are 1-based pixel positions (x = column, y = row);
angles are SPIDER's (psi, theta, phi) in degrees; defocus in Å, underfocus positive.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emsh.errors import UsageError

__all__ = ["ReconParams", "install_procedures", "run_procedure", "run_pipeline",
           "simulate_project", "procedures_folder", "STEPS"]

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
        ring: last alignment ring of AP SH (px); 0 = ``radius``. Far from focus the CTF
            spreads the particle's signal beyond its radius; a larger ring keeps it.
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
    ring: int = 0
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
        from emsh.kernels.ctf import spider_acr

        return float(spider_acr(self.amp))

    def params_text(self) -> str:
        """The text of params.proc."""
        n = len(self.steps)
        if not (len(self.ranges) == len(self.shifts) == n):
            raise UsageError("ReconParams: steps, ranges and shifts need one value per iteration")
        from emsh.kernels.ctf import spider_wavelength_A

        lam = spider_wavelength_A(self.kv)
        rows = [
            ("apix", self.apix, "pixel size (A)"),
            ("kv", self.kv, "voltage (kV)"),
            ("lambda", round(float(lam), 6), "electron wavelength (A), SPIDER's formula"),
            ("cs", self.cs, "spherical aberration (mm)"),
            ("amp", self.amp, "amplitude contrast (fraction)"),
            ("acr", round(self.spider_acr(), 6), "amplitude contrast ratio as TF C3 asks it"),
            ("box", self.box, "particle box (px)"),
            ("radius", self.radius, "particle radius (px)"),
            ("ring", self.ring, "last AP SH ring (px), 0 = the radius"),
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

def install_procedures(project, params: ReconParams, *, overwrite: bool = False) -> Path:
    """Copy ``procedures/recon/*.proc`` into ``project/procs`` and write its params.proc
    (from ``params``, always); returns the folder.

    A procedure already there that differs from the repository's (one the user edited)
    is kept unless ``overwrite``; it is then named in a UserWarning.
    """
    project = Path(project)
    dst = project / "procs"
    dst.mkdir(parents=True, exist_ok=True)
    kept = []
    for f in sorted(procedures_folder().glob("*.proc")):
        if f.name == "params.proc":
            continue
        old = dst / f.name
        if old.is_file() and not overwrite and old.read_bytes() != f.read_bytes():
            kept.append(f.name)
            continue
        shutil.copyfile(f, old)
    if kept:
        warnings.warn(f"{dst}: kept your edited {', '.join(kept)} (overwrite=True replaces "
                      "them with the repository's)", UserWarning, stacklevel=2)
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
            wrapper procedure, ``procs/_call_<name>_<rank>.proc`` (one per MPI rank).
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
        rank = 0 if comm is None else comm.rank
        proc = project / "procs" / f"_call_{name}_{rank}.proc"     # one per rank: no races
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

