"""Euler angles in SPIDER's ZYZ convention and rotation matrices.

Convention (SPIDER ``docs/euler.html``): angles (phi, theta, psi) in degrees, three
rotations in a right-handed system: phi about Z, then theta about Y, then psi about
Z. The matrix is ``R = Rz(psi) @ Ry(theta) @ Rz(phi)`` with

    Rz(a) = [[ cos a,  sin a, 0],       Ry(t) = [[cos t, 0, -sin t],
             [-sin a,  cos a, 0],                [    0, 1,      0],
             [     0,      0, 1]]                [sin t, 0,  cos t]]

acting on column vectors (x, y, z). Doc files list the angles as psi, theta, phi.
All functions are vectorised: angle arguments broadcast, matrices come out with
shape ``(..., 3, 3)``.

The matrices are *passive* (they rotate the coordinate frame): ``spider_to_matrix(90,
0, 0)`` maps x = (1, 0, 0) to (0, -1, 0) and y to (1, 0, 0). A projection at ``R``
sums the volume along the z axis of ``p = R x`` (x in volume coordinates), so its
beam direction is the last row of ``R``, ``(sin theta cos phi, sin theta sin phi,
cos theta)`` (:func:`projection_direction`).

Other packages:

* RELION (rlnAngleRot, rlnAngleTilt, rlnAnglePsi) and Xmipp (rot, tilt, psi) build
  the very same matrix from (rot, tilt, psi) = (phi, theta, psi); their conversions
  here are the identity on the numbers.
* EMAN2 (az, alt, phi) is ``R = Rz(phi) Rx(alt) Rz(az)``; SPIDER -> EMAN2 is
  ``az = phi + 90, alt = theta, phi_eman = psi - 90`` (:func:`spider_to_eman`).

Arrays of angles with a last axis of 3 (``doc_angles_to_matrix``,
``matrix_to_doc_angles`` and everything in :mod:`emsh.geom.orientations` and
:mod:`emsh.geom.symmetry`) use the doc-file column order (psi, theta, phi); functions
that take separate arguments take them as (phi, theta, psi).
"""

from __future__ import annotations

import numpy as np

from emsh.errors import UsageError


