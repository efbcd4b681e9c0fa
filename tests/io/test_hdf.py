"""EMAN2/SPHIRE HDF5 images: layout, EMAN2's exact attribute types, Transform/CTF codecs."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from emsh.errors import DataFormatError, OutputExistsError, UsageError
from emsh.geom.euler import spider_to_matrix
from emsh.io import hdf

XFORM_FIELDS = [f"{r}{c}" for r in range(3) for c in range(4)]


def _attr_type(obj, name):
    aid = obj.attrs.get_id(name)
    t = aid.get_type()
    return t, aid.shape


# ----------------------------------------------------------------------------- pixels
def test_sniff():
    assert hdf.sniff(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    assert not hdf.sniff(b"MAP " + b"\0" * 100)
    assert not hdf.sniff(b"")


def test_image_round_trip_and_layout(tmp_path, rng):
    img = rng.normal(size=(12, 10)).astype(np.float32)
    p = tmp_path / "one.hdf"
    hdf.write(p, img, apix=1.25)
    out = hdf.read(p)
    assert out.dtype == np.float32 and np.array_equal(out, img)
    assert np.array_equal(hdf.read(p, 1), img)
    inf = hdf.info(p)
    assert (inf.format, inf.shape, inf.n_images, inf.is_stack) == ("hdf", (12, 10), 1, False)
    assert inf.apix == pytest.approx(1.25)
    with h5py.File(p, "r") as f:
        grp = f["MDF/images"]
        t, shape = _attr_type(grp, "imageid_max")
        assert t.get_class() == h5py.h5t.INTEGER and t.get_size() == 4 and shape == (1,)
        assert int(grp.attrs["imageid_max"][0]) == 0
        ds = grp["0/image"]
        assert ds.dtype == np.dtype("<f4") and ds.shape == (12, 10) and ds.chunks is None
        assert ds.compression is None
        names = set(grp["0"].attrs)
    assert {"EMAN.nx", "EMAN.ny", "EMAN.nz", "EMAN.apix_x", "EMAN.apix_y", "EMAN.apix_z",
            "EMAN.datatype", "EMAN.is_complex", "EMAN.minimum", "EMAN.maximum", "EMAN.mean",
            "EMAN.sigma"} <= names
    head = hdf.read_attributes(p, 1)
    assert (head["nx"], head["ny"], head["nz"], head["datatype"]) == (10, 12, 1, 7)
    assert head["mean"] == pytest.approx(float(img.mean()), rel=1e-5)
    assert head["sigma"] == pytest.approx(float(img.std(ddof=1)), rel=1e-5)
    assert head["maximum"] == pytest.approx(float(img.max()))


def test_volume_and_stack_round_trip(tmp_path, rng):
    vol = rng.normal(size=(6, 7, 8)).astype(np.float32)
    hdf.write(tmp_path / "v.hdf", vol)
    assert np.array_equal(hdf.read(tmp_path / "v.hdf"), vol)
    assert hdf.info(tmp_path / "v.hdf").shape == (6, 7, 8)
    assert hdf.info(tmp_path / "v.hdf").apix is None

    stack = rng.normal(size=(5, 8, 9)).astype(np.float32)
    p = tmp_path / "s.hdf"
    hdf.write(p, stack, stack=True, apix=2.0)
    inf = hdf.info(p)
    assert (inf.n_images, inf.shape, inf.is_stack) == (5, (8, 9), True)
    assert np.array_equal(hdf.read(p), stack)
    for n in (1, 3, 5):
        assert np.array_equal(hdf.read(p, n), stack[n - 1])
    with h5py.File(p, "r") as f:
        assert sorted(f["MDF/images"], key=int) == ["0", "1", "2", "3", "4"]
        assert int(f["MDF/images"].attrs["imageid_max"][0]) == 4

    vols = rng.normal(size=(3, 4, 5, 6)).astype(np.float32)
    hdf.write(tmp_path / "vs.hdf", vols, stack=True)
    assert np.array_equal(hdf.read(tmp_path / "vs.hdf"), vols)


def test_rank_follows_eman2(tmp_path, rng):
    line = rng.normal(size=(1, 7)).astype(np.float32)
    hdf.write(tmp_path / "l.hdf", line)
    slab = rng.normal(size=(1, 4, 5)).astype(np.float32)
    hdf.write(tmp_path / "z.hdf", slab)
    with h5py.File(tmp_path / "l.hdf") as f, h5py.File(tmp_path / "z.hdf") as g:
        assert f["MDF/images/0/image"].shape == (7,)
        assert g["MDF/images/0/image"].shape == (4, 5)
    assert np.array_equal(hdf.read(tmp_path / "l.hdf"), line)
    assert np.array_equal(hdf.read(tmp_path / "z.hdf"), slab[0])


def test_member_replacement_and_growth(tmp_path, rng):
    stack = rng.normal(size=(3, 6, 6)).astype(np.float32)
    p = tmp_path / "m.hdf"
    hdf.write(p, stack, stack=True, apix=1.7)
    hdf.write_attributes(p, 2, {"note": "old"})
    new = rng.normal(size=(6, 6)).astype(np.float32) + 5
    hdf.write(p, new, index=2)
    out = hdf.read(p)
    assert np.array_equal(out[0], stack[0]) and np.array_equal(out[2], stack[2])
    assert np.array_equal(out[1], new)
    head = hdf.read_attributes(p, 2)
    assert "note" not in head                      # header replaced, as EMAN2 does
    assert head["apix_x"] == pytest.approx(1.7)    # pixel size inherited from image 1
    assert head["mean"] == pytest.approx(float(new.mean()), rel=1e-5)
    assert hdf.info(p).n_images == 3

    hdf.write(p, new * 2, index=6)
    inf = hdf.info(p)
    assert inf.n_images == 6 and inf.extra["imageid_max"] == 5
    assert np.array_equal(hdf.read(p, 6), new * 2)
    with pytest.raises(DataFormatError, match=r"m\.hdf.*image 4 \(EMAN2 index 3\) does not exist"):
        hdf.read(p)
    with pytest.raises(DataFormatError, match="does not exist"):
        hdf.read(p, 5)

    q = tmp_path / "fresh.hdf"
    hdf.write(q, new, index=3)
    with h5py.File(q) as f:
        assert int(f["MDF/images"].attrs["imageid_max"][0]) == 2
        assert list(f["MDF/images"]) == ["2"]
    assert np.array_equal(hdf.read(q, 3), new)
    assert (hdf.info(q).n_images, hdf.info(q).shape) == (3, (6, 6))


def test_overwrite_rules_and_atomicity(tmp_path, rng):
    p = tmp_path / "o.hdf"
    a = rng.normal(size=(4, 4)).astype(np.float32)
    hdf.write(p, a)
    before = p.read_bytes()
    with pytest.raises(OutputExistsError, match="o.hdf"):
        hdf.write(p, a + 1)
    assert p.read_bytes() == before
    with pytest.raises(UsageError):
        hdf.write(p, np.zeros((2, 2, 2, 2, 2), np.float32), overwrite=True)
    assert p.read_bytes() == before
    hdf.write(p, a + 1, overwrite=True)
    assert np.array_equal(hdf.read(p), a + 1)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["o.hdf"]
    with pytest.raises(UsageError):
        hdf.write(p, a, index=0)
    with pytest.raises(UsageError):
        hdf.write(p, np.zeros((2, 4, 4), np.float32), index=1, stack=True)
    with pytest.raises(UsageError):
        hdf.write(tmp_path / "c.hdf", np.zeros((4, 4), np.complex64))


def test_mixed_sizes_need_member_reads(tmp_path, rng):
    imgs = [rng.normal(size=(8, 8)).astype(np.float32), rng.normal(size=(6, 10)).astype(np.float32),
            rng.normal(size=(8, 8)).astype(np.float32)]
    p = tmp_path / "mixed.hdf"
    hdf.write_stack_with_attributes(p, imgs, [None, None, None])
    with pytest.raises(DataFormatError, match=r"mixed\.hdf: images differ in size") as err:
        hdf.read(p)
    assert "8x8 (2)" in str(err.value) and "10x6 (1)" in str(err.value)
    assert np.array_equal(hdf.read(p, 2), imgs[1])


def test_compressed_images(tmp_path, rng):
    img = rng.normal(size=(20, 30)).astype(np.float32)
    for bits, dtype in ((8, np.uint8), (12, np.uint16)):
        p = tmp_path / f"c{bits}.hdf"
        hdf.write(p, img, compress_bits=bits)
        with h5py.File(p) as f:
            ds = f["MDF/images/0/image"]
            assert ds.dtype == dtype and ds.chunks == (20, 30) and ds.compression == "gzip"
            g = f["MDF/images/0"]
            t, _ = _attr_type(g, "EMAN.stored_renderbits")
            assert t.get_class() == h5py.h5t.INTEGER and t.get_size() == 4
            t, _ = _attr_type(g, "EMAN.stored_rendermin")
            assert t.get_class() == h5py.h5t.FLOAT and t.get_size() == 4
            assert int(g.attrs["EMAN.stored_truncated"][0]) == 2   # the min and max pixels
        step = (img.max() - img.min()) / (2**bits - 1)
        err = np.abs(hdf.read(p) - img).max()
        assert err <= 0.5 * step * 1.001 and err > 0
        assert hdf.info(p).extra["compressed"]
    hdf.write(tmp_path / "c0.hdf", img, compress_bits=0)
    assert np.array_equal(hdf.read(tmp_path / "c0.hdf"), img)

    # a file laid out by EMAN2's write_compressed: v = stored/(2^bits-1)*(max-min)+min
    q = tmp_path / "eman2c.hdf"
    stored = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    with h5py.File(q, "w") as f:
        g = f.create_group("MDF/images")
        g.attrs.create("imageid_max", np.array([0], np.int32))
        ig = g.create_group("0")
        ig.create_dataset("image", data=stored, chunks=(3, 4), compression="gzip")
        ig.attrs.create("EMAN.stored_renderbits", np.array([8], np.int32))
        ig.attrs.create("EMAN.stored_rendermin", np.array([-1.0], np.float32))
        ig.attrs.create("EMAN.stored_rendermax", np.array([2.0], np.float32))
    expect = stored.astype(np.float64) / 255 * 3.0 - 1.0
    assert np.allclose(hdf.read(q), expect, atol=1e-6)


# ----------------------------------------------------------------------------- attribute types
def test_attribute_types_match_hdfio2(tmp_path):
    p = tmp_path / "t.hdf"
    hdf.write(p, np.zeros((4, 4), np.float32))
    hdf.write_attributes(p, 1, {
        "n_objects": 7, "score": 0.25, "source_path": "parts/mic001.hdf", "ok": True,
        "bad": False, "members": [3, 9, 27], "class_ssnr": [0.5, 1.5, 2.5],
        "xform.align2d": {"type": "2d", "alpha": 30.0, "tx": 1.0, "ty": -2.0, "mirror": 1,
                          "scale": 1.0},
        "ctf": {"defocus": 2.5, "voltage": 300, "cs": 2.7, "apix": 1.1, "ampcont": 10},
        "EMAN.originalid": np.int64(42), "ratio": np.float64(0.125)})
    with h5py.File(p) as f:
        g = f["MDF/images/0"]
        assert "EMAN.EMAN.originalid" not in g.attrs
        for name, cls, size, shape, sign in (
            ("EMAN.n_objects", h5py.h5t.INTEGER, 4, (1,), h5py.h5t.SGN_2),
            ("EMAN.originalid", h5py.h5t.INTEGER, 4, (1,), h5py.h5t.SGN_2),
            ("EMAN.members", h5py.h5t.INTEGER, 4, (3,), h5py.h5t.SGN_2),
            ("EMAN.ok", h5py.h5t.INTEGER, 1, (1,), None),
            ("EMAN.score", h5py.h5t.FLOAT, 4, (1,), None),
            ("EMAN.ratio", h5py.h5t.FLOAT, 4, (1,), None),
            ("EMAN.class_ssnr", h5py.h5t.FLOAT, 4, (3,), None),
        ):
            t, shp = _attr_type(g, name)
            assert (t.get_class(), t.get_size(), shp) == (cls, size, shape), name
            if sign is not None:
                assert t.get_sign() == sign, name
        assert g.attrs["EMAN.ok"][0] == ord("T") and g.attrs["EMAN.bad"][0] == ord("F")
        assert list(g.attrs["EMAN.members"]) == [3, 9, 27]
        for name, text in (("EMAN.source_path", "parts/mic001.hdf"),):
            t, shp = _attr_type(g, name)
            assert t.get_class() == h5py.h5t.STRING and not t.is_variable_str()
            assert t.get_size() == len(text) + 1 and shp == ()
            assert t.get_strpad() == h5py.h5t.STR_NULLTERM
            raw = np.zeros((), dtype=f"S{len(text) + 1}")
            g.attrs.get_id(name).read(raw, mtype=t)
            assert raw.tobytes() == text.encode() + b"\0"
        t, shp = _attr_type(g, "EMAN.ctf")
        assert t.get_class() == h5py.h5t.STRING and shp == () and not t.is_variable_str()
        assert g.attrs["EMAN.ctf"] == b"E2.5 0 0 0 10 300 2.7 1.1 -1 0 0"
        t, shp = _attr_type(g, "EMAN.xform.align2d")
        assert t.get_class() == h5py.h5t.COMPOUND and t.get_size() == 48 and shp == (1,)
        rec = g.attrs["EMAN.xform.align2d"]
        assert list(rec.dtype.names) == XFORM_FIELDS
        assert all(rec.dtype[f] == np.dtype("<f4") for f in XFORM_FIELDS)
        assert [rec.dtype.fields[f][1] for f in XFORM_FIELDS] == list(range(0, 48, 4))
        m = np.array([rec[0][f] for f in XFORM_FIELDS]).reshape(3, 4)
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    expect = np.array([[-c, -s, 0, -1.0], [-s, c, 0, -2.0], [0, 0, 1, 0]])   # mirrored row 0
    assert np.allclose(m, expect, atol=1e-6)

    head = hdf.read_attributes(p, 1)
    assert head["n_objects"] == 7 and head["originalid"] == 42
    assert head["score"] == 0.25 and head["ratio"] == 0.125
    assert head["ok"] is True and head["bad"] is False
    assert head["source_path"] == "parts/mic001.hdf"
    assert head["members"] == [3, 9, 27] and head["class_ssnr"] == [0.5, 1.5, 2.5]


def test_one_element_lists_follow_eman2(tmp_path):
    p = tmp_path / "one.hdf"
    hdf.write(p, np.zeros((4, 4), np.float32))
    hdf.write_attributes(p, 1, {"members": [5], "some_list": [6], "empty": []})
    head = hdf.read_attributes(p, 1)
    assert head["members"] == [5]          # kept a list: ISAC2 class with one member
    assert head["some_list"] == 6          # EMAN2 reads a 1-element array as a scalar
    assert head["empty"] == []


def test_write_attributes_delete_skip_and_reject(tmp_path):
    p = tmp_path / "w.hdf"
    hdf.write(p, np.ones((4, 6), np.float32))
    hdf.write_attributes(p, 1, {"a": 1, "b": 2})
    hdf.write_attributes(p, 1, {"a": None, "b": 3.5, "stored_renderbits": 8})
    head = hdf.read_attributes(p, 1)
    assert "a" not in head and head["b"] == 3.5 and "stored_renderbits" not in head
    assert np.array_equal(hdf.read(p), np.ones((4, 6), np.float32))
    for bad in ({"d": {"x": 1}}, {"d": ["a", "b"]}, {"d": 2**31}, {"d": "a\0b"},
                {"d": np.zeros((2, 2))}, {"nx": 5}, {"d": {"type": "quaternion"}},
                {"ctf": {"defocus": 1.0}}, {"x" * 130: 1}, {"ny": "4"}):
        with pytest.raises(UsageError):
            hdf.write_attributes(p, 1, bad)
    hdf.write_attributes(p, 1, {"nx": 6, "ny": 4})
    with pytest.raises(DataFormatError, match=r"w\.hdf.*member 2.*holds 1"):
        hdf.write_attributes(p, 2, {"a": 1})


def test_class_averages_in_one_call(tmp_path, rng):
    avgs = rng.normal(size=(3, 8, 8)).astype(np.float32)
    members = [[0, 4, 7, 9], [1, 2], [3]]
    attrs = [{"members": m, "n_objects": len(m)} for m in members]
    p = tmp_path / "class_averages.hdf"
    hdf.write_stack_with_attributes(p, avgs, attrs, apix=1.3)
    assert np.array_equal(hdf.read(p), avgs)
    heads = hdf.read_attributes(p, None)
    assert [h["members"] for h in heads] == members
    assert [h["n_objects"] for h in heads] == [4, 2, 1]
    assert all(h["apix_x"] == pytest.approx(1.3) for h in heads)
    with h5py.File(p) as f:
        for i, m in enumerate(members):
            a = f[f"MDF/images/{i}"].attrs
            assert a["EMAN.members"].dtype == np.int32 and list(a["EMAN.members"]) == m
            assert a["EMAN.n_objects"].dtype == np.int32 and a["EMAN.n_objects"].shape == (1,)
    with pytest.raises(UsageError, match="3 images but 2"):
        hdf.write_stack_with_attributes(tmp_path / "x.hdf", avgs, attrs[:2])
    with pytest.raises(UsageError):
        hdf.write_stack_with_attributes(tmp_path / "x.hdf", avgs, [{"d": object()}] * 3)
    assert not (tmp_path / "x.hdf").exists()


# ----------------------------------------------------------------------------- Transform / CTF
def test_transform_rotation_is_spider_and_eman(rng):
    for phi, theta, psi in rng.uniform([0, 0, 0], [360, 180, 360], size=(20, 3)):
        m = hdf.transform_matrix({"type": "spider", "phi": phi, "theta": theta, "psi": psi})
        assert np.allclose(m[:, :3], spider_to_matrix(phi, theta, psi), atol=1e-12)
        az, alt = np.radians(phi + 90), np.radians(theta)
        # EMAN2 Transform::set_rotation, third row: (sin alt sin az, -sin alt cos az, cos alt)
        assert np.allclose(m[2, :3], [np.sin(alt) * np.sin(az), -np.sin(alt) * np.cos(az),
                                      np.cos(alt)], atol=1e-12)
        e = hdf.transform_matrix({"type": "eman", "az": phi + 90, "alt": theta, "phi": psi - 90})
        assert np.allclose(e, m, atol=1e-12)


def test_spider_transform_round_trip_through_file(tmp_path, rng):
    n = 25
    angles = rng.uniform([0, 1, 0], [360, 179, 360], size=(n, 3))
    shifts = rng.uniform(-10, 10, size=(n, 3))
    mirror = rng.integers(0, 2, n)
    scale = rng.uniform(0.5, 2.0, n)
    p = tmp_path / "x.hdf"
    attrs = [{"xform.align3d": {"type": "spider", "phi": a[0], "theta": a[1], "psi": a[2],
                                "tx": s[0], "ty": s[1], "tz": s[2], "mirror": int(m),
                                "scale": float(c)}}
             for a, s, m, c in zip(angles, shifts, mirror, scale)]
    hdf.write_stack_with_attributes(p, np.zeros((n, 4, 4), np.float32), attrs)
    for i, head in enumerate(hdf.read_attributes(p, None)):
        t = head["xform.align3d"]
        assert t["type"] == "spider" and t["mirror"] == mirror[i]
        assert t["scale"] == pytest.approx(scale[i], rel=1e-5)
        got = np.array([t["phi"], t["theta"], t["psi"]])
        assert np.all((got >= 0) & (got < 360))
        diff = (got - angles[i] + 180) % 360 - 180
        assert np.abs(diff).max() < 2e-3
        assert np.allclose([t["tx"], t["ty"], t["tz"]], shifts[i], atol=1e-4)
        back = hdf.transform_matrix(t)
        assert np.allclose(back, hdf.transform_matrix(attrs[i]["xform.align3d"]), atol=1e-5)


def test_spider_transform_gimbal_lock():
    for theta in (0.0, 180.0):
        src = {"type": "spider", "phi": 40.0, "theta": theta, "psi": 75.0}
        t = hdf.transform_params(hdf.transform_matrix(src))
        assert t["phi"] == 0.0 and t["theta"] == theta
        assert np.allclose(hdf.transform_matrix(t), hdf.transform_matrix(src), atol=1e-9)
    t = hdf.transform_params(hdf.transform_matrix({"type": "spider", "phi": 40.0, "theta": 0,
                                                   "psi": 75.0}))
    assert t["psi"] == pytest.approx(115.0)


def test_2d_transform_round_trip(tmp_path, rng):
    n = 20
    alpha = rng.uniform(0, 360, n)
    txy = rng.uniform(-5, 5, (n, 2))
    mirror = rng.integers(0, 2, n)
    attrs = [{"xform.align2d": {"type": "2d", "alpha": a, "tx": s[0], "ty": s[1],
                                "mirror": int(m), "scale": 1.0}}
             for a, s, m in zip(alpha, txy, mirror)]
    p = tmp_path / "ali.hdf"
    hdf.write_stack_with_attributes(p, np.zeros((n, 4, 4), np.float32), attrs)
    for i, head in enumerate(hdf.read_attributes(p, None)):
        t = head["xform.align2d"]
        assert set(t) == {"type", "alpha", "tx", "ty", "mirror", "scale"}
        assert t["type"] == "2d" and t["mirror"] == mirror[i] and t["scale"] == 1.0
        assert abs((t["alpha"] - alpha[i] + 180) % 360 - 180) < 1e-3
        assert np.allclose([t["tx"], t["ty"]], txy[i], atol=1e-5)
    # a mirrored transform negates the first row including tx (EMAN2 set_mirror)
    m = hdf.transform_matrix({"type": "2d", "alpha": 0, "tx": 3, "ty": 4, "mirror": 1})
    assert np.allclose(m, [[-1, 0, 0, -3], [0, 1, 0, 4], [0, 0, 1, 0]])


def test_sphire_projection_params_negate_shifts(tmp_path):
    p = tmp_path / "proj.hdf"
    hdf.write(p, np.zeros((4, 4), np.float32))
    hdf.write_attributes(p, 1, {"xform.projection":
                                hdf.params_proj_transform(30.0, 60.0, 90.0, 1.5, -2.5)})
    t = hdf.read_attributes(p, 1)["xform.projection"]
    assert (t["tx"], t["ty"]) == (-1.5, 2.5)
    phi, theta, psi, sx, sy = hdf.params_proj(t)
    assert np.allclose([phi, theta, psi, sx, sy], [30, 60, 90, 1.5, -2.5], atol=1e-4)
    with h5py.File(p) as f:
        rec = f["MDF/images/0"].attrs["EMAN.xform.projection"][0]
        assert (rec["03"], rec["13"], rec["23"]) == (-1.5, 2.5, 0.0)


def test_ctf_round_trip_and_eman2_strings(tmp_path, rng):
    ctf = {"defocus": 2.3456, "cs": 2.7, "voltage": 300.0, "apix": 1.06, "bfactor": 85.0,
           "ampcont": 7.5, "dfdiff": 0.0321, "dfang": 47.25, "dsbg": 0.0025,
           "background": [1.5, 1.25, 1.0], "snr": [0.5, 0.25]}
    p = tmp_path / "ctf.hdf"
    hdf.write(p, np.zeros((4, 4), np.float32))
    hdf.write_attributes(p, 1, {"ctf": ctf})
    got = hdf.read_attributes(p, 1)["ctf"]
    assert set(got) == set(ctf)
    for k, v in ctf.items():
        assert got[k] == pytest.approx(v, rel=1e-6), k
    # a string as EMAN2Ctf::to_string prints it (%1.4g, then count,values)
    s = "E1.234 0.05 45 0 10 300 2.7 1.2 0.003 3,1.1,2.2,3.3 2,0.5,0.25"
    d = hdf.ctf_from_string(s)
    assert (d["defocus"], d["dfdiff"], d["dfang"], d["ampcont"], d["voltage"], d["cs"],
            d["apix"], d["dsbg"]) == (1.234, 0.05, 45.0, 10.0, 300.0, 2.7, 1.2, 0.003)
    assert d["background"] == [1.1, 2.2, 3.3] and d["snr"] == [0.5, 0.25]
    assert hdf.ctf_to_string(d) == s
    for bad in ("E1 2 3", "E1 0 0 0 10 300 2.7 1 -1 2,1.0 0", "X1 0 0 0 10 300 2.7 1 -1 0 0"):
        with pytest.raises(ValueError):
            hdf.ctf_from_string(bad)
    dfs = rng.uniform(0.5, 5.0, 10)
    for df in dfs:
        back = hdf.ctf_from_string(hdf.ctf_to_string({**ctf, "defocus": df}))
        assert back["defocus"] == pytest.approx(df, rel=1e-7)


# ----------------------------------------------------------------------------- bad files
def _good(path, n=2):
    hdf.write(path, np.zeros((n, 4, 4), np.float32), stack=True)
    return path


def test_not_hdf_no_mdf_out_of_range_truncated(tmp_path):
    txt = tmp_path / "text.hdf"
    txt.write_text("hello\n")
    with pytest.raises(DataFormatError, match=r"text\.hdf.*not an HDF5 file"):
        hdf.read(txt)
    with pytest.raises(DataFormatError, match="file not found"):
        hdf.info(tmp_path / "missing.hdf")
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f.create_dataset("data", data=np.zeros(3))
    for fn in (hdf.info, hdf.read, lambda q: hdf.read_attributes(q, 1)):
        with pytest.raises(DataFormatError, match=r"plain\.h5.*/MDF/images"):
            fn(plain)
    with pytest.raises(DataFormatError, match=r"plain\.h5.*/MDF/images"):
        hdf.write(plain, np.zeros((4, 4), np.float32), index=1)

    p = _good(tmp_path / "g.hdf")
    with pytest.raises(DataFormatError, match=r"g\.hdf.*member 3.*holds 2"):
        hdf.read(p, 3)
    with pytest.raises(DataFormatError, match=r"g\.hdf.*member 9"):
        hdf.read_attributes(p, 9)
    with pytest.raises(UsageError):
        hdf.read(p, 0)

    big = tmp_path / "big.hdf"
    hdf.write(big, np.arange(64 * 64 * 8, dtype=np.float32).reshape(8, 64, 64), stack=True)
    raw = big.read_bytes()
    cut = tmp_path / "cut.hdf"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFormatError, match=r"cut\.hdf"):
        hdf.read(cut)


def _break(path, how):
    with h5py.File(path, "r+") as f:
        grp = f["MDF/images"]
        if how == "no_imageid_max":
            del grp.attrs["imageid_max"]
        elif how == "imageid_max_text":
            del grp.attrs["imageid_max"]
            grp.attrs["imageid_max"] = "1"
        elif how == "imageid_max_float":
            del grp.attrs["imageid_max"]
            grp.attrs.create("imageid_max", np.array([1.0], np.float32))
        elif how == "imageid_max_pair":
            del grp.attrs["imageid_max"]
            grp.attrs.create("imageid_max", np.array([1, 1], np.int32))
        elif how == "imageid_max_negative":
            grp.attrs.create("imageid_max", np.array([-5], np.int32))
        elif how == "no_image_dataset":
            del grp["0/image"]
        elif how == "image_is_group":
            del grp["0/image"]
            grp["0"].create_group("image")
        elif how == "complex_pixels":
            del grp["0/image"]
            grp["0"].create_dataset("image", data=np.zeros((4, 4), np.complex64))
        elif how == "text_pixels":
            del grp["0/image"]
            grp["0"].create_dataset("image", data=np.full((4, 4), b"ab"))
        elif how == "int64_pixels":
            del grp["0/image"]
            grp["0"].create_dataset("image", data=np.zeros((4, 4), np.int64))
        elif how == "rank4":
            del grp["0/image"]
            grp["0"].create_dataset("image", data=np.zeros((2, 2, 2, 2), np.float32))
        elif how == "empty_pixels":
            del grp["0/image"]
            grp["0"].create_dataset("image", shape=(0, 4), dtype=np.float32)
        elif how == "image_missing":
            del grp["0"]
        elif how == "render_without_range":
            grp["0"].attrs.create("EMAN.stored_renderbits", np.array([8], np.int32))
        elif how == "render_bits_absurd":
            grp["0"].attrs.create("EMAN.stored_renderbits", np.array([40], np.int32))
        elif how == "legacy_v1":
            f.attrs["num_dataset"] = 1
        elif how == "no_mdf":
            del f["MDF"]


@pytest.mark.parametrize("how, message", [
    ("no_imageid_max", "no 'imageid_max'"),
    ("imageid_max_text", "'imageid_max' is not one integer"),
    ("imageid_max_float", "'imageid_max' is not one integer"),
    ("imageid_max_pair", "'imageid_max' is not one integer"),
    ("imageid_max_negative", "'imageid_max' is -5"),
    ("no_image_dataset", r"image 1 \(EMAN2 index 0\) has no 'image' dataset"),
    ("image_is_group", "has no 'image' dataset"),
    ("complex_pixels", "pixel type complex64"),
    ("text_pixels", "pixel type"),
    ("int64_pixels", "pixel type int64"),
    ("rank4", r"shape \(2, 2, 2, 2\)"),
    ("empty_pixels", r"shape \(0, 4\)"),
    ("image_missing", "does not exist"),
    ("render_without_range", "lacks one number 'stored_rendermin'"),
    ("render_bits_absurd", "stored_renderbits 40"),
    ("legacy_v1", "old EMAN2 HDF layout"),
    ("no_mdf", "/MDF/images"),
])
def test_broken_structure_gives_clear_error(tmp_path, how, message):
    p = _good(tmp_path / "bad.hdf")
    _break(p, how)
    with pytest.raises(DataFormatError, match=r"bad\.hdf: .*" + message):
        hdf.read(p)
    with pytest.raises(DataFormatError, match=r"bad\.hdf: "):
        if how.startswith("render"):
            hdf.info(p)
            hdf.read(p, 1)
        else:
            hdf.read_attributes(p, 1)


def test_malformed_ctf_header_is_reported(tmp_path):
    p = _good(tmp_path / "c.hdf", 1)
    hdf.write_attributes(p, 1, {"ctf": "E1 2 3"})
    with pytest.raises(DataFormatError, match=r"c\.hdf: image 1 header 'ctf'"):
        hdf.read_attributes(p, 1)
    hdf.write_attributes(p, 1, {"ctf": None, "label": "E1_not_a_ctf"})
    assert hdf.read_attributes(p, 1)["label"] == "E1_not_a_ctf"


def test_foreign_attributes_read_leniently(tmp_path):
    p = _good(tmp_path / "f.hdf", 1)
    with h5py.File(p, "r+") as f:
        a = f["MDF/images/0"].attrs
        a["EMAN.vlen"] = "variable"                    # h5py default: variable-length str
        a["EMAN.wide"] = np.array([7], np.int64)
        a["EMAN.dbl"] = np.array([0.5, 1.5])
        a["plain"] = np.array([3], np.int32)
    head = hdf.read_attributes(p, 1)
    assert head["vlen"] == "variable" and head["wide"] == 7
    assert head["dbl"] == [0.5, 1.5] and head["plain"] == 3


def test_empty_eman2_file(tmp_path):
    p = tmp_path / "empty.hdf"
    with h5py.File(p, "w") as f:
        f.create_group("MDF/images").attrs.create("imageid_max", np.array([-1], np.int32))
    for fn in (hdf.info, hdf.read):
        with pytest.raises(DataFormatError, match=r"empty\.hdf: EMAN2 file holds no images"):
            fn(p)
    hdf.write(p, np.ones((3, 5), np.float32), index=1)     # EMAN2 appends into such a file
    assert hdf.info(p).n_images == 1 and hdf.read(p).shape == (3, 5)
