"""Image files and headers: CP, MS, FS, FI H, FI X, ST H (model patterns MO, MO 3 are in
:mod:`emsh.ops.models`).

Prompt texts are SPIDER's own (as its results file echoes them), so a SPIDER
procedure answers them line for line. Inputs accept a file, a stack member
(``stk@3``), a whole stack (``stk@``), a template with a list (``stk@*``) where SPIDER
does, and inline files (``_1@2``); see :mod:`emsh.ops._util`.
"""

from __future__ import annotations

import os
import re

import numpy as np

from emsh.ops import _util as U
from emsh.spec import Field, Operation, Prompt


def _tmpl(name):
    return lambda a: U.is_template(a.get(name))


# ----------------------------------------------------------------------------- CP, MS

def cp(ctx, src, numbers, dst, capacity):
    """CP: copy images, volumes, members and whole stacks, keeping member numbers."""
    a, b = U.parse(src), U.parse(dst)
    if a.inline is None and b.inline is None and not (a.at or a.template or b.at or b.template):
        _copy_file(ctx, U.resolve(ctx, a.path), b.path)
        return
    imgs, nums = U.read_batch(ctx, src, numbers)
    ctx.check(not np.iscomplexobj(imgs), "Fourier-format members cannot be copied this way; "
              "copy the whole file", "INPUT FILE")
    header = U.spider_header_words(ctx, src, nums)
    names = U.write_batch(ctx, dst, imgs, nums, capacity=capacity, header=header or None)
    ctx.log(f"  COPIED {len(names)} IMAGE(S) TO: {names[0]}" + (" ..." if len(names) > 1 else ""))


def _copy_file(ctx, src: str, dst: str) -> None:
    """A whole file to a new file of the same format: the bytes, atomically (Fourier too)."""
    import shutil

    from emsh import io as eio
    from emsh.errors import DataFormatError
    from emsh.io._atomic import atomic_path

    if not os.path.isfile(src):
        raise DataFormatError(src, "file not found")
    if eio.format_of(src) != eio.format_of(dst, for_writing=True):
        eio.write(dst, eio.read(src), stack=eio.info(src).is_stack, overwrite=True)
        return
    with atomic_path(dst, overwrite=True) as tmp:
        shutil.copyfile(src, tmp)
    ctx.log(f"  COPIED: {src} TO: {dst}")


def ms(ctx, dst, nx, ny, nz, capacity):
    """MS: create an empty inline stack."""
    shape = (ny, nx) if nz <= 1 else (nz, ny, nx)
    U.make_inline(ctx, dst, shape, capacity)
    ctx.log(f"  {dst}  ({nx} x {ny} x {nz}) INLINE STACK FOR {capacity} IMAGES")


_NUMBERS = "FILE NUMBERS OR SELECTION DOC. FILE NAME"

CP = Operation(
    "CP", "Copy an image, volume, stack member or whole stack", impl=cp, see_also=("MS",),
    help=("Copies file -> file, file -> stack member (stk@3; a new stack gets empty slots "
          "below it), member -> file, stk@ -> stk@ (members keep their numbers, empty slots "
          "stay empty), templates with a list (stk@* -> out@*), and inline stacks (_1@). "
          "A new inline stack output asks for its capacity. A simple file is found with or "
          "without its extension."),
    prompts=(
        Prompt("src", "INPUT FILE NAME OR TEMPLATE (E.G. STK@*)", kind="image"),
        Prompt("numbers", _NUMBERS, kind="numbers", when=_tmpl("src")),
        Prompt("dst", "OUTPUT FILE NAME OR TEMPLATE (E.G. stk-file@*)", kind="image_out"),
        Prompt("cap", "NUMBER OF IMAGES/VOLUMES ALLOWED IN STACK",
               fields=(Field("capacity", "int", None, min=1),),
               when=lambda a: U.is_inline(a.get("dst")) and U.is_whole_stack(a.get("dst"))
               and not U.inline_exists(a.get("dst"), a.session)),
    ))

MS = Operation(
    "MS", "Make an empty inline stack", impl=ms, see_also=("CP", "DE"),
    help="Creates inline stack _n@ (n = 1..99) in memory; free it with DE _n@.",
    prompts=(
        Prompt("dst", "NEW INLINE STACK FILE", kind="image_out"),
        Prompt("size", "DIMENSIONS (NX, NY, & NZ)", fields=(
            Field("nx", "int", min=1), Field("ny", "int", min=1), Field("nz", "int", 1, min=1))),
        Prompt("cap", "NUMBER OF IMAGES/VOLUMES ALLOWED",
               fields=(Field("capacity", "int", min=1),)),
    ))