def _rz(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, s, z], -1), np.stack([-s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _ry(t: np.ndarray) -> np.ndarray:
    c, s = np.cos(t), np.sin(t)
    z, o = np.zeros_like(t), np.ones_like(t)
    return np.stack([np.stack([c, z, -s], -1), np.stack([z, o, z], -1), np.stack([s, z, c], -1)], -2)


def spider_to_matrix(phi, theta, psi) -> np.ndarray:
    """Rotation matrices ``Rz(psi) Ry(theta) Rz(phi)`` for SPIDER angles in degrees.

    Returns float64 of shape ``broadcast(phi, theta, psi).shape + (3, 3)``.
    """
    phi, theta, psi = np.broadcast_arrays(
        *(np.radians(np.asarray(v, dtype=np.float64)) for v in (phi, theta, psi))
    )
    return _rz(psi) @ _ry(theta) @ _rz(phi)


# --------------------------------------------------------------------------------------
# Inverse and canonical form
# --------------------------------------------------------------------------------------

_GIMBAL = 1e-12  # |sin(theta)| below this is treated as theta = 0 or 180 exactly


def _wrap360(a: np.ndarray) -> np.ndarray:
    """Angles in degrees folded into [0, 360); -0.0 and rounding to 360 become 0."""
    out = np.mod(a, 360.0)
    out = np.where(out >= 360.0, 0.0, out)
    return out + 0.0  # turns -0.0 into 0.0


def matrix_to_spider(R) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SPIDER angles (phi, theta, psi) in degrees of rotation matrices.

    Exact inverse of :func:`spider_to_matrix`: ``spider_to_matrix(*matrix_to_spider(R))``
    reproduces ``R`` to rounding. The result is canonical: theta in [0, 180], phi and
    psi in [0, 360). At the gimbal lock (theta = 0 or 180, where only psi + phi or
    psi - phi is defined) phi is set to 0 and psi carries the whole in-plane angle,
    as EMAN2's ``Transform.get_rotation("spider")`` does.

    Args:
        R: array ``(..., 3, 3)`` of proper rotations.

    Returns:
        ``(phi, theta, psi)``, each an array of shape ``R.shape[:-2]``.
    """
    R = np.asarray(R, dtype=np.float64)
    if R.shape[-2:] != (3, 3):
        raise UsageError(f"matrix_to_spider: expected (..., 3, 3) matrices, got shape {R.shape}")
    s = np.hypot(R[..., 2, 0], R[..., 2, 1])
    lock = s <= _GIMBAL
    theta = np.where(lock, np.where(R[..., 2, 2] > 0, 0.0, np.pi), np.arctan2(s, R[..., 2, 2]))
    phi = np.where(lock, 0.0, np.arctan2(R[..., 2, 1], R[..., 2, 0]))
    # The remaining factor R (Ry(theta) Rz(phi))^T is Rz(psi); read psi off it. This
    # stays exact where phi is ill-conditioned (theta near 0 or 180).
    M = R @ np.swapaxes(_ry(theta) @ _rz(phi), -1, -2)
    psi = np.arctan2(M[..., 0, 1], M[..., 0, 0])
    theta = np.where(lock, np.where(theta > 0, 180.0, 0.0), np.degrees(theta))
    return _wrap360(np.degrees(phi)), theta, _wrap360(np.degrees(psi))


def canonical_spider(phi, theta, psi) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same rotation written with theta in [0, 180] and phi, psi in [0, 360).

    Pure angle arithmetic (no matrices), so values such as 90 stay exactly 90:
    theta is folded with ``(phi, theta, psi) == (phi + 180, -theta, psi + 180)``, and
    at theta = 0 or 180 exactly phi is moved into psi (``psi + phi`` or ``psi - phi``)
    as in :func:`matrix_to_spider`.
    """
    phi, theta, psi = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (phi, theta, psi)))
    theta = np.mod(theta, 360.0)
    flip = theta > 180.0
    theta = np.where(flip, 360.0 - theta, theta)
    phi = np.where(flip, phi + 180.0, phi)
    psi = np.where(flip, psi + 180.0, psi)
    psi = np.where(theta == 0.0, psi + phi, np.where(theta == 180.0, psi - phi, psi))
    phi = np.where((theta == 0.0) | (theta == 180.0), 0.0, phi)
    return _wrap360(phi), theta + 0.0, _wrap360(psi)


def doc_angles_to_matrix(angles) -> np.ndarray:
    """Matrices ``(n, 3, 3)`` from an ``(n, 3)`` array in doc-file order (psi, theta, phi)."""
    a = _as_angle_rows(angles, "doc_angles_to_matrix")
    return spider_to_matrix(a[..., 2], a[..., 1], a[..., 0])


def matrix_to_doc_angles(R) -> np.ndarray:
    """Canonical angles ``(..., 3)`` in doc-file order (psi, theta, phi) of matrices."""
    phi, theta, psi = matrix_to_spider(R)
    return np.stack([psi, theta, phi], axis=-1)


def _as_angle_rows(angles, who: str) -> np.ndarray:
    a = np.asarray(angles, dtype=np.float64)
    if a.ndim == 0 or a.shape[-1] != 3:
        raise UsageError(f"{who}: expected angles of shape (..., 3) as (psi, theta, phi), got {a.shape}")
    return a


# --------------------------------------------------------------------------------------
# Other packages' conventions
# --------------------------------------------------------------------------------------


