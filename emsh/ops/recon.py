"""Orientations, projection, reconstruction and resolution: VO EA, PJ 3Q, PJ 3F, BP 32F,
BP 3F, FSC, RF 3.

Thin operation specs over :mod:`emsh.geom.orientations`, :mod:`emsh.kernels.project`,
:mod:`emsh.kernels.reconstruct` and :mod:`emsh.kernels.fsc`. Prompt texts and their order
are SPIDER's (as its results file echoes them), so SPIDER procedures answer them line
for line. Angle doc files hold SPIDER's (psi, theta, phi) in registers 1-3, degrees; the
angles of image (or projection) number ``k`` are the doc's key ``k``.

Parallel runs (``mpiexec``): ``PJ 3Q``/``PJ 3F`` split the directions over the ranks and
gather the projections on rank 0; ``BP 32F``/``BP 3F`` insert each rank's share of the
images into its own Fourier accumulators, sum them with ``allreduce`` and finish on every
rank. Only rank 0 writes files. The random half split of ``BP 32F`` comes from the
session's seeded generator (``MD SET SEED``), identical on every rank.
"""

from __future__ import annotations

import numpy as np

from emsh.ops import _util as U
from emsh.spec import Field, Operation, Prompt

_CHUNK = 512                       # images read and inserted per pass
_PJ_BLOCK = 256                    # projections per rank made and written per pass
_ANGLE_HEADING = "          PSI,         THETA,          PHI"
_FSC_HEADING = "       NORM-FREQ      ANGST         FSC      |SQRT(FSC)| |SQRT(2FSC/(FSC+1))|"
_RF3_HEADING = "       NORM-FREQ      DPH           FSC          FSCCRIT        VOXELS"
_NUMBERS = "FILE NUMBERS OR SELECTION DOC. FILE NAME"


# ----------------------------------------------------------------------------- helpers

def _doc_angles(ctx, doc: str, keys) -> np.ndarray:
    """(psi, theta, phi) of every key (its last line), ``(k, 3)`` float64, degrees."""
    from emsh.io.docfile import read_doc

    d = read_doc(U.resolve(ctx, doc))
    ctx.check(d.n_cols >= 3, f"{doc}: an angles doc needs psi, theta, phi in registers 1-3",
              "ANGLES DOC FILE")
    out = np.empty((len(keys), 3))
    for i, k in enumerate(keys):
        row = d.get(int(k))
        ctx.check(row.size >= 3, f"{doc}: key {int(k)} holds {row.size} register(s), not "
                  "psi, theta, phi", "ANGLES DOC FILE")
        out[i] = row[:3]
    return out


def _symmetry(ctx, doc):
    """Rotation matrices ``(m, 3, 3)`` of a symmetry doc (psi, theta, phi), or None for ``*``."""
    if doc is None:
        return None
    from emsh.io.docfile import read_doc
    from emsh.kernels.project import rotation_matrices

    d = read_doc(U.resolve(ctx, doc))
    ctx.check(d.n_lines > 0 and d.n_cols >= 3, f"{doc}: a symmetry doc needs psi, theta, phi "
              "in registers 1-3", "SYMMETRIES DOC FILE")
    return rotation_matrices(d.values[:, :3])


def _read_slice(ctx, src, tmpl, nums) -> np.ndarray:
    imgs = U.read_batch(ctx, tmpl, nums)[0] if tmpl else U.read_batch(ctx, src)[0]
    ctx.check(not np.iscomplexobj(imgs), f"{src}: Fourier files cannot be back-projected",
              "IMAGE FILE")
    return imgs


def _reduce(ctx, rec) -> None:
    """Sum a reconstructor's accumulators over the ranks, in place."""
    if ctx.comm.size > 1:
        for arr in rec.accumulators():
            arr[...] = ctx.comm.allreduce(arr)


def _log_angles(ctx, nums, ang, label: str) -> None:
    if getattr(ctx.session, "verbose", True):
        for n, (psi, the, phi) in zip(nums, ang):
            ctx.log(f"  {label}{n:6d}  PSI={psi:6.1f} THETA={the:6.1f} PHI={phi:6.1f}")


