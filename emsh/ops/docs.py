"""SPIDER document-file operations: the ``SD`` family, the ``UD`` family and ``DOC`` utilities.

The text after the operation code is the *inline* argument, parsed by the
implementation (``emsh.ops._docs_impl``): for ``SD``/``UD`` a key expression followed by
register variables (``SD 5,[def],[grp]``, ``UD [key],[a]``, ``SD -1,[pix]`` for a comment
key), for ``SD /text`` and ``SD //text`` a comment (``//`` substitutes ``{...}`` formats and
string variables but keeps a bare ``[register]`` as text; both are upper-cased outside
``[...]``), for ``UD NEXT``/``UD FIND``/``UD N`` only the registers to set.

State between calls lives in the session (:meth:`emsh.context.OpContext.shared_state`):
files open for ``SD`` (closed by ``SD E``), the file open for ``UD``/``UD S`` (closed by
``UD E`` or by a ``UD`` on another file) and the in-core docs of ``UD IC``, ``UD NEXT`` and
``UD FIND`` (freed by ``UD ICE``, ``UD NEXT E``, ``UD FIND E``; the three share one store).
``SD`` to a file that ``UD`` holds open or in core is refused with an error naming the
closing operation (SPIDER fails there too: "USE <SD IC> FOR INCORE DOC FILE", or it wrote
nothing); a ``UD`` on a file that ``SD`` holds open closes the ``SD`` file first (every line
is already on disk) and a later ``SD`` appends again.

The ``DOC`` utilities (``DOC SORT``, ``DOC SORT A``, ``DOC COMBINE``, ``DOC CREATE``,
``DOC STAT``) work on whole files and are implemented at the end of this module.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from emsh.errors import OperationError
from emsh.spec import Field, Operation, Prompt

_IMPL = "emsh.ops._docs_impl:"
_HERE = "emsh.ops.docs:"
_DOC_IN = Prompt("doc", "DOCUMENT FILE", kind="doc", help="doc file to read")
_DOC_OUT = Prompt("doc", "DOCUMENT FILE", kind="doc_out", help="doc file to append to")
_DOC_IC = Prompt("doc", "DOCUMENT FILE OR ARRAY NAME", kind="doc",
                 help="doc file held in memory until freed")
_SORT_PROMPTS = (
    Prompt("src", "INPUT DOCUMENT FILE", kind="doc"),
    Prompt("dst", "OUTPUT DOCUMENT FILE", kind="doc_out"),
    Prompt("column", "COLUMN TO BE SORTED BY (0 IS KEY) (<0 TO REVERSE)",
           fields=(Field("column", "int", help="register to sort by; 0 = key; < 0 descending"),)),
    Prompt("answer", "COMPRESS & RENUMBER KEYS? (Y/N), REMOVE DUPLICATES (Y/N)", kind="text",
           help="first letter N keeps the keys; a later Y keeps one line per value"),
)

OPERATIONS = [
    Operation(
        "SD", "Save Document: append registers or a comment to a doc file",
        prompts=(_DOC_OUT,), impl=_IMPL + "sd", inline="raw",
        help=("SD key,[r1],[r2],... appends the line 'key n r1 r2 ...' (I5,1X,I1 then 1PG13.6; "
              "the wide I10,1X,I4 layout past 9 values or key 999999). The key is an "
              "expression, truncated to a whole number; a negative key writes a comment key "
              "' ;' + I8 that only 'UD -k' reads. SD /text appends ' ; TEXT'; SD //text first "
              "substitutes {***[v]}, {%F7.2%[v]} and string variables ([reg] stays as text). "
              "Comments are upper-cased outside [...], as SPIDER does. The file is created "
              "with a header line, or appended to, and stays open until SD E."),
        see_also=("SD E", "UD", "DOC SORT")),
    Operation(
        "SD E", "Save Document - End: close a doc file opened by SD",
        prompts=(_DOC_OUT,), impl=_IMPL + "sd_end", inline="raw"),
    Operation(
        "UD", "Unsave Document: read the registers of a key (its last line)",
        prompts=(_DOC_IN,), impl=_IMPL + "ud", inline="raw", mpi="all",
        help=("UD key,[v1],[v2],... sets the registers from the LAST line with that key; "
              "a negative key reads a comment key. Registers past the line's count keep "
              "their values (a warning is logged). The file stays open until UD E."),
        see_also=("UD S", "UD IC", "UD E", "UD N")),
    Operation(
        "UD S", "Unsave Document - Sequential search: next line with the key",
        prompts=(_DOC_IN,), impl=_IMPL + "ud_s", inline="raw", mpi="all",
        help=("Like UD, but searches forward from the line after the previous UD S hit, "
              "wrapping once to the top (SPIDER's rewind)."),
        see_also=("UD", "UD E")),
    Operation(
        "UD E", "Unsave Document - End: close the doc file opened by UD",
        impl=_IMPL + "ud_end", inline="raw", mpi="all"),
    Operation(
        "UD N", "Unsave Document - get key Numbers: highest key, registers, lines",
        prompts=(_DOC_IN,), impl=_IMPL + "ud_n", inline="raw", mpi="all",
        help=("UD N [maxkey],[ncols],[nlines]: the highest key, the largest register "
              "count and the number of data lines (duplicated keys counted every time)."),
        see_also=("UD",)),
    Operation(
        "UD IC", "Unsave Document - In-core: read the registers of a key from memory",
        prompts=(_DOC_IC,), impl=_IMPL + "ud_ic", inline="raw", mpi="all",
        help=("UD IC key,[v1],... loads the whole doc into memory on first use (one row per "
              "key, the last line of a duplicated key). Comment keys need UD. Freed by UD ICE."),
        see_also=("UD ICE", "UD NEXT", "UD FIND")),
    Operation(
        "UD ICE", "Unsave Document - End use of an in-core doc file",
        prompts=(_DOC_IC,), impl=_IMPL + "free_incore", inline="raw", mpi="all"),
    Operation(
        "UD NEXT", "Unsave Document - Next line, in ascending key order",
        prompts=(_DOC_IC,), impl=_IMPL + "ud_next", inline="raw", mpi="all",
        help=("UD NEXT [key],[v1],...: the next key in ascending order (the last line of a "
              "duplicated key) and its registers; after the highest key it sets [key] to 0 "
              "(leaving the other registers) and starts again. Freed by UD NEXT E."),
        see_also=("UD NEXT E", "UD IC")),
    Operation(
        "UD NEXT E", "Unsave Document - End use of the UD NEXT in-core doc",
        prompts=(_DOC_IC,), impl=_IMPL + "free_incore", inline="raw", mpi="all",
        aliases=("UD NEXT END",)),
    Operation(
        "UD FIND", "Unsave Document - Find the first key whose register equals a value",
        prompts=(_DOC_IC, Prompt("wanted", "REGISTER COLUMN & VALUE WANTED", fields=(
            Field("column", "float", 1.0, help="register number (0 = key)"),
            Field("value", "float", 1.0, help="value wanted (compared in single precision)"),
        ))),
        impl=_IMPL + "ud_find", inline="raw", mpi="all",
        help=("UD FIND [key],[v1],...: scans keys in ascending order for the first whose "
              "register equals the value and sets [key] and the registers; [key] = 0 "
              "when none does. Freed by UD FIND E."),
        see_also=("UD FIND E", "UD NEXT")),
    Operation(
        "UD FIND E", "Unsave Document - End use of the UD FIND in-core doc",
        prompts=(_DOC_IC,), impl=_IMPL + "free_incore", inline="raw", mpi="all",
        aliases=("UD FIND END",)),
    Operation(
        "DOC SORT", "Sort a doc file by a register or the key",
        prompts=_SORT_PROMPTS, impl=_HERE + "doc_sort",
        help=("Reads the doc by key (the last line of a duplicated key wins; earlier data "
              "under that key are lost), pads short lines with zeros, sorts with SPIDER's "
              "quicksort and writes a new output (keys 1..n unless the answer starts with N). "
              "'Y,Y' also removes duplicates, keeping the first line per value."),
        see_also=("DOC SORT A", "SD")),
    Operation(
        "DOC SORT A", "Sort a doc file, appending to the output doc",
        prompts=_SORT_PROMPTS, impl=_HERE + "doc_sort_append",
        help="As DOC SORT, but appends to the output; a new output gets no header line."),
    Operation(
        "DOC COMBINE", "Combine a series of doc files into one, keys 1..n",
        prompts=(
            Prompt("template", "TEMPLATE FOR DOC. FILE SERIES", kind="template"),
            Prompt("numbers", "FILE NUMBERS OR SELECTION DOC. FILE NAME", kind="numbers"),
            Prompt("dst", "OUTPUT DOCUMENT FILE", kind="doc_out"),
        ),
        impl=_HERE + "doc_combine",
        help=("Concatenates the data lines of the files (each read by key, padded to its "
              "register count; comments and comment keys dropped) under keys 1, 2, ... "
              "The output is appended to when it exists, as in SPIDER."),
        aliases=("DOC COM",)),
    Operation(
        "DOC CREATE", "Create a doc file from a list of numbers",
        prompts=(
            Prompt("dst", "OUTPUT DOCUMENT FILE", kind="doc_out"),
            Prompt("column", "REGISTER TO BE FILLED (0 IS KEY)",
                   fields=(Field("column", "int", min=0, max=6),)),
            Prompt("numbers", "NUMBERS", kind="numbers"),
        ),
        impl=_HERE + "doc_create",
        help=("Column 0: one line per number with the number as key and register 1 = 1. "
              "Column c: keys 1..n with the number in register c, zeros before it. "
              "An existing output is replaced.")),
    Operation(
        "DOC STAT", "Statistics of a doc file column",
        prompts=(
            Prompt("doc", "INPUT DOCUMENT FILE", kind="doc"),
            Prompt("column", "COLUMN TO BE ANALYZED (0 IS KEY)",
                   fields=(Field("column", "int", min=0),)),
        ),
        impl=_HERE + "doc_stat", outputs=("count", "min", "max", "sum", "avg", "sig"),
        help=("Count, minimum, maximum, sum, average and standard deviation (N-1) of a "
              "register over the keys (last line of a duplicated key) whose line holds it; "
              "single-precision sums as SPIDER. Registers: DOC STAT [n],[min],[max],[sum],"
              "[avg],[sig].")),
]


# ----------------------------------------------------------------------------- DOC utilities
# The DOC operations work on whole files; they live here, the SD/UD families (which keep
# state between calls) in emsh.ops._docs_impl, whose helpers they share.
def _sort_flags(answer) -> tuple[bool, bool]:
    """SPIDER's reading of 'COMPRESS & RENUMBER KEYS? (Y/N), REMOVE DUPLICATES (Y/N)':
    renumber unless the answer starts with N; remove duplicates if a later Y follows."""
    text = str(answer or "").strip().upper()
    return (not text.startswith("N")), ("Y" in text[1:])


def _take_output(ctx, dst) -> str:
    """The output's name with extension; a file SD still has open for it is closed first."""
    from emsh.ops import _docs_impl as di

    name, path = di._doc_name(ctx, dst)
    di._release_writer(ctx, di._state(ctx), path, name)
    return name


