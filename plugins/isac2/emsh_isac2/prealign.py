"""ISAC2's pre-alignment (sp_isac2's "2dalignment" step, A.2 step 1): centring shifts.

The whole (shrunk) stack is aligned without a reference to its own average: the first
reference is the rotational average of the stack's mean, the next ones the average of
the aligned images. Every image, turned by its current parameters (the same turned
images make that average), is searched for rotation, mirror and shift; the translational search runs in stages of shrinking range and
step (SPHIRE's schedule, :func:`translation_schedule`), each stage iterated until the
shifts change by less than ``tol`` pixels on average (at most ``max_iter`` times). The
first pass of a stage searches its whole range; the later ones search one step around
the current shift (SPHIRE searches the whole range every pass: 9 instead of 81 shifts
per image for a range of 4, and the same result on the simulated tests). The aligner is
:func:`emsh.kernels.align2d.multiref_align` with the one reference, through
:func:`emsh_isac2.align.align_over_ranks` under MPI.
After every iteration the mean centring shift of the stack is removed (SPHIRE's
``center_method=-1``, "average shift"), so the average stays centred.

Only the translation is kept (as SPHIRE): the shift that moves each image's particle
centre to the box centre ``n//2`` without rotating it. It is returned in original
pixels (shrunk shifts divided by ``s``) and applied before shrinking the working
stack (:func:`emsh_isac2.prepare.prepare_stack`). Shifts follow ``SH``/``RT SQ``:
positive ``sx`` moves the content to higher column numbers.

Under MPI each rank aligns its block of images and the parameters are gathered; every
rank holds the whole stack and forms the same average from them (no reduction), so the
result equals the serial one as far as the aligner's does (bit for bit with one FFT
backend and thread, see :mod:`emsh_isac2.align`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emsh.errors import UsageError
from emsh.kernels.align2d import apply_alignment, compose_alignment
from emsh.kernels.masks import radius_grid
from emsh.kernels.polar import polar_limit
from emsh.kernels.stats import radial_profile

from .align import align_over_ranks

__all__ = ["Prealignment", "translation_schedule", "prealign", "centring_shifts"]


@dataclass
class Prealignment:
    """Result of :func:`prealign`.

    Attributes:
        shifts: ``(n, 2)`` centring shifts ``(sx, sy)`` in original pixels.
        angle, mirror: the in-plane angle (deg) and mirror found with them (not used
            further; kept for inspection).
        schedule: the ``(range, step)`` stages used (shrunk pixels).
        iterations: alignment passes run.
        average: final average of the aligned shrunk images.
        log: progress lines.
    """

    shifts: np.ndarray
    angle: np.ndarray
    mirror: np.ndarray
    schedule: list
    iterations: int
    average: np.ndarray
    log: list = field(default_factory=list)


def translation_schedule(nx: int, target_radius: int) -> list[tuple[int, int]]:
    """SPHIRE's stages ``(range, step)`` of the translational search in shrunk pixels.

    ``txrm = (nx - 2 (target_radius + 1)) // 2``; while ``txrm // 4 > 0`` a stage with
    step ``txrm // 4`` and range ``4 step``, then ``txrm //= 2``; when the first
    ``txrm // 4`` is already 0, one stage of range ``txrm`` (at least 1), step 1.
    """
    txrm = (int(nx) - 2 * (int(target_radius) + 1)) // 2
    stages = []
    while txrm // 4 > 0:
        step = txrm // 4
        stages.append((4 * step, step))
        txrm //= 2
    return stages or [(max(txrm, 1), 1)]


def centring_shifts(angle, shift) -> np.ndarray:
    """Pure shifts ``(n, 2)`` that centre the particle without rotating it.

    ``apply_alignment`` with ``(angle, shift)`` brings the particle centre to the box
    centre; the shift that does the same with angle 0 is the composition of these
    parameters with the rotation back by ``-angle`` (the mirror, applied last about
    the centre column, does not move the centre).
    """
    a = np.asarray(angle, dtype=np.float64)
    no = np.zeros(a.shape, dtype=bool)
    _, u, _ = compose_alignment((a, shift, no), (-a, 0.0, no))
    return np.asarray(u, dtype=np.float64)


def _rotational_average(img: np.ndarray) -> np.ndarray:
    """The image's rotational average about ``n//2`` as an image (linear in radius)."""
    prof = radial_profile(img).astype(np.float64)
    r = radius_grid(img.shape)
    return np.interp(r, np.arange(len(prof)), prof, right=0.0).astype(np.float32)


