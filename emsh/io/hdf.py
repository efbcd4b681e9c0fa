"""EMAN2 / SPHIRE HDF5 images (EMAN2's ``HdfIO2`` layout), read and written with h5py.

Layout: ``/MDF/images`` carries ``imageid_max`` (int32, highest image index, -1 when
empty); image ``i`` (0-based) is the group ``/MDF/images/<i>`` with its pixels in the
dataset ``image`` (``(nx)``, ``(ny, nx)`` or ``(nz, ny, nx)``) and its header as one
attribute ``EMAN.<key>`` per key. emsh member N is EMAN2 image N-1.

Attribute types follow ``HdfIO2::write_attr`` exactly, because EMAN2 reads nothing
else: int -> int32 (one element), float -> float32 (one element), bool -> one int8
``'T'``/``'F'``, str -> scalar fixed-length NUL-terminated string of ``len+1`` bytes,
int/float lists -> 1-D int32/float32, Transform -> one compound of 12 float32 fields
``"00"`` ... ``"23"`` (the row-major 3x4 matrix ``[R*scale | t]``, row 0 negated for an
x-mirror), CTF -> the ``EMAN2Ctf`` string ``"E<defocus> <dfdiff> <dfang> <bfactor>
<ampcont> <voltage> <cs> <apix> <dsbg> <n>,<bg..> <n>,<snr..>"`` (defocus µm,
underfocus positive). Transforms decode to ``{'type': 'spider', 'phi', 'theta', 'psi',
'tx', 'ty', 'tz', 'mirror', 'scale'}`` (``'2d'`` with ``'alpha'`` for keys ending in
``2d``), exactly EMAN2's ``Transform.get_params``. SPHIRE keeps projection shifts
negated in ``xform.projection``: use :func:`params_proj` / :func:`params_proj_transform`.

Bit-reduced ("compressed") images (uint8/uint16 with ``EMAN.stored_renderbits``,
``stored_rendermin``, ``stored_rendermax``) are decoded on read as EMAN2 does.

The header-value encoding lives in :mod:`emsh.io.eman2_header`; its public functions
are importable from here as well.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np

from emsh.errors import DataFormatError, UsageError
from emsh.io._atomic import atomic_path
from emsh.io._base import ImageInfo
from emsh.io.eman2_header import (  # the public names are re-exported (__all__)
    _PREFIX, _decode, _encode, _prepared, _store, _user_entries, ctf_from_string,
    ctf_to_string, params_proj, params_proj_transform, transform_matrix, transform_params,
)

__all__ = [
    "sniff", "info", "read", "write", "read_attributes", "write_attributes",
    "write_stack_with_attributes", "transform_matrix", "transform_params",
    "params_proj", "params_proj_transform", "ctf_to_string", "ctf_from_string",
]

SIGNATURE = b"\x89HDF\r\n\x1a\n"
_MAX_BYTES = 1 << 38                # refuse reads larger than 256 GiB before allocating


# ----------------------------------------------------------------------------- file access
@contextlib.contextmanager
def _opened(path, mode: str = "r") -> Iterator[h5py.File]:
    """Open an HDF5 file; any HDF5 failure inside becomes a DataFormatError naming it."""
    p = Path(path)
    if not p.is_file():
        raise DataFormatError(p, "file not found")
    with open(p, "rb") as fh:
        if fh.read(8) != SIGNATURE:
            raise DataFormatError(p, "not an HDF5 file (no HDF5 signature)")
    try:
        f = h5py.File(p, mode)
    except OSError as exc:
        raise DataFormatError(p, f"cannot open as HDF5, damaged or truncated ({exc})") from None
    try:
        with f:
            yield f
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise DataFormatError(p, f"damaged HDF5 file ({exc})") from None


def _images(f: h5py.File, path) -> tuple[h5py.Group, int]:
    """The ``/MDF/images`` group and its ``imageid_max``, checked."""
    if "num_dataset" in f.attrs:
        raise DataFormatError(path, "old EMAN2 HDF layout (HdfIO v1, root 'num_dataset'); "
                              "convert it with a current e2proc2d.py")
    grp = f.get("MDF/images")
    if not isinstance(grp, h5py.Group):
        raise DataFormatError(path, "HDF5 file without an EMAN2 image group /MDF/images")
    if "imageid_max" not in grp.attrs:
        raise DataFormatError(path, "/MDF/images has no 'imageid_max' attribute")
    aid = grp.attrs.get_id("imageid_max")
    raw = np.asarray(grp.attrs["imageid_max"]).ravel()
    if aid.get_type().get_class() != h5py.h5t.INTEGER or raw.size != 1:
        raise DataFormatError(path, "/MDF/images 'imageid_max' is not one integer")
    idmax = int(raw[0])
    if idmax < -1:
        raise DataFormatError(path, f"/MDF/images 'imageid_max' is {idmax}; must be >= -1")
    return grp, idmax


def _member(grp: h5py.Group, idmax: int, index, path) -> int:
    """EMAN2's 0-based index for emsh's 1-based member number, checked against the file."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 1:
        raise UsageError(f"{path}: member {index!r}; members are numbered from 1")
    if index > idmax + 1:
        raise DataFormatError(path, f"member {index} requested; the file holds {idmax + 1} "
                              "images")
    return int(index) - 1


