"""ISAC's stability test: pixel error of a particle over independent alignments (A.3).

``multi_align_stability`` follows SPHIRE's ``sp_pixel_error.multi_align_stability``:
runs whose averages differ by a global 2-D transform are brought into the frame of the
last run, and a particle is stable when its L aligned positions agree within
``thld_err`` pixels at the radius ``d/2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from emsh.errors import UsageError
from emsh.kernels.align2d import compose_alignment
from emsh.kernels.cluster import match_partitions

from .align import Alignment

__all__ = ["StabilityResult", "multi_align_stability", "pixel_errors"]


@dataclass
class StabilityResult:
    """Outcome of :func:`multi_align_stability` for one group of m particles.

    Attributes:
        stable: bool ``(m,)``, mirror-consistent and ``err < thld_err``.
        mirror_consistent: bool ``(m,)``, relative mirror the same in every run.
        err: ``(m,)`` pixel error after the fit (inf where mirror-inconsistent).
        group_error: sqrt(mean err^2) over mirror-consistent particles before pruning.
        params: averaged parameters in the last run's frame (mean direction of the
            angles, mean shifts, mirror of the last run), meaningful where ``stable``.
        transforms: ``(L-1, 4)`` fitted (angle, sx, sy, mirror) taking run l to run L.
    """

    stable: np.ndarray
    mirror_consistent: np.ndarray
    err: np.ndarray
    group_error: float
    params: Alignment
    transforms: np.ndarray


def _to_last(ang, sh, mir, g) -> tuple[np.ndarray, np.ndarray]:
    """Angles (L, m) and shifts (L, m, 2) of runs 0..L-2 composed with G_l, plus the last run."""
    L = ang.shape[0]
    A, S = np.empty_like(ang), np.empty_like(sh)
    for l in range(L - 1):
        a, s, _ = compose_alignment((ang[l], sh[l], mir[l]),
                                    (g[l, 0], g[l, 1:3], g[l, 3] > 0.5))
        A[l], S[l] = a, s
    A[L - 1], S[L - 1] = ang[L - 1], sh[L - 1]
    return A, S


def pixel_errors(ang, sh, d: float) -> np.ndarray:
    """Per-particle pixel error of L parameter sets in one frame.

    ``err² = (d²/4)(1 - |mean_l exp(i α_l)|) + Var_l(x_l) + Var_l(y_l)`` (population
    variances), with angles ``ang (L, m)`` in degrees and shifts ``sh (L, m, 2)``.
    """
    z = np.exp(1j * np.deg2rad(ang)).mean(0)
    e2 = 0.25 * d * d * (1.0 - np.abs(z)) + sh[..., 0].var(0) + sh[..., 1].var(0)
    return np.sqrt(np.maximum(e2, 0.0))


def _initial_transforms(ang, sh, mir, rel, ok) -> np.ndarray:
    """SPHIRE's ``align_diff_params``: circular mean of angle and mean shift differences."""
    L = ang.shape[0]
    g = np.zeros((L - 1, 4))
    for l in range(L - 1):
        m1 = mir[l, ok]
        diff = np.where(m1, ang[l, ok] - ang[L - 1, ok], ang[L - 1, ok] - ang[l, ok])
        ga = np.degrees(np.angle(np.exp(1j * np.deg2rad(diff)).mean()))
        g[l, 0], g[l, 3] = ga, float(rel[l])
        a, s, _ = compose_alignment((ang[l, ok], sh[l, ok], m1), (ga, np.zeros(2), rel[l]))
        t = sh[L - 1, ok] - s                           # t2e per particle
        t[:, 0] = np.where(m1, -t[:, 0], t[:, 0])      # undo the x flip of mirrored ones
        g[l, 1:3] = t.mean(0)
    return g


