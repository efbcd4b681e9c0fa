"""SPIDER image files: every golden file reads right, our files are SPIDER's bytes, round trips."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import emsh.io
from emsh.errors import DataFormatError, OutputExistsError, UsageError
from emsh.io import spider

DATE_TIME = slice(4 * 211, 4 * 216)  # words 212-216: creation date and time (characters)


# ----------------------------------------------------------------------------- helpers

def raw_words(data: bytes, offset: int = 0) -> np.ndarray:
    """The 256 header words at ``offset``, little-endian, independent of emsh."""
    return np.frombuffer(data[offset: offset + 1024], "<f4")


def golden_images(golden: Path) -> list[Path]:
    """Every binary .dat in the golden set (doc files are text starting with ' ;')."""
    return [f for f in sorted(golden.glob("*/*.dat")) if f.read_bytes()[:2] != b" ;"]


def header_offsets(data: bytes) -> list[int]:
    """Byte offsets of all headers in a SPIDER file (overall + members), from raw words."""
    w = raw_words(data)
    labbyt, nx, ny, nz = int(w[21]), int(w[11]), int(w[1]), int(w[0])
    if w[23] <= 0:
        return [0]
    member = labbyt + 4 * nx * ny * nz
    return [0] + [labbyt + i * member for i in range(int(w[25]))]


def without_dates(data: bytes) -> bytes:
    """The file with the date/time words of every header blanked."""
    b = bytearray(data)
    for off in header_offsets(data):
        b[off + DATE_TIME.start: off + DATE_TIME.stop] = bytes(20)
    return bytes(b)


def parse_doc(path: Path) -> dict[int, list[float]]:
    """A SPIDER doc file: ``key nregs v1 v2 ...``; comment lines have ';' second."""
    out = {}
    for line in path.read_text().splitlines():
        if len(line) < 2 or line[1] == ";":
            continue
        parts = line.split()
        out[int(parts[0])] = [float(v) for v in parts[2: 2 + int(parts[1])]]
    return out


def t5(v: float, w: float, scale: float) -> bool:
    return abs(v - w) <= 1e-5 * abs(v) + 1e-6 * scale


# ----------------------------------------------------------------------------- golden reads

def test_every_golden_image_reads_with_its_header(golden):
    files = golden_images(golden)
    assert len(files) == 172
    assert len({f.parent for f in files}) == 17  # every case but 15 (doc files only)
    for f in files:
        data = f.read_bytes()
        w = raw_words(data)
        nz, ny, irec, iform, nx = (int(w[k]) for k in (0, 1, 2, 4, 11))
        labrec, labbyt, lenbyt, istack, maxim = (int(w[k]) for k in (12, 21, 22, 23, 25))
        assert spider.sniff(data[:1024]), f
        assert labbyt == labrec * lenbyt == 4 * nx * labrec and irec == labrec + ny * nz, f
        inf = spider.info(f)
        h = spider.read_header(f)
        assert (h.nx, h.ny, h.nz, h.iform, h.labrec, h.labbyt, h.lenbyt, h.irec, h.istack) == (
            nx, ny, nz, iform, labrec, labbyt, lenbyt, irec, istack), f
        assert inf.is_stack == (istack > 0) and inf.is_fourier == (iform < 0), f
        nimg = maxim if istack > 0 else 1
        assert inf.n_images == nimg and h.byteorder == "<" and h.date == "21-NOV-2026", f
        member = labbyt + 4 * nx * ny * nz
        assert len(data) == (labbyt + nimg * member if istack > 0 else member), f
        arr = spider.read(f)
        # the data, cut out of the raw bytes independently of emsh
        if istack > 0:
            raw = np.frombuffer(data[labbyt:], "<f4").reshape(nimg, -1)[:, labbyt // 4:]
        else:
            raw = np.frombuffer(data[labbyt:], "<f4")[None]
        rec = nx // 2 if iform < 0 else nx
        one = (nz, ny, rec) if iform in (3, -21, -22) else (ny, rec)
        assert arr.shape == ((nimg,) if istack > 0 else ()) + one, f
        assert arr.dtype == (np.complex64 if iform < 0 else np.float32), f
        got = arr.view(np.float32).reshape(nimg, -1)
        assert np.array_equal(got, raw), f


@pytest.mark.parametrize("case,name,shape,real,n", [
    ("01-io-models", "img_t", (64, 64), (64, 64), 1),
    ("01-io-models", "img_c", (40, 48), (40, 48), 1),
    ("01-io-models", "img_b", (33, 35), (33, 35), 1),
    ("01-io-models", "img_w", (36, 32), (36, 32), 1),
    ("01-io-models", "vol_sp", (28, 32, 36), (28, 32, 36), 1),
    ("01-io-models", "stk", (5, 40, 40), (40, 40), 5),
    ("03-cp-copy", "cp_stk", (3, 36, 36), (36, 36), 3),
    ("05-pad-window", "pd_vol", (48, 44, 40), (48, 44, 40), 1),
    ("10-ft", "ft_e", (64, 33), (64, 64), 1),
    ("10-ft", "ft_o", (45, 23), (45, 45), 1),
    ("10-ft", "ft_ns", (40, 25), (40, 48), 1),
    ("10-ft", "ft_v", (32, 32, 17), (32, 32, 32), 1),
    ("10-ft", "ft_vo", (27, 27, 14), (27, 27, 27), 1),
    ("13-ctf", "ctf3_a", (40, 40, 21), (40, 40, 40), 1),
    ("11-voea-pj3q", "prj30", (20, 40, 40), (40, 40), 20),
    ("12-bp-recon", "prj", (84, 40, 40), (40, 40), 84),
])
def test_manifest_shapes(golden, case, name, shape, real, n):
    f = golden / case / f"{name}.dat"
    assert spider.read(f).shape == shape
    inf = spider.info(f)
    assert inf.shape == real and inf.n_images == n and inf.format == "spider"


def test_fi_h_values_of_case01(golden):
    """hdr_doc.dat holds what SPIDER's FI H / FI X printed: T0 integers, T5 statistics."""
    d = golden / "01-io-models"
    doc = parse_doc(d / "hdr_doc.dat")
    names = ["nx", "ny", "nz", "iform", "labrec", "labbyt", "lenbyt", "irec"]
    for key, addr in zip(range(1, 7), ["img_t", "img_c", "img_b", "vol_g2", "vol_sp", "stk@3"]):
        h = spider.read_header(d / f"{addr.split('@')[0]}.dat@{addr.partition('@')[2]}"
                               if "@" in addr else d / f"{addr}.dat")
        assert [h[n] for n in names] == doc[key], addr
    for key, name in zip(range(11, 16), ["img_t", "img_g2", "img_s", "vol_t", "vol_sp"]):
        h = spider.read_header(d / f"{name}.dat")
        scale = float(np.abs(spider.read(d / f"{name}.dat")).max())
        for v, w in zip(doc[key], (h.fmax, h.fmin, h.av, h.sig)):
            assert t5(v, w, scale), (name, v, w)
    overall = spider.read_header(d / "stk.dat")
    assert [overall.maxim, overall.istack] == doc[21] == [5, 2]
    assert [spider.read_header(d / "stk.dat", 2).imgnum] == doc[22]
    h5 = spider.read_header(str(d / "stk.dat") + "@5")
    assert [h5.imgnum, h5["max"], h5["min"]] == doc[23]
    hc = spider.read_header(d / "img_c.dat")
    assert [hc[12], hc[2], hc[5], hc[22]] == doc[31]


