"""A simulated micrograph data set with known truth, laid out as the defocus pipeline reads it.

:func:`simulate_dataset` writes, inside ``folder``::

    Micrographs/mic001.mrc ...   the micrographs (float32, pixel size in the header)
    truth/defocus.<ext>          key=mic: mic, mean defocus, U-V, angle, U, V (Å, deg)
    truth/coords001.<ext> ...    key=n: x, y (1-based centre pixel), psi, theta, phi (deg)
    truth/map.mrc                the volume, box^3 at the particle pixel size
    truth/params.<ext>           key=1: apix, kV, Cs, amp. contrast, box, radius, n_mics

and :func:`load_truth` reads it back.

Image formation (per micrograph, :func:`emsh.sim.micrographs.simulate_micrograph`): the
ADK map (:func:`emsh.sim.models.model_to_map`) is projected at orientations uniform on
SO(3) (so directions cover the sphere and the in-plane angle psi is uniform), the
projections are placed at random non-overlapping positions (centres at least
``2 * radius + 1`` pixels apart, ``radius`` the map's support radius, and every
``box`` window inside the micrograph), and the whole micrograph goes through the CTF of
that micrograph: its own mean defocus (uniform in the given range), astigmatism ``U - V``
(uniform in ``[0, astig_A]``) at a random angle (uniform in [0, 180) degrees from the x
axis) and a B-factor envelope. Then noise: white (shot) noise plus, like the amorphous
ice of a real micrograph, a CTF-modulated random field (so Thon rings appear in the
power spectrum beyond the particles' own signal), plus a smooth uneven background.

Contrast: emsh's CTF sign (positive at zero frequency), so the protein is *white* at
low resolution, as in the particle stacks and reference projections of the rest of
emsh (a raw microscope image has the opposite sign).

SNR: the variance of the noiseless, CTF-modulated micrograph over a disc of ``radius``
pixels around each particle, averaged over the particles, divided by the variance of
the noise (white noise + CTF-modulated ice; the smooth background, of standard
deviation ``background`` times the white-noise sigma, is not counted).

Coordinates: the micrograph pixel, 1-based (x = column, y = row), at which the centre
pixel (index ``box//2``) of the particle's box lands: windowing a ``box`` at
``(y - 1 - box//2, x - 1 - box//2)`` gives the projection with its centre at ``box//2``
up to a sub-pixel shift (|shift| <= 0.5 px per axis, kept in
:attr:`DatasetTruth.subpixel` by :func:`simulate_dataset`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emsh import fft as _fft
from emsh import io as eio
from emsh.errors import DataFormatError, UsageError
from emsh.io.docfile import read_doc, write_doc
from emsh.kernels.ctf import CTFParams, ctf_2d
from emsh.kernels.fourier import freq_grid_half
from emsh.sim._common import support_radius
from emsh.sim.micrographs import simulate_micrograph
from emsh.sim.models import load_model, model_to_map

__all__ = ["DatasetTruth", "simulate_dataset", "load_truth", "write_truth"]

_DEF_HEAD = "     MIC   DEFOCUS(A)    ASTIG(A)   ANGLE(DEG)       U(A)         V(A)"
_COO_HEAD = "       X            Y           PSI         THETA          PHI"
_PAR_HEAD = "  APIX(A)       KV        CS(MM)     AMP.CONTR.    BOX(PX)    RADIUS(PX)    N_MICS"


@dataclass
class DatasetTruth:
    """The truth of a simulated data set.

    Attributes:
        defocus: float64 ``(n_mics, 3)``: U, V (Å, underfocus positive, U >= V) and the
            angle of U from the x axis (deg), per micrograph (emsh.kernels.ctf.CTFParams).
        coords: per micrograph, float64 ``(k, 2)``: 1-based x (column), y (row) of the
            pixel where each particle's centre lands.
        angles: float64 ``(n_particles, 3)``: (psi, theta, phi) in degrees (SPIDER doc
            order), micrographs in order, particles in coordinate-doc order.
        mic: int64 ``(n_particles,)``: 1-based micrograph number of each particle.
        volume: float32 ``(box, box, box)`` true map.
        apix, kv, cs, amp: pixel size (Å), voltage (kV), Cs (mm), amplitude contrast.
        box, radius: particle box and particle radius (px).
        subpixel: per micrograph ``(k, 2)`` exact (x, y) centres, 1-based sub-pixel;
            empty when read back by :func:`load_truth`.
    """

    defocus: np.ndarray
    coords: list
    angles: np.ndarray
    mic: np.ndarray
    volume: np.ndarray
    apix: float
    kv: float
    cs: float
    amp: float
    box: int
    radius: float
    subpixel: list = field(default_factory=list)

    @property
    def n_mics(self) -> int:
        return int(self.defocus.shape[0])

    @property
    def n_particles(self) -> int:
        return int(self.angles.shape[0])

    @property
    def defocus_mean_A(self) -> np.ndarray:
        """``(U + V) / 2`` per micrograph (Å)."""
        return 0.5 * (self.defocus[:, 0] + self.defocus[:, 1])

    @property
    def astig_A(self) -> np.ndarray:
        """``U - V`` per micrograph (Å)."""
        return self.defocus[:, 0] - self.defocus[:, 1]

    @property
    def params(self) -> dict:
        """The values of ``truth/params``."""
        return {"apix": self.apix, "kv": self.kv, "cs": self.cs, "amp": self.amp,
                "box": self.box, "radius": self.radius, "n_mics": self.n_mics}

    def angles_of(self, mic: int) -> np.ndarray:
        """(psi, theta, phi) of micrograph ``mic``'s particles (1-based)."""
        return self.angles[self.mic == mic]


