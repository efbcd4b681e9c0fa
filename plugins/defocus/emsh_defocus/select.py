"""Correlation-based particle selection from AP SH alignment docs.

An alignment doc (``AP SH``/``AP REF``, see :mod:`emsh.ops.align`) holds 15 registers
per image: 1-3 psi, theta, phi of the matched reference direction, 4 the reference
number, 5 the image (member) number, 11 the correlation, 15 the mirror flag (< 0:
matched mirrored). The doc may have been appended to: as SPIDER's in-core docs, the
last line of a key counts.

Selection keeps, per defocus group, either the best fraction of the particles by
correlation (``k = floor(fraction * n + 0.5)`` particles, ties at the cut broken in
favour of the lower member number, so exactly ``k`` are kept) or every particle whose
correlation is at least a threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emsh.errors import DataFormatError, UsageError

__all__ = ["Alignment", "read_alignment", "keep_count", "select_best", "select_at_least"]


@dataclass
class Alignment:
    """The registers of an alignment doc that selection and view counts use, one row per
    image (ascending key).

    Attributes:
        member: image (stack member) number, register 5.
        ref: reference number, register 4 (0: no reference within the search range).
        cc: correlation, register 11.
        mirrored: register 15 < 0 (False when the doc has fewer than 15 registers).
        angles: psi, theta, phi (registers 1-3), degrees.
    """

    member: np.ndarray
    ref: np.ndarray
    cc: np.ndarray
    mirrored: np.ndarray
    angles: np.ndarray

    def __len__(self) -> int:
        return int(self.member.size)

    def subset(self, mask) -> Alignment:
        """The rows where ``mask`` is true."""
        m = np.asarray(mask, bool)
        return Alignment(self.member[m], self.ref[m], self.cc[m], self.mirrored[m],
                         self.angles[m])


def read_alignment(path) -> Alignment:
    """Read an AP SH / AP REF doc (the last line of every key, keys ascending).

    Raises:
        DataFormatError: a missing or unreadable file, or a doc whose lines hold fewer
            than 11 registers (no correlation).
    """
    from emsh.io.docfile import read_doc

    p = Path(path)
    if not p.is_file():
        raise DataFormatError(p, "alignment doc not found")
    d = read_doc(p)
    if d.n_lines == 0:
        z = np.zeros(0)
        return Alignment(z.astype(np.int64), z.astype(np.int64), z, z.astype(bool),
                         np.zeros((0, 3)))
    short = np.flatnonzero(d.nregs < 11)
    if short.size:
        raise DataFormatError(p, f"key {int(d.keys[short[0]])} holds {int(d.nregs[short[0]])} "
                              "registers; an alignment doc has 15 (correlation in 11)")
    uk, rows = d.incore()
    member = np.rint(rows[:, 4]).astype(np.int64)
    member = np.where(member > 0, member, uk)         # no image number: the key is it
    mirrored = rows[:, 14] < 0 if rows.shape[1] >= 15 else np.zeros(len(uk), bool)
    return Alignment(member=member, ref=np.rint(rows[:, 3]).astype(np.int64),
                     cc=rows[:, 10].astype(np.float64), mirrored=mirrored,
                     angles=rows[:, :3].astype(np.float64))


def keep_count(n: int, fraction: float) -> int:
    """Particles kept of ``n`` for a keep fraction in (0, 1]: ``floor(f n + 0.5)``."""
    if not 0.0 < fraction <= 1.0:
        raise UsageError(f"keep fraction {fraction:g} is not in (0, 1]")
    return int(np.floor(fraction * n + 0.5))


def select_best(cc, member, fraction: float) -> tuple[np.ndarray, float | None]:
    """Keep the best ``keep_count(n, fraction)`` by correlation.

    Returns:
        ``(mask, threshold)``: the kept rows and the lowest kept correlation (None when
        none is kept). Among equal correlations the lower member number wins.
    """
    cc = np.asarray(cc, dtype=np.float64)
    k = keep_count(cc.size, fraction)
    order = np.lexsort((np.asarray(member), -cc))      # best first, then member number
    mask = np.zeros(cc.size, bool)
    mask[order[:k]] = True
    return mask, (float(cc[order[k - 1]]) if k > 0 else None)


def select_at_least(cc, threshold: float) -> np.ndarray:
    """Keep every row with correlation >= ``threshold``."""
    return np.asarray(cc, dtype=np.float64) >= threshold