def test_img_t_is_the_analytic_pattern(golden):
    img = spider.read(golden / "01-io-models" / "img_t.dat")
    ny, nx = img.shape
    y, x = np.mgrid[0:ny, 0:nx]
    want = np.sin(2 * np.pi * (2 * x / nx + 2 * y / ny))
    assert np.abs(img - want).max() <= 1e-5 * np.abs(want).max()
    assert np.abs(img - np.roll(want, 1, axis=1)).max() > 0.1  # 0-based x: a shift would fail


def test_fourier_files_hold_spider_convention(golden):
    """ft_* == conj(rfftn(in_*)) to T3: the layout (kx fastest, re/im pairs) is read right."""
    d = golden / "10-ft"
    for tag in ("e", "o", "ns", "v", "vo"):
        x = spider.read(d / f"in_{tag}.dat").astype(np.float64)
        F = spider.read(d / f"ft_{tag}.dat")
        ref = np.conj(np.fft.rfftn(x))
        assert F.shape == ref.shape
        assert np.abs(F - ref).max() <= 2e-5 * np.abs(ref).max(), tag


def test_projection_angle_words_of_pj3q(golden):
    d = golden / "11-voea-pj3q"
    ang = parse_doc(d / "ang_hand.dat")  # psi, theta, phi per projection
    hdrs = spider.read_stack_headers(d / "prjh.dat")
    assert hdrs.shape == (5, 256)
    for i in range(5):
        assert list(hdrs[i, 100:104]) == ang[i + 1] + [1.0]
        h = spider.read_header(d / "prjh.dat", i + 1)
        assert (h.psi3, h.theta3, h.phi3, h.langle, h.imgnum) == (*ang[i + 1], 1, i + 1)
    pj = parse_doc(d / "pj_doc.dat")
    assert [spider.read_header(d / "prjh.dat", 4)[k] for k in (101, 102, 103, 104)] == pj[2]


