"""Orientation sampling: SPIDER ``VO EA``, EMAN2's "eman" generator, spirals, SO(3) grids.

Every generator returns an ``(n, 3)`` float64 array in doc-file column order
(psi, theta, phi), SPIDER convention, degrees (see :mod:`emsh.geom.euler`), so the
result can be written straight to an angles doc file or fed to
:func:`emsh.geom.euler.doc_angles_to_matrix`. (phi, theta) is the beam direction.

``voea`` and ``eman_orientations`` repeat their originals' single-precision arithmetic
step by step (SPIDER ``src/voea.f`` in Fortran REAL, EMAN2
``EmanOrientationGenerator::gen_orientations`` in C++ float), so ring counts and the
angles printed to 6 digits come out the same, boundary cases included.
"""

from __future__ import annotations

import numpy as np

from emsh.errors import UsageError
from emsh.geom.euler import canonical_spider, eman_matrix, eman_to_spider, matrix_to_doc_angles
from emsh.geom.symmetry import Symmetry, _eman_delimiters, _eman_in_asu

_F = np.float32
_MAX_DIRECTIONS = 20_000_000
_DGR_TO_RAD = _F(_F(np.pi) / _F(180.0))  # SPIDER's REAL parameter QUADPI/180


def _sin32(x) -> np.float32:
    return _F(np.sin(np.float64(x)))


def voea(delta: float | None = 15.0, theta_range=(0.0, 90.0), phi_range=(0.0, 359.9)) -> np.ndarray:
    """Quasi-evenly spaced projection directions, exactly as SPIDER ``VO EA``.

    theta runs from theta1 to theta2 in steps of ``delta`` (a Fortran REAL DO loop:
    ``max(int((theta2 - theta1 + delta) / delta), 0)`` rings, theta accumulated in
    float32). A ring at theta = 0 or 180 holds one direction at phi1. Otherwise
    ``dphi = delta / sin(theta)``, ``n = max(int((phi2 - phi1) / dphi) - 1, 1)`` and
    the directions are ``phi1 + i (phi2 - phi1) / n`` for i = 0 .. n-1. When
    theta1 < 90, theta2 == 90, phi1 == 0 and phi2 > 180 (the default ranges), the
    directions at theta = 90 with phi >= 180 are dropped (they are the mirrors of
    those kept). psi is always 0.

    Defaults, as SPIDER answers them: ``theta_range=(0, 0)`` or ``None`` means
    (0, 90); ``phi_range=(0, 0)`` or ``None`` means (0, 359.9); ``delta=None`` means
    15. So the procedure answers ``15`` / ``0,0`` / ``0,0`` are
    ``voea(15, (0, 0), (0, 0))``.

    Args:
        delta: angular step in degrees, > 0.
        theta_range: (theta1, theta2) in degrees.
        phi_range: (phi1, phi2) in degrees.

    Returns:
        ``(n, 3)`` float64 (psi, theta, phi); the values are SPIDER's float32 numbers.
        The count is ``len(result)`` (what ``VO EA [n]`` stores in ``[n]``).

    Example:
        >>> len(voea(15, (0, 0), (0, 0))), len(voea(30))
        (84, 20)
    """
    d = _F(15.0 if delta is None else delta)
    if not (np.isfinite(d) and d > 0):
        raise UsageError(f"VO EA: delta theta must be positive, got {delta}")
    t1, t2 = _pair(theta_range, (0.0, 90.0), "theta range")
    p1, p2 = _pair(phi_range, (0.0, 359.9), "phi range")
    skip = t1 < _F(90.0) and t2 == _F(90.0) and p1 == _F(0.0) and p2 > _F(180.0)
    nring = max(int(_F(_F(t2 - t1) + d) / d), 0)
    if nring * max(1.0, float(abs(p2 - p1) / d)) > _MAX_DIRECTIONS:
        raise UsageError(f"VO EA: delta {delta} gives more than {_MAX_DIRECTIONS} directions")
    rows = []
    theta = t1
    for _ in range(nring):
        if theta == _F(0.0) or theta == _F(180.0):
            phi = np.array([p1], dtype=_F)
        else:
            dphi = _F(d / _sin32(_F(theta * _DGR_TO_RAD)))
            lt = max(int(_F(_F(p2 - p1) / dphi)) - 1, 1)
            dphi = _F(_F(p2 - p1) / _F(lt))
            phi = (p1 + np.arange(lt, dtype=_F) * dphi).astype(_F)
            if skip and theta == _F(90.0):
                phi = phi[phi < _F(180.0)]
        rows.append(np.stack([np.zeros(len(phi)), np.full(len(phi), theta, dtype=np.float64),
                              phi.astype(np.float64)], axis=1))
        theta = _F(theta + d)
    return np.concatenate(rows) if rows else np.zeros((0, 3))


