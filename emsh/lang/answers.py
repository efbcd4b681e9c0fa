"""Answers to an operation's prompts: where they come from.

An operation declares its prompts (:class:`emsh.spec.Prompt`); each prompt is one
answer line. The lines come from an :class:`AnswerSource`:

* :class:`ScriptAnswers`: the next non-blank, non-comment lines of a procedure (SPIDER's
  rule), advancing the procedure's cursor;
* :class:`InteractiveAnswers`: a person at the terminal (rank 0 asks, all ranks get the
  answer); a bad answer is reported and asked again;
* :class:`ListAnswers`: a list of strings, for tests and for programs driving emsh.

:func:`emsh.lang.prompts.answer_operation` reads them, prompt by prompt. An answer
that starts with ``?question?`` is forwarded to the caller's lines (or the terminal);
with ``?question?[var]`` the answer is also stored in ``[var]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from emsh.errors import EmshError
from emsh.lang.ast import SourceRef

__all__ = ["AnswerLine", "AnswerSource", "ScriptAnswers", "ListAnswers", "InteractiveAnswers",
           "Question", "as_question", "UNKNOWN", "Undecidable", "FORWARD"]

#: ``?question?`` or ``?question?[var]``: an answer the caller gives.
FORWARD = re.compile(r"^\s*\?([^?]*)\?\s*(?:\[([A-Za-z_][A-Za-z0-9_\-]*)\])?\s*$")


class _Unknown:
    """A value known only at run time (used by ``emsh check``)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


class Undecidable(Exception):
    """A ``when`` condition read a value known only at run time."""


@dataclass
class AnswerLine:
    """One answer line.

    Attributes:
        text: the line without its comment (raw for ``line`` prompts); leading blanks kept.
        ref: where it is (``ref.text`` is the whole source line).
        owner: whose variables resolve it (an interpreter frame; None: the current one).
        source: the source it came from (a trailing comma continues from the same source).
        interactive: typed by a person (an empty answer takes the prompt's default).
        unknown: its value is known only at run time (static checking).
    """

    text: str
    ref: SourceRef
    owner: Any = None
    source: Any = None
    interactive: bool = False
    unknown: bool = False


class Question(str):
    """A question's text that also carries the :class:`~emsh.spec.Prompt` it asks.

    It is a ``str`` (SPIDER's prompt text), so every ``next(question)`` and
    ``ask(question)`` that takes text keeps working; front ends read :attr:`prompt` to
    complete and explain the answer from the specification itself. A question forwarded
    by ``?text?`` from a procedure, or asked by ``FR``, has no specification: its
    :attr:`prompt` is None.

    Attributes:
        prompt: the prompt being answered, or None.
    """

    __slots__ = ("prompt",)

    def __new__(cls, text: str, prompt: Any = None) -> Question:
        self = super().__new__(cls, text)
        self.prompt = prompt
        return self


def as_question(question: str) -> Question:
    """``question`` as a :class:`Question` (plain text gets ``prompt`` None)."""
    return question if isinstance(question, Question) else Question(question)


class AnswerSource(Protocol):
    def next(self, question: str, raw: bool = False) -> AnswerLine | None:
        """The next answer line (None when there is none); ``question`` may be a
        :class:`Question` carrying the prompt spec."""


class ScriptAnswers:
    """The lines after the current one in a procedure: ``cursor`` has ``proc`` and ``pc``."""

    def __init__(self, cursor, owner=None):
        self.cursor, self.owner = cursor, owner if owner is not None else cursor

    def peek(self) -> str | None:
        """The next non-blank line without its comment, without moving on (None at the end)."""
        proc = self.cursor.proc
        return next((proc.code[i] for i in range(self.cursor.pc, len(proc.code))
                     if proc.code[i].strip()), None)

    def next(self, question: str, raw: bool = False) -> AnswerLine | None:
        proc = self.cursor.proc
        while self.cursor.pc < len(proc.code):
            i = self.cursor.pc
            self.cursor.pc += 1
            if not proc.code[i].strip():
                continue
            text = proc.lines[i].lstrip() if raw else proc.code[i]
            col = len(proc.lines[i]) - len(proc.lines[i].lstrip()) + 1
            return AnswerLine(text, proc.ref(i, col), self.owner, self)
        return None


class ListAnswers:
    """Answers given as a list of strings (tests, programs)."""

    def __init__(self, lines: Iterable[str], name: str = "<answers>", owner=None):
        self.lines, self.name, self.owner, self.n = list(lines), name, owner, 0

    def next(self, question: str, raw: bool = False) -> AnswerLine | None:
        from emsh.lang.parser import strip_comment

        while self.n < len(self.lines):
            line = self.lines[self.n]
            self.n += 1
            code = strip_comment(line)
            if code.strip():
                return AnswerLine(line if raw else code, SourceRef(self.name, self.n, 1, line),
                                  self.owner, self)
        return None


class InteractiveAnswers:
    """Answers typed at the terminal: ``ask(question) -> str`` runs on rank 0 only.

    Args:
        ask: shows the question, returns the typed line (raise EOFError to give up). The
            question is always a :class:`Question`: its text, and in ``.prompt`` the
            :class:`~emsh.spec.Prompt` being answered (None for a forwarded ``?text?``
            or an ``FR`` question), so a front end needs no lookup by text.
        comm: the communicator; the answer is broadcast to every rank.
        report: shows a rejected answer's error before asking again (default: print).
    """

    def __init__(self, ask: Callable[[str], str], comm=None,
                 report: Callable[[EmshError], None] | None = None):
        self.ask, self.comm, self.n = ask, comm, 0
        self._report = report or (lambda exc: print(f"emsh: {exc}"))

    def report(self, exc: EmshError) -> None:
        """Show why an answer was rejected (rank 0 only); the prompt is then asked again."""
        if self.comm is None or self.comm.rank == 0:
            self._report(exc)

    def next(self, question: str, raw: bool = False) -> AnswerLine | None:
        from emsh.lang.parser import strip_comment

        text = None
        if self.comm is None or self.comm.rank == 0:
            try:
                text = self.ask(as_question(question))
            except EOFError:
                text = None
        if self.comm is not None and self.comm.size > 1:
            text = self.comm.bcast(text)
        if text is None:
            return None
        self.n += 1
        return AnswerLine(text if raw else strip_comment(text),
                          SourceRef("<terminal>", self.n, 1, text), None, self, interactive=True)
