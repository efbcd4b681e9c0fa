"""Atomic models and the density maps they give: the real protein of emsh's tests.

Two conformations of *E. coli* adenylate kinase (ADK) are bundled (``emsh/sim/data``,
provenance in its README): ``"adk_closed"`` (PDB 1AKE chain A, with the inhibitor
AP5A removed) and ``"adk_open"`` (PDB 4AKE chain A). They serve as a realistic
single particle (214 residues, about 24 kDa) and as two states of one molecule for
3D sorting.

Maps are computed by gemmi's ``DensityCalculatorE`` (electron scattering factors of
International Tables Vol. C Table 4.3.2.2, five Gaussians per element) on an exact
``box^3`` grid of spacing ``apix``. Every atom is blurred to at least
``B = 2 pi^2 apix^2`` (Gaussian sigma >= apix/2), so the map is not aliased. Maps are
float32 ``(z, y, x)``; the model point chosen as centre (default: centre of mass)
sits at voxel index ``box//2`` on every axis. Coordinates in :class:`AtomicModel`
are Å, columns (x, y, z), as in the PDB file.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from emsh.errors import DataFormatError, UsageError
from emsh.io._atomic import atomic_open

__all__ = ["AtomicModel", "BUNDLED", "ADK_DOMAINS", "load_model", "save_model", "model_to_map",
           "superpose", "aligned_conformations", "conformations", "resolution_to_b"]

DATA_DIR = Path(__file__).parent / "data"
BUNDLED = {"adk_closed": "adk_1ake_A.pdb.gz", "adk_open": "adk_4ake_A.pdb.gz"}
#: ADK domains by residue number (CORE, NMP-binding, LID), as in Beckstein et al.
#: (2009) J. Mol. Biol. 394:160.
ADK_DOMAINS = {"CORE": ((1, 29), (60, 121), (160, 214)), "NMP": ((30, 59),), "LID": ((122, 159),)}

_POLYMER_ELEMENTS = {"C", "N", "O", "S", "H", "D", "SE", "P"}
_CHARMM_HIS = {"HSD", "HSE", "HSP"}
_MAX_BOX = 1024
_DENSITY_CUTOFF = 1e-8   # gemmi stops each atom where its density falls below this (default 1e-5)


@dataclass(frozen=True)
class AtomicModel:
    """Atoms of one model as columns (one row per atom).

    Attributes:
        xyz: float64 ``(n, 3)`` positions in Å, columns (x, y, z).
        element: element symbols (``"C"``, ``"SE"``, ...), upper case.
        b_iso: isotropic B-factors in Å^2.
        occupancy: occupancies (0..1).
        atom_name, res_name, chain: PDB names.
        res_seq: residue numbers.
        name: a label (the bundled name or the file name).
    """

    xyz: np.ndarray
    element: np.ndarray
    b_iso: np.ndarray
    occupancy: np.ndarray
    atom_name: np.ndarray
    res_name: np.ndarray
    res_seq: np.ndarray
    chain: np.ndarray
    name: str = ""

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    def take(self, index) -> AtomicModel:
        """The atoms selected by an index array or boolean mask."""
        return replace(self, **{f: getattr(self, f)[index] for f in _COLUMNS})

    def masses(self) -> np.ndarray:
        """Atomic masses in daltons."""
        return np.array([_mass(e) for e in self.element], dtype=np.float64)

    def centre_of_mass(self) -> np.ndarray:
        """Mass-weighted centre (x, y, z) in Å."""
        w = self.masses() * self.occupancy
        return (self.xyz * w[:, None]).sum(0) / w.sum()

    def transformed(self, rot, shift=(0.0, 0.0, 0.0)) -> AtomicModel:
        """A copy with every position moved to ``rot @ xyz + shift`` (Å)."""
        rot = np.asarray(rot, dtype=np.float64)
        xyz = self.xyz @ rot.T + np.asarray(shift, dtype=np.float64)
        return replace(self, xyz=xyz)

    def with_b(self, b_iso: float) -> AtomicModel:
        """A copy with every B-factor set to ``b_iso`` (Å^2)."""
        return replace(self, b_iso=np.full(len(self), float(b_iso)))

    def residues_in(self, ranges) -> np.ndarray:
        """Boolean mask of atoms whose residue number lies in any ``(first, last)`` range."""
        m = np.zeros(len(self), dtype=bool)
        for lo, hi in ranges:
            m |= (self.res_seq >= lo) & (self.res_seq <= hi)
        return m


_COLUMNS = ("xyz", "element", "b_iso", "occupancy", "atom_name", "res_name", "res_seq", "chain")


@lru_cache(maxsize=None)
def _mass(symbol: str) -> float:
    import gemmi

    return float(gemmi.Element(symbol).weight)


# ------------------------------------------------------------------------------ reading

def _resolve(name) -> Path:
    if isinstance(name, str) and name in BUNDLED:
        return DATA_DIR / BUNDLED[name]
    path = Path(os.fspath(name))
    if not path.is_file():
        raise UsageError(f"no atomic model {str(name)!r}: give one of {', '.join(BUNDLED)} "
                         f"or the path of a PDB/mmCIF file")
    return path


def _is_polymer(res) -> bool:
    import gemmi

    if res.name in _CHARMM_HIS:
        return True
    info = gemmi.find_tabulated_residue(res.name)
    return info is not None and (info.is_amino_acid() or info.is_nucleic_acid())


def _element_of(atom) -> str:
    """The atom's element; MD-style files without an element column get it from the name."""
    el = atom.element.name.upper()
    if el in _POLYMER_ELEMENTS:
        return el
    guess = atom.name.strip().lstrip("0123456789")[:1].upper()
    return guess if guess in _POLYMER_ELEMENTS else el


