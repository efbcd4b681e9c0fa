"""SPIDER image files: images, volumes, stacks and Fourier files, byte-compatible with SPIDER.

Layout (``docs/image_doc.html``): a header of ``LABBYT`` bytes, then ``NZ*NY``
records of ``NX`` float32. A stack has an overall header, then per member its own
header and data; member ``i`` (1-based) starts at ``LABBYT + (i-1)*(LABBYT + 4*NX*NY*NZ)``.
Unused slots hold an all-zero header (IMGNUM=0) and zero data. Pixel (1,1) is the
upper-left corner; arrays come back as float32 in numpy order ``(ny, nx)``,
``(nz, ny, nx)``, ``(n, ny, nx)`` or ``(n, nz, ny, nx)``. Either byte order is read;
new files are little-endian.

Fourier files (IFORM -11/-12 2D, -21/-22 3D, odd/even real NX) hold the half
spectrum, record length NX+2 (even NX) or NX+1 (odd): they read as complex64
``(..., ny, nx//2+1)`` holding the values as stored. SPIDER's forward FT is
``conj(numpy.fft.rfftn(x))`` (unnormalised); this module does not convert.

Statistics written with the data (words 6-10, IMAMI=1) are computed in float64
like SPIDER: SIG uses N-1. They are bit-identical to SPIDER's.

Writing one member of an existing stack (``index=N``) updates the file in place,
as SPIDER does: the member is written first and MAXIM (word 26 of the overall
header) last, so an interrupted write leaves a readable stack. Every other write
goes through a temporary file and a rename.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from emsh.errors import DataFormatError, UsageError
from emsh.io._atomic import atomic_open
from emsh.io._base import ImageInfo
from emsh.io.spider_header import (
    HEADER_WORDS, LAYOUT_WORDS, MAX_DIM, MIN_HEADER_BYTES, STACK_FLAG, TEXT_WORD, Layout,
    SpiderHeader, decode, header_bytes, header_records, is_plausible, member_words,
    overall_words, text_block, word_number, write_options,
)

__all__ = ["SpiderHeader", "sniff", "info", "read", "read_header", "read_stack_headers",
           "write", "write_fourier", "set_header_words"]

_CHUNK_BYTES = 64 << 20  # whole-stack writes go in blocks of about this size
_MAX_FILE_BYTES = 1 << 46  # refuse to create files larger than 64 TiB


# ----------------------------------------------------------------------------- reading

def sniff(head: bytes) -> bool:
    """True if ``head`` (the first 1024 bytes) is a plausible SPIDER header, either byte order."""
    return is_plausible(head)


def _split(address) -> tuple[str, int | None]:
    from emsh.io import split_address  # the package imports this module lazily

    path, n, _ = split_address(address)
    return path, n


def _open(path: str) -> tuple[SpiderHeader, Layout]:
    """Decode and validate the first header and check the file size against it."""
    try:
        size = os.stat(path).st_size
        with open(path, "rb") as fh:
            head = fh.read(MIN_HEADER_BYTES)
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except IsADirectoryError:
        raise DataFormatError(path, "is a folder, not an image file") from None
    h = decode(head, path)
    lay = Layout.of(h)
    need = lay.expected_size
    if lay.is_stack and size < need:
        raise DataFormatError(path, (
            f"stack with MAXIM={lay.maxim} members of {lay.member_bytes} bytes needs {need} "
            f"bytes but the file has {size}: truncated, or MAXIM (word 26) is wrong"))
    if not lay.is_stack and size != need:
        why = "truncated" if size < need else "extra bytes after the image"
        raise DataFormatError(path, (
            f"header (NX={lay.nx}, NY={lay.ny}, NZ={lay.nz}, LABBYT={lay.labbyt}) implies "
            f"{need} bytes but the file has {size} ({why})"))
    return h, lay


def _member_header(fh, path: str, lay: Layout, index: int) -> SpiderHeader:
    """Read and check the header of stack member ``index``."""
    if not 1 <= index <= lay.maxim:
        raise DataFormatError(path, (
            f"stack member {index} does not exist; the stack holds members 1..{lay.maxim} "
            "(MAXIM, word 26)"))
    fh.seek(lay.member_offset(index))
    head = fh.read(MIN_HEADER_BYTES)
    w = np.zeros(HEADER_WORDS, np.float32)
    w[: len(head) // 4] = np.frombuffer(head[: len(head) // 4 * 4], dtype=lay.byteorder + "f4")
    imgnum = float(w[26])
    if imgnum == 0:
        raise DataFormatError(path, (
            f"stack member {index} is an unused slot (IMGNUM=0 in its header): "
            "it was never written"))
    if imgnum != index:
        raise DataFormatError(path, f"header of stack member {index} says IMGNUM={imgnum:g}")
    for k, name, want in ((12, "NX", lay.nx), (2, "NY", lay.ny), (1, "NZ", lay.nz),
                          (5, "IFORM", lay.iform)):
        got = abs(float(w[k - 1])) if k == 1 else float(w[k - 1])
        if got != want:
            raise DataFormatError(path, (
                f"header of stack member {index} has {name}={got:g} but the overall header "
                f"has {name}={want}"))
    return SpiderHeader(w, lay.byteorder, head[4 * (TEXT_WORD - 1): 4 * HEADER_WORDS])


def _as_output(a: np.ndarray, lay: Layout, lead: tuple[int, ...]) -> np.ndarray:
    """Records ``(..., nx)`` in file order -> native float32 or complex64 of the data shape."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    if lay.is_fourier:
        a = a.view(np.complex64)
    return a.reshape(lead + lay.data_shape)


