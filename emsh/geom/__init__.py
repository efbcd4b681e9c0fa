"""Geometry: Euler-angle conventions, point-group symmetry, orientation sampling.

The most used names are importable from here; importing them is cheap (numpy plus a
few small operator tables, no sampling or caching work at import time):

* :func:`spider_to_matrix`, :func:`matrix_to_spider` (:mod:`emsh.geom.euler`): SPIDER
  ZYZ angles (phi, theta, psi) in degrees <-> 3x3 rotation matrices;
* :class:`Symmetry` (:mod:`emsh.geom.symmetry`): point groups and helices with
  EMAN2's asymmetric units;
* :func:`voea`, :func:`eman_orientations` (:mod:`emsh.geom.orientations`): SPIDER's
  ``VO EA`` and EMAN2's orientation grids, as ``(n, 3)`` (psi, theta, phi) arrays.
"""

from emsh.geom.euler import matrix_to_spider, spider_to_matrix
from emsh.geom.symmetry import Symmetry
from emsh.geom.orientations import eman_orientations, voea

__all__ = ["Symmetry", "voea", "eman_orientations", "spider_to_matrix", "matrix_to_spider"]
