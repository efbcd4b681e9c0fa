"""Point-group and helical symmetry: operators, asymmetric units, reduction, expansion.

Names follow EMAN2 (``libEM/symmetry.cpp``), case-insensitive:

=========  =====  ==========================================================
name       order  operators (rotation matrices acting on (x, y, z))
=========  =====  ==========================================================
``cN``     N      rotations by 360 k / N about z
``dN``     2N     ``cN`` plus N two-fold axes in the xy plane, one along x
``tet``    12     EMAN2's table: a three-fold axis along z
``oct``    24     EMAN2's table: a four-fold axis along z
``icos``   60     EMAN2's table: a five-fold axis along z, a two-fold along y
``hN:S:TWIST:RISE[:MAXTILT]``  N  helical, see :meth:`Symmetry.helical`
=========  =====  ==========================================================

The operators are the matrices of EMAN2's ``get_sym`` (the platonic tables with the
exact ``atan(2)`` and ``acos(-1/3)`` instead of EMAN2's 4-decimal values), so a map
symmetrised by EMAN2 is invariant under them. A volume invariant under a group G gives
identical projections at ``R`` and ``R g`` (g in G; ``R`` from
:func:`emsh.geom.euler.spider_to_matrix`), so the beam direction ``d`` (last row of
``R``) of a symmetry mate is ``g^T d``.

Asymmetric units follow **EMAN2's conventions** (``get_delimiters`` and
``is_in_asym_unit``), which are stated in EMAN2's (az, alt) with ``az = phi + 90``,
``alt = theta`` (SPIDER phi, theta of the beam direction; at the poles az = 0). With
``inc_mirror=True`` the unit is the true rotational asymmetric unit (area 4 pi / order);
with ``inc_mirror=False`` it is EMAN2's default half unit, which also identifies a
direction with its opposite (the projection along -d is the x-mirror of that along d):

* ``cN``: alt <= 90 (180 with mirror), 0 <= az <= 360/N.
* ``dN``: alt <= 90, 0 <= az <= 180/N (360/N with mirror).
* ``tet``, ``oct``, ``icos``: Baldwin & Penczek's platonic unit (J. Struct. Biol. 157:
  250, 2007): 0 <= az <= 360/m (m = 3, 4, 5; halved for oct and icos without mirror)
  and alt below the great circle through neighbouring m-fold and three-fold axes;
  icos is turned by EMAN2's azimuth offset of 234 degrees.
* helical: 90 - maxtilt <= alt <= 90 (down to 90 - 2 maxtilt with mirror), any az.

Arrays of orientations are ``(n, 3)`` in doc-file column order (psi, theta, phi).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from emsh.errors import UsageError
from emsh.geom.euler import (
    direction_to_spider,
    doc_angles_to_matrix,
    eman_matrix,
    matrix_to_doc_angles,
)

_ATAN2 = float(np.degrees(np.arctan(2.0)))  # icosahedral level, EMAN2 writes 63.4349
_TET = float(np.degrees(np.arccos(-1.0 / 3.0)))  # tetrahedral level, EMAN2 writes 109.4712

# EMAN2 get_sym tables (az, alt, phi); icos entries are used as (az + 90, alt, phi - 90).
_TET_TABLE = [(0, 0, 0), (0, 0, 120), (0, 0, 240)] + [
    (az, _TET, ph) for az in (0, 120, 240) for ph in (60, 180, 300)
]
_OCT_TABLE = (
    [(0, 0, ph) for ph in (0, 90, 180, 270)]
    + [(az, 90, ph) for az in (0, 90, 180, 270) for ph in (0, 90, 180, 270)]
    + [(0, 180, ph) for ph in (0, 90, 180, 270)]
)
_ICOS_TABLE = (
    [(0, 0, ph) for ph in (0, 288, 216, 144, 72)]
    + [(az, _ATAN2, ph) for az in (0, 72, 144, 216, 288) for ph in (36, 324, 252, 180, 108)]
    + [(az, 180 - _ATAN2, ph) for az in (36, 108, 180, 252, 324) for ph in (0, 288, 216, 144, 72)]
    + [(0, 180, ph) for ph in (0, 288, 216, 144, 72)]
)
_PLATONIC = {"tet": 3, "oct": 4, "icos": 5}
_MAX_N = 10000


@dataclass(frozen=True, eq=False)
class Symmetry:
    """A point group (or a helical set of operators) with EMAN2's asymmetric units.

    Build one with :meth:`parse` or :meth:`helical`; do not call the constructor.
    Instances are immutable (read-only arrays), compare and hash by :attr:`name`, and
    :meth:`parse` caches them, so passing names around is cheap.

    Attributes:
        name: canonical name (``"c4"``, ``"d7"``, ``"icos"``, ``"h10:1:-22.03:4.7:1"``).
        kind: ``"c"``, ``"d"``, ``"tet"``, ``"oct"``, ``"icos"`` or ``"h"``.
        n: N of cN/dN, the number of subunits of a helix, 0 for platonic groups.
        operators: ``(order, 3, 3)`` float64 rotation matrices, identity first.
        translations: ``(order, 3)`` shifts (x, y, z) in pixels paired with the
            operators; zero except for helices.
    """

    name: str
    kind: str
    n: int
    operators: np.ndarray = field(repr=False)
    translations: np.ndarray = field(repr=False)
    twist: float = 0.0
    rise: float = 0.0
    nstart: int = 1
    maxtilt: float = 0.0

    # ----------------------------------------------------------------- construction
    @classmethod
    def parse(cls, text: str, apix: float = 1.0) -> "Symmetry":
        """Symmetry from an EMAN2-style name.

        Args:
            text: ``c<N>``, ``d<N>``, ``tet``, ``oct``, ``icos`` (alias ``icos5``), or a
                helix ``h<nsub>:<nstart>:<twist>:<rise>[:<maxtilt>]`` (commas also
                accepted, EMAN2's order), twist in degrees per subunit, rise per subunit.
            apix: divides the helical rise, as EMAN2 does (rise given in Å with the
                pixel size here gives pixels); the default 1 takes the rise in pixels.

        Raises:
            UsageError: unknown name or bad numbers.
        """
        try:
            apix = float(apix)
        except (TypeError, ValueError):
            raise UsageError(f"symmetry {text!r}: apix must be a number, got {apix!r}") from None
        return _parse(str(text).strip().lower(), apix)

    @classmethod
    def helical(cls, twist: float, rise: float, nsub: int, nstart: int = 1, maxtilt: float = 1.0) -> "Symmetry":
        """Helical operators for ``nsub`` subunits (EMAN2's ``HSym``, helix axis z).

        Operator k rotates by ``(k mod nstart) * 360/nstart + floor(k/nstart) * twist``
        degrees about z and shifts by ``floor(k/nstart) * rise`` along z (in
        :attr:`translations`). These are not a group; :attr:`order` is ``nsub``.

        Args:
            twist: azimuthal turn per subunit along one start, degrees.
            rise: axial rise per subunit along one start, pixels.
            nsub: number of subunits (operators) to generate, >= 1.
            nstart: number of starts (>= 1).
            maxtilt: largest out-of-plane tilt (degrees) of the asymmetric unit and of
                :func:`emsh.geom.orientations.eman_orientations`; EMAN2's string default 1.
        """
        if not (1 <= int(nsub) <= _MAX_N and int(nstart) >= 1):
            raise UsageError(f"helical symmetry: need 1 <= nsub <= {_MAX_N} and nstart >= 1, got {nsub}, {nstart}")
        if not (np.isfinite(twist) and np.isfinite(rise) and 0 <= maxtilt <= 90):
            raise UsageError(f"helical symmetry: bad twist {twist}, rise {rise} or maxtilt {maxtilt}")
        k = np.arange(int(nsub))
        step = k // int(nstart)
        az = (k % nstart) * (360.0 / nstart) + step * float(twist)
        shifts = np.zeros((len(k), 3))
        shifts[:, 2] = step * float(rise)
        name = f"h{int(nsub)}:{int(nstart)}:{float(twist):g}:{float(rise):g}:{float(maxtilt):g}"
        return cls(name, "h", int(nsub), eman_matrix(az, 0.0, 0.0), shifts,
                   float(twist), float(rise), int(nstart), float(maxtilt))

    @classmethod
    def _make(cls, name: str, kind: str, n: int, ops: np.ndarray) -> "Symmetry":
        return cls(name, kind, n, ops, np.zeros((len(ops), 3)))

    def __post_init__(self):
        for attr in ("operators", "translations"):
            arr = np.array(getattr(self, attr), dtype=np.float64, order="C")
            arr.setflags(write=False)
            object.__setattr__(self, attr, arr)

    def __eq__(self, other) -> bool:
        return isinstance(other, Symmetry) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    # ----------------------------------------------------------------- properties
    @property
    def order(self) -> int:
        """Number of operators (the group order; the subunit count for a helix)."""
        return len(self.operators)

    @property
    def is_group(self) -> bool:
        """False for helical symmetry, whose operators do not close."""
        return self.kind != "h"

    @property
    def az_offset(self) -> float:
        """EMAN2's azimuth alignment offset of the asymmetric unit (234 for icos)."""
        return 234.0 if self.kind == "icos" else 0.0

    def asu_bounds(self, inc_mirror: bool = True) -> dict:
        """EMAN2's delimiters of the asymmetric unit, in degrees of EMAN2's (alt, az).

        Returns:
            dict with ``alt_min``, ``alt_max``, ``az_max`` and ``az_offset``; for
            platonic groups ``alt_max`` is the largest altitude, the real lower edge
            depends on az (see :meth:`in_asymmetric_unit`).
        """
        return _eman_delimiters(self, inc_mirror, np.float64)

    # ----------------------------------------------------------------- asymmetric unit
    def in_asymmetric_unit(self, phi, theta, inc_mirror: bool = True, tol: float = 1e-6) -> np.ndarray:
        """Whether beam directions (SPIDER phi, theta in degrees) lie in the unit.

        Boundaries are inclusive, widened by ``tol`` degrees so that points on an edge
        are not lost to rounding.
        """
        phi, theta = np.broadcast_arrays(np.asarray(phi, np.float64), np.asarray(theta, np.float64))
        st = np.abs(np.sin(np.radians(theta)))
        az = np.where(st < 1e-12, 0.0, np.mod(phi + 90.0 - self.az_offset, 360.0))
        az = np.where(az > 360.0 - tol, az - 360.0, az)
        return _eman_in_asu(self, theta, az, inc_mirror, np.float64, tol)

    def reduce_to_asu(self, angles, inc_mirror: bool = True, return_mirror: bool = False):
        """Move orientations to the symmetry mate whose direction is in the unit.

        Each orientation ``R`` is replaced by ``R g`` (g an operator, the first in
        operator order that works). With ``inc_mirror=False`` the x-mirrored view
        ``diag(-1, 1, -1) R g`` (SPIDER's ``(-psi, theta + 180, phi)``) is also allowed,
        which reaches EMAN2's half unit.

        Args:
            angles: ``(n, 3)`` (psi, theta, phi) in degrees.
            inc_mirror: False to reduce into EMAN2's half unit using mirrors.
            return_mirror: also return a bool array telling which rows were mirrored.

        Returns:
            ``(n, 3)`` canonical (psi, theta, phi), and the mirror flags if asked.
        """
        if not self.is_group:
            raise UsageError(f"symmetry {self.name}: a helix has no finite asymmetric unit to reduce to")
        R = doc_angles_to_matrix(angles)
        shape = R.shape[:-2]
        R = R.reshape(-1, 3, 3)
        best = np.empty_like(R)
        pick = np.empty(len(R), dtype=np.int64)
        step = max(1, 200_000 // self.order)  # bounds the (n, k, 3, 3) work array
        for lo in range(0, len(R), step):
            best[lo:lo + step], pick[lo:lo + step] = self._reduce_block(R[lo:lo + step], inc_mirror)
        out = matrix_to_doc_angles(best).reshape(shape + (3,))
        if return_mirror:
            return out, (pick >= self.order).reshape(shape)
        return out

    def _reduce_block(self, R: np.ndarray, inc_mirror: bool):
        mates = R[:, None] @ self.operators  # (n, k, 3, 3)
        if not inc_mirror:  # x-mirrored views diag(-1, 1, -1) R g look along -d
            mates = np.concatenate([mates, mates * np.array([-1.0, 1.0, -1.0])[:, None]], axis=1)
        phi, theta = direction_to_spider(mates[..., 2, :])
        ok = self.in_asymmetric_unit(phi, theta, inc_mirror)
        missing = ~ok.any(axis=1)
        if missing.any():  # rounding pushed every mate just outside: widen the edges
            ok[missing] = self.in_asymmetric_unit(phi[missing], theta[missing], inc_mirror, tol=1e-3)
        pick = np.argmax(ok, axis=1)
        return mates[np.arange(len(R)), pick], pick

    def expand(self, angles) -> np.ndarray:
        """All symmetry-related orientations ``R g``, input-major.

        Args:
            angles: ``(n, 3)`` (psi, theta, phi) in degrees.

        Returns:
            ``(n * order, 3)`` canonical (psi, theta, phi); rows ``i*order .. i*order +
            order - 1`` belong to input ``i``, in operator order (identity first). For a
            helix only the rotations are applied; the shifts are in
            :attr:`translations`.
        """
        R = doc_angles_to_matrix(angles).reshape(-1, 3, 3)
        return matrix_to_doc_angles(R[:, None] @ self.operators).reshape(-1, 3)


@lru_cache(maxsize=64)
def _parse(s: str, apix: float) -> Symmetry:
    name = "icos" if s == "icos5" else s
    if name in _PLATONIC:
        table = np.asarray({"tet": _TET_TABLE, "oct": _OCT_TABLE, "icos": _ICOS_TABLE}[name])
        shift = 90.0 if name == "icos" else 0.0  # EMAN2 reads its icos table as SPIDER angles
        ops = eman_matrix(table[:, 0] + shift, table[:, 1], table[:, 2] - shift)
        return Symmetry._make(name, name, 0, ops)
    m = re.fullmatch(r"([cd])(\d+)", s)
    if m:
        kind, n = m.group(1), int(m.group(2))
        if not 1 <= n <= _MAX_N:
            raise UsageError(f"symmetry {s!r}: the order must be 1..{_MAX_N}")
        az = 360.0 * np.arange(n) / n
        ops = eman_matrix(az, 0.0, 0.0)
        if kind == "d":
            ops = np.concatenate([ops, eman_matrix(az, 180.0, 0.0)])
        return Symmetry._make(s, kind, n, ops)
    if s.startswith("h"):
        return _parse_helix(s, apix)
    raise UsageError(f"unknown symmetry {s!r}; expected c<N>, d<N>, tet, oct, icos or h<...>")


def _parse_helix(s: str, apix: float) -> Symmetry:
    parts = re.split(r"[:,]", s[1:])
    try:
        nsub, nstart = int(parts[0]), int(parts[1])
        twist, rise = float(parts[2]), float(parts[3])
        maxtilt = float(parts[4]) if len(parts) > 4 else 1.0
    except (IndexError, ValueError):
        raise UsageError(
            f"symmetry {s!r}: a helix is h<nsub>:<nstart>:<twist>:<rise>[:<maxtilt>], e.g. h20:1:-22.03:4.7"
        ) from None
    if len(parts) > 5:
        raise UsageError(f"symmetry {s!r}: too many helical parameters (at most 5)")
    if not apix > 0:
        raise UsageError(f"symmetry {s!r}: apix must be positive, got {apix}")
    return Symmetry.helical(twist, rise / apix, nsub, nstart=nstart, maxtilt=maxtilt)


# --------------------------------------------------------------------------------------
# EMAN2's delimiters and asymmetric-unit test, in a chosen precision. The orientation
# generator calls these in float32 to follow EMAN2's float arithmetic; Symmetry uses
# float64 with a tolerance.
# --------------------------------------------------------------------------------------


def _platonic_params(m: int, dt):
    """EMAN2 PlatonicSym::init: cap_sig, alpha (alt_max), theta_c/2, all radians."""
    f = dt
    cap_sig = f(2.0 * np.pi / m)
    alpha = f(np.arccos(f(f(1.0) / f(f(np.sqrt(f(3.0))) * f(np.tan(f(cap_sig / f(2.0))))))))
    c = f(np.cos(cap_sig))
    tc2 = f(0.5 * np.arccos(f(c / f(f(1.0) - c))))
    return cap_sig, alpha, tc2


def _eman_delimiters(sym: Symmetry, inc_mirror: bool, dt) -> dict:
    f = dt
    out = {"alt_min": 0.0, "az_offset": sym.az_offset}
    if sym.kind == "c":
        out.update(alt_max=180.0 if inc_mirror else 90.0, az_max=f(f(360.0) / f(sym.n)))
    elif sym.kind == "d":
        out.update(alt_max=90.0, az_max=f(f(360.0 if inc_mirror else 180.0) / f(sym.n)))
    elif sym.kind == "h":
        out.update(alt_max=90.0, alt_min=f(90.0 - sym.maxtilt), az_max=360.0)
    else:
        cap_sig, alpha, _ = _platonic_params(_PLATONIC[sym.kind], dt)
        az_max = f(np.degrees(cap_sig))
        if not inc_mirror and sym.kind in ("icos", "oct"):
            az_max = f(0.5 * np.degrees(cap_sig))
        out.update(alt_max=f(np.degrees(alpha)), az_max=az_max)
    return {k: (float(v) if dt is np.float64 else v) for k, v in out.items()}


def _platonic_bound(az, alpha, cap_sig, tc2, dt):
    """Baldwin-Penczek lower edge (radians) of the platonic unit at azimuth az (radians)."""
    f = dt
    half = f(cap_sig / f(2.0))
    b = (np.sin(half - az).astype(f) / f(np.tan(tc2))).astype(f)
    b = (b + (np.sin(az).astype(f) / f(np.tan(alpha))).astype(f)).astype(f)
    b = (b * f(f(1.0) / f(np.sin(half)))).astype(f)
    return np.arctan(f(1.0) / b).astype(f)


def _eman_in_asu(sym: Symmetry, alt, az, inc_mirror: bool, dt, tol: float = 0.0) -> np.ndarray:
    """EMAN2's is_in_asym_unit(alt, az) in degrees (az already without the offset)."""
    f = dt
    alt = np.asarray(alt, dtype=f)
    az = np.asarray(az, dtype=f)
    d = _eman_delimiters(sym, inc_mirror, dt)
    if sym.kind == "h":
        lo = d["alt_min"] - (sym.maxtilt if inc_mirror else 0.0)
        return (alt >= lo - tol) & (alt <= d["alt_max"] + tol) & (az >= -tol) & (az <= d["az_max"] + tol)
    inside = (alt >= -tol) & (alt <= d["alt_max"] + tol) & (az <= d["az_max"] + tol)
    if not (sym.kind in ("c", "d") and sym.n == 1 and inc_mirror):
        inside &= az >= -tol
    if sym.kind in ("c", "d"):
        return inside
    cap_sig, alpha, tc2 = _platonic_params(_PLATONIC[sym.kind], dt)
    tmpaz = (az * f(np.pi / 180.0)).astype(f)
    tmpaz = np.where(tmpaz > f(cap_sig / f(2.0)), (cap_sig - tmpaz).astype(f), tmpaz).astype(f)
    tmpalt = (alt * f(np.pi / 180.0)).astype(f)
    rtol = np.radians(tol)
    ok = _platonic_bound(tmpaz, alpha, cap_sig, tc2, dt) + rtol > tmpalt
    if sym.kind == "tet" and not inc_mirror:
        ok &= ~(_platonic_bound(tmpaz, f(alpha / f(2.0)), cap_sig, tc2, dt) + rtol < tmpalt)
    return inside & ok
