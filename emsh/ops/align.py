"""Multi-reference alignment, selection and averaging: AP SH, AP REF, VO MQ, AS R.

Thin operation specs over :func:`emsh.kernels.align2d.multiref_align` (rotation, shift
and mirror search against a gallery of references) and plain averaging. Prompt texts and
their order are SPIDER's (as its results file echoes them), so SPIDER procedures answer
them line for line.

Alignment docs hold SPIDER's 15 registers per image (key = image number): 1-3 psi,
theta, phi of the best reference (``(-psi, 180 + theta, phi)`` when it matched
mirrored), 4 reference number, 5 image number, 6-8 cumulative rotation and shifts for
``RT SQ`` (registers ``6,0,7,8``), 9 references searched, 10 angular change from the
previous direction (-1 without one), 11 correlation, 12-14 this pass's rotation and
shifts, 15 the mirror flag (``AP SH``: +-1; ``AP REF``: +-|cc|). emsh writes its own
normalised correlation (-1..1) in register 11 where SPIDER writes an unnormalised sum,
so thresholds on it (``VO MQ``) are on another scale. Values under 0.05 in magnitude
in registers 6-8, 10 and 12-14 are written as 0, as SPIDER does. The doc uses SPIDER's
fixed-decimal layout, with SPIDER's statistics comment key (-2) at the end, and is
appended to when it exists.

Parallel runs (``mpiexec``): ``AP SH`` and ``AP REF`` split the experimental images over
the ranks (every rank prepares the references), gather the registers on rank 0, which
alone writes the doc; the result equals the serial one up to float32 rounding (the FFT
batches differ per rank).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from emsh.ops import _util as U
from emsh.spec import Field, Operation, Prompt

_NUMBERS = "FILE NUMBERS OR SELECTION DOC. FILE NAME"
_BLOCK = 2048            # experimental images per rank per pass (bounds memory)
_TINY = 0.05             # SPIDER writes smaller rotations, shifts and angle changes as 0
_HEADING = (" ;  KEY       PSI,    THE,    PHI,   REF#,    EXP#,  CUM.{ROT,   SX,    SY},"
            "  NPROJ,   DIFF,      CCROT,    ROT,     SX,     SY,   MIR-CC")
_STATS_SH = (" ;         %BIG-ANGDIF,   AVG-ANGDIF,      AVG-CCR,      %WORSE,     AVG-WORSE,"
             "   AVG-BETTER,    #PARTICLES")
_STATS_REF = (" ;              UNUSED,        UNUSED,         AVG-CC,    UNUSED,         UNUSED,"
              "       UNUSED,   #PARTICLES")


# ----------------------------------------------------------------------------- helpers

def _series(ctx, answer: str, numbers) -> tuple[str, list[int]]:
    """``(template, numbers)`` naming every image; a single image names itself."""
    tmpl, nums = U.image_series(ctx, answer, numbers)
    return (answer if tmpl is None else tmpl), nums


def _read(ctx, tmpl: str, nums, what: str) -> np.ndarray:
    if U.parse(tmpl).many:
        imgs = U.read_batch(ctx, tmpl, list(nums))[0]
    else:
        imgs = U.read_one(ctx, tmpl)[None]
    ctx.check(imgs.ndim == 3 and not np.iscomplexobj(imgs),
              f"{tmpl}: expected real 2-D images", what)
    return imgs


def _doc(ctx, path):
    from emsh.io.docfile import read_doc

    return read_doc(U.resolve(ctx, path))


def _directions(ang: np.ndarray) -> np.ndarray:
    """Unit projection directions of (psi, theta, phi) rows (degrees)."""
    t, p = np.deg2rad(ang[:, 1]), np.deg2rad(ang[:, 2])
    return np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1)


def _new_or_append(ctx, path: str, lines: list[str]) -> None:
    """Write ``lines`` to a doc: a new file under SPIDER's header line, or appended."""
    from datetime import datetime

    from emsh.io._atomic import atomic_open
    from emsh.io.docfile import format_header_line

    p = Path(path)
    if p.exists():
        old = p.read_text(encoding="utf-8", errors="replace")
        head = old if old.endswith("\n") or not old else old + "\n"
    else:
        dat = ctx.session.data_ext or p.suffix[1:] or "dat"
        head = format_header_line(ctx.session.project_ext, dat, path, datetime.now()) + "\n"
    with atomic_open(path, "w", overwrite=True, encoding="utf-8", newline="\n") as fh:
        fh.write(head + "".join(ln + "\n" for ln in lines))


