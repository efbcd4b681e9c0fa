"""A columnar table for particle metadata (angles, shifts, defocus, group, class, ...).

One column per field, each a 1-D numpy array of equal length; numeric columns are
float64 or int64, text columns are numpy unicode arrays. The same table maps one
to one onto a RELION STAR loop (column ``rlnAngleRot`` ...), a SPIDER doc file
(column ``key`` plus registers ``reg1..regN``) and an Xmipp metadata block.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import numpy as np

from emsh.errors import UsageError


def _as_column(values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    if arr.dtype.kind in "biu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        return arr.astype(np.float64)
    if arr.dtype.kind in "US":
        return arr.astype(str)
    if arr.dtype.kind == "O":
        try:
            return arr.astype(np.float64)
        except (TypeError, ValueError):
            return arr.astype(str)
    raise UsageError(f"unsupported column type {arr.dtype}")


class Table:
    """An ordered set of named, equal-length columns.

    >>> t = Table({"rlnAngleRot": [10.0, 20.0], "rlnClassNumber": [1, 2]})
    >>> len(t), t.columns
    (2, ['rlnAngleRot', 'rlnClassNumber'])
    """

    def __init__(self, columns: Mapping[str, Iterable] | None = None, name: str = ""):
        self.name = name
        self._cols: dict[str, np.ndarray] = {}
        for key, values in (columns or {}).items():
            self[key] = values

    @property
    def columns(self) -> list[str]:
        """Column names in order."""
        return list(self._cols)

    def __len__(self) -> int:
        return len(next(iter(self._cols.values()))) if self._cols else 0

    def __contains__(self, key: str) -> bool:
        return key in self._cols

    def __getitem__(self, key: str) -> np.ndarray:
        try:
            return self._cols[key]
        except KeyError:
            raise UsageError(f"no column {key!r}; columns are {', '.join(self._cols)}") from None

    def __setitem__(self, key: str, values) -> None:
        col = _as_column(values)
        if self._cols and len(col) != len(self):
            raise UsageError(f"column {key!r} has {len(col)} rows, the table has {len(self)}")
        self._cols[key] = col

    def __delitem__(self, key: str) -> None:
        del self._cols[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._cols)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Table) or self.columns != other.columns:
            return False
        return all(np.array_equal(self[c], other[c]) for c in self.columns)

    def __repr__(self) -> str:
        return f"Table({self.name!r}, rows={len(self)}, columns={self.columns})"

    def rows(self) -> Iterator[dict]:
        """Iterate rows as dicts of Python scalars."""
        for i in range(len(self)):
            yield {k: v[i].item() for k, v in self._cols.items()}

    def take(self, index) -> Table:
        """A new table with the rows selected by an index array or boolean mask."""
        return Table({k: v[index] for k, v in self._cols.items()}, name=self.name)

    def copy(self) -> Table:
        """A deep copy."""
        return Table({k: v.copy() for k, v in self._cols.items()}, name=self.name)
