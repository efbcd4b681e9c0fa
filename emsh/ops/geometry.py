"""Geometry: PD, WI, SH, SH F, RT SQ, MA.

Thin wrappers around :mod:`emsh.kernels.transform` and :mod:`emsh.kernels.masks`.
Answers are SPIDER's: 1-based top-left corners and mask centres (the image centre is
``N/2+1``), shifts ``(sx, sy[, sz])`` in pixels with +sx moving content to higher
columns, angles in degrees (positive turns the image counter-clockwise as displayed).
A whole stack (``stk@``) or a template with a list goes through the kernel as one batch;
SH and RT SQ then read per-image parameters from a doc file, keyed by image number.
Where SPIDER words a prompt differently for volumes, the 3D text is asked when the
input is a volume.
"""

from __future__ import annotations

import numpy as np

from emsh.ops import _util as U
from emsh.spec import Field, Operation, Prompt

_NUMBERS = "FILE NUMBERS OR SELECTION DOC. FILE NAME"


def _vol(a) -> bool:
    return U.answer_ndim(a.get("src"), a.session) == 3


def _many(a) -> bool:
    src = a.get("src")
    return U.is_template(src) or U.is_whole_stack(src)


def _size_prompts(text2: str, text3: str) -> tuple[Prompt, Prompt]:
    """SPIDER's 2D and 3D wording of one answer line; the 2D one also takes a third value."""
    return (
        Prompt("size", text2, fields=(Field("nx", "int", 0, min=0), Field("ny", "int", 0, min=0),
                                      Field("nz", "int", 1, min=1)),
               when=lambda a: not _vol(a)),
        Prompt("size3", text3, fields=(Field("vnx", "int", 0, min=0),
                                       Field("vny", "int", 0, min=0),
                                       Field("vnz", "int", 0, min=0)), when=_vol))


def _shape(ctx, nx, ny, nz, vnx, vny, vnz) -> tuple[int, ...]:
    """numpy output shape from whichever size line was answered."""
    if vnx:
        nx, ny, nz = vnx, vny, vnz
    ctx.check(nx > 0 and ny > 0 and nz > 0, "dimensions must be positive", "DIMENSIONS")
    return (ny, nx) if nz <= 1 and not vnx else (nz, ny, nx)


def _input_prompts() -> tuple[Prompt, ...]:
    return (Prompt("src", "INPUT FILE", kind="image"),
            Prompt("dst", "OUTPUT FILE", kind="image_out"))


# ----------------------------------------------------------------------------- PD, WI

def pd(ctx, src, dst, nx, ny, nz, vnx, vny, vnz, mode, value, x, y, z):
    """PD: pad into a larger image/volume; returns the background used."""
    from emsh.kernels.transform import pad

    imgs, nums = U.read_batch(ctx, src)
    shape = _shape(ctx, nx, ny, nz, vnx, vny, vnz)
    m = mode.upper()
    m = "AC" if m == "C" else m
    corner = (x, y) if len(shape) == 2 else (x, y, z)
    out, bg = pad(imgs, shape, corner, mode=m, value=value)
    U.write_batch(ctx, dst, out, nums)
    last = float(np.atleast_1d(bg)[-1])
    if m == "B":
        ctx.log(f"  OUTER AVERAGE: {last:12.5G}")
    return last


def wi(ctx, src, dst, nx, ny, nz, vnx, vny, vnz, x, y, z):
    """WI: cut a window; parts beyond the input are 0."""
    from emsh.kernels.transform import window

    imgs, nums = U.read_batch(ctx, src)
    shape = _shape(ctx, nx, ny, nz, vnx, vny, vnz)
    corner = (x, y) if len(shape) == 2 else (x, y, z)
    U.write_batch(ctx, dst, window(imgs, shape, corner), nums)


_CORNER = Prompt("corner", "TOP LEFT COORDINATES", fields=(
    Field("x", "int", 1), Field("y", "int", 1), Field("z", "int", 1)))

