"""``emsh check``: find the errors in a procedure before running it on 1000 cores.

The checker walks each procedure line by line, like the interpreter, but runs
nothing. It parses every statement, resolves every operation code (and imports and
checks its implementation), reads each operation's answer lines by its prompt
specification (a ``when`` condition is evaluated on the answers known without running;
one that depends on a run-time value is assumed true, with a warning), follows ``@name``
calls to count the lines a called procedure reads from its caller (``FR``,
``?question?``), checks ``DO``/``IF`` blocks, labels, ``EXIT``/``CYCLE`` placement and
argument counts, and reports input files that do not exist when their names hold no
variables and no operation of the procedure writes them. Variables read but never set
anywhere are warnings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from emsh.errors import EmshError, ProcedureError
from emsh.lang import ast
from emsh.lang.answers import UNKNOWN, AnswerLine, ScriptAnswers
from emsh.lang.prompts import answer_operation
from emsh.lang.ast import LocatedError, SourceRef, procedure_error, render
from emsh.lang.expressions import evaluate
from emsh.lang.interpreter import locate_procedure
from emsh.lang.parser import Procedure
from emsh.lang.templates import is_unresolved, split_at

__all__ = ["Problem", "check_file", "Checker"]

_INPUT_KINDS = ("image", "doc", "file")
_OUTPUT_KINDS = ("image_out", "doc_out", "file_out")
_VARS = re.compile(r"\[([A-Za-z_][A-Za-z0-9_\-]*)\]")


@dataclass(frozen=True)
class Problem:
    """One finding: where, what, ``error`` or ``warning``, and the calls that led there."""

    ref: SourceRef
    message: str
    severity: str = "error"
    stack: tuple[SourceRef, ...] = ()

    def __str__(self) -> str:
        return render(self.ref, f"{self.severity}: {self.message}", self.stack)


_BRACES = re.compile(r"\{[^{}]*\}")


class _Unresolved(str):
    unresolved = True


class _Cursor:
    def __init__(self, proc: Procedure):
        self.proc, self.pc = proc, 0


class _StaticResolver:
    """Answers are parsed but only constants are evaluated; variables give UNKNOWN."""

    #: ``when`` predicates see no session: nothing has run, so no session state
    #: (inline files, open doc files) exists yet.
    session = None

    def __init__(self, checker: Checker, scope: _Scope):
        self.c, self.scope = checker, scope
        self.data_ext = checker.data_ext
        self.forwards = 0

    def substitute(self, text, mode, line):
        for name in _VARS.findall(text):
            self.scope.use(name, line.ref)
        if not is_unresolved(text):
            return text
        # a '{***[g]}' substitution gives digits, not a template: '{000[g]}' keeps the
        # text unresolved but shaped as it will be when run (whole stack, member, name)
        return _Unresolved(_BRACES.sub(lambda m: m.group(0).replace("*", "0"), text))

    def evaluate(self, expr, line, col):
        names = ast.variables_of(expr)
        for name in names:
            self.scope.use(name, line.ref.at(col))
        if names or _has_random(expr):
            return UNKNOWN
        try:
            return evaluate(expr, lambda n, c: 0.0)
        except LocatedError as exc:
            raise self.fail(line.ref.at(col + exc.col - 1), exc.message) from None

    def selection(self, path, line):
        if not is_unresolved(path) and "*" not in path:
            self.c.inputs.append((path, line.ref, self.scope.stack))
        return UNKNOWN

    def forward(self, question, line):
        self.forwards += 1
        self.scope.forward_refs.append(line.ref)
        return AnswerLine("", line.ref, unknown=True)

    def assign_string(self, name, value, line):
        self.scope.set(name)

    def log(self, text):
        pass

    def fail(self, ref, message):
        return procedure_error(ref, message, self.scope.stack)

    def undecidable(self, prompt, ref):
        if prompt.repeat:
            what = (f"how many lines answer {prompt.text.strip()!r} (it depends on a value "
                    "known only at run time); taking the lines that read as answers")
        else:
            what = (f"whether {prompt.text.strip()!r} is asked (it depends on a value known "
                    "only at run time); assuming it is")
        self.c.add(ref, f"cannot tell before running {what}", "warning", self.scope.stack)


def _var_nodes(expr):
    """Every variable node of an expression (with its column)."""
    if isinstance(expr, ast.Var):
        yield expr
    for child in (getattr(expr, "operand", None), getattr(expr, "left", None),
                  getattr(expr, "right", None), getattr(expr, "arg", None)):
        if child is not None:
            yield from _var_nodes(child)


def _has_random(expr) -> bool:
    if isinstance(expr, ast.Func):
        return expr.name in ("RAN", "RNN") or _has_random(expr.arg)
    if isinstance(expr, ast.BinOp):
        return _has_random(expr.left) or _has_random(expr.right)
    if isinstance(expr, ast.Neg):
        return _has_random(expr.operand)
    return False


class _Scope:
    """Variables set and used in one procedure (flow-insensitive)."""

    def __init__(self, stack: tuple[SourceRef, ...], name: str = ""):
        self.stack, self.name = stack, name
        self.sets: set[str] = set()
        self.uses: dict[str, SourceRef] = {}
        self.forward_refs: list[SourceRef] = []

    def set(self, name: str) -> None:
        self.sets.add(name)

    def use(self, name: str, ref: SourceRef) -> None:
        self.uses.setdefault(name, ref)


@dataclass
class _Summary:
    forwards: int
    params: tuple[str, ...]
    sets: set


class Checker:
    """Checks procedures against a registry; see the module docstring."""

    def __init__(self, registry=None, data_ext: str = "spi", project_ext: str = "spi",
                 presets: dict | None = None):
        if registry is None:
            from emsh.registry import Registry

            registry = Registry.discover()
        self.registry, self.data_ext, self.project_ext = registry, data_ext, project_ext
        self.presets = set(presets or ())
        self.problems: list[Problem] = []
        self.summaries: dict[str, _Summary | None] = {}
        self.inputs: list[tuple[str, SourceRef, tuple]] = []
        self.outputs: list[re.Pattern] = []
        self.globals: set[str] = set()
        self.scopes: list[_Scope] = []
        self.shell = False

    def add(self, ref: SourceRef, message: str, severity: str = "error", stack=()) -> None:
        problem = Problem(ref, message, severity, tuple(stack))
        if problem not in self.problems:
            self.problems.append(problem)

    def add_error(self, exc: ProcedureError, stack=()) -> None:
        if exc.ref is None:
            self.add(SourceRef("<check>", 1), str(exc), "error", stack)
        else:
            self.add(exc.ref, exc.reason, "error", exc.stack or stack)

    # ------------------------------------------------------------------ procedures
    def check(self, path: Path, stack: tuple[SourceRef, ...] = ()) -> _Summary | None:
        key = str(path.resolve())
        if key in self.summaries:  # done, or in progress (recursion: no forwards assumed)
            return self.summaries[key]
        try:
            proc = Procedure.from_file(path, self._name(path))
        except ProcedureError as exc:
            self.summaries[key] = None
            self.add(stack[0] if stack else SourceRef(str(path), 1), str(exc), "error", stack[1:])
            return None
        for err in proc.blocks.problems:
            self.add(err.ref, err.reason, "error", stack)
        header = None
        try:
            header = proc.header()
        except ProcedureError as exc:
            self.add_error(exc, stack)
        scope = _Scope(stack, proc.name)
        summary = _Summary(0, header.params if header else (), scope.sets)
        scope.sets.update(summary.params)
        self.summaries[key] = summary
        self.scopes.append(scope)
        summary.forwards = self._walk(proc, scope)
        return summary

    def _name(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    def _walk(self, proc: Procedure, scope: _Scope) -> int:
        cursor = _Cursor(proc)
        forwards = 0
        while cursor.pc < len(proc.code):
            i = cursor.pc
            cursor.pc += 1
            if not proc.code[i].strip():
                continue
            try:
                stmt = proc.statement(i, self.registry)
            except ProcedureError as exc:
                self.add_error(exc, scope.stack)
                continue
            try:
                forwards += self._statement(proc, stmt, i, cursor, scope)
            except ProcedureError as exc:
                self.add_error(exc, scope.stack)
        return forwards

    def _exprs(self, scope: _Scope, ref: SourceRef, *exprs) -> None:
        for e in exprs:
            if e is None:
                continue
            for var in _var_nodes(e):
                scope.use(var.name, ref.at(var.col))
            if not ast.variables_of(e) and not _has_random(e):
                try:
                    evaluate(e, lambda n, c: 0.0)
                except LocatedError as exc:
                    self.add(ref.at(exc.col), exc.message, "error", scope.stack)

    def _statement(self, proc, stmt, i, cursor, scope) -> int:
        t = type(stmt)
        blocks = proc.blocks
        if t is ast.Assign:
            (self.globals if stmt.is_global else scope.sets).add(stmt.target)
            if not isinstance(stmt.value, str):
                self._exprs(scope, stmt.ref, stmt.value)
        elif t is ast.Echo:
            self._exprs(scope, stmt.ref, stmt.expr)
        elif t in (ast.IfThen, ast.ElseIf):
            self._exprs(scope, stmt.ref, stmt.cond.left, stmt.cond.right)
        elif t is ast.IfInline:
            self._exprs(scope, stmt.ref, stmt.cond.left, stmt.cond.right)
            return self._statement(proc, stmt.action, i, cursor, scope)
        elif t is ast.Do:
            if stmt.var is not None:
                scope.set(stmt.var)
            self._exprs(scope, stmt.ref, stmt.lo, stmt.hi, stmt.inc)
            if stmt.inc is not None and not ast.variables_of(stmt.inc):
                if evaluate(stmt.inc, lambda n, c: 0.0) == 0:
                    self.add(stmt.ref, "DO loop step is zero", "error", scope.stack)
        elif t is ast.Goto:
            target = blocks.label_after(stmt.number, i)
            if target is None:
                self.add(stmt.ref, f"no label LB{stmt.number} after this line (GOTO jumps "
                         "forward only)", "error", scope.stack)
            elif set(blocks.loops_around(target)) - set(blocks.loops_around(i)):
                self.add(stmt.ref, f"GOTO LB{stmt.number} jumps into a DO loop", "error",
                         scope.stack)
        elif t in (ast.Exit, ast.Cycle):
            if not blocks.loops_around(i):
                word = "EXIT" if t is ast.Exit else "CYCLE"
                self.add(stmt.ref, f"{word} outside a DO loop", "error", scope.stack)
        elif t is ast.Call:
            return self._call(proc, stmt, cursor, scope)
        elif t is ast.OpLine:
            return self._operation(stmt, cursor, scope)
        return 0

    def _call(self, proc, stmt, cursor, scope) -> int:
        self._exprs(scope, stmt.ref, *stmt.args)
        folders = [proc.path.parent] if proc.path else []
        path = locate_procedure(stmt.name, folders + [Path.cwd()], self.project_ext)
        if path is None:
            self.add(stmt.ref, f"procedure {stmt.name!r} not found", "error", scope.stack)
            return 0
        summary = self.check(path, (stmt.ref,) + scope.stack)
        if summary is None:
            return 0
        if stmt.shared:
            scope.sets.update(summary.sets)
        elif len(stmt.args) != len(summary.params):
            self.add(stmt.ref, f"{stmt.name} expects {len(summary.params)} argument(s), "
                     f"{len(stmt.args)} given", "error", scope.stack)
        for a in stmt.args:
            if isinstance(a, ast.Var):
                scope.set(a.name)
        forwards = 0
        source = ScriptAnswers(cursor)
        for n in range(summary.forwards):
            line = source.next("")
            if line is None:
                self.add(stmt.ref, f"{stmt.name} reads {summary.forwards} answer line(s) from "
                         f"the lines after this call, but only {n} follow", "error", scope.stack)
                break
            if line.text.lstrip().startswith("?"):
                forwards += 1
                scope.forward_refs.append(line.ref)
        return forwards

    def _operation(self, stmt, cursor, scope) -> int:
        op = self.registry.get(stmt.code)
        try:
            self.registry.implementation(op)
        except EmshError as exc:
            self.add(stmt.ref, str(exc), "error", scope.stack)
        scope.sets.update(stmt.registers)
        if op.inline == "raw":
            scope.sets.update(_VARS.findall(stmt.rest))
        if op.code in ("VM", "VM M"):
            self.shell = True
        for f in op.options:
            if f.name in stmt.options and f.type in ("int", "float"):
                from emsh.lang.parser import parse_expression

                text, col = stmt.options[f.name]
                try:
                    self._exprs(scope, stmt.ref.at(col), parse_expression(text))
                except ProcedureError as exc:
                    self.add(stmt.ref.at(col + exc.ref.col - 1), exc.reason, "error", scope.stack)
            elif f.required and f.name not in stmt.options:
                self.add(stmt.ref, f"{op.code} needs the option {f.name}=...", "error", scope.stack)
        resolver = _StaticResolver(self, scope)
        lines: list = []
        try:
            kwargs = answer_operation(op, ScriptAnswers(cursor), resolver, stmt.ref, lines,
                                      registers=tuple(stmt.registers or ()))
        except ProcedureError as exc:
            self.add_error(exc, scope.stack)
            return resolver.forwards
        if op.code in ("FR", "FR L", "FR G"):
            for _, line in lines:
                m = re.search(r"\[([A-Za-z_][A-Za-z0-9_\-]*)\]", line.text)
                if m:
                    (self.globals if op.code == "FR G" else scope.sets).add(m.group(1))
                if op.code == "FR" and line.text.lstrip().startswith("?"):
                    resolver.forwards += 1
                    scope.forward_refs.append(line.ref)
        self._files(op, kwargs, lines, scope)
        return resolver.forwards

    def _files(self, op, kwargs, lines, scope) -> None:
        refs = {p.name: line.ref for p, line in lines}
        for p in op.prompts:
            if p.name not in kwargs or p.kind not in _INPUT_KINDS + _OUTPUT_KINDS:
                continue
            values = kwargs[p.name] if p.repeat else [kwargs[p.name]]
            for value in values:
                if not isinstance(value, str):
                    continue
                base = split_at(value)[0]
                if p.kind in _OUTPUT_KINDS:
                    self.outputs.append(_pattern(base))
                elif not is_unresolved(base) and "*" not in base:
                    self.inputs.append((base, refs.get(p.name, SourceRef("?", 1)), scope.stack))

    # ------------------------------------------------------------------ the end
    def finish(self) -> list[Problem]:
        for name, ref, stack in self.inputs:
            if Path(name).exists() or any(pat.fullmatch(name) for pat in self.outputs):
                continue
            self.add(ref, f"input file {name} does not exist and no operation of this procedure "
                     "writes it", "warning" if self.shell else "error", stack)
        known = self.globals | self.presets
        for scope in self.scopes:
            for name, ref in scope.uses.items():
                if name not in scope.sets and name not in known:
                    self.add(ref, f"[{name}] is read but never set in this procedure",
                             "warning", scope.stack)
        top = self.problems[0].ref.file if self.problems else ""
        top = self.scopes[0].name if self.scopes else top
        self.problems.sort(key=lambda p: (p.ref.file != top, p.ref.file, p.ref.line, p.ref.col))
        return self.problems


def _pattern(name: str) -> re.Pattern:
    """A regular expression for the files an output name with variables may produce."""
    out, i = [], 0
    for m in re.finditer(r"\[[^\]]*\]|\{[^}]*\}|\$\{[^}]*\}|\*+", name):
        out.append(re.escape(name[i:m.start()]))
        out.append(r"\d+" if m.group(0).startswith("*") else r".*")
        i = m.end()
    out.append(re.escape(name[i:]))
    return re.compile("".join(out))


def check_file(path: str | Path, registry=None, data_ext: str = "spi",
               project_ext: str | None = None, presets: dict | None = None) -> list[Problem]:
    """Every problem found in a procedure file and the procedures it calls.

    Args:
        path: the procedure.
        registry: the operations (default: discover them).
        data_ext: the data extension the run will use.
        project_ext: extension of called procedures (default: that of ``path``).
        presets: names the run will preset with ``--set`` (they count as set).
    """
    p = Path(path)
    checker = Checker(registry, data_ext, project_ext or p.suffix.lstrip(".") or "spi", presets)
    if not p.is_file():
        return [Problem(SourceRef(str(path), 1), "no such procedure file")]
    checker.check(p)
    if checker.scopes and checker.scopes[0].forward_refs:
        checker.add(checker.scopes[0].forward_refs[0], "this answer asks the caller "
                    "(?question?), but a procedure run by 'emsh run' has no caller", "error")
    return checker.finish()