def _ap_line(key: int, regs) -> str:
    """One alignment-doc line in SPIDER's fixed layout (``I7,1X,I2,...,2X,F7.4``)."""
    v = [float(x) for x in np.asarray(regs, dtype=np.float32).tolist()]
    return (f"{key:7d} {15:2d} {v[0]:7.2f} {v[1]:7.2f} {v[2]:7.2f}  {v[3]:#6.0f}  {v[4]:#7.0f}"
            f"  {v[5]:7.2f} {v[6]:7.2f} {v[7]:7.2f}  {v[8]:#6.0f} {v[9]:7.2f} {v[10]:11.6f}"
            f" {v[11]:7.2f} {v[12]:7.2f} {v[13]:7.2f}  {v[14]:7.4f}")


# ----------------------------------------------------------------------------- AP SH, AP REF

class _Previous:
    """What a previous alignment doc gives per image: direction (registers 1-3), RT SQ
    parameters (6-8) and CC (11); ``has_*`` say which the doc holds."""

    def __init__(self, ctx, doc, nums):
        n = len(nums)
        rows = np.zeros((n, 15))
        n_cols = 0
        if doc is not None:
            d = _doc(ctx, doc)
            n_cols = d.n_cols
            ctx.check(n_cols >= 3, f"{doc}: an alignment doc needs psi, theta, phi in "
                      "registers 1-3", "EXPERIMENTAL IMAGES ALIGNMENT DOCUMENT FILE")
            for i, k in enumerate(nums):
                r = d.get(int(k))[:15]                  # UsageError names a missing key
                rows[i, :r.size] = r
        self.angles, self.rtsq, self.cc = rows[:, :3], rows[:, 5:8], rows[:, 10]
        self.has_angles, self.has_rtsq, self.has_cc = n_cols >= 3, n_cols >= 8, n_cols >= 11


def _ref_angles(ctx, doc, ref_nums) -> np.ndarray | None:
    if doc is None:
        return None
    d = _doc(ctx, doc)
    out = np.zeros((len(ref_nums), 3))
    for i, k in enumerate(ref_nums):
        row = d.get(int(k))
        ctx.check(row.size >= 3, f"{doc}: key {int(k)} does not hold psi, theta, phi",
                  "REFERENCE IMAGES ANGLES DOCUMENT FILE")
        out[i] = row[:3]
    return out


def _shift_ranges(a, b, c) -> tuple[int, int, int]:
    """AP SH's ``range[, range y], step`` answer: two values are range and step."""
    if b is None:
        return int(a), int(a), 1
    if c is None:
        return int(a), int(a), int(b)
    return int(a), int(b), int(c)


def _align_block(imgs, prep, kw, prev: _Previous, sel, rotfirst, allowed):
    """Kernel call on one block; the result in SPIDER's cumulative convention."""
    from emsh.kernels.align2d import compose_alignment, multiref_align

    n = len(imgs)
    no_mirror = np.zeros(n, bool)
    if prev.has_rtsq and rotfirst:
        kw = dict(kw, previous=(prev.rtsq[sel, 0], prev.rtsq[sel, 1:3], no_mirror))
    r = multiref_align(imgs, prep, allowed=allowed, **kw)
    if prev.has_rtsq and not rotfirst:          # the images were aligned before ('dala')
        a, s, m = compose_alignment((prev.rtsq[sel, 0], prev.rtsq[sel, 1:3], no_mirror),
                                    (r.angle, r.shift, r.mirror))
        r = replace(r, angle=a, shift=s, mirror=m)
    return r


def _registers(r, ref_ang, ref_nums, nums, prev: _Previous, sel, peak_is_cc: bool):
    """The 15 registers of aligned images (SPIDER's rounding of tiny values included)."""
    from emsh.kernels.align2d import to_spider_apsh

    angles = ref_ang if ref_ang is not None else np.zeros((len(ref_nums), 3))
    change = np.full(len(r), -1.0)
    if ref_ang is not None and prev.has_angles:
        dot = np.abs(np.sum(_directions(prev.angles[sel]) * _directions(ref_ang[r.ref]), -1))
        change = np.degrees(np.arccos(np.minimum(1.0, dot)))
    regs = to_spider_apsh(r, angles, image_numbers=nums, ref_numbers=ref_nums,
                          angle_change=change)
    if ref_ang is None:
        regs[:, :3] = prev.angles[sel] if prev.has_angles else 0.0
    regs[:, 14] = np.where(r.mirror, -1.0, 1.0) * (np.abs(r.cc) if peak_is_cc else 1.0)
    return regs