PD = Operation(
    "PD", "Pad an image or volume into a larger one", impl=pd, outputs=("background",),
    see_also=("WI",),
    help=("Background: A input average, S a set value, B average of the input's outer two "
          "pixels, M input minimum, C (or AC) SPIDER's circular continuation (2D). The "
          "top-left corner is 1-based. The register on the operation line gets the "
          "background value."),
    prompts=(*_input_prompts(), *_size_prompts("X & Y DIMENSIONS", "X, Y, & Z DIMENSIONS"),
             Prompt("mode", "PAD TYPE= AVERAGE, SET, BORDER, MIN, OR CIRCULAR (A/S/B/M/C)",
                    kind="choice", choices=("A", "S", "B", "M", "C", "AC")),
             Prompt("background", "BACKGROUND", fields=(Field("value", "float", 0.0),),
                    when=lambda a: str(a.get("mode") or "").upper() == "S"),
             _CORNER))

WI = Operation(
    "WI", "Window (cut out) part of an image or volume", impl=wi, see_also=("PD",),
    help="The top-left corner is 1-based; window pixels beyond the input are 0.",
    prompts=(*_input_prompts(), *_size_prompts("X & Y DIMENSIONS", "X, Y, & Z DIMENSIONS"),
             _CORNER))


# ----------------------------------------------------------------------------- doc params

def _verbose(ctx) -> bool:
    """Per-image log lines unless the session is quiet (``MD`` ``VB OFF``)."""
    return bool(getattr(ctx.session, "verbose", True))


def _doc_columns(ctx, doc: str, nums: list[int], regs: list[int], defaults: list[float]):
    """``(n, len(regs))`` values of registers ``regs`` for keys ``nums``; register 0 gives
    the default of its column."""
    from emsh.io.docfile import read_doc

    d = read_doc(U.resolve(ctx, doc))
    out = np.empty((len(nums), len(regs)))
    for i, n in enumerate(nums):
        row = d.get(n)
        for k, (r, dflt) in enumerate(zip(regs, defaults)):
            if r == 0:
                out[i, k] = dflt
            else:
                ctx.check(r <= row.size, f"key {n} has no register {r}", "DOCUMENT FILE")
                out[i, k] = row[r - 1]
    return out


def _regs(ctx, text, default: list[int], count: tuple[int, ...], prompt: str) -> list[int]:
    """Register numbers from an answer line; ``*`` or nothing gives ``default``."""
    regs = [int(v) for v in U.values_of(ctx, text)] or list(default)
    ctx.check(len(regs) in count and min(regs) >= 0,
              f"expected {' or '.join(map(str, count))} register numbers (0 or more)", prompt)
    return regs


# ----------------------------------------------------------------------------- SH, SH F

def _shift(ctx, src, numbers, dst, dst_many, sx, sy, sz, vsx, vsy, vsz, doc, regs,
           fourier: bool):
    from emsh.kernels import transform as T

    imgs, nums = U.read_batch(ctx, src, numbers)
    nd = imgs.ndim - 1
    if U.parse(src).many:
        cols = _regs(ctx, regs, [2, 3], (2,) if nd == 2 else (2, 3), _SH_REGS)
        sh = _doc_columns(ctx, doc, nums, cols, [0.0] * len(cols))
        if sh.shape[1] < nd:
            sh = np.concatenate([sh, np.zeros((sh.shape[0], nd - sh.shape[1]))], axis=1)
        for n, row in zip(nums, sh) if _verbose(ctx) else ():
            ctx.log(f"  IMAGE: {n:5d}  SHIFT:(" + ",".join(f"{v:9.3f}" for v in row) + ")")
        out_name = dst_many
    else:
        sh = np.array([[vsx, vsy, vsz]] if U.answer_ndim(src, ctx) == 3 else [[sx, sy, sz]])[:, :nd]
        out_name = dst
    fn = T.shift_fourier if fourier else T.shift_linear
    U.write_batch(ctx, out_name, fn(imgs, sh[:, :nd]), nums)


def sh(ctx, src, numbers, dst, dst_many, sx, sy, sz, vsx, vsy, vsz, doc, regs):
    """SH: circular shift with (bi/tri)linear interpolation."""
    _shift(ctx, src, numbers, dst, dst_many, sx, sy, sz, vsx, vsy, vsz, doc, regs, False)


def sh_f(ctx, src, numbers, dst, dst_many, sx, sy, sz, vsx, vsy, vsz, doc, regs):
    """SH F: circular shift by a Fourier phase ramp."""
    _shift(ctx, src, numbers, dst, dst_many, sx, sy, sz, vsx, vsy, vsz, doc, regs, True)


_SH_REGS = "REG. #'S FOR X & Y SHIFTS (OR * FOR: 2,3)"


