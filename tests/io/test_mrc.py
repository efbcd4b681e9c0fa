"""MRC/MRCS reading and writing: round trips, stack members, header statistics, modes,
byte order, axis mapping, and one test per kind of corrupt file."""

from __future__ import annotations

import io
import struct
import warnings

import mrcfile
import numpy as np
import pytest

import emsh.io as emio
from emsh.errors import DataFormatError, OutputExistsError, UsageError
from emsh.io import mrc


def assert_valid(path):
    report = io.StringIO()
    assert mrcfile.validate(str(path), print_file=report), report.getvalue()


def assert_header_stats(path, data):
    """Header dmin/dmax exactly, dmean/rms to float32 precision, against the data itself."""
    extra = mrc.info(path).extra
    d = np.asarray(data, dtype=np.float64)
    assert extra["dmin"] == np.float32(d.min())
    assert extra["dmax"] == np.float32(d.max())
    np.testing.assert_allclose(extra["dmean"], d.mean(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(extra["rms"], d.std(), rtol=1e-5)


def poke(path, offset, fmt, *values):
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(struct.pack("<" + fmt, *values))


# ----------------------------------------------------------------------------- round trips

def test_volume_round_trip_keeps_values_apix_and_passes_validate(tmp_path, rng):
    vol = rng.normal(size=(5, 6, 7)).astype(np.float32)
    path = tmp_path / "vol.mrc"
    mrc.write(path, vol, apix=1.25)
    back = mrc.read(path)
    assert back.dtype == np.float32 and back.flags.c_contiguous
    np.testing.assert_array_equal(back, vol)
    inf = mrc.info(path)
    assert (inf.shape, inf.n_images, inf.is_stack, inf.apix) == ((5, 6, 7), 1, False, 1.25)
    assert inf.extra["ispg"] == 1 and inf.extra["mode"] == 2
    assert_valid(path)
    assert_header_stats(path, vol)
    with mrcfile.open(path) as m:  # the independent reader agrees
        np.testing.assert_array_equal(m.data, vol)
        assert m.is_volume() and m.voxel_size.x == np.float32(1.25)


def test_single_image_is_2d_with_ispg_0(tmp_path, rng):
    img = rng.normal(size=(6, 9)).astype(np.float32)
    path = tmp_path / "img.mrc"
    mrc.write(path, img)
    inf = mrc.info(path)
    assert (inf.shape, inf.is_stack, inf.apix, inf.extra["ispg"]) == ((6, 9), False, None, 0)
    np.testing.assert_array_equal(mrc.read(path), img)
    np.testing.assert_array_equal(mrc.read(path, 1), img)
    assert_valid(path)


def test_mrcs_stack_members_and_whole(tmp_path, rng):
    stack = rng.normal(size=(4, 6, 7)).astype(np.float32)
    path = tmp_path / "parts.mrcs"
    mrc.write(path, stack, apix=2.0)
    inf = mrc.info(path)
    assert (inf.shape, inf.n_images, inf.is_stack, inf.apix) == ((6, 7), 4, True, 2.0)
    assert inf.extra["ispg"] == 0
    for k in range(1, 5):
        np.testing.assert_array_equal(mrc.read(path, k), stack[k - 1])
    np.testing.assert_array_equal(mrc.read(path), stack)
    assert_valid(path)
    with mrcfile.open(path) as m:
        assert m.is_image_stack() and m.header.mz == 1


def test_stack_flag_and_one_image_mrcs(tmp_path, rng):
    data = rng.normal(size=(3, 5, 5)).astype(np.float32)
    mrc.write(tmp_path / "s.mrc", data, stack=True)
    mrc.write(tmp_path / "v.mrc", data)
    assert mrc.info(tmp_path / "s.mrc").is_stack and mrc.info(tmp_path / "s.mrc").n_images == 3
    assert not mrc.info(tmp_path / "v.mrc").is_stack
    mrc.write(tmp_path / "one.mrcs", data[0])
    inf = mrc.info(tmp_path / "one.mrcs")
    assert (inf.is_stack, inf.n_images, inf.shape) == (True, 1, (5, 5))
    np.testing.assert_array_equal(mrc.read(tmp_path / "one.mrcs"), data[:1])
    assert_valid(tmp_path / "one.mrcs")


def test_overwrite_rules_and_no_temporary_left(tmp_path, rng):
    path = tmp_path / "a.mrc"
    first = rng.normal(size=(4, 4)).astype(np.float32)
    mrc.write(path, first)
    with pytest.raises(OutputExistsError, match="a.mrc"):
        mrc.write(path, first + 1)
    np.testing.assert_array_equal(mrc.read(path), first)
    mrc.write(path, first + 1, overwrite=True)
    np.testing.assert_array_equal(mrc.read(path), first + 1)
    assert [p.name for p in tmp_path.iterdir()] == ["a.mrc"]


def test_bad_data_is_refused(tmp_path):
    with pytest.raises(UsageError, match="complex"):
        mrc.write(tmp_path / "c.mrc", np.zeros((4, 4), np.complex64))
    with pytest.raises(UsageError, match="shape"):
        mrc.write(tmp_path / "c.mrc", np.zeros(4, np.float32))
    with pytest.raises(UsageError, match="apix"):
        mrc.write(tmp_path / "c.mrc", np.zeros((4, 4)), apix=-1)
    assert not (tmp_path / "c.mrc").exists()


# ------------------------------------------------------------------------ member writes

def test_member_writes_append_replace_and_keep_exact_stats(tmp_path, rng):
    path = tmp_path / "grow.mrcs"
    truth = []
    for k in range(1, 6):  # a new stack, then appends
        img = rng.normal(loc=k, size=(8, 6)).astype(np.float32)
        mrc.write(path, img, index=k, apix=1.5 if k == 1 else None)
        truth.append(img)
        assert_header_stats(path, np.stack(truth))
    big = np.full((8, 6), 50.0, np.float32)
    mrc.write(path, big, index=3)  # replaces a member that held no extreme value
    truth[2] = big
    assert_header_stats(path, np.stack(truth))
    calm = rng.normal(size=(8, 6)).astype(np.float32) * 0.1
    mrc.write(path, calm, index=3)  # the replaced member held the maximum: full recompute
    truth[2] = calm
    assert_header_stats(path, np.stack(truth))
    np.testing.assert_array_equal(mrc.read(path), np.stack(truth))
    inf = mrc.info(path)
    assert (inf.n_images, inf.apix, inf.extra["ispg"]) == (5, 1.5, 0)
    assert_valid(path)


def test_member_write_errors_name_the_file(tmp_path, rng):
    path = tmp_path / "s.mrcs"
    mrc.write(path, rng.normal(size=(2, 4, 4)).astype(np.float32))
    with pytest.raises(UsageError, match=r"s\.mrcs.*members 1\.\.3"):
        mrc.write(path, np.zeros((4, 4)), index=4)
    with pytest.raises(UsageError, match=r"s\.mrcs.*\(4, 4\).*\(4, 5\)"):
        mrc.write(path, np.zeros((4, 5)), index=1)
    with pytest.raises(UsageError, match="numbered from 1"):
        mrc.write(path, np.zeros((4, 4)), index=0)
    with pytest.raises(UsageError, match="new.mrcs.*gap"):
        mrc.write(tmp_path / "new.mrcs", np.zeros((4, 4)), index=2)
    mrc.write(tmp_path / "v.mrc", np.zeros((3, 4, 4)))
    with pytest.raises(UsageError, match="v.mrc.*volume"):
        mrc.write(tmp_path / "v.mrc", np.zeros((4, 4)), index=1)
    assert mrc.info(path).n_images == 2


def test_member_write_into_stack_with_extended_header(tmp_path, rng):
    path = tmp_path / "ext.mrcs"
    stack = rng.normal(size=(2, 4, 6)).astype(np.float32)
    with mrcfile.new(path) as m:
        m.set_data(stack)
        m.set_image_stack()
        m.set_extended_header(np.frombuffer(bytes(range(96)), dtype="V1"))
        m.header.exttyp = b"MRCO"
    extra = rng.normal(size=(4, 6)).astype(np.float32)
    mrc.write(path, extra, index=3)
    np.testing.assert_array_equal(mrc.read(path), np.concatenate([stack, extra[None]]))
    with mrcfile.open(path) as m:
        assert bytes(m.extended_header) == bytes(range(96))
    assert_valid(path)


def test_member_write_into_int16_stack_rewrites_as_float32(tmp_path):
    path = tmp_path / "i.mrcs"
    ints = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    with mrcfile.new(path) as m:
        m.set_data(ints)
        m.set_image_stack()
    mrc.write(path, np.full((3, 4), 0.5, np.float32), index=2)
    assert mrc.info(path).extra["mode"] == 2
    np.testing.assert_array_equal(mrc.read(path, 1), ints[0].astype(np.float32))
    np.testing.assert_array_equal(mrc.read(path, 2), np.full((3, 4), 0.5, np.float32))
    assert_valid(path)


# ------------------------------------------------------------- modes, byte order, axes

@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint16, np.float16])
def test_integer_and_half_modes_read_as_float32(tmp_path, dtype):
    values = np.array([[0, 1, 2, 100], [3, 4, 5, 6]], dtype=dtype)
    path = tmp_path / "m.mrc"
    with mrcfile.new(path) as m:
        m.set_data(values)
    back = mrc.read(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, values.astype(np.float32))