def _dataset(grp: h5py.Group, i: int, path) -> h5py.Dataset:
    where = f"image {i + 1} (EMAN2 index {i})"
    g = grp.get(str(i))
    if not isinstance(g, h5py.Group):
        raise DataFormatError(path, f"{where} does not exist")
    ds = g.get("image")
    if not isinstance(ds, h5py.Dataset):
        raise DataFormatError(path, f"{where} has no 'image' dataset")
    if ds.ndim not in (1, 2, 3) or min(ds.shape) < 1:
        raise DataFormatError(path, f"{where} has pixel array of shape {ds.shape}; expected "
                              "(nx), (ny, nx) or (nz, ny, nx)")
    if int(np.prod(ds.shape)) * 4 > _MAX_BYTES:
        raise DataFormatError(path, f"{where} claims shape {ds.shape}, beyond the read limit")
    dt = ds.dtype
    if not ((dt.kind in "iu" and dt.itemsize <= 4) or (dt.kind == "f" and dt.itemsize >= 2)):
        raise DataFormatError(path, f"{where} has pixel type {dt}; expected float32 or 8/16-bit "
                              "integers")
    return ds


def _render(g: h5py.Group, i: int, path) -> tuple[float, float, int] | None:
    """``(min, max, bits)`` when image ``i`` is bit-reduced, else None."""
    if "EMAN.stored_renderbits" not in g.attrs:
        return None
    bits = _decode("stored_renderbits", g, "EMAN.stored_renderbits")
    if not isinstance(bits, int) or isinstance(bits, bool) or not 0 <= bits <= 16:
        raise DataFormatError(path, f"image {i + 1}: stored_renderbits {bits!r}; expected 0..16")
    if bits == 0:
        return None
    try:
        lo = float(_decode("", g, "EMAN.stored_rendermin"))
        hi = float(_decode("", g, "EMAN.stored_rendermax"))
    except (KeyError, TypeError, ValueError):
        raise DataFormatError(path, f"image {i + 1} is bit-reduced but lacks one number "
                              "'stored_rendermin'/'stored_rendermax'") from None
    return lo, hi, bits


def _pixels(grp: h5py.Group, i: int, path) -> np.ndarray:
    ds = _dataset(grp, i, path)
    out = np.empty(ds.shape if ds.ndim > 1 else (1, ds.shape[0]), np.float32)
    ds.read_direct(out.reshape(ds.shape))
    r = _render(grp[str(i)], i, path)
    if r is not None:
        lo, hi, bits = r
        out *= np.float32((hi - lo) / ((1 << bits) - 1))
        out += np.float32(lo)
    return out


def _shape(ds: h5py.Dataset) -> tuple[int, ...]:
    return tuple(ds.shape) if ds.ndim > 1 else (1, ds.shape[0])


def sniff(head: bytes) -> bool:
    """True when ``head`` starts with the HDF5 signature ``\\x89HDF\\r\\n\\x1a\\n``."""
    return bytes(head[:8]) == SIGNATURE


