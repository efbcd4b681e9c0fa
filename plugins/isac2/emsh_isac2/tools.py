"""Tools for a finished ISAC2 run: select classes, full-size averages, substacks.

They read the run's folder (:func:`load_run`): ``class_averages.hdf`` (headers
``members``), ``all_parameters.txt``, ``2dalignment/initial2Dparams.txt``,
``README_shrink_ratio.txt`` and ``isac2_run.json``. Class numbers are 1-based positions
in ``class_averages.hdf``; image ids are 0-based indices in the input stack.

Full-size parameters of image i (what sp_compute_isac_avg.py computes): first the
pre-alignment shift ``(px, py)`` (original pixels), then the working-frame alignment
``(alpha, sx/s, sy/s, mirror)`` from ``all_parameters.txt`` with its shifts scaled to
original pixels (``apply_alignment`` convention: rotate, shift, then mirror x).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emsh.errors import DataFormatError, UsageError
from emsh.io.hdf import read_attributes
from emsh.io.star import read_star
from emsh.kernels.align2d import compose_alignment

from .align import Alignment, class_labels, group_averages
from .correct import apply_table, flip_phases
from .inputs import read_ctf
from .prepare import subtract_inside_mean

__all__ = ["IsacRun", "load_run", "check_numbers", "select", "fullsize_parameters",
           "fullsize_averages", "member_table"]


@dataclass
class IsacRun:
    """A finished ISAC2 run as read from its folder.

    Attributes:
        folder: the output folder.
        averages: ``(K, m, m)`` working-size averages.
        members: per class, its member ids.
        all_parameters: ``(n, 4)`` alpha, sx, sy, mirror (shrunk frame; mirror -1 =
            unaccounted).
        prealign: ``(n, 2)`` pre-alignment shifts, original pixels.
        s: shrink ratio; radius: particle radius (original pixels).
        settings: ``isac2_run.json`` (stack, CTF, VPP, ctf_star, apix, ...).
    """

    folder: Path
    averages: np.ndarray
    members: list
    all_parameters: np.ndarray
    prealign: np.ndarray
    s: float
    radius: float
    settings: dict = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        """Images in the input stack."""
        return len(self.all_parameters)


def _need(path: Path) -> Path:
    if not path.exists():
        raise DataFormatError(path, "missing: not a finished ISAC2 output folder")
    return path


def load_run(folder) -> IsacRun:
    """Read a finished run's folder (see the module docstring)."""
    from emsh import io as emio

    from .run import PREALIGN_FILE, RUN_FILE, read_prealignment

    out = Path(folder)
    if not out.is_dir():
        raise UsageError(f"{out}: no such ISAC2 output folder")
    params_path = _need(out / "all_parameters.txt")
    try:
        params = np.loadtxt(params_path, ndmin=2)
    except ValueError as exc:
        raise DataFormatError(params_path, f"expected rows 'alpha sx sy mirror' ({exc})") from None
    if params.ndim != 2 or params.shape[1] != 4:
        raise DataFormatError(params_path, f"expected 4 columns, got shape {params.shape}")
    n = len(params)
    ratio = _need(out / "README_shrink_ratio.txt").read_text().split("\n")
    try:
        s, radius = float(ratio[5]), float(ratio[6])
    except (IndexError, ValueError):
        raise DataFormatError(out / "README_shrink_ratio.txt",
                              "expected the shrink ratio on line 6 and radius on line 7") from None
    settings = json.loads(_need(out / RUN_FILE).read_text())
    pre = read_prealignment(out / PREALIGN_FILE, n) if (out / PREALIGN_FILE).exists() \
        else np.zeros((n, 2))
    avg_path = out / "class_averages.hdf"
    if avg_path.exists():
        avgs = emio.read(avg_path)
        avgs = avgs[None] if avgs.ndim == 2 else avgs
        heads = read_attributes(avg_path, None)
        members = [np.asarray(h.get("members", []), dtype=np.int64) for h in heads]
    else:
        avgs, members = np.zeros((0, 1, 1), np.float32), []
    for k, m in enumerate(members):
        if len(m) and (m.min() < 0 or m.max() >= n):
            raise DataFormatError(avg_path, f"class {k + 1}: member ids outside 0..{n - 1}")
    return IsacRun(out, np.asarray(avgs, np.float32), members, params, pre, s, radius,
                   settings)


