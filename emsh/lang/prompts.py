"""Reading an operation's answers: one answer line per prompt, parsed by its kind.

:func:`answer_operation` asks each :class:`~emsh.spec.Prompt` of an operation in order
(skipping those whose ``when`` is false, repeating ``repeat`` prompts while their ``when``
holds and until ``*``) and turns each answer line into the implementation's keyword
arguments:

* file kinds: variables and templates substituted, the data extension appended when
  the name has none (``stk@3`` -> ``stk.dat@3``), ``*`` -> None where optional;
* ``values``: split at commas and blanks, each value an expression, missing trailing
  values take their defaults, a trailing comma continues on the next line;
* ``numbers``: ``1-10,12`` or a selection doc file (its first register);
* ``choice``, ``yesno``, ``text``, ``formula`` and ``line`` (raw).

A *resolver* supplies what depends on the caller: variables (the interpreter at run
time; the checker, statically, where values are UNKNOWN), forwarding of ``?question?``
answers, the results log and located errors.
"""

from __future__ import annotations

import re
from itertools import zip_longest
from typing import Any, Protocol

from emsh.errors import EmshError, ProcedureError
from emsh.lang.answers import FORWARD, UNKNOWN, AnswerLine, Question, Undecidable
from emsh.lang.ast import SourceRef
from emsh.lang.expressions import split_values, strip_parens
from emsh.lang.templates import with_data_ext
from emsh.spec import FILE_KINDS, Answers, Operation, Prompt, check_values, parse_yesno

__all__ = ["Resolver", "answer_operation", "parse_number_list", "forwarded_text"]


class Resolver(Protocol):
    """What :func:`answer_operation` needs from the interpreter (or the checker)."""

    data_ext: str
    #: the running session, given to ``when`` predicates (None for ``emsh check``)
    session: Any

    def substitute(self, text: str, mode: str, line: AnswerLine) -> str: ...
    def evaluate(self, expr, line: AnswerLine, col: int) -> float: ...
    def selection(self, path: str, line: AnswerLine) -> list[int]: ...
    def forward(self, question: str, line: AnswerLine) -> AnswerLine | None: ...
    def assign_string(self, name: str, value: str, line: AnswerLine) -> None: ...
    def log(self, text: str) -> None: ...
    def fail(self, ref: SourceRef, message: str) -> ProcedureError: ...
    def undecidable(self, prompt: Prompt, ref: SourceRef) -> None: ...


class _StaticView(Answers):
    """The answers as a ``when`` sees them; reading a value known only at run time (UNKNOWN,
    from ``emsh check``) raises :class:`Undecidable`."""

    __slots__ = ()

    def __getitem__(self, key):
        value = super().__getitem__(key)
        if value is UNKNOWN:
            raise Undecidable(key)
        return value


def answer_operation(op: Operation, source, resolver: Resolver, op_ref: SourceRef,
                     lines_out: list | None = None, registers=()) -> dict[str, Any]:
    """Read the answers of every prompt of ``op`` that applies; returns the keyword arguments.

    Args:
        op: the operation.
        source: where the answer lines come from.
        resolver: variables, data extension, forwarding, logging, error construction.
        op_ref: the operation line (for "the procedure ends before ..." errors).
        lines_out: if given, receives ``(prompt, AnswerLine)`` for every line read.

    ``when`` predicates see the answers so far as an :class:`~emsh.spec.Answers` whose
    ``session`` is ``resolver.session`` (None when the resolver has none).
    """
    session = getattr(resolver, "session", None)
    answers: dict[str, Any] = {}
    for p in op.prompts:
        if p.repeat:
            answers.update(_answer_repeat(op, p, answers, source, resolver, op_ref, lines_out,
                                          session, registers))
            continue
        try:
            asked = p.applies(_StaticView(answers, session, registers))
        except Undecidable:
            resolver.undecidable(p, op_ref)
            asked = True
        if not asked:
            answers.update(_defaults(p))
        else:
            value, line = _answer_one(op, p, source, resolver, op_ref)
            if lines_out is not None:
                lines_out.append((p, line))
            answers.update(value)
    return answers


