"""Image files and headers: MO, MO 3, CP, FS, FI H, FI X, ST H, MS.

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

_TNM = float(np.log(1.0 / np.finfo(np.float32).tiny))  # SPIDER's exp() cut-off, 87.34
_F = np.float32


def _is(*codes):
    return lambda a: str(a.get("pattern") or "").upper() in codes


def _tmpl(name):
    return lambda a: U.is_template(a.get(name))


def _waves_open(a) -> bool:
    return len(a.get("waves") or []) < int(a.get("nwaves") or 0)


def _centres_open(a) -> bool:
    """SPA centres are asked until an answer of 0,0,0."""
    if a.get("use_doc"):
        return False
    got = a.get("centres") or []
    last = U.literal_values(got[-1]) if got else None
    return not (last is not None and len(last) >= 3 and not any(last[:3]))


# ----------------------------------------------------------------------------- MO, MO 3

def _gauss(d2: np.ndarray, order: int, norm: float) -> np.ndarray:
    """SPIDER's (super-)Gaussian of half the weighted squared distance ``d2/2``."""
    eee = 0.5 * d2
    with np.errstate(over="ignore"):
        val = norm * np.exp(-0.5 * (2.0 * eee) ** order)
    return np.where(eee >= _TNM, 0.0, val)


def _order(pattern: str) -> tuple[int, bool]:
    return (int(pattern[1]) if len(pattern) > 1 else 1), len(pattern) == 1


def _sines(waves, grids, sizes) -> np.ndarray:
    """Sum of ``amp * sin(sum_k 2π f_k (c_k - 1) / n_k + phase)`` over the waves."""
    out = 0.0
    for amp, phase, freqs in waves:
        arg = sum(2 * np.pi * f * (g - 1) / n for f, g, n in zip(freqs, grids, sizes))
        out = out + amp * np.sin(arg + phase)
    return out


def _wave_lines(ctx, lines, width: int) -> list[list[float]]:
    rows = []
    for line in lines or []:
        v = U.values_of(ctx, line)
        rows.append((v + [0.0] * width)[:width])
    return rows


def _random(ctx, shape, gaussian, mean, sd):
    if gaussian:
        return ctx.rng.normal(mean, sd, size=shape)
    return ctx.rng.random(size=shape)