def info(path: str | os.PathLike) -> ImageInfo:
    """Header facts of an EMAN2 file: ``n_images`` = imageid_max + 1, the first image's
    shape, pixel size from its ``apix_x`` (Å, None when absent); ``extra`` holds
    ``imageid_max``, the pixel ``dtype`` and whether the first image is ``compressed``.
    """
    with _opened(path) as f:
        grp, idmax = _images(f, path)
        if idmax < 0:
            raise DataFormatError(path, "EMAN2 file holds no images (imageid_max = -1)")
        first = 0 if "0" in grp else min((int(k) for k in grp if k.isdigit()), default=0)
        ds = _dataset(grp, first, path)
        apix = None
        if "EMAN.apix_x" in grp[str(first)].attrs:
            value = _decode("apix_x", grp[str(first)], "EMAN.apix_x")
            apix = float(value) if isinstance(value, (int, float)) else None
        extra = {"imageid_max": idmax, "dtype": str(ds.dtype),
                 "compressed": _render(grp[str(first)], first, path) is not None}
        return ImageInfo(path=str(path), format="hdf", shape=_shape(ds), n_images=idmax + 1,
                         is_stack=idmax > 0, apix=apix, extra=extra)


def read(path: str | os.PathLike, index: int | None = None) -> np.ndarray:
    """Read member ``index`` (1-based), or the whole file as float32.

    Args:
        path: an EMAN2/SPHIRE ``.hdf`` file.
        index: member number N (EMAN2 image N-1), or None for the whole file.

    Returns:
        ``(ny, nx)`` or ``(nz, ny, nx)``; a whole file of n > 1 equal-shaped images gives
        ``(n, ny, nx)`` (``(n, nz, ny, nx)`` for volumes). A 1-D EMAN2 image reads as
        ``(1, nx)``. Bit-reduced images are scaled back to their stored range.

    Raises:
        DataFormatError: not an EMAN2 HDF file, damaged, member missing or out of range,
            or (whole file) images of different sizes (the message lists them).
    """
    with _opened(path) as f:
        grp, idmax = _images(f, path)
        if index is not None:
            return _pixels(grp, _member(grp, idmax, index, path), path)
        if idmax < 0:
            raise DataFormatError(path, "EMAN2 file holds no images (imageid_max = -1)")
        shapes = [_shape(_dataset(grp, i, path)) for i in range(idmax + 1)]
        if len(set(shapes)) > 1:
            sizes = ", ".join(f"{'x'.join(map(str, s[::-1]))} ({shapes.count(s)})"
                              for s in sorted(set(shapes)))
            raise DataFormatError(path, f"images differ in size ({sizes}); read them one at a "
                                  "time with file@N")
        if (idmax + 1) * int(np.prod(shapes[0])) * 4 > _MAX_BYTES:
            raise DataFormatError(path, f"{idmax + 1} images of {shapes[0]} exceed the read limit")
        if idmax == 0:
            return _pixels(grp, 0, path)
        out = np.empty((idmax + 1,) + shapes[0], np.float32)
        for i in range(idmax + 1):
            out[i] = _pixels(grp, i, path)
        return out


# ----------------------------------------------------------------------------- writing
def _put_image(grp: h5py.Group, i: int, img: np.ndarray, encoded: list, bits) -> None:
    """Create (or replace, header and all, as EMAN2 does) image ``i``."""
    if str(i) in grp:
        del grp[str(i)]
    g = grp.create_group(str(i))
    nz, ny, nx = (1,) * (3 - img.ndim) + img.shape       # EMAN2's rank: 1, 2 or 3
    data = img.reshape((nx,) if nz == ny == 1 else (ny, nx) if nz == 1 else (nz, ny, nx))
    for name, enc in encoded:
        _store(g, name, enc)
    if bits is None:
        g.create_dataset("image", data=np.ascontiguousarray(data, np.float32))
        return
    chunks = (1,) * (data.ndim - 2) + tuple(min(n, 256) for n in data.shape[-2:])
    chunks = chunks if data.ndim > 1 else (min(data.shape[0], 256),)
    if bits == 0:
        g.create_dataset("image", data=data, dtype=np.float32, chunks=chunks, compression="gzip",
                         compression_opts=1)
        return
    lo, hi = float(data.min()), float(data.max())
    top = (1 << bits) - 1
    span = hi - lo if hi > lo else 1.0
    q = np.floor((data.astype(np.float64) - lo) / span * top + 0.5)   # C roundf, v >= 0
    trunc = int(np.count_nonzero(data <= lo) + np.count_nonzero(data >= hi))
    g.create_dataset("image", data=np.clip(q, 0, top).astype(np.uint8 if bits <= 8 else np.uint16),
                     chunks=chunks, compression="gzip", compression_opts=1)
    for key, value in (("stored_rendermin", lo), ("stored_rendermax", hi),
                       ("stored_renderbits", bits), ("stored_truncated", trunc)):
        _store(g, _PREFIX + key, _encode(key, value))