def check_numbers(run: IsacRun, numbers) -> list[int]:
    """Validated 1-based class numbers (order kept, duplicates dropped)."""
    K = len(run.members)
    nums = [int(v) for v in (numbers or [])]
    if not nums:
        raise UsageError("ISAC2: no class numbers given")
    bad = [v for v in nums if not 1 <= v <= K]
    if bad:
        raise UsageError(f"ISAC2: class number {bad[0]} out of range 1..{K} "
                         f"({run.folder}/class_averages.hdf has {K} averages)")
    return list(dict.fromkeys(nums))


def select(run: IsacRun, numbers) -> tuple[np.ndarray, list[np.ndarray], list[int]]:
    """Members of the chosen classes: ``(sorted combined ids, per-class ids, numbers)``."""
    nums = check_numbers(run, numbers)
    per = [np.sort(run.members[k - 1]) for k in nums]
    ids = np.unique(np.concatenate(per)) if per else np.zeros(0, np.int64)
    return ids, per, nums


def fullsize_parameters(run: IsacRun, ids=None):
    """Full-size ``(angle, shift (n, 2), mirror)`` of images ``ids`` (default all)."""
    idx = np.arange(run.n_images) if ids is None else np.asarray(ids, dtype=np.int64)
    p = run.all_parameters[idx]
    k = len(idx)
    no = np.zeros(k, dtype=bool)
    return compose_alignment((np.zeros(k), run.prealign[idx], no),
                             (p[:, 0], p[:, 1:3] / run.s, p[:, 3] > 0.5))


def _corrected(run: IsacRun, images, stack_file, ids) -> np.ndarray:
    """Originals ``ids`` with the run's own correction (CTF flip or VPP whitening)."""
    x = subtract_inside_mean(images[ids], run.radius)
    st = run.settings
    if st.get("CTF"):
        ctf = read_ctf(stack_file, len(images), st.get("ctf_star") or None,
                       st.get("apix") or None)
        x = flip_phases(x, ctf.take(ids))
    elif st.get("VPP"):
        table = np.loadtxt(_need(run.folder / "rpw.txt"), ndmin=2)
        x = apply_table(x, table[:, 0], table[:, 1])
    return x


def fullsize_averages(run: IsacRun, images, stack_file, numbers=None) -> np.ndarray:
    """Averages of the original images of each class with full-size parameters.

    Args:
        run: from :func:`load_run`.
        images: ``(n, nx, nx)`` the original stack (the run's input).
        stack_file: its file (for the CTF headers when the run used ``CTF=yes``).
        numbers: 1-based classes (default all).

    Returns:
        float32 ``(K, nx, nx)`` in the order of ``numbers``.
    """
    imgs = np.asarray(images, dtype=np.float32)
    if imgs.ndim != 3 or len(imgs) != run.n_images:
        raise UsageError(f"ISAC2 FULLSIZE: the run had {run.n_images} images, the stack "
                         f"has {len(imgs) if imgs.ndim == 3 else 1}")
    nums = check_numbers(run, numbers if numbers is not None
                         else range(1, len(run.members) + 1))
    ids = np.unique(np.concatenate([run.members[k - 1] for k in nums]))
    x = _corrected(run, imgs, stack_file, ids)
    lab = class_labels([run.members[k - 1] for k in nums], run.n_images)[ids]
    return group_averages(x, lab, len(nums), Alignment(*fullsize_parameters(run, ids)))


def member_table(run: IsacRun, ids) -> dict:
    """Columns for the members ``ids``: class, original id, full-size parameters, and the
    CTF columns of ``isac_particles.star`` when the run had them."""
    ids = np.asarray(ids, dtype=np.int64)
    cls = class_labels(run.members, run.n_images) + 1
    ang, sh, mir = fullsize_parameters(run, ids)
    cols = {"rlnClassNumber": cls[ids], "emshIsacOriginalId": ids,
            "emshIsacAlpha": ang, "emshIsacShiftX": sh[:, 0], "emshIsacShiftY": sh[:, 1],
            "emshIsacMirror": mir.astype(np.int64)}
    star = run.folder / "isac_particles.star"
    if star.exists():
        table = read_star(star).get("particles")
        if table is not None and len(table) == run.n_images:
            for key in table.columns:
                if key.startswith("rln") and key not in ("rlnImageName", "rlnClassNumber"):
                    cols[key] = np.asarray(table[key])[ids]
    return cols
