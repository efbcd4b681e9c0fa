"""Runs procedures: registers and strings, loops, IF, GOTO, procedure calls, operations.

Execution is line by line, as in SPIDER. Each procedure call gets a :class:`Frame`
(its lines, a cursor ``pc``, its variables, its open loops). A statement line is
parsed when it is first reached; an operation reads its answers from the lines after
it (:mod:`emsh.lang.answers`), which moves the cursor past them. A called procedure
may ask its caller for answers (``FR``, ``?question?`` lines): those come from the
caller's lines after the ``@name`` line.

MPI (SPMD): every rank interprets the same program on the same state. An operation
with ``mpi='root'`` runs on rank 0 only and its outputs (and any variables it sets) are
broadcast, an error included, so every rank fails at the same statement. An operation
with ``mpi='all'`` runs on every rank with the communicator; an error there is local to
one rank (``collective=False``) and the command line ends the whole job.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from emsh.errors import EmshError, ProcedureError
from emsh.lang import ast
from emsh.lang.answers import ScriptAnswers
from emsh.lang.ast import LocatedError, SourceRef, procedure_error
from emsh.lang.expressions import evaluate, format_number
from emsh.lang.opcall import run_operation
from emsh.lang.parser import Procedure, parse_expression
from emsh.lang.templates import substitute

MAX_DEPTH = 100
PROC_EXTENSIONS = ("spi", "pam", "proc", "emsh")


class EndSession(Exception):
    """``EN``: the whole run ends (a normal end)."""


class _Return(Exception):
    """``RE``: the current procedure returns."""


class Loop:
    """An open ``DO`` loop: trip count fixed on entry, index set before each pass."""

    def __init__(self, do_line: int, end_line: int, var: str | None, lo: float, inc: float,
                 trips: int | None):
        self.do_line, self.end_line, self.var = do_line, end_line, var
        self.lo, self.inc, self.trips, self.k = lo, inc, trips, 0

    def value(self) -> float:
        return self.lo + self.k * self.inc


class Frame:
    """One running procedure.

    Attributes:
        proc: its :class:`~emsh.lang.parser.Procedure`.
        pc: index of the next line to read.
        ns: its variables (shared with the caller for ``@@name``).
        caller, call_ref: who called it and from which line.
        answers: where its operations' answers come from (its own lines by default).
        upstream: where ``?question?`` answers come from (the caller's lines, the terminal,
            or None).
    """

    def __init__(self, proc: Procedure, ns: dict, caller: Frame | None = None,
                 call_ref: SourceRef | None = None, upstream=None, answers=None):
        self.proc, self.ns, self.caller, self.call_ref = proc, ns, caller, call_ref
        self.pc = 0
        self.loops: list[Loop] = []
        self.upstream = upstream
        self.answers = answers if answers is not None else ScriptAnswers(self)
        self.depth = 0 if caller is None else caller.depth + 1

    def stack(self) -> tuple[SourceRef, ...]:
        """The chain of calls that led here, innermost first."""
        out, f = [], self
        while f is not None and f.call_ref is not None:
            out.append(f.call_ref)
            f = f.caller
        return tuple(out)


def locate_procedure(name: str, folders: Iterable[Path], project_ext: str) -> Path | None:
    """The file of procedure ``name``: ``name.<project_ext>`` (or ``.spi``, ``.pam``,
    ``.proc``, ``.emsh``, or ``name`` itself when it has an extension) in the folders."""
    exts = [project_ext] + [e for e in PROC_EXTENSIONS if e != project_ext]
    for folder in folders:
        for spelled in dict.fromkeys((name, name.lower())):
            base = Path(folder) / spelled
            if base.suffix and base.is_file():
                return base
            for ext in exts:
                cand = base.with_name(f"{base.name}.{ext}")
                if cand.is_file():
                    return cand
    return None


class Interpreter:
    """Executes frames for a :class:`emsh.session.Session`."""

    def __init__(self, session):
        self.s = session

    # ------------------------------------------------------------------ variables
    def lookup(self, frame: Frame, name: str):
        """Value of ``[name]`` in ``frame`` (local, then global), or None."""
        if name in frame.ns:
            return frame.ns[name]
        return self.s.globals.get(name)

    def number(self, frame: Frame, name: str, col: int, _depth: int = 0) -> float:
        value = self.lookup(frame, name)
        if value is None:
            raise LocatedError(col, f"undefined register [{name}]")
        if isinstance(value, str):
            if _depth > 20:
                raise LocatedError(col, f"string variable [{name}] refers to itself")
            try:
                text = self.expand(frame, value, "text")
                inner = parse_expression(text.strip())
                return evaluate(inner, lambda n, c: self.number(frame, n, col, _depth + 1),
                                self.s.expr_rng)
            except (EmshError, LocatedError):
                raise LocatedError(col, f"[{name}] holds {value!r}, which is not a number") \
                    from None
        return value

    def eval(self, frame: Frame, expr, ref: SourceRef, offset: int = 0) -> float:
        """Evaluate an expression of a line at ``ref``; node columns are shifted by ``offset``."""
        try:
            return evaluate(expr, lambda n, c: self.number(frame, n, c), self.s.expr_rng)
        except LocatedError as exc:
            raise self.error(frame, ref.at(exc.col + offset), exc.message) from None

    def expand(self, frame: Frame, text: str, mode: str) -> str:
        return substitute(text, lambda n: self.lookup(frame, n), mode=mode)

    def assign(self, frame: Frame, name: str, value, is_global: bool = False) -> None:
        if isinstance(value, (np.floating, np.integer, int)):
            value = float(value)
        if is_global:
            frame.ns.pop(name, None)
            self.s.globals[name] = value
        else:
            frame.ns[name] = value
        self.s.record(("global" if is_global else "local", name, value))

    def error(self, frame: Frame, ref: SourceRef, message: str, collective: bool = True):
        return procedure_error(ref, message, frame.stack(), collective=collective)

    # ------------------------------------------------------------------ running
    def load(self, path: Path, name: str | None = None, frame: Frame | None = None,
             ref: SourceRef | None = None) -> Procedure:
        key = str(path.resolve())
        proc = self.s.procedures.get(key)
        if proc is None:
            proc = Procedure.from_file(path, name)
            self.s.procedures[key] = proc
        if proc.blocks.problems:
            err = proc.blocks.problems[0]
            stack = ((ref,) if ref else ()) + (frame.stack() if frame else ())
            raise procedure_error(err.ref, err.reason, stack)
        return proc

    def run(self, frame: Frame) -> None:
        """Run ``frame`` until its end or ``RE`` (``EN`` raises :class:`EndSession`)."""
        if frame.depth > MAX_DEPTH:
            raise self.error(frame.caller, frame.call_ref,
                             f"procedure calls nested deeper than {MAX_DEPTH} (runaway recursion?)")
        proc = frame.proc
        header = proc.header()
        if header is not None and frame.pc <= proc.first:
            frame.pc = proc.first + 1
        try:
            while frame.pc < len(proc.code):
                i = frame.pc
                if not proc.code[i].strip():
                    frame.pc += 1
                    continue
                try:
                    stmt = proc.statement(i, self.s.registry)
                except ProcedureError as exc:
                    if exc.ref is not None:
                        raise self.error(frame, exc.ref, exc.reason) from None
                    raise
                if self.s.verbose or isinstance(stmt, ast.OpLine):
                    self.s.results.write(f" .OPERATION: {proc.code[i].strip()}")
                try:
                    self.execute(frame, stmt, i)
                except ProcedureError as exc:
                    ref, stack = exc.ref, frame.stack()
                    if ref is not None and stack and not exc.stack:  # add the calls that led here
                        raise procedure_error(ref, exc.reason, stack, collective=exc.collective) \
                            from exc
                    raise
        except _Return:
            pass

    def execute(self, frame: Frame, stmt: ast.Stmt, i: int) -> None:
        blocks = frame.proc.blocks
        t = type(stmt)
        if t is ast.Assign:
            value = stmt.value
            if not isinstance(value, str):
                value = self.eval(frame, value, stmt.ref)
            self.assign(frame, stmt.target, value, stmt.is_global)
            frame.pc = i + 1
        elif t is ast.OpLine:
            self.run_operation(frame, stmt, i)
        elif t is ast.Do:
            self.enter_loop(frame, stmt, i)
        elif t is ast.EndDo or (t is ast.Label and frame.loops and frame.loops[-1].end_line == i):
            self.next_pass(frame, i)
        elif t is ast.IfThen:
            if self.test(frame, stmt.cond, stmt.ref):
                frame.pc = i + 1
            else:
                self.next_branch(frame, i)
        elif t in (ast.ElseIf, ast.Else):
            frame.pc = blocks.branch_end[i] + 1  # the branch before it has run
        elif t in (ast.EndIf, ast.Label, ast.Header):
            frame.pc = i + 1
        elif t is ast.IfInline:
            if self.test(frame, stmt.cond, stmt.ref):
                self.execute(frame, stmt.action, i)
            else:
                frame.pc = i + 1
        elif t is ast.Goto:
            self.goto(frame, stmt, i)
        elif t is ast.Exit:
            loop = self.innermost(frame, stmt)
            frame.loops.pop()
            frame.pc = loop.end_line + 1
        elif t is ast.Cycle:
            self.next_pass(frame, self.innermost(frame, stmt).end_line)
        elif t is ast.Call:
            self.call(frame, stmt, i)
        elif t is ast.Echo:
            held = self.lookup(frame, stmt.expr.name) if isinstance(stmt.expr, ast.Var) else None
            if isinstance(held, str):  # a string variable echoes its text
                shown = self.expand(frame, held, "text")
            else:
                shown = format_number(self.eval(frame, stmt.expr, stmt.ref))
            self.s.say(f" {frame.proc.code[i].strip()} = {shown}")
            frame.pc = i + 1
        elif t is ast.Return:
            frame.pc = i + 1
            raise _Return()
        elif t is ast.End:
            raise EndSession()
        else:  # pragma: no cover - every statement type is handled above
            raise TypeError(f"unknown statement {stmt!r}")

    # ------------------------------------------------------------------ control flow
    def test(self, frame: Frame, cond: ast.Condition, ref: SourceRef) -> bool:
        a = self.eval(frame, cond.left, ref)
        b = self.eval(frame, cond.right, ref)
        return {"==": a == b, "/=": a != b, ">": a > b, ">=": a >= b, "<": a < b,
                "<=": a <= b}[cond.cmp]

    def next_branch(self, frame: Frame, if_line: int) -> None:
        proc = frame.proc
        for b in proc.blocks.if_branches[if_line]:
            stmt = proc.statement(b, self.s.registry)
            if isinstance(stmt, ast.ElseIf):
                self.s.results.write(f" .OPERATION: {proc.code[b].strip()}")
                if self.test(frame, stmt.cond, stmt.ref):
                    frame.pc = b + 1
                    return
            elif isinstance(stmt, ast.Else):
                frame.pc = b + 1
                return
            else:  # ENDIF
                frame.pc = b + 1
                return

    def enter_loop(self, frame: Frame, stmt: ast.Do, i: int) -> None:
        end = frame.proc.blocks.do_end[i]
        if stmt.var is None:
            frame.loops.append(Loop(i, end, None, 0.0, 1.0, None))
            frame.pc = i + 1
            return
        lo = self.eval(frame, stmt.lo, stmt.ref)
        hi = self.eval(frame, stmt.hi, stmt.ref)
        inc = 1.0 if stmt.inc is None else self.eval(frame, stmt.inc, stmt.ref)
        if inc == 0:
            raise self.error(frame, stmt.ref, "DO loop step is zero")
        trips = max(0, math.floor((hi - lo + inc) / inc + 1e-9))
        if trips == 0:  # SPIDER runs such a body once and then ends; emsh skips it
            frame.pc = end + 1
            return
        loop = Loop(i, end, stmt.var, lo, inc, trips)
        frame.loops.append(loop)
        self.assign(frame, stmt.var, loop.value())
        frame.pc = i + 1

    def next_pass(self, frame: Frame, end_line: int) -> None:
        if not frame.loops or frame.loops[-1].end_line != end_line:
            raise self.error(frame, frame.proc.ref(end_line), "end of a loop that was not "
                             "entered (did a GOTO jump into it?)")
        loop = frame.loops[-1]
        loop.k += 1
        if loop.trips is not None and loop.k >= loop.trips:
            frame.loops.pop()  # the index keeps the last value used
            frame.pc = end_line + 1
            return
        if loop.var is not None:
            self.assign(frame, loop.var, loop.value())
        frame.pc = loop.do_line + 1

    def innermost(self, frame: Frame, stmt: ast.Stmt) -> Loop:
        if not frame.loops:
            word = "EXIT" if isinstance(stmt, ast.Exit) else "CYCLE"
            raise self.error(frame, stmt.ref, f"{word} outside a DO loop")
        return frame.loops[-1]

    def goto(self, frame: Frame, stmt: ast.Goto, i: int) -> None:
        blocks = frame.proc.blocks
        target = blocks.label_after(stmt.number, i)
        if target is None:
            raise self.error(frame, stmt.ref, f"no label LB{stmt.number} after this line "
                             "(GOTO jumps forward only)")
        while frame.loops and not frame.loops[-1].do_line < target <= frame.loops[-1].end_line:
            frame.loops.pop()
        open_loops = {lp.do_line for lp in frame.loops}
        if any(d not in open_loops for d in blocks.loops_around(target)):
            raise self.error(frame, stmt.ref, f"GOTO LB{stmt.number} jumps into a DO loop")
        frame.pc = target  # the label line itself: it may close a legacy DO LBn loop

    # ------------------------------------------------------------------ procedures
    def call(self, frame: Frame, stmt: ast.Call, i: int) -> None:
        frame.pc = i + 1
        folders = [frame.proc.path.parent] if frame.proc.path else []
        folders += [Path.cwd()] + self.s.procedure_path()
        path = locate_procedure(stmt.name, folders, self.s.project_ext)
        if path is None:
            where = ", ".join(dict.fromkeys(str(f) for f in folders))
            raise self.error(frame, stmt.ref, f"procedure {stmt.name!r} not found (looked for "
                             f"{stmt.name}.{self.s.project_ext} in {where})")
        proc = self.load(path, self.display_name(path), frame, stmt.ref)
        header = proc.header()
        params = header.params if header else ()
        if stmt.shared:
            if stmt.args:
                raise self.error(frame, stmt.ref, "@@name runs in the caller's variables and "
                                 "takes no arguments")
            ns = frame.ns
        else:
            if len(stmt.args) != len(params):
                want = f"({', '.join(f'[{p}]' for p in params)})" if params else "no arguments"
                raise self.error(frame, stmt.ref, f"{proc.name} expects {want}, "
                                 f"{len(stmt.args)} given")
            ns = {p: self.eval(frame, a, stmt.ref) for p, a in zip(params, stmt.args)}
        callee = Frame(proc, ns, frame, stmt.ref, upstream=frame.answers)
        self.s.results.write(f"\n  -- START OF: {proc.name} --\n")
        self.run(callee)
        self.s.results.write(f"\n  -- END OF: {proc.name} --\n")
        if not stmt.shared:
            for p, a in zip(params, stmt.args):
                if isinstance(a, ast.Var) and p in callee.ns:
                    self.assign(frame, a.name, callee.ns[p])

    def display_name(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    # ------------------------------------------------------------------ operations
    def run_operation(self, frame: Frame, stmt: ast.OpLine, i: int, answers=None) -> None:
        """Run the operation on line ``i`` (answers from ``answers`` or the frame's lines)."""
        run_operation(self, frame, stmt, i, answers)
