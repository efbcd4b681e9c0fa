"""One read/write API for the field's image formats.

Addressing follows SPIDER: ``stack@3`` is member 3 (1-based) of a stack, ``stack@``
or ``stack`` is the whole stack. The same form works for SPIDER stacks, MRCS and
EMAN2 HDF stacks (member N is the N-th image, counting from 1).

Reading picks the format from the file's own bytes (MRC's ``MAP`` word, HDF5's
signature, otherwise a SPIDER header); writing picks it from the extension
(``.mrc``/``.mrcs``/``.map``/``.st``: MRC, ``.hdf``/``.h5``: EMAN2 HDF, anything
else: SPIDER). Arrays are float32, C-contiguous, in numpy axis order: an image is
``(ny, nx)``, a volume ``(nz, ny, nx)``, a stack ``(n, ny, nx)``.

Format modules (``spider``, ``mrc``, ``hdf``) each provide ``sniff(head) -> bool``,
``info(path) -> ImageInfo``, ``read(path, index=None) -> ndarray`` and
``write(path, data, *, index=None, stack=False, apix=None, overwrite=False)``.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import numpy as np

from emsh.errors import DataFormatError, UsageError
from emsh.io._base import ImageInfo

__all__ = ["ImageInfo", "split_address", "format_of", "info", "read", "write"]

MRC_EXTENSIONS = (".mrc", ".mrcs", ".map", ".st", ".ali", ".rec")
HDF_EXTENSIONS = (".hdf", ".h5", ".hdf5")
_FORMATS = ("mrc", "hdf", "spider")
_ADDRESS = re.compile(r"^(?P<path>.+?)@(?P<index>\d*)$")


def split_address(address: str | os.PathLike) -> tuple[str, int | None, bool]:
    """Split ``file@N`` into ``(file, N, True)``; ``file@`` gives ``(file, None, True)``.

    A plain name gives ``(name, None, False)``. N counts from 1.

    Raises:
        UsageError: when N is 0.
    """
    text = os.fspath(address)
    m = _ADDRESS.match(text)
    if not m:
        return text, None, False
    idx = m.group("index")
    if idx == "":
        return m.group("path"), None, True
    n = int(idx)
    if n < 1:
        raise UsageError(f"{text}: stack members are numbered from 1")
    return m.group("path"), n, True


def _module(name: str):
    return importlib.import_module(f"emsh.io.{name}")


def format_of(path: str | os.PathLike, *, for_writing: bool = False) -> str:
    """Name of the format module for ``path``: by content when it exists, else by extension."""
    p = Path(path)
    if not for_writing and p.exists():
        try:
            with open(p, "rb") as fh:
                head = fh.read(1024)
        except IsADirectoryError:
            raise DataFormatError(p, "is a folder, not an image file") from None
        for name in _FORMATS:
            if _module(name).sniff(head):
                return name
        raise DataFormatError(p, "not an MRC, EMAN2 HDF or SPIDER image file")
    ext = p.suffix.lower()
    if ext in MRC_EXTENSIONS:
        return "mrc"
    if ext in HDF_EXTENSIONS:
        return "hdf"
    return "spider"


def _existing(path: str) -> str:
    if not Path(path).exists():
        raise DataFormatError(path, "file not found")
    return path


def info(address: str | os.PathLike) -> ImageInfo:
    """Header facts of an image file (``file@N`` is accepted and the index ignored)."""
    path, _, _ = split_address(address)
    return _module(format_of(_existing(path))).info(path)


def read(address: str | os.PathLike, index: int | None = None) -> np.ndarray:
    """Read an image, volume, stack member (``file@N``) or whole stack as float32.

    Args:
        address: a path, optionally with ``@N`` (1-based member) or ``@`` (whole stack).
        index: a 1-based member number; overrides one given in ``address``.

    Returns:
        ``(ny, nx)``, ``(nz, ny, nx)`` or, for a whole stack, ``(n, ny, nx)``.
    """
    path, n, _ = split_address(address)
    if index is not None:
        n = int(index)
    return _module(format_of(_existing(path))).read(path, index=n)


def write(
    address: str | os.PathLike,
    data: np.ndarray,
    *,
    stack: bool | None = None,
    apix: float | None = None,
    overwrite: bool = False,
) -> None:
    """Write an image, volume or stack; ``file@N`` writes (or replaces) member N of a stack.

    Args:
        address: destination; its extension picks the format.
        data: float array; a 3D array is written as a stack when ``stack`` is True or the
            address ends in ``@``, otherwise as a volume.
        stack: force stack (True) or volume (False) for 3D data.
        apix: pixel size in Å, recorded where the format can hold it.
        overwrite: allow replacing an existing file. Writing one member into an existing
            stack (``file@N``) is always allowed: that is what the address asks for.
    """
    path, n, at = split_address(address)
    arr = np.ascontiguousarray(np.asarray(data, dtype=np.float32))
    if stack is None:
        stack = at and n is None
    fmt = format_of(path, for_writing=not Path(path).exists() or overwrite and n is None)
    _module(fmt).write(path, arr, index=n, stack=bool(stack), apix=apix, overwrite=overwrite)