def _no_match(nums, prev: _Previous, sel) -> np.ndarray:
    """Registers of images with no reference within the angular range (reference 0)."""
    regs = np.zeros((len(nums), 15))
    regs[:, :3] = prev.angles[sel]
    regs[:, 4] = nums
    regs[:, 5:8] = prev.rtsq[sel] if prev.has_rtsq else 0.0
    regs[:, 10] = -1.0
    return regs


def _tidy(regs: np.ndarray) -> np.ndarray:
    for j in (5, 6, 7, 9, 11, 12, 13):
        regs[np.abs(regs[:, j]) < _TINY, j] = 0.0
    for j in (5, 11):                  # SPIDER lists ~360 as 0
        regs[np.abs(regs[:, j] - 360.0) <= _TINY, j] = 0.0
    return regs


def _stats(regs, prev: _Previous, threshold: float, kind: str) -> list[float]:
    """SPIDER's closing statistics (comment key -2)."""
    n = len(regs)
    if kind == "REF":
        return [0.0, 0.0, float(np.abs(regs[:, 14]).mean()), 0.0, 0.0, 0.0, float(n)]
    out = [0.0, 0.0, float(regs[:, 10].mean()), 0.0, 0.0, 0.0, float(n)]
    if prev.has_cc:
        dif = regs[:, 10] - prev.cc
        worse = dif < 0
        out[0] = 100.0 * np.count_nonzero(regs[:, 9] > threshold) / n if threshold > 0 else 0.0
        out[1] = float(regs[:, 9].mean())
        out[3] = 100.0 * np.count_nonzero(worse) / n
        out[4] = float(-dif[worse].mean()) if worse.any() else 0.0
        out[5] = float(dif[~worse].mean()) if (~worse).any() else 0.0
    return out


