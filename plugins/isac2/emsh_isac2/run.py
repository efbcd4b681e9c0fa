"""An ISAC2 run on files: read, correct, pre-align, classify, order, write (A.2, A.5).

Steps: read the stack (and a CTF per image for ``CTF=yes``, :mod:`.inputs`); subtract
each image's mean inside the radius; phase-flip (``CTF``) or whiten (``VPP``) at full
size (:mod:`.correct`); pre-align the shrunk stack unless ``skip_prealignment``
(:mod:`.prealign`); build the working stack with the centring shifts and the optional
filament band (:mod:`.prepare`); run the generations (:func:`.generation.run_isac`);
order the averages by mutual similarity unless ``skip_ordering`` (:mod:`.ordering`);
rank 0 writes the outputs listed in :data:`README_TEXT` (also written to the folder as
``README.txt``).

No file of an earlier run is replaced unless ``overwrite``; with ``resume`` the
checkpoints (``checkpoints/``) and the pre-alignment (``2dalignment/``) of a killed run
are reused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from emsh import io as emio
from emsh.errors import OutputExistsError, UsageError
from emsh.io._atomic import atomic_open
from emsh.io.hdf import write_stack_with_attributes
from emsh.io.star import write_star
from emsh.kernels.align2d import compose_alignment
from emsh.parallel import SerialComm
from emsh.table import Table

from .align import class_labels
from .correct import apply_table, flip_phases, vpp_table
from .generation import IsacResult, run_isac
from .inputs import read_ctf, read_stack, stack_path
from .montage import write_montage
from .ordering import order_averages
from .params import IsacParams, PrepParams
from .prealign import prealign
from .prepare import prepare_stack, shrink, shrink_ratio, subtract_inside_mean

__all__ = ["OUTPUT_FILES", "PREALIGN_FILE", "RUN_FILE", "isac2", "write_outputs",
           "apply_ordering", "README_TEXT"]

PREALIGN_FILE = "2dalignment/initial2Dparams.txt"
RUN_FILE = "isac2_run.json"
OUTPUT_FILES = ("class_averages.hdf", "class_averages.mrcs", "class_averages.png",
                "all_parameters.txt", "processed_images.txt", "not_processed_images.txt",
                "isac_particles.star", "README_shrink_ratio.txt", "README.txt", RUN_FILE,
                "rpw.txt", "isac2.log")

README_TEXT = """\
emsh ISAC2 outputs (ids are 0-based indices in the input stack)

class_averages.hdf   accepted class averages (target_nx box, shrunk pixels), ordered by
                     mutual similarity unless skip_ordering=yes (then in order of
                     acceptance); EMAN2 headers: members (ids), n_objects, generation
