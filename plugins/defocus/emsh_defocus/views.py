"""View distribution: how many particles matched each reference projection direction.

Reference directions come from a ``VO EA`` angles doc (key = reference number,
registers 1-3 psi, theta, phi in degrees). A particle that matched a reference
mirrored (AP SH register 15 < 0) was seen from the opposite side: its direction is the
antipode of the reference's, ``(180 - theta, phi + 180)``, which is what AP SH's own
registers 1-3 say for it (``180 + theta`` names the same direction). Counts are kept
apart for straight and mirrored matches; plots show mirrored matches at their antipodal
direction, i.e. at ``theta > 90`` for references on the upper hemisphere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emsh.errors import UsageError

__all__ = ["ViewCounts", "count_views", "antipode"]


@dataclass
class ViewCounts:
    """Particles per reference direction.

    Attributes:
        ref: reference numbers (ascending), as keyed in the angles doc.
        theta, phi: the reference directions, degrees.
        straight, mirrored: particles that matched each reference straight / mirrored.
        unmatched: particles with reference 0 (no reference within AP SH's range).
    """

    ref: np.ndarray
    theta: np.ndarray
    phi: np.ndarray
    straight: np.ndarray
    mirrored: np.ndarray
    unmatched: int = 0

    @property
    def count(self) -> np.ndarray:
        """All particles per reference (straight + mirrored)."""
        return self.straight + self.mirrored


def antipode(theta, phi) -> tuple[np.ndarray, np.ndarray]:
    """The opposite direction ``(180 - theta, (phi + 180) mod 360)``, degrees."""
    return 180.0 - np.asarray(theta, float), np.mod(np.asarray(phi, float) + 180.0, 360.0)


def count_views(ref_numbers, theta, phi, matched_ref, mirrored) -> ViewCounts:
    """Count particles per reference.

    Args:
        ref_numbers: reference numbers with known directions ``theta``, ``phi`` (degrees).
        matched_ref: the reference number each particle matched (0: none).
        mirrored: whether each particle matched mirrored.

    Raises:
        UsageError: a particle matched a reference that has no direction.
    """
    refs = np.asarray(ref_numbers, dtype=np.int64)
    order = np.argsort(refs, kind="stable")
    refs = refs[order]
    th = np.asarray(theta, float)[order]
    ph = np.asarray(phi, float)[order]
    m = np.asarray(matched_ref, dtype=np.int64)
    mir = np.asarray(mirrored, bool)
    used = m != 0
    pos = np.searchsorted(refs, m[used])
    ok = pos < refs.size
    ok[ok] = refs[pos[ok]] == m[used][ok]
    if not ok.all():
        bad = int(m[used][~ok][0])
        raise UsageError(f"reference {bad} is not in the reference angles doc "
                         f"(it has references {refs.min() if refs.size else 0}.."
                         f"{refs.max() if refs.size else 0})")
    n = refs.size
    straight = np.bincount(pos[~mir[used]], minlength=n)
    mirrored_n = np.bincount(pos[mir[used]], minlength=n)
    return ViewCounts(refs, th, ph, straight, mirrored_n, unmatched=int((~used).sum()))
