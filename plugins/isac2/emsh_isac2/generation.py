"""ISAC2's SAC loop (one generation) and the generation driver (A.2 steps 3-5).

Decisions on SPHIRE's quirks (A.10), also listed in the README:

* EQ-K-means iterations per within-group stage: ``round((FH-FL)/fl_step) + 1`` (6 for
  the defaults, cut-offs 0.20..0.45), the count SPHIRE reaches through float rounding.
* Initial references: K distinct random images drawn from the run's Generator (SPHIRE
  uses the fixed seed 9023); ``rand_seed`` makes a run reproducible.
* Classes with fewer than 5 stable members are *not* padded with random members; their
  next reference is the average of the whole group under its last alignment.
* Only stable members are reported as ``members`` (as SPHIRE).
* The generation loop also stops when a generation accepts no class and after
  ``max_generations`` (SPHIRE can loop forever there).
* The ``stab_ali`` within-group alignments start from random angles and mirrors and
  zero shifts (the working stack is centred); SPHIRE keeps the current shifts. On the
  simulated test set zero shifts gave 0.89-0.98 accounted vs 0.80-0.99 (3 seeds).
* The average-to-average "centring" pass (SPHIRE step 5.6) is left out: averages are
  re-centred by removing each group's mean shift instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emsh.errors import UsageError
from emsh.kernels.filters import tanh_lowpass

from .align import Alignment, group_averages, within_group_refinement
from .eqkmeans import eq_kmeans_iteration
from .params import IsacParams
from .stability import multi_align_stability

__all__ = ["SacClass", "sac", "IsacResult", "run_isac", "stability_stage"]

_MIN_STABLE = 5


@dataclass
class SacClass:
    """One class from :func:`sac`: local member ids (stable ones), average, error."""

    members: np.ndarray
    average: np.ndarray
    group_error: float
    group_size: int


def stability_stage(images, labels, K: int, ali: Alignment, rng, p: IsacParams):
    """Within-group stage: ``stab_ali`` reference-free alignments per group, stability test.

    Returns ``(classes list[SacClass], new averages (K, ny, nx), updated Alignment)``.
    Stable members take their averaged parameters, the others those of the last run.
    """
    imgs = np.asarray(images, dtype=np.float32)
    kw = dict(ou=p.target_radius, ir=p.ir, rs=p.rs, xr=p.xr, yr=p.yr, ts=p.ts, dst=p.dst,
              maxit=p.maxit, FH=p.FH, FF=p.FF)
    L = p.stab_ali
    runs = []
    for _ in range(L):
        _, a = within_group_refinement(imgs, labels, K, rng, randomize=True, start=None, **kw)
        runs.append(a)
    ang = np.stack([r.angle for r in runs])
    sh = np.stack([r.shift for r in runs])
    mir = np.stack([r.mirror for r in runs])
    new_ali = runs[-1].take(slice(None))
    stable_lab = np.full(len(imgs), -1, dtype=np.int64)
    classes = []
    for k in range(K):
        idx = np.flatnonzero(labels == k)
        if len(idx) == 0:
            classes.append(SacClass(idx, np.zeros(imgs.shape[1:], np.float32), np.inf, 0))
            continue
        st = multi_align_stability(ang[:, idx], sh[:, idx], mir[:, idx],
                                   d=2.0 * p.target_radius, thld_err=p.thld_err)
        good = idx[st.stable]
        new_ali.put(good, st.params.take(st.stable))
        if len(good) >= _MIN_STABLE:
            stable_lab[good] = k
        else:
            stable_lab[idx] = k        # too few stable: average the whole group
        classes.append(SacClass(np.sort(good), None, st.group_error, len(idx)))
    avg = tanh_lowpass(group_averages(imgs, stable_lab, K, new_ali), p.FH, p.FF, ndim=2)
    for k, c in enumerate(classes):
        c.average = avg[k].astype(np.float32)
    return classes, avg.astype(np.float32), new_ali


def _agreement(prev: list[np.ndarray], cur: list[np.ndarray]) -> float:
    """SPHIRE's convergence measure on stable member sets of matching classes."""
    p_all = np.concatenate(prev) if prev else np.zeros(0, np.int64)
    c_all = np.concatenate(cur) if cur else np.zeros(0, np.int64)
    common = sum(len(np.intersect1d(a, b)) for a, b in zip(prev, cur))
    denom = len(p_all) + len(c_all) - common
    return common / denom if denom else 0.0