def prealign(images, s: float, *, target_radius: int, ir: int = 1, max_iter: int = 8,
             tol: float = 0.05, comm=None, log=None) -> Prealignment:
    """Reference-free centring of a shrunk stack.

    Args:
        images: ``(n, m, m)`` shrunk, mean-subtracted images (every rank holds all).
        s: shrink ratio (shrunk / original pixel size ratio), for the returned shifts.
        target_radius: outer ring (shrunk px); reduced when the shift range would take
            it outside the box.
        ir: inner ring.
        max_iter: alignment passes per stage at most.
        tol: a stage ends when the mean change of the centring shifts is below this
            (shrunk px).
        comm: communicator (None: serial); each rank aligns its block.
        log: callable taking progress lines.

    Returns:
        :class:`Prealignment` with shifts in original pixels.
    """
    imgs = np.asarray(images, dtype=np.float32)
    if imgs.ndim != 3 or imgs.shape[1] != imgs.shape[2] or len(imgs) == 0:
        raise UsageError(f"pre-alignment: expected a stack of square images, got {imgs.shape}")
    if not s > 0:
        raise UsageError(f"pre-alignment: shrink ratio must be > 0, got {s}")
    n, m = len(imgs), imgs.shape[-1]
    schedule = translation_schedule(m, target_radius)
    ang, shift = np.zeros(n), np.zeros((n, 2))
    mir = np.zeros(n, dtype=bool)
    lines = []
    ref = _rotational_average(imgs.mean(axis=0, dtype=np.float64).astype(np.float32))
    rot = imgs                    # the images under the current parameters
    passes = 0
    for rng_px, step in schedule:
        ou = min(int(target_radius), polar_limit((m, m)) - rng_px)
        if ou <= ir:
            raise UsageError(f"pre-alignment: a {m} px box leaves no ring for a search of "
                             f"+-{rng_px} px (target_radius {target_radius})")
        for it in range(max_iter):
            # the rotated images made the reference and are searched again (no second
            # rotation inside the aligner); the result composes with the parameters
            res = align_over_ranks(rot, ref[None], comm, first_ring=ir, last_ring=ou,
                                   shift_range=rng_px if it == 0 else step, shift_step=step,
                                   mirror=True)
            new_ang, new_sh, new_mir = compose_alignment((ang, shift, mir),
                                                         (res.angle, res.shift, res.mirror))
            u = centring_shifts(new_ang, new_sh)
            u -= u.mean(axis=0)                               # center_method -1
            old_u = centring_shifts(ang, shift)
            change = float(np.mean(np.hypot(*(u - old_u).T)))
            zero = np.zeros(n)
            ang, shift, mir = compose_alignment((zero, u, np.zeros(n, bool)),
                                                (new_ang, 0.0, new_mir))
            passes += 1
            rot = apply_alignment(imgs, ang, shift, mir)
            ref = rot.mean(axis=0, dtype=np.float64).astype(np.float32)
            lines.append(f"pre-alignment: range {rng_px} step {step} pass {it + 1}: "
                         f"mean shift change {change:.3f} px")
            if it > 0 and change < tol:
                break
    if log is not None:
        for line in lines:
            log(line)
    u = centring_shifts(ang, shift)
    return Prealignment(shifts=u / float(s), angle=np.asarray(ang), mirror=np.asarray(mir),
                        schedule=schedule, iterations=passes, average=ref, log=lines)
