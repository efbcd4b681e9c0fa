"""Broken SPIDER files: each fails with a DataFormatError naming the file and the fault."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import emsh.io
from emsh.errors import DataFormatError
from emsh.io import spider

NX, NY = 20, 16  # LENBYT 80, LABREC 13, LABBYT 1040, image 1280 bytes
LABBYT, IMAGE = 1040, NX * NY * 4


@pytest.fixture
def image(tmp_path, rng):
    p = tmp_path / "img.dat"
    spider.write(p, rng.standard_normal((NY, NX)).astype(np.float32))
    return p


@pytest.fixture
def stack(tmp_path, rng):
    p = tmp_path / "stk.dat"
    spider.write(p, rng.standard_normal((3, NY, NX)).astype(np.float32), stack=True)
    return p


def set_word(path, word, value, offset=0, order="<"):
    data = bytearray(path.read_bytes())
    data[offset + 4 * (word - 1): offset + 4 * word] = np.array([value], order + "f4").tobytes()
    path.write_bytes(bytes(data))


def fails(path, *patterns, index=None, header=True):
    """Reading must raise DataFormatError naming ``path`` and every pattern.

    With ``header`` the header readers (read_header, and info for the whole file) must too.
    """
    calls = [lambda: spider.read(path, index)]
    if header:
        calls.append(lambda: spider.read_header(path, index))
    for call in calls:
        with pytest.raises(DataFormatError) as err:
            call()
        msg = str(err.value)
        assert str(path) in msg, msg
        for pat in patterns:
            assert pat in msg, (pat, msg)
    if index is None and header:
        with pytest.raises(DataFormatError):
            spider.info(path)


def test_the_fixtures_are_valid(image, stack):
    assert spider.read(image).shape == (NY, NX)
    assert spider.read(stack).shape == (3, NY, NX)
    assert image.stat().st_size == LABBYT + IMAGE


@pytest.mark.parametrize("keep,what", [(100, "only 100 bytes"), (LABBYT, "truncated"),
                                       (LABBYT + IMAGE // 2, "truncated")])
def test_truncated_image(image, keep, what):
    image.write_bytes(image.read_bytes()[:keep])
    fails(image, what)


def test_extra_bytes_after_a_simple_image(image):
    image.write_bytes(image.read_bytes() + bytes(8))
    fails(image, "extra bytes")


@pytest.mark.parametrize("cut", [LABBYT + (LABBYT + IMAGE) * 2 + 500,  # inside member 3 data
                                 LABBYT + (LABBYT + IMAGE) + 10])  # inside member 2 header
def test_truncated_stack(stack, cut):
    stack.write_bytes(stack.read_bytes()[:cut])
    fails(stack, "MAXIM=3", "truncated")
    fails(stack, "truncated", index=1)


@pytest.mark.parametrize("word,value,names", [
    (5, 7, ["IFORM", "word 5"]),
    (5, 0, ["IFORM"]),
    (5, -1, ["IFORM"]),
    (12, 0, ["NX", "word 12"]),
    (12, -20, ["NX"]),
    (12, 1e9, ["NX", "1e+09"]),
    (12, 20.5, ["NX"]),
    (2, 0, ["NY", "word 2"]),
    (1, 3e8, ["NZ"]),
    (1, 2, ["NZ", "2D"]),
    (13, 12, ["LABREC", "word 13"]),
    (22, 2080, ["LABBYT", "word 22"]),
    (23, 100, ["LENBYT", "word 23"]),
    (3, 99, ["IREC", "word 3"]),
    (24, -5, ["indexed"]),
])
def test_one_broken_header_word(image, word, value, names):
    set_word(image, word, value)
    fails(image, *names)


def test_nan_and_infinite_words(image):
    set_word(image, 12, np.nan)
    fails(image, "NX")
    set_word(image, 12, NX)
    set_word(image, 2, np.inf)
    fails(image, "NY")


def test_stack_words(stack):
    set_word(stack, 26, 50)
    fails(stack, "MAXIM=50", "truncated")
    set_word(stack, 26, -1)
    fails(stack, "MAXIM")
    set_word(stack, 26, 3)
    set_word(stack, 3, 40)  # IREC is the member stride for SPIDER: must be exact in stacks
    fails(stack, "IREC")


def test_member_addressing(stack, image, tmp_path, rng):
    for idx in (4, 99):
        fails(stack, "member", str(idx), index=idx)
    fails(stack, "member 0", index=0, header=False)  # read_header(path, 0): overall header
    assert spider.read_header(stack, 0).maxim == 3
    fails(image, "not a stack", index=2)
    assert np.array_equal(spider.read(image, 1), spider.read(image))  # SPIDER allows img@1
    gap = tmp_path / "gap.dat"
    spider.write(gap, np.ones((NY, NX), np.float32), index=3)
    fails(gap, "member 2", "unused slot", index=2)


def test_broken_member_headers(stack):
    member2 = LABBYT + (LABBYT + IMAGE)
    set_word(stack, 27, 7, offset=member2)
    fails(stack, "member 2", "IMGNUM", index=2)
    fails(stack, "member 2", header=False)  # the whole-stack read checks member headers
    set_word(stack, 27, 2, offset=member2)
    set_word(stack, 12, 21, offset=member2)
    fails(stack, "member 2", "NX", index=2)
    fails(stack, "member 2", header=False)
    assert spider.read(stack, 1).shape == (NY, NX)


@pytest.mark.parametrize("content", [
    b"",
    bytes(4096),
    b" ;spi/dat   21-NOV-2026 AT 15:04:12   doc.dat\n    1 2  1.0 2.0\n" * 40,
    np.random.default_rng(3).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
    # an MRC header: int32 NX, NY, NZ, MODE ... and the MAP word
    np.array([64, 64, 1, 2] + [0] * 48 + [0x2050414D] + [0] * 203, "<i4").tobytes()
    + bytes(64 * 64 * 4),
])
def test_non_spider_bytes(tmp_path, content):
    p = tmp_path / "junk.dat"
    p.write_bytes(content)
    assert not spider.sniff(content[:1024])
    fails(p)


def test_absurd_sizes_allocate_nothing(tmp_path):
    """Consistent headers that claim huge images fail on the file size, before any allocation."""
    big = 10_000_000  # the largest NX/NY/NZ SPIDER considers plausible
    w = np.zeros(256, "<f4")
    labbyt = 4 * big  # LABREC 1
    w[[0, 1, 2, 4, 11, 12, 21, 22]] = (big, big, 1 + big * big, 3, big, 1, labbyt, 4 * big)
    p = tmp_path / "huge.dat"
    p.write_bytes(w.tobytes())
    w2 = w.copy()
    w2[[0, 2, 4, 23, 25]] = (1, 1 + big, 1, 2, 1e9)  # a stack of 1e9 huge images
    q = tmp_path / "huge_stack.dat"
    q.write_bytes(w2.tobytes())
    tracemalloc.start()
    try:
        for path in (p, q):
            with pytest.raises(DataFormatError, match="bytes"):
                spider.read(path)
            with pytest.raises(DataFormatError):
                spider.read(path, 5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_big_endian_corruption_is_reported(image):
    data = image.read_bytes()
    swapped = bytearray(np.frombuffer(data, "<f4").astype(">f4").tobytes())
    image.write_bytes(bytes(swapped))
    assert spider.read(image).shape == (NY, NX)
    set_word(image, 23, 100, order=">")
    fails(image, "LENBYT")


def test_dispatcher_passes_the_errors_on(stack):
    set_word(stack, 26, 9)
    with pytest.raises(DataFormatError, match="MAXIM=9"):
        emsh.io.read(f"{stack}@1")
