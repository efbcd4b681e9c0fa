"""The implementations of the example plugin's operations (imported on first use).

Each function takes ``ctx`` and then exactly the names its prompts and options
declare; emsh checks that when it first imports the function.
"""

from __future__ import annotations

import numpy as np

import emsh.io as eio
from emsh.io.docfile import write_doc
from emsh.kernels.stats import radial_profile
from emsh.kernels.transform import resample_fourier


def bin_images(ctx, src, dst, factor, apix):
    """BIN: shrink images or volumes by ``factor`` with Fourier cropping.

    Args:
        ctx: the operation's context (communicator, log, checks).
        src: input file as answered, data extension added (``img.dat``, ``stk.dat@``).
        dst: output file.
        factor: binning factor (>= 1); each size n becomes round(n / factor).
        apix: pixel size of the input in Å, 0 to use the one recorded in the file.

    Returns:
        ``{"nx": new x size}``.
    """
    ctx.check("*" not in src, "templates are not supported; give one file or stk@", "src")
    info = eio.info(src)
    whole_stack = src.endswith("@") or (info.is_stack and "@" not in src)
    new_shape = tuple(max(1, round(n / factor)) for n in info.shape)
    ctx.check(min(new_shape) >= 2, f"factor {factor:g} leaves fewer than 2 pixels", "factor")
    if whole_stack:  # each rank reads its share of the members
        mine = range(info.n_images)[ctx.comm.my_slice(info.n_images)]
        items = np.zeros((len(mine), *info.shape), np.float32)
        for k, member in enumerate(mine):
            items[k] = eio.read(src, index=member + 1)
    else:
        items = eio.read(src)[None]
    small = np.zeros((0, *new_shape), np.float32)  # a rank may have no members
    if len(items):
        small = resample_fourier(items, new_shape)  # one batched FFT over the share
    small = ctx.comm.gather_rows(small)  # every member, in order, on every rank
    old_apix = apix or info.apix or 0.0
    new_apix = old_apix * info.shape[-1] / new_shape[-1] if old_apix else None
    if ctx.is_root:
        eio.write(dst, small if whole_stack else small[0], stack=whole_stack,
                  apix=new_apix, overwrite=True)
        ctx.log(f"  BIN: {src} {_size(info.shape)} -> {dst} {_size(new_shape)}")
    ctx.comm.barrier()  # the file is complete before any rank goes on
    return {"nx": new_shape[-1]}


def _size(shape) -> str:
    return " x ".join(str(n) for n in reversed(shape))  # x y (z), as SPIDER prints sizes


def radial_profile_doc(ctx, src, doc, rmax):
    """PROF: rotational average of one image or volume, written to a doc file.

    Args:
        ctx: the operation's context.
        src: input image or volume.
        doc: output doc file; key r+1 holds (r, average).
        rmax: last radius in pixels, 0 for half the smallest size.

    Returns:
        ``{"nshell": shells written, "edge": average of the last shell}``.
    """
    data = eio.read(src)
    ctx.check(data.ndim in (2, 3) and not src.endswith("@"), "needs one image or volume",
              "src")
    last = rmax or min(data.shape) // 2
    profile = radial_profile(data, rmax=last)
    radii = np.arange(last + 1)
    write_doc(doc, radii + 1, np.column_stack([radii, profile]),
              heading="      RADIUS,       AVERAGE", overwrite=True,
              project_ext=ctx.session.project_ext, data_ext=ctx.session.data_ext)
    ctx.log(f"  PROF: {last + 1} shells of {src} written to {doc}")
    return {"nshell": last + 1, "edge": float(profile[-1])}
