"""Atomic file replacement: write to a temporary file beside the target, then rename.

A reader never sees a half-written file, an interrupted write leaves the old file
intact, and an existing file is replaced only when the caller says so.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from emsh.errors import OutputExistsError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path: str | os.PathLike, overwrite: bool) -> Path:
    """Return ``path`` as a Path; raise OutputExistsError if it exists and overwrite is False."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise OutputExistsError(p)
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    On any exception the temporary file is removed and the target is untouched.
    """
    target = check_writable(path, overwrite)
    folder = target.parent if str(target.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", overwrite: bool = False, **kw):
    """Open a temporary file for writing; it replaces ``path`` when the block ends cleanly."""
    with atomic_path(path, overwrite) as tmp, open(tmp, mode, **kw) as fh:
        yield fh