def _check(n_mics, per_mic, box, apix, mic_size, snr, defocus_um, astig_A):
    try:
        n_mics, per_mic, box, mic_size = int(n_mics), int(per_mic), int(box), int(mic_size)
        apix, snr, astig_A = float(apix), float(snr), float(astig_A)
        lo, hi = (float(v) for v in defocus_um)
    except (TypeError, ValueError):
        raise UsageError("DG SIM: numbers expected for counts, sizes, SNR, defocus range and "
                         "astigmatism") from None
    if not 1 <= n_mics <= 999:
        raise UsageError(f"DG SIM: number of micrographs must be 1..999 (3-digit names), "
                         f"got {n_mics}")
    if per_mic < 1:
        raise UsageError(f"DG SIM: particles per micrograph must be >= 1, got {per_mic}")
    if not 16 <= box <= 512:
        raise UsageError(f"DG SIM: box size must be 16..512 px, got {box}")
    if mic_size < 2 * box:
        raise UsageError(f"DG SIM: micrograph size {mic_size} px is less than twice the box "
                         f"({box} px)")
    if not (np.isfinite(apix) and apix > 0):
        raise UsageError(f"DG SIM: pixel size must be > 0 Å, got {apix}")
    if not (np.isfinite(snr) and snr > 0):
        raise UsageError(f"DG SIM: SNR must be > 0, got {snr}")
    if not (0 < lo <= hi < 20):
        raise UsageError(f"DG SIM: need 0 < defocus min <= max < 20 µm, got {lo}, {hi}")
    if not (np.isfinite(astig_A) and astig_A >= 0):
        raise UsageError(f"DG SIM: astig_A must be >= 0 Å, got {astig_A}")
    return n_mics, per_mic, box, apix, mic_size, snr, (lo, hi), astig_A


def _ice_and_background(shape, pad: int, params: CTFParams, ice_var: float, bg_sd: float,
                        rng: np.random.Generator) -> np.ndarray:
    """CTF-modulated random field of variance ``ice_var`` plus a smooth field of SD ``bg_sd``.

    Both come from white Gaussian fields filtered in Fourier space on a canvas padded by
    ``pad`` pixels on each side (rounded up to a fast FFT size, as the micrograph
    simulator pads its canvas, so the transforms share their plans) and cropped to
    ``shape``; the smooth one is low-passed by a Gaussian of ``min(shape) / 16`` px sigma.
    """
    H, W = shape
    big = (_fft.good_size(H + 2 * pad), _fft.good_size(W + 2 * pad))
    out = np.zeros(shape, dtype=np.float32)
    if ice_var > 0:
        F = _fft.rfftn(rng.normal(size=big).astype(np.float32))
        F *= ctf_2d(params, big)
        ice = _fft.irfftn(F, big)[:H, :W]
        out += ice * np.float32(np.sqrt(ice_var / max(float(ice.var()), 1e-30)))
    if bg_sd > 0:
        ky, kx = freq_grid_half(big)
        sigma = max(1.0, min(H, W) / 16.0)
        F = _fft.rfftn(rng.normal(size=big).astype(np.float32))
        F *= np.exp(-2.0 * np.pi**2 * sigma**2 * (kx * kx + ky * ky)).astype(np.float32)
        smooth = _fft.irfftn(F, big)[:H, :W]
        out += smooth * np.float32(bg_sd / max(float(smooth.std()), 1e-30))
    return out


