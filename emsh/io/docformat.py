"""Text of SPIDER doc files: formatting lines exactly as SPIDER writes them, and parsing
the lines SPIDER reads.

The layouts (``SD`` data lines, comment keys, text comments, the header line, the
pre-2004 fixed layout) are described in :mod:`emsh.io.docfile`, which builds the doc
objects on these functions and re-exports the public ones.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

import numpy as np

from emsh.errors import DataFormatError, UsageError

__all__ = [
    "format_value", "format_data_line", "format_comment_key", "format_text_comment",
    "format_header_line", "MAX_KEY", "MAX_COMMENT_KEY",
]

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_INT = re.compile(r"[+-]?\d+\Z")
_EXP_NO_LETTER = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))([+-]\d+)\Z")
_SEP = re.compile(r"[\s,]+")
_BINARY = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
MAX_COMMENT_KEY = 9_999_999
MAX_KEY = 2**31 - 1


# ----------------------------------------------------------------------------- writing text
def format_value(x: float) -> str:
    """One value as Fortran ``1PG13.6`` of its float32, 13 characters (gfortran's text).

    Magnitudes that round to [0.1, 1e6) at 6 significant digits print as ``F9.d`` plus 4
    blanks with 6 significant digits (``'   0.750000    '`` without the separator);
    others as ``1PE13.6`` (``' 6.250000E-02'``); zero as ``'  0.00000    '``.
    """
    return _values_text([x])[1:]


def _g13(v: float) -> str:
    """:func:`format_value` of a Python float that already holds a float32 value."""
    if v == 0.0:
        return " -0.00000    " if math.copysign(1.0, v) < 0 else "  0.00000    "
    if not math.isfinite(v):
        return ("NaN" if v != v else "-Infinity" if v < 0 else "Infinity").rjust(13)
    exp10 = int(("%.5e" % v)[-3:])
    if -1 <= exp10 <= 5:
        return "%#9.*f    " % (5 - exp10, v)
    return "%13.6E" % v


def _values_text(values) -> str:
    v64 = np.atleast_1d(np.asarray(values, dtype=np.float64))
    with np.errstate(over="ignore"):
        v32 = v64.astype(np.float32)
    if (np.isinf(v32) & np.isfinite(v64)).any():
        raise UsageError(f"doc file value {v64[np.isinf(v32)][0]:g} is beyond single precision")
    return "".join([" " + _g13(v) for v in v32.tolist()])


def _int_key(key, what: str = "key") -> int:
    k = float(key)
    if not np.isfinite(k) or k != int(k):
        raise UsageError(f"doc file {what} must be a whole number, got {key!r}")
    return int(k)


def format_data_line(key: int, values) -> str:
    """A data line exactly as SPIDER's ``SD`` writes it (no newline; ends in one blank).

    Raises:
        UsageError: for key 0, a negative key (use :func:`format_comment_key`) or a key
            beyond a Fortran integer.
    """
    k = _int_key(key)
    vals = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if k <= 0:
        raise UsageError(f"doc file key must be >= 1 (negative keys are comment keys), got {k}")
    if k > MAX_KEY or vals.size > 9999:
        raise UsageError(f"doc file line too large: key {k}, {vals.size} values")
    if vals.size > 9 or k > 999_999:
        head = f"{k:10d} {vals.size:4d}"
    elif k <= 99_999:
        head = f"{k:5d} {vals.size:1d}"
    else:
        head = f"{k:6d} {vals.size:1d}"
    return head + _values_text(vals) + " "


def format_comment_key(key: int, values) -> str:
    """A comment-key line as ``SD -k`` writes it: ``' ;'``, key as I8, count, values.

    ``key`` may be given as -k or k. At most 9 values, key up to 9 999 999.
    """
    k = abs(_int_key(key, "comment key"))
    vals = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if k == 0 or k > MAX_COMMENT_KEY:
        raise UsageError(f"comment key must be in -9999999..-1, got {-k}")
    if not 1 <= vals.size <= 9:
        raise UsageError(f"a comment key holds 1 to 9 values, got {vals.size}")
    return f" ;{k:8d} {vals.size:1d}" + _values_text(vals)


def format_text_comment(text: str, *, upper: bool = False) -> str:
    """A text comment as ``SD /text`` writes it: ``' ; '`` + text without trailing blanks.

    Args:
        text: the comment; no line breaks.
        upper: upper-case ASCII letters, as ``SD /`` does with its text.
    """
    if "\n" in text or "\r" in text:
        raise UsageError("a doc file comment must be a single line")
    if upper:
        text = text.translate(_UPPER)
    return " ; " + text.rstrip()


def format_header_line(project_ext: str, data_ext: str, name: str, when: datetime) -> str:
    """The header SPIDER writes when it creates a doc file, e.g.
    ``' ;spi/dat   21-NOV-2026 AT 15:04:26   data_doc.dat'``."""
    return (f" ;{project_ext}/{data_ext}   {when.day:02d}-{_MONTHS[when.month - 1]}-{when.year:04d}"
            f" AT {when.hour:02d}:{when.minute:02d}:{when.second:02d}   {name}")


# ----------------------------------------------------------------------------- reading text
def _to_float(tok: str) -> float | None:
    """A Fortran list-directed real: also ``1.0D-4``, ``1.0-4``, ``3.``; None if not one."""
    if "_" in tok:
        return None
    t = tok.replace("D", "E").replace("d", "e")
    try:
        return float(t)
    except ValueError:
        m = _EXP_NO_LETTER.match(t)
        return float(f"{m.group(1)}e{m.group(2)}") if m else None


def _fixed_int(field: str) -> int | None:
    f = field.replace(" ", "")
    return int(f) if _INT.match(f) else (0 if f == "" else None)


def _fixed_values(line: str, count: int) -> list[float] | None:
    """Values of the pre-2004 layout ``(I6,I1,n F12.6)``; None when it does not fit."""
    out = []
    for i in range(count):
        f = line[7 + 12 * i: 19 + 12 * i].replace(" ", "")
        if not f:
            return None
        if "." not in f and _INT.match(f):
            out.append(int(f) * 1e-6)
            continue
        v = _to_float(f)
        if v is None:
            return None
        out.append(v)
    return out


def _comment_key(rest: str):
    toks = [t for t in _SEP.split(rest.strip()) if t]
    if len(toks) < 2 or not (_INT.match(toks[0]) and _INT.match(toks[1])):
        return None
    key, count = abs(int(toks[0])), int(toks[1])
    vals = [_to_float(t) for t in toks[2:2 + count]]
    if count <= 0 or len(vals) < count or None in vals or key == 0:
        return None
    return key, np.asarray(vals, dtype=np.float64)


def _parse_data(path, lineno: int, line: str):
    """(key, count, values) of a data line, or raise DataFormatError."""
    toks = [t for t in _SEP.split(line.strip()) if t]
    fixed = not (len(toks) >= 2 and _INT.match(toks[0]) and _INT.match(toks[1]))
    if fixed:
        key, count = _fixed_int(line[:6]), _fixed_int(line[6:7])
        if key is None or count is None or line[:7].strip() == "":
            raise DataFormatError(path, f"line {lineno}: expected 'key count values...', "
                                        f"got {line.strip()[:60]!r}")
    else:
        key, count = int(toks[0]), int(toks[1])
    if count <= 0 or key <= 0:
        return key, count, None
    if not fixed:
        vals = [_to_float(t) for t in toks[2:2 + count]]
        if len(vals) == count and None not in vals:
            return key, count, vals
    vals = _fixed_values(line, count)
    if vals is not None:
        return key, count, vals
    have = toks[2:2 + count]
    bad = [t for t in have if _to_float(t) is None]
    if bad:
        raise DataFormatError(path, f"line {lineno}: {bad[0]!r} is not a number")
    raise DataFormatError(path, f"line {lineno}: key {key} says {count} values but the line "
                                f"holds {len(have)}")


def _decode(path, raw: bytes) -> list[str]:
    if raw.strip() == b"":
        raise DataFormatError(path, "empty file; expected a SPIDER document file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    lines = text.split("\n")
    for i, line in enumerate(lines, 1):
        if _BINARY.search(line):
            raise DataFormatError(path, f"line {i}: binary data; not a text document file")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