def _pair(value, default, what) -> tuple[np.float32, np.float32]:
    if value is None:
        return _F(default[0]), _F(default[1])
    try:
        a, b = (_F(v) for v in value)
    except (TypeError, ValueError):
        raise UsageError(f"VO EA: {what} must be two numbers, got {value!r}") from None
    if not (np.isfinite(a) and np.isfinite(b)):
        raise UsageError(f"VO EA: {what} must be finite, got {value!r}")
    if a == 0 and b == 0:
        return _F(default[0]), _F(default[1])
    return a, b


def eman_orientations(
    delta: float,
    symmetry: str | Symmetry = "c1",
    inc_mirror: bool = False,
    perturb: bool = False,
    rng: np.random.Generator | None = None,
    breaksym: bool = False,
) -> np.ndarray:
    """Projection directions of EMAN2's "eman" orientation generator.

    Rings of altitude ``alt = 0, delta, 2 delta, ... <= alt_max`` (from ``90 -
    maxtilt`` for helices) over EMAN2's asymmetric unit of ``symmetry``; on each ring
    the azimuth step is ``h = delta / sin(alt)`` (``az_max`` at the pole, and
    ``az_max / 2.1`` when ``az_max / h < 2.8``) and ``az = 0, h, 2h, ...`` up to
    ``az_max`` adjusted at the unit's edges as EMAN2 does (odd C and D groups at the
    equator, the closing azimuth of C/tet and of mirrored D/oct/icos). Platonic
    points outside the unit are skipped and icos gets EMAN2's 234 degree offset.
    Each point is EMAN2 ``Transform(az, alt, phi=0)``, returned as SPIDER angles
    (phi = az - 90, theta = alt, psi = 90; psi = phi = 0 at the pole).

    For a helix with ``inc_mirror`` each point off the first ring also gets a partner
    at ``2 * alt_min - alt`` (``alt_min = 90 - maxtilt``), which current EMAN2 does
    (its reflection predates the move of ``alt_min`` below the equator).

    Counts for c1 (``inc_mirror=False``): 93 at delta 15, 210 at 10, 833 at 5.

    Args:
        delta: angular step in degrees, > 0.
        symmetry: name or :class:`Symmetry`.
        inc_mirror: cover the full rotational asymmetric unit instead of EMAN2's
            default half unit (which leaves out views that are mirrors of kept ones).
        perturb: add Gaussian noise (sigma ``delta/8`` in alt, ``h/8`` in az; not at the
            pole), as current EMAN2; needs ``rng``.
        rng: generator for ``perturb``.
        breaksym: generate one unit with mirror, replicate it by every operator and
            (without ``inc_mirror``) keep the upper hemisphere, as EMAN2's ``breaksym``.

    Returns:
        ``(n, 3)`` float64 (psi, theta, phi).
    """
    sym = symmetry if isinstance(symmetry, Symmetry) else Symmetry.parse(symmetry)
    d = _F(delta)
    if not (np.isfinite(d) and d > 0):
        raise UsageError(f"eman orientations: delta must be positive, got {delta}")
    if perturb and rng is None:
        raise UsageError("eman orientations: perturb=True needs a numpy Generator (rng)")
    units = sym.order if sym.is_group else 1  # 41253 square degrees on the sphere
    if 41253.0 / (float(d) ** 2) / units > _MAX_DIRECTIONS:
        raise UsageError(f"eman orientations: delta {delta} gives more than {_MAX_DIRECTIONS} directions")
    mirror = bool(inc_mirror or breaksym)
    az, alt = _eman_grid(sym, d, mirror, perturb, rng)
    if not breaksym:
        phi, theta, psi = canonical_spider(*eman_to_spider(az, alt, 0.0))
        return np.stack([psi, theta, phi], axis=1)
    R = eman_matrix(az, alt, 0.0)
    R = (R[None] @ sym.operators[:, None]).reshape(-1, 3, 3)  # operator-major, like EMAN2
    if not inc_mirror:
        R = R[R[:, 2, 2] >= 0]
    return matrix_to_doc_angles(R)


