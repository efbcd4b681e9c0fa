"""Iterative reconstruction: BP RP 3 and BP RP 3L (SPIDER's Richardson method with halves).

Thin operation specs over :func:`emsh.kernels.iterative.richardson`. Prompt texts and
their order are SPIDER's (``bprp3.f``), so SPIDER procedures answer them line for line;
the angle, symmetry and image-reading helpers are those of ``BP 32F``
(:mod:`emsh.ops.recon`). Angles: registers 1-3 (psi, theta, phi) of the angles doc, keyed
by image number; the images must already be aligned (shifts are not read).

``BP RP 3`` makes up to three volumes, each by its own iterative reconstruction: all
images (unless the first output is ``*``), a random half (``k // 2`` images drawn from
the session's seeded generator, so ``MD SET SEED`` makes the split repeatable) and the
remaining half. ``BP RP 3L`` asks for the two half lists instead of drawing them.

Parallel runs (``mpiexec``): every rank reads its share of each set's images; the
distinct orientations are split over the ranks in every iteration and the
backprojections are summed with ``allreduce``. Only rank 0 writes files.
"""

from __future__ import annotations

import numpy as np

from emsh.ops import _util as U
from emsh.spec import Field, Operation, Prompt

_CHUNK = 512                       # images read per pass
_NUMBERS = "FILE NUMBERS OR SELECTION DOC. FILE NAME"


def _image_size(ctx, src, tmpl, nums) -> int:
    """NX of the first image, checked square."""
    from emsh import io as eio
    from emsh.ops.recon import _read_slice

    if tmpl is None or U.parse(tmpl).inline is not None:
        shape = _read_slice(ctx, src, tmpl, nums[:1]).shape[1:]
    else:
        shape = eio.info(U.disk_address(ctx, U.parse(tmpl).member(nums[0]))).shape
    ctx.check(len(shape) == 2 and shape[0] == shape[1],
              f"{src}: BP RP 3 needs square images, got NX,NY{',NZ' if len(shape) > 2 else ''}"
              f" = {tuple(shape)[::-1]}", "TEMPLATE FOR IMAGE FILES")
    return int(shape[-1])


def _reconstruct(ctx, src, tmpl, nums, ang_of, n, radius, params):
    """One iterative reconstruction of the images ``nums`` (this rank reads its share)."""
    from emsh.kernels.iterative import ProjectionSums, richardson
    from emsh.ops.recon import _read_slice

    sums = ProjectionSums(n, radius)
    mine = ctx.comm.my_slice(len(nums))
    for s in range(mine.start, mine.stop, _CHUNK):
        e = min(s + _CHUNK, mine.stop)
        imgs = _read_slice(ctx, src, tmpl, nums[s:e])
        ctx.check(imgs.ndim == 3 and imgs.shape[1:] == (n, n),
                  f"{src}: images differ in size (the first is {n} x {n})",
                  "TEMPLATE FOR IMAGE FILES")
        sums.add(imgs, np.stack([ang_of[k] for k in nums[s:e]]))
    return richardson(sums, comm=ctx.comm, log=ctx.log, **params)