# ----------------------------------------------------------------------------- FS

def fs(ctx, src, numbers):
    """FS: maximum, minimum, average and SD (N-1) of every image named; returns the last."""
    from emsh.kernels.stats import fs_stats

    imgs, nums = U.read_batch(ctx, src, numbers)
    ctx.check(not np.iscomplexobj(imgs), "statistics of Fourier files are not supported",
              "INPUT FILE")
    mx, mn, av, sd = (np.atleast_1d(v) for v in fs_stats(imgs, ndim=imgs.ndim - 1))
    ref = U.parse(src)
    for k, n in enumerate(nums):
        if ref.many:
            ctx.log(f"  {ref.member(n)}")
        ctx.log(f"  FMIN: {mn[k]:11.4G}  FMAX: {mx[k]:11.4G}  AV: {av[k]:12.6G}  "
                f"SIG: {sd[k]:12.6G}")
    return float(mx[-1]), float(mn[-1]), float(av[-1]), float(sd[-1])


FS = Operation(
    "FS", "Statistics of images: max, min, average, SD", impl=fs,
    outputs=("max", "min", "avg", "sd"),
    help=("Lists FMAX, FMIN, AV and SIG (N-1 divisor) of an image, volume, member, every "
          "member of a whole stack (stk@) or of a template with a list. The registers on "
          "the operation line receive the values of the last one."),
    prompts=(
        Prompt("src", "INPUT FILE NAME OR TEMPLATE (E.G. stk-file@*)", kind="image"),
        Prompt("numbers", _NUMBERS, kind="numbers", when=_tmpl("src")),
    ))


# ----------------------------------------------------------------------------- headers

def _names(text) -> list[str]:
    return [t for t in str(text or "").replace(",", " ").split() if t]


def _header_source(ctx, src):
    """``(words (256,) float64, data loader)`` for a file/member/stack/inline answer."""
    from emsh import io as eio

    ref = U.parse(src)
    if ref.inline is not None:
        buf = U.inline_buffer(ctx, ref)
        w = _synthetic_words(buf.shape, ref.index, buf.capacity if ref.whole_stack else 0)
        return w, (lambda: U.read_one(ctx, src)) if ref.index else None
    path = U.resolve(ctx, ref.path)
    if eio.format_of(path) == "spider":
        from emsh.io.spider import read_header

        h = read_header(path, index=ref.index or (0 if ref.at else None))
        load = None if ref.whole_stack else (lambda: eio.read(path, index=ref.index))
        return h.words.astype(np.float64), load
    inf = eio.info(path)
    w = _synthetic_words(inf.shape, ref.index, inf.n_images if ref.whole_stack else 0)
    if inf.apix:
        w[37] = inf.apix
    return w, None if ref.whole_stack else (lambda: eio.read(path, index=ref.index))


def _synthetic_words(shape, index, maxim) -> np.ndarray:
    """SPIDER header words for data without a SPIDER header (inline, MRC, HDF)."""
    from emsh.io.spider_header import header_records

    nz, ny, nx = (1,) * (3 - len(shape)) + tuple(shape)
    w = np.zeros(256)
    labrec, labbyt = header_records(nx)
    w[[0, 1, 2, 4, 11, 12, 21, 22]] = nz, ny, labrec + ny * nz, 1 if nz == 1 else 3, nx, \
        labrec, labbyt, 4 * nx
    if maxim:
        w[23], w[25] = 2, maxim
    if index:
        w[26] = index
    return w


def _value(words, load, wn: int) -> float:
    """Header word ``wn``; FMAX/FMIN/AV/SIG are computed when the header lacks them."""
    if wn in (7, 8, 9, 10) and words[5] != 1 and load is not None:
        from emsh.kernels.stats import fs_stats

        mx, mn, av, sd = fs_stats(load())
        words[6:10] = mx, mn, av, sd
        words[5] = 1
    return float(words[wn - 1])


_REGISTER = re.compile(r"\[([^\[\]]+)\]")


def _registers(ctx, inline: str) -> list[str]:
    """Register names (without brackets) listed on the operation line."""
    text = str(inline or "").strip()
    names = _REGISTER.findall(text)
    rest = _REGISTER.sub("", text).replace(",", " ").strip()
    ctx.check(not rest, f"expected registers such as [nx],[ny] after the operation, got "
              f"{text!r}")
    return names


