"""Running one operation line: its answers, its options, the call, its outputs.

The call is serial, or under MPI either on rank 0 alone (``mpi='root'``: the outputs,
the variables the operation set and any error are broadcast, so every rank goes on, or
fails, at the same statement) or on every rank with the communicator (``mpi='all'``: an
error there concerns one rank only and is marked ``collective=False``).
"""

from __future__ import annotations

import os

import numpy as np

from emsh.context import OpContext
from emsh.errors import EmshError, ProcedureError
from emsh.lang import ast
from emsh.lang.parser import parse_expression
from emsh.lang.prompts import answer_operation
from emsh.parallel import SerialComm
from emsh.spec import check_values, parse_yesno

__all__ = ["run_operation", "RuntimeResolver"]


def run_operation(interp, frame, stmt: ast.OpLine, i: int, answers=None) -> None:
    """Read the answers of the operation on line ``i``, call it, store its outputs."""
    frame.pc = i + 1
    s = interp.s
    op = s.registry.get(stmt.code)
    try:
        impl = s.registry.implementation(op)
    except EmshError as exc:
        raise interp.error(frame, stmt.ref, str(exc)) from None
    kwargs = answer_operation(op, answers or frame.answers, RuntimeResolver(interp, frame),
                              stmt.ref, registers=tuple(stmt.registers or ()))
    kwargs.update(_options(interp, frame, op, stmt))
    if op.inline == "raw":
        kwargs["inline"] = stmt.rest
    result = _call_impl(interp, frame, op, impl, kwargs, stmt)
    _store_outputs(interp, frame, op, stmt, result)


def _options(interp, frame, op, stmt: ast.OpLine) -> dict:
    out = {}
    for f in op.options:
        if f.name not in stmt.options:
            if f.required:
                raise interp.error(frame, stmt.ref, f"{op.code} needs the option {f.name}=...")
            out[f.name] = f.default
            continue
        text, col = stmt.options[f.name]
        try:
            if f.type == "str":
                value = interp.expand(frame, text, "text")
            elif f.type == "yesno":
                value = parse_yesno(interp.expand(frame, text, "text"))
            else:
                value = interp.eval(frame, parse_expression(text), stmt.ref, col - 1)
            out[f.name] = check_values(f, value)
        except ProcedureError as exc:
            if exc.ref.file == "<expression>":
                raise interp.error(frame, stmt.ref.at(col + exc.ref.col - 1), exc.reason) from None
            raise
        except EmshError as exc:
            raise interp.error(frame, stmt.ref.at(col), f"option {f.name}: {exc}") from None
    return out


def _call_impl(interp, frame, op, impl, kwargs: dict, stmt: ast.OpLine):
    s, comm = interp.s, interp.s.comm
    local_comm = comm if op.mpi == "all" else SerialComm()
    ctx = OpContext(op=op, comm=local_comm, session=s, rng=s.new_rng(), state=s.state)
    s.frame = frame
    try:
        if comm.size == 1:
            return _invoke(interp, frame, op, impl, ctx, kwargs, stmt, True)
        if op.mpi == "all":
            result = _invoke(interp, frame, op, impl, ctx, kwargs, stmt, False)
            return comm.bcast(result)
        payload = None
        if comm.rank == 0:
            s.start_recording()
            try:
                result = _invoke(interp, frame, op, impl, ctx, kwargs, stmt, True)
                payload = ("ok", result, s.stop_recording())
            except ProcedureError as exc:
                s.stop_recording()
                payload = ("err", str(exc), exc.reason)
                error = exc
        payload = comm.bcast(payload)
        if payload[0] == "err":
            if comm.rank == 0:
                raise error
            raise interp.error(frame, stmt.ref, payload[2])
        if comm.rank != 0:
            s.replay(payload[2])
        return payload[1]
    finally:
        s.frame = None


def _invoke(interp, frame, op, impl, ctx, kwargs, stmt, collective):
    try:
        return impl(ctx, **kwargs)
    except EmshError as exc:
        raise interp.error(frame, stmt.ref, str(exc), collective) from exc
    except Exception as exc:  # a bug in an operation: still report where it happened
        if os.environ.get("EMSH_DEBUG"):
            raise
        raise interp.error(frame, stmt.ref, f"{op.code} failed with an internal error "
                         f"({type(exc).__name__}: {exc}); set EMSH_DEBUG=1 for the traceback",
                           collective) from exc


def _store_outputs(interp, frame, op, stmt: ast.OpLine, result) -> None:
    if not stmt.registers:
        return
    if result is None:
        values = ()
    elif isinstance(result, dict):
        values = tuple(result[n] for n in op.outputs if n in result)
    elif isinstance(result, (tuple, list)):
        values = tuple(result)
    else:
        values = (result,)
    if len(values) < len(stmt.registers):
        raise interp.error(frame, stmt.ref, f"{op.code} returned {len(values)} value(s) for "
                           f"{len(stmt.registers)} registers")
    for name, value in zip(stmt.registers, values):
        if not isinstance(value, str):
            arr = np.asarray(value)
            if arr.size != 1 or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
                raise interp.error(frame, stmt.ref, f"{op.code} returned {value!r} for "
                                   f"[{name}], not a number")
            value = float(arr.reshape(()))
        interp.assign(frame, name, value)


class RuntimeResolver:
    """The interpreter's side of :func:`emsh.lang.prompts.answer_operation`: variables of
    the frame that owns each answer line (the caller's, for forwarded answers)."""

    def __init__(self, interp, frame):
        self.i, self.frame = interp, frame
        self.data_ext = interp.s.data_ext
        self.session = interp.s  # what ``when`` predicates see as ``answers.session``

    def _owner(self, line):
        return line.owner if hasattr(line.owner, "ns") else self.frame

    def substitute(self, text, mode, line):
        try:
            return self.i.expand(self._owner(line), text, mode)
        except EmshError as exc:
            raise self.fail(line.ref, str(exc)) from None

    def evaluate(self, expr, line, col):
        return self.i.eval(self._owner(line), expr, line.ref, col - 1)

    def selection(self, path, line):
        def read():
            from emsh.io.docfile import read_doc

            doc = read_doc(path)
            return [int(v) for v in doc.values[:, 0]] if doc.values.size else []

        try:
            return self.i.s.root_call(read)
        except EmshError as exc:
            raise self.fail(line.ref, f"selection file: {exc}") from None

    def forward(self, question, line):
        owner = self._owner(line)
        source = owner.upstream
        if source is None:
            return None
        return source.next(question)

    def assign_string(self, name, value, line):
        self.i.assign(self._owner(line), name, value)

    def log(self, text):
        self.i.s.results.write(text)

    def fail(self, ref, message):
        frame = self.frame  # the calls above the procedure the line belongs to
        while frame.caller is not None and frame.proc.name != ref.file:
            frame = frame.caller
        return self.i.error(frame if frame.proc.name == ref.file else self.frame, ref, message)

    def undecidable(self, prompt, ref):  # pragma: no cover - only the checker meets this
        pass
