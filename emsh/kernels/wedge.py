"""Missing regions of subtomograms in Fourier space: wedge, pyramid (dual axis), cone.

Geometry (the same as Xmipp ``ml_tomo``'s ``wedge_y``/``wedge_x``/``pyramid``/``cone``,
written in SPIDER's conventions):

* Frequencies are ``(kx, ky, kz)`` in cycles/pixel (numpy ``fftfreq``/``rfftfreq``
  of each axis), so non-cubic boxes keep the right angles. Masks come in numpy's FFT
  layout, zero frequency at index 0: ``(nz, ny, nx//2 + 1)`` with ``half=True`` (the
  layout of :func:`emsh.fft.rfftn`), ``(nz, ny, nx)`` otherwise. They are float32,
  1 where the spectrum was measured and 0 where it is missing.
* Single-axis tilt about y (``tilt_axis='y'``): the image at tilt ``t`` is the
  projection with SPIDER angles ``(phi, theta, psi) = (0, t, 0)``; its beam runs along
  ``(sin t, 0, cos t)`` and it measures the central plane normal to that direction
  (``kx sin t + kz cos t = 0``). A series over ``[t_min, t_max]`` measures every
  frequency whose plane angle ``atan(-kz / kx)`` lies in that range; the missing
  wedge surrounds the kz axis in the (kx, kz) plane, and for ``±t`` it is
  ``|kz| > |kx| tan t``. The ky axis (the tilt axis) is always measured.
* Tilt about x (``tilt_axis='x'``): the same with ``ky`` in place of ``kx`` (beam
  along ``(0, sin t, cos t)``, SPIDER ``(90, t, 0)``).
* Pyramid (dual-axis tomography): measured where either single-axis series measured;
  the missing region is the intersection of the two wedges.
* Cone (random conical tilt): the missing cone has its axis on kz and half-angle
  ``half_angle_deg`` (``90 - specimen tilt`` for an RCT series): missing iff
  ``kx² + ky² < kz² tan²(half_angle)``.

Boundaries count as measured; the zero frequency is measured. Every test is invariant
under ``k -> -k``, so half and full layouts agree; a component on the Nyquist plane of
an even axis (which stands for both ``±0.5``) is measured when either alias is.

A subtomogram rotated by ``R`` (content turned by ``R``, ``out(p) = vol(Rᵀ p)`` as
:func:`emsh.kernels.transform.rotate3d`) has the spectrum ``F(Rᵀ k)`` and the measured
region ``M(Rᵀ k)``; :func:`rotated_mask` evaluates that exactly (no interpolation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from emsh.errors import UsageError

__all__ = ["wedge_mask", "pyramid_mask", "cone_mask", "rotated_mask", "MissingRegion",
           "frequency_grid"]

_F = np.float32
_EPS_DEG = 1e-6          # angular tolerance: boundary planes count as measured
_MAX_ELEMENTS = 2**31    # refuse absurd mask requests before allocating
_CHUNK_POINTS = 2**22    # points per vectorised pass of rotated masks
_KINDS = ("none", "wedge", "pyramid", "cone")


def _shape3(shape) -> tuple[int, int, int]:
    try:
        s = tuple(int(v) for v in shape)
    except (TypeError, ValueError):
        raise UsageError(f"mask shape must be three sizes (nz, ny, nx), got {shape!r}") from None
    if len(s) != 3 or min(s) < 1:
        raise UsageError(f"mask shape must be three positive sizes (nz, ny, nx), got {shape!r}")
    if np.prod(s, dtype=np.float64) > _MAX_ELEMENTS:
        raise UsageError(f"mask shape {s} is too large (more than {_MAX_ELEMENTS} voxels)")
    return s


def frequency_grid(shape, half: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcastable ``(kz, ky, kx)`` in cycles/pixel for a spectrum of real shape ``shape``.

    Args:
        shape: real-space ``(nz, ny, nx)``.
        half: rfft layout (last axis ``nx//2 + 1``) or the full layout.
    """
    nz, ny, nx = _shape3(shape)
    kz = np.fft.fftfreq(nz)[:, None, None]
    ky = np.fft.fftfreq(ny)[None, :, None]
    kx = (np.fft.rfftfreq(nx) if half else np.fft.fftfreq(nx))[None, None, :]
    return kz, ky, kx


