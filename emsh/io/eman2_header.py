"""EMAN2 image-header values: Transforms, CTFs and typed HDF5 attributes (``HdfIO2``).

EMAN2 reads back only the attribute types ``HdfIO2::write_attr`` writes, so these
follow it exactly: int -> int32 (one element), float -> float32 (one element), bool ->
one int8 ``'T'``/``'F'``, str -> scalar fixed-length NUL-terminated string of
``len+1`` bytes, int/float lists -> 1-D int32/float32, Transform -> one compound of 12
float32 fields ``"00"`` ... ``"23"`` (the row-major 3x4 matrix ``[R*scale | t]``, row
0 negated for an x-mirror), CTF -> the ``EMAN2Ctf`` string (defocus in µm, underfocus
positive). Transforms decode to dicts as EMAN2's ``Transform.get_params`` gives them.
An image's header is the keys ``EMData::write_image`` always writes (size, statistics,
pixel size) followed by the caller's keys, all encoded and checked before any write.

The public names are also importable from :mod:`emsh.io.hdf`, which uses them to read
and write EMAN2/SPHIRE files.
"""

from __future__ import annotations

import h5py
import numpy as np

from emsh.errors import UsageError
from emsh.geom.euler import spider_to_matrix

__all__ = [
    "transform_matrix", "transform_params", "params_proj", "params_proj_transform",
    "ctf_to_string", "ctf_from_string",
]

_PREFIX = "EMAN."
_MAX_NAME = 127                     # EMAN2 reads attribute names into char[128]
_RENDER_KEYS = {"stored_rendermin", "stored_rendermax", "stored_renderbits",
                "render_min", "render_max", "render_bits"}   # EMAN2 never copies these
_XFORM = np.dtype([(f"{r}{c}", "<f4") for r in range(3) for c in range(4)])
_LIST_KEYS = {"members", "class_ptcl_idxs", "exc_class_ptcl_idxs", "class_ssnr"}
_CTF_KEYS = ("defocus", "dfdiff", "dfang", "bfactor", "ampcont", "voltage", "cs", "apix",
             "dsbg")
_EPS = 1e-6                         # EMAN2's Transform::ERR_LIMIT


# ----------------------------------------------------------------------------- Transform
def transform_matrix(params: dict) -> np.ndarray:
    """EMAN2 ``Transform(params)`` as its stored 3x4 float64 matrix ``[R*scale | t]``.

    ``params['type']`` is ``'spider'`` (phi, theta, psi; ``R`` equals
    :func:`emsh.geom.euler.spider_to_matrix`), ``'2d'`` (alpha) or ``'eman'`` (az, alt,
    phi); optional ``tx, ty, tz`` (pixels), ``scale`` (>0) and ``mirror`` (x-flip applied
    last: row 0, translation included, is negated). Missing values are 0 (scale 1).
    """
    kind = str(params.get("type", "")).lower()

    def g(key: str, default: float = 0.0) -> float:
        return float(params.get(key, default))

    if kind == "spider":
        rot = spider_to_matrix(g("phi"), g("theta"), g("psi"))
    elif kind == "2d":
        rot = spider_to_matrix(0.0, 0.0, g("alpha"))
    elif kind == "eman":
        rot = spider_to_matrix(g("az") - 90.0, g("alt"), g("phi") + 90.0)
    else:
        raise UsageError(f"transform type {params.get('type')!r}: use 'spider', '2d' or 'eman'")
    scale = g("scale", 1.0)
    if not scale > 0:
        raise UsageError(f"transform scale {scale}: must be positive")
    m = np.zeros((3, 4))
    m[:, :3] = rot * scale
    m[:, 3] = (g("tx"), g("ty"), g("tz"))
    if bool(params.get("mirror", 0)):
        m[0] *= -1.0
    return m


