"""Implementations of DG SELECT, DG VIEWS and DG PLOT FSC (specifications: spec_plot).

All three run on rank 0 only (``mpi="root"``: the interpreter broadcasts their
registers); they read docs, count, and write docs and PNG plots. Every input is read
and checked before the first output is written, so a missing alignment or selection
doc leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emsh.errors import UsageError
from emsh.ops import _util as U

from . import plots
from .select import read_alignment, select_at_least, select_best
from .views import count_views

_SEL_HEADING = "    MEMBER          CC"
_VIEW_HEADING = "     PARTICLES       THETA         PHI    STRAIGHT    MIRRORED"
_ALIGN = "ALIGNMENT DOC TEMPLATE"


def _template(ctx, answer: str, prompt: str):
    ref = U.parse(answer)
    ctx.check(ref.template, f"{answer}: expected a template with asterisks for the group "
              "number (e.g. Alignment/align_01_***)", prompt)
    return ref


def _group_list(ctx, groups) -> list[int]:
    nums = U.numbers(ctx, groups)
    ctx.check(len(nums) > 0, "the list of group numbers is empty", "GROUP NUMBERS")
    ctx.check(len(set(nums)) == len(nums), "a group number is listed twice", "GROUP NUMBERS")
    return nums


def _existing(ctx, tmpl, nums, what: str, prompt: str) -> dict[int, str]:
    """``{group: path}``; one error naming every missing file before anything is read."""
    paths = {g: U.resolve(ctx, tmpl.member(g)) for g in nums}
    missing = [p for p in paths.values() if not Path(p).is_file()]
    if missing:
        more = f" ({len(missing)} of {len(paths)} missing)" if len(missing) > 1 else ""
        ctx.check(False, f"{missing[0]}: {what} not found{more}; nothing was written", prompt)
    return paths


def _alignments(ctx, align, groups) -> tuple[list[int], dict]:
    tmpl = _template(ctx, align, _ALIGN)
    nums = _group_list(ctx, groups)
    paths = _existing(ctx, tmpl, nums, "alignment doc", _ALIGN)
    return nums, {g: read_alignment(paths[g]) for g in nums}


# ----------------------------------------------------------------------------- DG SELECT
def dg_select(ctx, align, groups, fraction, out, png):
    """DG SELECT: per-group correlation selection docs and a histogram PNG."""
    from emsh.io.docfile import write_doc

    ctx.check(fraction != 0 and fraction <= 1.0, f"{fraction:g}: give a keep fraction in "
              "(0, 1] or a negative answer -t to keep CC >= t",
              "KEEP FRACTION (0-1) OR -CC THRESHOLD")
    out_t = _template(ctx, out, "OUTPUT SELECTION DOC TEMPLATE")
    nums, docs = _alignments(ctx, align, groups)
    by_fraction = fraction > 0
    masks, thresholds = {}, {}
    for g in nums:
        a = docs[g]
        if by_fraction:
            masks[g], thresholds[g] = select_best(a.cc, a.member, fraction)
        else:
            masks[g], thresholds[g] = select_at_least(a.cc, -fraction), -fraction
    kept = {g: int(masks[g].sum()) for g in nums}
    inputs = {Path(U.resolve(ctx, U.parse(align).member(g))).resolve() for g in nums}
    clash = [out_t.member(g) for g in nums if Path(out_t.member(g)).resolve() in inputs]
    ctx.check(not clash, f"{clash[0] if clash else ''}: the selection doc would replace an "
              "alignment doc", "OUTPUT SELECTION DOC TEMPLATE")
    for g in nums:
        a = docs[g].subset(masks[g])
        order = np.argsort(a.member, kind="stable")
        rows = np.stack([a.member[order].astype(np.float64), a.cc[order]], 1)
        write_doc(out_t.member(g), np.arange(1, len(rows) + 1), rows.reshape(-1, 2),
                  heading=_SEL_HEADING, **U.doc_options(ctx))
    if png is not None:
        plots.plot_cc_histogram(plots.png_path(png, ctx.session.data_ext),
                                {g: docs[g].cc for g in nums},
                                thresholds if by_fraction else -fraction, kept=kept)
    total = sum(len(docs[g]) for g in nums)
    n_kept = sum(kept.values())
    used = [t for t in thresholds.values() if t is not None]
    thr = float(-fraction) if not by_fraction else (min(used) if used else 0.0)
    ctx.log("  GROUP  PARTICLES       KEPT   CC THRESHOLD")
    for g in nums:
        t = thresholds[g]
        ctx.log(f"  {g:5d} {len(docs[g]):10d} {kept[g]:10d}   "
                + (f"{t:12.6f}" if t is not None else "        none"))
    ctx.log(f"  TOTAL {total:10d} {n_kept:10d}   "
            + ("keep fraction %.4g" % fraction if by_fraction else f"CC >= {-fraction:.6g}"))
    return n_kept, thr


# ----------------------------------------------------------------------------- DG VIEWS
def _reference_angles(ctx, angles) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference numbers, theta, phi of a VO EA doc (last line of every key)."""
    from emsh.io.docfile import read_doc

    d = read_doc(U.resolve(ctx, angles))
    ctx.check(d.n_lines > 0 and d.n_cols >= 3, f"{angles}: a reference angles doc needs psi, "
              "theta, phi in registers 1-3 (VO EA)", "REFERENCE ANGLES DOC")
    uk, rows = d.incore()
    return uk, rows[:, 1], rows[:, 2]