# ----------------------------------------------------------------------------- byte identity

def test_simple_files_rewritten_are_spiders_bytes(golden, tmp_path):
    """All 150 golden simple images, volumes and Fourier files, rewritten from their data."""
    out = tmp_path / "x.dat"
    n = 0
    for f in golden_images(golden):
        h = spider.read_header(f)
        if h.istack:
            continue
        data = spider.read(f)
        if h.iform < 0:
            spider.write_fourier(out, data, spider.info(f).shape, overwrite=True)
        else:
            extra = {}
            if h.imami != 1 and any(h.words[6:10]):  # SPIDER's blank-image quirk
                extra["header"] = {k: float(h[k]) for k in (7, 8, 9, 10)}
            spider.write(out, data, stats=h.imami == 1, overwrite=True, **extra)
        a, b = f.read_bytes(), out.read_bytes()
        assert len(a) == len(b), f
        assert without_dates(a) == without_dates(b), f
        n += 1
    assert n == 150


def test_cp_stk_rewritten_member_by_member(golden, tmp_path):
    """Case 03: CP src_a -> cp_stk@3 (slots 1-2 empty), then src_b -> cp_stk@1."""
    g = golden / "03-cp-copy" / "cp_stk.dat"
    out = tmp_path / "cp_stk.dat"
    spider.write(out, spider.read(g, 3), index=3, stats=False)
    assert spider.read_header(out).maxim == 3
    with pytest.raises(DataFormatError, match="unused slot"):
        spider.read(out, 1)
    spider.write(str(out) + "@1", spider.read(g, 1))  # FI H later stored the statistics
    a, b = g.read_bytes(), out.read_bytes()
    assert len(a) == len(b) == 20160
    assert without_dates(a) == without_dates(b)
    lay = 1152 + 36 * 36 * 4
    assert b[1152 + lay: 1152 + 2 * lay] == bytes(lay)  # slot 2: zero header and data
    assert np.array_equal(spider.read(out, 3), spider.read(golden / "03-cp-copy" / "src_a.dat"))