class_averages.mrcs  the same averages as an MRC stack
class_averages.png   montage: class number (#k, 1-based position in class_averages.hdf)
                     and member count
all_parameters.txt   per input image: alpha sx sy mirror, 2-D alignment of the working
                     image onto its class average (RT SQ then mirror x; shifts in shrunk
                     pixels); mirror -1: never accounted
2dalignment/initial2Dparams.txt
                     per input image: 0 sx sy 0, the pre-alignment (centring) shift in
                     ORIGINAL pixels, applied before shrinking (zeros with
                     skip_prealignment=yes). Full-size parameters of image i:
                     shift by (sx, sy), then rotate by alpha and shift by (sx, sy)/s of
                     all_parameters.txt, then mirror (ISAC2 FULLSIZE does this)
processed_images.txt / not_processed_images.txt   accounted / other ids, one per line
isac_particles.star  per input image: rlnImageName, rlnClassNumber (0 = unaccounted),
                     emshIsacAlpha/ShiftX/ShiftY/Mirror (as all_parameters.txt),
                     emshIsacPrealignX/Y (as initial2Dparams.txt), and the RELION CTF
                     columns when CTF=yes
README_shrink_ratio.txt   shrink ratio s (line 6) and particle radius (line 7)
rpw.txt              VPP=yes: frequency (cycles/px) and whitening factor per shell
isac2_run.json       the run's settings (read by ISAC2 FULLSIZE / SUBSTACK)
isac2.log            progress lines
checkpoints/         restart data (restart=yes resumes from it)
"""


def _outputs_present(out: Path, resume: bool) -> list[Path]:
    names = list(OUTPUT_FILES) + ([] if resume else [PREALIGN_FILE])
    return [out / n for n in names if (out / n).exists()]


def _write_text(path: Path, lines: list[str], overwrite: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w", overwrite=overwrite) as fh:
        fh.write("".join(line + "\n" for line in lines))


def read_prealignment(path, n: int) -> np.ndarray:
    """The ``(n, 2)`` centring shifts of ``2dalignment/initial2Dparams.txt``."""
    from emsh.errors import DataFormatError

    try:
        a = np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as exc:
        raise DataFormatError(path, f"expected rows '0 sx sy 0' ({exc})") from None
    if a.shape != (n, 4):
        raise DataFormatError(path, f"expected {n} rows '0 sx sy 0', got shape {a.shape}")
    return a[:, 1:3].copy()


def apply_ordering(result: IsacResult, order, angle, mirror, averages) -> IsacResult:
    """Reorder a result's classes and turn its averages; member parameters follow.

    Each member's parameters are composed with its average's turn (angle, mirror), so
    they still bring the image onto its (turned) average.
    """
    order = np.asarray(order, dtype=np.int64)
    params = result.all_parameters.copy()
    for k, old in enumerate(order):
        ids = result.members[old]
        a, t, m = compose_alignment(
            (params[ids, 0], params[ids, 1:3], params[ids, 3] > 0.5),
            (np.full(len(ids), angle[k]), np.zeros((len(ids), 2)),
             np.full(len(ids), bool(mirror[k]))))
        params[ids, 0], params[ids, 1:3], params[ids, 3] = a, t, m.astype(float)
    return replace(result, averages=np.asarray(averages, dtype=np.float32),
                   members=[result.members[i] for i in order],
                   generation=[result.generation[i] for i in order],
                   errors=[result.errors[i] for i in order], all_parameters=params)


def write_outputs(folder, result: IsacResult, *, s: float, radius: float, stack_name: str,
                  apix: float | None = None, overwrite: bool = False, prealign_shifts=None,
                  ctf=None, rpw=None, settings: dict | None = None) -> None:
    """Write an :class:`IsacResult` as ISAC2's output files (see :data:`README_TEXT`)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if not overwrite:
        for path in _outputs_present(out, resume=True):
            raise OutputExistsError(path)
    wapix = None if not apix else apix / s
    avgs = result.averages
    counts = [len(m) for m in result.members]
    attrs = [{"members": [int(i) for i in m], "n_objects": int(len(m)),
              "generation": int(g)} for m, g in zip(result.members, result.generation)]
    if len(avgs):
        write_stack_with_attributes(out / "class_averages.hdf", avgs, attrs, overwrite, apix=wapix)
        emio.write(out / "class_averages.mrcs", avgs, stack=True, apix=wapix, overwrite=overwrite)
        write_montage(out / "class_averages.png", avgs, counts,
                      title=f"ISAC2: {len(avgs)} classes, {sum(counts)} images",
                      overwrite=overwrite)
    p = result.all_parameters
    n = len(p)
    _write_text(out / "all_parameters.txt",
                [f"{a:.6f} {x:.6f} {y:.6f} {int(m)}" for a, x, y, m in p], overwrite)
    _write_text(out / "processed_images.txt", [str(int(i)) for i in result.processed], overwrite)
    _write_text(out / "not_processed_images.txt", [str(int(i)) for i in result.not_processed],
                overwrite)
    cls = class_labels(result.members, n) + 1
    pre = np.zeros((n, 2)) if prealign_shifts is None else np.asarray(prealign_shifts)
    cols = {
        "rlnImageName": [f"{i + 1:06d}@{stack_name}" for i in range(n)],
        "rlnClassNumber": cls,
        "emshIsacAlpha": p[:, 0], "emshIsacShiftX": p[:, 1], "emshIsacShiftY": p[:, 2],
        "emshIsacMirror": p[:, 3].astype(np.int64),
        "emshIsacPrealignX": pre[:, 0], "emshIsacPrealignY": pre[:, 1],
    }
    if ctf is not None:
        cols.update({k: np.broadcast_to(np.asarray(v, dtype=np.float64), (n,))
                     for k, v in ctf.to_relion().items()})
    write_star(out / "isac_particles.star", {"particles": Table(cols)}, overwrite=overwrite)
    _write_text(out / "README_shrink_ratio.txt",
                ["ISAC2 working stack (emsh): images were shrunk by the ratio s below,",
                 "and the particle radius in original pixels is given after it.",
                 "Alignment parameters in all_parameters.txt are in shrunk pixels;",
                 "divide shifts by s for original pixels.", "",
                 f"{s:.8f}", f"{radius:.8f}"], overwrite)
    if rpw is not None:
        _write_text(out / "rpw.txt", [f"{f:.6f} {v:.8g}" for f, v in zip(*rpw)], overwrite)
    _write_text(out / "README.txt", README_TEXT.splitlines(), overwrite)
    info = dict(settings or {}, stack=stack_name, radius=float(radius), shrink_ratio=float(s),
                apix=apix or 0.0, n_images=int(n), n_classes=len(avgs))
    _write_text(out / RUN_FILE, json.dumps(info, indent=1).splitlines(), overwrite)
    _write_text(out / "isac2.log", list(result.log), overwrite)


def isac2(stack_file, output_directory, radius: float, params: IsacParams | None = None,
          prep: PrepParams | None = None, *, apix: float | None = None,
          overwrite: bool = False, resume: bool = False, log=None,
          rng: np.random.Generator | None = None, comm=None) -> IsacResult:
    """Run ISAC2 on a stack file and write its outputs into ``output_directory``.

    Args:
        stack_file: input stack (any emsh image format; ``file@`` accepted).
        output_directory: folder for the outputs (created).
        radius: particle radius in original pixels.
        params: ISAC2 parameters (defaults as ``sp_isac2.py``).
        prep: preparation options (pre-alignment, CTF/VPP, filament, ordering).
        apix: original pixel size in Å (recorded in the averages), optional.
        overwrite: replace outputs of an earlier run.
        resume: reuse ``checkpoints/`` and ``2dalignment/`` of a killed run.
        log: callable receiving progress lines (rank 0).
        rng: Generator (default: seeded from ``params.rand_seed``).
        comm: communicator (None: serial); rank 0 alone writes files.

    Returns:
        The :class:`IsacResult` (as written to files, on rank 0).
    """
    p = IsacParams() if params is None else params
    prep = PrepParams() if prep is None else prep
    comm = SerialComm() if comm is None else comm
    root = comm.rank == 0
    say = (log if (log is not None and root) else (lambda line: None))
    out = Path(output_directory)
    if not overwrite:
        for path in _outputs_present(out, resume):
            raise OutputExistsError(path)
    imgs = read_stack(stack_file)
    n = len(imgs)
    if n < p.img_per_grp:
        raise UsageError(f"ISAC2: {n} images, fewer than img_per_grp={p.img_per_grp}")
    ctf = read_ctf(stack_file, n, prep.ctf_star or None, apix) if prep.CTF else None
    x = subtract_inside_mean(imgs, radius)
    del imgs
    rpw = None
    if ctf is not None:
        x = flip_phases(x, ctf)
    elif prep.VPP:
        rpw = vpp_table(x[comm.my_slice(n)], n_total=n, comm=comm)   # spectra by rank
        x = apply_table(x, *rpw)
    s = shrink_ratio(radius, p.target_radius)
    pre_path = out / PREALIGN_FILE
    lines = []
    if prep.skip_prealignment:
        shifts = np.zeros((n, 2))
    elif resume and pre_path.exists():
        shifts = read_prealignment(pre_path, n)
        lines.append(f"pre-alignment: shifts read from {pre_path}")
    else:
        pa = prealign(shrink(x, s), s, target_radius=p.target_radius, ir=p.ir, comm=comm)
        shifts, lines = pa.shifts, pa.log
        lines.append(f"pre-alignment: rms centring shift "
                     f"{np.sqrt(np.mean(np.sum(shifts ** 2, axis=1))):.2f} original px")
    for line in lines:
        say(line)
    if root and not (resume and pre_path.exists() and not prep.skip_prealignment):
        # full precision: a restart rebuilds the identical working stack from these
        _write_text(pre_path, [f"0 {a:.17g} {b:.17g} 0" for a, b in shifts],
                    overwrite or resume)
    work, s = prepare_stack(x, radius, target_radius=p.target_radius, target_nx=p.target_nx,
                            shifts=shifts, filament_width=prep.filament_width,
                            filament_mask_ignore=prep.filament_mask_ignore)
    del x
    result = run_isac(work, p, rng, checkpoint_dir=out / "checkpoints", resume=resume,
                      comm=comm, log=say)
    result.log[:0] = lines
    if root:
        if not prep.skip_ordering and len(result.members) > 2:
            o = order_averages(result.averages, ou=p.target_radius, xr=p.xr + 1, ir=p.ir)
            result = apply_ordering(result, o.order, o.angle, o.mirror, o.averages)
            line = ("ordered averages (positions in acceptance order): "
                    + " ".join(str(i + 1) for i in o.order))
            result.log.append(line)
            say(line)
        settings = dict(asdict(prep), ctf_star=str(Path(prep.ctf_star).resolve())
                        if prep.ctf_star else "", params=asdict(p))
        write_outputs(out, result, s=s, radius=radius,
                      stack_name=str(Path(stack_path(stack_file)).resolve()), apix=apix,
                      overwrite=overwrite, prealign_shifts=shifts, ctf=ctf, rpw=rpw,
                      settings=settings)
    comm.barrier()
    return result