def dg_views(ctx, align, groups, sel, angles, out, png):
    """DG VIEWS: particles per reference direction, as a doc and a polar PNG."""
    from emsh.io.docfile import read_doc, write_doc

    nums, docs = _alignments(ctx, align, groups)
    if sel is not None:
        sel_t = _template(ctx, sel, "SELECTION DOC TEMPLATE (OR *)")
        sel_paths = _existing(ctx, sel_t, nums, "selection doc", "SELECTION DOC TEMPLATE (OR *)")
        for g in nums:
            d = read_doc(sel_paths[g])
            keep = np.rint(d.registers(1)).astype(np.int64) if d.n_lines else np.zeros(0, int)
            docs[g] = docs[g].subset(np.isin(docs[g].member, keep))
    refs, theta, phi = _reference_angles(ctx, angles)
    matched = np.concatenate([docs[g].ref for g in nums])
    mirrored = np.concatenate([docs[g].mirrored for g in nums])
    try:
        v = count_views(refs, theta, phi, matched, mirrored)
    except UsageError as e:
        ctx.check(False, f"{angles}: {e}", "REFERENCE ANGLES DOC")
        raise
    rows = np.stack([v.count, v.theta, v.phi, v.straight, v.mirrored], 1).astype(np.float64)
    write_doc(out, v.ref, rows, heading=_VIEW_HEADING, **U.doc_options(ctx))
    if png is not None:
        plots.plot_views(plots.png_path(png, ctx.session.data_ext), v)
    n_views, top = int((v.count > 0).sum()), int(v.count.max()) if v.count.size else 0
    ctx.log(f"  PARTICLES: {int(v.count.sum())} (mirrored {int(v.mirrored.sum())}, "
            f"unmatched {v.unmatched})   VIEWS WITH PARTICLES: {n_views} of {v.ref.size}"
            f"   MOST IN ONE VIEW: {top}")
    return n_views, top


# ----------------------------------------------------------------------------- DG PLOT FSC
def _fsc_curve(ctx, doc) -> tuple[np.ndarray, np.ndarray, float]:
    """(frequency cycles/pixel, FSC, pixel size from the doc or 0) of an FSC doc."""
    from emsh.io.docfile import read_doc

    d = read_doc(U.resolve(ctx, doc))
    ctx.check(d.n_lines >= 2 and d.n_cols >= 3, f"{doc}: an FSC doc needs frequency, "
              "resolution and FSC in registers 1-3 on 2 or more lines (FSC op)", "FSC DOC")
    uk, rows = d.incore()
    freq, res, curve = rows[:, 0], rows[:, 1], rows[:, 2]
    ctx.check(bool(np.all(np.diff(freq) > 0)) and freq[0] >= 0 and freq[-1] <= 0.5 + 1e-6,
              f"{doc}: register 1 must rise with the key within 0..0.5 cycles/pixel",
              "FSC DOC")
    ok = (freq > 0) & (res > 0) & (res < 999999.0)
    apix = float(np.median(freq[ok] * res[ok])) if ok.any() else 0.0
    return freq, curve, apix


def dg_plot_fsc(ctx, doc, apix, png):
    """DG PLOT FSC: FSC doc to PNG; registers get the resolution at 0.5 and 0.143."""
    freq, curve, doc_apix = _fsc_curve(ctx, doc)
    px = apix if apix > 0 else doc_apix
    out = []
    for t in plots.FSC_THRESHOLDS:
        f, crossed = plots.fsc_resolution(freq, curve, t)
        out.append((px or 1.0) / f if f > 0 else 0.0)
        ctx.log(f"  FSC {t:5.3f}: {out[-1]:8.2f} {'A' if px else 'PX'}"
                + ("" if crossed else "   (no crossing: the last shell)"))
    plots.plot_fsc(plots.png_path(png, ctx.session.data_ext), freq, {"FSC": curve},
                   apix=px or None)
    return tuple(out)
