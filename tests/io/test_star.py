"""RELION STAR reading and writing: a hand-written RELION 3.1 file, round trips, the
independent ``starfile`` package as a cross-check both ways, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile

from emsh.errors import DataFormatError, OutputExistsError, UsageError
from emsh.io.star import (join_image_name, read_particles, read_star, split_image_name,
                          write_star)
from emsh.table import Table

DATA = Path(__file__).resolve().parents[1] / "data"
RELION31 = DATA / "relion31_particles.star"


def assert_tables_equal(a: Table, b: Table):
    assert a.columns == b.columns
    for col in a.columns:
        assert a[col].dtype.kind == b[col].dtype.kind, col
        if a[col].dtype.kind == "f":
            np.testing.assert_array_equal(a[col], b[col], err_msg=col)  # NaN == NaN here
        else:
            assert a[col].tolist() == b[col].tolist(), col


EXOTIC = ["", "_starts_with_underscore", "#hash", "data_like.mrc", "it's", 'say "hi" now']
PLAIN = ["MotionCorr/mic_001.mrc", "MotionCorr/mic 002.mrc", ""]


def sample_blocks(rng, n=40, texts=EXOTIC):
    optics = Table({
        "rlnOpticsGroupName": ["opticsGroup1", "group two"],
        "rlnOpticsGroup": [1, 2],
        "rlnVoltage": [300.0, 200.0],
        "rlnSphericalAberration": [2.7, 0.01],
        "rlnImagePixelSize": [1.1, 0.885],
        "rlnImageSize": [64, 64],
    }, name="optics")
    floats = rng.normal(size=n) * 1000
    floats[:4] = [1e-12, -3.5e12, np.nan, 0.1]
    particles = Table({
        "rlnImageName": [join_image_name("Extract/job007/mic 1.mrcs", i + 1) for i in range(n)],
        "rlnAngleRot": floats,
        "rlnAngleTilt": rng.uniform(0, 180, n),
        "rlnDefocusU": rng.uniform(5000, 30000, n),
        "rlnOpticsGroup": rng.integers(1, 3, n),
        "rlnClassNumber": rng.integers(1, 5, n),
        "rlnMicrographName": (texts * n)[:n],
        "rlnRandomText": (["007", "12", "3.5"] * n)[:n],  # text that looks numeric
    }, name="particles")
    return {"optics": optics, "particles": particles}


# ---------------------------------------------------------------------- hand-written file

def test_reads_hand_written_relion31_file():
    blocks = read_star(RELION31)
    assert list(blocks) == ["optics", "particles"]
    optics, parts = blocks["optics"], blocks["particles"]
    assert optics.name == "optics" and parts.name == "particles"
    assert optics["rlnOpticsGroupName"].tolist() == ["opticsGroup1", "optics group 2"]
    assert optics["rlnOpticsGroup"].dtype == np.int64
    assert optics["rlnVoltage"].tolist() == [300.0, 200.0]
    assert optics["rlnImageSize"].dtype == np.int64
    assert len(parts) == 4
    assert parts["rlnCoordinateY"].tolist() == [2210.5, 101.25, 3050.0, 96.0]
    assert parts["rlnMicrographName"].tolist() == [
        "MotionCorr/job002/Movies/mic_001.mrc"] * 2 + ["MotionCorr/job002/Movies/mic 002.mrc"] * 2
    assert parts["rlnDefocusU"].tolist() == [15234.75, 15234.75, 21000.0, 21000.0]
    assert parts["rlnAngleRot"].tolist() == [-12.5, 170.0, 1e-3, -179.99]
    assert parts["rlnClassNumber"].dtype == np.int64
    assert parts["rlnClassNumber"].tolist() == [3, 1, 2, 3]
    assert parts["rlnImageName"][2] == "000001@Extract/job007/Movies/mic_002.mrcs"


def test_read_particles_merges_optics_on_request():
    parts, optics = read_particles(RELION31)
    assert "rlnVoltage" not in parts and len(optics) == 2
    merged, _ = read_particles(RELION31, merge_optics=True)
    assert merged["rlnVoltage"].tolist() == [300.0, 300.0, 200.0, 200.0]
    assert merged["rlnSphericalAberration"].tolist() == [2.7, 2.7, 2.0, 2.0]
    assert merged["rlnOpticsGroupName"].tolist()[2] == "optics group 2"
    assert merged.columns[: len(parts.columns)] == parts.columns


def test_read_particles_of_a_relion30_file():
    parts, optics = read_particles(DATA / "relion30_particles.star", merge_optics=True)
    assert optics is None and parts.name == ""
    assert parts["rlnDefocusU"].tolist() == [10000.0, 12000.0, 14000.0]


def test_key_value_block():
    general = read_star(DATA / "relion_model_general.star")["model_general"]
    assert general == {
        "rlnReferenceDimensionality": 3,
        "rlnDataDimensionality": 2,
        "rlnOriginalImageSize": 128,
        "rlnCurrentResolution": 7.54321,
        "rlnModelStarFile": "Class3D/job012/run it025_model.star",
        "rlnPadFactor": 2.0,
    }
    assert type(general["rlnOriginalImageSize"]) is int


# ------------------------------------------------------------------------- round trips

def test_round_trip_particles_optics_and_key_values(tmp_path, rng):
    blocks = sample_blocks(rng)
    blocks["general"] = {"rlnImageSize": 64, "rlnFinalResolution": 3.25,
                         "rlnName": "two words", "rlnCode": "0042"}
    path = tmp_path / "run_data.star"
    write_star(path, blocks)
    back = read_star(path)
    assert list(back) == ["optics", "particles", "general"]
    assert_tables_equal(back["optics"], blocks["optics"])
    assert_tables_equal(back["particles"], blocks["particles"])
    assert back["general"] == blocks["general"]
    parts, optics = read_particles(path, merge_optics=True)
    expect = np.where(blocks["particles"]["rlnOpticsGroup"] == 1, 300.0, 200.0)
    np.testing.assert_array_equal(parts["rlnVoltage"], expect)


def test_written_text_is_relion_style(tmp_path, rng):
    path = tmp_path / "p.star"
    write_star(path, sample_blocks(rng, n=5))
    lines = path.read_text().splitlines()
    data_lines = [i for i, s in enumerate(lines) if s.startswith("data_")]
    assert [lines[i] for i in data_lines] == ["data_optics", "data_particles"]
    for i in data_lines:
        assert "# version 30001" in lines[max(0, i - 3):i]
    assert "_rlnOpticsGroupName #1" in lines and "_rlnRandomText #8" in lines
    first_row = lines.index("_rlnRandomText #8") + 1
    rows = lines[first_row:first_row + 5]
    assert len({len(r) for r in rows}) == 1  # aligned columns
    assert '"Extract/job007/mic 1.mrcs"' not in rows[0]  # the whole name is one token
    assert '"000001@Extract/job007/mic 1.mrcs"' in rows[0]
    assert '"007"' in rows[0]


def test_write_refuses_to_overwrite_and_bad_values(tmp_path):
    path = tmp_path / "x.star"
    path.write_text("keep")
    with pytest.raises(OutputExistsError):
        write_star(path, {"a": {"rlnX": 1}})
    assert path.read_text() == "keep"
    write_star(path, {"a": {"rlnX": 1}}, overwrite=True)
    assert read_star(path) == {"a": {"rlnX": 1}}
    with pytest.raises(UsageError, match="line break"):
        write_star(tmp_path / "y.star", {"a": Table({"rlnX": ["a\nb"]})})
    with pytest.raises(UsageError, match="column name"):
        write_star(tmp_path / "y.star", {"a": Table({"rln X": [1]})})
    with pytest.raises(UsageError, match="Table"):
        write_star(tmp_path / "y.star", {"a": [1, 2]})
    assert not (tmp_path / "y.star").exists()


# ------------------------------------------------------------ starfile as cross-check

def test_starfile_reads_what_we_write(tmp_path, rng):
    # starfile (pandas' CSV parser) knows only double quotes, so no exotic strings here
    blocks = sample_blocks(rng, texts=PLAIN)
    blocks["general"] = {"rlnImageSize": 64, "rlnFinalResolution": 3.25}
    path = tmp_path / "ours.star"
    write_star(path, blocks)
    theirs = starfile.read(path, always_dict=True)
    assert list(theirs) == ["optics", "particles", "general"]
    for name in ("optics", "particles"):
        table, frame = blocks[name], theirs[name]
        assert list(frame.columns) == table.columns
        for col in table.columns:
            if table[col].dtype.kind in "if":
                np.testing.assert_array_equal(frame[col].to_numpy(), table[col], err_msg=col)
    assert theirs["optics"]["rlnOpticsGroupName"].tolist() == ["opticsGroup1", "group two"]
    for col in ("rlnImageName", "rlnMicrographName"):
        assert theirs["particles"][col].fillna("").tolist() == blocks["particles"][col].tolist()
    assert theirs["general"] == {"rlnImageSize": 64, "rlnFinalResolution": 3.25}


def test_we_read_what_starfile_writes(tmp_path, rng):
    n = 25
    frame = pd.DataFrame({
        "rlnImageName": [f"{i + 1:06d}@Particles/stack 1.mrcs" for i in range(n)],
        "rlnAngleRot": rng.uniform(-180, 180, n),
        "rlnClassNumber": rng.integers(1, 9, n),
        "rlnOriginXAngst": rng.normal(size=n),
    })
    path = tmp_path / "theirs.star"
    starfile.write({"particles": frame, "general": {"rlnNrClasses": 8, "rlnTau": 0.5}}, path)
    blocks = read_star(path)
    parts = blocks["particles"]
    assert parts["rlnImageName"].tolist() == frame["rlnImageName"].tolist()
    assert parts["rlnClassNumber"].dtype == np.int64
    np.testing.assert_array_equal(parts["rlnClassNumber"], frame["rlnClassNumber"])
    for col in ("rlnAngleRot", "rlnOriginXAngst"):  # starfile writes '%.6f'
        np.testing.assert_allclose(parts[col], frame[col], rtol=0, atol=5.1e-7)
    assert blocks["general"] == {"rlnNrClasses": 8, "rlnTau": 0.5}


def test_rows_that_start_like_keywords_are_rows(tmp_path):
    path = tmp_path / "k.star"
    path.write_text("data_a\nloop_\n_rlnName\n_rlnV\n0.mrc 0\ndog.mrc 1\nloop.mrc 2\n"
                    "save.mrc 3\n_x.mrc 4\n")
    with pytest.raises(DataFormatError, match="line 9: _x.mrc after the rows"):
        read_star(path)
    path.write_text(path.read_text().replace("_x.mrc", "x.mrc"))
    t = read_star(path)["a"]
    assert t["rlnName"].tolist() == ["0.mrc", "dog.mrc", "loop.mrc", "save.mrc", "x.mrc"]
    assert t["rlnV"].tolist() == [0, 1, 2, 3, 4]


# ------------------------------------------------------------------------ image names

def test_split_and_join_image_names():
    assert split_image_name("000012@stack.mrcs") == ("stack.mrcs", 12)
    assert split_image_name("3@Extract/job1/a b.mrcs") == ("Extract/job1/a b.mrcs", 3)
    assert split_image_name("map.mrc") == ("map.mrc", None)
    assert join_image_name("stack.mrcs", 12) == "000012@stack.mrcs"
    assert split_image_name(join_image_name("x.mrcs", 1234567)) == ("x.mrcs", 1234567)
    for bad in ("0@stack.mrcs", "ab@stack.mrcs", "12@"):
        with pytest.raises(UsageError, match="member number"):
            split_image_name(bad)
    with pytest.raises(UsageError):
        join_image_name("x.mrcs", 0)


# ----------------------------------------------------------------------------- errors

LOOP = "data_particles\nloop_\n_rlnA #1\n_rlnB #2\n"
BAD_FILES = {
    "field count": (LOOP + "1 2\n3\n", r"line 6: loop row has 1 fields but data_particles has 2"),
    "duplicate column": (LOOP + "_rlnA #3\n1 2 3\n", "line 5: duplicate column _rlnA"),
    "unterminated quote": (LOOP + '1 "two words\n', "line 5: unterminated \" quote"),
    "empty": ("", "empty file"),
    "blank": ("\n  \n\t\n", "empty file"),
    "comments only": ("# nothing\n# here\n", "no data_ block"),
    "no data_": ("_rlnA 1\n", "line 1: '_rlnA' before the first data_ block"),
    "duplicate block": ("data_a\n_rlnX 1\ndata_a\n_rlnX 2\n", "line 3: second block named data_a"),
    "loop without labels": ("data_a\nloop_\n1 2\n", "line 3: loop_ in data_a has no column"),
    "key without value": ("data_a\n_rlnX\n", "line 2: expected '_name value'"),
    "duplicate key": ("data_a\n_rlnX 1\n_rlnX 2\n", "line 3: duplicate key _rlnX"),
    "loop then key": (LOOP + "1 2\n_rlnC 3\n", "line 6: _rlnC after the rows"),
    "value outside loop": ("data_a\n12 13\n", "line 2: value '12' outside a loop_"),
    "save frame": ("data_a\nsave_frame\n", "save frames"),
    "text field": ("data_a\n;text\n;\n", "line 2: multi-line"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_star_files_name_file_and_line(tmp_path, case):
    text, message = BAD_FILES[case]
    path = tmp_path / "bad.star"
    path.write_text(text)
    with pytest.raises(DataFormatError) as err:
        read_star(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_unreadable_files(tmp_path):
    binary = tmp_path / "b.star"
    binary.write_bytes(b"data_\x00\x01")
    with pytest.raises(DataFormatError, match="binary"):
        read_star(binary)
    with pytest.raises(DataFormatError, match="not found"):
        read_star(tmp_path / "missing.star")


def test_particles_in_undefined_optics_group(tmp_path):
    path = tmp_path / "p.star"
    write_star(path, {"optics": Table({"rlnOpticsGroup": [1], "rlnVoltage": [300.0]}),
                      "particles": Table({"rlnOpticsGroup": [1, 3], "rlnAngleRot": [0.0, 1.0]})})
    assert read_particles(path)[0]["rlnOpticsGroup"].tolist() == [1, 3]
    with pytest.raises(DataFormatError, match=r"p\.star.*optics groups \[3\]"):
        read_particles(path, merge_optics=True)