def load_model(name, *, chain: str | None = None, hydrogens: bool = False) -> AtomicModel:
    """Read an atomic model, keeping polymer (protein / nucleic acid) atoms only.

    Waters, ligands and ions are dropped, and so are hydrogens unless asked for;
    only the first model and the first alternative location are kept. Files
    without an element column (CHARMM/MD output) get each polymer atom's element
    from the first letter of its name.

    Args:
        name: ``"adk_closed"``, ``"adk_open"`` (bundled) or the path of a PDB or
            mmCIF file (gzipped or not).
        chain: keep only this chain (default: all).
        hydrogens: keep hydrogen atoms.

    Returns:
        The model, positions in Å.

    Raises:
        UsageError: ``name`` is neither bundled nor an existing file.
        DataFormatError: the file cannot be read or holds no polymer atoms.
    """
    import gemmi

    path = _resolve(name)
    try:
        st = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError) as exc:
        raise DataFormatError(path, f"not a readable PDB/mmCIF model ({exc})") from None
    if len(st) == 0:
        raise DataFormatError(path, "the file holds no model")
    st.remove_alternative_conformations()
    cols = {k: [] for k in _COLUMNS}
    for ch in st[0]:
        if chain is not None and ch.name != chain:
            continue
        for res in ch:
            if not _is_polymer(res):
                continue
            for at in res:
                el = _element_of(at)
                if el in ("H", "D") and not hydrogens:
                    continue
                cols["xyz"].append((at.pos.x, at.pos.y, at.pos.z))
                cols["element"].append(el)
                cols["b_iso"].append(at.b_iso)
                cols["occupancy"].append(at.occ)
                cols["atom_name"].append(at.name)
                cols["res_name"].append(res.name)
                cols["res_seq"].append(res.seqid.num)
                cols["chain"].append(ch.name)
    if not cols["xyz"]:
        where = f" in chain {chain}" if chain is not None else ""
        raise DataFormatError(path, f"no protein or nucleic-acid atoms{where}")
    label = name if isinstance(name, str) and name in BUNDLED else path.name
    return AtomicModel(
        xyz=np.asarray(cols["xyz"], dtype=np.float64).reshape(-1, 3),
        element=np.asarray(cols["element"], dtype=str),
        b_iso=np.asarray(cols["b_iso"], dtype=np.float64),
        occupancy=np.asarray(cols["occupancy"], dtype=np.float64),
        atom_name=np.asarray(cols["atom_name"], dtype=str),
        res_name=np.asarray(cols["res_name"], dtype=str),
        res_seq=np.asarray(cols["res_seq"], dtype=np.int64),
        chain=np.asarray(cols["chain"], dtype=str),
        name=label,
    )


