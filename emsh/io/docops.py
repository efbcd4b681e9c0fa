"""SPIDER's doc-file operations: ``DOC SORT``, ``DOC COMBINE``, ``UD NEXT``, ``UD FIND``.

They work on a :class:`~emsh.io.docfile.DocFile` and, as SPIDER does, on its in-core
array: one row per key, the **last** line of a duplicated key wins, keys ascending.
Register values are compared in float32, as SPIDER keeps them in single precision.
Every operation returns new values or a new DocFile; its input is never changed.

These functions are also importable from :mod:`emsh.io.docfile`, where they used to live.
"""

from __future__ import annotations

import numpy as np

from emsh.errors import OperationError, UsageError
from emsh.io.docfile import DocFile, _incore, _int_key, read_doc

__all__ = ["sort_doc", "combine_docs", "ud_next_order", "find_line"]


def _singleton_order(a: np.ndarray) -> list[int]:
    """Permutation that sorts ``a`` by Singleton's quicksort (CACM algorithm 347, as in
    SPIDER's ``SORT``): median-of-three partitions, insertion sort of short pieces.

    It is not stable; ties come out in the order this exact algorithm leaves them, which
    is what ``DOC SORT`` writes.
    """
    n = len(a)
    A = [0.0] + [float(v) for v in a]          # 1-based, as in the published algorithm
    B = [0] + list(range(n))
    lo, hi = [0] * 40, [0] * 40
    m, i, j = 1, 1, n
    step = "split_or_pop"
    while True:
        if step == "split_or_pop":
            step = "pop" if i >= j else "split"
        if step == "split":
            k, ij = i, (i + j) // 2
            t = A[ij]
            # element moves are sequential statements, as in the Fortran: i may equal ij
            if A[i] > t:
                A[ij] = A[i]
                A[i] = t
                t = A[ij]
                x = B[i]
                B[i] = B[ij]
                B[ij] = x
            l = j
            if A[j] < t:
                if A[j] < A[i]:
                    A[ij] = A[i]
                    A[i] = A[j]
                    A[j] = t
                    x = B[j]
                    B[j] = B[ij]
                    B[ij] = B[i]
                    B[i] = x
                else:
                    A[ij] = A[j]
                    A[j] = t
                    x = B[ij]
                    B[ij] = B[j]
                    B[j] = x
                t = A[ij]
            while True:
                l -= 1
                while A[l] > t:
                    l -= 1
                tt = A[l]
                k += 1
                while A[k] < t:
                    k += 1
                if k > l:
                    break
                A[l] = A[k]
                A[k] = tt
                x = B[l]
                B[l] = B[k]
                B[k] = x
            if l - i <= j - k:
                lo[m], hi[m], j = k, j, l
            else:
                lo[m], hi[m], i = i, l, k
            m += 1
            step = "short"
        elif step == "pop":
            m -= 1
            if m == 0:
                return B[1:]
            i, j = lo[m], hi[m]
            step = "short"
        if step == "short":
            if j - i >= 11:
                step = "split"
            elif i == 1:
                step = "split_or_pop"
            else:
                for s in range(i, j):           # straight insertion; A[i-1] is a sentinel
                    t = A[s + 1]
                    if A[s] <= t:
                        continue
                    x, q = B[s + 1], s
                    while True:
                        A[q + 1], B[q + 1] = A[q], B[q]
                        q -= 1
                        if not t < A[q]:
                            break
                    A[q + 1], B[q + 1] = t, x
                step = "pop"


def sort_doc(doc: DocFile, column: int, *, descending: bool = False, renumber: bool = True,
             remove_duplicates: bool = False) -> DocFile:
    """``DOC SORT``: the doc's lines sorted by a register, exactly as SPIDER writes them.

    SPIDER loads the doc by key (the last line of a duplicated key replaces the earlier
    ones, whose data are lost), pads every line with zeros to the largest register count,
    sorts with its unstable Singleton quicksort on float32 values, and writes keys 1..n
    (``renumber``) or the original keys.

    Args:
        doc: the input doc.
        column: register to sort by, 0 = key; a negative column sorts descending.
        descending: reverse order (same as a negative column).
        renumber: keys 1..n instead of the original keys.
        remove_duplicates: keep only the first line (in ascending sorted order) of each
            value in the column. Ignored when sorting by key.
    """
    column = _int_key(column, "sort column")
    if column < 0:
        column, descending = -column, True
    width = doc.n_cols
    if doc.n_lines == 0:
        return DocFile([], [])
    if column > width:
        raise UsageError(f"{doc._where()}: sort column {column} not in 0..{width}")
    uk, last = _incore(doc)
    vals = doc.values[last, :width]
    if column == 0:
        perm = list(range(uk.size))
    else:
        col = vals[:, column - 1].astype(np.float32)
        if np.isnan(col).any():
            raise OperationError(f"register {column} holds NaN; cannot sort", code="DOC SORT")
        perm = _singleton_order(col)
        if remove_duplicates:
            kept, prev = [], np.float32(col[perm[0]]) + np.float32(1000.0)
            for p in perm:
                if col[p] != prev:
                    kept.append(p)
                    prev = col[p]
            perm = kept
        if descending:
            perm = perm[::-1]
    keys = np.arange(1, len(perm) + 1) if renumber else uk[perm]
    return DocFile(keys, vals[perm], [width] * len(perm))


def combine_docs(docs) -> DocFile:
    """``DOC COMBINE``: the docs' data lines one after another under keys 1..n.

    Each input is read by key (last line of a duplicated key wins, ascending keys) and
    each of its lines is padded with zeros to that input's largest register count.
    Comments and comment keys are dropped. Paths are read with :func:`read_doc`.
    """
    rows, counts = [], []
    for d in docs:
        d = d if isinstance(d, DocFile) else read_doc(d)
        for i in _incore(d)[1]:
            rows.append(d.values[i, : d.n_cols])
            counts.append(d.n_cols)
    return DocFile(np.arange(1, len(rows) + 1), rows, counts)


def ud_next_order(doc: DocFile) -> list[tuple[int, np.ndarray]]:
    """``(key, registers)`` in the order ``UD NEXT`` returns them: ascending keys, the
    last line of a duplicated key. ``UD NEXT`` then gives key 0."""
    uk, last = _incore(doc)
    return [(int(k), doc.row(int(i))) for k, i in zip(uk, last)]


def find_line(doc: DocFile, column: int, value: float) -> tuple[int, np.ndarray]:
    """``UD FIND``: the first key, in ascending key order, whose register ``column`` equals
    ``value`` (float32 comparison); ``(0, empty)`` when none does.

    SPIDER reads lines into one buffer, so a line shorter than ``column`` is compared
    with the value left there by the previous line; this is kept. ``column = 0``
    compares the key (SPIDER compares an unset slot there).
    """
    column = _int_key(column, "register column")
    if not 0 <= column <= doc.n_cols:
        raise UsageError(f"{doc._where()}: register {column} not available (1..{doc.n_cols})")
    want = np.float32(value)
    buf = np.zeros(max(doc.n_cols, 1), dtype=np.float32)
    for k, regs in ud_next_order(doc):
        buf[: regs.size] = regs
        have = np.float32(k) if column == 0 else buf[column - 1]
        if have == want:
            return k, regs
    return 0, np.zeros(0)
