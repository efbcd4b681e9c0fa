"""Implementations of the doc-file operations declared in :mod:`emsh.ops.docs`.

Formatting, reading, sorting and look-ups are those of :mod:`emsh.io.docfile` and
:mod:`emsh.io.docops`; this module parses the operation line, keeps the per-session state
(open ``SD`` files, the ``UD`` file, in-core docs) and moves values between doc files and
registers. Doc values are single precision, as in SPIDER: registers set from a doc hold
the float32 value.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emsh.errors import EmshError, OperationError, UsageError
from emsh.io.docfile import DocFile, DocWriter, read_doc
from emsh.io.docops import find_line, ud_next_order

STATE_KEY = "emsh.ops.docs"
_REGISTER = re.compile(r"\[([^\[\]]+)\]\Z")
_BARE_REG = re.compile(r"\[([^\[\]{}]+)\]")
_OPERATOR_END = ("+", "-", "*", "/", "(")
_OPERATOR_START = ("+", "*", "/", ")")


# ----------------------------------------------------------------------------- state
@dataclass
class _UdFile:
    """The file open for ``UD``/``UD S``: its doc, the ``UD S`` position and disk stamp."""

    path: str
    name: str
    doc: DocFile
    stamp: tuple[int, int]
    pos: int = 0


@dataclass
class _InCore:
    """A doc held in memory by ``UD IC``/``UD NEXT``/``UD FIND``."""

    name: str
    doc: DocFile
    order: list = field(default_factory=list)
    pos: int = 0


class DocState:
    """Per-session doc-file state (one per session, via ``ctx.shared_state``)."""

    def __init__(self):
        self.writers: dict[str, DocWriter] = {}
        self.ud: _UdFile | None = None
        self.incore: dict[str, _InCore] = {}

    def close(self) -> None:
        """Close every file open for ``SD`` and forget the read state (end of a session)."""
        for w in self.writers.values():
            w.close()
        self.writers.clear()
        self.ud = None
        self.incore.clear()


def _state(ctx) -> DocState:
    return ctx.shared_state(STATE_KEY, DocState)


# ----------------------------------------------------------------------------- parsing
def _split_depth0(text: str, seps: str) -> list[str]:
    out, buf, depth = [], [], 0
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if depth == 0 and ch in seps:
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    out.append("".join(buf))
    return out


def parse_items(inline: str) -> list[str]:
    """Items of an ``SD``/``UD`` operation line: split at depth 0 on commas, and on blanks
    where each blank-separated piece is a whole operand (``12 [a] [b]``); a blank inside an
    expression (``[k] + 1``) does not split."""
    items = []
    for piece in _split_depth0(inline, ","):
        piece = piece.strip()
        if not piece:
            continue
        subs = [s for s in _split_depth0(piece, " \t") if s]
        whole = all(not s.endswith(_OPERATOR_END) for s in subs) and \
            all(not s.startswith(_OPERATOR_START) for s in subs[1:])
        items.extend(subs if whole else [piece])
    return items


def _register_name(ctx, item: str) -> str:
    m = _REGISTER.match(item.strip())
    if not m:
        raise OperationError(f"expected a register variable such as [x], got {item!r}",
                             code=ctx.op.code)
    return m.group(1)


def _key(ctx, item: str) -> int:
    """The key of an SD/UD line: the expression's value truncated, as SPIDER's INT."""
    value = float(ctx.session.evaluate(item))
    if not np.isfinite(value):
        raise OperationError(f"key {item} = {value} is not a number", code=ctx.op.code)
    key = int(value)
    if key == 0:
        raise OperationError(f"invalid key 0 (from {item!r}); keys are >= 1, or < 0 for "
                             "comment keys", code=ctx.op.code)
    return key


def _no_inline(ctx, inline: str) -> None:
    if inline and inline.strip():
        raise OperationError(f"unexpected text after the operation: {inline.strip()!r}",
                             code=ctx.op.code)


def _doc_name(ctx, name) -> tuple[str, str]:
    """(name with the data extension, absolute path used to identify the file)."""
    if name is None:
        raise OperationError("a document file name is needed", code=ctx.op.code)
    text = os.fspath(name).strip()
    if not text or text == "*":
        raise OperationError("a document file name is needed", code=ctx.op.code)
    ext = getattr(ctx.session, "data_ext", "") or ""
    if ext and not Path(text).suffix:
        text = f"{text}.{ext}"
    return text, os.path.abspath(text)


def _read(ctx, name: str) -> DocFile:
    try:
        return read_doc(name)
    except EmshError as exc:
        raise OperationError(str(exc), code=ctx.op.code) from None


def _info(ctx, doc: DocFile) -> None:
    ctx.log(f"  Doc file has:{doc.n_cols}  registers and:{doc.n_lines} keys,  "
            f"Highest key in use:{doc.max_key}")


def _set_registers(ctx, names: list[str], values) -> None:
    """Set registers from single-precision doc values (fewer values: the rest keep theirs)."""
    vals = np.asarray(values, dtype=np.float32)
    for name, v in zip(names, vals.tolist()):
        ctx.session.set_register(name, float(v))


# ----------------------------------------------------------------------------- SD
def _upper_outside_brackets(text: str) -> str:
    out, depth = [], 0
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
        out.append(ch if depth else ch.upper())
    return "".join(out)


def _string_variable(ctx, name: str) -> str | None:
    """Text of string variable ``[name]``; None for a register (a number) or an unknown name."""
    try:
        ctx.session.get_register(name)
        return None
    except (EmshError, LookupError, ValueError, TypeError):
        pass
    try:
        return str(ctx.session.get_string(name))
    except (EmshError, LookupError):
        return None


def _substitute_comment(ctx, text: str) -> str:
    """``SD //`` substitution: ``{...}`` groups through the session's substitution, a bare
    ``[name]`` by its string variable when there is one, else kept as text (SPIDER does
    not put register values into comments)."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "{":
            j, depth = i, 0
            while j < len(text):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    break
                j += 1
            out.append(ctx.session.substitute(text[i:j + 1]).strip())   # no Fortran width blanks
            i = j + 1
            continue
        m = _BARE_REG.match(text, i) if ch == "[" else None
        if m:
            value = _string_variable(ctx, m.group(1))
            out.append(m.group(0) if value is None else value)
            i = m.end()
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _writer(ctx, state: DocState, doc) -> DocWriter:
    name, path = _doc_name(ctx, doc)
    if state.ud is not None and state.ud.path == path:
        raise OperationError(f"{name} is open for reading by UD; close it with 'UD E' "
                             "before writing to it", code=ctx.op.code)
    if path in state.incore:
        raise OperationError(f"{name} is held in memory by UD IC / UD NEXT / UD FIND; free "
                             "it with 'UD ICE', 'UD NEXT E' or 'UD FIND E' before writing to it",
                             code=ctx.op.code)
    w = state.writers.get(path)
    if w is not None and not os.path.exists(name):    # deleted (DE) while open: start anew
        w.close()
        w = None
    if w is None:
        if not os.path.exists(name):
            ctx.log(f"  OPENED NEW DOC FILE: {name}")
        w = DocWriter(name, project_ext=ctx.session.project_ext,
                      data_ext=ctx.session.data_ext)
        state.writers[path] = w
    return w


def sd(ctx, doc, inline):
    """``SD key,[r1],...`` / ``SD -k,...`` / ``SD /text`` / ``SD //text``."""
    text = (inline or "").strip()
    if not text:
        raise OperationError("nothing to save: write SD key,[r1],... or SD /comment",
                             code=ctx.op.code)
    if text.startswith("/"):
        comment = _upper_outside_brackets(text[1:])
        if comment.startswith("/"):
            comment = _substitute_comment(ctx, comment[1:]).strip()
        _writer(ctx, _state(ctx), doc).comment(comment)
        return None
    items = parse_items(text)
    key = _key(ctx, items[0])
    if len(items) < 2:
        raise OperationError(f"SD {items[0]} saves no registers; list them after the key",
                             code=ctx.op.code)
    values = [float(ctx.session.evaluate(it)) for it in items[1:]]
    try:
        _writer(ctx, _state(ctx), doc).write(key, values)
    except UsageError as exc:
        raise OperationError(str(exc), code=ctx.op.code) from None
    return None


def sd_end(ctx, doc, inline):
    """``SD E``: close the named doc file (a note in the log if it was not open)."""
    _no_inline(ctx, inline)
    name, path = _doc_name(ctx, doc)
    w = _state(ctx).writers.pop(path, None)
    if w is None:
        ctx.log(f"  DOCUMENT FILE NOT OPEN NOW: {name}")
    else:
        w.close()


def _release_writer(ctx, state: DocState, path: str, name: str) -> None:
    """A reader or a whole-file writer takes over a file SD still has open: close it."""
    w = state.writers.pop(path, None)
    if w is not None:
        w.close()
        ctx.log(f"  FILE ALREADY OPEN, HASN'T BEEN CLOSED (SD): {name}")


# ----------------------------------------------------------------------------- UD, UD S
def _stamp(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size


def _ud_file(ctx, doc) -> _UdFile:
    state = _state(ctx)
    name, path = _doc_name(ctx, doc)
    _release_writer(ctx, state, path, name)
    cur = state.ud
    if cur is not None and cur.path == path:
        try:
            stamp = _stamp(path)
        except OSError:
            raise OperationError(f"{name}: file not found (deleted while open?)",
                                 code=ctx.op.code) from None
        if stamp != cur.stamp:       # changed on disk: SPIDER reads the file itself
            cur.doc, cur.stamp = _read(ctx, name), stamp
        return cur
    d = _read(ctx, name)
    state.ud = _UdFile(path, name, d, _stamp(path))
    ctx.log(f"  OPENED EXISTING DOC FILE: {name}")
    if d.header is not None:
        ctx.log(f"  {d.header.text.strip()}")
    return state.ud


def _ud_get(ctx, doc, inline, sequential: bool):
    items = parse_items(inline or "")
    if not items:
        raise OperationError("give a key and registers: UD key,[v1],...", code=ctx.op.code)
    key = _key(ctx, items[0])
    names = [_register_name(ctx, it) for it in items[1:]]
    f = _ud_file(ctx, doc)
    try:
        if sequential and key > 0:
            i = f.pos if f.pos < f.doc.n_lines and f.doc.keys[f.pos] == key else \
                f.doc.next_line_with_key(key, f.pos)     # fast path: keys read in order
            f.pos = i + 1
            vals = f.doc.row(i)
        else:
            vals = f.doc.get(key)
            f.pos = 0
    except UsageError as exc:
        raise OperationError(f"key not found: {exc}", code=ctx.op.code) from None
    if len(names) > vals.size:
        ctx.log(f"  WARNING: key {key} of {f.name} holds {vals.size} registers; "
                f"{len(names) - vals.size} register(s) left unchanged")
    _set_registers(ctx, names, vals)


def ud(ctx, doc, inline):
    """``UD key,[v1],...``: registers from the last line with the key."""
    _ud_get(ctx, doc, inline, sequential=False)


def ud_s(ctx, doc, inline):
    """``UD S key,[v1],...``: registers from the next line with the key."""
    _ud_get(ctx, doc, inline, sequential=True)


def ud_end(ctx, inline):
    """``UD E``: close the file opened by ``UD``/``UD S``."""
    _no_inline(ctx, inline)
    _state(ctx).ud = None


def ud_n(ctx, doc, inline):
    """``UD N [maxkey],[ncols],[nlines]``."""
    names = [_register_name(ctx, it) for it in parse_items(inline or "")]
    if len(names) > 3:
        raise OperationError("UD N sets at most 3 registers: [maxkey],[ncols],[nlines]",
                             code=ctx.op.code)
    state = _state(ctx)
    name, path = _doc_name(ctx, doc)
    held = state.incore.get(path)
    if held is not None:
        d = held.doc
    else:
        _release_writer(ctx, state, path, name)
        d = _read(ctx, name)
        ctx.log(f"  OPENED EXISTING DOC FILE: {name}")
    _info(ctx, d)
    for reg, v in zip(names, (d.max_key, d.n_cols, d.n_lines)):
        ctx.session.set_register(reg, float(v))


# ----------------------------------------------------------------------------- in core
def _incore(ctx, doc) -> _InCore:
    state = _state(ctx)
    name, path = _doc_name(ctx, doc)
    held = state.incore.get(path)
    if held is None:
        _release_writer(ctx, state, path, name)
        d = _read(ctx, name)
        held = _InCore(name, d, ud_next_order(d))
        state.incore[path] = held
        ctx.log(f"  OPENED EXISTING DOC FILE: {name}")
        _info(ctx, d)
    return held


def _padded(doc: DocFile, regs) -> np.ndarray:
    out = np.zeros(doc.n_cols)
    out[: len(regs)] = regs
    return out


def ud_ic(ctx, doc, inline):
    """``UD IC key,[v1],...``: registers of a key from the in-core doc."""
    items = parse_items(inline or "")
    if not items:
        raise OperationError("give a key and registers: UD IC key,[v1],...", code=ctx.op.code)
    key = _key(ctx, items[0])
    if key < 0:
        raise OperationError("use UD to read comment keys", code=ctx.op.code)
    names = [_register_name(ctx, it) for it in items[1:]]
    held = _incore(ctx, doc)
    if len(names) > held.doc.n_cols:
        raise OperationError(f"{len(names)} registers requested, {held.name} holds "
                             f"{held.doc.n_cols}", code=ctx.op.code)
    try:
        regs = held.doc.get(key)
    except UsageError as exc:
        raise OperationError(f"key not found: {exc}", code=ctx.op.code) from None
    _set_registers(ctx, names, _padded(held.doc, regs))


def free_incore(ctx, doc, inline):
    """``UD ICE`` / ``UD NEXT E`` / ``UD FIND E``: free an in-core doc (one shared store)."""
    _no_inline(ctx, inline)
    state = _state(ctx)
    name, path = _doc_name(ctx, doc)
    if state.incore.pop(path, None) is None:
        ctx.log(f"  DOCUMENT FILE NOT IN-CORE: {name}")
    if state.incore:
        ctx.log("  DOCUMENT FILES LEFT IN-CORE: " + ", ".join(h.name for h in state.incore.values()))
    else:
        ctx.log("  NO DOCUMENT FILES LEFT IN-CORE")


def _key_and_targets(ctx, inline) -> tuple[str, list[str]]:
    names = [_register_name(ctx, it) for it in parse_items(inline or "")]
    if not names:
        raise OperationError("give the registers to set: [key],[v1],...", code=ctx.op.code)
    return names[0], names[1:]


def ud_next(ctx, doc, inline):
    """``UD NEXT [key],[v1],...``: the next key in ascending order; [key] = 0 at the end."""
    key_reg, names = _key_and_targets(ctx, inline)
    held = _incore(ctx, doc)
    if len(names) > held.doc.n_cols:
        raise OperationError(f"{len(names)} registers requested, {held.name} holds "
                             f"{held.doc.n_cols}", code=ctx.op.code)
    if held.pos >= len(held.order):
        held.pos = 0
        ctx.session.set_register(key_reg, 0.0)
        return
    key, regs = held.order[held.pos]
    held.pos += 1
    ctx.session.set_register(key_reg, float(key))
    _set_registers(ctx, names, _padded(held.doc, regs))


def ud_find(ctx, doc, inline, column, value):
    """``UD FIND [key],[v1],...`` with ``column, value``: first key (ascending) whose
    register ``column`` equals ``value``; [key] = 0 when none does."""
    key_reg, names = _key_and_targets(ctx, inline)
    held = _incore(ctx, doc)
    if len(names) > held.doc.n_cols:
        ctx.log(f"  NUMBER OF REGISTERS REQUESTED: {len(names)} SET TO NUMBER AVAILABLE "
                f"IN-CORE: {held.doc.n_cols}")
        names = names[: held.doc.n_cols]
    col = int(float(column) + 1.5) - 1          # SPIDER: ICOLWANT = COLWANT + 1.5
    if not 0 <= col <= held.doc.n_cols:
        raise OperationError(f"register column {col} not available in {held.name} "
                             f"(0..{held.doc.n_cols})", code=ctx.op.code)
    rest = held.order[held.pos:]
    held.pos = 0
    sub = held.doc if len(rest) == len(held.order) else \
        DocFile([k for k, _ in rest], [r for _, r in rest])
    key, regs = find_line(sub, col, value) if col <= sub.n_cols else (0, None)
    ctx.session.set_register(key_reg, float(key))
    if key:
        _set_registers(ctx, names, _padded(held.doc, regs))