def multi_align_stability(ang, sh, mir, *, d: float, thld_err: float,
                          prune_factor: float = 3.0) -> StabilityResult:
    """Stable particles of a group aligned L times independently.

    Steps (SPHIRE): (1) mirror consistency: each run's mirror partition is matched to
    the last run's (:func:`emsh.kernels.cluster.match_partitions`); particles whose
    relative mirror disagrees with the match in any run drop out. (2) initial relative
    transforms G_l (run l -> last run). (3) particles with ``err > 3 thld_err`` are set
    aside; the G_l are fitted to minimise the mean err² of the rest (quasi-Newton).
    (4) ``err`` of all consistent particles under the fitted G_l; stable where
    ``err < thld_err``.

    Args:
        ang: ``(L, m)`` angles (deg) of the L runs.
        sh: ``(L, m, 2)`` shifts (px).
        mir: ``(L, m)`` mirror flags.
        d: diameter for the angular term (SPHIRE: ``2 ou``), pixels.
        thld_err: stability threshold, pixels.
        prune_factor: particles above ``prune_factor * thld_err`` are left out of the fit.
    """
    ang = np.asarray(ang, dtype=np.float64)
    sh = np.asarray(sh, dtype=np.float64)
    mir = np.asarray(mir, dtype=bool)
    if ang.ndim != 2 or sh.shape != ang.shape + (2,) or mir.shape != ang.shape or ang.shape[0] < 2:
        raise UsageError(f"multi_align_stability: expected (L, m) angles, (L, m, 2) shifts and "
                         f"(L, m) mirrors with L >= 2; got {ang.shape}, {sh.shape}, {mir.shape}")
    L, m = ang.shape
    last = mir[L - 1].astype(np.int64)
    rel = np.zeros(L - 1, dtype=bool)
    ok = np.ones(m, dtype=bool)
    for l in range(L - 1):
        pairs, _ = match_partitions(mir[l].astype(np.int64), last)
        mapping = dict(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist()))
        if mapping:
            rel[l] = mapping.get(0, mapping.get(1, 1) ^ 1) != 0
        expect = mir[l] ^ rel[l]
        ok &= expect == mir[L - 1]
    err = np.full(m, np.inf)
    g = np.zeros((L - 1, 4))
    if not ok.any():
        return StabilityResult(np.zeros(m, bool), ok, err, float("inf"), Alignment.zeros(m), g)
    g = _initial_transforms(ang, sh, mir, rel, ok)
    A, S = _to_last(ang[:, ok], sh[:, ok], mir[:, ok], g)
    e0 = pixel_errors(A, S, d)
    group_error = float(np.sqrt(np.mean(e0 ** 2)))
    keep = e0 <= prune_factor * thld_err
    if keep.sum() >= 2:
        idx = np.flatnonzero(ok)[keep]
        a_k, s_k, m_k = ang[:, idx], sh[:, idx], mir[:, idx]

        def cost(x):
            gg = g.copy()
            gg[:, :3] = x.reshape(L - 1, 3)
            A2, S2 = _to_last(a_k, s_k, m_k, gg)
            return float(np.mean(pixel_errors(A2, S2, d) ** 2))

        fit = minimize(cost, g[:, :3].reshape(-1), method="BFGS",
                       options={"gtol": 1e-6, "maxiter": 200})
        if fit.fun <= cost(g[:, :3].reshape(-1)):
            g[:, :3] = fit.x.reshape(L - 1, 3)
        A, S = _to_last(ang[:, ok], sh[:, ok], mir[:, ok], g)
    e = pixel_errors(A, S, d)
    err[ok] = e
    stable = np.zeros(m, dtype=bool)
    stable[ok] = e < thld_err
    params = Alignment.zeros(m)
    params.angle[ok] = np.mod(np.degrees(np.angle(np.exp(1j * np.deg2rad(A)).mean(0))), 360.0)
    params.shift[ok] = S.mean(0)
    params.mirror[:] = mir[L - 1]
    return StabilityResult(stable, ok, err, group_error, params, g)
