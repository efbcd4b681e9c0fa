"""Implementation of the ISAC2 operation (specification in ``__init__``)."""

from __future__ import annotations

import numpy as np

from .params import IsacParams
from .run import isac2

__all__ = ["isac2_op"]


def isac2_op(ctx, stack_file, output_directory, radius, img_per_grp, minimum_grp_size,
             thld_err, stab_ali, target_radius, target_nx, ir, rs, xr, yr, ts, maxit, dst,
             FL, FH, FF, init_iter, iter_reali, delta_good, max_generations, rand_seed,
             apix, overwrite):
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
    rng = np.random.default_rng(seed) if seed is not None else ctx.rng
    result = isac2(stack_file, output_directory, float(radius), p, apix=float(apix) or None,
                   overwrite=bool(overwrite), log=ctx.log, rng=rng)
    ctx.log(f"ISAC2: {len(result.members)} classes, {len(result.processed)} of "
            f"{len(result.all_parameters)} images accounted")
    return len(result.members), len(result.processed)