def _mmap_view(a: np.ndarray, lay: Layout, lead: tuple[int, ...]) -> np.ndarray:
    if lay.is_fourier:
        a = a.view(lay.byteorder + "c8")
    return a.reshape(lead + lay.data_shape)


def read(path: str | os.PathLike, index: int | None = None, *, mmap: bool = False) -> np.ndarray:
    """Read an image, volume, one stack member or a whole stack.

    Args:
        path: the file (a ``file@N`` address is accepted too).
        index: 1-based stack member; None reads the whole file. Member 1 of a simple
            file is the file itself, as in SPIDER.
        mmap: return a read-only memory-mapped view in the file's byte order instead
            of a copy (useful for large stacks).

    Returns:
        float32 ``(ny, nx)``, ``(nz, ny, nx)``, or for a whole stack ``(n, ny, nx)`` /
        ``(n, nz, ny, nx)`` (unused slots read as zeros); Fourier files give complex64
        with last axis ``nx//2 + 1``.

    Raises:
        DataFormatError: a bad header, a truncated file, a member out of range or an
            unused slot; the message names the file.
    """
    path, n = _split(path)
    index = n if index is None else int(index)
    h, lay = _open(path)
    if lay.is_stack and index is None:
        return _read_stack(path, lay, mmap)
    if not lay.is_stack and index not in (None, 1):
        raise DataFormatError(path, f"not a stack, so it has no member {index}")
    with open(path, "rb") as fh:
        if lay.is_stack:
            _member_header(fh, path, lay, index)
        offset = lay.data_offset(index)
        if mmap:
            view = np.memmap(path, dtype=lay.byteorder + "f4", mode="r", offset=offset,
                             shape=(lay.image_floats,))
            return _mmap_view(view, lay, ())
        fh.seek(offset)
        a = np.fromfile(fh, dtype=lay.byteorder + "f4", count=lay.image_floats)
    if a.size != lay.image_floats:
        raise DataFormatError(path, "file ended inside the image data (truncated)")
    return _as_output(a, lay, ())