def test_big_endian_file_reads_and_grows_in_its_own_byte_order(tmp_path, rng):
    stack = rng.normal(size=(2, 3, 5)).astype(">f4")
    path = tmp_path / "be.mrcs"
    with mrcfile.new(path) as m:
        m.set_data(stack)
        m.set_image_stack()
    np.testing.assert_array_equal(mrc.read(path), stack.astype(np.float32))
    new = rng.normal(size=(3, 5)).astype(np.float32)
    mrc.write(path, new, index=3)
    assert mrc.info(path).extra["byte_order"] == "big"
    np.testing.assert_array_equal(mrc.read(path, 3), new)
    assert_header_stats(path, mrc.read(path))
    assert_valid(path)


def test_axis_mapping_is_applied_to_volumes(tmp_path, rng):
    vol = rng.normal(size=(3, 4, 5)).astype(np.float32)  # (z, y, x)
    path = tmp_path / "perm.map"
    # columns = y, rows = z, sections = x: stored[s, r, c] = vol[r, c, s]
    with mrcfile.new(path) as m:
        m.set_data(np.ascontiguousarray(vol.transpose(2, 0, 1)))
        m.header.mapc, m.header.mapr, m.header.maps = 2, 3, 1
    assert mrc.info(path).shape == (3, 4, 5)
    np.testing.assert_array_equal(mrc.read(path), vol)