def _sort(ctx, src, dst, column, answer, append: bool) -> None:
    from emsh.errors import UsageError
    from emsh.io.docops import sort_doc
    from emsh.ops import _docs_impl as di

    sname, _ = di._doc_name(ctx, src)
    d = di._read(ctx, sname)
    ctx.log(f"  OPENED EXISTING DOC FILE: {sname}")
    di._info(ctx, d)
    renumber, unique = _sort_flags(answer)
    try:
        out = sort_doc(d, int(column), renumber=renumber, remove_duplicates=unique)
    except UsageError as exc:
        raise OperationError(str(exc), code=ctx.op.code) from None
    dname = _take_output(ctx, dst)
    if append:                                  # SPIDER: no header line, even for a new file
        p = Path(dname)
        needs_nl = p.exists() and p.stat().st_size > 0 and not p.read_bytes().endswith(b"\n")
        with open(p, "a", encoding="utf-8", newline="\n") as fh:
            fh.write(("\n" if needs_nl else "") + "".join(ln + "\n" for ln in out.lines()))
    else:
        out.save(dname, overwrite=True, project_ext=ctx.session.project_ext,
                 data_ext=ctx.session.data_ext)
        ctx.log(f"  OPENED NEW DOC FILE: {dname}")


def doc_sort(ctx, src, dst, column, answer):
    """``DOC SORT``: sort by a register (0 = key, < 0 descending) into a new output."""
    _sort(ctx, src, dst, column, answer, append=False)