def _read_stack(path: str, lay: Layout, mmap: bool) -> np.ndarray:
    n = lay.maxim
    if n == 0:
        dtype = np.complex64 if lay.is_fourier else np.float32
        return np.zeros((0,) + lay.data_shape, dtype)
    mm = np.memmap(path, dtype=lay.byteorder + "f4", mode="r", offset=lay.labbyt,
                   shape=(n, lay.member_bytes // 4))
    _check_member_headers(path, lay, mm[:, :HEADER_WORDS])
    data = mm[:, lay.label_floats:]
    if mmap:
        return _mmap_view(data, lay, (n,))
    out = np.empty((n, lay.image_floats), np.float32)
    out[...] = data
    del mm, data
    return _as_output(out, lay, (n,))


def _check_member_headers(path: str, lay: Layout, hdr: np.ndarray) -> None:
    """Vectorised check that every used member header matches its slot and the stack."""
    imgnum = np.asarray(hdr[:, 26], dtype=np.float64)
    used = imgnum != 0
    slots = np.arange(1, hdr.shape[0] + 1)
    bad = used & (imgnum != slots)
    for k, name, want in ((12, "NX", lay.nx), (2, "NY", lay.ny), (1, "NZ", lay.nz),
                          (5, "IFORM", lay.iform)):
        col = np.asarray(hdr[:, k - 1], dtype=np.float64)
        bad |= used & ((np.abs(col) if k == 1 else col) != want)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFormatError(path, (
            f"header of stack member {i + 1} does not match the stack (IMGNUM="
            f"{imgnum[i]:g}, NX={float(hdr[i, 11]):g}, NY={float(hdr[i, 1]):g}, "
            f"IFORM={float(hdr[i, 4]):g}; expected IMGNUM={i + 1} or 0, NX={lay.nx}, "
            f"NY={lay.ny}, IFORM={lay.iform})"))


def read_header(path: str | os.PathLike, index: int | None = None) -> SpiderHeader:
    """The header of a simple file, of a stack (overall header) or of member ``index``.

    ``index`` 0 (or None on a stack) gives the overall header. ``file@N`` is accepted.
    """
    path, n = _split(path)
    index = n if index is None else int(index)
    h, lay = _open(path)
    if not index or (not lay.is_stack and index == 1):
        return h
    if not lay.is_stack:
        raise DataFormatError(path, f"not a stack, so it has no member {index}")
    with open(path, "rb") as fh:
        return _member_header(fh, path, lay, index)


def read_stack_headers(path: str | os.PathLike) -> np.ndarray:
    """All member headers of a stack as float32 ``(n, 256)``; column k-1 holds word k.

    Unused slots give all-zero rows. A simple file gives its one header, ``(1, 256)``.
    Text words (212-256) are meaningless as numbers.
    """
    path, _ = _split(path)
    h, lay = _open(path)
    if not lay.is_stack:
        return h.words[None, :].copy()
    if lay.maxim == 0:
        return np.zeros((0, HEADER_WORDS), np.float32)
    mm = np.memmap(path, dtype=lay.byteorder + "f4", mode="r", offset=lay.labbyt,
                   shape=(lay.maxim, lay.member_bytes // 4))
    out = np.array(mm[:, :HEADER_WORDS], dtype=np.float32)
    del mm
    return out


def info(path: str | os.PathLike) -> ImageInfo:
    """Header facts: real-space ``shape`` of one image, stack size, pixel size, Fourier flag.

    ``extra`` holds every named header word (overall header for stacks), ``date``,
    ``time``, ``title``, ``byteorder`` and ``data_shape`` (the shape :func:`read` gives
    for one image: for Fourier files the complex half spectrum).
    """
    path, _ = _split(path)
    h, lay = _open(path)
    extra = h.as_dict()
    extra["data_shape"] = lay.data_shape
    pix = float(h["pixsiz"])
    return ImageInfo(path=str(path), format="spider", shape=lay.real_shape,
                     n_images=lay.maxim if lay.is_stack else 1, is_stack=lay.is_stack,
                     apix=pix if pix > 0 else None, is_fourier=lay.is_fourier, extra=extra)


# ----------------------------------------------------------------------------- writing

def _geometry(arr: np.ndarray, index, stack: bool, real_shape) -> tuple[np.ndarray, Layout, bool]:
    """``(records (n, nz, ny, nxrec) float32, layout, is_stack)`` for the data to write."""
    if real_shape is None:
        if np.iscomplexobj(arr):
            raise UsageError("complex data is written as a SPIDER Fourier file: give "
                             "real_shape=(ny, nx) or (nz, ny, nx) (see write_fourier)")
        if arr.ndim not in (2, 3, 4) or (index is not None and arr.ndim == 4):
            raise UsageError(f"cannot write a {arr.ndim}-D array as a SPIDER "
                             f"{'stack member' if index is not None else 'file'}")
        many = index is None and (stack or arr.ndim == 4)
        if many and arr.ndim == 2:
            arr = arr[None]
        volume = arr.ndim - int(many) == 3
        img = arr.shape[-3:] if volume else (1,) + arr.shape[-2:]
        nrec, iform = img[-1], (3 if volume else 1)
        recs = np.ascontiguousarray(arr, dtype=np.float32)
    else:
        rs = tuple(int(v) for v in real_shape)
        if len(rs) not in (2, 3) or min(rs) < 1:
            raise UsageError(f"real_shape must be (ny, nx) or (nz, ny, nx), got {real_shape}")
        volume = len(rs) == 3
        img = rs if volume else (1,) + rs
        half = img[:2] + (img[2] // 2 + 1,)
        want = half if volume else half[1:]
        many = index is None and (stack or arr.ndim == len(want) + 1)
        if many and arr.ndim == len(want):
            arr = arr[None]
        if arr.shape[int(many):] != want or arr.ndim != len(want) + int(many):
            raise UsageError(f"a Fourier file of real shape {rs} holds complex arrays of shape "
                             f"{want} (or a stack of them); got {arr.shape}")
        nrec = 2 * half[2]  # NX+2 (even NX) or NX+1 (odd NX)
        iform = (-22 if volume else -12) if img[2] % 2 == 0 else (-21 if volume else -11)
        recs = np.ascontiguousarray(arr, dtype=np.complex64).view(np.float32)
    if min(img) < 1 or max(img) > MAX_DIM or recs.size == 0:
        raise UsageError(f"image size {img[::-1]} (NX, NY, NZ) is outside 1..{MAX_DIM}")
    n = recs.shape[0] if many else 1
    recs = recs.reshape(n, img[0], img[1], nrec)
    _, labbyt = header_records(nrec)
    lay = Layout(nrec, img[1], img[0], iform, labbyt, "<", STACK_FLAG if many else 0,
                 n if many else 1)
    return recs, lay, many


def _member_blocks(recs, lay, first, opts, apix, order, text):
    """Yield ``(header + data)`` byte blocks of consecutive members, a chunk at a time."""
    k_max = max(1, _CHUNK_BYTES // lay.member_bytes)
    tb = np.frombuffer(text, np.uint8)
    for s in range(0, recs.shape[0], k_max):
        part = recs[s: s + k_max]
        k = part.shape[0]
        block = np.zeros((k, lay.member_bytes // 4), dtype=order + "f4")
        block[:, :HEADER_WORDS] = member_words(part, lay, first + s, opts, apix)
        block[:, lay.label_floats:] = part.reshape(k, -1)
        block.view(np.uint8).reshape(k, -1)[:, 4 * (TEXT_WORD - 1): 4 * HEADER_WORDS] = tb
        yield block


def write(path: str | os.PathLike, data, *, index: int | None = None, stack: bool = False,
          apix: float | None = None, overwrite: bool = False, **extra) -> None:
    """Write an image, volume, stack or one stack member as a SPIDER file.

    Args:
        path: destination (``file@N`` is accepted and means ``index=N``).
        data: float array ``(ny, nx)``, ``(nz, ny, nx)``; a stack ``(n, ny, nx)`` with
            ``stack=True`` or ``(n, nz, ny, nx)``. Complex half spectra need ``real_shape``.
        index: write member N (1-based) of a new or existing stack; missing slots below N
            are created empty (IMGNUM=0, zero data) and MAXIM is raised to N.
        stack: write 3D data as a stack of images rather than a volume.
        apix: pixel size in Å (word 38).
        overwrite: allow replacing an existing file (not needed to add a member).
        **extra: ``stats`` (default True: words 6-10 with IMAMI=1; False leaves them 0 as
            most SPIDER operations do), ``angles`` (phi, theta, psi: words 15-17, IANGLE=1),
            ``proj_angles`` (phi, theta, psi as written by PJ 3Q: words 103, 102, 101 and
            LANGLE=1 in 104), ``header`` ({word number or name: value}; in a stack these
            go to the member headers), ``title`` (text),
            ``real_shape`` (Fourier data), ``byteorder`` ("<" default, or ">").
            Per-image values may be one row per stack member.

    Raises:
        UsageError: bad data or options, or a member whose size differs from the stack's.
        OutputExistsError: the file exists and ``overwrite`` is False.
    """
    path, n = _split(path)
    index = n if index is None else index
    if index is not None and int(index) < 1:
        raise UsageError(f"{path}: stack members are numbered from 1, got {index}")
    arr = np.asarray(data)
    recs, lay, many = _geometry(arr, index, stack, extra.pop("real_shape", None))
    order = extra.pop("byteorder", "<")
    if order not in ("<", ">"):
        raise UsageError(f"byteorder must be '<' or '>', got {order!r}")
    text = text_block(extra.pop("title", None))
    if index is not None:
        opts = write_options(extra, 1, int(index))
        _write_member(path, recs, lay, int(index), opts, apix, overwrite, order, text)
        return
    opts = write_options(extra, recs.shape[0], 1)
    lay = Layout(lay.nx, lay.ny, lay.nz, lay.iform, lay.labbyt, order, lay.istack, lay.maxim)
    with atomic_open(path, "wb", overwrite=overwrite) as fh:
        if many:
            fh.write(header_bytes(overall_words(lay, apix), lay.labbyt, order, text))
            for block in _member_blocks(recs, lay, 1, opts, apix, order, text):
                fh.write(block.data)
        else:
            words = member_words(recs, lay, 1, opts, apix)[0]
            fh.write(header_bytes(words, lay.labbyt, order, text))
            fh.write(np.ascontiguousarray(recs, dtype=order + "f4").data)


def _write_member(path, recs, lay, index, opts, apix, overwrite, order, text) -> None:
    p = Path(path)
    if p.exists():
        try:
            _, old = _open(str(p))
            problem = None if old.is_stack else "is not a stack"
        except DataFormatError as exc:
            old, problem = None, f"is not a readable SPIDER stack ({exc.reason})"
        if problem is None:
            if (old.nx, old.ny, old.nz, old.iform) != (lay.nx, lay.ny, lay.nz, lay.iform):
                raise UsageError(
                    f"{p}: cannot write member {index}: the stack holds images of NX={old.nx}, "
                    f"NY={old.ny}, NZ={old.nz}, IFORM={old.iform} but the data give NX="
                    f"{lay.nx}, NY={lay.ny}, NZ={lay.nz}, IFORM={lay.iform}")
            _update_member(p, old, recs, index, opts, apix, text)
            return
        if not overwrite:
            raise UsageError(f"{p} {problem}; cannot write member {index} into it "
                             "(allow overwriting to replace it with a new stack)")
    new = Layout(lay.nx, lay.ny, lay.nz, lay.iform, lay.labbyt, order, STACK_FLAG, index)
    _check_size_limit(p, new.expected_size)
    with atomic_open(p, "wb", overwrite=overwrite) as fh:
        fh.write(header_bytes(overall_words(new, apix), new.labbyt, order, text))
        fh.seek(new.member_offset(index))  # the gap reads back as zeros: empty slots
        for block in _member_blocks(recs, new, index, opts, apix, order, text):
            fh.write(block.data)


def _check_size_limit(p, size: int) -> None:
    if size > _MAX_FILE_BYTES:
        raise UsageError(f"{p}: the stack would be {size} bytes; refusing to create it")


def _update_member(p: Path, old: Layout, recs, index, opts, apix, text) -> None:
    grow = index > old.maxim
    if grow:
        _check_size_limit(p, old.member_offset(index + 1))
    block = next(_member_blocks(recs, old, index, opts, apix, old.byteorder, text))
    with open(p, "r+b") as fh:
        if grow:
            fh.truncate(old.expected_size)  # drop bytes beyond the last member, if any
            fh.truncate(old.member_offset(index))  # new empty slots: zero header and data
        fh.seek(old.member_offset(index))
        fh.write(block.data)
        if grow:
            fh.flush()
            fh.seek(4 * 25)
            fh.write(np.array([index], dtype=old.byteorder + "f4").tobytes())


def write_fourier(path: str | os.PathLike, F, real_shape, overwrite: bool = False,
                  **extra) -> None:
    """Write a SPIDER Fourier file (IFORM -11/-12 2D, -21/-22 3D) from a half spectrum.

    Args:
        path: destination.
        F: complex array ``(ny, nx//2+1)`` or ``(nz, ny, nx//2+1)`` (a stack of them with
            ``stack=True`` or ``index=N``), in SPIDER's convention (its forward FT is
            ``conj(numpy.fft.rfftn(x))``). Stored as given.
        real_shape: ``(ny, nx)`` or ``(nz, ny, nx)`` of the real image; NX's parity sets
            IFORM and the record length (NX+2 even, NX+1 odd).
        overwrite: allow replacing an existing file.
        **extra: as for :func:`write` (``index``, ``stack``, ``header``, ``title``, ...).
    """
    write(path, np.asarray(F), real_shape=real_shape, overwrite=overwrite, **extra)


def set_header_words(address: str | os.PathLike, index: int | None,
                     words: Mapping[int | str, float], *, allow_layout: bool = False) -> None:
    """Change header words in place, like SPIDER's ``ST H`` / ``ST``.

    Args:
        address: the file; ``file@N`` selects member N.
        index: 1-based member (overrides the address); None or 0 for a simple file's
            header or a stack's overall header.
        words: {word number or name: value}.
        allow_layout: permit words that define the file layout (NX, NY, NZ, IFORM, LABREC,
            LABBYT, LENBYT, IREC, ISTACK, MAXIM, IMGNUM, LASTINDX); off by default
            because a wrong value makes the file unreadable.

    Raises:
        UsageError: an unknown word, a text word (212-256) or a layout word.
        DataFormatError: a bad file, a missing member or an unused slot.
    """
    path, n = _split(address)
    index = n if index is None else int(index)
    h, lay = _open(path)
    todo = {}
    for key, value in dict(words).items():
        try:
            wn = word_number(key)
        except KeyError as exc:
            raise UsageError(f"{path}: {exc.args[0]}") from None
        if wn >= TEXT_WORD:
            raise UsageError(f"{path}: words {TEXT_WORD}-{HEADER_WORDS} hold the date, time and "
                             "title as characters; they cannot be set as numbers")
        if wn in LAYOUT_WORDS and not allow_layout:
            raise UsageError(f"{path}: header word {wn} defines the file layout; changing it "
                             "would corrupt the file")
        todo[wn] = float(value)
    offset = 0
    if index and lay.is_stack:
        with open(path, "rb") as fh:
            _member_header(fh, path, lay, index)
        offset = lay.member_offset(index)
    elif index not in (None, 0, 1):
        raise DataFormatError(path, f"not a stack, so it has no member {index}")
    with open(path, "r+b") as fh:
        for wn, value in sorted(todo.items()):
            fh.seek(offset + 4 * (wn - 1))
            fh.write(np.array([value], dtype=h.byteorder + "f4").tobytes())
