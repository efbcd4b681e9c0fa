"""A running emsh session: operations, communicator, variables, results log, seed.

One :class:`Session` serves a batch run (``emsh run proc.spi``) and the interactive
shell. It owns the operation registry, the communicator, the global variables and the
top-level variables of the shell, the data and project extensions, the SPIDER-style
results log, the random seed and the per-session state of operations (open doc files,
in-core docs, inline stacks). It implements :class:`emsh.context.SessionAPI`, the view
operations get of it through ``ctx.session``: those calls act on the procedure whose
operation is running.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np

from emsh import __version__
from emsh.errors import EmshError, ProcedureError, UsageError
from emsh.lang.answers import FORWARD, InteractiveAnswers
from emsh.lang.ast import LocatedError
from emsh.lang.expressions import evaluate as _evaluate
from emsh.lang.expressions import format_number
from emsh.lang.interpreter import EndSession, Frame, Interpreter
from emsh.lang.parser import Procedure, parse_expression

__all__ = ["Session", "ResultsLog", "DEFAULT_SEED"]

#: Seed of the session's random numbers until ``MD`` ``SET SEED`` changes it; every run
#: is repeatable unless the procedure asks otherwise.
DEFAULT_SEED = 0


class ResultsLog:
    """SPIDER's results file: each statement, each prompt with its answer, operation messages.

    Written by rank 0 only; opened (for appending) on the first line.
    """

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path is not None else None
        self._fh: TextIO | None = None

    @staticmethod
    def next_path(folder: str | os.PathLike, project_ext: str) -> Path:
        """``results.<prj>.<n>`` with n one more than the highest already there."""
        pat = re.compile(rf"^results\.{re.escape(project_ext)}\.(\d+)$")
        taken = [int(m.group(1)) for p in Path(folder).iterdir() if (m := pat.match(p.name))]
        return Path(folder) / f"results.{project_ext}.{max(taken, default=0) + 1}"

    def write(self, text: str) -> None:
        if self.path is None:
            return
        if self._fh is None:
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write(text + "\n")

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class Session:
    """Registry, communicator, variables and logs of one emsh run or shell.

    Args:
        registry: the operations (default: :meth:`emsh.registry.Registry.discover`).
        comm: the communicator (default: :func:`emsh.parallel.get_comm`).
        data_ext: appended to file names that have no extension (SPIDER's data extension).
        project_ext: extension of procedure files (``@name`` finds ``name.<project_ext>``).
        results: path of the results log, True for ``results.<prj>.<n>`` in the current
            folder, None for none.
        seed: initial seed of the random numbers (``MD`` ``SET SEED`` replaces it).
        out: where messages go (default ``sys.stdout``); rank 0 only.
        ask: ``ask(question) -> str`` for interactive answers (the shell), or None.
        report: shows why an interactive answer was rejected before it is asked again
            (default: print it).
        echo: print operation messages as well as logging them.
    """

    def __init__(self, registry=None, comm=None, *, data_ext: str = "spi",
                 project_ext: str = "spi", results: str | os.PathLike | bool | None = None,
                 seed: int = DEFAULT_SEED, out: TextIO | None = None,
                 ask: Callable[[str], str] | None = None, echo: bool = True,
                 report: Callable[[EmshError], None] | None = None):
        if registry is None:
            from emsh.registry import Registry

            registry = Registry.discover()
        if comm is None:
            from emsh.parallel import get_comm

            comm = get_comm()
        self.registry, self.comm = registry, comm
        self.data_ext, self.project_ext = data_ext.lstrip("."), project_ext.lstrip(".")
        self.globals: dict[str, Any] = {}
        self.top_ns: dict[str, Any] = {}
        self.state: dict = {}
        self.settings: dict[str, str] = {}
        self.procedures: dict[str, Procedure] = {}
        self.out, self.ask, self.echo, self.report = out, ask, echo, report
        self.verbose = True
        self.ended = False
        self.frame: Frame | None = None
        self.last_vars: dict[str, Any] = {}  # variables of the last run_file, for inspection
        self._recording: list | None = None
        if results is True:
            results = ResultsLog.next_path(Path.cwd(), self.project_ext) if comm.rank == 0 else None
        self.results = ResultsLog(results if results and comm.rank == 0 else None)
        self.set_seed(seed)
        self.interp = Interpreter(self)
        now = datetime.now()
        self.results.write(f" emsh {__version__}   {now.day:02d}-{now:%b}-{now.year} AT "
                           f"{now:%H:%M:%S}".replace(f"{now:%b}", f"{now:%b}".upper()))
        self.results.write(f"  Project extension: {self.project_ext}   "
                           f"Data extension: {self.data_ext}\n")

    # ------------------------------------------------------------------ output
    def say(self, text: str) -> None:
        """Print (rank 0) and log a line."""
        self.results.write(text)
        if self.comm.rank == 0:
            print(text, file=self.out or sys.stdout, flush=True)

    def log(self, text: str) -> None:
        """SessionAPI: an operation's message, to the results log (and the terminal)."""
        if self.echo:
            self.say(text)
        else:
            self.results.write(text)

    def flush_log(self) -> None:
        """SessionAPI: flush the results log (``MY FL``)."""
        self.results.flush()
        if self.comm.rank == 0:
            (self.out or sys.stdout).flush()

    def close(self) -> None:
        """End the session: close what operations keep open, then the results log.

        Every value of :attr:`state` that has a ``close()`` method (the doc files ``SD``
        keeps open, for instance) is closed and dropped from the state, so a second call
        closes nothing twice. The results log is closed even when one of them fails; the
        first such error is raised afterwards.
        """
        failure: BaseException | None = None
        try:
            for key in list(self.state):
                close = getattr(self.state[key], "close", None)
                if not callable(close):
                    continue
                del self.state[key]
                try:
                    close()
                except Exception as exc:  # noqa: BLE001 - close the rest, then report
                    failure = failure or exc
        finally:
            self.results.close()
        if failure is not None:
            raise failure

    # ------------------------------------------------------------------ random numbers
    def set_seed(self, seed: int) -> None:
        """SessionAPI: restart the session's random numbers from ``seed`` (``MD SET SEED``)."""
        self.seed = int(seed)
        self._seeds = np.random.SeedSequence(self.seed)
        self.expr_rng = np.random.default_rng(self._seeds.spawn(1)[0])

    def new_rng(self) -> np.random.Generator:
        """A generator for one operation call: the same on every rank, new for each call."""
        return np.random.default_rng(self._seeds.spawn(1)[0])

    # ------------------------------------------------------------------ variables (SessionAPI)
    def _frame(self) -> Frame:
        if self.frame is None:
            return Frame(Procedure("", "<session>"), self.top_ns)
        return self.frame

    @staticmethod
    def _bare(name: str) -> str:
        name = name.strip()
        return name[1:-1] if name.startswith("[") and name.endswith("]") else name

    def get_register(self, name: str) -> float:
        """SessionAPI: value of register ``[name]`` (brackets optional)."""
        try:
            return self.interp.number(self._frame(), self._bare(name), 1)
        except LocatedError as exc:
            raise UsageError(exc.message) from None

    def set_register(self, name: str, value: float) -> None:
        """SessionAPI: set register ``[name]`` in the running procedure."""
        self.interp.assign(self._frame(), self._bare(name), float(value))

    def get_string(self, name: str) -> str:
        """SessionAPI: text of variable ``[name]``, its variables substituted."""
        value = self.interp.lookup(self._frame(), self._bare(name))
        if value is None:
            raise UsageError(f"undefined variable [{self._bare(name)}]")
        if isinstance(value, str):
            return self.substitute(value)
        return format_number(value)

    def set_string(self, name: str, value: str) -> None:
        """SessionAPI: set string variable ``[name]`` in the running procedure."""
        self.interp.assign(self._frame(), self._bare(name), str(value))

    def set_global(self, name: str, value) -> None:
        """SessionAPI: set a global variable (``GLOBAL``, ``FR G``)."""
        self.interp.assign(self._frame(), self._bare(name), value, is_global=True)

    def evaluate(self, expression: str) -> float:
        """SessionAPI: value of an expression in the running procedure's registers."""
        try:
            expr = parse_expression(expression.strip())
            return _evaluate(expr, lambda n, c: self.interp.number(self._frame(), n, c),
                             self.expr_rng)
        except ProcedureError as exc:
            raise UsageError(f"bad expression {expression!r}: {exc.reason}") from None
        except LocatedError as exc:
            raise UsageError(f"{expression!r}: {exc.message}") from None

    def substitute(self, text: str) -> str:
        """SessionAPI: string variables, ``{***[v]}`` templates and ``${ENV}`` in free text."""
        return self.interp.expand(self._frame(), text, "text")

    def ask_caller(self, question: str) -> str:
        """SessionAPI: read one answer line from the caller of the running procedure (``FR``),
        forwarding again when that line is itself ``?question?``; variables are substituted."""
        frame = self._frame()
        pending: list = []
        while True:
            source = frame.upstream
            if source is None:
                source = self.interactive()
            if source is None:
                raise UsageError(f"nothing answers ?{question}?: no lines follow the call and "
                                 "no terminal is attached")
            line = source.next(question)
            if line is None:
                raise UsageError(f"nothing answers ?{question}?: the caller has no more lines")
            m = FORWARD.match(line.text)
            if not m or not isinstance(line.owner, Frame):
                break
            frame = line.owner
            if m.group(2):
                pending.append((frame, m.group(2)))
        owner = line.owner if isinstance(line.owner, Frame) else frame
        text = line.text.strip()
        try:
            value = self.interp.expand(owner, text, "file")
        except EmshError:
            value = self.interp.expand(owner, text, "text")
        for f, name in pending:
            self.interp.assign(f, name, value)
        return value

    # ------------------------------------------------------------------ MPI helpers
    def start_recording(self) -> None:
        self._recording = []

    def stop_recording(self) -> list:
        rec, self._recording = self._recording or [], None
        return rec

    def record(self, change: tuple) -> None:
        if self._recording is not None:
            self._recording.append(change)

    def replay(self, changes: list) -> None:
        """Apply on this rank the variable changes rank 0 made inside an operation."""
        for scope, name, value in changes:
            self.interp.assign(self._frame(), name, value, is_global=scope == "global")

    def root_call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on rank 0 and give its result (or its error) to every rank."""
        if self.comm.size == 1:
            return fn()
        payload = None
        if self.comm.rank == 0:
            try:
                payload = ("ok", fn())
            except EmshError as exc:
                payload = ("err", str(exc))
            except Exception as exc:  # e.g. an OSError: every rank must still hear of it
                payload = ("err", f"{type(exc).__name__}: {exc}")
        payload = self.comm.bcast(payload)
        if payload[0] == "err":
            raise UsageError(payload[1])
        return payload[1]

    # ------------------------------------------------------------------ running
    def procedure_path(self) -> list[Path]:
        """Extra folders searched for ``@name`` procedures (``EMSH_PROC_PATH``)."""
        return [Path(p) for p in os.environ.get("EMSH_PROC_PATH", "").split(os.pathsep) if p]

    def interactive(self):
        """An answer source reading the terminal, or None when there is no ``ask``."""
        if self.ask is None:
            return None
        return InteractiveAnswers(self.ask, self.comm, self.report)

    def _run(self, frame: Frame) -> None:
        try:
            self.interp.run(frame)
        except EndSession:
            self.ended = True
        finally:
            self.frame = None
            self.results.flush()

    def run_file(self, path: str | os.PathLike, args: dict[str, str] | None = None) -> None:
        """Run a procedure file in a new namespace.

        Args:
            path: the procedure.
            args: ``name -> value`` presets (``--set``): global string variables, and the
                values of the procedure's parameter line ``([a],[b])`` if it has one.

        Raises:
            ProcedureError: located (``file:line:col``, caret, calls) on any error.
        """
        p = Path(path)
        if not p.is_file():
            raise UsageError(f"{path}: no such procedure file")
        args = dict(args or {})
        for name, value in args.items():
            self.globals[self._bare(name)] = str(value)
        proc = self.interp.load(p, str(path))
        ns: dict[str, Any] = {}
        header = proc.header()
        if header is not None:
            missing = [n for n in header.params if n not in args]
            if missing:
                raise UsageError(f"{path} takes ({', '.join(f'[{n}]' for n in header.params)}); "
                                 f"give {', '.join(missing)} with --set NAME=VALUE")
            for n in header.params:
                try:
                    ns[n] = float(args[n])
                except ValueError:
                    ns[n] = args[n]
        self.results.write(f"\n  -- START OF: {proc.name} --\n")
        self.last_vars = ns
        self._run(Frame(proc, ns, upstream=self.interactive()))

    def run_text(self, text: str, source: str = "<text>", answers=None) -> None:
        """Run procedure text in the session's top-level variables (the shell's blocks)."""
        proc = Procedure(text, source)
        if proc.blocks.problems:
            raise proc.blocks.problems[0]
        frame = Frame(proc, self.top_ns, upstream=answers or self.interactive())
        self._run(frame)

    def run_statement(self, text: str, answers=None) -> None:
        """Run one statement typed in the shell; an operation's answers come from ``answers``
        (default: the terminal through ``ask``)."""
        proc = Procedure(text, "<shell>")
        if proc.blocks.problems:
            raise proc.blocks.problems[0]
        source = answers or self.interactive()
        frame = Frame(proc, self.top_ns, upstream=source, answers=source)
        self._run(frame)
