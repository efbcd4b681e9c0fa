"""RELION STAR files: a small, dependency-free reader and writer.

The syntax read is the STAR subset that RELION (3.1 and later) and Xmipp 3 write:

* ``data_NAME`` opens a block (``data_`` alone: the unnamed block ``""``);
* a block holds either one ``loop_`` (column labels ``_rlnName``, optionally followed by
  RELION's ``#n`` column number, then one row per line) or ``_name value`` pairs;
* ``#`` at the start of a token opens a comment that runs to the end of the line; blank
  lines are ignored;
* values are whitespace-separated tokens or strings in ``"`` or ``'`` quotes; a quote only
  closes when followed by whitespace or the end of the line, so ``"it's"`` is one value.

A loop block becomes an :class:`emsh.table.Table` (named after the block), a key/value block
a ``dict``. Columns whose every value is an integer become int64, numeric ones float64,
all others (and any column with a quoted value) str. Column and key names lose their
leading underscore: ``_rlnAngleRot`` is column ``rlnAngleRot``.

The writer emits what RELION reads: ``# version 30001`` before each block, ``_rlnX #i``
labels, right-aligned numeric and left-aligned text columns, floats in the shortest form
that reads back to the same float64, strings quoted when they hold spaces or would
otherwise be misread. :mod:`emsh.io.xmipp` uses the same parser and writer.
"""

from __future__ import annotations

import os
import re
from itertools import repeat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emsh.errors import DataFormatError, UsageError
from emsh.io._atomic import atomic_open
from emsh.io._base import read_raw
from emsh.table import Table

__all__ = [
    "read_star", "write_star", "read_particles", "split_image_name", "join_image_name",
    "RELION_VERSION_LINE",
]

RELION_VERSION_LINE = "# version 30001"
_RESERVED = ("data_", "loop_", "save_", "global_", "stop_")
_NEEDS_QUOTES = re.compile(r"\s|^[_#$'\";]|^(?:data|loop|save|global|stop)_", re.IGNORECASE)
_SPECIAL_START = frozenset("_dDlLsSgG;")  # rows starting so take the careful path
_BAD_NAME = re.compile(r"[\s'\"#]")


@dataclass
class StarBlock:
    """One parsed ``data_`` block, values still as text (used by the STAR and Xmipp readers)."""

    name: str
    line: int
    is_loop: bool = False
    pairs: dict[str, tuple[str, bool]] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    quoted: set[int] = field(default_factory=set)


def _tokens(line: str, path, lineno: int) -> tuple[list[str], set[int]]:
    """Split one line into values; also return the positions of quoted values."""
    if '"' not in line and "'" not in line and "#" not in line:
        return line.split(), set()
    out: list[str] = []
    quoted: set[int] = set()
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c.isspace():
            i += 1
        elif c == "#":
            break
        elif c in "'\"":
            j = i + 1
            while True:
                k = line.find(c, j)
                if k < 0:
                    raise DataFormatError(path, f"line {lineno}: unterminated {c} quote")
                if k + 1 == n or line[k + 1].isspace():
                    break
                j = k + 1
            quoted.add(len(out))
            out.append(line[i + 1:k])
            i = k + 1
        else:
            j = i
            while j < n and not line[j].isspace():
                j += 1
            out.append(line[i:j])
            i = j
    return out, quoted