def simulate_dataset(folder, *, n_mics: int, per_mic: int, box: int, apix: float,
                     mic_size: int, snr: float, defocus_um=(1.0, 3.0), seed: int = 1,
                     model: str = "adk_closed", kv: float = 300.0, cs: float = 2.7,
                     amp: float = 0.07, astig_A: float = 400.0, ice: float = 0.1,
                     bfactor_A2: float = 50.0, background: float = 0.5, ext: str = "spi",
                     log=None) -> DatasetTruth:
    """Simulate ``n_mics`` micrographs with ``per_mic`` particles each and write them.

    Args:
        folder: output folder (created); see the module docstring for what goes in it.
        n_mics, per_mic: micrographs (<= 999) and particles per micrograph.
        box: particle box (px), also the map's box; the map is ADK at ``apix``.
        apix: pixel size in Å, the same for micrographs, particles and the map.
        mic_size: micrographs are ``mic_size`` x ``mic_size`` px.
        snr: signal-to-noise ratio as defined in the module docstring.
        defocus_um: (min, max) mean defocus in µm; each micrograph's is uniform in it.
        seed: seed of the one generator behind every random choice.
        model: atomic model for :func:`emsh.sim.models.load_model`.
        kv, cs, amp: voltage (kV), Cs (mm), amplitude contrast (fraction).
        astig_A: largest astigmatism ``U - V`` (Å); each micrograph's is uniform in
            ``[0, astig_A]``, its angle uniform in [0, 180) degrees.
        ice: fraction (0..<1) of the noise variance that is CTF-modulated (ice) noise.
        bfactor_A2: B-factor of the CTF envelope (Å^2), for particles and ice.
        background: SD of the smooth background in units of the white-noise sigma.
        ext: extension of the truth doc files.
        log: optional callable taking one line per micrograph.

    Returns:
        The :class:`DatasetTruth` (with :attr:`~DatasetTruth.subpixel` filled in).
    """
    n_mics, per_mic, box, apix, mic_size, snr, (lo, hi), astig_A = _check(
        n_mics, per_mic, box, apix, mic_size, snr, defocus_um, astig_A)
    ice = float(ice)
    if not 0 <= ice < 1:
        raise UsageError(f"DG SIM: ice must be in [0, 1), got {ice}")
    rng = np.random.default_rng(int(seed))
    vol = model_to_map(load_model(model), box, apix)
    radius = support_radius(vol)
    mean = rng.uniform(lo, hi, n_mics) * 1e4
    astig = rng.uniform(0.0, astig_A, n_mics)
    angle = rng.uniform(0.0, 180.0, n_mics)
    defocus = np.stack([mean + astig / 2, mean - astig / 2, angle], axis=1)
    folder = Path(folder)
    (folder / "Micrographs").mkdir(parents=True, exist_ok=True)
    coords, subpixel, angles, mics = [], [], [], []
    for i in range(n_mics):
        mic, t = simulate_micrograph(
            vol, (mic_size, mic_size), per_mic, rng, apix=apix, defocus_A=float(mean[i]),
            astigmatism_A=float(astig[i]), astig_angle_deg=float(angle[i]), kV=kv, cs_mm=cs,
            amp_contrast=amp, bfactor_A2=bfactor_A2, snr=snr / (1.0 - ice), background=0.0,
            mask_radius=radius)
        sigma = float(t["noise_sigma"][0])
        params = CTFParams(*defocus[i], kv, cs, amp, bfactor_A2, 0.0, apix)
        mic += _ice_and_background(mic.shape, box, params, sigma**2 * ice / (1.0 - ice),
                                   background * sigma, rng)
        xy = np.column_stack([np.asarray(t["x"]), np.asarray(t["y"])])
        coords.append(np.floor(xy + 0.5) + 1.0)
        subpixel.append(xy + 1.0)
        angles.append(np.column_stack([np.asarray(t["psi"]), np.asarray(t["theta"]),
                                       np.asarray(t["phi"])]))
        mics.append(np.full(per_mic, i + 1, dtype=np.int64))
        eio.write(folder / "Micrographs" / f"mic{i + 1:03d}.mrc", mic, apix=apix,
                  overwrite=True)
        if log is not None:
            log(f"  mic{i + 1:03d}: defocus {mean[i]:8.1f} A, astig {astig[i]:6.1f} A at "
                f"{angle[i]:5.1f} deg, {per_mic} particles")
    truth = DatasetTruth(defocus, coords, np.concatenate(angles), np.concatenate(mics), vol,
                         apix, float(kv), float(cs), float(amp), box, float(radius), subpixel)
    write_truth(folder, truth, ext=ext)
    return truth