def _yes(text) -> bool:
    """A Y/N value of a ``values`` answer (read as text: ``19,Y``)."""
    from emsh.spec import parse_yesno

    return parse_yesno(str(text)) if str(text).strip() else False


# ----------------------------------------------------------------------------- VO EA

def vo_ea(ctx, delta, theta1, theta2, phi1, phi2, dst):
    """VO EA: quasi-evenly spaced directions into an angles doc; returns their number."""
    from emsh.geom.orientations import voea

    ang = voea(delta, (theta1, theta2), (phi1, phi2))
    U.write_session_doc(ctx, dst, np.arange(1, len(ang) + 1), ang, _ANGLE_HEADING)
    ctx.log(f"  NUMBER OF DIRECTIONS: {len(ang)}")
    return len(ang)


VO_EA = Operation(
    "VO EA", "Quasi-evenly spaced projection directions into an angles doc", impl=vo_ea,
    outputs=("n",), see_also=("PJ 3Q", "BP 32F"),
    help=("theta runs from theta1 to theta2 in steps of delta; each ring holds directions "
          "dphi = delta/sin(theta) apart (one at theta 0 or 180). Answers 0,0 select the "
          "default ranges theta 0..90, phi 0..359.9; with those, directions at theta 90 "
          "with phi >= 180 are left out. The doc holds psi (0), theta, phi; the register on "
          "the operation line receives the number of directions."),
    prompts=(
        Prompt("delta", "DELTA THETA", fields=(Field("delta", "float", 15.0, min=1e-3),)),
        Prompt("trange", "RANGE OF THETA (0,90)",
               fields=(Field("theta1", "float", 0.0), Field("theta2", "float", 0.0))),
        Prompt("prange", "RANGE OF PHI (0,359.9)",
               fields=(Field("phi1", "float", 0.0), Field("phi2", "float", 0.0))),
        Prompt("dst", "ANGULAR DOCUMENT FILE", kind="doc_out"),
    ))


# ----------------------------------------------------------------------------- PJ 3Q, PJ 3F

