"""MRC2014 images, image stacks (``.mrcs``) and volumes, read and written through mrcfile.

Layout rules (MRC2014, as mrcfile applies them):

* space group ``ispg`` 0 with ``nz > 1`` is a stack of ``nz`` images (``mz = 1``);
  a ``.mrcs`` file is a stack whatever its ``ispg`` (RELION's convention), even of one;
* ``nz == 1`` in any other file is a single image ``(ny, nx)``;
* ``ispg`` 1 (or any other non-stack group) with ``nz > 1`` is a volume ``(nz, ny, nx)``;
* ``ispg`` 401-630 is a stack of volumes of ``mz`` sections each.

Reading is strict, like mrcfile's default: the header is checked before anything is
allocated (map word, machine stamp, mode, positive dimensions, extended-header size, file
size equal to what the header promises) and every mrcfile exception or warning becomes a
:class:`~emsh.errors.DataFormatError` that names the file. Real modes 0 (int8), 1 (int16),
2 (float32), 6 (uint16) and 12 (float16) are converted to float32; complex modes 3 and 4
and packed mode 101 are refused with a clear error, because no emsh operation takes
complex MRC data. Data are memory-mapped, so reading one member of a large stack touches
only that member.

Writing always produces mode 2 (float32) files that pass ``mrcfile.validate``: header
statistics (dmin, dmax, dmean, rms) match the data, the voxel size ``apix`` (Å) is stored
in the cell dimensions, new files appear atomically. Writing member N of an existing stack
replaces it (N <= n) or appends it (N = n + 1) in place and updates the statistics without
re-reading the whole stack.
"""

from __future__ import annotations

import operator
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
from mrcfile.dtypes import HEADER_DTYPE

from emsh.errors import DataFormatError, UsageError
from emsh.io._atomic import atomic_path
from emsh.io._base import ImageInfo

__all__ = ["sniff", "info", "read", "write"]

HEADER_BYTES = 1024
#: Larger data blocks than this (16 TiB) can only come from a corrupt header.
MAX_DATA_BYTES = 1 << 44
_MODES = {0: np.int8, 1: np.int16, 2: np.float32, 6: np.uint16, 12: np.float16}
_REFUSED = {
    3: "complex 16-bit integer data (mode 3)",
    4: "complex 32-bit float data (mode 4)",
    101: "4-bit packed integer data (mode 101)",
}
_STATS_CHUNK = 1 << 24  # values per chunk when statistics are recomputed from disk


@dataclass(frozen=True)
class _Layout:
    """What the header of a checked MRC file says (private)."""

    path: Path
    header: np.ndarray  # one-element structured array in the file's byte order
    order: str  # "<" or ">"
    mode: int
    offset: int  # byte offset of the data block (1024 + nsymbt)
    kind: str  # "image", "stack", "volume" or "volume_stack"
    raw_shape: tuple[int, int, int]  # (nz, ny, nx) as stored
    shape: tuple[int, ...]  # one member (or the volume) in numpy (z, y, x) order
    n: int
    axes: tuple[int, int, int] | None  # transpose from stored to (z, y, x) order

    def field(self, name: str, sub: str | None = None):
        value = self.header[name] if sub is None else self.header[name][sub]
        return value[0].item()

    @property
    def apix(self) -> float | None:
        mx, cx = self.field("mx"), self.field("cella", "x")
        if mx <= 0 or not cx > 0:
            return None
        return float(str(np.float32(cx) / np.float32(mx)))


def sniff(head: bytes) -> bool:
    """True when ``head`` (the first bytes of a file) carries MRC's ``MAP`` word at byte 208."""
    return len(head) >= 212 and head[208:211] == b"MAP"


def _byte_order(path: Path, raw: bytes) -> str:
    stamp = raw[212:216]
    if stamp[0] == 0x44 and stamp[1] in (0x44, 0x41):
        return "<"
    if stamp[0] == 0x11 and stamp[1] == 0x11:
        return ">"
    pretty = " ".join(f"0x{b:02x}" for b in stamp)
    raise DataFormatError(
        path, f"unrecognised machine stamp {pretty} at byte 212, so the byte order is unknown "
        "(MRC2014 uses 0x44 0x44 for little-endian, 0x11 0x11 for big-endian)")