def doc_sort_append(ctx, src, dst, column, answer):
    """``DOC SORT A``: as ``DOC SORT``, appending to the output."""
    _sort(ctx, src, dst, column, answer, append=True)


def fill_template(template: str, number: int) -> str:
    """``sel***`` + 7 -> ``sel007``: the last run of asterisks takes the zero-padded number.

    Raises:
        UsageError: no asterisks, or the number has more digits than asterisks.
    """
    from emsh.errors import UsageError

    runs = list(re.finditer(r"\*+", template))
    if not runs:
        raise UsageError(f"template {template!r} has no asterisks")
    r = runs[-1]
    digits = f"{int(number):0{len(r.group(0))}d}"
    if len(digits) > len(r.group(0)):
        raise UsageError(f"number {number} does not fit the template {template!r}")
    return template[: r.start()] + digits + template[r.end():]


def doc_combine(ctx, template, numbers, dst):
    """``DOC COMBINE``: the data lines of a file series under keys 1..n (appends)."""
    from emsh.errors import EmshError
    from emsh.io.docfile import DocWriter
    from emsh.io.docops import combine_docs
    from emsh.ops import _docs_impl as di

    nums = [int(n) for n in (numbers or [])]
    if not nums:
        raise OperationError("no document files entered", code=ctx.op.code)
    ctx.log(f"  Number of document files to be combined: {len(nums)}")
    try:
        names = [di._doc_name(ctx, fill_template(os.fspath(template), n))[0] for n in nums]
        combined = combine_docs(names)
    except EmshError as exc:
        raise OperationError(str(exc), code=ctx.op.code) from None
    with DocWriter(_take_output(ctx, dst), project_ext=ctx.session.project_ext,
                   data_ext=ctx.session.data_ext) as w:
        for k, regs in zip(combined.keys.tolist(), combined.rows()):
            w.write(k, regs)