def _align_op(ctx, kind, refs, ref_numbers, rx, ry, step, first, last, ring_step, angles,
              exp, exp_numbers, previous, arange, athresh, mirror, rotfirst, dst):
    """AP SH (``kind='SH'``) and AP REF (``'REF'``): align, gather, write the doc."""
    from emsh.kernels.polar import RingTable, prepare_references

    ref_t, ref_nums = _series(ctx, refs, ref_numbers)
    ctx.check(len(ref_nums) > 0, "the list of reference numbers is empty", _NUMBERS)
    gallery = _read(ctx, ref_t, ref_nums, "TEMPLATE FOR REFERENCE IMAGES")
    ny, nx = gallery.shape[-2:]
    ctx.log(f"  Number of reference images: {len(ref_nums):7d}")
    exp_t, nums = _series(ctx, exp, exp_numbers)
    ctx.check(len(nums) > 0, "the list of image numbers is empty", _NUMBERS)
    ctx.log(f"  Number of experimental images: {len(nums):7d}")
    ctx.check(1 <= first <= last, f"rings {first}..{last}: expected 1 <= first <= last",
              "FIRST, LAST RING, RING STEP & RAY STEP")
    if kind == "SH":
        ctx.check(step >= 1 and rx % step == 0 and ry % step == 0,
                  f"shift range {rx},{ry} must be divisible by the step {step}",
                  "TRANSLATION SEARCH RANGE IN X, IN Y (OPTIONAL), STEP SIZE")
        for rng, n, ax in ((rx, nx, "X"), (ry, ny, "Y")):
            ctx.check(last + rng < n // 2 - 1,
                      f"LAST RING + {ax} TRANSLATION MUST BE LESS THAN N{ax}/2-1 "
                      f"({last} + {rng} >= {n // 2 - 1} for N{ax} = {n})",
                      "FIRST, LAST RING, RING STEP & RAY STEP")
    ref_ang = _ref_angles(ctx, angles, ref_nums)
    prev = _Previous(ctx, previous, nums)
    allowed = None
    if arange > 0:
        ctx.check(ref_ang is not None and prev.has_angles, "a restricted projection search "
                  "(range > 0) needs the reference angles doc and the previous alignment doc",
                  "RANGE OF PROJECTION ANGLE SEARCH & ANGLE CHANGE THRESHOLD")
        dot = _directions(prev.angles) @ _directions(ref_ang).T
        allowed = (np.abs(dot) if mirror else dot) >= math.cos(math.radians(arange)) - 1e-6
    ctx.log(f"  Shift search X range: {-rx:8d} ...{rx:3d}     Y range: {-ry:3d}...{ry:3d}"
            f"    Step size: {step:2d}")
    ctx.log(f"  Ring search radius range: {first:4d} ...{last:4d}    Skip increment: "
            f"{ring_step:2d}")
    if prev.has_rtsq and rotfirst:
        ctx.log("  ALIGNING INPUT IMAGES WITH QUAD INTERPOLATION")
    prep = prepare_references(gallery, RingTable(first, last, ring_step), mirror)
    kw = dict(first_ring=first, last_ring=last, ring_step=ring_step, mirror=mirror,
              shift_range=(rx, ry), shift_step=step, shift_after_rotation=kind == "REF")
    mine = ctx.comm.my_slice(len(nums))
    parts = []
    for s in range(mine.start, mine.stop, _BLOCK):
        sel = np.arange(s, min(s + _BLOCK, mine.stop))
        bnums = np.asarray(nums)[sel]
        imgs = _read(ctx, exp_t, bnums.tolist(), "TEMPLATE FOR IMAGE SERIES TO BE ALIGNED")
        ctx.check(imgs.shape[-2:] == (ny, nx), f"{exp_t}: images are {imgs.shape[-1]}x"
                  f"{imgs.shape[-2]}, references {nx}x{ny}", "TEMPLATE FOR IMAGE SERIES")
        regs = np.zeros((len(sel), 15))
        ok = np.ones(len(sel), bool) if allowed is None else allowed[sel].any(1)
        if ok.any():
            r = _align_block(imgs[ok], prep, kw, prev, sel[ok], rotfirst,
                             None if allowed is None else allowed[sel[ok]])
            regs[ok] = _registers(r, ref_ang, ref_nums, bnums[ok], prev, sel[ok], kind == "REF")
        if not ok.all():
            regs[~ok] = _no_match(bnums[~ok], prev, sel[~ok])
        parts.append(_tidy(regs))
    gathered = ctx.comm.gather(np.concatenate(parts) if parts else np.zeros((0, 15)))
    if not ctx.is_root:
        return None
    regs = np.concatenate(gathered)
    if dst is not None:
        lines = [_HEADING] + [_ap_line(int(n), row) for n, row in zip(nums, regs)]
        from emsh.io.docfile import format_comment_key

        lines += [_STATS_SH if kind == "SH" else _STATS_REF,
                  format_comment_key(2, _stats(regs, prev, athresh, kind))]
        _new_or_append(ctx, dst, lines)
    ctx.log(" ------------ END OF COMPUTATION ------------")
    return tuple(float(v) for v in np.float32(regs[-1]))


def ap_sh(ctx, refs, ref_numbers, shift_a, shift_b, shift_c, first, last, ring_step,
          ray_step, angles, exp, exp_numbers, previous, arange, athresh, mirror, rotfirst,
          dst):
    """AP SH: exhaustive multi-reference rotation, shift and mirror search."""
    rx, ry, step = _shift_ranges(shift_a, shift_b, shift_c)
    return _align_op(ctx, "SH", refs, ref_numbers, rx, ry, step, first, last, ring_step,
                     angles, exp, exp_numbers, previous, arange, athresh, mirror, rotfirst,
                     dst)


def ap_ref(ctx, refs, ref_numbers, shift, first, last, ring_step, ray_step, angles, ring_file,
           exp, exp_numbers, previous, arange, athresh, mirror, rotfirst, dst):
    """AP REF: rotation and reference on unshifted rings, then the shift by CCF."""
    return _align_op(ctx, "REF", refs, ref_numbers, shift, shift, 1, first, last, ring_step,
                     angles, exp, exp_numbers, previous, arange, athresh, mirror, rotfirst,
                     dst)


def _op_registers(a) -> bool:
    """True when the operation line names output registers (``AP REF [psi],...``)."""
    return bool(getattr(a, "registers", ()) or ())


def _tmpl(name):
    return lambda a: U.is_template(a.get(name))


