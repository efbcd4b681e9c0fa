"""Syntax tree of the procedure language, and located errors.

Every node is a frozen dataclass. Expression nodes carry the 1-based column of
their first character in the source line, so an evaluation error (an undefined
register, a division by zero) can point at it with a caret. Statement nodes are
built by :mod:`emsh.lang.parser` and executed by :mod:`emsh.lang.interpreter`;
they hold no run-time state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emsh.errors import ProcedureError


# ----------------------------------------------------------------------------- locations
@dataclass(frozen=True)
class SourceRef:
    """A place in procedure text.

    Attributes:
        file: the procedure's path as the user gave it (or ``<shell>``, ``<text>``).
        line: 1-based line number.
        col: 1-based column of the place of interest.
        text: the whole source line (for the caret display).
    """

    file: str
    line: int
    col: int = 1
    text: str = ""

    def at(self, col: int) -> SourceRef:
        """The same line, another column."""
        return SourceRef(self.file, self.line, max(1, col), self.text)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


def render(ref: SourceRef, message: str, stack: tuple[SourceRef, ...] = ()) -> str:
    """``file:line:col: message``, the source line, a caret and the chain of callers."""
    out = [f"{ref}: {message}"]
    if ref.text:
        line = ref.text.rstrip("\n").expandtabs(1)
        out.append("    " + line)
        out.append("    " + " " * (ref.col - 1) + "^")
    for caller in stack:
        out.append(f"  called from {caller.file}:{caller.line}")
    return "\n".join(out)


def procedure_error(ref: SourceRef, message: str, stack: tuple[SourceRef, ...] = (),
                    *, collective: bool = True) -> ProcedureError:
    """A :class:`ProcedureError` whose text is :func:`render` of the arguments.

    The error also carries ``ref``, ``reason`` (the bare message), ``stack`` and
    ``collective`` (True when every MPI rank raises it at the same point, which holds for
    every language error since all ranks run the same program on the same state); see
    :class:`emsh.errors.ProcedureError`.
    """
    return ProcedureError(render(ref, message, stack), ref=ref, reason=message, stack=stack,
                          collective=collective)


class LocatedError(Exception):
    """Raised by expression evaluation with a column; the interpreter adds the file/line."""

    def __init__(self, col: int, message: str):
        super().__init__(message)
        self.col = col
        self.message = message


# ----------------------------------------------------------------------------- expressions
@dataclass(frozen=True)
class Num:
    value: float
    col: int = 1


@dataclass(frozen=True)
class Var:
    """A variable reference ``[name]`` (legacy ``x11`` is stored as ``_11``)."""

    name: str
    col: int = 1


@dataclass(frozen=True)
class Neg:
    operand: Expr
    col: int = 1


@dataclass(frozen=True)
class BinOp:
    op: str  # one of + - * / **
    left: Expr
    right: Expr
    col: int = 1


@dataclass(frozen=True)
class Func:
    name: str  # upper case, SQRT folded into SQR
    arg: Expr
    col: int = 1


Expr = Num | Var | Neg | BinOp | Func


def variables_of(expr: Expr) -> set[str]:
    """Names of every variable an expression reads."""
    if isinstance(expr, Var):
        return {expr.name}
    if isinstance(expr, Neg):
        return variables_of(expr.operand)
    if isinstance(expr, BinOp):
        return variables_of(expr.left) | variables_of(expr.right)
    if isinstance(expr, Func):
        return variables_of(expr.arg)
    return set()


@dataclass(frozen=True)
class Condition:
    """``left CMP right``; ``cmp`` normalised to one of ``== /= > >= < <=``."""

    left: Expr
    cmp: str
    right: Expr


# ----------------------------------------------------------------------------- statements
@dataclass(frozen=True)
class Stmt:
    ref: SourceRef


@dataclass(frozen=True)
class Assign(Stmt):
    """``[v] = expr`` (``value`` an Expr) or ``[v] = 'text'`` (``value`` a str)."""

    target: str = ""
    value: Expr | str = 0.0
    is_global: bool = False


@dataclass(frozen=True)
class Echo(Stmt):
    """A bare expression: evaluated and printed (SPIDER's pocket calculator)."""

    expr: Expr = None


@dataclass(frozen=True)
class Call(Stmt):
    """``@name(args)`` (new namespace) or ``@@name`` (caller's namespace)."""

    name: str = ""
    args: tuple[Expr, ...] = ()
    shared: bool = False


@dataclass(frozen=True)
class Header(Stmt):
    """A procedure's parameter line ``([a],[b])``."""

    params: tuple[str, ...] = ()


@dataclass(frozen=True)
class IfThen(Stmt):
    cond: Condition = None


@dataclass(frozen=True)
class ElseIf(Stmt):
    cond: Condition = None


@dataclass(frozen=True)
class Else(Stmt):
    pass


@dataclass(frozen=True)
class EndIf(Stmt):
    pass


@dataclass(frozen=True)
class IfInline(Stmt):
    """``IF (c) [v]=expr``, ``IF (c) GOTO LBn``, ``IF (c) EXIT``, ``IF (c) CYCLE``."""

    cond: Condition = None
    action: Stmt = None


@dataclass(frozen=True)
class Do(Stmt):
    """``DO [i]=lo,hi[,inc]``; a bare ``DO`` has ``var`` None; legacy ``DO LBn ...``."""

    var: str | None = None
    lo: Expr | None = None
    hi: Expr | None = None
    inc: Expr | None = None
    label: int | None = None


@dataclass(frozen=True)
class EndDo(Stmt):
    pass


@dataclass(frozen=True)
class Label(Stmt):
    number: int = 0


@dataclass(frozen=True)
class Goto(Stmt):
    number: int = 0


@dataclass(frozen=True)
class Exit(Stmt):
    pass


@dataclass(frozen=True)
class Cycle(Stmt):
    pass


@dataclass(frozen=True)
class Return(Stmt):
    pass


@dataclass(frozen=True)
class End(Stmt):
    pass


@dataclass(frozen=True)
class OpLine(Stmt):
    """An operation line: resolved code, the text after it, output registers, options.

    Attributes:
        code: the operation's code as matched in the registry (upper case).
        rest: the text after the code, as written.
        rest_col: 1-based column where ``rest`` starts.
        registers: output register names (``inline='registers'`` operations).
        options: ``key=value`` words: name -> (value text, column).
    """

    code: str = ""
    rest: str = ""
    rest_col: int = 1
    registers: tuple[str, ...] = ()
    options: dict = field(default_factory=dict, hash=False, compare=False)