def _shift_prompts() -> tuple[Prompt, ...]:
    single = lambda a: not _many(a)  # noqa: E731
    return (
        Prompt("src", "INPUT FILE NAME OR TEMPLATE (E.G. stk-file@*)", kind="image"),
        Prompt("numbers", _NUMBERS, kind="numbers", when=lambda a: U.is_template(a.get("src"))),
        Prompt("dst", "OUTPUT FILE", kind="image_out", when=single),
        Prompt("dst_many", "OUTPUT STACK FILE", kind="image_out", when=_many),
        Prompt("shifts", "SHIFT COMPONENTS IN X & Y", fields=(
            Field("sx", "float", 0.0), Field("sy", "float", 0.0), Field("sz", "float", 0.0)),
            when=lambda a: single(a) and not _vol(a)),
        Prompt("shifts3", "SHIFT COMPONENTS IN X, Y, & Z", fields=(
            Field("vsx", "float", 0.0), Field("vsy", "float", 0.0), Field("vsz", "float", 0.0)),
            when=lambda a: single(a) and _vol(a)),
        Prompt("doc", "SHIFT DOCUMENT FILE", kind="doc", when=_many),
        Prompt("regs", _SH_REGS, kind="text", when=_many,
               help="register numbers of the x and y shifts in the doc (keys = image numbers)"),
    )


_SH_HELP = ("+sx moves the content to higher column numbers, +sy to higher rows; the image "
            "wraps around. A whole stack (stk@) or a template with a list takes per-image "
            "shifts from a doc file (key = image number) and writes an output stack. ")

SH = Operation("SH", "Shift with bilinear/trilinear interpolation (circular)", impl=sh,
               prompts=_shift_prompts(), see_also=("SH F", "RT SQ"),
               help=_SH_HELP + "Whole-pixel shifts are an exact permutation.")
SH_F = Operation("SH F", "Shift by Fourier interpolation (circular)", impl=sh_f,
                 prompts=_shift_prompts(), see_also=("SH",),
                 help=_SH_HELP + "The shift is a phase ramp on the Fourier transform.")


# ----------------------------------------------------------------------------- RT SQ

_RT_REGS = "ENTER REG. #'S FOR ANGLE, SCALE, X & Y SHIFT (OR * FOR: 6,0,7,8)"
_RT_OUT = "OUTPUT FILE NAME OR TEMPLATE (E.G. ROT@****)"


def rt_sq(ctx, src, numbers, dst, angle, scale, sx, sy, regs, doc, dst_template):
    """RT SQ: rotate, scale and shift with SPIDER's quadratic interpolation."""
    from emsh.kernels.transform import rotate_shift_quadratic

    imgs, nums = U.read_batch(ctx, src, numbers)
    ref = U.parse(src)
    if ref.many:
        cols = _regs(ctx, regs, [6, 0, 7, 8], (4,), _RT_REGS)
        p = _doc_columns(ctx, doc, nums, cols, [0.0, 1.0, 0.0, 0.0])
        out_name = dst_template if ref.template else dst
    else:
        p = np.array([[angle, scale, sx, sy]], dtype=np.float64)
        out_name = dst
    p[p[:, 1] == 0, 1] = 1.0  # SPIDER reads a scale of 0 as 1
    if _verbose(ctx):
        for n, (a, s, x, y) in zip(nums, p):
            head = f"  IMAGE: {n:5d}" if ref.many else ""
            ctx.log(f"{head}  ANGLE: {a:7.3f}  SCALE: {s:6.3f}  SHIFT:({x:9.3f},{y:9.3f})")
    out = rotate_shift_quadratic(imgs, p[:, 0], p[:, 2:4], p[:, 1])
    U.write_batch(ctx, out_name, out, nums)


