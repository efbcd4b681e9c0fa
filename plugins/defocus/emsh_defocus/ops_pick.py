"""Implementations of DG PICK and DG WINDOW (specifications in :mod:`emsh_defocus.spec_pick`;
algorithms in :mod:`emsh_defocus.pick` and :mod:`emsh_defocus.window`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emsh import io as eio
from emsh.errors import DataFormatError
from emsh.ops import _util as U

from .pick import pick_particles
from .window import window_particles

__all__ = ["dg_pick", "dg_window"]

_COO_HEAD = "          X             Y         SCORE"
_SEL_HEAD = "     MEMBER       PARTICLE     MIC           X             Y         DEFOCUS(A)"
_PAR_HEAD = ("       ID         MIC           X             Y         DEFOCUS(A)     GROUP"
             "       MEMBER")
_CNT_HEAD = "      GROUP      PARTICLES   DEFOCUS(A)"


def _template(ctx, answer: str, prompt: str) -> U.FileRef:
    ref = U.parse(answer)
    ctx.check(ref.template and ref.inline is None,
              f"{answer}: expected a file template with asterisks (name***)", prompt)
    return ref


def _mic_list(ctx, template: str, numbers, box: int) -> tuple[U.FileRef, list[int], list[str]]:
    """The micrograph template, the numbers and their paths, every one checked to exist and
    to hold a box of ``box`` pixels (cheap header reads, so every rank can check)."""
    ref = _template(ctx, template, "MICROGRAPH TEMPLATE")
    nums = U.numbers(ctx, numbers)
    ctx.check(len(nums) > 0, "the list of micrograph numbers is empty", "MICROGRAPH NUMBERS")
    ctx.check(len(set(nums)) == len(nums), "a micrograph number is listed twice",
              "MICROGRAPH NUMBERS")
    paths = []
    for n in nums:
        path = U.resolve(ctx, ref.member(n))
        if not Path(path).is_file():
            raise DataFormatError(path, f"micrograph {n} not found")
        inf = eio.info(path)
        if inf.ndim != 2 or inf.is_stack:
            raise DataFormatError(path, f"expected one 2-D micrograph, got shape {inf.shape}")
        ctx.check(box <= min(inf.shape[-2:]),
                  f"box size {box} px is larger than micrograph {n} ({path}: "
                  f"{inf.shape[-1]}x{inf.shape[-2]} px)", "BOX SIZE")
        paths.append(path)
    return ref, nums, paths


def _out_name(ref: U.FileRef, n: int) -> str:
    name = ref.member(n)
    Path(name).parent.mkdir(parents=True, exist_ok=True)
    return name


# ----------------------------------------------------------------------------- DG PICK

def dg_pick(ctx, mic_template, mic_numbers, radius, box, threshold, max_picks,
            coord_template, polarity, min_distance, f_low, f_high):
    """DG PICK: pick every listed micrograph (shared out over MPI ranks); rank 0 writes one
    coordinate doc per micrograph. Returns the total number of picks."""
    radius, box = float(radius), int(box)
    ctx.check(box >= 2 * radius, f"box size {box} px is smaller than the particle diameter "
              f"{2 * radius:g} px", "PARTICLE RADIUS, BOX SIZE (PX)")
    ctx.check(polarity in (1, -1), f"polarity must be 1 (white particles) or -1 (dark), got "
              f"{polarity}")
    ctx.check(not (f_low and f_high) or f_low < f_high,
              f"f_low ({f_low}) must be below f_high ({f_high})")
    out = _template(ctx, coord_template, "OUTPUT COORDINATE DOC TEMPLATE")
    _, nums, paths = _mic_list(ctx, mic_template, mic_numbers, box)

    mine = range(len(nums))[ctx.comm.my_slice(len(nums))]
    results = []
    for i in mine:
        mic = eio.read(paths[i])
        xy, score = pick_particles(mic, radius, box, threshold=float(threshold),
                                   max_picks=int(max_picks), polarity=int(polarity),
                                   min_distance=float(min_distance), f_low=float(f_low),
                                   f_high=float(f_high))
        results.append((i, xy, score))
    gathered = ctx.comm.gather(results)
    total = 0
    if ctx.is_root:
        for i, xy, score in sorted((r for part in gathered for r in part), key=lambda r: r[0]):
            name = _out_name(out, nums[i])
            U.write_session_doc(ctx, name, np.arange(1, len(xy) + 1),
                                np.column_stack([xy, score]), _COO_HEAD, 3)
            total += len(xy)
            low = f", lowest score {score.min():.2f} SD" if len(score) else ""
            ctx.log(f"  micrograph {nums[i]:4d}: {len(xy):5d} picks{low} -> {name}")
        ctx.log(f"  DG PICK: {total} particles picked in {len(nums)} micrographs")
    total = ctx.comm.bcast(total)
    ctx.comm.barrier()
    return total


# ----------------------------------------------------------------------------- DG WINDOW

def _groups_of(ctx, group_doc, nums: list[int]) -> tuple[dict[int, int], dict[int, float]]:
    """Group and defocus (Å) of every listed micrograph, from the DG GROUPS doc or ``*``."""
    if group_doc is None:
        return dict.fromkeys(nums, 1), dict.fromkeys(nums, 0.0)
    from emsh.io.docfile import read_doc

    path = U.resolve(ctx, group_doc)
    if not Path(path).is_file():
        raise DataFormatError(path, "micrograph group doc not found (DG GROUPS writes it)")
    doc = read_doc(path)
    group, defocus = {}, {}
    have = set(doc.keys.tolist())
    for n in nums:
        if n not in have:
            raise DataFormatError(path, f"no line for micrograph {n} (key = micrograph number)")
        row = doc.get(n)
        if row.size < 3:
            raise DataFormatError(path, f"key {n}: expected registers mic, defocus, group")
        g = int(round(row[2]))
        if g < 1:
            raise DataFormatError(path, f"key {n}: group {row[2]:g} is not a number >= 1")
        group[n], defocus[n] = g, float(row[1])
    return group, defocus


def _coords_of(ctx, ref: U.FileRef, n: int) -> np.ndarray:
    """``(k, 2)`` 1-based x, y of micrograph ``n``'s coordinate doc, in file order."""
    from emsh.io.docfile import read_doc

    path = U.resolve(ctx, ref.member(n))
    if not Path(path).is_file():
        raise DataFormatError(path, f"coordinate doc of micrograph {n} not found "
                              "(DG PICK writes it)")
    doc = read_doc(path)
    if doc.n_lines == 0:
        return np.zeros((0, 2))
    if doc.n_cols < 2:
        raise DataFormatError(path, "expected registers x, y (1-based pixel coordinates)")
    return doc.values[:, :2].copy()