def _ap_prompts(shift: Prompt, rings: tuple[Prompt, ...], register_form: bool):
    return (
        Prompt("refs", "TEMPLATE FOR REFERENCE IMAGES", kind="template",
               help="refs@** with a list, or a whole stack refs@"),
        Prompt("ref_numbers", _NUMBERS, kind="numbers", when=_tmpl("refs")),
        shift,
        Prompt("rings", "FIRST, LAST RING, RING STEP & RAY STEP", fields=(
            Field("first", "int", min=1), Field("last", "int", min=1),
            Field("ring_step", "int", 1, min=1),
            Field("ray_step", "int", 1, min=1, help="accepted; every ray is used"))),
        Prompt("angles", "REFERENCE IMAGES ANGLES DOCUMENT FILE", kind="doc", optional=True,
               help="psi, theta, phi of each reference (key = reference number), or *"),
        *rings,
        Prompt("exp", "TEMPLATE FOR IMAGE SERIES TO BE ALIGNED", kind="template"),
        Prompt("exp_numbers", _NUMBERS, kind="numbers", when=_tmpl("exp")),
        Prompt("previous", "EXPERIMENTAL IMAGES ALIGNMENT DOCUMENT FILE", kind="doc",
               optional=True, help="an earlier AP SH/AP REF doc, or *"),
        Prompt("search", "RANGE OF PROJECTION ANGLE SEARCH & ANGLE CHANGE THRESHOLD",
               fields=(Field("arange", "float", 0.0, min=0.0,
                             help="degrees around the previous direction; 0 = all"),
                       Field("athresh", "float", 0.0, help="only reported"))),
        Prompt("mirror", "CHECK MIRRORED POSITIONS?, SHIFT/ROTATE INPUT? (Y/N)", fields=(
            Field("mirror", "yesno"),
            Field("rotfirst", "yesno", False,
                  help="apply the previous rotation/shifts (RT SQ) before the search"))),
        Prompt("dst", "OUTPUT ALIGNMENT DOCUMENT FILE", kind="doc_out",
               when=(lambda a: not _op_registers(a)) if register_form else None,
               help="appended to when it exists"),
    )


_AP_HELP = (
    "Rings are sampled around the image centre (NX/2+1) at every candidate shift; ring "
    "FFTs and one complex matrix product per angular frequency give the correlation "
    "against rotation for every reference, straight and mirrored; the best shift and "
    "angle are refined to sub-pixel and sub-sample precision. With a previous doc, the "
    "images are first rotated and shifted by its registers 6-8 (second answer Y), or "
    "taken as already aligned (N); either way registers 6-8 are the cumulative RT SQ "
    "parameters (the previous mirror flag is not applied: its direction carries it). "
    "A range > 0 searches only references whose direction is within that many degrees "
    "of the previous one (or of its mirror, when mirrors are checked); an image with "
    "none gets reference 0 and keeps its previous parameters.")

AP_SH = Operation(
    "AP SH", "Multi-reference alignment: exhaustive rotation, shift and mirror search",
    impl=ap_sh, mpi="all", outputs=tuple(f"r{i}" for i in range(1, 16)),
    see_also=("AP REF", "VO MQ", "RT SQ", "AS R"),
    help=_AP_HELP + (" Shifts are searched on the grid -range..range in steps of the step "
                     "size (range divisible by step; last ring + range < NX/2 - 1). "
                     "Registers on the operation line receive the last image's values."),
    prompts=_ap_prompts(
        Prompt("shift", "TRANSLATION SEARCH RANGE IN X, IN Y (OPTIONAL), STEP SIZE", fields=(
            Field("shift_a", "int", min=0, help="range in x (pixels)"),
            Field("shift_b", "int", None, min=0, help="range in y, or the step if last"),
            Field("shift_c", "int", None, min=1, help="step"))),
        (), register_form=False))

AP_REF = Operation(
    "AP REF", "Multi-reference alignment: rotation first, then shift (pre-centred data)",
    impl=ap_ref, mpi="all", outputs=tuple(f"r{i}" for i in range(1, 16)),
    see_also=("AP SH", "VO MQ", "RT SQ"),
    help=_AP_HELP + (" AP REF chooses the reference and rotation on the unshifted rings "
                     "and then finds the shift (within the range) by cross-correlation "
                     "with the chosen reference, so it suits images off-centre by a pixel "
                     "or two. With registers on the operation line (AP REF [psi],...,[cc]) "
                     "no doc is asked or written: the registers get the last image's "
                     "values. The reference-rings file is asked for SPIDER's sake; emsh "
                     "keeps the rings in memory and neither reads nor writes it. Register "
                     "15 is the mirror sign times |cc|."),
    prompts=_ap_prompts(
        Prompt("shift", "TRANSLATION SEARCH RANGE (ZERO FOR NONE)",
               fields=(Field("shift", "int", min=0),)),
        (Prompt("ring_file", "REFERENCE-RINGS FILE", kind="file_out", optional=True),),
        register_form=True))


