"""SPIDER image-file headers: word table, decoding with validation, encoding.

A SPIDER file is a sequence of records of ``NX`` float32 words. The header fills
``LABREC = ceil(1024 / (4*NX))`` records (``LABBYT = LABREC*LENBYT`` bytes, at
least 1024); only its first 256 words carry information. Words are numbered
from 1 as in SPIDER's documentation (``docs/image_doc.html``); all are stored
as float32, even the integer ones. Words 212-216 hold the creation date and
time and words 217-256 the title as raw characters.

Byte order: SPIDER writes native order and reads either. Like SPIDER's
``openfil.f`` we take the header as little-endian unless that reading is
implausible (IFORM 0, NX/NY/NZ outside 1..1e7) and the swapped one is better.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np

from emsh.errors import DataFormatError, UsageError

HEADER_WORDS = 256
MIN_HEADER_BYTES = 1024
MAX_DIM = 10_000_000  # SPIDER's plausibility bound on NX, NY, NZ
MAX_LABBYT = 10_000_000  # SPIDER refuses a header this long (lunsethdr.f)
REAL_FORMS = (1, 3)
FOURIER_FORMS = (-11, -12, -21, -22)
VALID_IFORMS = REAL_FORMS + FOURIER_FORMS
TEXT_WORD = 212  # first character word (date)
TEXT_BYTES = 4 * (HEADER_WORDS - TEXT_WORD + 1)  # 180 characters: date, time, title
STACK_FLAG = 2  # ISTACK SPIDER writes in an overall stack header
WRITE_OPTIONS = ("stats", "angles", "proj_angles", "header", "title", "real_shape", "byteorder")
NOT_SETTABLE = frozenset((1, 2, 3, 5, 12, 13, 22, 23, 24, 27)) | frozenset(
    range(TEXT_WORD, HEADER_WORDS + 1))
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")

#: Named header words (SPIDER ``FI H`` names, lower case) -> word number.
WORD_NUMBERS: dict[str, int] = {
    "nz": 1, "ny": 2, "irec": 3, "iform": 5, "imami": 6, "fmax": 7, "fmin": 8,
    "av": 9, "sig": 10, "nx": 12, "labrec": 13, "iangle": 14, "phi": 15,
    "theta": 16, "psi": 17, "xoff": 18, "yoff": 19, "zoff": 20, "scale": 21,
    "labbyt": 22, "lenbyt": 23, "istack": 24, "inuse": 25, "maxim": 26,
    "imgnum": 27, "lastindx": 28, "kangle": 31, "phi1": 32, "theta1": 33,
    "psi1": 34, "phi2": 35, "theta2": 36, "psi2": 37, "pixsiz": 38, "ev": 39,
    "proj": 40, "mic": 41, "num": 42, "glonum": 43, "psi3": 101, "theta3": 102,
    "phi3": 103, "langle": 104,
}
#: Alternative names SPIDER accepts (``FI H``): MAX, MIN, AVG, NSAM, NROW, NSLICE, GAMMA.
ALIASES = {"max": "fmax", "min": "fmin", "avg": "av", "nsam": "nx", "nrow": "ny",
           "nslice": "nz", "gamma": "psi", "maxindx": "istack"}
INTEGER_WORDS = frozenset(
    WORD_NUMBERS[n] for n in ("nz", "ny", "irec", "iform", "imami", "nx", "labrec",
                              "iangle", "labbyt", "lenbyt", "istack", "inuse", "maxim",
                              "imgnum", "lastindx", "kangle", "langle")
)
#: Words that define the file layout; changing them in place would corrupt the file.
LAYOUT_WORDS = frozenset((1, 2, 3, 5, 12, 13, 22, 23, 24, 26, 27, 28))


def word_number(key: int | str) -> int:
    """Word number (1..256) for a number or a SPIDER header name (case-insensitive)."""
    if isinstance(key, (int, np.integer)):
        n = int(key)
    else:
        name = str(key).strip().lower()
        name = ALIASES.get(name, name)
        if name not in WORD_NUMBERS:
            raise KeyError(f"unknown SPIDER header word name {key!r}")
        n = WORD_NUMBERS[name]
    if not 1 <= n <= HEADER_WORDS:
        raise KeyError(f"SPIDER header word {n} is outside 1..{HEADER_WORDS}")
    return n


def header_records(record_floats: int) -> tuple[int, int]:
    """``(LABREC, LABBYT)`` for a record of ``record_floats`` words, as SPIDER computes them."""
    lenbyt = 4 * record_floats
    labrec = -(-MIN_HEADER_BYTES // lenbyt)
    return labrec, labrec * lenbyt


class SpiderHeader:
    """One decoded SPIDER header (a simple file's, a stack's overall one or a member's).

    Access words by number (1-based, ``h[12]``) or by name (``h["nx"]``, ``h.nx``);
    integer words come back as ``int``, the rest as ``float``. ``words`` holds all
    256 words as native float32 (index 0 is word 1). ``byteorder`` is ``"<"`` or
    ``">"``, the order of the file. ``date``, ``time`` and ``title`` are the text
    words decoded as ASCII.
    """

    __slots__ = ("words", "byteorder", "text")

    def __init__(self, words: np.ndarray, byteorder: str = "<", text: bytes = b""):
        self.words = np.asarray(words, dtype=np.float32).reshape(-1)[:HEADER_WORDS].copy()
        if self.words.size < HEADER_WORDS:
            self.words = np.concatenate(
                [self.words, np.zeros(HEADER_WORDS - self.words.size, np.float32)])
        self.byteorder = byteorder
        self.text = bytes(text[:TEXT_BYTES]).ljust(TEXT_BYTES, b"\0")

    def __getitem__(self, key: int | str):
        n = word_number(key)
        v = float(self.words[n - 1])
        if n in INTEGER_WORDS and math.isfinite(v) and v == int(v):
            return int(v)
        return v

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"SpiderHeader has no word named {name!r}") from None

    def _chars(self, start: int, stop: int) -> str:
        raw = self.text[start:stop].split(b"\0", 1)[0]
        return raw.decode("ascii", "replace").rstrip()

    @property
    def date(self) -> str:
        """Creation date as SPIDER writes it (``DD-MMM-YYYY``), words 212-214."""
        return self._chars(0, 12)

    @property
    def time(self) -> str:
        """Creation time (``HH:MM:SS``), words 215-216."""
        return self._chars(12, 20)

    @property
    def title(self) -> str:
        """Title (up to 160 characters), words 217-256."""
        return self._chars(20, TEXT_BYTES)

    def as_dict(self) -> dict:
        """Every named word plus ``date``, ``time``, ``title`` and ``byteorder``."""
        out = {name: self[name] for name in WORD_NUMBERS}
        out.update(date=self.date, time=self.time, title=self.title, byteorder=self.byteorder)
        return out

    def __repr__(self) -> str:
        return (f"SpiderHeader(nx={self['nx']}, ny={self['ny']}, nz={self['nz']}, "
                f"iform={self['iform']}, istack={self['istack']}, maxim={self['maxim']}, "
                f"imgnum={self['imgnum']}, byteorder={self.byteorder!r})")


def _int_word(w: np.ndarray, n: int) -> int | None:
    """Word ``n`` as an int when it is a finite whole number, else None."""
    v = float(w[n - 1])
    if not math.isfinite(v) or v != math.floor(v) or abs(v) > 2**53:
        return None
    return int(v)


def _in_range(v: int | None, lo: int = 1, hi: int = MAX_DIM) -> bool:
    return v is not None and lo <= v <= hi


def _plausibility(w: np.ndarray) -> int:
    """How many of SPIDER's basic header rules the words satisfy (0..6)."""
    nx, ny, nz = _int_word(w, 12), _int_word(w, 2), _int_word(w, 1)
    iform, labrec, labbyt, lenbyt = (_int_word(w, k) for k in (5, 13, 22, 23))
    score = int(iform in VALID_IFORMS)
    score += _in_range(nx) + _in_range(ny) + _in_range(None if nz is None else abs(nz))
    score += int(nx is not None and lenbyt == 4 * nx)
    score += int(labrec is not None and lenbyt is not None and labrec > 0
                 and labbyt == labrec * lenbyt)
    return score


def _words(head: bytes, order: str) -> np.ndarray:
    n = min(len(head), 4 * HEADER_WORDS) // 4
    w = np.zeros(HEADER_WORDS, np.float32)
    w[:n] = np.frombuffer(head[: 4 * n], dtype=order + "f4")
    return w


def choose_byteorder(head: bytes) -> tuple[str, np.ndarray]:
    """``(order, words)``: the more plausible reading of the header; little-endian on a tie."""
    le, be = _words(head, "<"), _words(head, ">")
    return (">", be) if _plausibility(be) > _plausibility(le) else ("<", le)


def is_plausible(head: bytes) -> bool:
    """True when ``head`` reads as a complete, consistent SPIDER header in either order."""
    if len(head) < 4 * 24:
        return False
    return _plausibility(choose_byteorder(head)[1]) == 6


def _fail(path, what: str):
    raise DataFormatError(path, what)


def decode(head: bytes, path: str | os.PathLike | None) -> SpiderHeader:
    """Decode and validate the first header of a file (simple file or stack overall header).

    Checks IFORM, NX/NY/NZ, LENBYT, LABREC/LABBYT, IREC and ISTACK/MAXIM, so that no
    size computed from the header can be absurd. File-size checks are the caller's.

    Raises:
        DataFormatError: naming the file and the first word that is wrong.
    """
    if len(head) < MIN_HEADER_BYTES:
        _fail(path, f"only {len(head)} bytes; a SPIDER header alone is at least "
                    f"{MIN_HEADER_BYTES} bytes (truncated or not a SPIDER file)")
    order, w = choose_byteorder(head)
    iform = _int_word(w, 5)
    if iform not in VALID_IFORMS:
        _fail(path, f"not a SPIDER image: IFORM (word 5) is {float(w[4]):g}; expected one of "
                    f"{', '.join(map(str, VALID_IFORMS))}")
    nx, ny, nz = _int_word(w, 12), _int_word(w, 2), _int_word(w, 1)
    if nz is not None and nz < 0:  # ancient 2D files hold NZ = -1; SPIDER takes |NZ|
        nz = -nz
    for name, v, k in (("NX", nx, 12), ("NY", ny, 2), ("NZ", nz, 1)):
        if not _in_range(v):
            _fail(path, f"{name} (word {k}) is {float(w[k - 1]):g}; expected a whole number "
                        f"in 1..{MAX_DIM}")
    if iform in (1, -11, -12) and nz != 1:
        _fail(path, f"IFORM {iform} is a 2D format but NZ (word 1) is {nz}")
    if iform in FOURIER_FORMS and nx % 2:
        _fail(path, f"Fourier file (IFORM {iform}) with an odd record length NX={nx}; "
                    "Fourier records hold (re, im) pairs")
    lenbyt = _int_word(w, 23)
    if lenbyt != 4 * nx and lenbyt != 0:  # 0: old VAX files, SPIDER derives it
        _fail(path, f"LENBYT (word 23) is {float(w[22]):g}; expected 4*NX = {4 * nx}")
    labrec, labbyt = _int_word(w, 13), _int_word(w, 22)
    want_labrec, want_labbyt = header_records(nx)
    if labrec != want_labrec:
        _fail(path, f"LABREC (word 13) is {float(w[12]):g}; a record of NX={nx} words needs "
                    f"{want_labrec} header records")
    if labbyt != want_labbyt:
        _fail(path, f"LABBYT (word 22) is {float(w[21]):g}; expected LABREC*LENBYT = "
                    f"{want_labbyt}")
    irec = _int_word(w, 3)
    istack = _int_word(w, 24)
    if istack is None:
        _fail(path, f"ISTACK (word 24) is {float(w[23]):g}; expected a whole number")
    if istack < 0:
        _fail(path, f"indexed SPIDER stack (ISTACK={istack}) is not supported; "
                    "copy it to a normal stack in SPIDER first")
    # IREC is stored as float32, so compare after the same rounding (large volumes)
    if w[2] != np.float32(labrec + ny * nz) and not (irec == 0 and istack == 0):
        _fail(path, f"IREC (word 3) is {float(w[2]):g}; expected LABREC + NY*NZ = "
                    f"{labrec + ny * nz}")
    if istack > 0:
        maxim = _int_word(w, 26)
        if maxim is None or maxim < 0:
            _fail(path, f"MAXIM (word 26) is {float(w[25]):g}; expected the number of the "
                        "highest stack member (>= 0)")
    w = w.copy()
    w[0] = nz
    w[22] = 4 * nx
    return SpiderHeader(w, order, head[4 * (TEXT_WORD - 1): 4 * HEADER_WORDS])


@dataclass(frozen=True)
class Layout:
    """Where the bytes of a SPIDER file are, derived from a validated header.

    ``nx`` is the record length in words (word 12): the real NX for real files,
    NX+2 (even) or NX+1 (odd) for Fourier files.
    """

    nx: int
    ny: int
    nz: int
    iform: int
    labbyt: int
    byteorder: str
    istack: int
    maxim: int

    @classmethod
    def of(cls, h: SpiderHeader) -> "Layout":
        istack = h["istack"]
        return cls(h["nx"], h["ny"], h["nz"], h["iform"], h["labbyt"], h.byteorder,
                   istack, h["maxim"] if istack > 0 else 1)

    @property
    def is_stack(self) -> bool:
        return self.istack > 0

    @property
    def is_fourier(self) -> bool:
        return self.iform < 0

    @property
    def is_volume(self) -> bool:
        return self.iform in (3, -21, -22)

    @property
    def real_nx(self) -> int:
        """NX of the real-space image (for Fourier files, from record length and parity)."""
        if self.iform in (-12, -22):
            return self.nx - 2
        if self.iform in (-11, -21):
            return self.nx - 1
        return self.nx

    @property
    def real_shape(self) -> tuple[int, ...]:
        """Real-space shape of one image, ``(ny, nx)`` or ``(nz, ny, nx)``."""
        yx = (self.ny, self.real_nx)
        return (self.nz, *yx) if self.is_volume else yx

    @property
    def data_shape(self) -> tuple[int, ...]:
        """Shape of one stored image as read: real float32, or complex64 half spectrum."""
        last = self.nx // 2 if self.is_fourier else self.nx
        yx = (self.ny, last)
        return (self.nz, *yx) if self.is_volume else yx

    @property
    def label_floats(self) -> int:
        return self.labbyt // 4

    @property
    def image_floats(self) -> int:
        return self.nx * self.ny * self.nz

    @property
    def member_bytes(self) -> int:
        """Bytes of one stack member: its header plus its data."""
        return self.labbyt + 4 * self.image_floats

    @property
    def expected_size(self) -> int:
        """Smallest file size the header allows."""
        if self.is_stack:
            return self.labbyt + self.maxim * self.member_bytes
        return self.labbyt + 4 * self.image_floats

    def member_offset(self, index: int) -> int:
        """Byte offset of member ``index``'s header (1-based)."""
        return self.labbyt + (index - 1) * self.member_bytes

    def data_offset(self, index: int | None) -> int:
        """Byte offset of the data of member ``index`` (None or simple file: the image)."""
        if not self.is_stack:
            return self.labbyt
        return self.member_offset(index) + self.labbyt


def date_time_text(when: float | None = None) -> bytes:
    """The 20 characters SPIDER writes in words 212-216: ``DD-MMM-YYYY`` NUL ``HH:MM:SS``."""
    t = time.localtime(when)
    date = f"{t.tm_mday:02d}-{_MONTHS[t.tm_mon - 1]}-{t.tm_year:04d}"
    return date.encode("ascii") + b"\0" + time.strftime("%H:%M:%S", t).encode("ascii")


def text_block(title: str | None = None, when: float | None = None) -> bytes:
    """Words 212-256 as raw bytes: date, time and the title padded with blanks (Fortran)."""
    out = date_time_text(when)
    if title:
        raw = title.encode("ascii", "replace")[:160]
        out += raw.ljust(160, b" ")
    return out.ljust(TEXT_BYTES, b"\0")


# ----------------------------------------------------------------------------- writing

def base_words(lay: Layout) -> np.ndarray:
    """Words SPIDER sets in every header: NZ, NY, IREC, IFORM, NX, LABREC, LABBYT, LENBYT."""
    w = np.zeros(HEADER_WORDS, np.float64)
    labrec, labbyt = header_records(lay.nx)
    w[[0, 1, 2, 4, 11, 12, 21, 22]] = (lay.nz, lay.ny, labrec + lay.ny * lay.nz, lay.iform,
                                       lay.nx, labrec, labbyt, 4 * lay.nx)
    return w


def _per_member(value, n: int, what: str, width: int | None = None) -> np.ndarray:
    """A value for all ``n`` images, or one per image, as float64 ``(n,)`` / ``(n, width)``."""
    a = np.asarray(value, dtype=np.float64)
    shape = (n,) if width is None else (n, width)
    try:
        return np.broadcast_to(a, shape)
    except ValueError:
        raise UsageError(f"{what}: expected {'a number' if width is None else f'{width} numbers'}"
                         f" or one {'value' if width is None else 'row'} per image "
                         f"({n}), got shape {a.shape}") from None


def member_words(recs: np.ndarray, lay: Layout, first: int, opts: dict, apix) -> np.ndarray:
    """Header words ``(k, 256)`` float64 of members ``first..first+k-1`` (or a simple file)."""
    k = recs.shape[0]
    w = np.tile(base_words(lay), (k, 1))
    if lay.is_stack:
        w[:, 26] = np.arange(first, first + k)
    else:
        w[:, 24] = -1.0  # SPIDER still writes -1 in word 25 of simple files
    if apix is not None:
        w[:, 37] = float(apix)
    if opts["stats"] and not lay.is_fourier:
        w[:, 5] = 1.0
        w[:, 6:10] = image_stats(recs.reshape(k, -1))
    sel = slice(first - opts["first"], first - opts["first"] + k)
    for cols, flag, value in opts["angle_sets"]:
        w[:, cols] = value[sel]
        w[:, flag] = 1.0
    for word, value in opts["words"].items():
        w[:, word - 1] = value[sel]
    return w


def image_stats(x: np.ndarray) -> np.ndarray:
    """``(k, 4)`` float64 FMAX, FMIN, AV, SIG of each row of ``x`` ``(k, n)``, as SPIDER.

    Sums are float64 and SIG uses N-1; stored as float32 they equal SPIDER's words bit
    for bit. Works in column blocks so a large volume needs no float64 copy.
    """
    k, n = x.shape
    out = np.empty((k, 4))
    out[:, 0], out[:, 1] = x.max(axis=1), x.min(axis=1)
    out[:, 2] = x.sum(axis=1, dtype=np.float64) / n
    ss = np.zeros(k)
    step = max(1, (1 << 21) // k)
    for s in range(0, n, step):
        d = x[:, s: s + step] - out[:, 2:3]
        ss += np.einsum("ij,ij->i", d, d)
    out[:, 3] = np.sqrt(ss / (n - 1)) if n > 1 else 0.0
    return out


def header_bytes(words: np.ndarray, labbyt: int, order: str, text: bytes) -> bytes:
    """A whole header (``labbyt`` bytes) in byte order ``order`` with the text words."""
    buf = np.zeros(labbyt // 4, dtype=order + "f4")
    buf[:HEADER_WORDS] = words
    raw = bytearray(buf.tobytes())
    raw[4 * (TEXT_WORD - 1): 4 * HEADER_WORDS] = text
    return bytes(raw)


def write_options(extra: dict, n: int, first: int) -> dict:
    """Check the extra write keywords and turn them into per-image header words."""
    unknown = sorted(set(extra) - set(WRITE_OPTIONS))
    if unknown:
        raise UsageError(f"unknown SPIDER write option(s) {', '.join(unknown)}; "
                         f"known: {', '.join(WRITE_OPTIONS)}")
    angle_sets = []
    if extra.get("angles") is not None:  # (phi, theta, psi) -> words 15, 16, 17; IANGLE=1
        angle_sets.append(([14, 15, 16], 13, _per_member(extra["angles"], n, "angles", 3)))
    if extra.get("proj_angles") is not None:  # (phi, theta, psi) -> 103, 102, 101; LANGLE=1
        a = _per_member(extra["proj_angles"], n, "proj_angles", 3)
        angle_sets.append(([102, 101, 100], 103, a))
    words = {}
    for key, value in (extra.get("header") or {}).items():
        try:
            wn = word_number(key)
        except KeyError as exc:
            raise UsageError(f"header: {exc.args[0]}") from None
        if wn in NOT_SETTABLE:
            raise UsageError(f"header word {wn} is set by the writer (layout, IMGNUM or text); "
                             "it cannot be given")
        words[wn] = _per_member(value, n, f"header word {wn}")
    return {"stats": bool(extra.get("stats", True)), "angle_sets": angle_sets,
            "words": words, "first": first}


def overall_words(lay: Layout, apix) -> np.ndarray:
    """The overall header of a stack as SPIDER writes it: ISTACK=2, word 25=-1, MAXIM."""
    w = base_words(lay)
    w[23], w[24], w[25] = STACK_FLAG, -1.0, lay.maxim
    if apix is not None:
        w[37] = float(apix)
    return w