def _bprp(ctx, src, numbers, list1, list2, radius, angles, sym, dst, dst1, dst2, lam,
          limit, max_iter, mode, vmin, vmax, smooth):
    from emsh.kernels.iterative import constraint_flags
    from emsh.ops.recon import _doc_angles, _log_angles, _read_slice, _symmetry

    tmpl, nums = U.image_series(ctx, src, numbers)
    k = len(nums)
    ctx.check(k >= 2, f"{src}: {k} image(s) is too few to split in halves",
              "TEMPLATE FOR IMAGE FILES")
    ctx.log(f"  NUMBER OF IMAGES: {k:8d}")
    if list1 is not None:                               # BP RP 3L: the halves are given
        h1, h2 = U.numbers(ctx, list1), U.numbers(ctx, list2)
        for what, h in (("FIRST", h1), ("SECOND", h2)):
            ctx.check(len(h) > 0, f"the list of images for the {what.lower()} sample volume "
                      "is empty", f"IMAGES FOR {what} SAMPLE VOLUME")
    else:
        pick = np.sort(ctx.rng.permutation(k)[: k // 2])
        first = np.zeros(k, dtype=bool)
        first[pick] = True
        h1 = [nums[i] for i in np.flatnonzero(first)]
        h2 = [nums[i] for i in np.flatnonzero(~first)]
    ctx.log(f"  Random lists: {len(h1):8d}{len(h2):8d}" if list1 is None else
            f"  SAMPLE LISTS: {len(h1):8d}{len(h2):8d}")
    n = _image_size(ctx, src, tmpl, nums)
    rad = float(n // 2 - 2) if radius is None or radius <= 0 else float(radius)
    ctx.check(rad < n, f"radius {rad:g} does not fit in {n} x {n} images",
              "RADIUS OF RECONSTRUCTED OBJECT")
    if rad > n // 2 - 1:
        ctx.log(f"  WARNING: RADIUS {rad:g} > NX/2-1: THE VOLUME IS INCORRECT NEAR ITS EDGE")
    every = sorted(set(nums) | set(h1) | set(h2))
    ang = _doc_angles(ctx, angles, every)
    ang_of = dict(zip(every, ang))
    _log_angles(ctx, every, ang, "IMAGE #")
    if vmin is None or vmax is None:                    # SPIDER: the first image's range
        first_img = _read_slice(ctx, src, tmpl, nums[:1])
        vmin = float(first_img.min()) if vmin is None else vmin
        vmax = float(first_img.max()) if vmax is None else vmax
    constraint_flags(mode)
    params = dict(lam=lam, limit=limit, max_iter=max_iter, mode=mode, vmin=vmin, vmax=vmax,
                  smooth=smooth, symmetry=_symmetry(ctx, sym))
    done = {}
    for label, name, which in (("VOLUME", dst, nums), ("FIRST SAMPLED VOLUME", dst1, h1),
                               ("SECOND SAMPLED VOLUME", dst2, h2)):
        if name is None:
            continue
        ctx.log(f"  CREATING {label} ---------------------------")
        res = _reconstruct(ctx, src, tmpl, which, ang_of, n, rad, params)
        if ctx.is_root:
            U.write_one(ctx, name, res.volume)
        done[label] = res.iterations
    return done.get("VOLUME", done["SECOND SAMPLED VOLUME"])


def bprp3(ctx, src, numbers, radius, angles, sym, dst, dst1, dst2, lam, limit, max_iter,
          mode, vmin, vmax, smooth, fbs):
    """BP RP 3: iterative reconstruction of all images and of two random halves."""
    return _bprp(ctx, src, numbers, None, None, radius, angles, sym, dst, dst1, dst2, lam,
                 limit, max_iter, mode, vmin, vmax, smooth)


def bprp3l(ctx, src, numbers, list1, list2, radius, angles, sym, dst, dst1, dst2, lam, limit,
           max_iter, mode, vmin, vmax, smooth, fbs):
    """BP RP 3L: as BP RP 3 with the two half lists given."""
    return _bprp(ctx, src, numbers, list1, list2, radius, angles, sym, dst, dst1, dst2, lam,
                 limit, max_iter, mode, vmin, vmax, smooth)


def _tmpl(a) -> bool:
    return U.is_template(a.get("src"))


_HEAD = (
    Prompt("src", "TEMPLATE FOR IMAGE FILES", kind="image",
           help="stk@**** or img*** with a list, or a whole stack stk@"),
    Prompt("numbers", _NUMBERS, kind="numbers", when=_tmpl),
)
_LISTS = (
    Prompt("list1", "IMAGES FOR FIRST SAMPLE VOLUME", kind="numbers",
           help="image numbers (or a selection doc) of the first half"),
    Prompt("list2", "IMAGES FOR SECOND SAMPLE VOLUME", kind="numbers",
           help="image numbers (or a selection doc) of the second half"),
)
_TAIL = (
    Prompt("radius", "RADIUS OF RECONSTRUCTED OBJECT",
           fields=(Field("radius", "float", 0.0, help="pixels; <= 0: NX/2 - 2"),)),
    Prompt("angles", "ANGLES DOC FILE", kind="doc",
           help="psi, theta, phi in registers 1-3; key = image number"),
    Prompt("sym", "SYMMETRIES DOC FILE", kind="doc", optional=True,
           help="psi, theta, phi of every symmetry operator (identity included), or *"),
    Prompt("dst", "RECONSTRUCTED VOLUME FILE", kind="image_out", optional=True,
           help="volume from all images, or * for none"),
    Prompt("dst1", "FIRST SAMPLE VOLUME FILE", kind="image_out"),
    Prompt("dst2", "SECOND SAMPLE VOLUME FILE", kind="image_out"),
    Prompt("relax", "LAMBDA, CORRECTION LIMIT", fields=(
        Field("lam", "float", 1e-4, help="relaxation; below about 1/(images * radius)"),
        Field("limit", "float", 0.0, min=0.0,
              help="stop when the squared correction falls to this (0: never)"))),
    Prompt("iter", "ITERATION LIMIT, MODE", fields=(
        Field("max_iter", "int", 100, min=1),
        Field("mode", "int", 8, min=0, max=8,
              help="0 none; sum of 1 smoothing, 2 min, 5 max; 8 all three"))),
    Prompt("bounds", "MINIMUM, MAXIMUM", fields=(
        Field("vmin", "float", None, help="minimum of the projection data (modes 2,3,7,8)"),
        Field("vmax", "float", None, help="maximum of the projection data (modes 5-8)"))),
    Prompt("smoothing", "SMOOTHING CONST (0.0-0.999)", fields=(
        Field("smooth", "float", 0.0, help="s in [0, 1/(1+6 lambda)) (modes 1,3,6,8)"),
        Field("fbs", "int", 0, help="SPIDER's undocumented FBS flag: accepted, not used"))),
)

_HELP = ("Richardson's (Landweber's) iteration x <- x + lambda * sum_i B_i (p_i - a - P_i x) "
         "inside the sphere of the given radius, from x = 0: P_i is the PJ 3Q projector, "
         "B_i its exact adjoint, a the mean of the pixels outside the circle of that "
         "radius (subtracted from the data, so the volume's background is 0). Images at "
         "the same angles are summed first, so an iteration costs one projection per "
         "distinct direction. Each iteration logs the squared correction (and its ratio to "
         "the first); iterations stop at the iteration limit, when the squared correction "
         "falls to the correction limit, or when it stops decreasing (lambda too large). "
         "Constraint modes: 1 smoothing (a Laplacian step weighted by s/(1-s)*lambda), "
         "2 min, 5 max, sums of them, 8 all; once a reprojection leaves [min, max] (of the "
         "projection data) the volume's current minimum (maximum) becomes a bound for the "
         "rest of the run, as in SPIDER. A symmetry doc uses every image at every mate. "
         "The register on the operation line receives the iterations of the full volume "
         "(of the second half when the full volume is *). Without min/max answers the first "
         "image's range is used. emsh backprojects with the projector's exact adjoint where "
         "SPIDER interpolates bilinearly; both have the same scale, so lambda values carry "
         "over.")

BP_RP_3 = Operation(
    "BP RP 3", "Iterative constrained reconstruction (Richardson): full and two random halves",
    impl=bprp3, outputs=("niter",), mpi="all", see_also=("BP RP 3L", "BP 32F", "FSC", "MD"),
    help=_HELP + " The first half gets k//2 images drawn at random (MD SET SEED makes the "
    "split repeatable).",
    prompts=_HEAD + _TAIL)

BP_RP_3L = Operation(
    "BP RP 3L", "Iterative constrained reconstruction (Richardson) with given half lists",
    impl=bprp3l, outputs=("niter",), mpi="all", see_also=("BP RP 3",),
    help=_HELP + " The two halves are the image lists answered after the template.",
    prompts=_HEAD + _LISTS + _TAIL)

OPERATIONS = [BP_RP_3, BP_RP_3L]