def test_stacks_rewritten_are_spiders_bytes(golden, tmp_path):
    # 01 stk: MO into stk@1..5; the blank member 5 carries FMAX=FMIN=AV=-0.75, IMAMI 0
    g = golden / "01-io-models" / "stk.dat"
    out = tmp_path / "stk.dat"
    for i in range(1, 6):
        extra = {"header": {7: -0.75, 8: -0.75, 9: -0.75}} if i == 5 else {}
        spider.write(out, spider.read(g, i), index=i, stats=False, **extra)
    assert without_dates(g.read_bytes()) == without_dates(out.read_bytes())
    # 02 stk: whole stack with member statistics (IMAMI=1), vectorised
    g = golden / "02-fs-stats" / "stk.dat"
    spider.write(out, spider.read(g), stack=True, overwrite=True)
    assert without_dates(g.read_bytes()) == without_dates(out.read_bytes())
    # 11 prjh: PJ 3Q projections with angle words 101-104 from the angle doc
    g = golden / "11-voea-pj3q" / "prjh.dat"
    ang = parse_doc(golden / "11-voea-pj3q" / "ang_hand.dat")
    psi_theta_phi = np.array([ang[k] for k in range(1, 6)])
    spider.write(out, spider.read(g), stack=True, stats=False,
                 proj_angles=psi_theta_phi[:, ::-1], overwrite=True)
    assert without_dates(g.read_bytes()) == without_dates(out.read_bytes())
    # 06 sh_stk: whole-stack output whose members copy words 25 (-1) and 26 (their number)
    g = golden / "06-shift" / "sh_stk.dat"
    spider.write(out, spider.read(g), stack=True, stats=False, overwrite=True,
                 header={25: -1, 26: [1, 2, 3]})
    assert without_dates(g.read_bytes()) == without_dates(out.read_bytes())


# ----------------------------------------------------------------------------- round trips

def test_round_trip_image_volume_and_header_words(tmp_path, rng):
    img = rng.standard_normal((37, 50)).astype(np.float32)
    spider.write(tmp_path / "i.dat", img, apix=1.34, angles=(10.0, 20.0, 30.0),
                 title="test image", header={"xoff": 2.5, 40: 7})
    back = spider.read(tmp_path / "i.dat")
    assert back.dtype == np.float32 and np.array_equal(back, img)
    h = spider.read_header(tmp_path / "i.dat")
    x = img.astype(np.float64)
    assert (h.imami, h.fmax, h.fmin) == (1, float(img.max()), float(img.min()))
    assert h.av == float(np.float32(x.mean())) and h.sig == float(np.float32(x.std(ddof=1)))
    assert (h.iangle, h.phi, h.theta, h.psi, h[18], h.proj) == (1, 10.0, 20.0, 30.0, 2.5, 7)
    assert h.title == "test image" and h[25] == -1 and h.istack == 0
    assert re.fullmatch(r"\d\d-[A-Z]{3}-\d{4}", h.date) and re.fullmatch(r"\d\d:\d\d:\d\d", h.time)
    assert spider.info(tmp_path / "i.dat").apix == pytest.approx(1.34)
    assert h.as_dict()["nx"] == 50 and h["NSAM"] == 50 and h[12] == 50.0
    vol = rng.standard_normal((5, 6, 7)).astype(np.float32)
    spider.write(tmp_path / "v.dat", vol)
    assert np.array_equal(spider.read(tmp_path / "v.dat"), vol)
    assert spider.read_header(tmp_path / "v.dat").iform == 3


def test_round_trip_stacks(tmp_path, rng):
    stk = rng.standard_normal((6, 20, 24)).astype(np.float32)
    p = tmp_path / "s.dat"
    spider.write(p, stk, stack=True, proj_angles=rng.uniform(0, 90, (6, 3)))
    assert np.array_equal(spider.read(p), stk)
    assert np.array_equal(spider.read(p, 4), stk[3])
    assert np.array_equal(spider.read(p, mmap=True), stk)
    hd = spider.read_stack_headers(p)
    assert list(hd[:, 26]) == [1, 2, 3, 4, 5, 6]
    sig = stk.reshape(6, -1).astype(np.float64).std(1, ddof=1).astype(np.float32)
    assert np.array_equal(hd[:, 9], sig) and np.all(hd[:, 5] == 1)
    vols = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    spider.write(tmp_path / "sv.dat", vols)
    assert np.array_equal(spider.read(tmp_path / "sv.dat"), vols)
    assert np.array_equal(spider.read(tmp_path / "sv.dat", 2), vols[1])
    one = rng.standard_normal((8, 9)).astype(np.float32)
    spider.write(tmp_path / "s1.dat", one, stack=True)
    assert spider.read(tmp_path / "s1.dat").shape == (1, 8, 9)


