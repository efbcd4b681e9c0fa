"""Implementations of ``DG DEFOCUS`` and ``DG GROUPS`` (specifications in
:mod:`emsh_defocus.spec_ctf`).

``DG DEFOCUS`` splits the micrographs over the MPI ranks (contiguous blocks); the doc
rows are gathered on every rank (so the registers agree) and the spectra on rank 0,
which alone writes files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emsh import io as eio
from emsh.errors import DataFormatError, UsageError
from emsh.io.docfile import read_doc
from emsh.ops import _util as U

from .defocus import check_band, fit_micrograph
from .groups import defocus_groups
from .power import MIN_TILE

__all__ = ["dg_defocus", "dg_groups"]

_DEF_HEAD = "     MIC     DEFOCUS(A)     ASTIG(A)    ANGLE(DEG)     SCORE"
_MICG_HEAD = "     MIC     DEFOCUS(A)      GROUP"
_GRP_HEAD = "   GROUP       N_MICS     MEAN DEF(A)   MIN DEF(A)    MAX DEF(A)"


def _micrograph_paths(ctx, template, nums) -> list[str]:
    ref = U.parse(template)
    if not ref.template or ref.inline is not None or ref.at:
        raise UsageError(f"{template}: expected a micrograph file template such as "
                         "Micrographs/mic***.mrc")
    nums = U.numbers(ctx, nums)
    if not nums:
        raise UsageError(f"{template}: the list of micrograph numbers is empty")
    if len(set(nums)) != len(nums):
        raise UsageError(f"{template}: a micrograph number is listed twice")
    paths = [U.resolve(ctx, ref.member(n)) for n in nums]
    for p in paths:
        if not Path(p).is_file():
            raise DataFormatError(p, "micrograph not found")
    return paths


def _fit_one(path, apix, kv, cs, amp, tile, res_lo, res_hi, overlap, df_range, astig_max):
    mic = eio.read(path)
    if mic.ndim != 2:
        raise DataFormatError(path, f"expected a 2D micrograph, got shape {mic.shape}")
    try:
        return fit_micrograph(mic, apix, kv, cs, amp, int(tile), res_lo, res_hi,
                              overlap=overlap, defocus_range_A=df_range, astig_max_A=astig_max)
    except UsageError as exc:
        raise DataFormatError(path, str(exc)) from None


def dg_defocus(ctx, mic_template, mic_numbers, apix, kv, cs, amp, tile, res_lo, res_hi,
               ps_template, doc, overlap, df_min, df_max, astig_max):
    """``DG DEFOCUS``: registers get (micrographs, median defocus in Å)."""
    nums = U.numbers(ctx, mic_numbers)
    paths = _micrograph_paths(ctx, mic_template, nums)
    check_band(apix, res_lo, res_hi)
    if int(tile) < MIN_TILE:
        raise UsageError(f"tile size must be >= {MIN_TILE} px, got {tile}")
    if not 0 < df_min < df_max:
        raise UsageError(f"defocus search range must be 0 < df_min < df_max Å, got "
                         f"{df_min}, {df_max}")
    if ps_template is not None and not U.parse(ps_template).template:
        raise UsageError(f"{ps_template}: expected a spectrum template such as "
                         "Power_Spectra/pw*** (or *)")
    mine = ctx.comm.my_slice(len(paths))
    rows, spectra, error = [], [], None
    try:
        for n, path in zip(nums[mine], paths[mine]):
            res = _fit_one(path, apix, kv, cs, amp, tile, res_lo, res_hi, overlap,
                           (df_min, df_max), astig_max)
            rows.append(res.doc_row(n))
            if ps_template is not None:
                spectra.append(res.spectrum)
    except (UsageError, DataFormatError) as exc:   # every rank must learn of it
        error = (isinstance(exc, DataFormatError), str(exc))
    parts = ctx.comm.allgather((rows, error))
    errors = [e for _, e in parts if e is not None]
    if errors:
        is_data, message = errors[0]
        raise DataFormatError(None, message) if is_data else UsageError(message)
    rows = [r for part, _ in parts for r in part]
    table = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    for r in table:
        ctx.log(f"  MIC {int(r[0]):5d}  DEFOCUS {r[1]:9.1f} A  ASTIG {r[2]:7.1f} A AT "
                f"{r[3]:6.1f} DEG  SCORE {r[4]:6.3f}")
    if ps_template is not None:
        gathered = ctx.comm.gather(spectra, root=0)
        if ctx.is_root:
            tmpl = U.parse(ps_template)
            allspec = [s for part in gathered for s in part]
            for n, ps in zip(nums, allspec):
                out = tmpl.member(n)
                Path(U.parse(out).path or out).parent.mkdir(parents=True, exist_ok=True)
                U.write_one(ctx, out, ps)
    U.write_session_doc(ctx, doc, table[:, 0], table, _DEF_HEAD)
    return len(table), float(np.median(table[:, 1]))


def dg_groups(ctx, doc, n_groups, mic_doc, group_doc):
    """``DG GROUPS``: registers get the number of groups."""
    path = U.resolve(ctx, doc)
    d = read_doc(path)
    if d.n_lines == 0 or d.n_cols < 2:
        raise DataFormatError(path, "expected a defocus doc: micrograph in register 1, "
                              "defocus (A) in register 2")
    keys, vals = d.incore()
    vals = vals[:, :2]
    if len(set(vals[:, 0].astype(int))) != len(keys):
        raise DataFormatError(path, "a micrograph number appears on two keys")
    g = defocus_groups(vals[:, 0], vals[:, 1], n_groups)
    order = np.argsort(g.mics, kind="stable")
    rows = np.column_stack([g.mics, g.defocus_A, g.group])[order]
    U.write_session_doc(ctx, mic_doc, rows[:, 0], rows, _MICG_HEAD)
    summ = g.summary()
    U.write_session_doc(ctx, group_doc, summ[:, 0], summ, _GRP_HEAD)
    for r in summ:
        ctx.log(f"  GROUP {int(r[0]):3d}: {int(r[1]):4d} MICROGRAPHS, DEFOCUS {r[3]:9.1f} .. "
                f"{r[4]:9.1f} A (MEAN {r[2]:9.1f})")
    return g.n_groups