def _axes(path: Path, mapping: tuple[int, int, int], kind: str) -> tuple[int, int, int] | None:
    if mapping in ((1, 2, 3), (0, 0, 0)):  # (0, 0, 0): pre-2000 writers left them unset
        return None
    if sorted(mapping) != [1, 2, 3]:
        raise DataFormatError(path, f"invalid axis mapping mapc, mapr, maps = {mapping}; "
                              "expected a permutation of 1, 2, 3")
    if kind != "volume":
        raise DataFormatError(path, f"axis mapping {mapping} is only supported for volumes")
    stored = (mapping[2], mapping[1], mapping[0])  # axis label of stored axes 0, 1, 2
    return tuple(stored.index(label) for label in (3, 2, 1))


def _inspect(path: str | os.PathLike) -> _Layout:
    """Read and check the header of ``path``; raise DataFormatError on any inconsistency."""
    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as fh:
            raw = fh.read(HEADER_BYTES)
    except FileNotFoundError:
        raise DataFormatError(p, "file not found") from None
    except IsADirectoryError:
        raise DataFormatError(p, "is a folder, not an MRC file") from None
    except OSError as err:
        raise DataFormatError(p, f"cannot be read: {err.strerror}") from None
    if len(raw) < HEADER_BYTES:
        raise DataFormatError(p, f"truncated header: the file has {len(raw)} bytes, "
                              f"an MRC file starts with a {HEADER_BYTES}-byte header")
    if raw[208:211] != b"MAP":
        raise DataFormatError(p, f"no 'MAP ' word at byte 208 (found {raw[208:212]!r}); "
                              "not an MRC file, or its header is corrupt")
    order = _byte_order(p, raw)
    header = np.frombuffer(raw, dtype=HEADER_DTYPE.newbyteorder(order)).copy()

    def get(name):
        return int(header[name][0])

    mode = get("mode")
    if mode in _REFUSED:
        raise DataFormatError(p, f"holds {_REFUSED[mode]}; emsh reads the real-valued "
                              "modes 0, 1, 2, 6 and 12 only")
    if mode not in _MODES:
        raise DataFormatError(p, f"unknown data mode {mode}; MRC2014 modes are 0, 1, 2, 3, 4, "
                              "6, 12 and 101 (wrong byte order or corrupt header?)")
    nx, ny, nz = get("nx"), get("ny"), get("nz")
    if min(nx, ny, nz) <= 0:
        raise DataFormatError(p, f"dimensions nx={nx}, ny={ny}, nz={nz} must all be positive")
    nsymbt = get("nsymbt")
    if nsymbt < 0:
        raise DataFormatError(p, f"negative extended-header size nsymbt={nsymbt}")
    offset = HEADER_BYTES + nsymbt
    if offset > size:
        raise DataFormatError(p, f"extended header of nsymbt={nsymbt} bytes runs past the end "
                              f"of the file ({size} bytes)")
    itemsize = np.dtype(_MODES[mode]).itemsize
    nbytes = nx * ny * nz * itemsize
    dims = f"nx*ny*nz = {nx}*{ny}*{nz} in mode {mode}"
    if nbytes > MAX_DATA_BYTES:
        raise DataFormatError(p, f"absurd dimensions: {dims} would be {nbytes} bytes of data; "
                              "the header is corrupt")
    if size < offset + nbytes:
        raise DataFormatError(p, f"truncated: {dims} needs {nbytes} data bytes after "
                              f"{offset} header bytes, {offset + nbytes} in all, but the file "
                              f"has {size}")
    if size > offset + nbytes:
        raise DataFormatError(p, f"the file is {size - offset - nbytes} bytes longer than its "
                              f"header says ({dims}, nsymbt={nsymbt}: {offset + nbytes} bytes); "
                              "wrong nsymbt or an unfinished write?")
    ispg, mz = get("ispg"), get("mz")
    if 401 <= ispg <= 630:
        if mz <= 0 or nz % mz:
            raise DataFormatError(p, f"volume stack (ispg {ispg}) with nz={nz} not a multiple "
                                  f"of mz={mz}")
        kind, shape, n = "volume_stack", (mz, ny, nx), nz // mz
    elif nz == 1 and p.suffix.lower() != ".mrcs":
        kind, shape, n = "image", (ny, nx), 1
    elif ispg == 0 or p.suffix.lower() == ".mrcs":
        kind, shape, n = "stack", (ny, nx), nz
    else:
        kind, shape, n = "volume", (nz, ny, nx), 1
    axes = _axes(p, (get("mapc"), get("mapr"), get("maps")), kind)
    if axes is not None:
        shape = tuple(shape[i] for i in axes)
    return _Layout(p, header, order, mode, offset, kind, (nz, ny, nx), shape, n, axes)