def transform_params(matrix, kind: str = "spider") -> dict:
    """Decode a 3x4 Transform matrix like EMAN2's ``Transform.get_params(kind)``.

    Angles in degrees in [0, 360), as EMAN2 returns them; near theta = 0 or 180 (within
    EMAN2's 1e-6 limit on cos theta) phi is 0 and psi carries the whole in-plane angle.
    One deliberate difference: at theta = 180 EMAN2's ``get_rotation`` gives a psi 180
    degrees off its own matrix; here psi reproduces the matrix.
    ``kind`` is ``'spider'`` or ``'2d'``; ``mirror`` comes back as 0/1.
    """
    m = np.asarray(matrix, dtype=np.float64).reshape(3, 4)
    det = float(np.linalg.det(m[:, :3]))
    mirror = det < 0
    scale = abs(det) ** (1.0 / 3.0) if det else 1.0
    if abs(scale - round(scale)) < _EPS:
        scale = float(round(scale))
    xm = -1.0 if mirror else 1.0
    cosalt = m[2, 2] / scale
    deg = np.degrees
    if cosalt > 1 - _EPS:
        alt, az = 0.0, 0.0
        phi = deg(np.arctan2(xm * m[0, 1], xm * m[0, 0]))
    elif cosalt < -(1 - _EPS):
        alt, az = 180.0, 0.0
        phi = 360.0 - deg(np.arctan2(xm * m[0, 1], xm * m[0, 0]))
    else:
        alt = deg(np.arccos(cosalt))
        az = deg(np.arctan2(m[2, 0], -m[2, 1]))
        phi = deg(np.arctan2(xm * m[0, 2], m[1, 2]))
    az, phi = float(az) % 360.0, float(phi) % 360.0
    tx, ty, tz = xm * m[0, 3], m[1, 3], m[2, 3]
    out: dict = {"type": kind}
    if kind == "2d":
        out.update(alpha=phi, tx=float(tx), ty=float(ty))
    elif kind == "spider":
        if cosalt > 1 - _EPS:
            phi_s, psi_s = 0.0, phi
        elif cosalt < -(1 - _EPS):    # EMAN2 returns psi = phi here, 180 deg off its matrix
            phi_s, psi_s = 0.0, (phi + 180.0) % 360.0
        else:
            phi_s, psi_s = (az - 90.0) % 360.0, (phi + 90.0) % 360.0
        out.update(phi=phi_s, theta=float(alt), psi=psi_s, tx=float(tx), ty=float(ty),
                   tz=float(tz))
    else:
        raise UsageError(f"transform type {kind!r}: use 'spider' or '2d'")
    out.update(mirror=int(mirror), scale=float(scale))
    return out


def params_proj(transform: dict) -> tuple[float, float, float, float, float]:
    """SPHIRE ``get_params_proj``: ``(phi, theta, psi, sx, sy)`` from an ``xform.projection``.

    SPHIRE stores the shift negated, so ``sx, sy = -tx, -ty``.
    """
    t = transform if transform.get("type") == "spider" else transform_params(
        transform_matrix(transform))
    return t["phi"], t["theta"], t["psi"], -t["tx"], -t["ty"]


def params_proj_transform(phi: float, theta: float, psi: float, sx: float = 0.0,
                          sy: float = 0.0) -> dict:
    """SPHIRE ``set_params_proj``: the ``xform.projection`` dict for SPIDER angles and shift."""
    return {"type": "spider", "phi": phi, "theta": theta, "psi": psi, "tx": -sx, "ty": -sy,
            "tz": 0.0, "mirror": 0, "scale": 1.0}


# ----------------------------------------------------------------------------- CTF
def _num(v: float) -> str:
    """Shortest decimal that reads back as the same float32 (EMAN2 parses with %f)."""
    s = str(np.float32(v))
    return s[:-2] if s.endswith(".0") else s


def ctf_to_string(ctf: dict) -> str:
    """The ``EMAN2Ctf`` string for a CTF dict (defocus, dfdiff in µm, underfocus positive).

    Required: ``defocus``, ``voltage`` (kV), ``cs`` (mm), ``apix`` (Å), ``ampcont`` (%).
    Optional: ``bfactor`` (Å², 0), ``dfdiff`` (µm, 0), ``dfang`` (deg, 0), ``dsbg`` (1/Å,
    -1), ``background`` and ``snr`` (lists sampled every dsbg). Values keep float32
    precision (EMAN2 itself prints 4 digits; its reader accepts any).
    """
    missing = [k for k in ("defocus", "voltage", "cs", "apix", "ampcont") if k not in ctf]
    if missing:
        raise UsageError(f"CTF needs {', '.join(missing)} (defocus in µm, voltage kV, cs mm, "
                         "apix Å, ampcont %)")
    vals = {"bfactor": 0.0, "dfdiff": 0.0, "dfang": 0.0, "dsbg": -1.0, **ctf}
    try:
        head = " ".join(_num(float(vals[k])) for k in _CTF_KEYS)
        bg = [float(x) for x in vals.get("background", [])]
        snr = [float(x) for x in vals.get("snr", [])]
    except (TypeError, ValueError) as exc:
        raise UsageError(f"CTF values must be numbers ({exc})") from None
    return (f"E{head} {len(bg)}" + "".join("," + _num(x) for x in bg)
            + f" {len(snr)}" + "".join("," + _num(x) for x in snr))