def test_dispatch_through_emsh_io(tmp_path, rng):
    stack = rng.normal(size=(3, 4, 4)).astype(np.float32)
    emio.write(tmp_path / "d.mrcs", stack, apix=1.0)
    np.testing.assert_array_equal(emio.read(f"{tmp_path / 'd.mrcs'}@2"), stack[1])
    emio.write(f"{tmp_path / 'd.mrcs'}@4", stack[0])
    assert emio.info(tmp_path / "d.mrcs").n_images == 4
    assert mrc.sniff((tmp_path / "d.mrcs").read_bytes()[:1024])
    assert not mrc.sniff(b"\0" * 1024)


# ------------------------------------------------------------------------- bad files

def _stack_file(tmp_path, rng):
    path = tmp_path / "bad.mrcs"
    mrc.write(path, rng.normal(size=(3, 8, 8)).astype(np.float32))
    return path


def _truncate(p):
    p.write_bytes(p.read_bytes()[:-10])


def _short_header(p):
    p.write_bytes(p.read_bytes()[:500])


def _append(p):
    p.write_bytes(p.read_bytes() + b"\0" * 100)


CORRUPTIONS = {
    "truncated data": (_truncate, "truncated: "),
    "truncated header": (_short_header, "truncated header"),
    "map word": (lambda p: poke(p, 208, "4s", b"PAM "), "'MAP ' word"),
    "nx = 0": (lambda p: poke(p, 0, "i", 0), "must all be positive"),
    "absurd size": (lambda p: poke(p, 0, "3i", 1 << 20, 1 << 20, 1 << 20), "absurd dimensions"),
    "unknown mode": (lambda p: poke(p, 12, "i", 7), "unknown data mode 7"),
    "complex mode": (lambda p: poke(p, 12, "i", 4), "complex 32-bit"),
    "mode 3": (lambda p: poke(p, 12, "i", 3), "mode 3"),
    "nsymbt past end": (lambda p: poke(p, 92, "i", 1 << 20), "runs past the end"),
    "nsymbt too big": (lambda p: poke(p, 92, "i", 64), "truncated: "),
    "nsymbt negative": (lambda p: poke(p, 92, "i", -4), "negative extended-header"),
    "nsymbt too small": (_append, "100 bytes longer than its header says"),
    "machine stamp": (lambda p: poke(p, 212, "4B", 0, 0, 0, 0), "machine stamp"),
    "axis mapping": (lambda p: poke(p, 64, "3i", 1, 1, 1), "axis mapping"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corrupt_files_are_refused_with_the_path(tmp_path, rng, case):
    path = _stack_file(tmp_path, rng)
    corrupt, message = CORRUPTIONS[case]
    corrupt(path)
    for call in (mrc.read, mrc.info, lambda p: mrc.read(p, 1)):
        with pytest.raises(DataFormatError) as err:
            call(path)
        assert str(path) in str(err.value) and message in str(err.value)
    with pytest.raises(DataFormatError, match=message.split(":")[0]):
        mrc.write(path, np.zeros((8, 8)), index=2)


def test_index_out_of_range_names_the_file(tmp_path, rng):
    path = _stack_file(tmp_path, rng)
    for index in (0, 4):
        with pytest.raises(DataFormatError, match=rf"{path}.*member {index}.*1\.\.3"):
            mrc.read(path, index)
    vol = tmp_path / "vol.mrc"
    mrc.write(vol, np.zeros((3, 4, 4)))
    with pytest.raises(DataFormatError, match=rf"{vol}.*volume"):
        mrc.read(vol, 1)
    with pytest.raises(DataFormatError, match="not found"):
        mrc.read(tmp_path / "missing.mrc")


def test_mrcfile_warnings_become_errors(tmp_path, rng, monkeypatch):
    path = _stack_file(tmp_path, rng)
    real = mrcfile.mmap

    def warning_mmap(*args, **kwargs):
        warnings.warn("something odd in the file", RuntimeWarning)
        return real(*args, **kwargs)

    monkeypatch.setattr(mrcfile, "mmap", warning_mmap)
    with pytest.raises(DataFormatError, match=rf"{path}.*something odd"):
        mrc.read(path, 1)
