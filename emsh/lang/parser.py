"""Procedure text -> statements, with ``file:line:col`` errors and a caret.

A procedure is read line by line, as SPIDER reads it. Comments (``;`` or ``!`` to the
end of the line) are stripped and blank lines skipped. A line is a *statement* or an
*answer line*, and only the operation before it knows which: operations read their own
answers (see :mod:`emsh.lang.answers`). So this module offers

* :func:`parse_statement`: classify one line in SPIDER's order and parse it with the
  matching start rule of ``grammar.lark``;
* :class:`Procedure`: the lines of a file, their statements (parsed on first use) and
  the block structure (``DO``/``ENDDO``, ``IF``/``ELSEIF``/``ELSE``/``ENDIF``, labels),
  which is found once, up front, by looking at control words only, so a missing
  ``ENDDO`` is reported before anything runs.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedEOF, UnexpectedInput, UnexpectedToken

from emsh.errors import ProcedureError
from emsh.lang import ast
from emsh.lang.ast import SourceRef, procedure_error
from emsh.lang.blocks import control_word, is_complete, is_vm_line  # noqa: F401 - public here too

START_RULES = ("assignment", "echo", "call", "header", "registers", "control", "expr")

_ASSIGN = re.compile(r"^(GL[A-Za-z]*\s*)?\[[^\]]*\]\s*=(?!=)|^[xX][0-9]{1,3}\s*=(?!=)", re.I)
_FUNC_LINE = re.compile(r"^[A-Za-z]{3,4}\(")  # SQR(2), SQRT(2): no blank before (
_LEGACY_CALL = re.compile(r"^[A-Za-z][0-9]{2}$")
_CONTROL = re.compile(
    r"^(IF\s*\(|ELSE\b|ELSEIF\b|ENDIF\b|END\s*(DO|IF)?\s*$|ENDDO\b|DO\b|GOTO\b|GO\s+TO\b|"
    r"EXIT\s*$|CYCLE\s*$|RE\s*$|RETURN\s*$|EN(\s+D)?\s*$|LB[0-9]{1,3}\s*$)", re.I)
_HEADER = re.compile(r"^\(\s*(\[|\))")
_OPTION = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\S+)$")

_READABLE = {
    "VAR": "a [variable]", "LEGACYREG": "a register", "NUMBER": "a number", "FUNC": "a function",
    "STRING": "a 'quoted string'", "COMPARE": "a comparison (==, .EQ., ...)", "LPAR": "'('",
    "RPAR": "')'", "COMMA": "','", "EQUAL": "'='", "PLUS": "'+'", "MINUS": "'-'",
    "TIMES": "'*'", "DIVIDE": "'/'", "POW": "'**'", "THEN": "THEN", "LABEL": "a label LBn",
    "PROCNAME": "a procedure name", "$END": "the end of the line",
}


@lru_cache(maxsize=1)
def grammar() -> Lark:
    """The LALR parser of ``grammar.lark`` (built once per process)."""
    return Lark.open("grammar.lark", rel_to=__file__, parser="lalr", lexer="contextual",
                     start=list(START_RULES), propagate_positions=True, maybe_placeholders=True)


# ----------------------------------------------------------------------------- tree -> AST
def _name(tok: Token) -> str:
    text = str(tok)
    if text.startswith("["):
        return text[1:-1]
    return f"_{int(text[1:])}"  # legacy x11 -> [_11]


_CMP = {"EQ": "==", "NE": "/=", "GT": ">", "GE": ">=", "LT": "<", "LE": "<="}


@v_args(inline=True)
class _ToAst(Transformer):
    """Parse tree -> :mod:`emsh.lang.ast` nodes. Pure: no I/O, no registry."""

    def __init__(self, ref: SourceRef):
        super().__init__()
        self.ref = ref

    # expressions
    def number(self, tok):
        return ast.Num(float(tok), tok.column)

    def target(self, tok):
        return ast.Var(_name(tok), tok.column)

    def variable(self, var):
        return var

    def neg(self, sign, operand):
        return ast.Neg(operand, sign.column)

    def pos(self, sign, operand):
        return operand

    def binary(self, left, op, right):
        return ast.BinOp(str(op), left, right, op.column)

    def function(self, tok, arg):
        name = str(tok).upper()
        return ast.Func("SQR" if name == "SQRT" else name, arg, tok.column)

    def cond(self, left, cmp, right):
        text = re.sub(r"[\s.]", "", str(cmp)).upper()
        return ast.Condition(left, _CMP.get(text, str(cmp)), right)

    # statements
    def _r(self, tok_or_node) -> SourceRef:
        col = getattr(tok_or_node, "column", None) or getattr(tok_or_node, "col", 1)
        return self.ref.at(col)

    def assignment(self, glob, target, value):
        if isinstance(value, Token):  # STRING
            value = str(value)[1:-1]
        col = glob.column if glob is not None else target.col
        return ast.Assign(self.ref.at(col), target.name, value, glob is not None)

    def string_value(self, tok):
        return tok

    def echo(self, expr):
        return ast.Echo(self.ref.at(expr.col), expr)

    def arguments(self, *exprs):
        return tuple(e for e in exprs if e is not None)

    def call(self, at, name, args):
        return ast.Call(self.ref.at(at.column), str(name), args or (), str(at) == "@@")

    def header(self, *names):
        return ast.Header(self.ref, tuple(_name(n) for n in names if n is not None))

    def registers(self, *targets):
        return tuple(t.name for t in targets if t is not None)

    def control(self, stmt):
        return stmt

    def if_then(self, tok, cond, _then):
        return ast.IfThen(self._r(tok), cond)

    def elseif(self, *items):
        cond = next(i for i in items if isinstance(i, ast.Condition))
        return ast.ElseIf(self._r(items[0]), cond)

    def else_(self, tok):
        return ast.Else(self._r(tok))

    def endif(self, *toks):
        return ast.EndIf(self._r(toks[0]))

    def inline_assign(self, target, expr):
        return ast.Assign(self.ref.at(target.col), target.name, expr, False)

    def if_inline(self, tok, cond, action):
        return ast.IfInline(self._r(tok), cond, action)

    def letter_index(self, tok):
        return ast.Var(str(tok), tok.column)

    def do(self, tok, label, index=None, lo=None, hi=None, inc=None):
        number = int(str(label)[2:]) if label is not None else None
        return ast.Do(self._r(tok), index.name if index is not None else None, lo, hi, inc, number)

    def enddo(self, *toks):
        return ast.EndDo(self._r(toks[0]))

    def label(self, tok):
        return ast.Label(self._r(tok), int(str(tok)[2:]))

    def goto(self, *toks):
        return ast.Goto(self._r(toks[0]), int(str(toks[-1])[2:]))

    def exit(self, tok):
        return ast.Exit(self._r(tok))

    def cycle(self, tok):
        return ast.Cycle(self._r(tok))

    def return_(self, tok):
        return ast.Return(self._r(tok))

    def end(self, tok, _flag):
        return ast.End(self._r(tok))


def _syntax_error(exc: UnexpectedInput, ref: SourceRef, text: str, what: str) -> ProcedureError:
    expected = {e for e in (getattr(exc, "expected", None) or ()) if not e.startswith("__")}
    at_end = isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    if isinstance(exc, UnexpectedEOF) or at_end:
        col = len(text.rstrip()) + 1
        msg = f"{what} ends too early"
    else:
        col = exc.column if isinstance(exc.column, int) and exc.column > 0 else 1
        tok = getattr(exc, "token", None)
        shown = str(tok) if tok is not None and tok.type in _READABLE and tok.type != "PROCNAME" \
            else (text[col - 1] if 0 < col <= len(text) else "?")
        msg = f"unexpected {shown!r} in {what}"
    if re.match(r"^\s*(IF|ELSE\s*IF)\b", text, re.I):
        expected -= {"COMMA", "$END"}
    if len(expected) > 6:
        expected -= {"PLUS", "MINUS", "TIMES", "DIVIDE", "POW", "COMPARE"}
    names = sorted({_READABLE.get(e, e) for e in expected})
    if names and len(names) <= 6:
        msg += "; expected " + " or ".join(names)
    before = text[:col - 1].rstrip()
    if before and before[-1] in "*/+-" and text[col - 1:col] in "-+":
        msg += " (two operators in a row: write 2*(-6), not 2*-6)"
    elif text[col - 1:col] == "=" and re.match(r"^\s*(IF|ELSE\s*IF)\b", text, re.I):
        msg += " (compare with == or .EQ.)"
    return procedure_error(ref.at(col), msg)


def parse_rule(text: str, rule: str, ref: SourceRef, what: str | None = None):
    """Parse ``text`` with start rule ``rule``; syntax errors become ProcedureError at ``ref``."""
    try:
        tree = grammar().parse(text, start=rule)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, ref, text, what or rule) from None
    return _ToAst(ref).transform(tree)


@lru_cache(maxsize=4096)
def _expression(text: str):
    return parse_rule(text, "expr", SourceRef("<expression>", 1, 1, text), "expression")


def parse_expression(text: str):
    """An expression AST (cached); columns count from 1 at the start of ``text``.

    Raises:
        ProcedureError: with the column of the problem (file ``<expression>``).
    """
    return _expression(text)


# ----------------------------------------------------------------------------- statements
def strip_comment(line: str) -> str:
    """The line without its ``;``/``!`` comment (quotes respected) and trailing blanks."""
    quoted = False
    for i, ch in enumerate(line):
        if ch == "'":
            quoted = not quoted
        elif ch in ";!" and not quoted:
            return line[:i].rstrip()
    return line.rstrip()


def parse_statement(text: str, ref: SourceRef, registry=None, *, first: bool = False) -> ast.Stmt:
    """Classify and parse one comment-stripped statement line (SPIDER's order, research a.3).

    Args:
        text: the line without its comment; leading blanks are kept so columns match.
        ref: where the line is (column ignored).
        registry: resolves operation lines; None leaves them unresolved (``code=""``).
        first: the line is the procedure's first statement (a parameter header is allowed).

    Raises:
        ProcedureError: a syntax error or an unknown operation, located with a caret.
    """
    s = text.strip()
    col0 = len(text) - len(text.lstrip()) + 1
    if first and _HEADER.match(s):
        return parse_rule(text, "header", ref, "parameter line ([a],[b],...)")
    if s.startswith("@"):
        return parse_rule(text, "call", ref, "procedure call")
    if _ASSIGN.match(s):
        return parse_rule(text, "assignment", ref, "assignment")
    if not s[0].isalnum() or (len(s) > 1 and not s[1].isalnum() and not s[1].isspace()) \
            or _FUNC_LINE.match(s):
        try:
            return parse_rule(text, "echo", ref, "expression")
        except ProcedureError as exc:
            if re.match(r"^[?*0-9./]", s) or "," in s:
                raise procedure_error(exc.ref, exc.reason + _ANSWER_HINT) from None
            raise
    if _LEGACY_CALL.match(s):
        return ast.Call(ref.at(col0), s)
    if _CONTROL.match(s):
        return parse_rule(text, "control", ref, "statement")
    if registry is None:
        return ast.OpLine(ref.at(col0), "", s, col0)
    found = registry.match(s)
    if found is not None:
        op, rest = found
        rest_col = len(text.rstrip()) - len(rest) + 1 if rest else len(text.rstrip()) + 1
        return parse_op_rest(op, rest, ref.at(col0), rest_col)
    try:
        return parse_rule(text, "echo", ref, "expression")
    except ProcedureError:
        word = s.split()[0]
        raise procedure_error(ref.at(col0), f"unknown operation {word.upper()!r} ('emsh ops' "
                              "lists the operations)" + _ANSWER_HINT) from None


def looks_like_answer(code: str) -> bool:
    """Whether a comment-stripped line reads as an answer line rather than a statement.

    True for lines that are no statement at all (``1.0,45,1,3``, ``[x],[y]``,
    ``?question?``) and for bare expressions (``2``, ``-0.5``), which procedures write as
    answers far more often than as pocket-calculator statements. Used by ``emsh check``
    where the number of answer lines depends on a value known only at run time.
    """
    if not code.strip():
        return False
    try:
        stmt = parse_statement(code, SourceRef("<peek>", 1, 1, code))
    except ProcedureError:
        return True
    return isinstance(stmt, ast.Echo)


_ANSWER_HINT = ("; if this is an answer line, the operation above asks fewer questions "
                "than the lines given")


def _option_spans(rest: str, kept: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """(position, word) of the words of ``rest`` that are not in ``kept``."""
    keep = {at for at, _ in kept}
    spans, pos = [], 0
    for word in rest.split():
        at = rest.index(word, pos)
        pos = at + len(word)
        if at not in keep:
            spans.append((at, word))
    return spans


def parse_op_rest(op, rest: str, ref: SourceRef, rest_col: int) -> ast.OpLine:
    """Split the text after an operation code into output registers and ``key=value`` options."""
    declared = {f.name.lower(): f.name for f in op.options}
    options, kept = {}, []
    pos = 0
    for word in rest.split():
        at = rest.index(word, pos)
        pos = at + len(word)
        m = _OPTION.match(word)
        if m and (m.group(1).lower() in declared or op.inline != "raw"):
            if m.group(1).lower() not in declared:
                known = ", ".join(sorted(declared.values())) or "none"
                raise procedure_error(ref.at(rest_col + at),
                                      f"{op.code} has no option {m.group(1)!r} (options: {known})")
            value_col = rest_col + at + len(m.group(1)) + 1
            options[declared[m.group(1).lower()]] = (m.group(2), value_col)
        else:
            kept.append((at, word))
    if op.inline == "raw":  # the text as written (blanks matter in SD /text), options removed
        inline, cut = rest, 0
        for at, word in _option_spans(rest, kept):
            inline = inline[:at - cut] + inline[at - cut + len(word):]
            cut += len(word)
        lead = len(inline) - len(inline.lstrip())
        return ast.OpLine(ref, op.code, inline.strip(), rest_col + lead, (), options)
    registers: tuple[str, ...] = ()
    if kept:
        start = kept[0][0]
        body = rest[start:kept[-1][0] + len(kept[-1][1])]
        padded = " " * (rest_col + start - 1) + body
        registers = parse_rule(padded, "registers", ref, f"output registers of {op.code}")
        if len(registers) > len(op.outputs):
            n = len(op.outputs)
            raise procedure_error(ref.at(rest_col + start),
                                  f"{op.code} gives {n} value{'s' * (n != 1)}"
                                  f"{' (' + ', '.join(op.outputs) + ')' if n else ''}, "
                                  f"but {len(registers)} registers are listed")
    return ast.OpLine(ref, op.code, " ".join(w for _, w in kept), rest_col, registers, options)


# ----------------------------------------------------------------------------- procedures
class Procedure:
    """The lines of one procedure file, its statements (parsed lazily) and block structure.

    Attributes:
        name: the path as shown in messages.
        path: the file (None for text that did not come from a file).
        lines: the raw lines, without newlines.
        code: the lines without comments and trailing blanks ('' for blank lines).
        first: index of the first non-blank line, or -1.
        blocks: the :class:`~emsh.lang.blocks.Blocks` of the file.
    """

    def __init__(self, text: str, name: str, path: Path | None = None):
        from emsh.lang.blocks import find_blocks

        self.name, self.path = name, path
        self.lines = text.splitlines()
        self.code = [strip_comment(line) for line in self.lines]
        self.first = next((i for i, c in enumerate(self.code) if c.strip()), -1)
        self._stmts: dict[int, ast.Stmt] = {}
        self.blocks = find_blocks(self)

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None) -> Procedure:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise ProcedureError(f"{path}: cannot read procedure: {exc.strerror or exc}") from None
        return cls(text, name or str(path), p)

    def ref(self, index: int, col: int = 1) -> SourceRef:
        """Location of line ``index`` (0-based)."""
        text = self.lines[index] if index < len(self.lines) else ""
        return SourceRef(self.name, index + 1, col, text)

    def statement(self, index: int, registry=None) -> ast.Stmt:
        """The statement on line ``index`` (parsed on first use, then cached)."""
        stmt = self._stmts.get(index)
        if stmt is None:
            stmt = parse_statement(self.code[index], self.ref(index), registry,
                                   first=index == self.first)
            self._stmts[index] = stmt
        return stmt

    def header(self) -> ast.Header | None:
        """The parameter line ``([a],[b])`` if the procedure starts with one."""
        if self.first < 0 or not _HEADER.match(self.code[self.first].strip()):
            return None
        stmt = self.statement(self.first)
        return stmt if isinstance(stmt, ast.Header) else None
