"""The shell without its terminal: lines in, statements run, one-line errors out.

:class:`ShellEngine` is shared by the prompt_toolkit front end (:mod:`emsh.shell.repl`)
and the plain one that reads piped input (:mod:`emsh.shell.plain`). A front end reads a
line and calls :meth:`ShellEngine.push`; the engine

* answers ``HELP``, ``HELP <op>`` and ``<op> ?`` from the operation specs;
* collects the lines of a ``DO``/``IF`` block until it is closed, then runs it as one
  piece of procedure text (the block's operations take their answers from the block);
* runs any other line as one statement, whose operation asks its questions through
  the session's ``ask`` (the front end);
* prints an :class:`~emsh.errors.EmshError` on one line and carries on; treats
  KeyboardInterrupt as "cancel this statement"; logs any other exception (a bug in
  emsh) with its traceback to a file and carries on.
"""

from __future__ import annotations

import re
import sys
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from emsh import __version__
from emsh.errors import EmshError, ProcedureError
from emsh.help import lookup, render_help, render_list
from emsh.lang import parser as _parser
from emsh.lang.parser import is_complete, strip_comment
from emsh.spec import Operation

__all__ = ["ShellEngine", "format_error", "SHELL_HELP"]

SHELL_HELP = """\
Type an operation code (FS, RT SQ, ...) and answer its questions, or any statement of
the procedure language ([x] = 2*[y], DO ... ENDDO, IF ... ENDIF, @proc, [x] to print).
  HELP <op>  or  <op> ?     what an operation asks, its outputs and options
  Tab                       complete codes, [variables], file names at file questions
  Ctrl-C                    cancel the line, the block being typed or the operation
  Ctrl-D or EN              leave the shell
Operations:"""

# the parser's hint about surplus answer lines means nothing for a line typed on its own
_ANSWER_HINT = getattr(_parser, "_ANSWER_HINT", "\0")
_HELP = re.compile(r"^(HELP|\?)(?:\s+(?P<code>.*))?$", re.I)
_QUERY = re.compile(r"^(?P<code>[A-Za-z0-9][A-Za-z0-9: ]*?)\s*\?$")


def format_error(exc: EmshError, block_lines: int = 1) -> str:
    """One line for an error met in the shell.

    A located error in what was typed shows its reason (and, for a block, its line); one
    in a procedure file keeps ``file:line:col``. Other errors show their first line.
    """
    ref = getattr(exc, "ref", None)
    reason = getattr(exc, "reason", None)
    if isinstance(exc, ProcedureError) and ref is not None and reason is not None:
        if ref.file == "<shell>":
            reason = reason.replace(_ANSWER_HINT, "") if block_lines <= 1 else reason
            text = reason if block_lines <= 1 else f"line {ref.line} of the block: {reason}"
        else:
            text = f"{ref}: {reason}"
    else:
        text = str(exc).strip()
    return " ".join(text.splitlines()[:1]) if text else type(exc).__name__


