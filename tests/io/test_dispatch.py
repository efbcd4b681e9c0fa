"""The format-independent API: addressing, format detection, cross-format round trips."""

import numpy as np
import pytest

import emsh.io as eio
from emsh.errors import DataFormatError, OutputExistsError, UsageError

EXTS = (".spi", ".mrcs", ".hdf")


def test_split_address():
    assert eio.split_address("stk.spi@12") == ("stk.spi", 12, True)
    assert eio.split_address("stk.spi@") == ("stk.spi", None, True)
    assert eio.split_address("a/b/vol.mrc") == ("a/b/vol.mrc", None, False)
    with pytest.raises(UsageError, match="numbered from 1"):
        eio.split_address("stk@0")


@pytest.mark.parametrize("ext", EXTS)
def test_stack_round_trip_and_member_addressing(tmp_path, rng, ext):
    stack = rng.normal(size=(4, 24, 20)).astype(np.float32)
    path = tmp_path / f"stk{ext}"
    eio.write(path, stack, stack=True, apix=1.25)
    inf = eio.info(path)
    assert inf.is_stack and inf.n_images == 4 and inf.shape == (24, 20)
    assert inf.apix == pytest.approx(1.25)
    assert np.array_equal(eio.read(path), stack)
    assert np.array_equal(eio.read(f"{path}@3"), stack[2])
    new = np.full((24, 20), 7.0, np.float32)
    eio.write(f"{path}@2", new)
    assert np.array_equal(eio.read(f"{path}@2"), new)
    assert np.array_equal(eio.read(f"{path}@1"), stack[0])
    with pytest.raises(DataFormatError, match=path.name):
        eio.read(f"{path}@9")


@pytest.mark.parametrize("src", EXTS)
@pytest.mark.parametrize("dst", (".spi", ".mrc", ".hdf"))
def test_volume_converts_between_every_pair_of_formats(tmp_path, rng, src, dst):
    vol = rng.normal(size=(10, 12, 14)).astype(np.float32)
    a = tmp_path / ("a.mrc" if src == ".mrcs" else f"a{src}")
    eio.write(a, vol, apix=2.5)
    b = tmp_path / f"b{dst}"
    eio.write(b, eio.read(a), apix=eio.info(a).apix)
    assert np.array_equal(eio.read(b), vol)
    assert eio.info(b).shape == (10, 12, 14)
    assert eio.info(b).apix == pytest.approx(2.5)


def test_format_is_read_from_content_not_extension(tmp_path, rng):
    img = rng.normal(size=(16, 16)).astype(np.float32)
    eio.write(tmp_path / "x.mrc", img)
    (tmp_path / "x.mrc").rename(tmp_path / "x.dat")
    assert eio.format_of(tmp_path / "x.dat") == "mrc"
    assert np.array_equal(eio.read(tmp_path / "x.dat"), img)


def test_existing_file_is_not_replaced(tmp_path):
    p = tmp_path / "v.spi"
    eio.write(p, np.zeros((8, 8), np.float32))
    with pytest.raises(OutputExistsError):
        eio.write(p, np.ones((8, 8), np.float32))
    assert eio.read(p).max() == 0
    eio.write(p, np.ones((8, 8), np.float32), overwrite=True)
    assert eio.read(p).min() == 1


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(DataFormatError, match="not found"):
        eio.read(tmp_path / "nope.spi")
    junk = tmp_path / "notes.txt"
    junk.write_text("hello, this is not an image\n" * 50)
    with pytest.raises(DataFormatError, match="notes.txt"):
        eio.read(junk)


def test_golden_spider_stack_through_dispatcher(golden):
    stk = golden / "03-cp-copy" / "cp_stk.dat"
    assert eio.format_of(stk) == "spider"
    inf = eio.info(stk)
    assert inf.is_stack and inf.n_images == 3
    assert eio.read(f"{stk}@1").shape == inf.shape