def eman_matrix(az, alt, phi) -> np.ndarray:
    """EMAN2 rotation matrices for Euler angles (az, alt, phi) in degrees.

    EMAN2 (``libEM/transform.cpp``, ``Transform::set_rotation`` type "eman") uses
    ``R = Rz(phi) Rx(alt) Rz(az)`` with the same passive ``Rz`` as SPIDER and
    ``Rx(t) = [[1, 0, 0], [0, cos t, sin t], [0, -sin t, cos t]]``; its last row is
    ``(sin alt sin az, -sin alt cos az, cos alt)``. The matrix acts on (x, y, z) column
    vectors exactly like :func:`spider_to_matrix`, and
    ``eman_matrix(*spider_to_eman(phi, theta, psi)) == spider_to_matrix(phi, theta, psi)``.

    Returns:
        float64 array of shape ``broadcast(az, alt, phi).shape + (3, 3)``.
    """
    az, alt, phi = np.broadcast_arrays(*(np.radians(np.asarray(v, dtype=np.float64)) for v in (az, alt, phi)))
    return _rz(phi) @ _rx(alt) @ _rz(az)


def _rx(t: np.ndarray) -> np.ndarray:
    c, s = np.cos(t), np.sin(t)
    z, o = np.zeros_like(t), np.ones_like(t)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, s], -1), np.stack([z, -s, c], -1)], -2)