def _to_gemmi(model: AtomicModel):
    """A gemmi Structure (one model) holding the atoms of ``model``."""
    import gemmi

    st = gemmi.Structure()
    gm = gemmi.Model("1")
    chains: dict[str, object] = {}
    order: list[str] = []
    residues: dict[tuple[str, int], object] = {}
    for i in range(len(model)):
        cid = str(model.chain[i])
        key = (cid, int(model.res_seq[i]))
        if key not in residues:
            if cid not in chains:
                chains[cid] = gemmi.Chain(cid)
                order.append(cid)
            r = gemmi.Residue()
            r.name = str(model.res_name[i])
            r.seqid = gemmi.SeqId(int(model.res_seq[i]), " ")
            r.het_flag = "A"
            residues[key] = r
        a = gemmi.Atom()
        a.name = str(model.atom_name[i])
        a.element = gemmi.Element(str(model.element[i]))
        x, y, z = model.xyz[i]
        a.pos = gemmi.Position(float(x), float(y), float(z))
        a.b_iso = float(model.b_iso[i])
        a.occ = float(model.occupancy[i])
        residues[key].add_atom(a)
    for (cid, _), r in residues.items():
        chains[cid].add_residue(r)
    for cid in order:
        gm.add_chain(chains[cid])
    st.add_model(gm)
    return st


def save_model(model: AtomicModel, path, *, remarks=(), overwrite: bool = False) -> None:
    """Write a model as a PDB file (gzipped when ``path`` ends in ``.gz``), atomically.

    Args:
        model: the atoms.
        path: destination.
        remarks: text lines written as ``REMARK 99`` records at the top.
        overwrite: replace an existing file.
    """
    import gemmi

    st = _to_gemmi(model)
    st.setup_entities()
    opt = gemmi.PdbWriteOptions(minimal=True)
    opt.ter_records = True
    opt.cryst1_record = False
    body = st.make_pdb_string(opt)
    text = "".join(f"REMARK  99 {line}\n" for line in remarks) + body
    data = text.encode("ascii")
    if str(path).endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    with atomic_open(path, "wb", overwrite=overwrite) as fh:
        fh.write(data)


# ------------------------------------------------------------------------------ maps

def resolution_to_b(resolution: float) -> float:
    """B-factor (Å^2) whose envelope ``exp(-B s^2 / 4)`` falls to 1/e at ``s = 1/resolution``.

    ``B = 4 resolution^2``: a Gaussian of sigma ``resolution / (pi sqrt 2)`` in real
    space, the same width as UCSF Chimera's ``molmap`` default (0.225 resolution).
    """
    return 4.0 * float(resolution) ** 2


def _as_model(model) -> AtomicModel:
    return model if isinstance(model, AtomicModel) else load_model(model)