_END = object()


def _answer_repeat(op, p: Prompt, answers: dict, source, resolver, op_ref,
                   lines_out: list | None, session=None, registers=()) -> dict[str, Any]:
    """The lines of a ``repeat`` prompt, packed into lists.

    Before each line the prompt's ``when`` is asked again, with the items read so far
    visible under the prompt's own name (a list, as the implementation will get it), so a
    prompt can stop by itself: after as many lines as an earlier answer asked for
    (``MO`` ``S``: NUMBER OF SINE WAVES), or after an item that closes the list (``MO 3``
    ``SPA``: a centre of 0,0,0, however written). The terminator (``*``) also ends it.
    Statically (``emsh check``) a ``when`` that reads a run-time value cannot be decided:
    the checker is told once, and lines are read while they look like answers.
    """
    items: list = []
    end = p.terminator or "*"
    told = False
    while True:
        view = dict(answers)
        view.update(_pack_repeat(p, items))
        try:
            more = p.applies(_StaticView(view, session, registers))
        except Undecidable:
            if not told:
                resolver.undecidable(p, op_ref)
                told = True
            more = _answer_follows(source, end) if items else True
        if not more:
            break
        value, line = _answer_one(op, p, source, resolver, op_ref, end_mark=end)
        if lines_out is not None:
            lines_out.append((p, line))
        if value is _END:
            break
        items.append(value)
    return _pack_repeat(p, items)


def _answer_follows(source, end: str) -> bool:
    """Whether the next line of ``source`` reads as an answer rather than a statement.

    Used only where a ``when`` cannot be decided statically. A source that cannot look
    ahead (the terminal, a list) is assumed to go on.
    """
    peek = getattr(source, "peek", None)
    if peek is None:
        return True
    text = peek()
    if text is None:
        return False
    if text.strip() == end:
        return True
    from emsh.lang.parser import looks_like_answer

    return looks_like_answer(text)


def _defaults(p: Prompt) -> dict[str, Any]:
    if p.kind == "values":
        return {f.name: (None if f.required else f.default) for f in p.fields}
    return {p.name: [] if p.repeat else p.default}


def _pack_repeat(p: Prompt, items: list) -> dict[str, Any]:
    if p.kind == "values":
        return {f.name: [item[f.name] for item in items] for f in p.fields}
    return {p.name: [item[p.name] for item in items]}


def _read(op, p, source, resolver, op_ref) -> AnswerLine:
    raw = p.kind == "line"
    line = source.next(Question(p.text, p), raw=raw)
    if line is None:
        raise resolver.fail(op_ref, f"{op.code} asks for {p.text.strip()!r}, but there are no "
                            "more lines to answer it")
    pending = []
    while not raw and line.text.lstrip().startswith("?") and not line.unknown:
        m = FORWARD.match(line.text)
        if not m:
            raise resolver.fail(line.ref, "a forwarded answer is written ?question? or "
                                "?question?[variable]")
        if m.group(2):
            pending.append((m.group(2), line))
        fwd = resolver.forward(m.group(1).strip() or p.text, line)
        if fwd is None:
            raise resolver.fail(line.ref, f"nothing answers ?{m.group(1)}?: no caller lines "
                                "follow the procedure call and no terminal is attached")
        line = fwd
    for name, at in pending:
        if line.unknown:
            resolver.assign_string(name, UNKNOWN, at)
        else:
            resolver.assign_string(name, forwarded_text(resolver, line), at)
    return line


def forwarded_text(resolver, line: AnswerLine) -> str:
    text = line.text.strip()
    try:
        return resolver.substitute(text, "file", line)
    except EmshError:
        return resolver.substitute(text, "text", line)


