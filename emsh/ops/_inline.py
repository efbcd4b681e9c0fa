"""Inline (in-memory) files and stacks: SPIDER's ``_1``, ``_2@``, ``_2@5``.

An inline file is numbered 1..99 and lives in the running session, in its ``inline``
state (:func:`store`), so sessions in one process never see each other's. It is created
by ``MS`` or by copying a stack to ``_n@``, written and read through
:mod:`emsh.ops._util` like any file, freed by ``DE _n@`` (:func:`free`). Each one is an
:class:`InlineBuffer`: a float32 block of member slots and the slots written. ``when``
predicates get the session as ``answers.session`` and look with :func:`session_buffers`.

The functions here take parsed answers (:class:`emsh.ops._util.FileRef`: ``.text``,
``.inline``, ``.index``, ``.at``, ``.whole_stack``), so this module does not parse names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from emsh.errors import UsageError

__all__ = ["InlineBuffer", "STATE_KEY", "store", "session_buffers", "shape_in", "make",
           "buffer", "read_members", "put", "free"]

#: Most elements one inline file may hold (8 GiB of float32), refused before allocating.
MAX_ELEMENTS = 2**31


@dataclass
class InlineBuffer:
    """An inline (in-memory) file or stack.

    Attributes:
        shape: numpy shape of one image/volume, (ny, nx) or (nz, ny, nx).
        capacity: number of member slots (1 for a simple inline file).
        is_stack: created as a stack (``_n@``) rather than a simple file (``_n``).
        data: float32 ``(capacity, *shape)``.
        used: which slots have been written.
    """

    shape: tuple[int, ...]
    capacity: int
    is_stack: bool
    data: np.ndarray = field(init=False, repr=False)
    used: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        n = int(np.prod(self.shape)) * self.capacity
        if self.capacity < 1 or n > MAX_ELEMENTS:
            raise UsageError(f"inline stack of {self.capacity} x {self.shape} is not possible")
        self.data = np.zeros((self.capacity,) + tuple(self.shape), np.float32)
        self.used = np.zeros(self.capacity, bool)

    def members(self) -> list[int]:
        """1-based numbers of the written slots."""
        return [int(i) + 1 for i in np.flatnonzero(self.used)]

    def has(self, n: int) -> bool:
        """Whether member ``n`` (1-based) has been written."""
        return 1 <= n <= self.capacity and bool(self.used[n - 1])


#: Key of the inline buffers in a session's ``state`` dict.
STATE_KEY = "inline"


def store(ctx) -> dict[int, InlineBuffer]:
    """The session's inline buffers, by number (created on first use)."""
    return ctx.shared_state(STATE_KEY, dict)


def session_buffers(session) -> Mapping[int, InlineBuffer]:
    """The inline buffers of ``session``, read-only and without creating any.

    For ``when`` predicates, which get the session as ``answers.session``: anything with
    the session's ``state`` dict (a :class:`emsh.session.Session`, an
    :class:`emsh.context.OpContext`) works; None (no session, as in ``emsh check``) or
    an object without state has no inline files.
    """
    state = getattr(session, "state", None)
    buffers = state.get(STATE_KEY) if isinstance(state, Mapping) else None
    return MappingProxyType(buffers) if isinstance(buffers, dict) else MappingProxyType({})


def shape_in(session, num: int) -> tuple[int, ...] | None:
    """The image shape of inline file ``num`` of ``session``; None when it has none."""
    buf = session_buffers(session).get(num)
    return buf.shape if buf is not None else None


def make(ctx, ref, shape, capacity: int) -> InlineBuffer:
    """Create the new inline stack ``ref`` (``_n@``, ``MS``); it must not exist yet."""
    ctx.check(ref.inline is not None and ref.whole_stack,
              f"{ref.text}: expected a new inline stack name such as _1@")
    buffers = store(ctx)
    ctx.check(ref.inline not in buffers,
              f"{ref.text}: inline stack _{ref.inline} exists; delete it first "
              f"(DE _{ref.inline}@)")
    buf = InlineBuffer(tuple(int(s) for s in shape), int(capacity), True)
    buffers[ref.inline] = buf
    return buf


def buffer(ctx, ref) -> InlineBuffer:
    """The inline file ``ref`` names; UsageError when it does not exist."""
    buf = store(ctx).get(ref.inline)
    if buf is None:
        raise UsageError(f"{ref.text}: inline file _{ref.inline} does not exist")
    return buf


def read_members(ctx, ref, numbers: list[int]) -> np.ndarray:
    """Copies of members ``numbers`` (1-based) of inline file ``ref``, as ``(n, *shape)``."""
    buf = buffer(ctx, ref)
    bad = [n for n in numbers if not buf.has(n)]
    if bad:
        raise UsageError(f"{ref.text}: inline stack _{ref.inline} has no image {bad[0]}")
    return buf.data[[n - 1 for n in numbers]].copy()


def put(ctx, ref, data: np.ndarray, numbers: list[int], capacity: int | None) -> None:
    """Write ``data`` ``(n, *shape)`` into members ``numbers`` of inline file ``ref``.

    A missing inline file is created: ``_n`` with one slot, ``_n@`` with ``capacity``
    slots (default: the highest member number written); a member ``_n@m`` of a stack
    that does not exist is refused (create it with ``MS``).
    """
    buffers = store(ctx)
    buf = buffers.get(ref.inline)
    shape = data.shape[1:]
    if buf is None:
        if ref.at and ref.index is None and capacity is None:
            capacity = max(numbers)
        if not ref.at:
            capacity = 1
        if capacity is None:
            raise UsageError(f"{ref.text}: inline stack _{ref.inline} does not exist; "
                             f"create it with MS first")
        buf = buffers[ref.inline] = InlineBuffer(shape, int(capacity), ref.at)
    if buf.shape != shape:
        raise UsageError(f"{ref.text}: inline file _{ref.inline} holds images of shape "
                         f"{buf.shape[::-1]} (x, y[, z]), not {shape[::-1]}")
    if max(numbers) > buf.capacity:
        raise UsageError(f"{ref.text}: inline stack _{ref.inline} holds only {buf.capacity} "
                         f"images; cannot write image {max(numbers)}")
    idx = [n - 1 for n in numbers]
    buf.data[idx] = data
    buf.used[idx] = True


def free(ctx, ref) -> bool:
    """Forget inline file ``ref`` (``DE _n@``); False when it did not exist."""
    return store(ctx).pop(ref.inline, None) is not None
