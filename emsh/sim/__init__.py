"""Simulated data with known truth, deterministic from a seed.

* :mod:`emsh.sim.phantoms` — analytic test volumes (Gaussian blobs, spheres).
* :mod:`emsh.sim.models` — bundled atomic models (adenylate kinase, closed and open)
  and atomic model -> density map via gemmi.
* :mod:`emsh.sim.particles` — particle stacks (projections, shifts, CTF, noise, classes)
  and 2D-view sets for classification tests.
* :mod:`emsh.sim.micrographs` — micrographs with particles at known positions.
* :mod:`emsh.sim.subtomograms` — subtomograms with a missing wedge.
* :mod:`emsh.sim.truth` — truth tables as RELION STAR and SPIDER doc files.

Every random choice comes from a ``numpy.random.Generator`` argument.
"""