def _answer_one(op, p, source, resolver, op_ref, end_mark=None):
    while True:
        line = _read(op, p, source, resolver, op_ref)
        stripped = line.text.strip()
        if end_mark is not None and stripped == end_mark:
            resolver.log(f" .{p.text.strip()}: {stripped}")
            return _END, line
        try:
            if line.unknown:
                return _unknown_value(p), line
            if line.interactive and not stripped and p.kind != "values":
                value = {p.name: p.default}
            else:
                value = _parse(op, p, line, resolver, source)
        except EmshError as exc:
            if line.interactive:
                line.source.report(exc)
                continue
            if isinstance(exc, ProcedureError) and exc.ref is not None \
                    and exc.ref.file != "<expression>":
                raise
            raise resolver.fail(line.ref, f"{op.code}, {p.text.strip()}: "
                                f"{getattr(exc, 'reason', None) or exc}") from exc
        shown = value.get("_shown", stripped)
        value.pop("_shown", None)
        resolver.log(f" .{p.text.strip()}: {shown}")
        return value, line


def _unknown_value(p: Prompt) -> dict[str, Any]:
    if p.kind == "values":
        return {f.name: UNKNOWN for f in p.fields}
    return {p.name: UNKNOWN}


def _parse(op, p: Prompt, line: AnswerLine, resolver, source) -> dict[str, Any]:
    text = line.text
    stripped = text.strip()
    kind = p.kind
    if kind in FILE_KINDS:
        if stripped == "*":
            if p.optional or p.repeat:
                return {p.name: None}
            raise resolver.fail(line.ref, f"{op.code}, {p.text.strip()}: a file name is needed "
                                "here ('*' is accepted only where the file is optional)")
        name = with_data_ext(resolver.substitute(stripped, "file", line), resolver.data_ext)
        return {p.name: name, "_shown": name}
    if kind == "values":
        return _parse_values(op, p, line, resolver, source)
    if kind == "numbers":
        return {p.name: parse_number_list(line, resolver)}
    if kind == "line":
        return {p.name: text.strip()}
    if kind in ("text", "formula"):
        value = resolver.substitute(stripped, "text", line)
        return {p.name: value, "_shown": value}
    value = resolver.substitute(stripped, "text", line)
    if kind == "yesno":
        return {p.name: UNKNOWN if value is UNKNOWN else parse_yesno(_first_word(value))}
    # choice
    if getattr(value, "unresolved", False):
        return {p.name: UNKNOWN}
    answer = value.strip().upper()
    if answer not in p.choices and _first_word(answer) in p.choices:
        answer = _first_word(answer)
    if answer not in p.choices:
        raise resolver.fail(line.ref.at(line.ref.col), f"{op.code}, {p.text.strip()}: "
                            f"{value.strip()!r} is not one of {', '.join(p.choices)}")
    return {p.name: answer}


def _first_word(text: str) -> str:
    return re.split(r"[\s,]+", text.strip(), maxsplit=1)[0] if text.strip() else ""