def spider_to_eman(phi, theta, psi) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EMAN2 (az, alt, phi) of SPIDER (phi, theta, psi): ``az = phi + 90``, ``alt = theta``,
    ``phi_eman = psi - 90`` (EMAN2's own "spider" Euler type). No wrapping, so
    :func:`eman_to_spider` inverts it exactly."""
    phi, theta, psi = (np.asarray(v, dtype=np.float64) for v in (phi, theta, psi))
    return phi + 90.0, theta + 0.0, psi - 90.0


def eman_to_spider(az, alt, phi) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SPIDER (phi, theta, psi) of EMAN2 (az, alt, phi): ``phi = az - 90``, ``theta = alt``,
    ``psi = phi_eman + 90``. No wrapping; use :func:`canonical_spider` for [0, 360)."""
    az, alt, phi = (np.asarray(v, dtype=np.float64) for v in (az, alt, phi))
    return az - 90.0, alt + 0.0, phi + 90.0


def spider_to_relion(phi, theta, psi) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RELION (rlnAngleRot, rlnAngleTilt, rlnAnglePsi) of SPIDER (phi, theta, psi).

    RELION's ``Euler_angles2matrix(rot, tilt, psi)`` (inherited from Xmipp) builds
    ``Rz(psi) Ry(tilt) Rz(rot)`` with the same passive elementary matrices as SPIDER;
    its last row is ``(sin tilt cos rot, sin tilt sin rot, cos tilt)``. The matrices
    are identical, so rot = phi, tilt = theta, psi = psi: the numbers carry over.
    """
    return tuple(np.asarray(v, dtype=np.float64) + 0.0 for v in (phi, theta, psi))


def relion_to_spider(rot, tilt, psi) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SPIDER (phi, theta, psi) of RELION (rot, tilt, psi); the identity, see :func:`spider_to_relion`."""
    return tuple(np.asarray(v, dtype=np.float64) + 0.0 for v in (rot, tilt, psi))


def spider_to_xmipp(phi, theta, psi) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Xmipp (angleRot, angleTilt, anglePsi) of SPIDER (phi, theta, psi).

    Xmipp's ``Euler_angles2matrix`` (``xmippCore core/geometry.cpp``) is
    ``Rz(psi) Ry(tilt) Rz(rot)``, the same matrix as SPIDER's, so rot = phi,
    tilt = theta, psi = psi.
    """
    return tuple(np.asarray(v, dtype=np.float64) + 0.0 for v in (phi, theta, psi))


def xmipp_to_spider(rot, tilt, psi) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SPIDER (phi, theta, psi) of Xmipp (rot, tilt, psi); the identity, see :func:`spider_to_xmipp`."""
    return tuple(np.asarray(v, dtype=np.float64) + 0.0 for v in (rot, tilt, psi))


# --------------------------------------------------------------------------------------
# Directions and distances
# --------------------------------------------------------------------------------------


def projection_direction(phi, theta) -> np.ndarray:
    """Unit beam direction, in volume coordinates, of the projection at (phi, theta).

    A projection with matrix ``R`` integrates the rotated volume along its z axis, so
    the beam runs along ``R^T (0, 0, 1)``, the last row of ``R``:
    ``(sin theta cos phi, sin theta sin phi, cos theta)``. psi only turns the image in
    its plane and does not enter. theta = 0 looks down the volume's z axis.

    Returns:
        float64 array ``(..., 3)`` with components (x, y, z) (vector order, not the
        (z, y, x) array-axis order).
    """
    phi, theta = np.broadcast_arrays(*(np.radians(np.asarray(v, dtype=np.float64)) for v in (phi, theta)))
    st = np.sin(theta)
    return np.stack([st * np.cos(phi), st * np.sin(phi), np.cos(theta)], axis=-1)


def direction_to_spider(v) -> tuple[np.ndarray, np.ndarray]:
    """(phi, theta) in degrees of direction vectors ``(..., 3)`` given as (x, y, z).

    Inverse of :func:`projection_direction` (vectors need not be normalised);
    phi is in [0, 360), and 0 at the poles.
    """
    v = np.asarray(v, dtype=np.float64)
    if v.ndim == 0 or v.shape[-1] != 3:
        raise UsageError(f"direction_to_spider: expected vectors of shape (..., 3), got {v.shape}")
    s = np.hypot(v[..., 0], v[..., 1])
    theta = np.degrees(np.arctan2(s, v[..., 2]))
    phi = np.where(s > _GIMBAL * np.abs(v[..., 2]), np.degrees(np.arctan2(v[..., 1], v[..., 0])), 0.0)
    return _wrap360(phi), theta


def angular_distance(R1, R2) -> np.ndarray:
    """Geodesic distance in degrees, [0, 180], between rotations ``R1`` and ``R2``.

    This is the angle of the rotation ``R1 R2^T``, computed from both its cosine
    (trace) and its sine (antisymmetric part), so it stays accurate near 0 and 180.
    ``R1`` and ``R2`` are ``(..., 3, 3)`` arrays that broadcast.
    """
    R1 = np.asarray(R1, dtype=np.float64)
    R2 = np.asarray(R2, dtype=np.float64)
    M = R1 @ np.swapaxes(R2, -1, -2)
    cos = (M[..., 0, 0] + M[..., 1, 1] + M[..., 2, 2] - 1.0) / 2.0
    sin = 0.5 * np.sqrt(
        (M[..., 2, 1] - M[..., 1, 2]) ** 2 + (M[..., 0, 2] - M[..., 2, 0]) ** 2 + (M[..., 1, 0] - M[..., 0, 1]) ** 2
    )
    return np.degrees(np.arctan2(sin, cos))


def angular_distance_sym(R1, R2, symmetry) -> np.ndarray:
    """Smallest geodesic distance in degrees between ``R1`` and the symmetry mates of ``R2``.

    For a volume with point-group symmetry G the projections at ``R`` and ``R g``
    (g in G) are identical, so the distance is ``min_g angular_distance(R1, R2 g)``.

    Args:
        R1, R2: rotation matrices ``(..., 3, 3)`` that broadcast.
        symmetry: a :class:`emsh.geom.symmetry.Symmetry` or a name such as ``"d7"``.
    """
    from emsh.geom.symmetry import Symmetry  # symmetry imports this module

    sym = symmetry if isinstance(symmetry, Symmetry) else Symmetry.parse(symmetry)
    R1 = np.asarray(R1, dtype=np.float64)[..., None, :, :]
    R2g = np.asarray(R2, dtype=np.float64)[..., None, :, :] @ sym.operators
    return angular_distance(R1, R2g).min(axis=-1)