def _store(ctx, regs: list[str], labels: list[str], values: list[float]) -> tuple:
    for reg, label, v in zip(regs, labels, values):
        ctx.session.set_register(reg, v)
        ctx.log(f"  REGISTER VARIABLE: [{reg}]  HOLDS: {label:<8} = {v:11.4G}")
    return tuple(values)


def fi_h(ctx, src, names, inline):
    """FI H: header values by name, into the registers on the operation line."""
    from emsh.io.spider_header import word_number

    regs = _registers(ctx, inline)
    words, load = _header_source(ctx, src)
    labels, out = _names(names), []
    for name in labels:
        try:
            wn = word_number(name)
        except KeyError:
            ctx.check(False, f"unknown header variable {name!r}", "HEADER VARIABLE(S)")
        out.append(_value(words, load, wn))
    return _store(ctx, regs, [n.upper() for n in labels], out)


def fi_x(ctx, src, locations, inline):
    """FI X: header values by word number (1-based), as stored, into the registers."""
    regs = _registers(ctx, inline)
    words, _ = _header_source(ctx, src)
    locs = [int(v) for v in U.values_of(ctx, locations)]
    for wn in locs:
        ctx.check(1 <= wn <= 211, f"header location {wn} is not in 1..211",
                  "NUMBER(S) OF HEADER LOCATION TO BE RETRIEVED")
    return _store(ctx, regs, [f"WORD {w}" for w in locs], [float(words[w - 1]) for w in locs])


def st_h(ctx, src, names, values):
    """ST H: set named header words of a SPIDER file, member or stack in place."""
    from emsh import io as eio
    from emsh.io.spider import set_header_words

    ref = U.parse(src)
    ctx.check(ref.inline is None and not ref.template,
              "headers can be set only in SPIDER files on disk", "SET HEADER VALUES IN FILE")
    path = U.resolve(ctx, ref.path)
    ctx.check(eio.format_of(path) == "spider", f"{path} is not a SPIDER file",
              "SET HEADER VALUES IN FILE")
    keys, vals = _names(names), U.values_of(ctx, values)
    ctx.check(len(vals) >= len(keys), f"{len(keys)} header variables but {len(vals)} values",
              "VALUE(S)")
    addr = path + ("@" + str(ref.index) if ref.index else "")
    set_header_words(addr, ref.index or (0 if ref.at else None), dict(zip(keys, vals)))


_REGS_HELP = ("The registers on the operation line receive the values in order "
              "(FI H [nx],[ny] answered with NX,NY).")

FI_H = Operation(
    "FI H", "Header values by name into registers", impl=fi_h, inline="raw",
    help=("Names: NX NY NZ IFORM IREC LABREC LABBYT LENBYT ISTACK MAXIM IMGNUM FMAX FMIN AV "
          "SIG PIXSIZ PHI THETA PSI XOFF YOFF ZOFF ... (aliases MAX MIN AVG NSAM NROW NSLICE). "
          "stk@ reads the overall header, stk@n the member's. FMAX/FMIN/AV/SIG are computed "
          "when the header lacks them. PHI, THETA, PSI are words 15, 16, 17. " + _REGS_HELP),
    see_also=("FI X", "ST H"),
    prompts=(
        Prompt("src", "INPUT FILE", kind="image"),
        Prompt("names", "HEADER VARIABLE(S)", kind="text"),
    ))

FI_X = Operation(
    "FI X", "Header values by location into registers", impl=fi_x, inline="raw",
    help="Header words by number (1-based), as stored in the file. " + _REGS_HELP,
    see_also=("FI H",),
    prompts=(
        Prompt("src", "INPUT FILE", kind="image"),
        Prompt("locations", "NUMBER(S) OF HEADER LOCATION TO BE RETRIEVED", kind="text"),
    ))

ST_H = Operation(
    "ST H", "Set header values by name", impl=st_h, see_also=("FI H",),
    help=("Alters named words of a SPIDER header in place (file, stk@n member, stk@ overall "
          "header). Words that define the file layout are refused; PHI, THETA, PSI are "
          "words 15, 16, 17."),
    prompts=(
        Prompt("src", "SET HEADER VALUES IN FILE", kind="image"),
        Prompt("names", "HEADER VARIABLE(S)", kind="text"),
        Prompt("values", "VALUE(S)", kind="text"),
    ))

OPERATIONS = [CP, MS, FS, FI_H, FI_X, ST_H]