# ----------------------------------------------------------------------------- VO MQ

def vo_mq(ctx, threshold, doc, n_refs, template, summary):
    """VO MQ: one selection doc per reference (image, CC, mirror) and a summary doc."""
    from datetime import datetime

    from emsh.io.docfile import write_doc

    d = _doc(ctx, doc)
    ctx.log(f"  Doc file has:{d.n_cols}  registers and:{d.n_lines} keys,  Highest key in "
            f"use:{d.max_key}")
    keys = sorted(set(d.keys.tolist()))
    table = np.zeros((len(keys), 4))                 # ref, cc, image, mirror sign
    for i, k in enumerate(keys):
        r = np.zeros(16)
        row = d.get(k)
        r[1:row.size + 1] = row
        if row.size >= 11:                            # AP SH / AP REF layout
            table[i] = abs(r[4]), r[11], r[5], r[15] if row.size >= 15 else 0.0
        else:                                         # legacy AP MQ layout
            table[i] = abs(r[1]), r[2], r[6], r[1]
    when = datetime.now()
    ext = dict(project_ext=ctx.session.project_ext, data_ext=ctx.session.data_ext or None,
               overwrite=True, when=when)
    tmpl = U.parse(template)
    ctx.check(tmpl.template, f"{template}: expected a template with asterisks (sel_ref***)",
              "TEMPLATE FOR REFERENCE SELECTION DOC FILES")
    counts = []
    ctx.log("  Reference number    No. of images")
    for ref in range(1, n_refs + 1):
        hit = (table[:, 0] == ref) & (table[:, 1] > threshold)
        rows = np.stack([table[hit, 2], table[hit, 1], np.where(table[hit, 3] < 0, -1.0, 1.0)],
                        1)
        write_doc(tmpl.member(ref), np.arange(1, len(rows) + 1), rows.reshape(-1, 3),
                  comments=[f"  MATCHES FOR REFERENCE:{ref:6d}",
                            "Key   EXP IMAGE         CC     <0 IS MIRRORED"], **ext)
        counts.append(len(rows))
        ctx.log(f" {ref:6d}        {len(rows):8d}")
    write_doc(summary, np.arange(1, n_refs + 1), np.asarray(counts, float)[:, None],
              comments=["Ref.  # OF IMAGES"], **ext)
    ctx.log(f"  Total number of images above CCC threshold: {sum(counts):9d}")
    return sum(counts)


VO_MQ = Operation(
    "VO MQ", "Selection docs per reference from an alignment doc", impl=vo_mq,
    outputs=("total",), see_also=("AP SH", "AP REF", "AS R"),
    help=("For reference k = 1..N, writes the doc template's file k with one line per "
          "image assigned to k whose correlation (register 11) is above the threshold: "
          "image number, correlation, +1 or -1 (mirrored). A reference with no images "
          "gets a doc with only its comment lines. The summary doc holds the count per "
          "reference (key = reference number). Outputs are replaced. Keys are read in "
          "ascending order, the last line of a repeated key counting."),
    prompts=(
        Prompt("threshold", "CCC THRESHOLD", fields=(Field("threshold", "float", 0.0),)),
        Prompt("doc", "ALIGNMENT DOC FILE FILE", kind="doc"),
        Prompt("n_refs", "NUMBER OF REFERENCES USED IN ALIGNMENT",
               fields=(Field("n_refs", "int", min=1, max=10_000_000),)),
        Prompt("template", "TEMPLATE FOR REFERENCE SELECTION DOC FILES", kind="template"),
        Prompt("summary", "REFERENCE SUMMARY OUTPUT FILE", kind="doc_out"),
    ))


# ----------------------------------------------------------------------------- AS R

