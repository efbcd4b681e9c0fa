"""Truth tables of simulated data, written as a RELION STAR file and a SPIDER doc file.

The simulators return :class:`emsh.table.Table` objects with emsh's column names
(``phi, theta, psi`` SPIDER angles in degrees; ``sx, sy, sz`` the shift applied to
the content in pixels, positive towards higher x / y / z index; ``x, y`` 0-based
micrograph column / row; ``defocus_u_A`` ...). :func:`write_truth` writes the same
rows for other programs:

* ``STEM.star`` (RELION): angles as ``rlnAngleRot/Tilt/Psi`` (the same numbers, the
  matrices are identical, see :mod:`emsh.geom.euler`); RELION's origin is the
  opposite of the applied shift (an offset ``+o`` moves the particle by ``-o``), so
  ``rlnOriginX = -sx`` in pixels, or ``rlnOriginXAngst = -sx * apix`` with an
  optics block when ``apix`` is given (RELION 3.1 layout); CTF columns as
  ``rlnDefocusU/V``, ``rlnDefocusAngle``, ``rlnVoltage``, ``rlnSphericalAberration``,
  ``rlnAmplitudeContrast``, ``rlnCtfBfactor``, ``rlnPhaseShift``; ``class_id`` as
  ``rlnClassNumber``; ``x, y`` as ``rlnCoordinateX/Y``. Columns RELION has no label
  for keep their name with an ``emsh`` prefix in CamelCase (``view_id`` ->
  ``emshViewId``).
* ``STEM.EXT`` (SPIDER doc file, key = row number from 1): registers in the order
  PSI, THETA, PHI (SPIDER's angle-doc order, so the file serves ``BP 32F`` as is),
  then the other numeric columns in table order with the emsh signs (SX, SY as
  applied); text columns are left out. A comment line names every register.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from emsh.errors import UsageError
from emsh.io._atomic import check_writable
from emsh.io.docfile import write_doc
from emsh.io.star import join_image_name, write_star
from emsh.table import Table

__all__ = ["write_truth", "relion_table", "doc_registers"]

_RELION = {
    "phi": "rlnAngleRot", "theta": "rlnAngleTilt", "psi": "rlnAnglePsi",
    "x": "rlnCoordinateX", "y": "rlnCoordinateY",
    "defocus_u_A": "rlnDefocusU", "defocus_v_A": "rlnDefocusV",
    "astig_angle_deg": "rlnDefocusAngle", "voltage_kV": "rlnVoltage",
    "cs_mm": "rlnSphericalAberration", "amp_contrast": "rlnAmplitudeContrast",
    "bfactor_A2": "rlnCtfBfactor", "phase_shift_deg": "rlnPhaseShift",
    "class_id": "rlnClassNumber",
}
_SHIFTS = {"sx": "X", "sy": "Y", "sz": "Z"}
_OPTICS = ("voltage_kV", "cs_mm", "amp_contrast")
_ANGLES = ("psi", "theta", "phi")


def _camel(name: str) -> str:
    return "emsh" + "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def relion_table(table: Table, *, apix: float | None = None, stack_name=None
                 ) -> dict[str, Table]:
    """The STAR blocks for a truth table: ``{"particles": ...}``, plus ``"optics"`` with apix.

    Args:
        table: a truth table from :mod:`emsh.sim`.
        apix: pixel size in Å; given, origins are written in Å (RELION 3.1 labels) and
            an optics block holds the pixel size (and voltage, Cs and amplitude
            contrast when they are the same for every row).
        stack_name: image stack file; adds ``rlnImageName`` = ``000001@stack`` ...
    """
    n = len(table)
    out: dict[str, np.ndarray] = {}
    if stack_name is not None:
        out["rlnImageName"] = np.array([join_image_name(stack_name, i + 1) for i in range(n)])
    optics: dict[str, np.ndarray] = {}
    if apix is not None:
        apix = float(apix)
        if not np.isfinite(apix) or apix <= 0:
            raise UsageError(f"apix must be > 0 Å, got {apix}")
        optics = {"rlnOpticsGroup": np.array([1]), "rlnOpticsGroupName": np.array(["opticsGroup1"]),
                  "rlnImagePixelSize": np.array([apix])}
    for col in table.columns:
        v = table[col]
        if col in _SHIFTS:
            ax = _SHIFTS[col]
            if apix is None:
                out[f"rlnOrigin{ax}"] = -v
            else:
                out[f"rlnOrigin{ax}Angst"] = -v * apix
        elif col in _OPTICS and apix is not None and np.unique(v).size == 1:
            optics[_RELION[col]] = v[:1]
        elif col in _RELION:
            out[_RELION[col]] = v
        else:
            out[_camel(col)] = v
    if apix is not None:
        out["rlnOpticsGroup"] = np.ones(n, dtype=np.int64)
        return {"optics": Table(optics, name="optics"), "particles": Table(out, name="particles")}
    return {"particles": Table(out, name="particles")}


def doc_registers(table: Table) -> tuple[list[str], np.ndarray]:
    """Register names and values ``(n, k)`` for the SPIDER doc file (see the module notes)."""
    names = [c for c in _ANGLES if c in table]
    names += [c for c in table.columns if c not in names and table[c].dtype.kind in "biuf"]
    if not names:
        raise UsageError("the truth table has no numeric column to write to a doc file")
    values = np.column_stack([table[c].astype(np.float64) for c in names])
    return names, values


def write_truth(table: Table, path_stem, *, apix: float | None = None, stack_name=None,
                doc_ext: str = "spi", overwrite: bool = False) -> tuple[Path, Path]:
    """Write a truth table as ``STEM.star`` (RELION) and ``STEM.<doc_ext>`` (SPIDER doc).

    Args:
        table: a truth table from :mod:`emsh.sim` (one row per particle).
        path_stem: path without extension.
        apix: pixel size in Å for the RELION 3.1 layout (origins in Å, optics block);
            without it origins are in pixels (RELION 3.0 labels).
        stack_name: the image stack the rows describe (adds ``rlnImageName``).
        doc_ext: extension of the doc file (SPIDER's data extension).
        overwrite: replace existing files; otherwise neither file is written when
            either exists.

    Returns:
        ``(star_path, doc_path)``.

    Raises:
        OutputExistsError: a target exists and ``overwrite`` is False.
        UsageError: an empty table.
    """
    if not isinstance(table, Table) or len(table) == 0:
        raise UsageError("write_truth: expected a non-empty emsh.table.Table")
    stem = os.fspath(path_stem)
    ext = str(doc_ext).lstrip(".")
    if not ext or "/" in ext:
        raise UsageError(f"write_truth: bad doc-file extension {doc_ext!r}")
    star_path, doc_path = Path(stem + ".star"), Path(f"{stem}.{ext}")
    for p in (star_path, doc_path):
        check_writable(p, overwrite)
    names, values = doc_registers(table)
    blocks = relion_table(table, apix=apix, stack_name=stack_name)
    write_star(star_path, blocks, overwrite=overwrite)
    heading = ", ".join(f"{name.upper():>12}" for name in names)
    comments = ["emsh.sim truth: angles SPIDER ZYZ degrees; SX SY SZ = shift applied to the "
                "content, pixels, + to higher x y z"]
    write_doc(doc_path, np.arange(1, len(table) + 1), values, heading=heading, comments=comments,
              overwrite=overwrite, data_ext=ext)
    return star_path, doc_path