def model_to_map(model, box: int, apix: float, resolution: float | None = None, *,
                 centre=None, b_iso: float | None = None) -> np.ndarray:
    """Electron-scattering potential of an atomic model on a ``box^3`` grid.

    Each atom is the sum of its five IT 4.3.2.2 Gaussians convolved with its
    B-factor plus a common extra blur; the blur is the smallest that makes every
    atom's total B at least ``2 pi^2 apix^2`` (no aliasing) and, if ``resolution``
    is given, at least :func:`resolution_to_b` of it.

    Args:
        model: an :class:`AtomicModel`, a bundled name or a file path.
        box: grid size in voxels (cube).
        apix: voxel size in Å.
        resolution: optional target resolution in Å (Gaussian blur, see
            :func:`resolution_to_b`).
        centre: model point (x, y, z) in Å placed at voxel index ``box//2``;
            default the centre of mass.
        b_iso: replace every atom's B-factor by this value (Å^2) first.

    Returns:
        float32 ``(box, box, box)`` in (z, y, x) order, in gemmi's units.

    Raises:
        UsageError: bad sizes, or the model does not fit in the box.
    """
    import gemmi

    m = _as_model(model)
    box = int(box)
    apix = float(apix)
    if not 2 <= box <= _MAX_BOX:
        raise UsageError(f"model_to_map: box must be 2..{_MAX_BOX} voxels, got {box}")
    if not np.isfinite(apix) or apix <= 0:
        raise UsageError(f"model_to_map: apix must be > 0 Å, got {apix}")
    if resolution is not None and not (np.isfinite(resolution) and resolution > 0):
        raise UsageError(f"model_to_map: resolution must be > 0 Å, got {resolution}")
    if b_iso is not None:
        m = m.with_b(b_iso)
    c = m.centre_of_mass() if centre is None else np.asarray(centre, dtype=np.float64)
    m = m.transformed(np.eye(3), (box // 2) * apix - c)
    edge = box * apix
    if m.xyz.min() < 0 or m.xyz.max() >= edge:
        span = np.abs(m.xyz - (box // 2) * apix).max()
        raise UsageError(f"model_to_map: {m.name or 'the model'} reaches {span:.1f} Å from its "
                         f"centre but the box half-width is {edge / 2:.1f} Å; use a larger box")
    st = _to_gemmi(m)
    st.cell = gemmi.UnitCell(edge, edge, edge, 90, 90, 90)
    st.spacegroup_hm = "P 1"
    dc = gemmi.DensityCalculatorE()
    dc.grid.setup_from(st)
    dc.grid.set_size(box, box, box)
    need = 2.0 * np.pi ** 2 * apix ** 2
    if resolution is not None:
        need = max(need, resolution_to_b(resolution))
    dc.blur = max(0.0, need - float(m.b_iso.min()))
    dc.cutoff = _DENSITY_CUTOFF
    dc.put_model_density_on_grid(st[0])
    grid = np.array(dc.grid, copy=True)
    if grid.shape != (box, box, box):
        raise UsageError(f"model_to_map: gemmi made a {grid.shape} grid instead of {box}^3")
    return np.ascontiguousarray(grid.transpose(2, 1, 0), dtype=np.float32)


def superpose(mobile: AtomicModel, target: AtomicModel, residues=None,
              atom: str = "CA") -> tuple[np.ndarray, np.ndarray, float]:
    """Least-squares rotation and shift that put ``mobile`` onto ``target`` (Kabsch).

    Atoms are paired by (chain, residue number, atom name), using the atoms named
    ``atom`` in the residue ranges ``residues`` (default: all residues).

    Returns:
        ``(rot, shift, rmsd)``: ``rot @ x + shift`` maps mobile positions onto the
        target (Å); rmsd in Å over the pairs used.
    """
    def pick(m):
        sel = m.atom_name == atom
        if residues is not None:
            sel &= m.residues_in(residues)
        idx = np.nonzero(sel)[0]
        return {(m.chain[i], int(m.res_seq[i])): i for i in idx}

    a, b = pick(mobile), pick(target)
    keys = sorted(set(a) & set(b))
    if len(keys) < 3:
        raise UsageError(f"superpose: only {len(keys)} matching {atom} atoms; need at least 3")
    p = mobile.xyz[[a[k] for k in keys]]
    q = target.xyz[[b[k] for k in keys]]
    pc, qc = p.mean(0), q.mean(0)
    u, _, vt = np.linalg.svd((p - pc).T @ (q - qc))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    shift = qc - rot @ pc
    rmsd = float(np.sqrt(np.mean(np.sum((p @ rot.T + shift - q) ** 2, axis=1))))
    return rot, shift, rmsd


def aligned_conformations() -> tuple[dict[str, AtomicModel], np.ndarray]:
    """The closed and open ADK models in one frame, and their common centre.

    The open model is superposed on the closed one by least squares on the CA atoms
    of the CORE domain (:data:`ADK_DOMAINS`), so the CORE overlaps and the LID and
    NMP domains carry the conformational change. The common centre is the midpoint
    of the two models' centres of mass.

    Returns:
        ``({"adk_closed": model, "adk_open": model}, centre)`` with the centre
        (x, y, z) in Å.
    """
    closed = load_model("adk_closed")
    opened = load_model("adk_open")
    rot, shift, _ = superpose(opened, closed, ADK_DOMAINS["CORE"])
    opened = opened.transformed(rot, shift)
    centre = 0.5 * (closed.centre_of_mass() + opened.centre_of_mass())
    return {"adk_closed": closed, "adk_open": opened}, centre


def conformations(box: int, apix: float, resolution: float | None = None, *,
                  b_iso: float = 20.0) -> dict[str, np.ndarray]:
    """Maps of the closed and open ADK states in one common frame.

    The models are those of :func:`aligned_conformations` (open superposed on closed
    by the CORE domain's CA atoms; the midpoint of their centres of mass at voxel
    ``box//2``). Both get the same B-factor ``b_iso`` so that the maps differ in
    conformation only.

    Args:
        box: grid size in voxels (at 1.5 Å/voxel, 64 holds both states).
        apix: voxel size in Å.
        resolution: optional Gaussian blur as in :func:`model_to_map`.
        b_iso: B-factor given to every atom (Å^2).

    Returns:
        ``{"adk_closed": map, "adk_open": map}``, float32 ``(box, box, box)``.
    """
    models, centre = aligned_conformations()
    return {name: model_to_map(m, box, apix, resolution, centre=centre, b_iso=b_iso)
            for name, m in models.items()}