def _as_images(data, stack: bool, path) -> list[np.ndarray]:
    if isinstance(data, (list, tuple)):
        items = [np.asarray(d) for d in data]
    else:
        arr = np.asarray(data)
        items = list(arr) if stack and arr.ndim in (3, 4) else [arr]
    for it in items:
        if it.dtype.kind not in "biuf":
            raise UsageError(f"{path}: {it.dtype} data cannot be written as EMAN2 real images")
        if it.ndim not in (2, 3) or it.size == 0:
            raise UsageError(f"{path}: an EMAN2 image is 2-D or 3-D and not empty; got shape "
                             f"{it.shape}")
    return [np.ascontiguousarray(it, dtype=np.float32) for it in items]


def _check_bits(bits) -> None:
    if bits is not None and not (isinstance(bits, int) and 0 <= bits <= 16):
        raise UsageError(f"compress_bits {bits!r}: use 0 (deflated float) to 16, or None")


def _write_new(path, images: list, attrs_list, first: int, apix, overwrite, bits) -> None:
    encoded = [_prepared(img, a, apix, bits) for img, a in zip(images, attrs_list)]
    with atomic_path(path, overwrite) as tmp, h5py.File(tmp, "w", libver="earliest") as f:
        grp = f.create_group("MDF").create_group("images")
        _store(grp, "imageid_max", _encode("imageid_max", first + len(images) - 1))
        for k, (img, enc) in enumerate(zip(images, encoded)):
            _put_image(grp, first + k, img, enc, bits)


def write(path: str | os.PathLike, data, *, index: int | None = None, stack: bool = False,
          apix: float | None = None, overwrite: bool = False,
          compress_bits: int | None = None) -> None:
    """Write an image, volume or stack; with ``index`` write member N (EMAN2 image N-1).

    Args:
        path: destination file.
        data: ``(ny, nx)`` image, ``(nz, ny, nx)`` volume, or with ``stack`` an
            ``(n, ny, nx)`` / ``(n, nz, ny, nx)`` array written as n images.
        index: member number (1-based). Into an existing EMAN2 file it replaces that
            image and its whole header (as EMAN2 does) in place, raising ``imageid_max``
            when N is beyond it; a missing file is created holding only that member.
        stack: split the first axis into images (not with ``index``).
        apix: pixel size in Å for ``apix_x/y/z``; for a member write it defaults to the
            first image's, otherwise it is left out (EMAN2 then assumes 1.0).
        overwrite: allow replacing an existing file (whole-file writes, which are atomic).
        compress_bits: None for plain float32; 0..16 for EMAN2's deflated, bit-reduced
            storage (each image's min..max mapped to 0..2^bits-1; 0 keeps float32).

    Raises:
        OutputExistsError: the file exists and ``overwrite`` is False (whole-file write).
        UsageError: data that is not a real 2-D/3-D image, or bad index/options.
        DataFormatError: a member write into a file that is not EMAN2 HDF.
    """
    _check_bits(compress_bits)
    if index is None:
        images = _as_images(data, stack, path)
        _write_new(path, images, [None] * len(images), 0, apix, overwrite, compress_bits)
        return
    if stack:
        raise UsageError(f"{path}: give a member number or stack=True, not both")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 1:
        raise UsageError(f"{path}: member {index!r}; members are numbered from 1")
    (img,) = _as_images(data, False, path)
    if not Path(path).exists():
        _write_new(path, [img], [None], int(index) - 1, apix, False, compress_bits)
        return
    with _opened(path, "r+") as f:
        grp, idmax = _images(f, path)
        if apix is None and idmax >= 0:
            first = min((int(k) for k in grp if k.isdigit()), default=None)
            if first is not None and "EMAN.apix_x" in grp[str(first)].attrs:
                apix = _decode("apix_x", grp[str(first)], "EMAN.apix_x")
        enc = _prepared(img, None, apix, compress_bits)
        _put_image(grp, int(index) - 1, img, enc, compress_bits)
        if index - 1 > idmax:
            _store(grp, "imageid_max", _encode("imageid_max", int(index) - 1))


