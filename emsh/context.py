"""What every operation implementation receives as ``ctx``.

The interpreter builds one :class:`OpContext` per operation call. Implementations
never read the terminal and never print: they log through :meth:`OpContext.log`
(the results file, rank 0 only), use :attr:`comm` to split work under MPI, and reach
the running program's registers and per-session state through the methods below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from emsh.errors import OperationError
from emsh.parallel import SerialComm
from emsh.spec import Operation


class SessionAPI(Protocol):
    """The part of the interpreter's session that operations may use."""

    data_ext: str
    project_ext: str
    state: dict  # per-session storage; OpContext.state is this dict
    settings: dict  # MD options, e.g. {"VB": "OFF", "SET SEED": "5"}
    verbose: bool  # False after MD VB OFF: fewer lines in the results log

    def get_register(self, name: str) -> float: ...
    def set_register(self, name: str, value: float) -> None: ...
    def get_string(self, name: str) -> str: ...
    def set_string(self, name: str, value: str) -> None: ...
    def set_global(self, name: str, value: float | str) -> None: ...
    def evaluate(self, expression: str) -> float: ...
    def substitute(self, text: str) -> str: ...
    def log(self, text: str) -> None: ...
    def flush_log(self) -> None: ...
    def set_seed(self, seed: int) -> None: ...
    def ask_caller(self, question: str) -> str: ...  # FR: one line from the caller's lines


@dataclass
class OpContext:
    """Context of one operation call.

    Attributes:
        op: the operation's specification.
        comm: the communicator (size 1 when not under MPI).
        session: the interpreter session (registers, substitution, results log).
        rng: seeded generator, identical on every rank (``MD SET SEED`` sets the seed).
        state: per-session storage for operations that keep things between calls
            (open doc files of ``SD``, in-core docs of ``UD IC``, inline stacks); use
            :meth:`shared_state`.
    """

    op: Operation
    comm: SerialComm
    session: SessionAPI
    rng: Any
    state: dict = field(default_factory=dict)

    @property
    def is_root(self) -> bool:
        """True on rank 0, the rank that writes shared files and prints."""
        return self.comm.rank == 0

    def log(self, text: str) -> None:
        """Write a line to the results log (and the terminal when interactive); rank 0 only."""
        if self.is_root:
            self.session.log(text)

    def check(self, condition: bool, message: str, prompt: str | None = None) -> None:
        """Raise :class:`OperationError` naming this operation (and prompt) unless ``condition``."""
        if not condition:
            raise OperationError(message, code=self.op.code, prompt=prompt)

    def shared_state(self, key: str, factory: Callable[[], Any]) -> Any:
        """Per-session object stored under ``key``, created by ``factory`` on first use."""
        if key not in self.state:
            self.state[key] = factory()
        return self.state[key]
