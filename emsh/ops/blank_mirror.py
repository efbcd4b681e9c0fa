"""Constant images and mirrors: BL, MR.

Prompt texts and order are SPIDER's (``util2.f``, ``mirror.f``), so SPIDER procedures
answer them line for line (``average.spi`` of the defocus-group tech uses ``BL`` for empty
views and ``MR`` with ``Y`` for mirrored particles).

* ``BL``: an NX x NY (x NZ) image or volume filled with a background: a value, or the
  average of a reference image (``AVERAGE? (Y/N)`` answered Y).
* ``MR``: mirror about the centre row/column/slice ``N/2+1`` (SPIDER's 1-based centre,
  0-based index ``n//2``): index ``i`` takes the value at ``(2*(n//2) - i) mod n``. For odd
  ``n`` that is a plain flip; for even ``n`` the first row/column/slice stays where it is
  and the last takes the second's value (SPIDER's rule, consistent with ``RT``'s centre).
  Axis Y (the default) swaps columns (left/right, x -> -x), X swaps rows (top/bottom),
  Z swaps slices (volumes). A whole stack (``stk@``) or a template with a list mirrors
  every member, keeping member numbers.
"""

from __future__ import annotations

import numpy as np

from emsh.ops import _util as U
from emsh.spec import Field, Operation, Prompt

_NUMBERS = "FILE NUMBERS OR SELECTION DOC. FILE NAME"


# ----------------------------------------------------------------------------- BL

def bl(ctx, dst, nx, ny, nz, use_average, ref, value):
    """BL: a constant image/volume; returns the background used."""
    if use_average:
        img = U.read_one(ctx, ref)
        ctx.check(not np.iscomplexobj(img), f"{ref}: the reference must be a real image",
                  "REFERENCE FILE")
        value = float(img.astype(np.float64).mean())
        ctx.log(f"  BACKGROUND (AVERAGE OF {ref}): {value:12.6G}")
    shape = (ny, nx) if nz <= 1 else (nz, ny, nx)
    U.write_one(ctx, dst, np.full(shape, np.float32(value), dtype=np.float32))
    return float(value)


BL = Operation(
    "BL", "Create a blank image or volume of constant value", impl=bl,
    outputs=("background",), see_also=("MO", "MO 3", "MS"),
    help=("Writes an NX x NY image (NZ > 1: a volume) filled with one value: the answer to "
          "BACKGROUND, or, answering Y to AVERAGE?, the average of a reference image. The "
          "output may be a file, a stack member (stk@5) or an inline file member. The "
          "register on the operation line receives the background."),
    prompts=(
        Prompt("dst", "BLANK OUTPUT FILE", kind="image_out"),
        Prompt("size", "DIMENSIONS (NX,NY,NZ)", fields=(
            Field("nx", "int", min=1), Field("ny", "int", min=1),
            Field("nz", "int", 1, min=1))),
        Prompt("use_average", "AVERAGE? (Y/N)", kind="yesno", default=False,
               help="Y: fill with the average of a reference image; N: with a value"),
        Prompt("ref", "REFERENCE FILE", kind="image", when=lambda a: bool(a.get("use_average"))),
        Prompt("background", "BACKGROUND", fields=(Field("value", "float", 0.0),),
               when=lambda a: not a.get("use_average")),
    ))


# ----------------------------------------------------------------------------- MR

_AXIS = {"Y": -1, "X": -2, "Z": -3}     # numpy axis (from the end) each answer mirrors


def mirror(x: np.ndarray, axis: str) -> np.ndarray:
    """Mirror the last 2 (image) or 3 (volume) axes of ``x`` as SPIDER's ``MR``.

    ``axis``: ``Y`` (x -> -x about column n//2), ``X`` (rows) or ``Z`` (slices). Uses
    :func:`emsh.kernels.transform.mirror_x` on the chosen axis.
    """
    from emsh.kernels.transform import mirror_x

    a = _AXIS[axis.upper()]
    return np.ascontiguousarray(np.swapaxes(mirror_x(np.swapaxes(x, a, -1)), a, -1))


def mr(ctx, src, numbers, dst, axis, axis3):
    """MR: mirror images or volumes (every member of a stack or template)."""
    imgs, nums = U.read_batch(ctx, src, numbers)
    ctx.check(not np.iscomplexobj(imgs), f"{src}: Fourier files cannot be mirrored",
              "INPUT FILE")
    vol = imgs.ndim == 4
    ax = (axis3 if vol else axis) or "Y"
    ctx.check(vol or ax != "Z", f"{src}: an image has no Z axis to mirror; answer X or Y",
              "MIRROR AT (Y) OR (X) AXIS (DEF=Y)")
    header = U.spider_header_words(ctx, src, nums)
    U.write_batch(ctx, dst, mirror(imgs, ax), nums, header=header or None)


def _vol(a) -> bool:
    return U.answer_ndim(a.get("src"), a.session) == 3


MR = Operation(
    "MR", "Mirror an image or volume about its centre row, column or slice", impl=mr,
    see_also=("RT SQ", "AP SH", "AS R"),
    help=("The mirror line is row NY/2+1, column NX/2+1 or slice NZ/2+1: index i (0-based) "
          "takes the value at (2*(N//2) - i) mod N, so for an even size the first "
          "row/column/slice stays and the last takes the second's value (SPIDER's rule; "
          "for an odd size a plain flip). Y (default) interchanges columns (left/right), X "
          "rows (top/bottom), Z slices (front/back, volumes only). A whole stack (stk@) or a "
          "template with a list mirrors every member into the output stack or template."),
    prompts=(
        Prompt("src", "INPUT FILE", kind="image",
               help="image, volume, member (stk@3), whole stack (stk@) or template"),
        Prompt("numbers", _NUMBERS, kind="numbers", when=lambda a: U.is_template(a.get("src"))),
        Prompt("dst", "OUTPUT FILE", kind="image_out"),
        Prompt("axis", "MIRROR AT (Y) OR (X) AXIS (DEF=Y)", kind="choice",
               choices=("Y", "X"), default="Y", when=lambda a: not _vol(a)),
        Prompt("axis3", "MIRROR AT (Z), (Y) OR (X) AXIS (DEF=Y)", kind="choice",
               choices=("Y", "X", "Z"), default="Y", when=_vol),
    ))

OPERATIONS = [BL, MR]