def ctf_from_string(text: str) -> dict:
    """Parse an ``EMAN2Ctf`` string (see :func:`ctf_to_string`); ValueError if malformed."""
    if not text.startswith("E"):
        raise ValueError("an EMAN2 CTF string starts with 'E'")
    tok = text[1:].split()
    if len(tok) < 10:
        raise ValueError(f"an EMAN2 CTF string has at least 10 fields, found {len(tok)}")
    out = {k: float(v) for k, v in zip(_CTF_KEYS, tok[:9])}
    for key, field in (("background", tok[9]), ("snr", tok[10] if len(tok) > 10 else "0")):
        parts = field.split(",")
        n = int(parts[0])
        if n != len(parts) - 1:
            raise ValueError(f"CTF {key} says {n} values, has {len(parts) - 1}")
        out[key] = [float(x) for x in parts[1:]]
    return out


# ----------------------------------------------------------------------------- attributes
def _encode(key: str, value):
    """Validate one header value; return ``("str", bytes)`` or ``("arr", ndarray)``."""
    where = f"header key {key!r}"
    if isinstance(value, dict):
        if "type" in value:
            m = np.asarray(transform_matrix(value), np.float32).ravel()
            return "arr", np.array([tuple(m)], dtype=_XFORM)
        if "defocus" in value:
            return "str", ctf_to_string(value).encode()
        raise UsageError(f"{where}: a dict must be a Transform (with 'type') or a CTF "
                         "(with 'defocus'); EMAN2 stores no other dicts")
    if isinstance(value, (bool, np.bool_)):
        return "arr", np.array([ord("T" if value else "F")], np.int8)
    if isinstance(value, (int, np.integer)):
        if not -2**31 <= int(value) < 2**31:
            raise UsageError(f"{where}: {value} does not fit EMAN2's 32-bit integers")
        return "arr", np.array([value], np.int32)
    if isinstance(value, (float, np.floating)):
        return "arr", np.array([value], np.float32)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        if b"\0" in raw:
            raise UsageError(f"{where}: text may not contain NUL characters")
        return "str", raw
    arr = np.asarray(value)
    if arr.shape == (3, 4) and arr.dtype.kind in "iuf":
        return "arr", np.array([tuple(arr.astype(np.float32).ravel())], dtype=_XFORM)
    if arr.ndim == 1 and (arr.dtype.kind in "iub" or arr.size == 0):
        if arr.size and not (-2**31 <= arr.min() and arr.max() < 2**31):
            raise UsageError(f"{where}: values do not fit EMAN2's 32-bit integers")
        return "arr", arr.astype(np.int32)
    if arr.ndim == 1 and arr.dtype.kind == "f":
        return "arr", arr.astype(np.float32)
    raise UsageError(f"{where}: {type(value).__name__} cannot be stored in an EMAN2 header "
                     "(use int, float, bool, str, a 1-D number list, a Transform or CTF dict)")


def _store(obj, name: str, enc) -> None:
    """Write one encoded attribute, replacing any old one (as ``HdfIO2::write_attr``)."""
    if name in obj.attrs:
        del obj.attrs[name]
    kind, payload = enc
    if kind == "arr":
        obj.attrs.create(name, payload)
        return
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(len(payload) + 1)
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    aid = h5py.h5a.create(obj.id, name.encode(), tid, h5py.h5s.create(h5py.h5s.SCALAR))
    aid.write(np.array(payload + b"\0", dtype=f"S{len(payload) + 1}"), mtype=tid)


def _f32(x) -> float:
    return float(str(np.float32(x)))