def dg_window(ctx, mic_template, mic_numbers, coord_template, box, radius, group_doc,
              stack_template, sel_template, particle_doc, count_doc):
    """DG WINDOW: per-group stacks of background-normalised windows, with their docs.
    Returns (particles windowed, highest group number)."""
    box, radius = int(box), float(radius)
    ctx.check(radius < box / 2, f"particle radius {radius:g} px leaves no background in a "
              f"{box} px box (need radius < box/2)", "BOX SIZE, PARTICLE RADIUS (PX)")
    coo = _template(ctx, coord_template, "COORDINATE DOC TEMPLATE")
    stk = _template(ctx, stack_template, "OUTPUT STACK TEMPLATE")
    sel = _template(ctx, sel_template, "OUTPUT SELECTION DOC TEMPLATE")
    _, nums, paths = _mic_list(ctx, mic_template, mic_numbers, box)
    group, defocus = _groups_of(ctx, group_doc, nums)
    coords = [_coords_of(ctx, coo, n) for n in nums]   # every input checked before any work

    groups = sorted(set(group.values()))
    images = {g: [] for g in groups}
    rows = {g: [np.zeros((0, 5))] for g in groups}   # id, mic, x, y, defocus, in order
    next_id = 1                  # ids follow the micrographs as listed, then the docs' order
    for n, path, xy in zip(nums, paths, coords):
        if len(xy) == 0:
            ctx.log(f"  micrograph {n:4d}: no coordinates")
            continue
        stack, kept = window_particles(eio.read(path), xy, box, radius)
        k, g = int(kept.sum()), group[n]
        images[g].append(stack)
        rows[g].append(np.column_stack([next_id + np.arange(k), np.full(k, n), xy[kept],
                                        np.full(k, defocus[n])]))
        next_id += k
        skipped = len(xy) - k
        ctx.log(f"  micrograph {n:4d}: {k:5d} windows -> group {g}"
                + (f", {skipped} skipped (box crosses the edge)" if skipped else ""))

    particles, counts, mean_df = [], [], []
    for g in groups:
        r, df = np.split(np.concatenate(rows[g]), [4], axis=1)
        df = df[:, 0]
        members = np.arange(1, len(r) + 1)
        U.write_session_doc(ctx, _out_name(sel, g), members, np.column_stack([members, r, df]),
                            _SEL_HEAD, 6)
        name = _out_name(stk, g)
        if len(r):
            eio.write(name, np.concatenate(images[g]), stack=True, overwrite=True)
        else:
            old = Path(name.rstrip("@"))
            if old.is_file():                 # an older run's stack would not match the doc
                old.unlink()
            ctx.log(f"  group {g}: no particles, no stack written")
        particles.append(np.column_stack([r, df, np.full(len(r), g), members]))
        counts.append(len(r))
        mean_df.append(float(df.mean()) if len(r) else 0.0)
    table = np.concatenate(particles)
    table = table[np.argsort(table[:, 0], kind="stable")]
    U.write_session_doc(ctx, particle_doc, table[:, 0], table, _PAR_HEAD, 7)
    gs = np.array(groups, dtype=np.float64)
    U.write_session_doc(ctx, count_doc, gs, np.column_stack([gs, counts, mean_df]),
                        _CNT_HEAD, 3)
    total = int(sum(counts))
    ctx.log(f"  DG WINDOW: {total} particles in {len(groups)} groups")
    return total, int(max(groups))
