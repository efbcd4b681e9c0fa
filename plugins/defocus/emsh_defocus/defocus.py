"""Defocus and astigmatism of a micrograph: its averaged power spectrum, fitted by
:func:`emsh.kernels.ctf_estimate.estimate_defocus` (emsh's CTF conventions: defocus in
Å, underfocus positive, U >= V, angle of U from the x axis in [0, 180) degrees).

The kernel models the spectrum in the fitting band as a smooth background plus a smooth
envelope times CTF^2 (Legendre polynomials fitted per candidate), so no separate
background subtraction is needed; this module ties the spectrum
(:mod:`emsh_defocus.power`) to the fit and packs the result as a row of the defocus doc.

Tuning for micrograph spectra: the polynomials' degree is 2 here (the kernel's default
is 4). With the few Thon rings of a 30-8 Å band at 1-1.5 µm defocus, degree-4
background and envelope curves are flexible enough to follow the rings themselves and
the fit then locks onto a wrong defocus (20-30 % off) on some micrographs; degree 2
does not, and is as accurate on wide bands (measured on DG SIM micrographs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emsh.errors import UsageError
from emsh.kernels.ctf_estimate import DefocusFit, estimate_defocus

from .power import power_spectrum

__all__ = ["DEGREE", "MicrographCTF", "fit_micrograph", "fit_spectrum", "check_band"]

#: Degree of the kernel's background and envelope polynomials for micrograph spectra.
DEGREE = 2


@dataclass
class MicrographCTF:
    """One micrograph's result: its spectrum and the fit.

    Attributes:
        spectrum: centred averaged power spectrum, float32 ``(tile, tile)``.
        fit: the kernel's :class:`~emsh.kernels.ctf_estimate.DefocusFit`.
    """

    spectrum: np.ndarray
    fit: DefocusFit

    @property
    def defocus_A(self) -> float:
        """Mean defocus ``(U + V) / 2`` in Å."""
        return float(self.fit.params.defocus_mean_A)

    @property
    def astig_A(self) -> float:
        """Astigmatism ``U - V`` in Å (>= 0)."""
        return float(self.fit.params.astigmatism_A)

    @property
    def angle_deg(self) -> float:
        """Angle of U from the x axis, degrees in [0, 180)."""
        return float(self.fit.params.astig_angle_deg)

    def doc_row(self, mic: int) -> list[float]:
        """``mic, defocus_A, astig_A, angle_deg, fit score``: a row of the defocus doc."""
        return [float(mic), self.defocus_A, self.astig_A, self.angle_deg, float(self.fit.score)]


def check_band(apix: float, res_lo: float, res_hi: float) -> tuple[float, float]:
    """The resolution band (low, high) in Å; UsageError unless low > high >= 2 * apix."""
    lo, hi = float(res_lo), float(res_hi)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo > hi >= 2.0 * float(apix)):
        raise UsageError(f"resolution range must be low > high >= 2 x pixel size "
                         f"({2 * float(apix):.2f} Å), got {res_lo}, {res_hi} Å")
    return lo, hi


def fit_spectrum(spectrum, apix: float, kv: float, cs: float, amp: float, res_lo: float,
                 res_hi: float, defocus_range_A=(3000.0, 60000.0),
                 astig_max_A: float = 2000.0, degree: int = DEGREE) -> DefocusFit:
    """Defocus and astigmatism from a centred averaged power spectrum.

    Args:
        spectrum: square centred spectrum (:func:`emsh_defocus.power.power_spectrum`).
        apix, kv, cs, amp: pixel size (Å), voltage (kV), Cs (mm), amplitude contrast.
        res_lo, res_hi: fitting band, Å (low > high >= 2 apix).
        defocus_range_A: (min, max) mean defocus searched, Å.
        astig_max_A: largest astigmatism ``U - V`` searched, Å.
        degree: degree of the background and envelope polynomials (see the module notes).
    """
    lo, hi = check_band(apix, res_lo, res_hi)
    return estimate_defocus(spectrum, float(apix), kV=float(kv), cs=float(cs),
                            amp_contrast=float(amp), defocus_range_A=defocus_range_A,
                            res_range_A=(lo, hi), astig_max_A=float(astig_max_A),
                            degree=int(degree))


def fit_micrograph(micrograph, apix: float, kv: float, cs: float, amp: float, tile: int,
                   res_lo: float, res_hi: float, overlap: float = 0.5,
                   defocus_range_A=(3000.0, 60000.0),
                   astig_max_A: float = 2000.0) -> MicrographCTF:
    """Averaged power spectrum of ``micrograph`` (tiles of ``tile`` px) and its CTF fit.

    See :func:`fit_spectrum` for the arguments; ``overlap`` is the tiles' overlap
    fraction.
    """
    check_band(apix, res_lo, res_hi)
    ps = power_spectrum(micrograph, tile, overlap)
    return MicrographCTF(ps, fit_spectrum(ps, apix, kv, cs, amp, res_lo, res_hi,
                                          defocus_range_A, astig_max_A))