class ShellEngine:
    """Runs what is typed in the shell against a :class:`emsh.session.Session`.

    Args:
        session: the session (its ``ask`` is set by the front end).
        err: where errors go (default ``sys.stderr``); printed on rank 0 only.
        bug_log: file that receives tracebacks of internal errors (default: the user's
            data folder, see :mod:`emsh.shell.paths`).

    Attributes:
        failed: the last statement ended with an error (or was cancelled).
        errors: how many statements ended with an error.
        current_op: the operation of the statement running now, or None. (Its questions
            reach the front end's ``ask`` as :class:`~emsh.lang.answers.Question` s, which
            carry their prompt specs.)
    """

    def __init__(self, session, *, err: TextIO | None = None, bug_log: Path | None = None):
        self.session = session
        self.err = err
        if bug_log is None:
            from emsh.shell.paths import bug_log_path

            bug_log = bug_log_path()
        self.bug_log = Path(bug_log)
        self.pending: list[str] = []
        self.failed = False
        self.errors = 0
        self.current_op: Operation | None = None

    # ------------------------------------------------------------------ state for front ends
    @property
    def finished(self) -> bool:
        """True after ``EN``."""
        return bool(self.session.ended)

    @property
    def in_block(self) -> bool:
        """True while a ``DO``/``IF`` block is being typed."""
        return bool(self.pending)

    def variables(self) -> dict[str, Any]:
        """The variables a typed statement sees: globals, then the shell's own."""
        return {**self.session.globals, **self.session.top_ns}

    # ------------------------------------------------------------------ output
    def _print(self, text: str, stream: TextIO | None) -> None:
        if self.session.comm.rank == 0:
            print(text, file=stream or sys.stdout, flush=True)

    def out(self, text: str) -> None:
        """Print to the session's output (rank 0)."""
        self._print(text, self.session.out)

    def error(self, text: str) -> None:
        """Print one error line (rank 0)."""
        self._print(f"emsh: {text}", self.err or sys.stderr)

    # ------------------------------------------------------------------ input
    def cancel(self) -> None:
        """Forget a block being typed (Ctrl-C at the prompt)."""
        self.pending.clear()

    def push(self, line: str) -> bool:
        """Take one typed line; run it when it completes a statement or block.

        Returns:
            True when more lines are needed (an open ``DO``/``IF`` block).
        """
        if not self.pending:
            code = strip_comment(line).strip()
            if not code:
                return False
            if self._special(code):
                return False
        self.pending.append(line)
        text = "\n".join(self.pending)
        if not is_complete(text):
            return True
        self.pending = []
        self.run(text)
        return False

    def _special(self, code: str) -> bool:
        """``HELP``, ``HELP <op>``, ``<op> ?``: answered here, not by the language."""
        m = _HELP.match(code)
        if m:
            self.failed = False
            if m.group("code"):
                self._help(m.group("code"))
            else:
                self.out(f"{SHELL_HELP}\n{render_list(self.session.registry)}")
            return True
        m = _QUERY.match(code)
        if m and m.group("code") in self.session.registry:
            self.failed = False
            self._help(m.group("code"))
            return True
        return False

    def _help(self, code: str) -> None:
        try:
            self.out(render_help(lookup(self.session.registry, code)))
        except EmshError as exc:
            self.failed = True
            self.error(str(exc))

    # ------------------------------------------------------------------ running
    def run(self, text: str) -> None:
        """Run a statement (one line) or a closed block (several lines)."""
        n_lines = len([ln for ln in text.splitlines() if strip_comment(ln).strip()])
        s = self.session
        self.failed = True
        try:
            if n_lines <= 1:
                found = s.registry.match(strip_comment(text))
                self.current_op = found[0] if found else None
                s.run_statement(text.strip())
            else:
                s.run_text(text, "<shell>")
            self.failed = False
        except KeyboardInterrupt:
            self.error("cancelled")
        except EmshError as exc:
            self.errors += 1
            self._mpi_abort_if_alone(exc)
            self.error(format_error(exc, n_lines))
        except Exception as exc:  # a bug in emsh: say where the traceback went, go on
            self.errors += 1
            self._bug(exc, text)
        finally:
            self.current_op = None
            s.flush_log()

    def _mpi_abort_if_alone(self, exc: EmshError) -> None:
        """An error met by one MPI rank only would leave the others waiting: end the job."""
        comm = self.session.comm
        if comm.size > 1 and not getattr(exc, "collective", True):
            print(f"emsh: rank {comm.rank}: {format_error(exc)}", file=sys.stderr, flush=True)
            comm.abort(1)

    def _bug(self, exc: BaseException, text: str) -> None:
        where = self.bug_log
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
            with open(where, "a", encoding="utf-8") as fh:
                fh.write(f"--- {datetime.now():%Y-%m-%d %H:%M:%S} emsh {__version__}\n")
                fh.write(f"input:\n{text}\n")
                traceback.print_exception(type(exc), exc, exc.__traceback__, file=fh)
            tail = f"the traceback is in {where}"
        except OSError:
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
            tail = "the traceback is above"
        self.error(f"internal error ({type(exc).__name__}: {exc}); this is a bug in emsh, "
                   f"{tail}")