def write_truth(folder, truth: DatasetTruth, ext: str = "spi") -> None:
    """Write ``truth/`` (defocus, coordsNNN, map.mrc, params) inside ``folder``."""
    tdir = Path(folder) / "truth"
    tdir.mkdir(parents=True, exist_ok=True)
    n = truth.n_mics
    u, v, a = truth.defocus.T
    keys = np.arange(1, n + 1)
    write_doc(tdir / f"defocus.{ext}", keys,
              np.column_stack([keys, 0.5 * (u + v), u - v, a, u, v]), heading=_DEF_HEAD,
              overwrite=True, data_ext=ext)
    for m in range(1, n + 1):
        xy = truth.coords[m - 1]
        write_doc(tdir / f"coords{m:03d}.{ext}", np.arange(1, len(xy) + 1),
                  np.column_stack([xy, truth.angles_of(m)]), heading=_COO_HEAD,
                  overwrite=True, data_ext=ext)
    p = truth.params
    write_doc(tdir / f"params.{ext}", [1],
              [[p["apix"], p["kv"], p["cs"], p["amp"], p["box"], p["radius"], p["n_mics"]]],
              heading=_PAR_HEAD, overwrite=True, data_ext=ext)
    eio.write(tdir / "map.mrc", truth.volume, apix=truth.apix, overwrite=True)


def _doc(path: Path):
    if not path.is_file():
        raise DataFormatError(path, "missing: not a DG SIM data set (truth file expected)")
    return read_doc(path)


def load_truth(folder) -> DatasetTruth:
    """Read the truth that :func:`simulate_dataset` (or ``DG SIM``) wrote in ``folder``."""
    tdir = Path(os.fspath(folder)) / "truth"
    found = sorted(p for p in tdir.glob("params.*")) if tdir.is_dir() else []
    if not found:
        raise DataFormatError(tdir / "params.spi", "missing: not a DG SIM data set")
    ext = found[0].suffix.lstrip(".")
    par = _doc(found[0])
    if par.n_lines < 1 or par.n_cols < 7:
        raise DataFormatError(found[0], "expected key 1 with 7 registers (apix, kV, Cs, amp, "
                              "box, radius, n_mics)")
    apix, kv, cs, amp, box, radius, n = par.get(1)[:7]
    n = int(n)
    d = _doc(tdir / f"defocus.{ext}")
    defocus = np.empty((n, 3))
    for m in range(1, n + 1):
        row = d.get(m)
        if row.size < 6:
            raise DataFormatError(tdir / f"defocus.{ext}", f"key {m} needs 6 registers")
        defocus[m - 1] = row[[4, 5, 3]]
    coords, angles, mics = [], [], []
    for m in range(1, n + 1):
        c = _doc(tdir / f"coords{m:03d}.{ext}")
        if c.n_lines and c.n_cols < 5:
            raise DataFormatError(tdir / f"coords{m:03d}.{ext}", "expected x, y, psi, theta, phi")
        vals = c.values[:, :5] if c.n_lines else np.zeros((0, 5))
        coords.append(vals[:, :2].copy())
        angles.append(vals[:, 2:5].copy())
        mics.append(np.full(len(vals), m, dtype=np.int64))
    mpath = tdir / "map.mrc"
    if not mpath.is_file():
        raise DataFormatError(mpath, "missing: the true map of a DG SIM data set")
    return DatasetTruth(defocus, coords, np.concatenate(angles), np.concatenate(mics),
                        eio.read(mpath), float(apix), float(kv), float(cs), float(amp),
                        int(box), float(radius))