def parse_text(text: str, path) -> list[StarBlock]:
    """Parse STAR text into blocks; every syntax error names ``path`` and the line.

    Raises:
        DataFormatError: empty text, no ``data_`` block, a row with the wrong number of
            values, duplicate blocks/columns/keys, an unterminated quote, or constructs
            outside the subset described in the module docstring.
    """
    if not text.strip():
        raise DataFormatError(path, "empty file; a STAR file holds one or more data_ blocks")
    blocks: list[StarBlock] = []
    cur: StarBlock | None = None
    in_header = False  # just after loop_, reading column labels
    fast_rows, ncol = None, 0  # the current loop's rows, once its first row is read

    def fail(lineno, message):
        raise DataFormatError(path, f"line {lineno}: {message}")

    for lineno, line in enumerate(text.splitlines(), 1):
        if fast_rows is not None and '"' not in line and "'" not in line and "#" not in line:
            toks = line.split()  # the common case: one more plain row of the loop
            if len(toks) == ncol and toks[0][0] not in _SPECIAL_START:
                fast_rows.append(toks)
                continue
        if line.startswith(";"):
            fail(lineno, "multi-line ';' text fields are not supported")
        toks, quoted = _tokens(line, path, lineno)
        if not toks:
            continue
        first = toks[0]
        bare = 0 not in quoted
        low = first[:7].lower() if bare else ""
        if low.startswith("data_"):
            if len(toks) > 1:
                fail(lineno, f"unexpected {toks[1]!r} after {first}")
            if any(b.name == first[5:] for b in blocks):
                fail(lineno, f"second block named {first}")
            cur = StarBlock(first[5:], lineno)
            blocks.append(cur)
            in_header, fast_rows = False, None
            continue
        if cur is None:
            fail(lineno, f"{first!r} before the first data_ block; no data_ block here, "
                 "so this is not a STAR file")
        if low.startswith(_RESERVED[1:]):
            if not low.startswith("loop_") or len(first) > 5:
                fail(lineno, f"{first} (STAR save frames and global blocks) is not supported")
            if len(toks) > 1:
                fail(lineno, f"unexpected {toks[1]!r} after loop_")
            if cur.is_loop or cur.pairs:
                fail(lineno, f"data_{cur.name} already has data; emsh reads one loop_ or one "
                     "list of _name value pairs per block")
            cur.is_loop, in_header = True, True
            continue
        if bare and first.startswith("_"):
            name = first[1:]
            if in_header:
                if len(toks) > 1:
                    fail(lineno, f"expected one column label, found {' '.join(toks)!r}")
                if not name:
                    fail(lineno, "empty column label '_'")
                if name in cur.columns:
                    fail(lineno, f"duplicate column _{name} in data_{cur.name}")
                cur.columns.append(name)
                continue
            if cur.is_loop:
                fail(lineno, f"_{name} after the rows of the loop in data_{cur.name}; "
                     "emsh reads one loop_ or one list of _name value pairs per block")
            if len(toks) != 2:
                fail(lineno, f"expected '_name value', found {len(toks)} fields")
            if name in cur.pairs:
                fail(lineno, f"duplicate key _{name} in data_{cur.name}")
            cur.pairs[name] = (toks[1], 1 in quoted)
            continue
        if not cur.is_loop:
            fail(lineno, f"value {first!r} outside a loop_ (expected data_, loop_ or "
                 "'_name value')")
        if in_header and not cur.columns:
            fail(lineno, f"loop_ in data_{cur.name} has no column labels")
        in_header = False
        if len(toks) != len(cur.columns):
            fail(lineno, f"loop row has {len(toks)} fields but data_{cur.name} has "
                 f"{len(cur.columns)} columns")
        cur.rows.append(toks)
        if quoted:
            cur.quoted |= quoted
        fast_rows, ncol = cur.rows, len(cur.columns)
    if not blocks:
        raise DataFormatError(path, "no data_ block; not a STAR file")
    for b in blocks:
        if b.is_loop and not b.columns:
            raise DataFormatError(path, f"line {b.line}: loop_ in data_{b.name} has no "
                                  "column labels")
    return blocks


def _column(values, quoted: bool) -> np.ndarray:
    """int64 when every value is an integer, float64 when every one is a number, else str."""
    if not quoted and values:
        for kind in (np.int64, np.float64):
            try:
                arr = np.array(values, dtype=kind)
            except (ValueError, OverflowError):
                continue
            if "_" not in "".join(values):  # Python's int()/float() accept 1_000
                return arr
            break
    return np.array(values, dtype=str)


def _scalar(token: str, quoted: bool):
    value = _column([token], quoted)
    return value[0].item()


def blocks_to_dict(blocks: list[StarBlock]) -> dict[str, Table | dict]:
    """Typed values: a Table per loop block, a dict per key/value block."""
    out: dict[str, Table | dict] = {}
    for b in blocks:
        if b.is_loop:
            cols = list(zip(*b.rows)) if b.rows else [()] * len(b.columns)
            out[b.name] = Table({c: _column(v, i in b.quoted)
                                 for i, (c, v) in enumerate(zip(b.columns, cols))}, name=b.name)
        else:
            out[b.name] = {k: _scalar(v, q) for k, (v, q) in b.pairs.items()}
    return out