def _decode(key: str, obj, name: str):
    """One attribute as Python: EMAN2's reading rules, lenient with foreign types."""
    aid = obj.attrs.get_id(name)
    tclass, size = aid.get_type().get_class(), aid.get_type().get_size()
    value = obj.attrs[name]
    if tclass == h5py.h5t.COMPOUND:
        if value.dtype.names and set(value.dtype.names) == set(_XFORM.names):
            rec = np.asarray(value).ravel()[0]
            m = np.array([rec[f] for f in _XFORM.names], np.float64).reshape(3, 4)
            in_plane = not np.any(np.abs(m[[2, 2, 0, 1, 2], [0, 1, 2, 2, 3]]) > _EPS)
            return transform_params(m, "2d" if key.endswith("2d") and in_plane else "spider")
        return value.tolist()
    if tclass == h5py.h5t.STRING:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        if key == "ctf" or (len(text) > 1 and text[0] == "E" and text[1].isdigit()):
            try:
                return ctf_from_string(text)
            except ValueError:
                if key == "ctf" and text.startswith("E"):
                    raise
        return text
    flat = np.asarray(value).ravel()
    if tclass == h5py.h5t.INTEGER and size == 1 and flat.size:
        return bool(flat[0] == ord("T"))
    if tclass == h5py.h5t.FLOAT and size == 4:
        items = [_f32(x) for x in flat]
    elif tclass in (h5py.h5t.INTEGER, h5py.h5t.FLOAT):
        items = flat.tolist()
    else:
        return value.tolist() if hasattr(value, "tolist") else value
    return items[0] if len(items) == 1 and key not in _LIST_KEYS else items


# ----------------------------------------------------------------------------- image headers
def _header(img: np.ndarray, apix: float | None, bits: int | None) -> dict:
    """The keys ``EMData::write_image`` always writes, statistics as EMAN2 computes them."""
    nz, ny, nx = (1,) * (3 - img.ndim) + img.shape
    v = img.astype(np.float64, copy=False).ravel()
    n, s, ss = v.size, float(v.sum()), float(np.dot(v, v))
    nnz = max(int(np.count_nonzero(v)), 1)

    def sd(cnt: int) -> float:          # EMAN2 update_stat: sample deviation (n - 1)
        return float(np.sqrt(max(0.0, (ss - s * s / cnt) / (cnt - 1)))) if cnt > 1 else 0.0

    h = {"nx": nx, "ny": ny, "nz": nz, "changecount": 0,
         "datatype": 7 if bits is None else 12, "is_complex": 0, "is_complex_x": 0,
         "is_complex_ri": 1, "minimum": float(v.min()), "maximum": float(v.max()),
         "mean": s / n, "sigma": sd(n), "square_sum": ss, "mean_nonzero": s / nnz,
         "sigma_nonzero": sd(nnz)}
    if apix is not None:
        h.update(apix_x=float(apix), apix_y=float(apix), apix_z=float(apix))
    return h


def _user_entries(attrs: dict | None, dims: dict) -> dict:
    """Caller's header keys as ``{'EMAN.key': encoded or None (delete)}``, all checked.

    The ``EMAN.`` prefix is optional; EMAN2's render keys are skipped (as EMAN2 does);
    ``nx/ny/nz`` must equal ``dims``.
    """
    out = {}
    for key, value in (attrs or {}).items():
        key = key[len(_PREFIX):] if key.startswith(_PREFIX) else key
        if key in _RENDER_KEYS:
            continue
        if len(_PREFIX + key) > _MAX_NAME:
            raise UsageError(f"header key {key!r} is longer than EMAN2's 122 characters")
        if key in dims and value is not None and (
                not isinstance(value, (int, np.integer)) or int(value) != dims[key]):
            raise UsageError(f"header key {key!r} = {value!r} contradicts the image size "
                             f"{dims[key]}")
        out[_PREFIX + key] = None if value is None else _encode(key, value)
    return out


def _prepared(img: np.ndarray, attrs: dict | None, apix, bits) -> list:
    """Encoded header (standard keys, then the caller's) for one image; validates all first."""
    h = _header(img, apix, bits)
    enc = {_PREFIX + k: _encode(k, v) for k, v in h.items()}
    for name, e in _user_entries(attrs, {k: h[k] for k in ("nx", "ny", "nz")}).items():
        if e is None:
            enc.pop(name, None)
        else:
            enc[name] = e
    return list(enc.items())