def mo(ctx, dst, nx, ny, pattern, background, radius, cx, cy, sx, sy, gaussian, mean, sd,
       nwaves, waves):
    """MO: model image (formulas of SPIDER's ``model.f``; 1-based pixel coordinates)."""
    p = pattern.upper()
    i = np.arange(1, ny + 1, dtype=np.float64)[:, None]
    j = np.arange(1, nx + 1, dtype=np.float64)[None, :]
    if p == "B":
        img = np.full((ny, nx), background)
    elif p == "C":
        rad = _F(min(nx, ny) / 2.0 - 3 if radius is None else radius)
        img = ((i - (ny // 2 + 1)) ** 2 + (j - (nx // 2 + 1)) ** 2 <= float(rad * rad)) * 1.0
    elif p == "W":
        scf = _F(2.0 / (nx + ny))
        img = i.astype(_F) * scf + scf * j.astype(_F)
    elif p.startswith("G"):
        ctx.check(sx > 0 and sy > 0, "RADII MUST BE > 0", "CHARACTARISTIC RADII IN X & Y")
        dx = nx // 2 + 1 if cx is None else cx
        dy = ny // 2 + 1 if cy is None else cy
        order, plain = _order(p)
        d2 = (j - dx) ** 2 / (sx * sx) + (i - dy) ** 2 / (sy * sy)
        img = _gauss(d2, order, 1.0 / (sx * sy * 2 * np.pi) if plain else 1.0)
        ctx.log(f"  CENTER: ({dx:g}, {dy:g})    STD: {sx:g}, {sy:g}")
    elif p == "R":
        img = _random(ctx, (ny, nx), gaussian, mean, sd)
    else:  # T, S
        rows = [[1.0, 0.0, 2, 2]] if p == "T" else _wave_lines(ctx, waves, 4)
        sel = [(a, np.deg2rad(ph), (_round_away(fx), _round_away(fy))) for a, ph, fx, fy in rows]
        img = _sines(sel, (j, i), (nx, ny))
        img = np.broadcast_to(img, (ny, nx))
    U.write_one(ctx, dst, np.asarray(img, dtype=_F))


def _round_away(v: float) -> int:
    return int(v + 0.5) if v >= 0 else int(v - 0.5)


def _spheres(ctx, shape, pattern, use_doc, doc, nspheres, column, xoff, yoff, zoff, density,
             rout, rin, centres):
    nz, ny, nx = shape
    rout = float(min(nx, ny, nz) // 2 - 5) if rout is None else rout
    amq = density or 2.0
    middle = [nx // 2 + 1, ny // 2 + 1, nz // 2 + 1]
    rows = []
    if use_doc:
        from emsh.io.docfile import read_doc

        d = read_doc(U.resolve(ctx, doc))
        for k in range(1, nspheres + 1):
            r = d.get(k)
            c = [r[column - 1 + m] for m in range(3)]
            ro = r[column + 2] if rout < 0 else rout
            ri = r[column + 3] if rin < 0 else rin
            rows.append((c, ro, ri))
    else:
        for line in centres or []:
            v = U.values_of(ctx, line)
            c = v[:3] + middle[len(v[:3]):]
            if not any(c):
                break
            rows.append((c, rout, rin))
    vol = np.zeros(shape, np.float64)
    z = np.arange(1, nz + 1, dtype=np.float64)[:, None, None]
    y = np.arange(1, ny + 1, dtype=np.float64)[None, :, None]
    x = np.arange(1, nx + 1, dtype=np.float64)[None, None, :]
    add = 1.0 if pattern == "SPA" else 0.0
    for n, ((cx, cy, cz), ro, ri) in enumerate(rows, 1):
        cx, cy, cz = cx + xoff, cy + yoff, cz + zoff
        ctx.log(f"{n:4d}{cx:12.6f}{cy:12.6f}{cz:12.6f}")
        if any(c + ro > size or c - ro < 0 for c, size in ((cx, nx), (cy, ny), (cz, nz))):
            ctx.log(f" *** SPHERE {n:3d} WILL BE TRUNCATED")
        d2 = (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2
        inside = (d2 >= float(_F(ri) * _F(ri))) & (d2 <= float(_F(ro) * _F(ro)))
        vol = np.where(inside, amq + vol * add, vol)
    return vol


def mo3(ctx, dst, nx, ny, nz, pattern, value, cx, cy, cz, sx, sy, sz, gaussian, mean, sd,
        nwaves, waves, use_doc, doc, nspheres, column, xoff, yoff, zoff, density, rout, rin,
        centres):
    """MO 3: model volume (formulas of SPIDER's ``model3.f``; 1-based voxel coordinates)."""
    p = pattern.upper()
    shape = (nz, ny, nx)
    z = np.arange(1, nz + 1, dtype=np.float64)[:, None, None]
    y = np.arange(1, ny + 1, dtype=np.float64)[None, :, None]
    x = np.arange(1, nx + 1, dtype=np.float64)[None, None, :]
    if p == "B":
        vol = np.full(shape, value)
    elif p.startswith("G"):
        c = [nx // 2 + 1 if cx is None else cx, ny // 2 + 1 if cy is None else cy,
             nz // 2 + 1 if cz is None else cz]
        s = [nx // 2 - 1 if sx is None else sx, ny // 2 - 1 if sy is None else sy,
             nz // 2 - 1 if sz is None else sz]
        ctx.check(min(s) > 0, "RADII MUST BE > 0", "RADII IN  X,Y,Z ( = STD. DEV.)")
        order, plain = _order(p)
        d2 = (x - c[0]) ** 2 / s[0] ** 2 + (y - c[1]) ** 2 / s[1] ** 2 + (z - c[2]) ** 2 / s[2] ** 2
        norm = 1.0 / (s[0] * s[1] * s[2] * (2 * np.pi) ** 1.5) if plain else 1.0
        vol = _gauss(d2, order, norm)
        ctx.log(f"  CENTER: {c[0]:g}, {c[1]:g}, {c[2]:g}  RADII: {s[0]:g}, {s[1]:g}, {s[2]:g}")
    elif p == "W":  # SPIDER accumulates the row term over the rows of a slice
        scf = 2.0 / (nx + ny + nz)
        vol = scf * z + scf * y * (y + 1) / 2 + scf * x
    elif p == "R":
        vol = _random(ctx, shape, gaussian, mean, sd)
    elif p in ("SP", "SPA"):
        vol = _spheres(ctx, shape, p, use_doc, doc, nspheres, column, xoff, yoff, zoff,
                       density, rout, rin, centres)
    else:  # T, S
        rows = [[1.0, 2, 2, 2]] if p == "T" else _wave_lines(ctx, waves, 4)
        total = sum(r[0] for r in rows) if p == "S" else 1.0
        ctx.check(total != 0, "the amplitudes add up to 0", "AMPLITUDE, SPATIAL FREQ. IN (X,Y,Z)")
        sel = [(a * (2.0 / total if p == "S" else 1.0), 0.0, tuple(int(f) for f in fr))
               for a, *fr in rows]
        vol = _sines(sel, (x, y, z), (nx, ny, nz))
    U.write_one(ctx, dst, np.broadcast_to(np.asarray(vol, dtype=_F), shape))


def _random_and_sine_prompts(wave_text: str, wave_help: str) -> tuple[Prompt, ...]:
    """The R (random) and S (sine waves) prompts of MO and MO 3."""
    return (
        Prompt("gaussian", "GAUSSIAN DISTRIBUTED? (Y/N)", kind="yesno", default=False,
               when=_is("R")),
        Prompt("meansd", "MEAN AND STANDARD DEVIATION OF GAUSSIAN DIST.",
               fields=(Field("mean", "float", 1.0), Field("sd", "float", 1.0)),
               when=lambda a: _is("R")(a) and bool(a.get("gaussian"))),
        Prompt("nwaves", "NUMBER OF SINE WAVES",
               fields=(Field("nwaves", "int", 3, min=1, max=50),), when=_is("S")),
        Prompt("waves", wave_text, kind="text", repeat=True,
               when=lambda a: _is("S")(a) and _waves_open(a),
               help=f"one line per wave ({wave_help}); as many lines as waves"),
    )


_MO_HELP = ("Patterns: B constant, C filled circle, G Gaussian (area 1), G1/G2/G3 "
            "super-Gaussians of order 1-3 (peak 1), R random (uniform or Gaussian), S sum of "
            "sine waves, T the test pattern sin(2π(2x/NX+2y/NY)), W wedge (i+j)·2/(NX+NY). "
            "Centres are 1-based; the image centre is (NX/2+1, NY/2+1).")
_G = ("G", "G1", "G2", "G3")

MO = Operation(
    "MO", "Create a model image (test pattern)", impl=mo, help=_MO_HELP, see_also=("MO 3",),
    prompts=(
        Prompt("dst", "OUTPUT FILE", kind="image_out"),
        Prompt("size", "X & Y DIMENSIONS", fields=(
            Field("nx", "int", min=1), Field("ny", "int", min=1))),
        Prompt("pattern", "OPTION (B/C/CM/G/G1/G2/G3/R/S/T/W)", kind="choice",
               choices=("B", "C", "G", "G1", "G2", "G3", "R", "S", "T", "W")),
        Prompt("background", "BACKGROUND CONSTANT",
               fields=(Field("background", "float", 1.0),), when=_is("B")),
        Prompt("radius", "RADIUS (FLOATING POINT)",
               fields=(Field("radius", "float", None),), when=_is("C")),
        Prompt("centre", "CENTER COORDINATES X,Y (or <CR> FOR IMAGE CENTER)",
               fields=(Field("cx", "float", None), Field("cy", "float", None)), when=_is(*_G)),
        Prompt("radii", "CHARACTARISTIC RADII IN X & Y",
               fields=(Field("sx", "float", 1.0), Field("sy", "float", 1.0)), when=_is(*_G)),
        *_random_and_sine_prompts("AMPLITUDE, PHASE, SPATIAL FREQ. IN (X,Y)",
                                  "amplitude, phase (degrees), x and y frequency"),
    ))

MO3 = Operation(
    "MO 3", "Create a model volume (test pattern)", impl=mo3, see_also=("MO",),
    help=("Patterns: B constant, G/G1/G2/G3 Gaussian ellipsoids, R random, S sine waves "
          "(amplitudes scaled to sum 2), T test pattern, W wedge, SP spheres, SPA spheres "
          "adding their densities where they overlap. SP/SPA ask the radii once, then "
          "centres until 0,0,0; a short centre answer takes the volume centre for the "
          "missing coordinates."),
    prompts=(
        Prompt("dst", "OUTPUT FILE", kind="image_out"),
        Prompt("size", "X, Y, & Z DIMENSIONS", fields=(
            Field("nx", "int", min=1), Field("ny", "int", min=1), Field("nz", "int", min=1))),
        Prompt("pattern", "B/C/G/G1/G2/G3/H/HA/NUM/P/R/T/S/SP/SPA/SPV/W", kind="choice",
               choices=("B", "G", "G1", "G2", "G3", "R", "T", "S", "SP", "SPA", "W")),
        Prompt("density_b", "DENSITY", fields=(Field("value", "float", 0.0),), when=_is("B")),
        Prompt("centre", "CENTER COORDINATES X,Y,Z (or <CR> FOR IMAGE CENTER)",
               fields=(Field("cx", "float", None), Field("cy", "float", None),
                       Field("cz", "float", None)), when=_is(*_G)),
        Prompt("radii", "RADII IN  X,Y,Z ( = STD. DEV.)",
               fields=(Field("sx", "float", None), Field("sy", "float", None),
                       Field("sz", "float", None)), when=_is(*_G)),
        *_random_and_sine_prompts("AMPLITUDE, SPATIAL FREQ. IN (X,Y,Z)",
                                  "amplitude, x, y and z frequency (whole numbers)"),
        Prompt("use_doc", "GET COORDINATES FROM DOCUMENT FILE (Y/N)", kind="yesno",
               default=False, when=_is("SP", "SPA")),
        Prompt("doc", "DOCUMENT FILE", kind="doc",
               when=lambda a: _is("SP", "SPA")(a) and bool(a.get("use_doc"))),
        Prompt("docsph", "NUMBER OF SPHERES, STARTING COL. FOR X,Y,Z",
               fields=(Field("nspheres", "int", 5, min=1), Field("column", "int", 1, min=1)),
               when=lambda a: _is("SP", "SPA")(a) and bool(a.get("use_doc"))),
        Prompt("offsets", "X, Y, & Z OFFSETS",
               fields=(Field("xoff", "float", 0.0), Field("yoff", "float", 0.0),
                       Field("zoff", "float", 0.0)),
               when=lambda a: _is("SP", "SPA")(a) and bool(a.get("use_doc"))),
        Prompt("density", "DENSITY INSIDE SPHERES (<CR> = 2.0)",
               fields=(Field("density", "float", 2.0),), when=_is("SP", "SPA")),
        Prompt("sphradii", "OUTER AND INNER RADII OF SPHERES",
               fields=(Field("rout", "float", None), Field("rin", "float", 0.0)),
               when=_is("SP", "SPA")),
        Prompt("centres", "CENTER COORDINATES X,Y,Z (or <CR> FOR IMAGE CENTER)", kind="text",
               repeat=True, terminator="0,0,0",
               when=lambda a: _is("SP", "SPA")(a) and _centres_open(a),
               help="one sphere centre per line; 0,0,0 ends the list"),
    ))


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
               and not U.inline_exists(a.get("dst"))),
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

OPERATIONS = [MO, MO3, CP, MS, FS, FI_H, FI_X, ST_H]
