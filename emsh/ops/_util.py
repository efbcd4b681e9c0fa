"""Shared helpers of the built-in operations: file answers to arrays and back.

A file answer arrives with variables substituted and the data extension appended.
The forms SPIDER users write, and what they mean here:

* ``img.dat``: an image or volume; ``stk.dat@3``: member 3 of a stack;
  ``stk.dat@``: the whole stack (its used members, in order);
* ``stk.dat@*`` / ``img***.dat``: a template, the asterisks replaced by the numbers of
  the operation's list prompt (zero-padded to the number of asterisks);
* ``_1``, ``_2@``, ``_2@5``: inline (in-memory) files and stacks, numbers 1-99 with one
  to three leading underscores. They live in the session's ``inline`` state (see
  :mod:`emsh.ops._inline`), are created by ``MS`` or by copying a stack to ``_n@``, and
  are freed by :func:`delete`. The data extension is never part of their name (a stray one
  is tolerated).

Operations call :func:`read_one` / :func:`read_batch` and :func:`write_one` /
:func:`write_batch`; whole stacks and templates come back as one ``(n, ...)`` batch so
the kernels see them at once. Outputs replace existing files, as in SPIDER; every disk
write is atomic (members of an existing stack are updated in place by ``emsh.io``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emsh.errors import DataFormatError, UsageError
from emsh.ops import _inline
from emsh.ops._inline import InlineBuffer

_INLINE = re.compile(r"^_{1,3}(?P<num>\d{1,2})(?:\.[A-Za-z0-9]+)?(?P<at>@(?P<idx>\d*))?$")
_STARS = re.compile(r"\*+")
_SPIDER_EXTRA = ("angles", "header", "stats", "proj_angles", "title")


@dataclass(frozen=True)
class FileRef:
    """A parsed file answer.

    Attributes:
        text: the answer as given.
        path: the disk path (without ``@...``); empty for inline files.
        inline: the inline buffer number, or None for disk files.
        index: 1-based member number, or None.
        at: the answer has ``@`` (a stack or a member of one).
        template: the answer has asterisks.
    """

    text: str
    path: str
    inline: int | None
    index: int | None
    at: bool
    template: bool

    @property
    def whole_stack(self) -> bool:
        """``stk@`` / ``_1@``: every member of a stack."""
        return self.at and self.index is None and not self.template

    @property
    def many(self) -> bool:
        """The answer names a whole stack or a template (several images)."""
        return self.whole_stack or self.template

    def member(self, n: int) -> str:
        """The template (or whole-stack answer) with member/file number ``n`` filled in."""
        if self.template:  # the last run of asterisks, zero-padded to its width
            run = list(_STARS.finditer(self.text))[-1]
            digits = str(int(n))
            if len(digits) > len(run.group()) and "@" not in self.text[:run.start()]:
                raise UsageError(f"{self.text}: number {digits} has more digits than "
                                 f"{len(run.group())} asterisks")
            return self.text[:run.start()] + digits.zfill(len(run.group())) + \
                self.text[run.end():]
        if self.whole_stack:
            return f"{self.text}{int(n)}"
        return self.text


def parse(answer: str) -> FileRef:
    """Parse a file answer into a :class:`FileRef`.

    Raises:
        UsageError: an empty answer, a member number 0, or an inline number outside 1..99.
    """
    text = str(answer).strip()
    if not text:
        raise UsageError("empty file name")
    tmpl = "*" in text
    m = _INLINE.match(text)
    if m:
        num = int(m["num"])
        if not 1 <= num <= 99:
            raise UsageError(f"{text}: inline files are numbered 1..99")
        idx = int(m["idx"]) if m["idx"] else None
        if idx == 0:
            raise UsageError(f"{text}: stack members are numbered from 1")
        return FileRef(text, "", num, idx, bool(m["at"]), False)
    if tmpl and "@" in text and _INLINE.match(_STARS.sub("1", text)):
        num = int(_INLINE.match(_STARS.sub("1", text))["num"])
        return FileRef(text, "", num, None, True, True)
    path, at, idx = text.partition("@")
    if at and idx and not tmpl:
        if not idx.isdigit() or int(idx) < 1:
            raise UsageError(f"{text}: stack members are numbered from 1")
        return FileRef(text, path, None, int(idx), True, False)
    return FileRef(text, path, None, None, bool(at), tmpl)


def is_inline(answer) -> bool:
    """True for ``_n``, ``_n@``, ``_n@m`` answers (never raises)."""
    try:
        return bool(answer) and parse(answer).inline is not None
    except UsageError:
        return False


def is_template(answer) -> bool:
    """True when the answer has asterisks (a list prompt follows it)."""
    return bool(answer) and "*" in str(answer)


def is_whole_stack(answer) -> bool:
    """True for ``stk@`` / ``_n@`` answers."""
    try:
        return bool(answer) and parse(answer).whole_stack
    except UsageError:
        return False


def answer_ndim(answer, session=None) -> int:
    """2 or 3: whether an existing input names images or volumes; 2 when it cannot tell.

    Used by ``when`` predicates that pick SPIDER's 2D or 3D prompt text. Never raises.

    Args:
        answer: a file answer.
        session: whose inline files ``_n`` answers name (``answers.session`` in a
            predicate, or an operation's ``ctx``); None: no inline file exists.
    """
    try:
        ref = parse(answer)
        if ref.inline is not None:
            shape = _inline.shape_in(session, ref.inline)
            return len(shape) if shape else 2
        if ref.template:
            return 2
        from emsh import io as eio

        path = ref.path if Path(ref.path).exists() else ""
        return eio.info(path).ndim if path else 2
    except Exception:  # noqa: BLE001 - a predicate must not fail
        return 2


# ----------------------------------------------------------------------------- inline files

def inline_store(ctx) -> dict[int, InlineBuffer]:
    """The session's inline buffers, by number (see :mod:`emsh.ops._inline`)."""
    return _inline.store(ctx)


def inline_exists(answer, session) -> bool:
    """True when ``answer`` names an inline file that exists in ``session``.

    For ``when`` predicates (SPIDER asks ``CP``'s capacity only for a new inline stack),
    which pass ``answers.session``; with no session (None, as in ``emsh check``) no inline
    file exists. Never raises.
    """
    try:
        num = parse(answer).inline
    except UsageError:
        return False
    return num is not None and num in _inline.session_buffers(session)


def make_inline(ctx, answer: str, shape, capacity: int) -> InlineBuffer:
    """Create inline stack ``_n@`` (``MS``); it must not exist yet."""
    return _inline.make(ctx, parse(answer), shape, capacity)


def inline_buffer(ctx, ref: FileRef) -> InlineBuffer:
    """The inline file a parsed answer names; UsageError when it does not exist."""
    return _inline.buffer(ctx, ref)


def delete(ctx, answer: str) -> str:
    """Delete a disk file or free an inline buffer (``DE``); a missing file is no error.

    Returns a line for the results log.
    """
    ref = parse(answer)
    if ref.inline is not None:
        _inline.free(ctx, ref)
        return f"DELETED INLINE FILE: _{ref.inline}"
    path = resolve(ctx, ref.path)
    if Path(path).is_file():
        os.remove(path)
        return f"DELETED: {path}"
    return f"NOT FOUND (NOTHING DELETED): {path}"


# ----------------------------------------------------------------------------- reading

def resolve(ctx, path: str) -> str:
    """``path``, or ``path.<data ext>`` when only that exists (answers typed without one)."""
    if path and not Path(path).exists() and not Path(path).suffix:
        ext = getattr(ctx.session, "data_ext", "") or ""
        alt = f"{path}.{ext}" if ext else path
        if Path(alt).exists():
            return alt
    return path


def disk_address(ctx, answer: str) -> str:
    """A disk answer with its path resolved (:func:`resolve`) and any ``@n`` kept."""
    path, at, idx = str(answer).partition("@")
    return resolve(ctx, path) + at + idx


def numbers(ctx, value) -> list[int]:
    """File numbers from a list answer: numbers, a ``1-3,7`` string or a selection doc.

    A selection doc gives the values of its first register, as SPIDER reads it.
    """
    if value is None:
        raise UsageError("a template needs a list of file numbers")
    if isinstance(value, (list, tuple, np.ndarray)):
        return [int(v) for v in np.asarray(value, dtype=np.float64).reshape(-1)]
    text = str(value).strip()
    if re.fullmatch(r"[\d\s,()\-.]+", text):
        out: list[int] = []
        for item in filter(None, re.split(r"[,\s()]+", text)):
            lo, _, hi = item.partition("-")
            a, b = int(float(lo)), int(float(hi)) if hi else int(float(lo))
            out.extend(range(a, b + 1) if b >= a else range(a, b - 1, -1))
        return out
    from emsh.io.docfile import read_doc

    doc = read_doc(resolve(ctx, text))
    return [int(v) for v in doc.registers(1)] if doc.n_lines else []


def values_of(ctx, text) -> list[float]:
    """Numbers on a free answer line (``1.5, [x]*2 -3``): split on commas/blanks, evaluated.

    Each item goes through the session's evaluator, so registers and expressions work as
    on any SPIDER answer line. ``*`` or an empty line gives an empty list.
    """
    if text is None:
        return []
    if isinstance(text, (int, float, np.number)):
        return [float(text)]
    if isinstance(text, (list, tuple)):
        return [float(v) for v in text]
    line = str(text).strip()
    if line.startswith("(") and line.endswith(")"):
        line = line[1:-1]
    if line in ("", "*"):
        return []
    out = []
    for item in filter(None, re.split(r"[,\s]+", line)):
        try:
            out.append(float(item))
        except ValueError:
            out.append(float(ctx.session.evaluate(item)))
    return out


def literal_values(text) -> list[float] | None:
    """The numbers of an answer line when all are plain literals, else None (no session)."""
    try:
        line = str(text).strip().strip("()")
        return [float(v) for v in filter(None, re.split(r"[,\s]+", line))]
    except (TypeError, ValueError):
        return None


def used_members(path: str) -> list[int]:
    """Numbers of the written members of a stack file (all of them for MRC/HDF stacks)."""
    from emsh import io as eio

    inf = eio.info(path)
    if inf.format != "spider":
        return list(range(1, inf.n_images + 1))
    from emsh.io.spider import read_stack_headers

    h = read_stack_headers(path)
    if not inf.is_stack:
        return [1]
    return [int(i) + 1 for i in np.flatnonzero(h[:, 26] != 0)]


def read_one(ctx, answer: str) -> np.ndarray:
    """One image or volume (a file, a member or an inline file) as float32."""
    ref = parse(answer)
    if ref.many:
        raise UsageError(f"{answer}: expected one image or volume, not a stack or template")
    if ref.inline is not None:
        return _inline.read_members(ctx, ref, [ref.index or 1])[0]
    from emsh import io as eio

    path = resolve(ctx, ref.path)
    if ref.index is None and eio.info(path).is_stack:
        raise UsageError(f"{answer}: is a stack; give a member (file@n) or the whole "
                         "stack (file@)")
    return eio.read(path, index=ref.index)


def read_batch(ctx, answer: str, nums=None) -> tuple[np.ndarray, list[int]]:
    """Every image an answer names, as one float32 batch ``(n, *shape)``, and their numbers.

    A single image/volume or member gives a batch of one (its number: the member number,
    or 1). ``stk@`` gives the used members; a template gives the listed numbers.
    """
    ref = parse(answer)
    if not ref.many:
        return read_one(ctx, answer)[None], [ref.index or 1]
    if ref.inline is not None:
        want = _inline.buffer(ctx, ref).members() if ref.whole_stack else numbers(ctx, nums)
        return _inline.read_members(ctx, ref, want), want
    from emsh import io as eio

    if ref.whole_stack or (ref.template and ref.at and "*" not in ref.path):
        path = resolve(ctx, ref.path)
        have = used_members(path)
        want = have if ref.whole_stack else numbers(ctx, nums)
        missing = sorted(set(want) - set(have))
        if missing:
            raise DataFormatError(path, f"stack member {missing[0]} does not exist or is unused")
        if not eio.info(path).is_stack:
            return eio.read(path)[None], want
        if want == list(range(1, eio.info(path).n_images + 1)):
            return eio.read(path), want
        if eio.format_of(path) == "spider":   # a subset: read only those members
            from emsh.io.spider import read as read_spider

            sub = np.asarray(read_spider(path, mmap=True)[[n - 1 for n in want]])
            return np.ascontiguousarray(sub.astype(sub.dtype.newbyteorder("="))), want
        return np.ascontiguousarray(eio.read(path)[[n - 1 for n in want]]), want
    want = numbers(ctx, nums)
    if not want:
        raise UsageError(f"{answer}: the list of file numbers is empty")
    return np.stack([read_one(ctx, ref.member(n)) for n in want]), want


def spider_header_words(ctx, answer: str, nums: list[int]) -> dict[int, np.ndarray]:
    """Header words worth carrying over to a copy (angles, offsets, pixel size, ...).

    Returns {word number: per-member values} for words non-zero in any of the members
    ``nums``; empty for inline, MRC and HDF inputs.
    """
    ref = parse(answer)
    if ref.inline is not None:
        return {}
    from emsh import io as eio
    from emsh.io.spider import read_header, read_stack_headers
    from emsh.io.spider_header import LAYOUT_WORDS, NOT_SETTABLE

    try:
        if ref.template and "*" in ref.path:
            rows = np.stack([read_header(disk_address(ctx, ref.member(n))).words for n in nums])
        else:
            path = resolve(ctx, ref.path)
            if eio.format_of(path) != "spider":
                return {}
            if eio.info(path).is_stack:
                rows = read_stack_headers(path)[[n - 1 for n in nums]]
            else:
                rows = read_header(path).words[None]
    except (DataFormatError, UsageError):
        return {}
    skip = set(LAYOUT_WORDS) | set(NOT_SETTABLE) | {4, 6, 7, 8, 9, 10, 11, 25}
    keep = [w for w in range(1, 212) if w not in skip and np.any(rows[:, w - 1] != 0)]
    return {w: rows[:, w - 1].astype(np.float64) for w in keep}


# ----------------------------------------------------------------------------- writing

def doc_options(ctx) -> dict:
    """Keyword arguments for :func:`emsh.io.docfile.write_doc` in this session: replace an
    older file, SPIDER's header line with the session's project and data extensions."""
    return dict(overwrite=True, project_ext=ctx.session.project_ext,
                data_ext=ctx.session.data_ext or None)


def write_session_doc(ctx, path, keys, rows, heading: str | None = None,
                      ncols: int | None = None) -> None:
    """Write a whole doc file from rank 0 (other ranks return at once), its folder created,
    an older file replaced. ``rows`` is ``(n, ncols)``; ``ncols`` shapes an empty table."""
    if not ctx.is_root:
        return
    from emsh.io.docfile import write_doc

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    rows = np.asarray(rows, dtype=np.float64)
    if ncols is not None:
        rows = rows.reshape(-1, ncols)
    write_doc(path, np.asarray(keys, dtype=np.int64), rows, heading=heading,
              **doc_options(ctx))


def _write_disk(path: str, data: np.ndarray, index=None, stack=False, **extra) -> None:
    from emsh import io as eio

    fmt = eio.format_of(path, for_writing=True)
    if fmt == "spider" and not (Path(path).exists() and eio.format_of(path) != "spider"):
        from emsh.io import spider

        spider.write(path, data, index=index, stack=stack, overwrite=True,
                     **{k: v for k, v in extra.items() if k in _SPIDER_EXTRA and v is not None})
        return
    addr = f"{path}@{index}" if index is not None else path
    eio.write(addr, data, stack=stack, overwrite=True)


def write_one(ctx, answer: str, data, **extra) -> None:
    """Write one image or volume to a file, a stack member or an inline file.

    ``extra``: SPIDER header options of :func:`emsh.io.spider.write` (``angles``,
    ``header``, ...); ignored by other formats and inline files.
    """
    ref = parse(answer)
    arr = np.ascontiguousarray(np.asarray(data, dtype=np.float32))
    if ref.many:
        raise UsageError(f"{answer}: expected one output image, not a stack or template")
    if ref.inline is not None:
        _inline.put(ctx, ref, arr[None], [ref.index or 1], None)
        return
    _write_disk(ref.path, arr, index=ref.index, **extra)


def write_batch(ctx, answer: str, data, nums: list[int], capacity: int | None = None,
                **extra) -> list[str]:
    """Write a batch ``(n, *shape)`` to a whole stack, a template or a single output.

    Members keep their numbers ``nums``, as SPIDER's copies do (a stack with an unused
    slot stays so): ``stk@`` becomes a new stack (an existing one is replaced), a
    template's members are written into a new or existing stack (or files ``img001``..),
    and a single-image answer accepts a batch of one. ``capacity`` sizes a new
    inline stack. Returns the names written, for the results log.
    """
    ref = parse(answer)
    arr = np.ascontiguousarray(np.asarray(data, dtype=np.float32))
    nums = [int(n) for n in nums]
    if not ref.many:
        if arr.shape[0] != 1:
            raise UsageError(f"{answer}: {arr.shape[0]} images cannot go to one output file; "
                             "give a stack (name@) or a template (name@*)")
        write_one(ctx, answer, arr[0], **_row(extra, 0))
        return [answer]
    if ref.inline is not None:
        _inline.put(ctx, ref, arr, nums, capacity)
        return [ref.member(n) for n in nums]
    path = ref.path
    contiguous = nums == list(range(1, len(nums) + 1))
    if ref.whole_stack and contiguous or (contiguous and "*" not in path
                                           and not Path(path).exists()):
        _write_disk(path, arr, stack=True, **extra)
        return [ref.member(n) for n in nums]
    if ref.whole_stack and Path(path).exists():
        os.remove(path)  # a whole-stack output replaces the old stack, gaps included
    names = []
    for i, n in enumerate(nums):
        name = ref.member(n)
        write_one(ctx, name, arr[i], **_row(extra, i))
        names.append(name)
    return names


def _row(extra: dict, i: int) -> dict:
    """Per-member header options of member ``i`` of a batch."""
    out = {}
    for k, v in extra.items():
        if k == "header" and v:
            out[k] = {w: np.asarray(val).reshape(-1)[i] if np.ndim(val) else val
                      for w, val in v.items()}
        elif k in ("angles", "proj_angles") and v is not None and np.ndim(v) == 2:
            out[k] = np.asarray(v)[i]
        else:
            out[k] = v
    return out


def image_series(ctx, answer: str, number_list=None) -> tuple[str | None, list[int]]:
    """``(template, numbers)`` naming every image an answer refers to.

    A template (``stk@***``, ``img***``) keeps its list (``number_list``: a list answer or a
    selection doc); a whole stack (``stk@``, ``_1@``) becomes ``stk@*`` over its used
    members; a single image or member gives ``(None, [index])``.
    """
    ref = parse(answer)
    if ref.template:
        return answer, numbers(ctx, number_list)
    if ref.whole_stack:
        if ref.inline is not None:
            return f"_{ref.inline}@*", inline_buffer(ctx, ref).members()
        path = resolve(ctx, ref.path)
        return f"{path}@*", used_members(path)
    return None, [ref.index or 1]