def _mean_var(ctx, tmpl: str, nums: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mean and variance (N-1) over a series, read and merged in chunks."""
    n_tot, mean, m2 = 0, None, None
    for s in range(0, len(nums), 256):
        x = _read(ctx, tmpl, nums[s:s + 256], "INPUT FILE TEMPLATE").astype(np.float64)
        nb, mb = x.shape[0], x.mean(axis=0)
        sb = ((x - mb) ** 2).sum(axis=0)
        if mean is None:
            n_tot, mean, m2 = nb, mb, sb
            continue
        ctx.check(mb.shape == mean.shape, f"{tmpl}: the images differ in size",
                  "INPUT FILE TEMPLATE")
        d = mb - mean
        tot = n_tot + nb
        mean = mean + d * (nb / tot)
        m2 = m2 + sb + d * d * (n_tot * nb / tot)
        n_tot = tot
    var = m2 / (n_tot - 1) if n_tot > 1 else np.zeros_like(m2)
    return mean.astype(np.float32), var.astype(np.float32)


def as_r(ctx, src, numbers, mode, avg, var, avg_odd, var_odd, avg_even, var_even):
    """AS R: average and per-pixel variance (N-1) of all, or of odd and even, images."""
    tmpl, nums = _series(ctx, src, numbers)
    if mode == "A":
        groups = [("", nums, avg, var)]
    else:
        groups = [("ODD", nums[0::2], avg_odd, var_odd), ("EVEN", nums[1::2], avg_even,
                                                           var_even)]
    for label, sel, a_out, v_out in groups:
        ctx.check(len(sel) > 0, f"no {label.lower() or 'input'} images in the list", _NUMBERS)
        if label:
            ctx.log(f"  FOR {label}-NUMBERED IMAGES")
        mean, variance = _mean_var(ctx, tmpl, sel)
        U.write_one(ctx, a_out, mean)
        if v_out is not None:
            U.write_one(ctx, v_out, variance)
        v64 = variance.astype(np.float64)
        ctx.log(f"  VARIANCE COMPUTATION FOR: {len(sel):6d} IMAGES     CONTAINING: "
                f"{mean.size} ELEMENTS")
        ctx.log(f"   AVERAGE:         {mean.mean(dtype=np.float64):.5E}")
        ctx.log(f"   TOTAL VARIANCE: {v64.sum():9.5g}      TOTAL S.D.: "
                f"{math.sqrt(v64.sum()):9.5g}")
        ctx.log(f"   P.P.  VARIANCE:  {v64.mean():.5E}  P.P.  S.D.: {math.sqrt(v64.mean()):9.5g}")
        ctx.log(f"   AVERAGE OFFSET:  {mean.mean(dtype=np.float64):.5E}")
        ctx.log(f"   VARIANCE OF AVERAGE IMAGE:  "
                f"{np.mean(mean.astype(np.float64) ** 2):.5E}")


def _odd(a) -> bool:
    return str(a.get("mode") or "").upper() == "O"


AS_R = Operation(
    "AS R", "Average and variance of an image series (all, or odd and even)", impl=as_r,
    see_also=("AP SH", "VO MQ"),
    help=("The average is the plain per-pixel mean; the variance is the per-pixel "
          "variance with N-1 (0 for one image). O averages the images at odd positions "
          "of the list (1st, 3rd, ...) and those at even positions separately. Inputs: a "
          "template with a list or selection doc (stk@***, img***), or a whole stack. A "
          "variance file answered * is not written. Sums run in float64, in chunks."),
    prompts=(
        Prompt("src", "INPUT FILE TEMPLATE (E.G. PIC****)", kind="template"),
        Prompt("numbers", _NUMBERS, kind="numbers", when=_tmpl("src")),
        Prompt("mode", "ALL, or ODD-EVEN FILES (A/O)", kind="choice", choices=("A", "O")),
        Prompt("avg", "AVERAGE FILE", kind="image_out", when=lambda a: not _odd(a)),
        Prompt("var", "VARIANCE FILE", kind="image_out", optional=True,
               when=lambda a: not _odd(a)),
        Prompt("avg_odd", "AVERAGE  FILE FOR ODD-NUMBERED  IMAGES", kind="image_out",
               when=_odd),
        Prompt("var_odd", "VARIANCE FILE FOR ODD-NUMBERED  IMAGES", kind="image_out",
               optional=True, when=_odd),
        Prompt("avg_even", "AVERAGE  FILE FOR EVEN-NUMBERED IMAGES", kind="image_out",
               when=_odd),
        Prompt("var_even", "VARIANCE FILE FOR EVEN-NUMBERED IMAGES", kind="image_out",
               optional=True, when=_odd),
    ))

OPERATIONS = [AP_SH, AP_REF, VO_MQ, AS_R]
