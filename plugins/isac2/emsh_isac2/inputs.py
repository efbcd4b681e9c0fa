"""ISAC2's inputs: the particle stack and, for ``CTF=yes``, one CTF per image.

CTF sources, in this order:

1. ``ctf_star``: a RELION particles STAR file (3.0, or 3.1+ with ``data_optics``;
   read with :func:`emsh.io.star.read_particles`, CTF by
   :meth:`emsh.kernels.ctf.CTFParams.from_relion`): one row per image. When its
   ``rlnImageName`` member numbers (``NNNNNN@file``) are a permutation of ``1..n``
   they say which image each row belongs to; otherwise rows are taken in stack order.
   The pixel size is ``apix`` when given, else the file's ``rlnImagePixelSize`` (or
   detector pixel size and magnification).
2. Otherwise the stack's EMAN2/SPHIRE HDF headers ``ctf`` (``EMAN2Ctf``: defocus µm,
   ampcont %, ...; converted by :meth:`CTFParams.from_sphire`), as sp_isac2 reads them.
"""

from __future__ import annotations

import os

import numpy as np

from emsh import io as emio
from emsh.errors import DataFormatError, UsageError
from emsh.io.hdf import read_attributes
from emsh.io.star import read_particles, split_image_name
from emsh.kernels.ctf import CTFParams

__all__ = ["read_stack", "stack_path", "read_ctf"]


def stack_path(stack_file) -> str:
    """The file of a stack address (``file@`` or ``file``)."""
    path, _, _ = emio.split_address(stack_file)
    return os.fspath(path)


def read_stack(stack_file) -> np.ndarray:
    """All images of a stack as float32 ``(n, ny, nx)``."""
    path = stack_path(stack_file)
    imgs = emio.read(path)
    if imgs.ndim == 2:
        imgs = imgs[None]
    if imgs.ndim != 3:
        raise UsageError(f"{path}: expected a stack of 2-D images, got shape {imgs.shape}")
    return np.ascontiguousarray(imgs, dtype=np.float32)


def _star_order(table, n: int) -> np.ndarray:
    if "rlnImageName" not in table:
        return np.arange(n)
    try:
        nums = np.array([split_image_name(v)[1] or 0 for v in table["rlnImageName"]])
    except UsageError:
        return np.arange(n)
    if np.array_equal(np.sort(nums), np.arange(1, n + 1)):
        order = np.empty(n, dtype=np.int64)
        order[nums - 1] = np.arange(n)
        return order
    return np.arange(n)


def read_ctf(stack_file, n: int, ctf_star: str | None = None,
             apix: float | None = None) -> CTFParams:
    """One CTF per image of the stack (see the module docstring for the sources).

    Returns:
        a :class:`CTFParams` batch of ``n`` sets, in stack order.

    Raises:
        DataFormatError: a STAR file with another number of rows or no CTF columns.
        UsageError: no CTF source.
    """
    if ctf_star:
        table, _ = read_particles(ctf_star, merge_optics=True)
        if len(table) != n:
            raise DataFormatError(ctf_star, f"{len(table)} particle rows for the {n} images "
                                  "of the stack")
        order = _star_order(table, n)
        try:
            p = CTFParams.from_relion(table, apix=apix or None)
        except UsageError as exc:
            raise DataFormatError(ctf_star, str(exc)) from None
        arr = p.arrays()
        return CTFParams(**{k: np.broadcast_to(v, (n,))[order].copy() for k, v in arr.items()})
    path = stack_path(stack_file)
    if emio.format_of(path) == "hdf":
        heads = read_attributes(path, None)
        ctfs = [h.get("ctf") for h in heads]
        if len(ctfs) == n and all(isinstance(c, dict) for c in ctfs):
            col = {k: np.array([float(c[k]) for c in ctfs])
                   for k in ("defocus", "dfdiff", "dfang", "bfactor", "ampcont", "voltage",
                             "cs", "apix")}
            if apix:
                col["apix"] = np.full(n, float(apix))
            return CTFParams.from_sphire(col["defocus"], col["dfdiff"], col["dfang"],
                                         col["bfactor"], col["ampcont"], col["voltage"],
                                         col["cs"], col["apix"])
    raise UsageError(f"ISAC2 CTF=yes: give ctf_star=<RELION STAR file> or a stack with "
                     f"EMAN2 'ctf' headers ({path} has none)")