def write_stack_with_attributes(path: str | os.PathLike, data, attrs_list: Sequence[dict | None],
                                overwrite: bool = False, *, apix: float | None = None,
                                compress_bits: int | None = None) -> None:
    """Write n images with their own header entries in one atomic write.

    ``data`` is an ``(n, ny, nx)`` / ``(n, nz, ny, nx)`` array or a list of 2-D/3-D arrays
    (sizes may differ); ``attrs_list[i]`` holds extra header keys for image i, e.g. ISAC2
    class averages' ``{'members': [...], 'n_objects': k}``. Encoding as in
    :func:`write_attributes`; every value is checked before anything is written.
    """
    _check_bits(compress_bits)
    images = _as_images(data, True, path)
    if len(attrs_list) != len(images):
        raise UsageError(f"{path}: {len(images)} images but {len(attrs_list)} attribute sets")
    _write_new(path, images, list(attrs_list), 0, apix, overwrite, compress_bits)


def read_attributes(path: str | os.PathLike, index: int | None) -> dict | list[dict]:
    """Header of member ``index`` (1-based) as Python values, ``EMAN.`` stripped.

    Ints, floats (float32 shown as their shortest decimal), bools and strings as such;
    number arrays as lists (one element as a scalar, as in EMAN2, except ``members``,
    ``class_ptcl_idxs``, ``exc_class_ptcl_idxs``, ``class_ssnr``); Transforms and CTFs as
    dicts (see module doc). ``index=None`` gives a list with every image's header.
    """
    with _opened(path) as f:
        grp, idmax = _images(f, path)
        members = range(idmax + 1) if index is None else [_member(grp, idmax, index, path)]
        out = []
        for i in members:
            _dataset(grp, i, path)
            g, head = grp[str(i)], {}
            for name in g.attrs:
                key = name[len(_PREFIX):] if name.startswith(_PREFIX) else name
                if key in head and not name.startswith(_PREFIX):
                    continue
                try:
                    head[key] = _decode(key, g, name)
                except ValueError as exc:
                    raise DataFormatError(path, f"image {i + 1} header {key!r}: {exc}") from None
            out.append(head)
        return out if index is None else out[0]


def write_attributes(path: str | os.PathLike, index: int, attrs: dict) -> None:
    """Add or replace header keys of member ``index`` (1-based) in place, EMAN2-typed.

    Python int -> int32, float -> float32, bool -> int8 'T'/'F', str -> fixed-length
    string, int list -> int32 array, float list -> float32 array, ``{'type': ...}`` ->
    Transform, ``{'defocus': ...}`` -> CTF string, a 3x4 array -> Transform; None deletes
    the key. ``nx/ny/nz`` must agree with the pixels; EMAN2's render keys are skipped.
    """
    with _opened(path, "r+") as f:
        grp, idmax = _images(f, path)
        i = _member(grp, idmax, index, path)
        ds = _dataset(grp, i, path)
        todo = _user_entries(attrs, dict(zip(("nz", "ny", "nx"),
                                             (1,) * (3 - ds.ndim) + ds.shape)))
        g = grp[str(i)]
        for name, enc in todo.items():
            if enc is None:
                if name in g.attrs:
                    del g.attrs[name]
            else:
                _store(g, name, enc)