def info(path: str | os.PathLike) -> ImageInfo:
    """Header facts of an MRC file, after the same checks as :func:`read`.

    Returns:
        ImageInfo with ``shape`` of one image ``(ny, nx)`` or volume ``(nz, ny, nx)``,
        ``n_images`` (members of a stack, else 1), ``apix`` in Å (None when the cell is
        unset) and ``extra`` holding mode, ispg, byte order, nsymbt, exttyp, origin (Å),
        dmin, dmax, dmean, rms and the text labels.

    Raises:
        DataFormatError: the file is missing, not MRC, or inconsistent.
    """
    lay = _inspect(path)
    labels = [" ".join(bytes(x).decode("ascii", "replace").split())
              for x in lay.header["label"][0]]
    extra = {
        "mode": lay.mode,
        "ispg": lay.field("ispg"),
        "byte_order": "little" if lay.order == "<" else "big",
        "nsymbt": lay.field("nsymbt"),
        "exttyp": bytes(lay.header["exttyp"][0]).decode("ascii", "replace").strip("\0 "),
        "origin": tuple(lay.field("origin", a) for a in "xyz"),
        "dmin": lay.field("dmin"),
        "dmax": lay.field("dmax"),
        "dmean": lay.field("dmean"),
        "rms": lay.field("rms"),
        "labels": [x for x in labels if x][: max(lay.field("nlabl"), 0)],
        "kind": lay.kind,
    }
    return ImageInfo(path=str(path), format="mrc", shape=lay.shape, n_images=lay.n,
                     is_stack=lay.kind in ("stack", "volume_stack"), apix=lay.apix,
                     extra=extra)


class _Mapped:
    """``mrcfile.mmap`` opened strictly; its exceptions and warnings become DataFormatError."""

    def __init__(self, path: Path):
        self.path = path
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                self.mrc = mrcfile.mmap(path, mode="r", permissive=False)
            except (ValueError, OSError) as err:
                raise DataFormatError(path, f"mrcfile refused it: {err}") from None
        if caught:
            self.mrc.close()
            raise DataFormatError(path, "; ".join(str(w.message) for w in caught))

    def __enter__(self):
        return self.mrc

    def __exit__(self, *exc):
        self.mrc.close()


def read(path: str | os.PathLike, index: int | None = None) -> np.ndarray:
    """Read an image, volume, stack member or whole stack as float32.

    Args:
        path: an MRC file.
        index: 1-based stack member, or None for everything. Member 1 of a single image is
            the image itself; a volume has no members.

    Returns:
        A new C-contiguous float32 array: ``(ny, nx)`` for an image or member,
        ``(nz, ny, nx)`` for a volume (reordered to (z, y, x) when mapc/mapr/maps say so),
        ``(n, ny, nx)`` for a whole image stack, ``(n, mz, ny, nx)`` for a volume stack.

    Raises:
        DataFormatError: bad or inconsistent file, refused mode, member out of range.
    """
    lay = _inspect(path)
    p = lay.path
    if index is not None:
        index = operator.index(index)
        if lay.kind == "volume":
            raise DataFormatError(p, f"is a volume of {lay.shape}, not a stack; "
                                  f"member {index} does not exist (read it without @N)")
        if not 1 <= index <= lay.n:
            raise DataFormatError(p, f"member {index} is out of range; the stack holds "
                                  f"members 1..{lay.n}")
    with _Mapped(p) as mrc:
        stored = mrc.data.reshape(lay.raw_shape)
        if lay.kind == "volume":
            out = stored if lay.axes is None else stored.transpose(lay.axes)
        elif lay.kind == "volume_stack":
            stored = stored.reshape((lay.n, *lay.shape))
            out = stored if index is None else stored[index - 1]
        elif lay.kind == "image":
            out = stored[0]
        else:
            out = stored if index is None else stored[index - 1]
        return np.array(out, dtype=np.float32, order="C", copy=True)


