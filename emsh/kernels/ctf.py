"""Contrast transfer function: parameters and their conventions, CTF arrays, corrections.

emsh convention (the same as RELION's)::

    CTF(s, th) = sign * sin(gamma + phi_a + phi_s) * exp(-B s^2 / 4)
    gamma      = pi lambda dz(th) s^2 - (pi/2) Cs lambda^3 s^4
    dz(th)     = (U + V)/2 + (U - V)/2 cos(2 (th - alpha))

with ``s`` in 1/Å, ``th = atan2(ky, kx)`` (ky along array axis 0, kx along the last
axis; see :mod:`emsh.kernels.fourier`), defocus U, V in Å with underfocus
positive, ``alpha`` the astigmatism angle (deg, from the x axis to U),
``phi_a = asin(A)`` for the amplitude-contrast fraction A (RELION's
``atan(A/sqrt(1-A^2))``), ``phi_s`` the phase shift and B the B-factor (Å^2).
With ``sign=+1`` the CTF at zero frequency is ``+A`` (positive): the convention for
particles with white protein. Wavelength: :func:`wavelength_A` (relativistic).

Other programs' parameter sets convert exactly (``CTFParams.from_*``/``to_*``):

* RELION: rlnDefocusU/V (Å), rlnDefocusAngle (deg) = U, V, alpha; rlnVoltage (kV),
  rlnSphericalAberration (mm), rlnAmplitudeContrast (fraction), rlnCtfBfactor
  (Å^2), rlnPhaseShift (deg).
* SPHIRE/EMAN2Ctf: defocus and dfdiff in µm (underfocus positive), dfang (deg),
  ampcont in %, bfactor, voltage, cs, apix; SPHIRE's ``dz(th) = defocus -
  dfdiff/2 sin(2 (th + dfang))`` gives U, V = defocus ± dfdiff/2 and
  alpha = -dfang - 45.
* SPIDER (:class:`SpiderTF`, the ``TF`` answers): ``TF CT`` uses
  ``dz(th) = DZ - DZA/2 sin(2 (th - AZ))`` so U, V = DZ ± DZA/2, alpha = AZ - 45;
  amplitude contrast enters as ``atan(ACR/(1-ACR))`` so A = sin of that; the
  Gaussian envelope ``exp(-s^2/GEH^2)`` is B = 4/GEH^2; ``TFD`` computes
  ``-sin(gamma + phi_a)``, so SPIDER's sign -1 is emsh's ``sign=+1``. SPIDER's
  source-size and defocus-spread envelopes have no emsh counterpart.
  :func:`spider_tf_c3` and :func:`spider_tf_ct` reproduce SPIDER's arrays exactly,
  quirks included (TF C3 turns astigmatism into a constant defocus offset; TF CT
  flips the astigmatism on the kx = 0 column and takes azimuths from indices).

Layout: this module holds the parameters, their converters, CTF arrays and the
corrections (apply, phase flip, Wiener). SPIDER's ``TF C3/CT/COR/CTS`` live in
:mod:`emsh.kernels.ctf_spider` and defocus estimation in :mod:`emsh.kernels.ctf_estimate`;
their public names are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from emsh import fft as _fft
from emsh.errors import UsageError
from emsh.kernels.ctf_spider import spider_tf_c3, spider_tf_ct, tf_cor, tf_cts
from emsh.kernels.fourier import (axis_freq, check_size, freq_grid_half, half_shape,
                                  rotational_power_spectrum, spatial)

__all__ = [
    "CTFParams", "SpiderTF", "wavelength_A", "spider_wavelength_A", "ctf_2d", "ctf_1d",
    "spider_tf_c3", "spider_tf_ct", "apply_ctf", "phase_flip", "wiener", "tf_cor", "tf_cts",
    "rotational_power_spectrum", "DefocusFit", "estimate_defocus",
]

_F = np.float32
_HC_KEV_A = 12.398419843320026          # h c in keV Å (CODATA 2018)
_M0C2_KEV = 510.99895000                # electron rest energy in keV


def wavelength_A(kV):
    """Relativistic electron wavelength in Å for an accelerating voltage in kV (CODATA)."""
    e = np.asarray(kV, dtype=np.float64)
    if np.any(e <= 0):
        raise UsageError(f"voltage must be positive kV (got {kV})")
    return _HC_KEV_A / np.sqrt(e * (2.0 * _M0C2_KEV + e))


def spider_wavelength_A(kV):
    """SPIDER's (and SPHIRE's) wavelength ``12.398 / sqrt(kV (1022 + kV))`` in Å."""
    e = np.asarray(kV, dtype=np.float64)
    return 12.398 / np.sqrt(e * (1022.0 + e))


def spider_acr(amp_contrast):
    """SPIDER's amplitude-contrast ratio (``TF`` answers) from emsh's fraction:
    ``sin(phi) / (sin(phi) + cos(phi))`` with ``phi = arcsin(amp_contrast)``."""
    phi = np.arcsin(np.clip(np.asarray(amp_contrast, dtype=np.float64), 0.0, 1.0))
    return np.sin(phi) / (np.sin(phi) + np.cos(phi))


def _kv_from_spider_lambda(lam):
    r = (12.398 / np.asarray(lam, dtype=np.float64)) ** 2
    return 0.5 * (-1022.0 + np.sqrt(1022.0**2 + 4.0 * r))


def _norm_astig(mean, half_diff, angle_deg):
    """U >= V and the angle in [0, 180) from mean, signed half difference and angle."""
    h = np.asarray(half_diff, dtype=np.float64)
    ang = np.mod(np.asarray(angle_deg, dtype=np.float64) + np.where(h < 0, 90.0, 0.0), 180.0)
    return _unbox(mean + np.abs(h)), _unbox(mean - np.abs(h)), _unbox(ang)


def _unbox(v):
    v = np.asarray(v, dtype=np.float64)
    return float(v) if v.ndim == 0 else v


@dataclass
class CTFParams:
    """CTF parameters in emsh's (RELION's) convention; any field may be a 1-D array (batch).

    Attributes:
        defocus_u_A, defocus_v_A: defocus along the major/minor axes, Å, underfocus > 0
            (``defocus_v_A`` defaults to ``defocus_u_A``).
        astig_angle_deg: angle of the U axis from the x axis (deg, counter-clockwise as
            ``atan2(ky, kx)``).
        voltage_kV, cs_mm: accelerating voltage (kV), spherical aberration (mm).
        amp_contrast: amplitude contrast as a fraction (0..1).
        bfactor_A2: envelope ``exp(-B s^2/4)`` (Å^2, > 0 damps).
        phase_shift_deg: extra phase (phase plate), degrees.
        apix: pixel size in Å.
    """

    defocus_u_A: float | np.ndarray
    defocus_v_A: float | np.ndarray | None = None
    astig_angle_deg: float | np.ndarray = 0.0
    voltage_kV: float | np.ndarray = 300.0
    cs_mm: float | np.ndarray = 2.7
    amp_contrast: float | np.ndarray = 0.1
    bfactor_A2: float | np.ndarray = 0.0
    phase_shift_deg: float | np.ndarray = 0.0
    apix: float | np.ndarray = 1.0

    def __post_init__(self):
        if self.defocus_v_A is None:
            self.defocus_v_A = self.defocus_u_A

    @property
    def batch_size(self) -> int | None:
        """Length of the array fields (all must agree), or None when all are scalars."""
        sizes = {np.size(getattr(self, f.name)) for f in fields(self)
                 if np.ndim(getattr(self, f.name)) > 0}
        if len(sizes) > 1:
            raise UsageError(f"CTFParams: array fields of different lengths {sorted(sizes)}")
        return sizes.pop() if sizes else None

    def arrays(self) -> dict[str, np.ndarray]:
        """Every field as a float64 array of the batch length (1 for scalars)."""
        n = self.batch_size or 1
        return {f.name: np.broadcast_to(np.asarray(getattr(self, f.name), dtype=np.float64),
                                        (n,)) for f in fields(self)}

    def take(self, idx) -> CTFParams:
        """The parameters of the images ``idx`` (an index array, mask or slice) of a batch."""
        return CTFParams(**{k: v[idx] for k, v in self.arrays().items()})

    @property
    def defocus_mean_A(self):
        """``(U + V) / 2`` in Å."""
        return _unbox((np.asarray(self.defocus_u_A) + np.asarray(self.defocus_v_A)) / 2.0)

    @property
    def astigmatism_A(self):
        """``U - V`` in Å."""
        return _unbox(np.asarray(self.defocus_u_A) - np.asarray(self.defocus_v_A))

    # --- RELION
    @classmethod
    def from_relion(cls, rows, apix=None) -> CTFParams:
        """From RELION columns (a dict of values or an ``emsh.table.Table``).

        The pixel size comes from ``apix``, else rlnImagePixelSize, else
        rlnDetectorPixelSize (µm) * 1e4 / rlnMagnification.
        """
        def get(key, default=None):
            if key in rows:
                return _unbox(rows[key])
            if default is None:
                raise UsageError(f"RELION CTF parameters: no {key}")
            return default
        if apix is None:
            if "rlnImagePixelSize" in rows:
                apix = get("rlnImagePixelSize")
            elif "rlnDetectorPixelSize" in rows and "rlnMagnification" in rows:
                apix = _unbox(np.asarray(get("rlnDetectorPixelSize")) * 1e4
                              / np.asarray(get("rlnMagnification")))
            else:
                raise UsageError("RELION CTF parameters: give apix or rlnImagePixelSize")
        return cls(get("rlnDefocusU"), get("rlnDefocusV"), get("rlnDefocusAngle", 0.0),
                   get("rlnVoltage"), get("rlnSphericalAberration"),
                   get("rlnAmplitudeContrast"), get("rlnCtfBfactor", 0.0),
                   get("rlnPhaseShift", 0.0), apix)

    def to_relion(self) -> dict:
        """RELION columns (values as stored in the fields)."""
        return {"rlnDefocusU": self.defocus_u_A, "rlnDefocusV": self.defocus_v_A,
                "rlnDefocusAngle": self.astig_angle_deg, "rlnVoltage": self.voltage_kV,
                "rlnSphericalAberration": self.cs_mm, "rlnAmplitudeContrast": self.amp_contrast,
                "rlnCtfBfactor": self.bfactor_A2, "rlnPhaseShift": self.phase_shift_deg,
                "rlnImagePixelSize": self.apix}

    # --- SPHIRE / EMAN2Ctf
    @classmethod
    def from_sphire(cls, defocus_um, dfdiff_um=0.0, dfang_deg=0.0, bfactor_A2=0.0,
                    ampcont_pct=10.0, voltage_kV=300.0, cs_mm=2.0, apix=1.0) -> CTFParams:
        """From SPHIRE/EMAN2Ctf fields (µm, deg, %); see the module notes for the angle."""
        mean = np.asarray(defocus_um, dtype=np.float64) * 1e4
        u, v, ang = _norm_astig(mean, np.asarray(dfdiff_um) * 1e4 / 2.0,
                                -np.asarray(dfang_deg, dtype=np.float64) - 45.0)
        return cls(u, v, ang, voltage_kV, cs_mm, _unbox(np.asarray(ampcont_pct) / 100.0),
                   bfactor_A2, 0.0, apix)

    def to_sphire(self) -> dict:
        """SPHIRE/EMAN2Ctf fields: defocus, dfdiff (µm), dfang (deg), ampcont (%), ..."""
        return {"defocus": _unbox(np.asarray(self.defocus_mean_A) / 1e4),
                "dfdiff": _unbox(np.asarray(self.astigmatism_A) / 1e4),
                "dfang": _unbox(np.mod(-np.asarray(self.astig_angle_deg) - 45.0, 180.0)),
                "bfactor": self.bfactor_A2, "ampcont": _unbox(np.asarray(self.amp_contrast) * 100),
                "voltage": self.voltage_kV, "cs": self.cs_mm, "apix": self.apix}

    # --- SPIDER
    @classmethod
    def from_spider(cls, answers: SpiderTF) -> CTFParams:
        """From SPIDER ``TF`` answers (see :meth:`SpiderTF.to_params`)."""
        return answers.to_params()

    def to_spider(self, sign: float = -1.0, source_size: float = 0.0,
                  defocus_spread: float = 0.0, use_lambda: bool = False) -> SpiderTF:
        """SPIDER ``TF`` answers for these parameters (scalars only).

        Args:
            sign: SPIDER's sign answer; -1 gives emsh's ``sign=+1`` CTF.
            source_size, defocus_spread: SPIDER's extra envelope terms (1/Å, Å).
            use_lambda: answer the wavelength (SPIDER's formula) instead of the kV.
        """
        if self.batch_size is not None:
            raise UsageError("CTFParams.to_spider: expected scalar parameters, not a batch")
        acr = float(spider_acr(self.amp_contrast))
        geh = float(2.0 / np.sqrt(self.bfactor_A2)) if self.bfactor_A2 > 0 else 0.0
        kv = float(spider_wavelength_A(self.voltage_kV)) if use_lambda else float(self.voltage_kV)
        return SpiderTF(float(self.cs_mm), float(self.defocus_mean_A), kv, 0.5 / float(self.apix),
                        source_size, defocus_spread, float(self.astigmatism_A),
                        float(np.mod(self.astig_angle_deg + 45.0, 180.0)), acr, geh, sign)


@dataclass
class SpiderTF:
    """The answers of SPIDER's ``TF C3`` / ``TF CT`` / ``TF C`` prompts, in prompt order.

    Attributes:
        cs_mm: spherical aberration (mm; SPIDER raises values below 1e-4 to 1e-4).
        defocus_A: defocus (Å, underfocus positive).
        kv_or_lambda: voltage in kV, or (a value below 1) the wavelength in Å.
        fmax: maximum spatial frequency (1/Å) = 0.5 / pixel size.
        source_size, defocus_spread: envelope terms (1/Å, Å).
        astig_A, astig_azimuth_deg: astigmatism DZA (Å) and its azimuth AZ (deg).
        acr: amplitude contrast ratio (0..1, SPIDER's meaning).
        geh: Gaussian envelope half-width (1/Å); 0 means none.
        sign: +1 or -1.
    """

    cs_mm: float
    defocus_A: float
    kv_or_lambda: float = 300.0
    fmax: float = 0.5
    source_size: float = 0.0
    defocus_spread: float = 0.0
    astig_A: float = 0.0
    astig_azimuth_deg: float = 0.0
    acr: float = 0.1
    geh: float = 0.0
    sign: float = -1.0

    @property
    def lambda_A(self) -> float:
        """Wavelength (Å) as SPIDER derives it from the kV-or-lambda answer (float32)."""
        v = self.kv_or_lambda
        if v <= 0 or v == 1:
            raise UsageError(f"SPIDER TF: impossible value {v} for kV or lambda")
        if v < 1:
            return float(v)
        k = _F(v)
        return float(_F(12.398) / np.sqrt(k * (_F(1022) + k)))

    def to_params(self) -> CTFParams:
        """emsh parameters (SPIDER's source size, defocus spread and sign are not kept)."""
        lam = self.lambda_A                                  # validates the answer
        kv = (float(_kv_from_spider_lambda(lam)) if self.kv_or_lambda < 1
              else float(self.kv_or_lambda))
        u, v, ang = _norm_astig(float(self.defocus_A), self.astig_A / 2.0,
                                self.astig_azimuth_deg - 45.0)
        phi = np.arctan2(self.acr, 1.0 - self.acr)
        b = 4.0 / self.geh**2 if self.geh > 0 else 0.0
        return CTFParams(u, v, ang, kv, max(self.cs_mm, 1e-4), float(np.sin(phi)), b, 0.0,
                         0.5 / self.fmax)

    @staticmethod
    def fmax_from_apix(apix: float) -> float:
        """SPIDER's maximum spatial frequency answer for a pixel size: ``0.5 / apix``."""
        return 0.5 / float(apix)


# ----------------------------------------------------------------------------- CTF arrays

def _ctf_values(P: dict, s2px, c2, s2, sign: float, out: np.ndarray) -> None:
    """Fill ``out`` (n, M) with the CTF at pixel frequencies ``s2px`` (cycles/px squared)."""
    n = out.shape[0]
    step = max(1, (1 << 22) // max(s2px.size, 1))
    for i in range(0, n, step):
        j = slice(i, min(n, i + step))
        col = {k: v[j, None] for k, v in P.items()}
        lam = wavelength_A(col["voltage_kV"])
        q = s2px[None, :] / col["apix"] ** 2
        mean = 0.5 * (col["defocus_u_A"] + col["defocus_v_A"])
        dev = 0.5 * (col["defocus_u_A"] - col["defocus_v_A"])
        a = np.radians(2.0 * col["astig_angle_deg"])
        dz = mean + dev * (c2[None, :] * np.cos(a) + s2[None, :] * np.sin(a))
        gamma = np.pi * lam * dz * q - 0.5e7 * np.pi * col["cs_mm"] * lam**3 * q * q
        phi = np.arcsin(np.clip(col["amp_contrast"], 0.0, 1.0)) + np.radians(col["phase_shift_deg"])
        env = np.exp(-0.25 * col["bfactor_A2"] * q)
        out[j] = sign * np.sin(gamma + phi) * env


def ctf_2d(params: CTFParams, shape, half: bool = True, sign: float = 1.0) -> np.ndarray:
    """CTF images (float32) in FFT layout, one per particle of a batch of parameters.

    Args:
        params: scalars (one CTF) or 1-D arrays (one CTF per particle).
        shape: real image shape ``(ny, nx)`` in pixels.
        half: half spectrum ``(ny, nx//2+1)`` (the layout of ``rfftn``); else the full
            ``(ny, nx)`` spectrum, origin at index 0 (``np.fft.fftshift`` centres it).
        sign: +1 (positive at zero frequency) or -1.

    Returns:
        ``(ny, nxh)`` for scalar parameters, ``(n, ny, nxh)`` for a batch.
    """
    shape = check_size(shape, "ctf_2d")
    if len(shape) != 2:
        raise UsageError(f"ctf_2d: shape {shape} is not (ny, nx)")
    if half:
        ky, kx = freq_grid_half(shape)
    else:
        ky, kx = axis_freq(shape[0])[:, None], axis_freq(shape[1])[None, :]
    ky, kx = np.broadcast_arrays(ky, kx)
    s2px = (kx * kx + ky * ky).ravel()
    th = np.arctan2(ky, kx).ravel()
    P = params.arrays()
    n = params.batch_size
    out = np.empty(((n or 1), s2px.size), dtype=_F)
    check_size(out.shape, "ctf_2d")
    _ctf_values(P, s2px, np.cos(2 * th), np.sin(2 * th), float(sign), out)
    out = out.reshape((n or 1,) + ky.shape)
    return out if n is not None else out[0]


def ctf_1d(params: CTFParams, freq_A, angle_deg: float | None = None, sign: float = 1.0):
    """CTF along a line of frequencies (1/Å); ``angle_deg=None`` uses the mean defocus."""
    s = np.asarray(freq_A, dtype=np.float64).ravel()
    P = params.arrays()
    if angle_deg is None:
        P["defocus_u_A"] = P["defocus_v_A"] = 0.5 * (P["defocus_u_A"] + P["defocus_v_A"])
        angle_deg = 0.0
    t = np.radians(2.0 * angle_deg)
    P["apix"] = np.ones_like(P["apix"])
    out = np.empty((P["apix"].size, s.size))
    _ctf_values(P, s * s, np.full(s.size, np.cos(t)), np.full(s.size, np.sin(t)), sign, out)
    return out if params.batch_size is not None else out[0]


# ----------------------------------------------------------------------------- corrections

def _real_or_spectra(x, ndim: int):
    """(spectra in numpy convention, real shape or None) for real images or half spectra."""
    if np.iscomplexobj(x):
        return np.asarray(x, dtype=np.complex64), None
    a, lead, nd = spatial(x, ndim)
    return _fft.rfftn(a, nd).reshape(lead + half_shape(a.shape[1:])), a.shape[1:]


def _back(F, shape, ndim):
    if shape is None:
        return F.astype(np.complex64, copy=False)
    lead = F.shape[: F.ndim - ndim]
    Fb = F.reshape((-1,) + F.shape[F.ndim - ndim:]).astype(np.complex64, copy=False)
    return _fft.irfftn(Fb, (Fb.shape[0],) + shape, ndim).reshape(lead + shape)


def apply_ctf(F, ctf, ndim: int = 2) -> np.ndarray:
    """Multiply by a CTF: half spectra ``F`` (complex, returned complex), or real images
    (transformed, multiplied and transformed back). ``ctf`` broadcasts against the spectra
    (e.g. ``(n, ny, nxh)`` from :func:`ctf_2d` for a stack ``(n, ny, nx)``)."""
    G, shape = _real_or_spectra(F, ndim)
    return _back(G * np.asarray(ctf, dtype=_F), shape, ndim)


def phase_flip(imgs, ctf, ndim: int = 2) -> np.ndarray:
    """Multiply the spectra by the sign of the CTF (``+1`` where CTF >= 0); real or complex in."""
    G, shape = _real_or_spectra(imgs, ndim)
    return _back(G * np.where(np.asarray(ctf) < 0, _F(-1.0), _F(1.0)), shape, ndim)


def wiener(imgs, ctf, snr, ndim: int = 2) -> np.ndarray:
    """Wiener filter ``F * CTF / (CTF^2 + 1/snr)``; ``snr`` > 0, scalar or broadcastable."""
    snr = np.asarray(snr, dtype=np.float64)
    if np.any(snr <= 0):
        raise UsageError("wiener: the SNR must be positive")
    c = np.asarray(ctf, dtype=np.float64)
    G, shape = _real_or_spectra(imgs, ndim)
    return _back(G * (c / (c * c + 1.0 / snr)).astype(_F), shape, ndim)


# ----------------------------------------------------------------------------- re-exports
# estimate_defocus and DefocusFit live in emsh.kernels.ctf_estimate, which imports this
# module (it builds CTFParams). They stay importable from here: the module __getattr__
# below fetches them on first use, so neither module needs the other half-built at
# import time, whichever is imported first. (ctf_spider needs nothing from this module
# at run time, so its names are imported plainly at the top.)
_ESTIMATION = frozenset({"DefocusFit", "estimate_defocus"})

if TYPE_CHECKING:
    from emsh.kernels.ctf_estimate import DefocusFit, estimate_defocus


def __getattr__(name: str):
    if name in _ESTIMATION:
        from emsh.kernels import ctf_estimate
        value = getattr(ctf_estimate, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _ESTIMATION)