def _parse_values(op, p: Prompt, line: AnswerLine, resolver, source) -> dict[str, Any]:
    from emsh.lang.parser import parse_expression

    segments = [line]
    while segments[-1].text.rstrip().endswith(","):
        more = (segments[-1].source or source).next(Question(p.text, p))
        if more is None:
            break
        segments.append(more)
    tokens = []
    for seg in segments:
        body, off = strip_parens(seg.text)
        tokens += [(tok, col + off, seg) for tok, col in split_values(body)]
    if len(tokens) > len(p.fields):
        names = ", ".join(f.name for f in p.fields)
        n = len(p.fields)
        raise resolver.fail(tokens[n][2].ref.at(tokens[n][1]),
                            f"{op.code}, {p.text.strip()}: {len(tokens)} values given, at most "
                            f"{n} expected ({names})")
    out: dict[str, Any] = {}
    for f, item in zip_longest(p.fields, tokens):
        tok, col, seg = item if item is not None else ("", line.ref.col, line)
        if tok == "":
            if f.required:
                raise resolver.fail(seg.ref.at(len(seg.text.rstrip()) + 1),
                                    f"{op.code}, {p.text.strip()}: no value for {f.name}"
                                    + (f" ({f.help})" if f.help else ""))
            out[f.name] = f.default
            continue
        if f.type in ("str", "yesno"):
            value = resolver.substitute(tok, "text", seg)
            if getattr(value, "unresolved", False):
                value = UNKNOWN
            elif f.type == "yesno" and value is not UNKNOWN:
                value = parse_yesno(value)
        else:
            try:
                expr = parse_expression(tok)
            except ProcedureError as exc:
                raise resolver.fail(seg.ref.at(col + exc.ref.col - 1),
                                    f"{op.code}, {p.text.strip()}: {exc.reason} (values are "
                                    "separated by commas or blanks, so an expression must not "
                                    "contain blanks)") from None
            value = resolver.evaluate(expr, seg, col)
        if value is not UNKNOWN:
            try:
                value = check_values(f, value)
            except EmshError as exc:
                raise resolver.fail(seg.ref.at(col), f"{op.code}, {p.text.strip()}: {exc}") \
                    from None
        out[f.name] = value
    if len(segments) > 1:
        out["_shown"] = " ".join(s.text.strip() for s in segments)
    return out


#: a number list never holds braces or a variable followed by a path ('[dir]/sel')
_PATH_LIKE = re.compile(r"\{|\][/\\][A-Za-z_]")


def parse_number_list(line: AnswerLine, resolver) -> list[int] | Any:
    """``1-10,12`` / ``(1-[n])`` -> numbers; any other answer names a selection doc file,
    whose first register gives the numbers."""
    from emsh.lang.parser import parse_expression

    raw = line.text.strip()
    expanded = resolver.substitute(raw, "text", line)
    if getattr(expanded, "unresolved", False) and (
            not re.match(r"^[\s(]*[-+0-9.\[(]", raw) or _PATH_LIKE.search(raw)):
        return UNKNOWN          # a selection doc named with variables: known at run time
    text = raw if expanded == raw or getattr(expanded, "unresolved", False) else str(expanded)
    body, off = strip_parens(text)
    if not re.match(r"^\s*[-+0-9.\[(]", body):
        path = with_data_ext(resolver.substitute(raw, "file", line), resolver.data_ext)
        return resolver.selection(path, line)
    base = len(line.text) - len(line.text.lstrip())
    numbers: list[int] = []
    unknown = False
    for tok, col in split_values(body):
        if not tok:
            continue
        cut = _range_dash(tok)
        parts = [(tok, col)] if cut is None else [(tok[:cut], col), (tok[cut + 1:], col + cut + 1)]
        values = []
        for part, pcol in parts:
            at = base + pcol + off
            try:
                expr = parse_expression(part)
            except ProcedureError as exc:
                raise resolver.fail(line.ref.at(at + exc.ref.col - 1),
                                    f"bad number list item {tok!r}: {exc.reason}") from None
            v = resolver.evaluate(expr, line, at)
            if v is UNKNOWN:
                unknown = True
                break
            values.append(int(v))
        if unknown:
            continue
        if len(values) == 1:
            numbers.append(values[0])
        else:
            lo, hi = values
            if hi < lo:
                raise resolver.fail(line.ref.at(base + col + off),
                                    f"range {lo}-{hi} runs backwards")
            if hi - lo > 10_000_000:
                raise resolver.fail(line.ref.at(base + col + off),
                                    f"range {lo}-{hi} is too long")
            numbers.extend(range(lo, hi + 1))
    return UNKNOWN if unknown else numbers


def _range_dash(tok: str) -> int | None:
    """Index of the '-' that separates a range ``a-b`` (outside brackets, not leading)."""
    depth = 0
    for i, ch in enumerate(tok):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "-" and depth == 0 and i > 0 and tok[i - 1] not in "eE*/+-(":
            return i
    return None

