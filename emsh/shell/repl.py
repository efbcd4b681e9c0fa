"""The interactive shell on a terminal: prompt_toolkit wiring only.

Two prompt sessions share the terminal: one for statements (``emsh>``, saved history,
suggestions from it, completion of codes and variables) and one for an operation's
questions (`` .INPUT FILE:`` as SPIDER asks them, completion fitted to the prompt's
kind, a toolbar saying what the answer takes). Everything else is done by
:class:`~emsh.shell.engine.ShellEngine` and :mod:`~emsh.shell.completion`.

Keys: Ctrl-C at a prompt drops the line (or the block being typed); Ctrl-C or Ctrl-D at
a question cancels the operation; Ctrl-D at the statement prompt leaves the shell.
"""

from __future__ import annotations

from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.history import FileHistory, History, InMemoryHistory

from emsh.help import prompt_hint
from emsh.shell.completer import CandidateCompleter
from emsh.shell.completion import complete_answer, complete_statement

__all__ = ["PromptShell", "PROMPT", "CONTINUATION"]

PROMPT = "emsh> "
CONTINUATION = "  ... "


def _history(path: Path | None) -> History:
    if path is None:
        return InMemoryHistory()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    except OSError:
        return InMemoryHistory()  # a read-only home: the shell still works
    return FileHistory(str(path))


class PromptShell:
    """A prompt_toolkit front end for a :class:`~emsh.shell.engine.ShellEngine`.

    Args:
        engine: runs what is typed; its session's ``ask`` is pointed at this shell.
        history: file of the statement history (None: kept in memory only).
        input, output: prompt_toolkit input/output (tests pass a pipe and DummyOutput).
    """

    def __init__(self, engine, *, history: Path | None = None, input=None, output=None):
        self.engine = engine
        session = engine.session
        session.ask = self.ask
        session.report = lambda exc: engine.error(_reason(exc))
        self.statements = PromptSession(
            history=_history(history), input=input, output=output,
            completer=CandidateCompleter(self._complete_statement),
            auto_suggest=AutoSuggestFromHistory(), complete_while_typing=True)
        self.answers = PromptSession(
            history=InMemoryHistory(), input=input, output=output,
            completer=CandidateCompleter(self._complete_answer), complete_while_typing=False)
        self._asking = None

    # ------------------------------------------------------------------ completion
    def _complete_statement(self, before: str):
        s = self.engine.session
        return complete_statement(before, s.registry, self.engine.variables(),
                                  project_ext=s.project_ext)

    def _complete_answer(self, before: str):
        return complete_answer(before, self._asking, self.engine.variables())

    # ------------------------------------------------------------------ questions
    def ask(self, question: str) -> str:
        """Ask an operation's question; Ctrl-C or Ctrl-D cancels the operation.

        ``question`` is a :class:`~emsh.lang.answers.Question`: its ``prompt`` (the spec,
        or None for a question forwarded by ``?text?``) drives completion and the toolbar.
        """
        self._asking = getattr(question, "prompt", None)
        hint = prompt_hint(self._asking) if self._asking is not None else None
        self.answers.bottom_toolbar = f" {hint}" if hint else None  # None: no toolbar
        try:
            return self.answers.prompt(f" .{question.strip()}: ")
        except EOFError:
            raise KeyboardInterrupt from None
        finally:
            self._asking = None

    # ------------------------------------------------------------------ the loop
    def loop(self) -> int:
        """Read and run statements until Ctrl-D or ``EN``; returns the exit status (0)."""
        while not self.engine.finished:
            message = CONTINUATION if self.engine.in_block else PROMPT
            try:
                line = self.statements.prompt(message)
            except KeyboardInterrupt:
                self.engine.cancel()
                continue
            except EOFError:
                break
            try:
                self.engine.push(line)
            except KeyboardInterrupt:  # Ctrl-C while help was printing
                self.engine.cancel()
                self.engine.error("cancelled")
        return 0


def _reason(exc) -> str:
    """A rejected answer's reason, without the location of the terminal line."""
    return getattr(exc, "reason", None) or str(exc).splitlines()[0]
