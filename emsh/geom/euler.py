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
"""

from __future__ import annotations

import numpy as np


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
