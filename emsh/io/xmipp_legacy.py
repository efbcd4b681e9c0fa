"""Xmipp 2.x legacy text formats: selection files (``.sel``) and document files (``.doc``).

``.sel``: one image per line, ``name label``; label >= 0 is active (Xmipp writes 1),
negative is discarded (-1). Lines starting with ``#`` or ``;`` are comments.

``.doc`` (what ``ml_tomo``/``ml_align2d`` 2.4 wrote and read with ``-doc``)::

     ; Headerinfo columns: rot (1), tilt (2), psi (3), Xoff (4), Yoff (5), Ref (6)
     ; images/img00001.xmp
        1 6     0.00000   40.00000    0.00000    0.00000    0.00000    1.00000

A ``Headerinfo`` comment names the columns; each data line ``key count v1..vn`` is
preceded by a comment holding its image name. Xmipp writes ``%5d %-2d`` for key and
count and ``' % 10.5f'`` per value, and renumbers keys 1..n. Both map onto
:class:`emsh.table.Table`: ``image`` and ``enabled`` for a ``.sel``; ``image`` plus one
column per doc column, named with the Xmipp 3 labels (``angleRot``, ``angleTilt``,
``anglePsi``, ``shiftX``, ...) so that the same table writes as an Xmipp 3 ``.xmd``.
Angles are Xmipp's (rot, tilt, psi), which equal SPIDER's (phi, theta, psi).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from emsh.errors import DataFormatError, UsageError
from emsh.io._atomic import atomic_open
from emsh.io._base import read_raw
from emsh.table import Table

__all__ = ["LEGACY_TO_LABEL", "read_sel", "write_sel", "read_xmipp_doc", "write_xmipp_doc",
           "format_xmipp_doc_line"]

#: Xmipp 2 ``Headerinfo`` column names -> Xmipp 3 metadata labels.
LEGACY_TO_LABEL = {
    "rot": "angleRot", "tilt": "angleTilt", "psi": "anglePsi",
    "Xoff": "shiftX", "Yoff": "shiftY", "Zoff": "shiftZ",
    "Ref": "ref", "Refno": "ref", "Flip": "flip", "Mirror": "flip",
    "Wedge": "missingRegionNumber", "Pmax/sumP": "pMax", "LL": "logLikelihood",
    "maxCC": "maxCC", "Corr": "maxCC", "Weight": "weight", "w_robust": "wRobust",
    "scale": "scale", "bgmean": "bgMean", "sigma": "sigmaNoise", "KSprob": "KSprob",
    "Z-score": "zScore",
}
_LABEL_TO_LEGACY = {
    "angleRot": "rot", "angleTilt": "tilt", "anglePsi": "psi", "shiftX": "Xoff",
    "shiftY": "Yoff", "shiftZ": "Zoff", "ref": "Ref", "flip": "Flip",
    "missingRegionNumber": "Wedge", "pMax": "Pmax/sumP", "logLikelihood": "LL",
    "maxCC": "maxCC", "weight": "Weight", "wRobust": "w_robust", "scale": "scale",
    "bgMean": "bgmean", "sigmaNoise": "sigma", "KSprob": "KSprob", "zScore": "Z-score",
}
_HEADERINFO = re.compile(r"Headerinfo\s+columns\s*:(.*)$", re.IGNORECASE)
_COLUMN = re.compile(r"\s*([^,()]+?)\s*\(\s*(\d+)\s*\)")
_INT = re.compile(r"[+-]?\d+\Z")


def _text_lines(path) -> list[str]:
    p = Path(path)
    raw = read_raw(p, "Xmipp text file")
    if raw.strip() == b"":
        raise DataFormatError(p, "empty file")
    if b"\x00" in raw:
        raise DataFormatError(p, "binary data; not an Xmipp text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return [ln.rstrip("\r") for ln in text.split("\n")]


def read_sel(path: str | os.PathLike) -> Table:
    """Read an Xmipp 2 selection file into a Table with ``image`` (str), ``enabled`` (int).

    ``enabled`` keeps the label as written: >= 0 active, < 0 discarded.
    """
    images, labels = [], []
    for n, line in enumerate(_text_lines(path), 1):
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        parts = s.split()
        if len(parts) < 2 or not _INT.match(parts[1]):
            raise DataFormatError(path, f"line {n}: expected 'image label', got {s[:60]!r}")
        images.append(parts[0])
        labels.append(int(parts[1]))
    return Table({"image": np.array(images, dtype=str), "enabled": np.array(labels, np.int64)},
                 name=Path(path).stem)


def write_sel(path, images, enabled=None, *, overwrite: bool = False) -> None:
    """Write a selection file, ``name label`` per line.

    Args:
        images: a Table with ``image`` (and optionally ``enabled``), or a list of names.
        enabled: labels (1 active, -1 discarded); default all 1, or the table's column.
    """
    if isinstance(images, Table):
        enabled = images["enabled"] if enabled is None and "enabled" in images else enabled
        images = images["image"]
    names = [str(x) for x in images]
    flags = np.ones(len(names), np.int64) if enabled is None else np.asarray(enabled)
    if len(flags) != len(names):
        raise UsageError(f"{len(names)} images but {len(flags)} labels")
    for name in names:
        if not name or any(c.isspace() for c in name):
            raise UsageError(f"image name {name!r} cannot be written in a .sel file")
    with atomic_open(path, "w", overwrite=overwrite, encoding="utf-8", newline="\n") as fh:
        fh.writelines(f"{nm} {int(f)}\n" for nm, f in zip(names, flags))


def _legacy_columns(spec: str) -> dict[int, str]:
    cols = {}
    for name, idx in _COLUMN.findall(spec):
        cols[int(idx)] = LEGACY_TO_LABEL.get(name, re.sub(r"\W+", "_", name).strip("_") or "col")
    return cols


def read_xmipp_doc(path: str | os.PathLike) -> Table:
    """Read an Xmipp 2 document file into a Table (``image`` + one column per register).

    Columns are named from the ``Headerinfo`` comment (Xmipp 3 labels) where it names
    them, ``colN`` otherwise. ``image`` is the text of the last comment before each data
    line ('' when there is none). Lines shorter than the longest are zero-padded.

    Raises:
        DataFormatError: a data line that is not ``key count values``, or one with fewer
            values than its count says.
    """
    names: dict[int, str] = {}
    images, rows = [], []
    pending = ""
    for n, line in enumerate(_text_lines(path), 1):
        s = line.strip()
        if not s:
            continue
        if s[0] in ";#":
            body = s[1:].strip()
            m = _HEADERINFO.search(body)
            if m:
                names.update(_legacy_columns(m.group(1)))
            else:
                pending = body
            continue
        toks = s.replace(",", " ").split()
        if len(toks) < 2 or not (_INT.match(toks[0]) and _INT.match(toks[1])):
            raise DataFormatError(path, f"line {n}: expected 'key count values...', got {s[:60]!r}")
        count = int(toks[1])
        try:
            vals = [float(t) for t in toks[2:2 + count]]
        except ValueError:
            bad = next(t for t in toks[2:2 + count] if not _is_float(t))
            raise DataFormatError(path, f"line {n}: {bad!r} is not a number") from None
        if len(vals) < count:
            raise DataFormatError(path, f"line {n}: count says {count} values, line holds "
                                        f"{len(vals)}")
        images.append(pending)
        rows.append(vals)
        pending = ""
    width = max((len(r) for r in rows), default=0)
    data = np.zeros((len(rows), width))
    for i, r in enumerate(rows):
        data[i, : len(r)] = r
    cols: dict[str, np.ndarray] = {"image": np.array(images, dtype=str)}
    for j in range(width):
        label = names.get(j + 1, f"col{j + 1}")
        while label in cols:
            label += "_"
        cols[label] = data[:, j]
    return Table(cols, name=Path(path).stem)


def _is_float(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def format_xmipp_doc_line(key: int, values) -> str:
    """A data line as Xmipp 2 writes it: ``'%5d %-2d'`` then ``' % 10.5f'`` per value."""
    vals = np.atleast_1d(np.asarray(values, dtype=np.float64))
    return f"{int(key):5d} {vals.size:<2d}" + "".join(f" {v: 10.5f}" for v in vals)


def write_xmipp_doc(path, table: Table, *, columns=None, overwrite: bool = False) -> None:
    """Write a Table as an Xmipp 2 document file (keys renumbered 1..n, as Xmipp does).

    Args:
        table: must hold the numeric columns to write; ``image`` (if present) is
            written as the comment line before each data line.
        columns: numeric columns to write, in order; default every numeric column
            except ``enabled``.
    """
    if columns is None:
        columns = [c for c in table.columns
                   if c not in ("image", "enabled") and table[c].dtype.kind in "biuf"]
    if not columns:
        raise UsageError("no numeric columns to write in the Xmipp doc file")
    data = np.stack([np.asarray(table[c], dtype=np.float64) for c in columns], axis=1)
    legacy = [_LABEL_TO_LEGACY.get(c, c) for c in columns]
    head = " ; Headerinfo columns: " + ", ".join(f"{c} ({i})" for i, c in enumerate(legacy, 1))
    images = table["image"] if "image" in table else None
    lines = [head]
    for i in range(len(table)):
        if images is not None:
            lines.append(f" ; {images[i]}")
        lines.append(format_xmipp_doc_line(i + 1, data[i]))
    with atomic_open(path, "w", overwrite=overwrite, encoding="utf-8", newline="\n") as fh:
        fh.writelines(ln + "\n" for ln in lines)
