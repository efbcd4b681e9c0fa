"""The shell without a terminal: plain lines from a stream (a pipe, a file, CI).

Statements and answers are read line by line, exactly as they would be typed, and run
as they arrive; the output is what ``emsh run`` prints. The first error ends the input
with exit status 1, as a batch run does, since the lines after a failed operation
would otherwise be taken for statements. Under ``mpiexec`` rank 0 reads and every rank
receives each line.
"""

from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["PlainShell"]


class PlainShell:
    """Feeds lines from ``stream`` to a :class:`~emsh.shell.engine.ShellEngine`.

    Args:
        engine: runs the lines; its session's ``ask`` reads the next line of the stream.
        stream: where lines come from (default ``sys.stdin``).
        prompts: write the prompts (to stderr) as a terminal user would see them.
    """

    def __init__(self, engine, stream: TextIO | None = None, prompts: bool = False):
        self.engine = engine
        self.stream = stream if stream is not None else sys.stdin
        self.prompts = prompts
        engine.session.ask = self.ask

    def _read(self, prompt: str) -> str | None:
        """The next line on rank 0 (None at the end of the input)."""
        if self.prompts:
            print(prompt, end="", file=sys.stderr, flush=True)
        line = self.stream.readline()
        return line.rstrip("\r\n") if line else None

    def ask(self, question: str) -> str:
        """The next line answers an operation's question (called on rank 0 only)."""
        line = self._read(f" .{question.strip()}: ")
        if line is None:
            raise EOFError
        return line

    def loop(self) -> int:
        """Run every line; returns 0, or 1 after the first error."""
        comm = self.engine.session.comm
        while not self.engine.finished:
            line = None
            if comm.rank == 0:
                line = self._read("  ... " if self.engine.in_block else "emsh> ")
            if comm.size > 1:
                line = comm.bcast(line)
            if line is None:
                break
            self.engine.push(line)
            if self.engine.failed and not self.engine.in_block:
                return 1
        if self.engine.in_block:
            self.engine.error("the input ended inside a DO or IF block")
            return 1
        return 0
