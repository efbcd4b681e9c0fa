"""Xmipp 3 metadata files (``.xmd``, "XMIPP_STAR_1").

An ``.xmd`` file is STAR text whose first line is ``# XMIPP_STAR_1 *``. Its blocks
(``data_NAME``, addressed by Xmipp as ``NAME@file.xmd``) hold either a ``loop_`` with one
row per image or "row format" ``_label value`` lines (ml_tomo's log). Labels carry no
``rln`` prefix: ``_image``, ``_enabled``, ``_angleRot``, ``_angleTilt``, ``_anglePsi``,
``_shiftX``, ``_ref``, ``_logLikelihood``, ...; image names may be ``N@stack.stk``.

Parsing and writing use :mod:`emsh.io.star` (one parser for both formats). Columns keep
their Xmipp names; converting Xmipp Euler angles to SPIDER's is :mod:`emsh.geom.euler`'s job.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from emsh.errors import DataFormatError
from emsh.io.star import blocks_to_dict, format_blocks, parse_text, read_text, write_lines
from emsh.table import Table

__all__ = ["read_xmd", "write_xmd", "XMIPP_HEADER"]

XMIPP_HEADER = "# XMIPP_STAR_1 *"


def read_xmd(path: str | os.PathLike) -> dict[str, Table | dict]:
    """Read every block of an Xmipp 3 metadata file.

    Returns:
        Block name (``data_NAME`` without ``data_``) -> :class:`~emsh.table.Table` for a
        loop block or ``dict`` of Python scalars for a row-format block, in file order.

    Raises:
        DataFormatError: the first line is not ``# XMIPP_STAR_1 ...`` (for example an
            Xmipp 2 ``.sel``/``.doc`` file or a RELION STAR file), or any STAR syntax error
            (naming the line).
    """
    text = read_text(path)
    if not text.strip():
        raise DataFormatError(path, "empty file; an Xmipp metadata file starts with "
                              f"'{XMIPP_HEADER}'")
    first = text.lstrip("\n\r").split("\n", 1)[0].strip()
    if not first.startswith("# XMIPP_STAR_1"):
        raise DataFormatError(path, f"line 1 is {first[:40]!r}, not '{XMIPP_HEADER}'; not an "
                              "Xmipp 3 metadata file (read RELION files with read_star)")
    return blocks_to_dict(parse_text(text, Path(path)))


def write_xmd(path: str | os.PathLike, blocks: Mapping[str, Table | Mapping], *,
              overwrite: bool = False) -> None:
    """Write blocks as an Xmipp 3 metadata file.

    Args:
        path: destination, usually ``*.xmd``.
        blocks: block name -> Table (written as a ``loop_``) or dict (row format), in order.
        overwrite: allow replacing an existing file.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        UsageError: a bad block/column name or a value STAR cannot hold.
    """
    lines = [XMIPP_HEADER, "#"]
    lines += format_blocks(blocks, path=path, block_preamble=[], number_labels=False,
                           indent=" ")
    write_lines(path, lines, overwrite)