def _project(ctx, src, radius, consecutive, numbers, angles, dst, fourier: bool):
    """Project in blocks of directions: each rank makes its share of a block, rank 0
    gathers and writes it, so memory stays bounded however many directions there are."""
    from emsh.kernels import project as P

    vol = U.read_one(ctx, src)
    ctx.check(vol.ndim == 3 and len(set(vol.shape)) == 1,
              f"{src}: projection needs a cubic volume, got NX,NY,NZ = {vol.shape[::-1]}",
              "INPUT VOLUME")
    nums = U.numbers(ctx, numbers)
    ctx.check(len(nums) > 0, "the list of angle numbers is empty", _ANGLE_NUMBERS)
    ang = _doc_angles(ctx, angles, nums)
    n = vol.shape[0]
    rad = None if radius <= 0 else float(radius)
    if fourier:
        if rad is not None:          # only the voxels inside the object sphere project
            t = (np.arange(n, dtype=np.float32) - n // 2) ** 2
            vol = np.where(t[:, None, None] + t[None, :, None] + t[None, None, :]
                           <= np.float32(rad) ** 2, vol, np.float32(0))
        fp = P.FourierProjector(vol)
    out = list(range(1, len(nums) + 1)) if _yes(consecutive) else nums
    block = _PJ_BLOCK * ctx.comm.size
    for s in range(0, len(nums), block):
        e = min(s + block, len(nums))
        mine = ctx.comm.my_slice(e - s)
        sel = ang[s + mine.start: s + mine.stop]
        if sel.shape[0] == 0:
            part = np.zeros((0, n, n), np.float32)
        else:
            part = fp.project(sel) if fourier else P.project_real_trilinear(vol, sel, rad)
        parts = ctx.comm.gather(part)
        if ctx.is_root:
            U.write_batch(ctx, dst, np.concatenate(parts, axis=0), out[s:e],
                          proj_angles=ang[s:e, ::-1].copy())
    if getattr(ctx.session, "verbose", True):
        for k, (psi, the, phi) in zip(out, ang):
            ctx.log(f"  PROJECTION: {k:5d}  PSI:{psi:6.1f} THETA:{the:6.1f} PHI:{phi:6.1f}")
    ctx.log(f"  {ctx.op.code} FINISHED FOR: {len(nums):7d}   PROJECTIONS -----")


def pj3q(ctx, src, radius, consecutive, numbers, angles, dst):
    """PJ 3Q: projections by trilinear ray summation, as SPIDER."""
    _project(ctx, src, radius, consecutive, numbers, angles, dst, fourier=False)


def pj3f(ctx, src, radius, consecutive, numbers, angles, dst):
    """PJ 3F: projections by Fourier central sections of the voxels inside the radius."""
    _project(ctx, src, radius, consecutive, numbers, angles, dst, fourier=True)


_ANGLE_NUMBERS = "FILE NUMBERS OR SELECTION DOC. FILE NAME"
_PJ_PROMPTS = (
    Prompt("src", "INPUT VOLUME", kind="image"),
    Prompt("radius", "OBJECT RADIUS, CONSECUTIVE OUTPUT FILE NUMBERS (Y/N)", fields=(
        Field("radius", "float", help="object radius in pixels; <= 0: NX/2 - 1"),
        Field("consecutive", "str", "N", help="Y numbers the outputs 1, 2, 3 ..."))),
    Prompt("numbers", _ANGLE_NUMBERS, kind="numbers",
           help="angle numbers (keys of the angles doc) or a selection doc"),
    Prompt("angles", "ANGLES DOC FILE", kind="doc", help="psi, theta, phi in registers 1-3"),
    Prompt("dst", "TEMPLATE FOR OUTPUT PROJECTIONS", kind="template",
           help="prj@**** (stack members) or prj*** (files)"),
)
_PJ_HELP = ("Each output is an NX x NX projection of the cubic volume along the direction "
            "(psi, theta, phi) of the angles doc key it is numbered by (or 1, 2, 3 ... with "
            "Y); only voxels within the object radius of the centre (NX/2+1) project. "
            "The angles go to header words 101-103 (psi, theta, phi), 104 = 1.")

PJ_3Q = Operation(
    "PJ 3Q", "Project a volume at the angles of a doc, trilinear interpolation", impl=pj3q,
    prompts=_PJ_PROMPTS, mpi="all", see_also=("PJ 3F", "VO EA", "BP 32F"),
    help=_PJ_HELP + " Ray sums on the volume grid, as SPIDER (equal to float32 rounding).")

PJ_3F = Operation(
    "PJ 3F", "Project a volume at the angles of a doc, Fourier interpolation", impl=pj3f,
    prompts=_PJ_PROMPTS, mpi="all", see_also=("PJ 3Q",),
    help=_PJ_HELP + (" emsh takes central sections of the 2x padded transform with a "
                     "Kaiser-Bessel kernel (SPIDER uses Fourier-based splines); the two "
                     "agree to about 1e-3 of the projections' range."))


# ----------------------------------------------------------------------------- BP 32F, BP 3F

def _backproject(ctx, src, numbers, angles, sym, halves: bool):
    """Full (and, with ``halves``, two random-half) reconstructions of the named images."""
    from emsh import io as eio
    from emsh.kernels.project import rotation_matrices
    from emsh.kernels.reconstruct import FourierReconstructor

    tmpl, nums = U.image_series(ctx, src, numbers)
    k = len(nums)
    ctx.check(k >= (2 if halves else 1), f"{src}: {k} image(s) is too few", "IMAGE FILE")
    ctx.log(f"  NUMBER OF IMAGES: {k:8d}")
    ang = _doc_angles(ctx, angles, nums)
    _log_angles(ctx, nums, ang, "PROJECTION #")
    rot = rotation_matrices(ang)
    if tmpl is None or U.parse(tmpl).inline is not None:
        first = _read_slice(ctx, src, tmpl, nums[:1])
        n = first.shape[-1]
    else:
        n = eio.info(U.disk_address(ctx, U.parse(tmpl).member(nums[0]))).shape[-1]
    group = np.zeros(k, dtype=bool)
    if halves:
        group[ctx.rng.permutation(k)[: k // 2]] = True    # True: first half
    recs = [FourierReconstructor(n, 2, _symmetry(ctx, sym)) for _ in range(2 if halves else 1)]
    mine = ctx.comm.my_slice(k)
    for s in range(mine.start, mine.stop, _CHUNK):
        e = min(s + _CHUNK, mine.stop)
        imgs = _read_slice(ctx, src, tmpl, nums[s:e])
        if not halves:
            recs[0].insert(imgs, rot[s:e])
            continue
        g = group[s:e]
        for rec, sel in ((recs[0], g), (recs[1], ~g)):
            if sel.any():
                rec.insert(imgs[sel], rot[s:e][sel])
    for rec in recs:
        _reduce(ctx, rec)
    if not halves:
        return recs[0].finish(), None, None
    h1, h2 = recs[0].finish(), recs[1].finish()
    return recs[0].add(recs[1]).finish(), h1, h2


def bp32f(ctx, src, numbers, angles, sym, dst, dst1, dst2):
    """BP 32F: direct Fourier reconstruction of all images and of two random halves."""
    full, h1, h2 = _backproject(ctx, src, numbers, angles, sym, halves=True)
    if ctx.is_root:
        for name, vol in ((dst, full), (dst1, h1), (dst2, h2)):
            U.write_one(ctx, name, vol)


def bp3f(ctx, src, numbers, angles, sym, dst):
    """BP 3F: direct Fourier reconstruction (5x5x5 Kaiser-Bessel gridding, 2x padding)."""
    full, _, _ = _backproject(ctx, src, numbers, angles, sym, halves=False)
    if ctx.is_root:
        U.write_one(ctx, dst, full)


def _bp_prompts(text: str) -> tuple[Prompt, ...]:
    return (
        Prompt("src", text, kind="image", help="stk@**** with a list, stk@, or img***"),
        Prompt("numbers", _NUMBERS, kind="numbers", when=lambda a: U.is_template(a.get("src"))),
        Prompt("angles", "ANGLES DOC FILE", kind="doc",
               help="psi, theta, phi in registers 1-3; key = image number"),
        Prompt("sym", "SYMMETRIES DOC FILE", kind="doc", optional=True,
               help="psi, theta, phi of every symmetry operator (identity included), or *"),
    )


_BP_HELP = ("Images are square NX x NX, centre NX/2+1; each is freed of the mean outside "
            "its inscribed circle, padded 2x, transformed and inserted on its central plane "
            "with a 5x5x5 Kaiser-Bessel window (SPIDER's algorithm; equal to float32 "
            "rounding). Only registers 1-3 (psi, theta, phi) of the angles doc are used. The "
            "output is NX^3, zero outside the sphere of radius NX/2.")

BP_32F = Operation(
    "BP 32F", "Fourier reconstruction: full volume and two random half sets", impl=bp32f,
    mpi="all", see_also=("BP 3F", "FSC", "MD"),
    help=_BP_HELP + (" The first half gets k//2 images drawn at random (MD SET SEED makes "
                     "the split repeatable); the full volume is the sum of both halves."),
    prompts=_bp_prompts("TEMPLATE FOR IMAGE FILES (E.G. STK@****) FILE") + (
        Prompt("dst", "RECONSTRUCTED VOLUME FILE", kind="image_out"),
        Prompt("dst1", "FIRST SAMPLE VOLUME FILE", kind="image_out"),
        Prompt("dst2", "SECOND SAMPLE VOLUME FILE", kind="image_out"),
    ))

BP_3F = Operation(
    "BP 3F", "Fourier reconstruction of a volume from projections", impl=bp3f, mpi="all",
    see_also=("BP 32F",), help=_BP_HELP,
    prompts=_bp_prompts("IMAGE FILE NAME OR TEMPLATE (E.G. STK@****) FILE") + (
        Prompt("dst", "RECONSTRUCTED VOLUME FILE", kind="image_out"),
    ))


# ----------------------------------------------------------------------------- FSC, RF 3

def _is_fourier(answer) -> bool:
    """Whether an existing input is a Fourier file (for ``when``); never raises."""
    try:
        from emsh import io as eio

        ref = U.parse(answer)
        return ref.inline is None and bool(eio.info(ref.path).is_fourier)
    except Exception:  # noqa: BLE001 - a predicate must not fail
        return False


def _real_volume(ctx, answer, what: str) -> tuple[np.ndarray, bool]:
    """A real image/volume (a Fourier file is transformed back first) and whether the
    input was a Fourier file."""
    from emsh import io as eio
    from emsh.kernels.fourier import spider_ift

    x = U.read_one(ctx, answer)
    fourier = np.iscomplexobj(x)
    if fourier:
        shape = eio.info(U.disk_address(ctx, answer)).shape
        x = spider_ift(x, shape)
    ctx.check(x.ndim in (2, 3), f"{answer}: expected an image or a volume", what)
    return x, fourier


def _gnuplot(ctx, path, doc, cutoff) -> None:
    from emsh.io._atomic import atomic_open

    with atomic_open(path, "w", overwrite=True) as fh:
        fh.write("set datafile commentschars ';'\nset xlabel 'Normalized frequency'\n"
                 "set ylabel 'FSC'\nset yrange [-0.1:1.05]\nset grid\n"
                 f"plot '{doc}' using 3:5 title 'FSC' with lines, {cutoff:g} "
                 "title 'cutoff' with lines\n")


def fsc(ctx, src1, src2, width, mask_radius, width_f, voxel, cutoff, dst, gnuplot):
    """FSC: Fourier shell correlation doc, and (shell, frequency, resolution) at the cutoff."""
    from emsh.kernels.fsc import fsc_doc_rows

    a, fourier = _real_volume(ctx, src1, "FIRST INPUT VOLUME")
    b, _ = _real_volume(ctx, src2, "SECOND INPUT VOLUME")
    ctx.check(a.shape == b.shape, f"{src1} and {src2} differ in size", "SECOND INPUT VOLUME")
    w, mask = (width_f, 0.0) if fourier else (width, mask_radius or 0.0)
    rows, regs = fsc_doc_rows(a, b, w, mask, voxel, cutoff)
    U.write_session_doc(ctx, dst, [k for k, _ in rows], [v for _, v in rows], _FSC_HEADING)
    if gnuplot is not None and ctx.is_root:
        _gnuplot(ctx, gnuplot, dst, cutoff)
    ctx.log(f"  FSC,  SHELL WIDTH (VOXELS): {1.0 / w:5.2f}")
    ctx.log("          |NORM-FREQ|     |ANGST|         |FSC|")
    for k, v in rows:
        ctx.log(f"  {k:3d}    {v[0]:10.5f}    {v[1]:10.5f}    {v[2]:10.5f}")
    return regs


def rf3(ctx, src1, src2, width, s1, s2, cone, tilt, factor, dst):
    """RF 3: phase residue and FSC per shell; (shell, frequency) where FSC falls below 0.5."""
    from emsh.kernels.fsc import rf3_doc_rows

    a, _ = _real_volume(ctx, src1, "FIRST INPUT VOLUME")
    b, _ = _real_volume(ctx, src2, "SECOND INPUT VOLUME")
    ctx.check(a.shape == b.shape, f"{src1} and {src2} differ in size", "SECOND INPUT VOLUME")
    rows, regs = rf3_doc_rows(a, b, width, (s1, s2), cone, tilt, factor)
    U.write_session_doc(ctx, dst, [k for k, _ in rows], [v for _, v in rows], _RF3_HEADING)
    ctx.log(f"  PHASE RESIDUE & FSC,   SHELL WIDTH (RECIPROCAL UNITS): {width:5.3f}")
    ctx.log("          |NORM-FREQ|      |DPH|          |FSC|     |FSCCRIT|     |VOXELS|")
    for k, v in rows:
        ctx.log(f"  {k:3d}    {v[0]:10.5f}    {v[1]:10.5f}    {v[2]:10.5f}    {v[3]:10.5f}"
                f"    {int(v[4]):6d}")
    return regs


_TWO_VOLUMES = (
    Prompt("src1", "FIRST INPUT VOLUME", kind="image"),
    Prompt("src2", "SECOND INPUT VOLUME", kind="image"),
)

FSC = Operation(
    "FSC", "Fourier shell correlation and resolution", impl=fsc,
    outputs=("shell", "frequency", "resolution"), see_also=("RF 3", "BP 32F"),
    help=("Doc registers per shell: normalised frequency, resolution (Å), FSC, sqrt(FSC), "
          "sqrt(2FSC/(FSC+1)); key k is shell (k-1)*width/N and shells below 1/N are not "
          "written. The mask (real inputs) is exp(-0.5 (r/R)^4) about the centre; 0 means "
          "none. The registers get the interpolated shell, frequency and resolution (Å) "
          "of the last fall below the cutoff (with no crossing: the last shell and its "
          "FSC, as SPIDER). Fourier inputs are transformed back; they take no mask."),
    prompts=_TWO_VOLUMES + (
        Prompt("shell", "SHELL WIDTH (RECIPROCAL SPACE UNITS), MASKING RADIUS",
               fields=(Field("width", "float", 0.5, min=1e-3),
                       Field("mask_radius", "float", 0.0, min=0.0)),
               when=lambda a: not _is_fourier(a.get("src1"))),
        Prompt("shell_f", "SHELL WIDTH (RECIPROCAL SPACE UNITS)",
               fields=(Field("width_f", "float", 0.5, min=1e-3),),
               when=lambda a: _is_fourier(a.get("src1"))),
        Prompt("voxel", "VOXEL SIZE (A) & RESOLUTION CUTOFF",
               fields=(Field("voxel", "float", 1.0, min=1e-6), Field("cutoff", "float", 0.5))),
        Prompt("dst", "FSC OUTPUT DOCUMENT FILE", kind="doc_out"),
        Prompt("gnuplot", "GNUPLOT FILE", kind="file_out", optional=True,
               help="gnuplot script plotting the FSC doc, or *"),
    ))

RF_3 = Operation(
    "RF 3", "Phase residue and FSC of two volumes (legacy resolution)", impl=rf3,
    outputs=("shell", "frequency"), see_also=("FSC",),
    help=("Doc registers per shell: normalised frequency, amplitude-weighted RMS phase "
          "difference (degrees), FSC, FSC criterion factor/sqrt(voxels), voxels. C "
          "excludes a missing cone, W a missing wedge beyond the maximum tilt (90: none). "
          "The registers get the shell and frequency where FSC falls below 0.5."),
    prompts=_TWO_VOLUMES + (
        Prompt("width", "SHELL WIDTH (RECIPROCAL SPACE UNITS)",
               fields=(Field("width", "float", 0.5, min=1e-3),)),
        Prompt("scales", "SCALE FACTOR (LOWER,UPPER)",
               fields=(Field("s1", "float", 0.2), Field("s2", "float", 2.0))),
        Prompt("cone", "MISSING CONE/WEDGE ANGLE (C/W)", kind="choice", choices=("C", "W")),
        Prompt("tilt", "MAXIMUM TILT ANGLE (90 FOR MOST SINGLE PARTICLE RECONS.)",
               fields=(Field("tilt", "float", 90.0, min=0.0, max=90.0),)),
        Prompt("factor", "NOISE COMPARISON FACTOR",
               fields=(Field("factor", "float", 3.0, min=0.0),)),
        Prompt("dst", "FSC OUTPUT DOCUMENT FILE", kind="doc_out"),
    ))

OPERATIONS = [VO_EA, PJ_3Q, PJ_3F, BP_32F, BP_3F, FSC, RF_3]
