"""Model images and volumes (test patterns): MO and MO 3.

Prompt texts and their order are SPIDER's own (as its results file echoes them), so a
SPIDER procedure answers them line for line; the pattern formulas are in
:mod:`emsh.kernels.models`. Centres are 1-based, as in SPIDER: the image centre is
(NX/2+1, NY/2+1[, NZ/2+1]).

Two prompts read a list of lines whose length the answers decide: ``MO``/``MO 3`` ``S``
asks NUMBER OF SINE WAVES and then exactly that many wave lines; ``MO 3`` ``SP``/``SPA``
reads sphere centres up to one of 0,0,0 (also written ``0 0 0``). Their ``when``
predicates see the lines read so far under the prompt's own name.
"""

from __future__ import annotations

import numpy as np

from emsh.ops import _util as U
from emsh.spec import Field, Operation, Prompt


def _is(*codes):
    return lambda a: str(a.get("pattern") or "").upper() in codes


def _waves_open(a) -> bool:
    """S: one wave line per wave of NUMBER OF SINE WAVES."""
    return len(a.get("waves") or []) < int(a.get("nwaves") or 0)


def _centres_open(a) -> bool:
    """SP/SPA centres are asked until an answer of 0,0,0 (however written)."""
    if a.get("use_doc"):
        return False
    got = a.get("centres") or []
    last = U.literal_values(got[-1]) if got else None
    return not (last is not None and len(last) >= 3 and not any(last[:3]))


def _wave_lines(ctx, lines, width: int) -> list[list[float]]:
    """The numbers of each wave line, padded with zeros (or cut) to ``width``."""
    rows = []
    for line in lines or []:
        v = U.values_of(ctx, line)
        rows.append((v + [0.0] * width)[:width])
    return rows


def _round_away(v: float) -> int:
    return int(v + 0.5) if v >= 0 else int(v - 0.5)


def _order(pattern: str) -> tuple[int, bool]:
    """(order, area-normalised) of a G/G1/G2/G3 pattern."""
    return (int(pattern[1]) if len(pattern) > 1 else 1), len(pattern) == 1


# ----------------------------------------------------------------------------- MO

def mo(ctx, dst, nx, ny, pattern, background, radius, cx, cy, sx, sy, gaussian, mean, sd,
       nwaves, waves):
    """MO: model image (formulas of SPIDER's ``model.f``; 1-based pixel coordinates)."""
    from emsh.kernels import models as K

    p = pattern.upper()
    if p == "B":
        img = K.blank((ny, nx), background)
    elif p == "C":
        img = K.disc(nx, ny, radius)
    elif p == "W":
        img = K.wedge_2d(nx, ny)
    elif p.startswith("G"):
        ctx.check(sx > 0 and sy > 0, "RADII MUST BE > 0", "CHARACTARISTIC RADII IN X & Y")
        dx = nx // 2 + 1 if cx is None else cx
        dy = ny // 2 + 1 if cy is None else cy
        order, plain = _order(p)
        img = K.gaussian((ny, nx), (dx, dy), (sx, sy), order, plain)
        ctx.log(f"  CENTER: ({dx:g}, {dy:g})    STD: {sx:g}, {sy:g}")
    elif p == "R":
        img = K.random_pattern((ny, nx), ctx.rng, gaussian, mean, sd)
    else:  # T, S: amplitude, phase (degrees), frequencies rounded to whole periods
        rows = [[1.0, 0.0, 2, 2]] if p == "T" else _wave_lines(ctx, waves, 4)
        img = K.sine_waves((ny, nx), [(a, np.deg2rad(ph), (_round_away(fx), _round_away(fy)))
                                      for a, ph, fx, fy in rows])
    U.write_one(ctx, dst, img)


# ----------------------------------------------------------------------------- MO 3

def _sphere_items(ctx, shape, centres, use_doc, doc, nspheres, column, xoff, yoff, zoff, rout,
                  rin):
    """(centre, outer, inner) of every sphere, from the doc file or the centre lines."""
    nz, ny, nx = shape
    rout = float(min(nx, ny, nz) // 2 - 5) if rout is None else rout
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
            c = v[:3] + middle[len(v[:3]):]   # a short answer: the volume centre for the rest
            if not any(c):
                break
            rows.append((c, rout, rin))
    return [((cx + xoff, cy + yoff, cz + zoff), ro, ri) for (cx, cy, cz), ro, ri in rows]


def mo3(ctx, dst, nx, ny, nz, pattern, value, cx, cy, cz, sx, sy, sz, gaussian, mean, sd,
        nwaves, waves, use_doc, doc, nspheres, column, xoff, yoff, zoff, density, rout, rin,
        centres):
    """MO 3: model volume (formulas of SPIDER's ``model3.f``; 1-based voxel coordinates)."""
    from emsh.kernels import models as K

    p = pattern.upper()
    shape = (nz, ny, nx)
    if p == "B":
        vol = K.blank(shape, value)
    elif p.startswith("G"):
        c = [nx // 2 + 1 if cx is None else cx, ny // 2 + 1 if cy is None else cy,
             nz // 2 + 1 if cz is None else cz]
        s = [nx // 2 - 1 if sx is None else sx, ny // 2 - 1 if sy is None else sy,
             nz // 2 - 1 if sz is None else sz]
        ctx.check(min(s) > 0, "RADII MUST BE > 0", "RADII IN  X,Y,Z ( = STD. DEV.)")
        order, plain = _order(p)
        vol = K.gaussian(shape, c, s, order, plain)
        ctx.log(f"  CENTER: {c[0]:g}, {c[1]:g}, {c[2]:g}  RADII: {s[0]:g}, {s[1]:g}, {s[2]:g}")
    elif p == "W":
        vol = K.wedge_3d(nx, ny, nz)
    elif p == "R":
        vol = K.random_pattern(shape, ctx.rng, gaussian, mean, sd)
    elif p in ("SP", "SPA"):
        items = _sphere_items(ctx, shape, centres, use_doc, doc, nspheres, column, xoff, yoff,
                              zoff, rout, rin)
        for n, (centre, ro, _) in enumerate(items, 1):
            ctx.log(f"{n:4d}" + "".join(f"{c:12.6f}" for c in centre))
            if K.sphere_truncated(centre, ro, shape):
                ctx.log(f" *** SPHERE {n:3d} WILL BE TRUNCATED")
        vol = K.spheres(shape, items, density or 2.0, add=p == "SPA")
    else:  # T, S: S scales the amplitudes to add up to 2; frequencies truncated
        rows = [[1.0, 2, 2, 2]] if p == "T" else _wave_lines(ctx, waves, 4)
        total = sum(r[0] for r in rows) if p == "S" else 1.0
        ctx.check(total != 0, "the amplitudes add up to 0", "AMPLITUDE, SPATIAL FREQ. IN (X,Y,Z)")
        scale = 2.0 / total if p == "S" else 1.0
        vol = K.sine_waves(shape, [(a * scale, 0.0, tuple(int(f) for f in fr))
                                   for a, *fr in rows])
    U.write_one(ctx, dst, vol)


# ----------------------------------------------------------------------------- specifications

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
            "sine waves (NUMBER OF SINE WAVES, then one line per wave), T the test pattern "
            "sin(2π(2x/NX+2y/NY)), W wedge (i+j)·2/(NX+NY). Centres are 1-based; the image "
            "centre is (NX/2+1, NY/2+1).")
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
               help="one sphere centre per line; 0,0,0 (or 0 0 0) ends the list"),
    ))

OPERATIONS = [MO, MO3]