def _eman_grid(sym: Symmetry, d: np.float32, inc_mirror: bool, perturb: bool, rng):
    """The generator's loop over altitude rings in float32; EMAN2 (az, alt) arrays."""
    lim = _eman_delimiters(sym, inc_mirror, _F)
    altmax, azmax = _F(min(float(lim["alt_max"]), 180.0)), _F(lim["az_max"])
    alt_min = _F(lim["alt_min"])
    alt = alt_min if sym.kind == "h" else _F(0.0)
    points: list[tuple[np.float32, np.float32]] = []
    while alt <= altmax:
        if alt == 0:
            h = azmax
        else:
            h = _F(np.float64(d) / np.sin(np.float64(_F(np.pi / 180.0 * np.float64(alt)))))
            if _F(azmax / h) < _F(2.8):
                h = _F(azmax / _F(2.1))
        for az_s, alt_s in _eman_ring(sym, alt, h, altmax, azmax, inc_mirror):
            if perturb and alt_s != 0:
                alt_s = _F(alt_s + _F(rng.normal(0.0, float(_F(0.125) * d))))
                az_s = _F(az_s + _F(rng.normal(0.0, float(h * _F(0.125)))))
            points.append((az_s, alt_s))
            if sym.kind == "h" and inc_mirror and alt != alt_min:
                points.append((az_s, _F(_F(2.0) * alt_min - alt_s)))
        alt = _F(alt + d)
    arr = np.array(points, dtype=np.float64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def _eman_ring(sym: Symmetry, alt, h, altmax, azmax, inc_mirror):
    """Azimuths (az, alt) of one ring, before perturbation, in EMAN2's order."""
    az_lim, odd_flag = _az_limit(sym, altmax, inc_mirror, alt, h, azmax)
    platonic = sym.kind in ("tet", "oct", "icos")
    az = _F(0.0)
    while az <= az_lim:
        keep = not (alt == 0 and az > 0)  # one point at the pole
        if keep and platonic:
            keep = bool(_eman_in_asu(sym, alt, az, inc_mirror, _F))
        if keep:
            yield (_F(az + _F(sym.az_offset)) if platonic else az), alt
        az = _F(az + h)
        if keep and az > az_lim and odd_flag:  # odd D with mirror: jump to the second half
            az_lim, odd_flag = azmax, False
            az = _F(az + _F(azmax / _F(2.0)))


def _az_limit(sym: Symmetry, altmax, inc_mirror, alt, h, azmax):
    """EMAN2 OrientationGenerator::get_az_max: the last azimuth of a ring."""
    at_edge = alt == altmax
    if sym.kind == "d" and at_edge and sym.n % 2 == 1:
        return (_F(azmax / _F(4.0)), True) if inc_mirror else (_F(azmax / _F(2.0)), False)
    if sym.kind == "d" and at_edge and sym.n % 2 == 0 and inc_mirror:
        return _F(azmax / _F(2.0)), False
    if sym.kind == "c" and not inc_mirror and at_edge and sym.n % 2 == 1:
        return _F(azmax / _F(2.0)), False
    if sym.kind in ("c", "tet"):
        return _F(azmax - _F(h / _F(4.0))), False
    if inc_mirror and sym.kind in ("d", "oct", "icos"):
        return _F(azmax - _F(h / _F(4.0))), False
    return azmax, False


def even_sphere(n: int) -> np.ndarray:
    """``n`` nearly uniform directions on the whole sphere (Fibonacci spiral).

    Point i has ``cos(theta) = 1 - (2 i + 1) / n`` and ``phi = i * 137.50776...``
    (the golden angle) modulo 360; psi = 0. Equal-area by construction, so it is a
    good quasi-random sample for tests and coverage maps.

    Returns:
        ``(n, 3)`` float64 (psi, theta, phi).
    """
    n = int(n)
    if not 0 <= n <= _MAX_DIRECTIONS:
        raise UsageError(f"even_sphere: n must be 0..{_MAX_DIRECTIONS}, got {n}")
    i = np.arange(n, dtype=np.float64)
    z = 1.0 - (2.0 * i + 1.0) / max(n, 1)
    golden = 180.0 * (3.0 - np.sqrt(5.0))
    phi = np.mod(i * golden, 360.0)
    return np.stack([np.zeros(n), np.degrees(np.arccos(z)), phi], axis=1)


def so3_grid(delta: float, symmetry: str | Symmetry = "c1") -> np.ndarray:
    """Orientations covering SO(3) (modulo ``symmetry``) at about ``delta`` degrees.

    The directions are EMAN2's "eman" rings over the full rotational asymmetric unit
    (``eman_orientations(delta, symmetry, inc_mirror=True)``, so no mirror is
    assumed, as 3D alignment needs); each gets in-plane angles
    ``psi = k * 360 / m`` for k = 0 .. m-1 with ``m = max(1, round(360 / delta))``.

    Returns:
        ``(ndir * m, 3)`` float64 (psi, theta, phi), direction-major.
    """
    dirs = eman_orientations(delta, symmetry, inc_mirror=True)
    m = max(1, int(round(360.0 / float(delta))))
    if len(dirs) * m > _MAX_DIRECTIONS:
        raise UsageError(f"so3_grid: delta {delta} gives more than {_MAX_DIRECTIONS} orientations")
    psi = np.arange(m) * (360.0 / m)
    out = np.empty((len(dirs), m, 3))
    out[:, :, 0] = psi[None, :]
    out[:, :, 1] = dirs[:, None, 1]
    out[:, :, 2] = dirs[:, None, 2]
    return out.reshape(-1, 3)