def _as_data(data, path) -> np.ndarray:
    arr = np.asarray(data)
    if arr.dtype.kind == "c":
        raise UsageError(f"{path}: emsh writes real data only; complex arrays have no MRC "
                         "mode here (write the real and imaginary parts separately)")
    if arr.dtype.kind not in "biuf":
        raise UsageError(f"{path}: cannot write {arr.dtype} data as an image")
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise UsageError(f"{path}: expected a non-empty 2D image or 3D volume/stack, "
                         f"got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _check_apix(apix, path) -> float | None:
    if apix is None:
        return None
    value = float(apix)
    if not (np.isfinite(value) and value > 0):
        raise UsageError(f"{path}: pixel size apix must be a positive number of Å, got {apix}")
    return value


def write(path: str | os.PathLike, data: np.ndarray, *, index: int | None = None,
          stack: bool = False, apix: float | None = None, overwrite: bool = False) -> None:
    """Write float32 (mode 2) MRC data.

    Args:
        path: destination; ``.mrcs`` makes an image stack (ispg 0), as does ``stack=True``;
            otherwise 3D data become a volume (ispg 1) and 2D data a single image.
        data: ``(ny, nx)``, ``(nz, ny, nx)`` or ``(n, ny, nx)``, converted to float32.
        index: 1-based member to write into an existing (or new) image stack: N <= n replaces
            member N in place, N = n + 1 appends; ``data`` must then be one ``(ny, nx)`` image.
        stack: write 3D data as an image stack.
        apix: pixel size in Å stored as the cell size; a member write keeps the stack's own
            pixel size unless ``apix`` is given.
        overwrite: allow replacing an existing file (not needed for member writes).

    A new file (or a replaced one) appears atomically. A member write changes the stack in
    place, data first and header last: an interrupted append leaves a stack that reading
    refuses as longer than its header says, an interrupted replacement stale statistics.

    Raises:
        OutputExistsError: ``path`` exists, ``index`` is None and ``overwrite`` is False.
        UsageError: bad data, a gap in member numbers, a member of the wrong shape, or a
            member write into a volume.
        DataFormatError: a member write into a file that is not a valid MRC file.
    """
    p = Path(path)
    arr = _as_data(data, p)
    apix = _check_apix(apix, p)
    if index is None:
        _write_new(p, arr, stack or p.suffix.lower() == ".mrcs", apix, overwrite)
        return
    index = operator.index(index)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise UsageError(f"{p}: member {index} must be one 2D image, got shape {arr.shape}")
    if index < 1:
        raise UsageError(f"{p}: stack members are numbered from 1, got {index}")
    if not p.exists():
        if index != 1:
            raise UsageError(f"{p}: the stack does not exist yet, so member {index} would "
                             "leave a gap; start with member 1")
        _write_new(p, arr, True, apix, overwrite=False)
        return
    _write_member(p, arr, index, apix)


def _write_new(p: Path, arr: np.ndarray, as_stack: bool, apix: float | None,
               overwrite: bool, order: str = "=") -> None:
    if as_stack and arr.ndim == 2:
        arr = arr[np.newaxis]
    with atomic_path(p, overwrite) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NaN/Inf: stats say so
            with mrcfile.new(tmp, overwrite=True) as mrc:
                mrc.set_data(arr.astype(np.dtype("f4").newbyteorder(order), copy=False))
                if arr.ndim == 3:
                    if as_stack:
                        mrc.set_image_stack()
                    else:
                        mrc.set_volume()
                if apix is not None:
                    mrc.voxel_size = apix


def _write_member(p: Path, img: np.ndarray, index: int, apix: float | None) -> None:
    lay = _inspect(p)
    if lay.kind not in ("stack", "image"):
        raise UsageError(f"{p}: is an MRC {lay.kind.replace('_', ' ')}, not an image stack; "
                         f"cannot write member {index}")
    if img.shape != lay.shape:
        raise UsageError(f"{p}: stack images are {lay.shape}, member {index} is {img.shape}")
    if index > lay.n + 1:
        raise UsageError(f"{p}: cannot write member {index}: the stack holds {lay.n} images, "
                         f"so members 1..{lay.n + 1} can be written (no gaps)")
    if apix is None:
        apix = lay.apix
    if lay.mode != 2:  # rare: rewrite the stack as float32
        whole = read(p).reshape((lay.n, *lay.shape))
        if index > lay.n:
            whole = np.concatenate([whole, img[np.newaxis]])
        else:
            whole[index - 1] = img
        _write_new(p, whole, True, apix, overwrite=True, order=lay.order)
        return
    _patch_member(lay, img, index, apix)


def _moments(x: np.ndarray) -> tuple[int, float, float]:
    """(count, mean, sum of squared deviations) in float64."""
    x = np.asarray(x, dtype=np.float64)
    mean = float(x.mean())
    return x.size, mean, float(np.square(x - mean).sum())


def _merge(a, b, sign: int = 1) -> tuple[int, float, float]:
    """Combine (count, mean, M2) moments (Chan et al.); sign=-1 removes ``b`` from ``a``."""
    na, ma, qa = a
    nb, mb, qb = b
    if sign > 0:
        n = na + nb
        delta = mb - ma
        return n, ma + delta * nb / n, qa + qb + delta * delta * na * nb / n
    n = na - nb
    mean = (na * ma - nb * mb) / n
    delta = mb - mean
    return n, mean, max(qa - qb - delta * delta * n * nb / na, 0.0)


def _disk_stats(p: Path, offset: int, dtype: np.dtype, count: int):
    data = np.memmap(p, dtype=dtype, mode="r", offset=offset, shape=(count,))
    lo, hi, acc = np.inf, -np.inf, None
    for start in range(0, count, _STATS_CHUNK):
        chunk = np.asarray(data[start:start + _STATS_CHUNK], dtype=np.float64)
        lo, hi = min(lo, float(chunk.min())), max(hi, float(chunk.max()))
        m = _moments(chunk)
        acc = m if acc is None else _merge(acc, m)
    del data
    return lo, hi, acc


def _patch_member(lay: _Layout, img: np.ndarray, index: int, apix: float | None) -> None:
    """Replace or append member ``index`` of a mode-2 stack in place and fix the header."""
    ny, nx = lay.shape
    npix = ny * nx
    dtype = np.dtype(lay.order + "f4")
    start = lay.offset + (index - 1) * npix * dtype.itemsize
    dmin, dmax = lay.field("dmin"), lay.field("dmax")
    mean, rms = lay.field("dmean"), lay.field("rms")
    known = rms >= 0 and dmax >= dmin
    old = None
    with open(lay.path, "r+b") as fh:
        if index <= lay.n:
            fh.seek(start)
            old = np.frombuffer(fh.read(npix * dtype.itemsize), dtype=dtype)
        fh.seek(start)
        fh.write(img.astype(dtype, copy=False).tobytes())
    n_new = max(lay.n, index)
    new64 = img.astype(np.float64)
    if known and (old is None or (old.min() > dmin and old.max() < dmax)):
        acc = (lay.n * npix, float(mean), lay.n * npix * float(rms) ** 2)
        if old is not None:
            acc = _merge(acc, _moments(old), sign=-1)
        acc = _merge(acc, _moments(new64))
        dmin, dmax = min(dmin, float(new64.min())), max(dmax, float(new64.max()))
    else:
        dmin, dmax, acc = _disk_stats(lay.path, lay.offset, dtype, n_new * npix)
    h = lay.header.copy()
    h["nz"] = n_new
    h["mz"] = 1
    h["ispg"] = 0
    h["dmin"], h["dmax"] = dmin, dmax
    h["dmean"], h["rms"] = acc[1], np.sqrt(acc[2] / acc[0])
    if apix is not None:
        for axis, m in (("x", "mx"), ("y", "my"), ("z", "mz")):
            h["cella"][axis] = apix * int(h[m][0])
    with open(lay.path, "r+b") as fh:
        fh.write(h.tobytes())
