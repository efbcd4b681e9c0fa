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
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from emsh import fft as _fft
from emsh.errors import UsageError
from emsh.kernels.fourier import (axis_freq, check_size, freq_grid_half, half_shape,
                                  rotational_power_spectrum, spatial, spider_ft, spider_ift)

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
        phi = np.arcsin(np.clip(self.amp_contrast, 0.0, 1.0))
        acr = float(np.sin(phi) / (np.sin(phi) + np.cos(phi)))
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


# ----------------------------------------------------------------------------- SPIDER TF C3 / CT

def _tfd32(cs1, dz, lam, q, ds, ak, wgh, env) -> np.ndarray:
    """SPIDER's ``TFD`` in float32 with its order of operations (``tfd.f``)."""
    cs1, lam, q, ds, wgh, env = (_F(v) for v in (cs1, lam, q, ds, wgh, env))
    pi2 = np.float64(-9.8696050643920898400000)            # -pi^2, double as in SPIDER
    kpp = np.float64(11.09035491943359380000)               # 16 ln 2
    f1 = _F(1.0) / np.sqrt(cs1 * lam)
    f2 = np.sqrt(np.sqrt(cs1 * (lam * lam * lam)))
    q1 = (q * f2) * (q * f2)
    env1 = env / (f2 * f2)
    akk = ak * f2
    a2 = akk * akk
    kappa = _F(np.float64(ds * ds * f1) * pi2 / kpp)
    dz1 = dz * f1
    p = a2 * akk - dz1 * akk
    ch = np.exp(a2 * a2 * kappa)
    b = (np.exp(pi2 * np.float64(q1) * (p * p).astype(np.float64)) * ch
         * np.exp(-env1 * a2)).astype(_F)
    qqt = _F(2.0 * np.pi) * (_F(0.25) * (a2 * a2) - _F(0.5) * dz1 * a2)   # float32, as built
    return b * np.sin(qqt - wgh)


def _spider_common(ans: SpiderTF, flip: bool, geh_zero_means_none: bool):
    q, ds = (0.0, 0.0) if flip else (ans.source_size, ans.defocus_spread)
    if flip or (ans.geh == 0 and geh_zero_means_none):
        env = 0.0
    elif ans.geh == 0:
        raise UsageError("SPIDER TF C3: Gaussian envelope half-width 0 (SPIDER divides by it)")
    else:
        env = float(_F(1.0) / (_F(ans.geh) * _F(ans.geh)))
    acr = _F(ans.acr)
    wgh = np.arctan(acr / (_F(1.0) - acr))
    return _F(max(ans.cs_mm, 1e-4)) * _F(1e7), ans.lambda_A, q, ds, wgh, env


def _spider_out(tf: np.ndarray, ans: SpiderTF, flip: bool) -> np.ndarray:
    sgn = _F(ans.sign)
    val = np.where(tf >= 0, _F(1.0), _F(-1.0)) * sgn if flip else tf * sgn
    return val.astype(np.complex64)


