import pytest

from emsh.errors import OutputExistsError
from emsh.io._atomic import atomic_open, atomic_path


def test_existing_file_is_kept_without_overwrite(tmp_path):
    target = tmp_path / "a.dat"
    target.write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="a.dat"):
        with atomic_open(target) as fh:
            fh.write(b"new")
    assert target.read_bytes() == b"old"


def test_failed_write_leaves_no_trace(tmp_path):
    target = tmp_path / "b.dat"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_open(target, overwrite=True) as fh:
            fh.write(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.dat"]


def test_overwrite_replaces_and_creates_folders(tmp_path):
    target = tmp_path / "sub" / "c.dat"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"one")
        assert not target.exists()
    assert target.read_bytes() == b"one"
    with atomic_open(target, overwrite=True) as fh:
        fh.write(b"two")
    assert target.read_bytes() == b"two"


def test_new_files_get_the_usual_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        with atomic_open(tmp_path / "d.dat") as fh:
            fh.write(b"x")
    finally:
        os.umask(mask)
    assert (tmp_path / "d.dat").stat().st_mode & 0o777 == 0o644
