"""Averaged power spectra of micrographs (periodogram of overlapping tiles).

The spectrum is :func:`emsh.kernels.fourier.periodogram`: the micrograph is cut into
square tiles overlapping by ``overlap`` of their width, each tile's mean is removed, and
``|FFT|^2 / tile^2`` is averaged over the tiles (one batched FFT per row of tiles). The
result is float32 ``(tile, tile)``, centred (zero frequency at index ``tile//2``), as
``TF ED`` and :func:`emsh.kernels.ctf_estimate.estimate_defocus` read it.
"""

from __future__ import annotations

import numpy as np

from emsh.errors import UsageError
from emsh.kernels.fourier import periodogram

__all__ = ["MIN_TILE", "check_tile", "power_spectrum"]

#: Smallest tile: below this the Thon rings of a few µm defocus are not resolved.
MIN_TILE = 64


def check_tile(tile: int, shape) -> int:
    """The tile size as an int; UsageError when too small or larger than the micrograph."""
    t = int(tile)
    if t != tile or t < MIN_TILE:
        raise UsageError(f"tile size must be a whole number >= {MIN_TILE} px, got {tile}")
    if t > min(shape):
        raise UsageError(f"tile size {t} px is larger than the micrograph "
                         f"({shape[0]} x {shape[1]} px)")
    return t


def power_spectrum(micrograph, tile: int, overlap: float = 0.5) -> np.ndarray:
    """Periodogram-averaged power spectrum of one 2D micrograph (centred, float32).

    Args:
        micrograph: 2D real array.
        tile: tile size in pixels (>= :data:`MIN_TILE`, at most the micrograph's side).
        overlap: fraction of a tile shared with its neighbour, 0..0.9.
    """
    m = np.asarray(micrograph, dtype=np.float32)
    if m.ndim != 2:
        raise UsageError(f"power spectrum: expected a 2D micrograph, got shape {m.shape}")
    if not 0.0 <= float(overlap) <= 0.9:
        raise UsageError(f"tile overlap must be between 0 and 0.9, got {overlap}")
    return periodogram(m, check_tile(tile, m.shape), float(overlap))