def read_text(path: str | os.PathLike) -> str:
    """The text of a metadata file, with clear errors for missing, binary or non-UTF-8 files."""
    p = Path(path)
    raw = read_raw(p, "STAR file")
    if b"\0" in raw:
        raise DataFormatError(p, "holds binary data, not STAR text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataFormatError(p, f"not UTF-8 text (bad byte at offset {err.start})") from None


def read_star(path: str | os.PathLike) -> dict[str, Table | dict]:
    """Read every block of a STAR file.

    Returns:
        Block name (without ``data_``) -> :class:`~emsh.table.Table` for a loop block or
        ``dict`` of Python scalars for a key/value block, in file order.

    Raises:
        DataFormatError: naming the file and line of the first problem.
    """
    return blocks_to_dict(parse_text(read_text(path), Path(path)))


def _name(name, what: str) -> str:
    name = str(name)
    name = name[1:] if name.startswith("_") else name
    if not name or _BAD_NAME.search(name):
        raise UsageError(f"{what} name {name!r} must be non-empty, without spaces, quotes or #")
    return name


def _looks_numeric(values: list[str]) -> bool:
    try:
        np.array(values, dtype=str).astype(np.float64)
    except ValueError:
        return False
    return True


def _quote(s: str, force: bool, where: str) -> str:
    if "\n" in s or "\r" in s:
        raise UsageError(f"{where}: value {s!r} holds a line break, which STAR cannot store")
    if not (force or s == "" or _NEEDS_QUOTES.search(s)):
        return s
    for q in '"', "'":
        if not re.search(re.escape(q) + r"\s", s):
            return q + s + q
    raise UsageError(f"{where}: value {s!r} holds both quote characters before spaces and "
                     "cannot be written to STAR")


def _cells(values: np.ndarray, where: str) -> tuple[list[str], bool]:
    """Text of each value and whether the column is numeric (right-aligned)."""
    kind = values.dtype.kind
    if kind in "biu":
        return list(map(str, values.tolist())), True
    if kind == "f":
        return list(map(repr, values.tolist())), True
    texts = [str(v) for v in values.tolist()]
    force = bool(texts) and _looks_numeric(texts)
    return [_quote(t, force, where) for t in texts], False


def _scalar_text(value, where: str) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    text = str(value)
    return _quote(text, _looks_numeric([text]), where)


def format_blocks(blocks: Mapping[str, Table | Mapping], *, path, block_preamble: list[str],
                  number_labels: bool, indent: str = "") -> list[str]:
    """Lines of STAR text for ``blocks`` (shared by the STAR and Xmipp writers)."""
    if not isinstance(blocks, Mapping) or not blocks:
        raise UsageError(f"{path}: expected a non-empty dict of block name -> Table or dict")
    lines: list[str] = []
    for raw_name, block in blocks.items():
        name = str(raw_name)
        if _BAD_NAME.search(name):
            raise UsageError(f"{path}: block name {name!r} must not hold spaces, quotes or #")
        lines += [*block_preamble, f"data_{name}", ""]
        if isinstance(block, Table):
            if not block.columns:
                raise UsageError(f"{path}: table for data_{name} has no columns")
            lines.append("loop_")
            cells = []
            for i, col in enumerate(block.columns, 1):
                label = f"_{_name(col, 'column')}"
                lines.append(f"{indent}{label} #{i}" if number_labels else f"{indent}{label}")
                texts, numeric = _cells(block[col], f"{path}: data_{name} column {col}")
                width = max(map(len, texts), default=0)
                pad = str.rjust if numeric else str.ljust
                cells.append(list(map(pad, texts, repeat(width))))
            lines += [indent + " ".join(row) for row in zip(*cells)]
        elif isinstance(block, Mapping):
            keys = [_name(k, "key") for k in block]
            width = max((len(k) for k in keys), default=0) + 1
            for key, value in zip(keys, block.values()):
                text = _scalar_text(value, f"{path}: data_{name} key {key}")
                lines.append(f"{indent}_{key.ljust(width)} {text}")
        else:
            raise UsageError(f"{path}: block data_{name} must be a Table (loop) or a dict "
                             f"(key/value pairs), got {type(block).__name__}")
        lines.append("")
    return lines


def write_lines(path: str | os.PathLike, lines: list[str], overwrite: bool) -> None:
    """Write text lines atomically (never replacing ``path`` unless ``overwrite``)."""
    with atomic_open(path, "w", overwrite=overwrite, encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(lines) + "\n")


def write_star(path: str | os.PathLike, blocks: Mapping[str, Table | Mapping], *,
               overwrite: bool = False) -> None:
    """Write blocks as a RELION 3.1 STAR file.

    Args:
        path: destination.
        blocks: block name (without ``data_``) -> Table (written as a ``loop_``) or dict
            (written as ``_name value`` lines), in the order given: RELION wants
            ``optics`` before ``particles``.
        overwrite: allow replacing an existing file.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        UsageError: a bad block/column name or a value STAR cannot hold.
    """
    lines = format_blocks(blocks, path=path, block_preamble=["", RELION_VERSION_LINE, ""],
                          number_labels=True)
    write_lines(path, lines, overwrite)


def _merge_optics(parts: Table, optics: Table, path) -> Table:
    key = "rlnOpticsGroup"
    for table, block in ((parts, "particles"), (optics, "optics")):
        if key not in table:
            raise DataFormatError(path, f"data_{block} has no _{key} column, so particles "
                                  "cannot be matched to optics groups")
    ids, wanted = optics[key], parts[key]
    if ids.dtype.kind != "i" or wanted.dtype.kind != "i":
        raise DataFormatError(path, f"_{key} must hold integers in data_optics and "
                              "data_particles")
    if len(np.unique(ids)) != len(ids):
        raise DataFormatError(path, f"data_optics lists an optics group twice in _{key}")
    order = np.argsort(ids, kind="stable")
    pos = np.clip(np.searchsorted(ids[order], wanted), 0, len(ids) - 1)
    found = ids[order][pos] == wanted
    if not found.all():
        missing = sorted(set(wanted[~found].tolist()))
        raise DataFormatError(path, f"particles refer to optics groups {missing} that "
                              "data_optics does not define")
    rows = order[pos]
    merged = parts.copy()
    for col in optics.columns:
        if col not in merged:
            merged[col] = optics[col][rows]
    return merged


def read_particles(path: str | os.PathLike, *, merge_optics: bool = False
                   ) -> tuple[Table, Table | None]:
    """Read a RELION particles file (3.1+ with ``data_optics``, or 3.0 with one loop).

    Args:
        path: the STAR file.
        merge_optics: add every optics column (voltage, Cs, pixel size, ...) to each particle
            by its ``rlnOpticsGroup``; columns the particle block already has win.

    Returns:
        ``(particles, optics)``; ``optics`` is None for a file without ``data_optics``.

    Raises:
        DataFormatError: no particle loop, or particles in undefined optics groups.
    """
    blocks = read_star(path)
    optics = blocks.get("optics")
    if optics is not None and not isinstance(optics, Table):
        raise DataFormatError(path, "data_optics must be a loop_ block")
    parts = blocks.get("particles")
    if parts is None:
        loops = [b for n, b in blocks.items() if isinstance(b, Table) and n != "optics"]
        if len(loops) != 1:
            raise DataFormatError(path, "no data_particles block and not exactly one other "
                                  f"loop block; blocks: {', '.join(blocks) or '(none)'}")
        parts = loops[0]
    if not isinstance(parts, Table):
        raise DataFormatError(path, "data_particles must be a loop_ block")
    if merge_optics and optics is not None:
        parts = _merge_optics(parts, optics, path)
    return parts, optics


def split_image_name(name: str) -> tuple[str, int | None]:
    """Split RELION's ``000012@stack.mrcs`` into ``("stack.mrcs", 12)`` (1-based member).

    A name without ``@`` is a whole file: ``("map.mrc", None)``.

    Raises:
        UsageError: a member number that is not a positive integer, or no file name.
    """
    text = str(name).strip()
    if "@" not in text:
        return text, None
    number, _, file = text.partition("@")
    if not number.isdigit() or int(number) < 1 or not file:
        raise UsageError(f"{name!r}: expected NNNNNN@stack.mrcs with a member number from 1")
    return file, int(number)


def join_image_name(path: str | os.PathLike, index: int, width: int = 6) -> str:
    """RELION's image name for member ``index`` (1-based) of ``path``: ``000012@path``."""
    if int(index) < 1:
        raise UsageError(f"stack members are numbered from 1, got {index}")
    return f"{int(index):0{width}d}@{os.fspath(path)}"