def sac(images, K: int, rng: np.random.Generator, p: IsacParams, log=None):
    """One generation's SAC: EQ-K-means with periodic within-group stability stages.

    Args:
        images: ``(n, ny, nx)`` working images of this generation.
        K: number of classes (``n // img_per_grp``).
        rng: the run's Generator.
        p: parameters.
        log: optional callable taking one line of progress text.

    Returns:
        ``(classes list[SacClass], Alignment (n,) of the last stage)``.
    """
    imgs = np.asarray(images, dtype=np.float32)
    n = len(imgs)
    if not 1 <= K <= n:
        raise UsageError(f"SAC: {K} classes for {n} images")
    refs = imgs[np.sort(rng.choice(n, K, replace=False))].copy()
    ali = Alignment.zeros(n)
    eq_kw = dict(ou=p.target_radius, ir=p.ir, rs=p.rs, xr=p.xr, yr=p.yr, ts=p.ts, FF=p.FF)
    prev_sets, prev_agree, classes = None, 0.0, []
    for stage in range(1, p.init_iter + 1):
        for i in range(p.iters_per_stage):
            fl = p.FL + i * p.fl_step
            step = eq_kmeans_iteration(imgs, refs, rng, fl=fl, current=ali, **eq_kw)
            refs, ali, labels = step.averages, step.ali, step.labels
        if stage % p.iter_reali:
            continue
        classes, refs, ali = stability_stage(imgs, labels, K, ali, rng, p)
        sets = [c.members for c in classes]
        if log is not None:
            log(f"SAC stage {stage}: stable {sum(len(s) for s in sets)}/{n}, errors "
                + " ".join(f"{c.group_error:.2f}" for c in classes))
        if prev_sets is not None:
            agree = _agreement(prev_sets, sets)
            if agree > 0.5 and 0.0 < agree - prev_agree < 0.05:
                break
            prev_agree = agree
        prev_sets = sets
    if not classes:
        classes, refs, ali = stability_stage(imgs, labels, K, ali, rng, p)
    return classes, ali


@dataclass
class IsacResult:
    """Outcome of :func:`run_isac` (ids are 0-based indices in the input stack).

    Attributes:
        averages: accepted class averages ``(C, ny, nx)`` float32.
        members: per class, sorted int64 ids of its stable members.
        generation: per class, the generation (1-based) that accepted it.
        errors: per class, the pre-pruning pixel error of the group.
        all_parameters: ``(n, 4)`` alpha, sx, sy, mirror per image in the working frame;
            mirror -1 for images never accounted (SPHIRE's ``all_parameters.txt``).
        processed: accounted ids (sorted); not_processed: the others.
        log: progress lines.
    """

    averages: np.ndarray
    members: list
    generation: list
    errors: list
    all_parameters: np.ndarray
    processed: np.ndarray
    not_processed: np.ndarray
    log: list = field(default_factory=list)

    @property
    def accounted_fraction(self) -> float:
        """Accounted images over all images."""
        return len(self.processed) / max(len(self.all_parameters), 1)


def run_isac(images, p: IsacParams, rng: np.random.Generator | None = None) -> IsacResult:
    """ISAC2 generations on a prepared working stack (one main iteration).

    Each generation runs :func:`sac` on the images not yet accounted for; classes with
    more than ``minimum_grp_size`` stable members are accepted and their members
    removed from the pool. Generations continue while ``int(1.2 |pool|) >= 2
    img_per_grp``, stopping also when generation 1 yields ``<= delta_good`` classes,
    when a generation accepts none, or after ``max_generations``.

    Args:
        images: ``(n, target_nx, target_nx)`` working stack (see :mod:`.prepare`).
        p: parameters.
        rng: Generator (default: from ``p.rand_seed``).
    """
    imgs = np.asarray(images, dtype=np.float32)
    if imgs.ndim != 3 or imgs.shape[1:] != (p.target_nx, p.target_nx):
        raise UsageError(f"ISAC2: working stack must be (n, {p.target_nx}, {p.target_nx}), "
                         f"got {imgs.shape}")
    rng = np.random.default_rng(p.rand_seed) if rng is None else rng
    n = len(imgs)
    params = np.zeros((n, 4))
    params[:, 3] = -1
    pool = np.arange(n)
    res = IsacResult(np.zeros((0,) + imgs.shape[1:], np.float32), [], [], [], params,
                     np.zeros(0, np.int64), pool.copy())
    avgs = []
    for g in range(1, p.max_generations + 1):
        if len(pool) < p.img_per_grp:
            break
        K = len(pool) // p.img_per_grp
        classes, ali = sac(imgs[pool], K, rng, p, log=res.log.append)
        good = [c for c in classes if len(c.members) > p.minimum_grp_size]
        for c in good:
            ids = pool[c.members]
            params[ids, 0], params[ids, 1:3] = ali.angle[c.members], ali.shift[c.members]
            params[ids, 3] = ali.mirror[c.members]
            avgs.append(c.average)
            res.members.append(np.sort(ids).astype(np.int64))
            res.generation.append(g)
            res.errors.append(c.group_error)
        taken = np.concatenate([c.members for c in good]) if good else np.zeros(0, np.int64)
        res.log.append(f"generation {g}: {K} groups, {len(good)} accepted, "
                       f"{len(taken)} of {len(pool)} images accounted")
        pool = np.delete(pool, taken)
        if not good or (g == 1 and len(good) <= p.delta_good) or len(pool) == 0:
            break
        if int(1.2 * len(pool)) < 2 * p.img_per_grp:
            break
    if avgs:
        res.averages = np.stack(avgs).astype(np.float32)
    res.processed = np.sort(np.concatenate(res.members)) if res.members else np.zeros(0, np.int64)
    res.not_processed = np.setdiff1d(np.arange(n), res.processed)
    return res