def _tilt_range(lo, hi, what: str) -> tuple[float, float]:
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi) and -90.0 <= lo <= hi <= 90.0):
        raise UsageError(f"{what}: tilt range must satisfy -90 <= min <= max <= 90 degrees, "
                         f"got ({lo}, {hi})")
    return lo, hi


def _tilt_measured(a, z, lo: float, hi: float) -> np.ndarray:
    """Measured by a single-axis series over [lo, hi]; ``a`` is kx (axis y) or ky (axis x).

    The plane of tilt t holds (a, z) iff ``a sin t + z cos t = 0``, i.e. ``t =
    atan(-z / a)`` taken in [-90, 90] (where -90 and 90 are the same plane).
    """
    a, z = np.broadcast_arrays(a, z)
    s = np.where(a < 0, -1.0, 1.0)
    t = np.degrees(np.arctan2(-z * s, np.abs(a)))
    inside = (t >= lo - _EPS_DEG) & (t <= hi + _EPS_DEG)
    if lo <= -90.0 + _EPS_DEG or hi >= 90.0 - _EPS_DEG:
        inside |= np.abs(t) >= 90.0 - _EPS_DEG
    return inside | ((a == 0) & (z == 0))


@dataclass(frozen=True)
class MissingRegion:
    """A missing region of one kind, with its parameters (angles in degrees).

    Kinds and parameters:

    * ``"none"``: everything measured.
    * ``"wedge"``: ``tilt_min_deg``, ``tilt_max_deg``, ``tilt_axis`` (``'y'`` or ``'x'``).
    * ``"pyramid"``: ``y_range`` and ``x_range``, each ``(min, max)`` tilt of the series
      about y and about x.
    * ``"cone"``: ``half_angle_deg`` of the missing cone around kz.

    See the module docstring for the geometry.
    """

    kind: str
    params: tuple = ()

    @classmethod
    def make(cls, kind: str, params: Mapping | None = None) -> "MissingRegion":
        """Build from a kind and a mapping of the keyword parameters listed above."""
        p = dict(params or {})
        kind = str(kind).lower()
        try:
            if kind == "none":
                vals: tuple = ()
            elif kind == "wedge":
                axis = str(p.pop("tilt_axis", "y")).lower()
                if axis not in ("x", "y"):
                    raise UsageError(f"wedge: tilt_axis must be 'x' or 'y', got {axis!r}")
                lo, hi = _tilt_range(p.pop("tilt_min_deg"), p.pop("tilt_max_deg"), "wedge")
                vals = (lo, hi, axis)
            elif kind == "pyramid":
                vals = (_tilt_range(*p.pop("y_range"), "pyramid y_range")
                        + _tilt_range(*p.pop("x_range"), "pyramid x_range"))
            elif kind == "cone":
                h = float(p.pop("half_angle_deg"))
                if not (np.isfinite(h) and 0.0 <= h < 90.0):
                    raise UsageError(f"cone: half_angle_deg must be in [0, 90), got {h}")
                vals = (h,)
            else:
                raise UsageError(f"missing region kind {kind!r}: expected one of {', '.join(_KINDS)}")
        except KeyError as e:
            raise UsageError(f"missing region {kind!r}: parameter {e.args[0]!r} is required") from None
        except TypeError:
            raise UsageError(f"missing region {kind!r}: ranges must be (min, max) pairs") from None
        if p:
            raise UsageError(f"missing region {kind!r}: unexpected parameter(s) {', '.join(sorted(p))}")
        return cls(kind, vals)

    @classmethod
    def from_xmipp(cls, region_type: str, theta_y0: float = 0.0, theta_yf: float = 0.0,
                   theta_x0: float = 0.0, theta_xf: float = 0.0) -> "MissingRegion":
        """The region of an Xmipp ``ml_tomo`` missing-region row.

        ``missingRegionType`` ``wedge_y``/``wedge_x`` use (ThetaY0, ThetaYF) /
        (ThetaX0, ThetaXF) as the tilt range; ``pyramid`` uses all four; ``cone`` holds
        the specimen tilt in ThetaY0, so the missing half-angle is ``90 - ThetaY0``.
        """
        t = str(region_type).lower()
        if t == "wedge_y":
            return cls.make("wedge", {"tilt_min_deg": theta_y0, "tilt_max_deg": theta_yf, "tilt_axis": "y"})
        if t == "wedge_x":
            return cls.make("wedge", {"tilt_min_deg": theta_x0, "tilt_max_deg": theta_xf, "tilt_axis": "x"})
        if t == "pyramid":
            return cls.make("pyramid", {"y_range": (theta_y0, theta_yf), "x_range": (theta_x0, theta_xf)})
        if t == "cone":
            return cls.make("cone", {"half_angle_deg": 90.0 - float(theta_y0)})
        raise UsageError(f"Xmipp missingRegionType {region_type!r}: expected wedge_y, wedge_x, "
                         "pyramid or cone")

    def at(self, kx, ky, kz) -> np.ndarray:
        """Boolean: measured at frequencies ``(kx, ky, kz)`` (arrays that broadcast)."""
        kx, ky, kz = (np.asarray(v, dtype=np.float64) for v in (kx, ky, kz))
        shape = np.broadcast_shapes(kx.shape, ky.shape, kz.shape)
        if self.kind == "none":
            out = np.ones(shape, dtype=bool)
        elif self.kind == "wedge":
            lo, hi, axis = self.params
            out = _tilt_measured(kx if axis == "y" else ky, kz, lo, hi)
        elif self.kind == "pyramid":
            y0, y1, x0, x1 = self.params
            out = _tilt_measured(kx, kz, y0, y1) | _tilt_measured(ky, kz, x0, x1)
        else:
            t2 = np.tan(np.radians(self.params[0])) ** 2
            out = kx * kx + ky * ky >= kz * kz * t2 * (1.0 - 1e-12)
        return np.broadcast_to(out, shape)

    def mask(self, shape, R=None, half: bool = True) -> np.ndarray:
        """Float32 mask (1 = measured) on the FFT grid of real shape ``shape``.

        A component on a Nyquist plane of an even axis stands for both ``±0.5``
        cycles/pixel; it counts as measured when either is, so the mask keeps the
        Hermitian symmetry ``M(-k) = M(k)`` of the grid.

        Args:
            shape: real-space ``(nz, ny, nx)``.
            R: optional rotation ``(3, 3)`` or ``(m, 3, 3)`` acting on (x, y, z); gives
                the region of the subtomogram rotated by ``R``, ``M(Rᵀ k)``, with a
                leading axis of ``m`` for a batch.
            half: rfft layout or the full layout.
        """
        kz, ky, kx = frequency_grid(shape, half)
        grid = np.broadcast_arrays(kx, ky, kz)
        spec_shape = grid[0].shape
        k = np.stack([g.ravel() for g in grid])                   # (3, N) as (x, y, z)
        nyq = np.abs(k) == 0.5
        alt = np.where(nyq, -k, k) if nyq.any() else None
        if R is None:
            out = self.at(*k)
            if alt is not None:
                out = out | self.at(*alt)
            return np.ascontiguousarray(out.reshape(spec_shape), dtype=_F)
        Rm = np.asarray(R, dtype=np.float64)
        if Rm.shape[-2:] != (3, 3) or Rm.ndim not in (2, 3):
            raise UsageError(f"rotation must be (3, 3) or (m, 3, 3), got shape {Rm.shape}")
        single = Rm.ndim == 2
        Rm = Rm.reshape(-1, 3, 3)
        if len(Rm) * k.shape[1] > _MAX_ELEMENTS:
            raise UsageError(f"rotated masks: {len(Rm)} x {spec_shape} is too large")
        out = np.empty((len(Rm), k.shape[1]), dtype=_F)
        step = max(1, _CHUNK_POINTS // k.shape[1])
        for i in range(0, len(Rm), step):
            Rt = np.swapaxes(Rm[i:i + step], 1, 2)
            q = Rt @ k                                             # Rᵀ k, (c, 3, N)
            hit = self.at(q[:, 0], q[:, 1], q[:, 2])
            if alt is not None:
                qa = Rt @ alt
                hit = hit | self.at(qa[:, 0], qa[:, 1], qa[:, 2])
            out[i:i + step] = hit
        out = out.reshape((len(Rm),) + spec_shape)
        return out[0] if single else out


def wedge_mask(shape, tilt_min_deg: float, tilt_max_deg: float, tilt_axis: str = "y",
               half: bool = True) -> np.ndarray:
    """Measured region of a single-axis tilt series (1 = measured), float32.

    Tilt about y (default): the image at tilt ``t`` measures the plane normal to
    ``(sin t, 0, cos t)`` (SPIDER angles ``(0, t, 0)``); the missing wedge surrounds kz
    in the (kx, kz) plane and is ``|kz| > |kx| tan t`` for a symmetric ``±t`` series.
    Tilt about x: ``ky`` in place of ``kx``. Asymmetric ranges are exact.

    Args:
        shape: real-space ``(nz, ny, nx)`` of the subtomogram.
        tilt_min_deg, tilt_max_deg: tilt range of the series, -90 .. 90 degrees.
        tilt_axis: ``'y'`` or ``'x'``.
        half: rfft layout ``(nz, ny, nx//2+1)`` or full ``(nz, ny, nx)``, zero
            frequency at index 0.
    """
    region = MissingRegion.make("wedge", {"tilt_min_deg": tilt_min_deg,
                                          "tilt_max_deg": tilt_max_deg, "tilt_axis": tilt_axis})
    return region.mask(shape, half=half)


def pyramid_mask(shape, y_range, x_range, half: bool = True) -> np.ndarray:
    """Measured region of dual-axis tomography: a tilt series about y and one about x.

    Measured where either series measured (the union of two :func:`wedge_mask`
    regions); the missing pyramid around kz is the intersection of the two wedges.

    Args:
        shape: real-space ``(nz, ny, nx)``.
        y_range: ``(min, max)`` tilt in degrees of the series about the y axis.
        x_range: ``(min, max)`` tilt in degrees of the series about the x axis.
        half: rfft or full layout.
    """
    return MissingRegion.make("pyramid", {"y_range": y_range, "x_range": x_range}).mask(shape, half=half)


def cone_mask(shape, half_angle_deg: float, half: bool = True) -> np.ndarray:
    """Measured region outside a missing cone around kz (random conical tilt).

    Missing iff ``kx² + ky² < kz² tan²(half_angle_deg)``; for an RCT series with
    specimen tilt ``t`` the half-angle is ``90 - t``.

    Args:
        shape: real-space ``(nz, ny, nx)``.
        half_angle_deg: half-angle of the missing cone, 0 <= angle < 90 degrees.
        half: rfft or full layout.
    """
    return MissingRegion.make("cone", {"half_angle_deg": half_angle_deg}).mask(shape, half=half)


def rotated_mask(mask_kind: str, params: Mapping | None, R, *, shape, half: bool = True) -> np.ndarray:
    """Measured region of a subtomogram rotated by ``R``: ``M(Rᵀ k)``, evaluated exactly.

    Args:
        mask_kind: ``"none"``, ``"wedge"``, ``"pyramid"`` or ``"cone"``.
        params: the keyword parameters of :func:`wedge_mask` (``tilt_min_deg``,
            ``tilt_max_deg``, ``tilt_axis``), :func:`pyramid_mask` (``y_range``,
            ``x_range``) or :func:`cone_mask` (``half_angle_deg``).
        R: rotation ``(3, 3)`` or batch ``(m, 3, 3)`` acting on (x, y, z) column vectors,
            the rotation that turned the subtomogram's content (``rotate3d``'s meaning).
        shape: real-space ``(nz, ny, nx)``.
        half: rfft or full layout.

    Returns:
        float32 mask, with a leading axis ``m`` for a batch of rotations.
    """
    return MissingRegion.make(mask_kind, params).mask(shape, R=R, half=half)