def spider_tf_c3(answers: SpiderTF, n: int, flip: bool = False) -> np.ndarray:
    """SPIDER ``TF C3`` (or ``TF CT3`` with ``flip``): cubic CTF in Fourier-file layout.

    Reproduces ``trafc3.f`` in float32: frequency step ``fmax/(n//2)``, frequency
    index ``sqrt(ix^2+iy^2+iz^2)``; the astigmatism azimuth is 0 for every non-zero
    frequency, so astigmatism only shifts the defocus to ``DZ - DZA/2 sin(2 AZ)``.
    ``flip`` gives ``+-sign`` (the sign of TF) and ignores the envelope terms.

    Returns:
        complex64 ``(n, n, n//2 + 1)`` with zero imaginary parts, as SPIDER writes it.
    """
    n = int(n)
    check_size((n, n, n // 2 + 1), "TF C3")
    cs1, lam, q, ds, wgh, env = _spider_common(answers, flip, False)
    sc = _F(answers.fmax) / _F(n // 2)
    k = np.arange(n)
    k = np.where(k > n // 2, k - n, k).astype(_F)
    kx = np.arange(n // 2 + 1, dtype=_F)
    ak = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2) * sc
    pi = np.float64(3.1415926)
    azr = _F(answers.astig_azimuth_deg * (pi / 180.0))
    dz = _F(answers.defocus_A)
    half = _F(answers.astig_A) / _F(2.0)
    dzz = np.where(ak != 0, dz + half * np.sin(_F(2.0) * (_F(0.0) - azr)),
                   dz + half * np.sin(_F(2.0) * (_F(pi / 2.0) - azr))).astype(_F)
    return _spider_out(_tfd32(cs1, dzz, lam, q, ds, ak, wgh, env), answers, flip)


def spider_tf_ct(answers: SpiderTF, nx: int, ny: int | None = None, flip: bool = True):
    """SPIDER ``TF CT`` (phase flipping, default) or ``TF C`` (``flip=False``), 2D.

    Reproduces ``trafc.f`` in float32: ``s = fmax sqrt((2 kx/nx)^2 + (2 ky/ny)^2)``,
    azimuth ``atan2(ky, kx) + pi/2`` from the integer frequency indices (so not the
    true angle on non-square images), but ``pi/2`` on the whole ``kx = 0`` column (so
    there the astigmatism has the opposite sign). ``TF CT`` returns ``+-sign`` by the
    sign of TF (``TF >= 0`` gives ``+sign``); ``TF C`` returns ``sign * TF``.

    Returns:
        complex64 ``(ny, nx//2 + 1)`` with zero imaginary parts.
    """
    nx = int(nx)
    ny = nx if not ny else int(ny)
    check_size((ny, nx // 2 + 1), "TF CT")
    cs1, lam, q, ds, wgh, env = _spider_common(answers, False, True)
    if flip:
        env = 0.0
    kx = np.arange(nx // 2 + 1, dtype=_F)[None, :]
    ky = np.arange(ny)
    ky = np.where(ky > ny // 2, ky - ny, ky).astype(_F)[:, None]
    kx, ky = np.broadcast_arrays(kx, ky)
    sx, sy = _F(2.0) / _F(nx), _F(2.0) / _F(ny)
    ak = _F(answers.fmax) * np.sqrt((kx * sx) ** 2 + (ky * sy) ** 2)
    az = np.where(kx != 0, np.arctan2(ky, kx) + np.pi / 2.0, np.pi / 2.0).astype(_F)
    azr = _F(answers.astig_azimuth_deg * (np.pi / 180.0))
    dzz = (_F(answers.defocus_A) + _F(answers.astig_A) / _F(2.0)
           * np.sin(_F(2.0) * (az - azr))).astype(_F)
    return _spider_out(_tfd32(cs1, dzz, lam, q, ds, ak.astype(_F), wgh, env), answers, flip)


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


def tf_cor(x, ctf, shape=None) -> np.ndarray:
    """SPIDER ``TF COR``: real result of ``spider_ift(spider_ft(x) * ctf)``.

    Args:
        x: real image/volume, or its SPIDER-convention half spectrum (a Fourier file);
            extra leading axes are a batch.
        ctf: one CTF in SPIDER Fourier layout (2D or 3D, complex or real); its number
            of axes sets the dimensionality.
        shape: real shape of ``x`` (needed when ``x`` is complex).
    """
    c = np.asarray(ctf)
    nd = c.ndim
    if np.iscomplexobj(x):
        if shape is None:
            raise UsageError("TF COR: give the real shape for Fourier input")
        F = np.asarray(x, dtype=np.complex64)
    else:
        F = spider_ft(x, nd)
        shape = np.shape(x)[np.ndim(x) - nd:]
    if F.shape[F.ndim - nd:] != c.shape:
        raise UsageError(f"TF COR: CTF of shape {c.shape} does not fit the spectrum {F.shape}")
    return spider_ift(F * c, shape)


def tf_cts(volumes, ctfs, snr: float, shape=None) -> np.ndarray:
    """SPIDER ``TF CTS``: ``spider_ift(sum F_g conj(C_g) / (sum |C_g|^2 + 1/snr))``.

    Args:
        volumes: ``(g, *real)`` real images/volumes, or ``(g, *half)`` SPIDER spectra.
        ctfs: ``(g, *half)`` CTFs in SPIDER Fourier layout, one per input.
        snr: signal-to-noise ratio (> 0).
        shape: real shape (needed for Fourier input).
    """
    if snr <= 0:
        raise UsageError("TF CTS: SNR must be > 0")
    C = np.asarray(ctfs)
    nd = C.ndim - 1
    if np.iscomplexobj(volumes):
        if shape is None:
            raise UsageError("TF CTS: give the real shape for Fourier input")
        F = np.asarray(volumes, dtype=np.complex64)
    else:
        F = spider_ft(volumes, nd)
        shape = np.shape(volumes)[1:]
    if F.shape != C.shape:
        raise UsageError(f"TF CTS: CTFs {C.shape} and inputs {F.shape} differ in shape")
    num = (F * np.conj(C)).sum(axis=0)
    den = (np.abs(C).astype(np.float64) ** 2).sum(axis=0) + 1.0 / snr
    return spider_ift((num / den).astype(np.complex64), shape)


# ----------------------------------------------------------------------------- defocus estimation

@dataclass
class DefocusFit:
    """Result of :func:`estimate_defocus`.

    Attributes:
        params: fitted CTF parameters (U >= V, angle in [0, 180)).
        score: fraction of the spectrum's variance in the fitting band that the model
            (smooth background + smooth envelope x CTF^2) explains, 0..1.
        res_range_A: the resolution band used (low, high), Å.
    """

    params: CTFParams
    score: float
    res_range_A: tuple[float, float]


class _Model:
    """Least-squares fit ``d = bg(s) + env(s) * CTF^2`` with Legendre polynomials in s."""

    def __init__(self, d, s, theta, degree, base: CTFParams):
        self.d, self.s2 = d, s * s
        self.c2, self.sn2 = np.cos(2 * theta), np.sin(2 * theta)
        x = 2.0 * (s - s.min()) / max(s.max() - s.min(), 1e-12) - 1.0
        self.Q = np.polynomial.legendre.legvander(x, degree)
        self.tss = float(((d - d.mean()) ** 2).sum())
        self.base = base

    def ctf2(self, mean, a, b):
        dev = np.hypot(a, b)
        ang = 0.5 * np.degrees(np.arctan2(b, a))
        p = replace(self.base, defocus_u_A=mean + dev, defocus_v_A=mean - dev,
                    astig_angle_deg=ang, apix=1.0)
        out = np.empty((1, self.s2.size))
        _ctf_values(p.arrays(), self.s2, self.c2, self.sn2, 1.0, out)
        return out[0] ** 2

    def score(self, mean, a=0.0, b=0.0) -> float:
        X = np.hstack([self.Q, self.Q * self.ctf2(mean, a, b)[:, None]])
        xtd = X.T @ self.d
        try:
            beta = np.linalg.solve(X.T @ X, xtd)
        except np.linalg.LinAlgError:
            beta = np.linalg.lstsq(X, self.d, rcond=None)[0]
        rss = float(self.d @ self.d - beta @ xtd)
        return 1.0 - rss / max(self.tss, 1e-300)


def estimate_defocus(power_spectrum_2d, apix: float, kV: float = 300.0, cs: float = 2.7,
                     amp_contrast: float = 0.1, defocus_range_A=(5000.0, 50000.0),
                     res_range_A=(30.0, None), astig_max_A: float | None = None,
                     degree: int = 4) -> DefocusFit:
    """Fit defocus and astigmatism to a (periodogram-averaged) 2D power spectrum.

    The spectrum is divided by a smooth fit of its rotational average; in the band
    ``res_range_A`` it is modelled as ``bg(s) + env(s) CTF^2(s, th)`` with ``bg`` and
    ``env`` Legendre polynomials fitted by least squares for each candidate, so no
    separate background subtraction or envelope is needed. The mean defocus is
    searched on a grid (phase step pi/4 at the band's high end) against the
    rotational average, then the astigmatism on a grid over the full 2D half plane,
    then all three are refined (Nelder-Mead).

    Args:
        power_spectrum_2d: square ``(n, n)`` power spectrum, centred (origin at ``n//2``),
            e.g. from :func:`emsh.kernels.fourier.periodogram`.
        apix: pixel size (Å).
        kV, cs, amp_contrast: voltage (kV), Cs (mm), amplitude contrast (fraction).
        defocus_range_A: (min, max) mean defocus searched, Å.
        res_range_A: (low, high) resolution band in Å; high defaults to ``3 * apix``.
        astig_max_A: largest ``U - V`` searched (default 10 % of the top of the range).
        degree: polynomial degree of the background and envelope.
    """
    ps = np.asarray(power_spectrum_2d, dtype=np.float64)
    if ps.ndim != 2 or ps.shape[0] != ps.shape[1] or ps.shape[0] < 32:
        raise UsageError(f"estimate_defocus: expected a square 2D spectrum >= 32 px, got {ps.shape}")
    lo_d, hi_d = (float(v) for v in defocus_range_A)
    res_lo = float(res_range_A[0])
    res_hi = float(res_range_A[1]) if res_range_A[1] else 3.0 * apix
    if not (0 < lo_d < hi_d and res_lo > res_hi >= 2.0 * apix):
        raise UsageError(f"estimate_defocus: bad ranges (defocus {defocus_range_A}, "
                         f"resolution {res_lo}..{res_hi} Å with apix {apix})")
    n = ps.shape[0]
    s_lo, s_hi = 1.0 / res_lo, 1.0 / res_hi
    lam = float(wavelength_A(kV))
    base = CTFParams(lo_d, lo_d, 0.0, kV, cs, amp_contrast, 0.0, 0.0, 1.0)

    # rotational average, and a smooth (quadratic in s) fit of its logarithm to whiten
    idx = (np.arange(n) - n // 2) / (n * apix)
    ky, kx = np.meshgrid(idx, idx, indexing="ij")
    s = np.hypot(ky, kx)
    ring = np.rint(s * n * apix).astype(np.int64)
    prof = np.bincount(ring.ravel(), ps.ravel()) / np.maximum(np.bincount(ring.ravel()), 1)
    s_r = np.arange(prof.size) / (n * apix)
    band_r = (s_r >= s_lo) & (s_r <= s_hi) & (prof > 0)
    if band_r.sum() < 3 * (degree + 2):
        raise UsageError("estimate_defocus: too few frequencies in the band; widen res_range_A")
    coef = np.polyfit(s_r[band_r], np.log(prof[band_r]), 2)

    def white(v):
        return np.exp(np.polyval(coef, v))

    # stage 1: mean defocus from the rotational average
    m1 = _Model(prof[band_r] / white(s_r[band_r]), s_r[band_r], np.zeros(band_r.sum()), degree, base)
    step = 1.0 / (4.0 * lam * s_hi * s_hi)
    grid = np.arange(lo_d, hi_d + step, step)
    scores = np.array([m1.score(d) for d in grid])
    best = float(grid[int(np.argmax(scores))])
    r = minimize_scalar(lambda d: -m1.score(d), bounds=(max(lo_d, best - step), best + step),
                        method="bounded", options={"xatol": 1.0})
    mean = float(r.x)

    # stage 2: astigmatism on the half plane, then refine everything
    sel = (s >= s_lo) & (s <= s_hi) & ((ky > 0) | ((ky == 0) & (kx > 0)))
    m2 = _Model(ps[sel] / white(s[sel]), s[sel], np.arctan2(ky[sel], kx[sel]), degree, base)
    h = 0.5 * (astig_max_A if astig_max_A is not None else 0.1 * hi_d)
    ab = np.arange(-h, h + step / 2, step / 2) if h > 0 else np.zeros(1)
    cands = [(m2.score(mean, a, b), mean, a, b) for a in ab for b in ab if np.hypot(a, b) <= h]
    cands.sort(key=lambda c: -c[0])
    fits = []
    for _, dm, a, b in cands[:3]:
        simplex = np.array([[dm, a, b], [dm + step / 4, a, b], [dm, a + step / 4, b],
                            [dm, a, b + step / 4]])
        fits.append(minimize(lambda p: -m2.score(*p), [dm, a, b], method="Nelder-Mead",
                             options={"initial_simplex": simplex, "xatol": 1.0, "fatol": 1e-7}))
    f = min(fits, key=lambda r: r.fun)
    mean, a, b = (float(v) for v in f.x)
    dev = float(np.hypot(a, b))
    ang = float(np.mod(0.5 * np.degrees(np.arctan2(b, a)), 180.0))
    params = CTFParams(mean + dev, mean - dev, ang, kV, cs, amp_contrast, 0.0, 0.0, apix)
    return DefocusFit(params, float(-f.fun), (res_lo, res_hi))