def test_member_by_member_stack_with_a_gap(tmp_path, rng):
    p = tmp_path / "g.dat"
    a, b, c = (rng.standard_normal((10, 12)).astype(np.float32) for _ in range(3))
    spider.write(p, a, index=2)
    spider.write(p, b, index=5)
    spider.write(p, c, index=2)  # replace in place
    assert spider.info(p).n_images == 5
    assert p.stat().st_size == 1056 + 5 * (1056 + 480)  # LABREC 22 records of 48 bytes
    whole = spider.read(p)
    assert np.array_equal(whole[1], c) and np.array_equal(whole[4], b)
    assert not whole[[0, 2, 3]].any()
    for slot in (1, 3, 4):
        with pytest.raises(DataFormatError, match=rf"member {slot} is an unused slot"):
            spider.read(p, slot)
    with p.open("ab") as fh:  # bytes beyond MAXIM (e.g. after SPIDER deleted members)
        fh.write(np.full(3000, 7, "<f4").tobytes())
    spider.write(p, a, index=7)
    with pytest.raises(DataFormatError, match="member 6 is an unused slot"):
        spider.read(p, 6)
    assert not spider.read(p)[5].any() and np.array_equal(spider.read(p, 7), a)
    assert p.stat().st_size == 1056 + 7 * (1056 + 480)
    with pytest.raises(UsageError, match="NX=12, NY=10"):
        spider.write(p, np.zeros((10, 13), np.float32), index=6)
    with pytest.raises(OutputExistsError):
        spider.write(p, a)
    spider.write(p, a, overwrite=True)
    assert not spider.info(p).is_stack


def test_round_trip_fourier_files(tmp_path, rng):
    for shape in ((16, 20), (15, 13), (6, 8, 10), (5, 7, 9)):
        x = rng.standard_normal(shape)
        F = np.conj(np.fft.rfftn(x)).astype(np.complex64)
        p = tmp_path / f"f{len(shape)}{shape[-1]}.dat"
        spider.write_fourier(p, F, shape)
        back = spider.read(p)
        assert back.dtype == np.complex64 and np.array_equal(back, F)
        h = spider.read_header(p)
        odd = shape[-1] % 2
        want = {2: (-11, -12), 3: (-21, -22)}[len(shape)][0 if odd else 1]
        assert h.iform == want and h.nx == shape[-1] + (1 if odd else 2)
        assert h.labbyt == h.labrec * h.lenbyt and h.imami == 0
        assert spider.info(p).shape == shape and spider.info(p).is_fourier
    stack = np.conj(np.fft.rfftn(rng.standard_normal((3, 12, 14)), axes=(1, 2)))
    spider.write_fourier(tmp_path / "fs.dat", stack.astype(np.complex64), (12, 14), stack=True)
    assert np.array_equal(spider.read(tmp_path / "fs.dat", 2), stack[1].astype(np.complex64))
    with pytest.raises(UsageError, match="real_shape"):
        spider.write(tmp_path / "c.dat", stack[0])