RT_SQ = Operation(
    "RT SQ", "Rotate, scale and shift with quadratic interpolation", impl=rt_sq,
    see_also=("SH",),
    help=("out(p) = in(R(angle)(p - c - shift)/scale + c), c = (NX/2+1, NY/2+1); a positive "
          "angle turns the image counter-clockwise as displayed; the shift wraps around. "
          "A single image asks angle, scale and shifts; a whole stack (stk@) asks the "
          "output stack, the doc registers (default 6,0,7,8; register 0 for the scale "
          "means 1) and the doc; a template (stk@*) asks the list, registers, doc and "
          "then the output template. Doc keys are image numbers."),
    prompts=(
        Prompt("src", "INPUT FILE NAME OR TEMPLATE (E.G. stk-file@*)", kind="image"),
        Prompt("numbers", _NUMBERS, kind="numbers", when=lambda a: U.is_template(a.get("src"))),
        Prompt("dst", _RT_OUT, kind="image_out",
               when=lambda a: not U.is_template(a.get("src"))),
        Prompt("rot", "ROTATION ANGLE, SCALE FACTOR",
               fields=(Field("angle", "float", 0.0), Field("scale", "float", 1.0)),
               when=lambda a: not _many(a)),
        Prompt("shifts", "SHIFTS IN X AND Y",
               fields=(Field("sx", "float", 0.0), Field("sy", "float", 0.0)),
               when=lambda a: not _many(a)),
        Prompt("regs", _RT_REGS, kind="text", when=_many),
        Prompt("doc", "ANGLE/SHIFT DOCUMENT FILE", kind="doc", when=_many),
        Prompt("dst_template", _RT_OUT, kind="image_out",
               when=lambda a: U.is_template(a.get("src"))),
    ))


# ----------------------------------------------------------------------------- MA

def ma(ctx, src, dst, outer, inner, shape, background, value, cx, cy, cz, vcx, vcy, vcz,
       width, halfwidth):
    """MA: circular/spherical mask (SPIDER's ``MA`` rules, see :func:`ma_mask`)."""
    from emsh.kernels.masks import ma_mask

    imgs, nums = U.read_batch(ctx, src)
    nd = imgs.ndim - 1
    dims = imgs.shape[1:][::-1]
    given = [vcx, vcy, vcz] if nd == 3 and vcx is not None else [cx, cy, cz]
    centre = [(d // 2 + 1 if c is None else c) - 1 for c, d in zip(given, dims)]
    falloff = width if shape.upper() == "C" else halfwidth if shape.upper() == "G" else None
    out = ma_mask(imgs, (outer, inner), shape, background, value=value, centre=centre,
                  falloff=falloff, ndim=nd)
    U.write_batch(ctx, dst, out, nums)


MA = Operation(
    "MA", "Mask with a circle or sphere (disk, cosine, Gaussian edges)", impl=ma,
    help=("Keeps the pixels between the inner and outer radius (outer 0: no outer mask). "
          "Edge D sets the rest to the background, C blends over the fall-off width with "
          "a cosine, G with a Gaussian of the given half-width, T multiplies by "
          "exp(-r²/outer²). Background: A input average, P average inside the mask, C "
          "average along the outer circumference, M minimum, E a value. The centre is "
          "1-based (default N/2+1)."),
    prompts=(
        *_input_prompts(),
        Prompt("radii", "OUTER & INNER RADII",
               fields=(Field("outer", "float", min=0.0), Field("inner", "float", 0.0, min=0.0))),
        Prompt("shape", "DISK, COSINE, GAUSSIAN EDGE, OR TRUE GAUSSIAN (D/C/G/T)",
               kind="choice", choices=("D", "C", "G", "T")),
        Prompt("background", "AVG, PREV AVG, CIRCUMF, MIN, OR EXTERNAL BACKGROUND (A/P/C/M/E)",
               kind="choice", choices=("A", "P", "C", "M", "E")),
        Prompt("bgvalue", "BACKGROUND", fields=(Field("value", "float", 0.0),),
               when=lambda a: str(a.get("background") or "").upper() == "E"),
        Prompt("centre", "MASK CENTER LOCATION (X,Y) OR <CR> FOR IMAGE CENTER", fields=(
            Field("cx", "float", None), Field("cy", "float", None), Field("cz", "float", None)),
            when=lambda a: not _vol(a)),
        Prompt("centre3", "MASK CENTER LOCATION (X,Y,Z) OR <CR> FOR VOLUME CENTER", fields=(
            Field("vcx", "float", None), Field("vcy", "float", None),
            Field("vcz", "float", None)), when=_vol),
        Prompt("falloff", "FALLOFF WIDTH", fields=(Field("width", "float", None),),
               when=lambda a: str(a.get("shape") or "").upper() == "C"),
        Prompt("halfwidth", "FALLOFF HALFWIDTH", fields=(Field("halfwidth", "float", None),),
               when=lambda a: str(a.get("shape") or "").upper() == "G"),
    ))

OPERATIONS = [PD, WI, SH, SH_F, RT_SQ, MA]
