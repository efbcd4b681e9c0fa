"""The one exception family of emsh.

Every error a user can cause is an :class:`EmshError`. Its message says what
failed, where (a file path, a ``file:line:col``, a prompt name) and, where it
can, how to fix it. The shell prints it on one line and carries on; a batch run
prints it and exits non-zero. Any other exception is a bug in emsh.
"""

from __future__ import annotations

from os import PathLike


class EmshError(Exception):
    """Base class of every error emsh raises on purpose."""


class UsageError(EmshError):
    """A bad answer, argument or option value."""


class DataFormatError(EmshError):
    """A file that cannot be read as the format it claims to be.

    The message always starts with the file's path so that a user running a
    long procedure knows which of many files is at fault.
    """

    def __init__(self, path: str | PathLike | None, message: str):
        self.path = None if path is None else str(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class OutputExistsError(EmshError):
    """A write would replace an existing file and the caller did not allow it."""

    def __init__(self, path: str | PathLike):
        self.path = str(path)
        super().__init__(
            f"{self.path}: file exists; delete it first or allow overwriting"
        )


class OperationError(EmshError):
    """An operation rejected its inputs or failed in a known way."""

    def __init__(self, message: str, code: str | None = None, prompt: str | None = None):
        self.code = code
        self.prompt = prompt
        where = code or ""
        if prompt:
            where = f"{where} ({prompt})" if where else prompt
        super().__init__(f"{where}: {message}" if where else message)


class PluginError(EmshError):
    """A plugin whose specification or implementation is broken."""


class ProcedureError(EmshError):
    """An error located in procedure text (syntax or run time).

    Args:
        message: the whole text shown to the user (for located errors: ``file:line:col:
            reason``, the source line with a caret and the chain of callers).
        ref: where the error is (an :class:`emsh.lang.ast.SourceRef`), or None.
        reason: the bare reason, without location (default: ``message``).
        stack: the procedure calls that led there, innermost first (SourceRefs of the
            calling lines).
        collective: True when every MPI rank raises it at the same statement (every
            language error, since all ranks run the same program on the same values);
            False for an error of one rank inside an operation that splits its work.
    """

    def __init__(self, message: str, *, ref=None, reason: str | None = None,
                 stack: tuple = (), collective: bool = True):
        super().__init__(message)
        self.ref = ref
        self.reason = message if reason is None else reason
        self.stack = tuple(stack)
        self.collective = bool(collective)
