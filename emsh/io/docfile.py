"""SPIDER document ("doc") files, read and written exactly as SPIDER does.

A doc file is plain text. SPIDER writes, in this order of appearance:

* a header line when it creates the file, ``' ;spi/dat   21-NOV-2026 AT 14:44:27   x.dat'``
  (``(' ;',A,'/',A,3X,A,' AT ',A,3X,A)``);
* data lines ``key count v1 .. vn``: ``(I5,1X,I1,n(1X,1PG13.6),1X)`` for keys up to
  99999, ``I6`` for keys up to 999999, and the wide ``(I10,1X,I4,...)`` layout for
  larger keys or more than 9 values;
* comment keys (``SD -k``): ``(' ;',I8,1X,I1,n(1X,1PG13.6))``, at most 9 values;
* text comments (``SD /text``): ``' ; '`` followed by the text, trailing blanks cut.

"Register n" is value n of a line; key and count are not registers. Reading is
free format (blanks or commas), falling back to the pre-2004 fixed layout
``(I6,I1,n F12.6)``; comment lines (character 2 is ``;`` or the line starts with
``;``), blank lines and lines with a count <= 0, a key 0 or a negative key are
skipped as SPIDER skips them. Values are stored as float64 but SPIDER keeps them in
single precision, so writing formats ``float32(value)`` and the doc operations
(:mod:`emsh.io.docops`: :func:`sort_doc`, :func:`find_line`, also importable from here)
compare in float32, as SPIDER does.

Look-ups follow SPIDER's in-core array: one row per key, the **last** line of a
duplicated key wins (``UD``, ``UD IC``, ``UD NEXT``, ``UD FIND``, ``DOC SORT``).

The text of single lines (``format_*`` and the parsing helpers) lives in
:mod:`emsh.io.docformat`; its public names are importable from here as well.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emsh.errors import DataFormatError, UsageError
from emsh.io._atomic import atomic_open
from emsh.io._base import read_raw
# the text layer: formatting and parsing of lines (public names re-exported here)
from emsh.io.docformat import (MAX_COMMENT_KEY, MAX_KEY, _MONTHS, _comment_key, _decode,
                               _int_key, _parse_data, format_comment_key, format_data_line,
                               format_header_line, format_text_comment, format_value)
from emsh.table import Table

__all__ = [
    "DocHeader", "DocFile", "DocWriter", "read_doc", "write_doc",
    "format_value", "format_data_line", "format_comment_key", "format_text_comment",
    "format_header_line", "sort_doc", "combine_docs", "ud_next_order", "find_line",
]

_HEADER = re.compile(r"^ ;(?P<prj>[^/\s]*)/(?P<dat>\S*)\s+(?P<date>\d\d-[A-Z]{3}-\d{4}) AT "
                     r"(?P<time>\d\d:\d\d:\d\d)\s+(?P<name>.*?)\s*$")


# ----------------------------------------------------------------------------- the header line
@dataclass(frozen=True)
class DocHeader:
    """The first line of a SPIDER doc file: project/data extensions, date, time, name."""

    project_ext: str
    data_ext: str
    date: str
    time: str
    name: str

    @property
    def when(self) -> datetime | None:
        """Date and time as a datetime, or None if they do not parse."""
        try:
            d, mon, y = self.date.split("-")
            hh, mm, ss = (int(t) for t in self.time.split(":"))
            return datetime(int(y), _MONTHS.index(mon) + 1, int(d), hh, mm, ss)
        except ValueError:
            return None

    @property
    def text(self) -> str:
        """The header line as SPIDER writes it."""
        return f" ;{self.project_ext}/{self.data_ext}   {self.date} AT {self.time}   {self.name}"


# ----------------------------------------------------------------------------- reading
def read_doc(path: str | os.PathLike) -> DocFile:
    """Read a SPIDER doc file (any layout SPIDER reads, AP SH's and AP REF's included).

    Raises:
        DataFormatError: file missing, empty or binary; a value that is not a number; a
            line with fewer values than its count says. The message gives the line.
    """
    p = Path(path)
    raw = read_raw(p, "document file")
    keys, nregs, rows, items, comments, ckeys, skipped = [], [], [], [], [], {}, []
    header = None
    for lineno, line in enumerate(_decode(p, raw), 1):
        if not line.strip():
            continue
        if line[1:2] == ";" or line.lstrip().startswith(";"):
            m = _HEADER.match(line)
            if m and not items:
                header = DocHeader(m["prj"], m["dat"], m["date"], m["time"], m["name"])
                items.append(("header", header.text))
                continue
            rest = line[line.index(";") + 1:]
            ck = _comment_key(rest)
            if ck is not None:
                ckeys[ck[0]] = ck[1]
                items.append(("ckey", ck[0], ck[1]))
            else:
                txt = rest[1:] if rest.startswith(" ") else rest
                comments.append(txt)
                items.append(("text", txt))
            continue
        key, count, vals = _parse_data(p, lineno, line)
        if vals is None:
            why = "count <= 0" if count <= 0 else ("key 0" if key == 0 else "negative key")
            skipped.append((lineno, why))
            continue
        items.append(("data", len(keys)))
        keys.append(key)
        nregs.append(count)
        rows.append(vals)
    doc = DocFile(keys, rows, nregs, comment_keys=ckeys, comments=comments, header=header,
                  path=str(p))
    doc._items = items
    doc.skipped = skipped
    return doc


# ----------------------------------------------------------------------------- the doc object
def _key_array(keys) -> np.ndarray:
    arr = np.asarray(keys)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64).reshape(-1)
    f = arr.astype(np.float64).reshape(-1)
    if not (np.isfinite(f) & (f == np.round(f))).all():
        raise UsageError("doc file keys must be whole numbers")
    return f.astype(np.int64)


def _pad(values, nregs) -> tuple[np.ndarray, np.ndarray]:
    """(values zero-padded to the longest line, counts) from a 2-D array or ragged rows."""
    if isinstance(values, np.ndarray) and values.ndim == 2:
        counts = np.full(values.shape[0], values.shape[1]) if nregs is None else nregs
        counts = np.asarray(counts, dtype=np.int64).reshape(-1)
        if counts.size and (counts.max() > values.shape[1] or counts.min() < 0):
            raise UsageError("a register count exceeds the values given")
        out = values[:, : counts.max(initial=0)].astype(np.float64)
        out[np.arange(out.shape[1])[None, :] >= counts[:, None]] = 0.0
        return out, counts
    rows = [np.atleast_1d(np.asarray(r, dtype=np.float64)) for r in values]
    counts = np.asarray([r.size for r in rows] if nregs is None else nregs, dtype=np.int64)
    out = np.zeros((len(rows), counts.max(initial=0)), dtype=np.float64)
    for i, (r, n) in enumerate(zip(rows, counts.tolist())):
        if n > r.size:
            raise UsageError(f"line {i + 1}: register count {n} but {r.size} values given")
        out[i, :n] = r[:n]
    return out, counts


class DocFile:
    """The lines of a doc file, in file order. Treat it as read-only: the doc operations
    return new DocFiles.

    Attributes:
        keys: int64 ``(n_lines,)``, the key of every data line (duplicates kept).
        values: float64 ``(n_lines, n_cols)``, registers, zero-padded past ``nregs``.
        nregs: int64 ``(n_lines,)``, the register count of every data line.
        comment_keys: ``{k: values}`` for comment-key lines (``SD -k``), last one wins.
        comments: text comments (the text after ``' ; '``), in file order.
        header: the creation header line, parsed, or None.
        path: the file read, or None.
        skipped: ``(line number, reason)`` of data lines SPIDER skips (key 0, count 0).
    """

    def __init__(self, keys, values, nregs=None, *, comment_keys=None, comments=None,
                 header: DocHeader | None = None, path: str | None = None):
        self.keys = _key_array(keys)
        self.values, self.nregs = _pad(values, nregs)
        if self.values.shape[0] != self.keys.size or self.nregs.size != self.keys.size:
            raise UsageError(f"{self.keys.size} keys but {self.values.shape[0]} rows of values")
        self.comment_keys = {abs(int(k)): np.asarray(v, dtype=np.float64)
                             for k, v in (comment_keys or {}).items()}
        self.comments = list(comments or [])
        self.header = header
        self.path = path
        self.skipped: list[tuple[int, str]] = []
        self._last: dict[int, int] | None = None
        self._items = ([("header", header.text)] if header else []) \
            + [("text", c) for c in self.comments] \
            + [("ckey", k, v) for k, v in self.comment_keys.items()] \
            + [("data", i) for i in range(len(self.keys))]

    def __repr__(self) -> str:
        return (f"DocFile({self.path!r}, lines={self.n_lines}, registers={self.n_cols}, "
                f"max_key={self.max_key})")

    @property
    def n_lines(self) -> int:
        """Data lines, duplicates included (``UD N``'s third value)."""
        return int(self.keys.size)

    @property
    def n_cols(self) -> int:
        """Largest register count of any line (``UD N``'s second value)."""
        return int(self.nregs.max()) if self.nregs.size else 0

    @property
    def max_key(self) -> int:
        """Highest key in use (``UD N``'s first value); 0 for a doc with no data."""
        return int(self.keys.max()) if self.keys.size else 0

    def _where(self) -> str:
        return self.path or "doc file"

    def row(self, i: int) -> np.ndarray:
        """Registers of data line ``i`` (0-based, file order), ``nregs[i]`` long."""
        return self.values[i, : self.nregs[i]].copy()

    def rows(self) -> list[np.ndarray]:
        """Registers of every data line, each as long as its own count."""
        return [self.row(i) for i in range(self.n_lines)]

    def incore(self) -> tuple[np.ndarray, np.ndarray]:
        """SPIDER's in-core doc: the ascending unique keys and each one's **last** line's
        registers, ``(keys (k,), values (k, n_cols))``."""
        uk, last = _incore(self)
        return uk, self.values[last]

    def get(self, key: int) -> np.ndarray:
        """Registers of ``key``: its **last** line, as ``UD``; a negative key reads comment key.

        Raises:
            UsageError: when the key is not in the file.
        """
        k = _int_key(key)
        if k < 0:
            if -k not in self.comment_keys:
                raise UsageError(f"{self._where()}: comment key {k} not found")
            return self.comment_keys[-k].copy()
        if self._last is None:                  # key -> last line, built once (read-only doc)
            self._last = dict(zip(*(a.tolist() for a in _incore(self))))
        if k not in self._last:
            raise UsageError(f"{self._where()}: key {k} not found (keys run "
                             f"{self.keys.min() if self.keys.size else 0}..{self.max_key})")
        return self.row(self._last[k])

    def next_line_with_key(self, key: int, start: int = 0) -> int:
        """Index of the next data line holding ``key`` at or after ``start``, wrapping once
        to the top, as ``UD S`` reads sequentially. Raises UsageError if absent."""
        k = _int_key(key)
        order = np.r_[np.arange(start, self.n_lines), np.arange(0, min(start, self.n_lines))]
        hit = order[self.keys[order] == k] if order.size else order
        if hit.size == 0:
            raise UsageError(f"{self._where()}: key {k} not found")
        return int(hit[0])

    def registers(self, n: int) -> np.ndarray:
        """Register ``n`` (1-based) of every data line, zero where a line is shorter;
        ``n = 0`` gives the keys, as SPIDER's column numbering does."""
        if n == 0:
            return self.keys.astype(np.float64)
        if not 1 <= n <= self.n_cols:
            raise UsageError(f"{self._where()}: register {n} not in 1..{self.n_cols}")
        return self.values[:, n - 1].copy()

    def to_table(self) -> Table:
        """A Table with columns ``key, reg1..regN`` (short lines padded with zeros)."""
        cols = {"key": self.keys}
        for j in range(self.n_cols):
            cols[f"reg{j + 1}"] = self.values[:, j]
        return Table(cols, name=Path(self.path).stem if self.path else "")

    @classmethod
    def from_table(cls, table: Table) -> DocFile:
        """A DocFile from a Table with ``key`` and ``reg1..regN`` (optional ``nregs``)."""
        if "key" not in table:
            raise UsageError("a doc table needs a 'key' column")
        regs = sorted((int(m[1]), c) for c in table.columns if (m := re.fullmatch(r"reg(\d+)", c)))
        if [i for i, _ in regs] != list(range(1, len(regs) + 1)):
            raise UsageError("doc table register columns must be reg1..regN without gaps")
        vals = np.stack([np.asarray(table[c], dtype=np.float64) for _, c in regs], axis=1) \
            if regs else np.zeros((len(table), 0))
        nregs = table["nregs"] if "nregs" in table else None
        return cls(table["key"], vals, nregs, path=None)

    def lines(self, *, header: str | None = None) -> list[str]:
        """The file's lines as SPIDER would write them, in file order.

        Args:
            header: header line to use; None keeps the parsed one (or writes none).
        """
        out = [] if header is None else [header]
        for item in self._items:
            if item[0] == "header":
                if header is None:
                    out.append(item[1])
            elif item[0] == "text":
                out.append(format_text_comment(item[1]))
            elif item[0] == "ckey":
                out.append(format_comment_key(item[1], item[2]))
            else:
                i = item[1]
                out.append(format_data_line(self.keys[i], self.row(i)))
        return out

    def save(self, path, *, overwrite: bool = False, project_ext: str = "spi",
             data_ext: str | None = None, when: datetime | None = None) -> None:
        """Write the whole doc atomically under a fresh SPIDER header line."""
        head = format_header_line(project_ext, _data_ext(path, data_ext), os.fspath(path),
                                  when or datetime.now())
        _write_lines(path, self.lines(header=head), overwrite)


def _data_ext(path, data_ext):
    return data_ext if data_ext is not None else (Path(path).suffix[1:] or "dat")


def _write_lines(path, lines, overwrite):
    with atomic_open(path, "w", overwrite=overwrite, encoding="utf-8", newline="\n") as fh:
        fh.writelines(ln + "\n" for ln in lines)


def write_doc(path, keys, rows, *, comments=None, heading=None, comment_keys=None,
              overwrite: bool = False, project_ext: str = "spi", data_ext: str | None = None,
              when: datetime | None = None) -> None:
    """Write a whole doc file atomically: header, heading, comments, comment keys, data.

    Args:
        path: destination; its name (as given) goes into the header line.
        keys: one key (>= 1) per line.
        rows: a 2-D array (one row per key) or a sequence of 1-D sequences (ragged).
        comments: text comments, written after the heading.
        heading: a column-heading text comment written right after the header, e.g.
            ``'          PSI,         THETA,          PHI'`` as VO EA writes it.
        comment_keys: ``{k: values}`` written as ``SD -k`` lines.
        overwrite: replace an existing file (else OutputExistsError).
        project_ext, data_ext: the header's ``prj/dat``; data_ext defaults to the suffix.
        when: header date and time (default: now).
    """
    doc = DocFile(keys, rows)
    head = format_header_line(project_ext, _data_ext(path, data_ext), os.fspath(path),
                              when or datetime.now())
    lines = [head]
    if heading is not None:
        lines.append(format_text_comment(heading))
    lines += [format_text_comment(c) for c in (comments or [])]
    lines += [format_comment_key(k, v) for k, v in (comment_keys or {}).items()]
    lines += doc.lines()
    _write_lines(path, lines, overwrite)


class DocWriter:
    """Append lines to a doc file as SPIDER's ``SD`` does; ``close()`` is ``SD E``.

    The file is opened at the first write: created with a header line if it does not
    exist (or if ``overwrite``), otherwise appended to without a new header. Every line is
    flushed at once, so a reader sees whole lines.
    """

    def __init__(self, path, *, project_ext: str = "spi", data_ext: str | None = None,
                 overwrite: bool = False, when: datetime | None = None):
        self.path = Path(path)
        self._name = os.fspath(path)
        self._prj, self._dat = project_ext, _data_ext(path, data_ext)
        self._overwrite, self._when = overwrite, when
        self._fh = None

    def _open(self):
        if self._fh is not None:
            return self._fh
        new = self._overwrite or not self.path.exists()
        if not new:
            with open(self.path, "rb") as fh:
                head = fh.read(4096)
                if b"\x00" in head:
                    raise DataFormatError(self.path, "binary file; cannot append doc lines")
                fh.seek(0, os.SEEK_END)
                if fh.tell() > 0:
                    fh.seek(-1, os.SEEK_END)
                    needs_nl = fh.read(1) != b"\n"
                else:
                    needs_nl = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "w" if new else "a", encoding="utf-8", newline="\n")
        if new:
            self._put(format_header_line(self._prj, self._dat, self._name,
                                         self._when or datetime.now()))
        elif needs_nl:
            self._fh.write("\n")
        return self._fh

    def _put(self, line: str) -> None:
        self._fh.write(line + "\n")
        self._fh.flush()

    def write(self, key: int, values) -> None:
        """``SD key,v1,..``; a negative key writes a comment key (``SD -k``)."""
        k = _int_key(key)
        line = format_comment_key(k, values) if k < 0 else format_data_line(k, values)
        self._open()
        self._put(line)

    def comment(self, text: str, *, upper: bool = False) -> None:
        """``SD /text`` (pass ``upper=True`` for SPIDER's upper-casing)."""
        line = format_text_comment(text, upper=upper)
        self._open()
        self._put(line)

    def close(self) -> None:
        """``SD E``: close the file (writing nothing if nothing was written)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> DocWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ----------------------------------------------------------------------------- in-core view
def _incore(doc: DocFile) -> tuple[np.ndarray, np.ndarray]:
    """SPIDER's in-core view: ascending unique keys and, per key, its last line index."""
    uk, inv = np.unique(doc.keys, return_inverse=True)
    last = np.full(uk.size, -1, dtype=np.int64)
    np.maximum.at(last, inv.reshape(-1), np.arange(doc.n_lines))
    return uk, last


# DOC SORT, DOC COMBINE, UD NEXT and UD FIND live in emsh.io.docops, which imports this
# module. They stay importable from here (``from emsh.io.docfile import sort_doc``): the
# module __getattr__ below fetches them on first use, so neither module needs the other
# half-built at import time, whichever of the two is imported first.
_DOC_OPERATIONS = frozenset({"sort_doc", "combine_docs", "ud_next_order", "find_line",
                             "_singleton_order"})

if TYPE_CHECKING:
    from emsh.io.docops import combine_docs, find_line, sort_doc, ud_next_order


def __getattr__(name: str):
    if name in _DOC_OPERATIONS:
        from emsh.io import docops
        value = getattr(docops, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _DOC_OPERATIONS)
