"""Implementations of the ISAC2 operations (specifications in ``__init__``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emsh import io as emio
from emsh.io._atomic import atomic_open
from emsh.io.hdf import read_attributes, write_stack_with_attributes
from emsh.io.star import join_image_name, write_star
from emsh.table import Table

from .inputs import read_stack, stack_path
from .montage import write_montage
from .params import IsacParams, PrepParams
from .run import isac2
from .tools import fullsize_averages, load_run, member_table, select

__all__ = ["isac2_op", "select_op", "fullsize_op", "substack_op", "montage_op"]


def isac2_op(ctx, stack_file, output_directory, radius, img_per_grp, minimum_grp_size,
             thld_err, stab_ali, target_radius, target_nx, ir, rs, xr, yr, ts, maxit, dst,
             FL, FH, FF, init_iter, iter_reali, delta_good, max_generations, rand_seed,
             apix, overwrite, skip_prealignment, CTF, VPP, ctf_star, filament_width,
             filament_mask_ignore, skip_ordering, restart):
    """``ISAC2``: classify a stack; the registers get (classes, accounted images)."""
    seed = None if rand_seed is None or int(rand_seed) < 0 else int(rand_seed)
    p = IsacParams(img_per_grp=int(img_per_grp), minimum_grp_size=int(minimum_grp_size),
                   thld_err=float(thld_err), stab_ali=int(stab_ali),
                   target_radius=int(target_radius), target_nx=int(target_nx), ir=int(ir),
                   rs=int(rs), xr=int(xr), yr=int(yr), ts=float(ts), maxit=int(maxit),
                   dst=float(dst), FL=float(FL), FH=float(FH), FF=float(FF),
                   init_iter=int(init_iter), iter_reali=int(iter_reali),
                   delta_good=int(delta_good), max_generations=int(max_generations),
                   rand_seed=seed)
    prep = PrepParams(skip_prealignment=bool(skip_prealignment), CTF=bool(CTF), VPP=bool(VPP),
                      ctf_star=str(ctf_star or "").strip(),
                      filament_width=float(filament_width),
                      filament_mask_ignore=bool(filament_mask_ignore),
                      skip_ordering=bool(skip_ordering))
    rng = np.random.default_rng(seed) if seed is not None else ctx.rng
    result = isac2(stack_file, output_directory, float(radius), p, prep,
                   apix=float(apix) or None, overwrite=bool(overwrite), resume=bool(restart),
                   log=ctx.log, rng=rng, comm=ctx.comm)
    ctx.log(f"ISAC2: {len(result.members)} classes, {len(result.processed)} of "
            f"{len(result.all_parameters)} images accounted")
    return len(result.members), len(result.processed)


def _lines(path: Path, ids) -> None:
    """One 0-based id per line (replaces an existing file, as SPIDER's outputs)."""
    with atomic_open(path, "w", overwrite=True) as fh:
        fh.write("".join(f"{int(i)}\n" for i in ids))


def select_op(ctx, folder, numbers, prefix):
    """``ISAC2 SELECT``: write the member ids of the chosen classes."""
    run = load_run(folder)
    ids, per, nums = select(run, numbers)
    _lines(Path(f"{prefix}.txt"), ids)
    for k, m in zip(nums, per):
        _lines(Path(f"{prefix}_class_{k:03d}.txt"), m)
    ctx.log(f"ISAC2 SELECT: {len(ids)} images of {len(nums)} classes -> {prefix}.txt")
    return len(ids), len(nums)


def _stack_of(run, stack_file) -> str:
    return stack_path(stack_file) if stack_file else str(run.settings.get("stack", ""))


def fullsize_op(ctx, folder, stack_file, output):
    """``ISAC2 FULLSIZE``: full-size averages of the original images."""
    run = load_run(folder)
    ctx.check(len(run.members) > 0, f"{folder}: the run has no class averages", "folder")
    stack = _stack_of(run, stack_file)
    avgs = fullsize_averages(run, read_stack(stack), stack)
    attrs = [{"members": [int(i) for i in m], "n_objects": int(len(m))} for m in run.members]
    apix = float(run.settings.get("apix") or 0.0) or None
    out = stack_path(output)
    if emio.format_of(out, for_writing=True) == "hdf":
        write_stack_with_attributes(out, avgs, attrs, True, apix=apix)
    else:
        emio.write(out, avgs, stack=True, apix=apix, overwrite=True)
    ctx.log(f"ISAC2 FULLSIZE: {len(avgs)} averages of {avgs.shape[-1]} px -> {out}")
    return len(avgs)


def substack_op(ctx, folder, stack_file, numbers, output):
    """``ISAC2 SUBSTACK``: the member images of chosen classes, STAR and id list."""
    run = load_run(folder)
    ids, _, nums = select(run, numbers)
    stack = _stack_of(run, stack_file)
    imgs = read_stack(stack)
    ctx.check(len(imgs) == run.n_images, f"{stack} has {len(imgs)} images, the run had "
              f"{run.n_images}", "stack_file")
    out = Path(stack_path(output))
    emio.write(out, imgs[ids], stack=True, overwrite=True,
               apix=float(run.settings.get("apix") or 0.0) or None)
    cols = {"rlnImageName": [join_image_name(out, j + 1) for j in range(len(ids))]}
    cols.update(member_table(run, ids))
    base = out.with_suffix("")
    write_star(base.parent / f"{base.name}.star", {"particles": Table(cols)}, overwrite=True)
    _lines(base.parent / f"{base.name}_ids.txt", ids)
    ctx.log(f"ISAC2 SUBSTACK: {len(ids)} images of {len(nums)} classes -> {out}")
    return len(ids)


def montage_op(ctx, averages, png, columns):
    """``ISAC2 MONTAGE``: PNG of averages with member counts from their headers."""
    path = stack_path(averages)
    avgs = emio.read(path)
    avgs = avgs[None] if avgs.ndim == 2 else avgs
    counts = None
    if emio.format_of(path) == "hdf":
        heads = read_attributes(path, None)
        if all("n_objects" in h or "members" in h for h in heads):
            counts = [int(h["n_objects"]) if "n_objects" in h else len(h["members"])
                      for h in heads]
    write_montage(png, avgs, counts, columns=int(columns) or None, overwrite=True)
    ctx.log(f"ISAC2 MONTAGE: {len(avgs)} averages -> {png}")
    return len(avgs)