def doc_create(ctx, dst, column, numbers):
    """``DOC CREATE``: a doc from a number list (as keys, or in one register of keys 1..n)."""
    import numpy as np

    from emsh.errors import UsageError
    from emsh.io.docfile import write_doc

    nums = [int(n) for n in (numbers or [])]
    col = int(column)
    if col == 0:
        keys, rows = nums, np.ones((len(nums), 1))
    else:
        keys, rows = list(range(1, len(nums) + 1)), np.zeros((len(nums), col))
        rows[:, col - 1] = nums
    try:
        write_doc(_take_output(ctx, dst), keys, rows, overwrite=True,
                  project_ext=ctx.session.project_ext, data_ext=ctx.session.data_ext)
    except UsageError as exc:
        raise OperationError(str(exc), code=ctx.op.code) from None


def doc_stat(ctx, doc, column):
    """``DOC STAT``: (count, min, max, sum, avg, sig) of a register, in single precision."""
    import numpy as np

    from emsh.io.docops import ud_next_order
    from emsh.ops import _docs_impl as di

    name, _ = di._doc_name(ctx, doc)
    d = di._read(ctx, name)
    col = int(column)
    if col > d.n_cols:
        raise OperationError(f"column {col} not in 0..{d.n_cols} of {name}", code=ctx.op.code)
    order = ud_next_order(d)
    vals = [k for k, _ in order] if col == 0 else [r[col - 1] for _, r in order if r.size >= col]
    if not vals:
        raise OperationError(f"no values in column {col} of {name}", code=ctx.op.code)
    v = np.asarray(vals, dtype=np.float32)
    n = np.float32(v.size)
    vsum = np.cumsum(v, dtype=np.float32)[-1]           # SPIDER's running REAL sums
    vsq = np.cumsum(v * v, dtype=np.float32)[-1]
    avg = vsum / n
    sig = np.sqrt(max(np.float32(0), (vsq - vsum * vsum / n) / np.float32(v.size - 1))) \
        if v.size > 1 else np.float32(0)
    ctx.log(f"  COLUMN:{col:2d}  VALUES:{v.size:6d}  MIN:{float(v.min()):10.3G}  "
            f"MAX:{float(v.max()):10.3G}  SUM:{float(vsum):12.5G}  AVG:{float(avg):12.5G}  "
            f"SIG:{float(sig):12.5G}")
    return (float(v.size), float(v.min()), float(v.max()), float(vsum), float(avg), float(sig))
