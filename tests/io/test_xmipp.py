"""Xmipp 3 metadata (.xmd): ml_tomo-style files, round trips, and the shared STAR parser."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emsh.errors import DataFormatError, OutputExistsError
from emsh.io.star import read_star, write_star
from emsh.io.xmipp import read_xmd, write_xmd
from emsh.table import Table

DATA = Path(__file__).resolve().parents[1] / "data"


def test_reads_mltomo_image_metadata():
    blocks = read_xmd(DATA / "mltomo_it000002_img.xmd")
    assert list(blocks) == ["noname"]
    t = blocks["noname"]
    assert t.columns == ["image", "enabled", "angleRot", "angleTilt", "anglePsi", "shiftX",
                         "shiftY", "shiftZ", "ref", "missingRegionNumber", "logLikelihood"]
    assert t["image"].tolist() == [f"00000{i}@subtomos.stk" for i in (1, 2, 3)]
    assert t["enabled"].dtype == np.int64 and t["enabled"].tolist() == [1, 1, -1]
    assert t["angleRot"].tolist() == [12.0, 180.0, 0.0]
    assert t["anglePsi"].tolist() == [-30.0, 60.0, 0.0]
    assert t["shiftY"].tolist() == [-1.25, 0.0, 0.0]
    assert t["ref"].tolist() == [1, 2, 1]
    assert t["logLikelihood"].tolist() == [-12345.6, -12300.0, -12500.0]


def test_reads_row_format_log_and_classes():
    blocks = read_xmd(DATA / "mltomo_it000002_log.xmd")
    assert list(blocks) == ["", "classes"]
    log = blocks[""]
    assert log["logLikelihood"] == -37012.345 and log["iterationNumber"] == 2
    assert type(log["iterationNumber"]) is int
    assert log["imageMetaData"] == "mltomo_it000002_img.xmd"
    classes = blocks["classes"]
    assert classes["weight"].tolist() == [0.666667, 0.333333]
    assert classes["image"][1] == "mltomo_it000002_ref000002.mrc"


def test_round_trip_and_xmipp_layout(tmp_path, rng):
    n = 12
    images = Table({
        "image": [f"{i + 1:06d}@subtomos.stk" for i in range(n)],
        "enabled": rng.choice([1, -1], n),
        "angleRot": rng.uniform(-180, 180, n),
        "angleTilt": rng.uniform(0, 180, n),
        "shiftX": rng.normal(size=n),
        "ref": rng.integers(1, 4, n),
    })
    log = {"logLikelihood": -1.5e4, "pMax": 0.25, "iterationNumber": 3,
           "imageMetaData": "run_it000003_img.xmd"}
    path = tmp_path / "run.xmd"
    write_xmd(path, {"images": images, "log": log})
    back = read_xmd(path)
    assert back["images"] == images
    assert back["log"] == log
    lines = path.read_text().splitlines()
    assert lines[0] == "# XMIPP_STAR_1 *"
    assert " _image" in lines and " _angleRot" in lines
    assert not any("#1" in s or "version" in s for s in lines)
    with pytest.raises(OutputExistsError):
        write_xmd(path, {"log": log})


def test_xmipp_and_star_share_one_parser(tmp_path):
    body = "data_classes\nloop_\n _image\n _weight\n a.mrc 0.5\n 'b c.mrc' 0.25\n"
    (tmp_path / "a.xmd").write_text("# XMIPP_STAR_1 *\n" + body)
    (tmp_path / "a.star").write_text(body)
    assert read_xmd(tmp_path / "a.xmd") == read_star(tmp_path / "a.star")
    bad = body + " c.mrc\n"
    (tmp_path / "b.xmd").write_text("# XMIPP_STAR_1 *\n" + bad)
    (tmp_path / "b.star").write_text(bad)
    errors = []
    for name in ("b.xmd", "b.star"):
        with pytest.raises(DataFormatError) as err:
            (read_xmd if name.endswith("xmd") else read_star)(tmp_path / name)
        errors.append(err.value.reason)
    assert "loop row has 1 fields but data_classes has 2" in errors[0]
    assert errors[0] == errors[1].replace("line 7", "line 8")


def test_files_without_the_xmipp_header_are_refused(tmp_path):
    relion = tmp_path / "relion.star"
    write_star(relion, {"particles": Table({"rlnAngleRot": [1.0]})})
    with pytest.raises(DataFormatError, match=r"relion\.star.*XMIPP_STAR_1"):
        read_xmd(relion)
    empty = tmp_path / "empty.xmd"
    empty.write_text("")
    with pytest.raises(DataFormatError, match=r"empty\.xmd: empty file"):
        read_xmd(empty)
    sel = tmp_path / "old.sel"
    sel.write_text("img001.xmp 1\nimg002.xmp -1\n")
    with pytest.raises(DataFormatError, match="not an Xmipp 3 metadata file"):
        read_xmd(sel)