def test_big_endian_files_read_identically(tmp_path, rng):
    stk = rng.standard_normal((3, 9, 11)).astype(np.float32)
    little = tmp_path / "le.dat"
    spider.write(little, stk, stack=True, title="big end")
    data = bytearray(little.read_bytes())
    swapped = np.frombuffer(bytes(data), "<f4").astype(">f4").tobytes()
    big = bytearray(swapped)
    for off in header_offsets(bytes(data)):  # characters are bytes, not words: unswapped
        big[off + 4 * 211: off + 1024] = data[off + 4 * 211: off + 1024]
    bigp = tmp_path / "be.dat"
    bigp.write_bytes(bytes(big))
    assert spider.sniff(bytes(big[:1024]))
    h = spider.read_header(bigp)
    assert h.byteorder == ">" and h.nx == 11 and h.maxim == 3 and h.title == "big end"
    assert np.array_equal(spider.read(bigp), stk)
    assert np.array_equal(spider.read(bigp, 3), stk[2])
    assert np.array_equal(spider.read(bigp, mmap=True), stk)
    assert spider.read(bigp).dtype == np.dtype("float32")  # native order
    # writing big-endian directly gives the same bytes (dates aside)
    spider.write(tmp_path / "be2.dat", stk, stack=True, title="big end", byteorder=">")
    assert without_dates_be(bytes(big)) == without_dates_be((tmp_path / "be2.dat").read_bytes())
    # a member added to a big-endian stack stays big-endian
    spider.write(bigp, stk[0], index=4)
    assert spider.read_header(bigp).maxim == 4 and np.array_equal(spider.read(bigp, 4), stk[0])
    spider.set_header_words(bigp, 2, {"pixsiz": 2.0})
    assert spider.read_header(bigp, 2).pixsiz == 2.0


def without_dates_be(data: bytes) -> bytes:
    swapped = np.frombuffer(data, ">f4").astype("<f4").tobytes()
    b = bytearray(data)
    for off in header_offsets(swapped):
        b[off + DATE_TIME.start: off + DATE_TIME.stop] = bytes(20)
    return bytes(b)


def test_set_header_words_in_place(tmp_path, rng):
    p = tmp_path / "s.dat"
    spider.write(p, rng.standard_normal((2, 8, 8)).astype(np.float32), stack=True)
    before = spider.read(p)
    spider.set_header_words(str(p) + "@2", None, {"phi": 12.5, 16: 40.0, "glonum": 77})
    h = spider.read_header(p, 2)
    assert (h.phi, h.theta, h.glonum) == (12.5, 40.0, 77)
    assert spider.read_header(p, 1).phi == 0.0 and np.array_equal(spider.read(p), before)
    spider.set_header_words(p, None, {38: 1.5})
    assert spider.info(p).apix == 1.5
    with pytest.raises(UsageError, match="layout"):
        spider.set_header_words(p, 1, {"nx": 9})
    with pytest.raises(UsageError, match="characters"):
        spider.set_header_words(p, 1, {220: 1})
    with pytest.raises(UsageError, match="unknown"):
        spider.set_header_words(p, 1, {"nosuch": 1})


def test_dispatcher_reads_stack_members(golden):
    f = golden / "03-cp-copy" / "cp_stk.dat"
    a = emsh.io.read(f"{f}@1")
    assert a.shape == (36, 36) and np.array_equal(a, spider.read(f, 1))
    assert emsh.io.info(f"{f}@").n_images == 3
    with pytest.raises(DataFormatError, match="unused slot"):
        emsh.io.read(f"{f}@2")


def test_date_time_words_have_spiders_layout(golden, tmp_path):
    """Words 212-216: 'DD-MMM-YYYY', NUL, 'HH:MM:SS' in golden files and in ours."""
    form = re.compile(rb"\d\d-(JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)-\d{4}\0"
                      rb"\d\d:\d\d:\d\d")
    assert form.fullmatch((golden / "01-io-models" / "img_t.dat").read_bytes()[DATE_TIME])
    p = tmp_path / "d.dat"
    spider.write(p, np.zeros((4, 4), np.float32), index=2)
    data = p.read_bytes()
    for off in header_offsets(data)[::2]:  # overall header and member 2 (member 1 is empty)
        assert form.fullmatch(data[off + DATE_TIME.start: off + DATE_TIME.stop])
    assert data[header_offsets(data)[1]:][:1024] == bytes(1024)
    assert data[4 * 216: 1024] == bytes(1024 - 4 * 216)  # no title: zeros, as SPIDER
