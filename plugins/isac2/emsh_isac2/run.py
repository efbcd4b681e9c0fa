"""An ISAC2 run on files: read the stack, classify, write ISAC2's outputs (A.5).

Outputs in the output folder:

* ``class_averages.hdf``: accepted averages (``target_nx`` box, shrunk pixels) with the
  EMAN2 header entries ``members`` (0-based ids in the input stack) and ``n_objects``;
* ``class_averages.mrcs``: the same averages as an MRC stack;
* ``all_parameters.txt``: per input image ``alpha sx sy mirror`` in the shrunk frame
  (mirror -1: never accounted), as SPHIRE writes it;
* ``processed_images.txt`` / ``not_processed_images.txt``: one id per line;
* ``isac_particles.star``: per input image its class (0 = unaccounted) and alignment;
* ``README_shrink_ratio.txt`` (shrink ratio and radius) and ``isac2.log``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from emsh import io as emio
from emsh.errors import OutputExistsError, UsageError
from emsh.io._atomic import atomic_open
from emsh.io.hdf import write_stack_with_attributes
from emsh.io.star import write_star
from emsh.table import Table

from .generation import IsacResult, run_isac
from .params import IsacParams
from .prepare import prepare_stack

__all__ = ["OUTPUT_FILES", "isac2", "write_outputs"]

OUTPUT_FILES = ("class_averages.hdf", "class_averages.mrcs", "all_parameters.txt",
                "processed_images.txt", "not_processed_images.txt", "isac_particles.star",
                "README_shrink_ratio.txt", "isac2.log")


def _read_stack(stack_file) -> np.ndarray:
    path, _, _ = emio.split_address(stack_file)
    imgs = emio.read(path)
    if imgs.ndim == 2:
        imgs = imgs[None]
    if imgs.ndim != 3:
        raise UsageError(f"{path}: expected a stack of 2-D images, got shape {imgs.shape}")
    return imgs


def _write_text(path: Path, lines: list[str], overwrite: bool) -> None:
    with atomic_open(path, "w", overwrite=overwrite) as fh:
        fh.write("".join(line + "\n" for line in lines))


def write_outputs(folder, result: IsacResult, *, s: float, radius: float, stack_name: str,
                  apix: float | None = None, overwrite: bool = False) -> None:
    """Write an :class:`IsacResult` as ISAC2's output files (see the module docstring)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if not overwrite:
        for name in OUTPUT_FILES:
            if (out / name).exists():
                raise OutputExistsError(out / name)
    wapix = None if not apix else apix / s
    avgs = result.averages
    attrs = [{"members": [int(i) for i in m], "n_objects": int(len(m))} for m in result.members]
    if len(avgs):
        write_stack_with_attributes(out / "class_averages.hdf", avgs, attrs, overwrite, apix=wapix)
        emio.write(out / "class_averages.mrcs", avgs, stack=True, apix=wapix, overwrite=overwrite)
    p = result.all_parameters
    _write_text(out / "all_parameters.txt",
                [f"{a:.6f} {x:.6f} {y:.6f} {int(m)}" for a, x, y, m in p], overwrite)
    _write_text(out / "processed_images.txt", [str(int(i)) for i in result.processed], overwrite)
    _write_text(out / "not_processed_images.txt", [str(int(i)) for i in result.not_processed],
                overwrite)
    n = len(p)
    cls = np.zeros(n, dtype=np.int64)
    for k, m in enumerate(result.members):
        cls[m] = k + 1
    table = Table({
        "rlnImageName": [f"{i + 1:06d}@{stack_name}" for i in range(n)],
        "rlnClassNumber": cls,
        "emshIsacAlpha": p[:, 0], "emshIsacShiftX": p[:, 1], "emshIsacShiftY": p[:, 2],
        "emshIsacMirror": p[:, 3].astype(np.int64),
    })
    write_star(out / "isac_particles.star", {"particles": table}, overwrite=overwrite)
    _write_text(out / "README_shrink_ratio.txt",
                ["ISAC2 working stack (emsh): images were shrunk by the ratio s below,",
                 "and the particle radius in original pixels is given after it.",
                 "Alignment parameters in all_parameters.txt are in shrunk pixels;",
                 "divide shifts by s for original pixels.", "",
                 f"{s:.8f}", f"{radius:.8f}"], overwrite)
    _write_text(out / "isac2.log", list(result.log), overwrite)


def isac2(stack_file, output_directory, radius: float, params: IsacParams | None = None, *,
          apix: float | None = None, overwrite: bool = False, log=None,
          rng: np.random.Generator | None = None) -> IsacResult:
    """Run ISAC2 on a stack file and write its outputs into ``output_directory``.

    Args:
        stack_file: input stack (any emsh image format; ``file@`` accepted).
        output_directory: folder for the outputs (created).
        radius: particle radius in original pixels.
        params: ISAC2 parameters (defaults as ``sp_isac2.py``).
        apix: original pixel size in Å (recorded in the averages), optional.
        overwrite: replace outputs of an earlier run.
        log: callable receiving progress lines.
        rng: Generator (default: seeded from ``params.rand_seed``).

    Returns:
        The :class:`IsacResult` (also written to files).
    """
    p = IsacParams() if params is None else params
    out = Path(output_directory)
    if not overwrite:
        for name in OUTPUT_FILES:
            if (out / name).exists():
                raise OutputExistsError(out / name)
    imgs = _read_stack(stack_file)
    work, s = prepare_stack(imgs, radius, target_radius=p.target_radius, target_nx=p.target_nx)
    if len(work) < p.img_per_grp:
        raise UsageError(f"ISAC2: {len(work)} images, fewer than img_per_grp={p.img_per_grp}")
    result = run_isac(work, p, rng)
    if log is not None:
        for line in result.log:
            log(line)
    path, _, _ = emio.split_address(stack_file)
    write_outputs(out, result, s=s, radius=radius, stack_name=os.fspath(path), apix=apix,
                  overwrite=overwrite)
    return result
