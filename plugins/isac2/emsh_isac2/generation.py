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

Restart: :func:`run_isac` with ``checkpoint_dir`` saves the complete state at the
start, after every SAC stage and after every generation (what is saved:
:mod:`.checkpoint`); ``resume=True`` continues from it, giving the classes of an
uninterrupted run with the same seed.

MPI: with ``comm`` of several ranks the image alignments (EQ-K-means and within-group)
are split over the ranks by images (:func:`.align.align_over_ranks`) and the group
averages by groups (:func:`.align.group_averages`); every rank holds all images and
references, draws the same random numbers and ends each EQ-K-means assignment and each
stage with rank 0's state (broadcast), so all ranks take the same decisions. Only rank
0 writes checkpoints and calls ``log``. The result equals the serial one bit for bit
when FFTs and BLAS give per-image results independent of the batch size (scipy.fft
backend, one BLAS thread: measured); otherwise to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emsh.errors import UsageError
from emsh.kernels.filters import tanh_lowpass
from emsh.parallel import SerialComm

from . import checkpoint as ckpt
from .align import Alignment, group_averages, within_group_refinement
from .checkpoint import RunState, SacState
from .eqkmeans import eq_kmeans_iteration
from .params import IsacParams
from .stability import multi_align_stability

__all__ = ["SacClass", "sac", "sac_start", "sac_stage", "sac_finish", "IsacResult",
           "run_isac", "stability_stage"]

_MIN_STABLE = 5


@dataclass
class SacClass:
    """One class from :func:`sac`: local member ids (stable ones), average, error."""

    members: np.ndarray
    average: np.ndarray
    group_error: float
    group_size: int


def stability_stage(images, labels, K: int, ali: Alignment, rng, p: IsacParams, comm=None):
    """Within-group stage: ``stab_ali`` reference-free alignments per group, stability test.

    Returns ``(classes list[SacClass], new averages (K, ny, nx), updated Alignment)``.
    Stable members take their averaged parameters, the others those of the last run.
    ``comm``: the alignments are split over its ranks.
    """
    imgs = np.asarray(images, dtype=np.float32)
    kw = dict(ou=p.target_radius, ir=p.ir, rs=p.rs, xr=p.xr, yr=p.yr, ts=p.ts, dst=p.dst,
              maxit=p.maxit, FH=p.FH, FF=p.FF, comm=comm)
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
    avg = tanh_lowpass(group_averages(imgs, stable_lab, K, new_ali, comm), p.FH, p.FF, ndim=2)
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


def sac_start(images, K: int, rng: np.random.Generator) -> SacState:
    """A SAC before its first stage: K distinct random images as references."""
    n = len(images)
    if not 1 <= K <= n:
        raise UsageError(f"SAC: {K} classes for {n} images")
    refs = np.asarray(images[np.sort(rng.choice(n, K, replace=False))], np.float32).copy()
    return SacState(K=K, stage=0, refs=refs, ali=Alignment.zeros(n))


def sac_stage(images, st: SacState, rng: np.random.Generator, p: IsacParams, log=None,
              comm=None) -> SacState:
    """One stage of a SAC: ``iters_per_stage`` EQ-K-means iterations, then (when
    ``stage % iter_reali == 0``) the within-group stability test and the convergence check.

    Returns the new state (``stage`` + 1; ``done`` when converged). Under MPI the state
    is rank 0's, broadcast, before the convergence decision.
    """
    comm = SerialComm() if comm is None else comm
    imgs = np.asarray(images, dtype=np.float32)
    refs, ali, labels = st.refs, st.ali, st.labels
    stage = st.stage + 1
    eq_kw = dict(ou=p.target_radius, ir=p.ir, rs=p.rs, xr=p.xr, yr=p.yr, ts=p.ts, FF=p.FF)
    for i in range(p.iters_per_stage):
        fl = p.FL + i * p.fl_step
        step = eq_kmeans_iteration(imgs, refs, rng, fl=fl, current=ali, comm=comm, **eq_kw)
        refs, ali, labels = step.averages, step.ali, step.labels
    new = SacState(K=st.K, stage=stage, refs=refs, ali=ali, labels=labels, classes=st.classes,
                   prev_sets=st.prev_sets, prev_agree=st.prev_agree)
    if stage % p.iter_reali == 0:
        new.classes, new.refs, new.ali = stability_stage(imgs, labels, st.K, ali, rng, p, comm)
    if comm.size > 1:
        new = comm.bcast(new)
    if stage % p.iter_reali:
        return new
    sets = [c.members for c in new.classes]
    if log is not None:
        log(f"SAC stage {stage}: stable {sum(len(s) for s in sets)}/{len(imgs)}, errors "
            + " ".join(f"{c.group_error:.2f}" for c in new.classes))
    if new.prev_sets is not None:
        agree = _agreement(new.prev_sets, sets)
        if agree > 0.5 and 0.0 < agree - new.prev_agree < 0.05:
            new.done = True
            return new
        new.prev_agree = agree
    new.prev_sets = sets
    return new


def sac_finish(images, st: SacState, rng: np.random.Generator, p: IsacParams, comm=None):
    """The classes of a SAC after its stages: ``(classes list[SacClass], Alignment)``.

    When no stage ran the stability test (``init_iter < iter_reali``) it is run once here.
    """
    if st.classes:
        return st.classes, st.ali
    classes, _, ali = stability_stage(images, st.labels, st.K, st.ali, rng, p, comm)
    if comm is not None and comm.size > 1:
        classes, ali = comm.bcast((classes, ali))
    return classes, ali


def sac(images, K: int, rng: np.random.Generator, p: IsacParams, log=None, comm=None):
    """One generation's SAC: EQ-K-means with periodic within-group stability stages.

    Args:
        images: ``(n, ny, nx)`` working images of this generation.
        K: number of classes (``n // img_per_grp``).
        rng: the run's Generator (same state on every rank under MPI).
        p: parameters.
        log: optional callable taking one line of progress text.
        comm: communicator (default serial); alignments are split over its ranks.

    Returns:
        ``(classes list[SacClass], Alignment (n,) of the last stage)``.
    """
    imgs = np.asarray(images, dtype=np.float32)
    st = sac_start(imgs, K, rng)
    while not st.done and st.stage < p.init_iter:
        st = sac_stage(imgs, st, rng, p, log=log, comm=comm)
    return sac_finish(imgs, st, rng, p, comm)


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


def _accept(state: RunState, classes, ali: Alignment, p: IsacParams, emit) -> None:
    """Close the generation in progress: accept classes, shrink the pool, decide to go on."""
    g = state.generation + 1
    pool, params = state.pool, state.all_parameters
    good = [c for c in classes if len(c.members) > p.minimum_grp_size]
    for c in good:
        ids = pool[c.members]
        params[ids, 0], params[ids, 1:3] = ali.angle[c.members], ali.shift[c.members]
        params[ids, 3] = ali.mirror[c.members]
        state.averages.append(np.asarray(c.average, np.float32))
        state.members.append(np.sort(ids).astype(np.int64))
        state.generations.append(g)
        state.errors.append(float(c.group_error))
    taken = np.concatenate([c.members for c in good]) if good else np.zeros(0, np.int64)
    emit(f"generation {g}: {state.sac.K} groups, {len(good)} accepted, "
         f"{len(taken)} of {len(pool)} images accounted")
    state.pool = np.delete(pool, taken)
    state.generation, state.sac = g, None
    left = len(state.pool)
    state.finished = (not good or (g == 1 and len(good) <= p.delta_good) or left == 0
                      or int(1.2 * left) < 2 * p.img_per_grp or g >= p.max_generations
                      or left < p.img_per_grp)


def run_isac(images, p: IsacParams, rng: np.random.Generator | None = None, *,
             checkpoint_dir=None, resume: bool = False, comm=None, log=None) -> IsacResult:
    """ISAC2 generations on a prepared working stack (one main iteration).

    Each generation runs a SAC (:func:`sac`) on the images not yet accounted for; classes
    with more than ``minimum_grp_size`` stable members are accepted and their members
    removed from the pool. Generations continue while ``int(1.2 |pool|) >= 2
    img_per_grp``, stopping also when generation 1 yields ``<= delta_good`` classes,
    when a generation accepts none, or after ``max_generations``.

    Args:
        images: ``(n, target_nx, target_nx)`` working stack (see :mod:`.prepare`); the
            same on every rank.
        p: parameters.
        rng: Generator (default: from ``p.rand_seed``). Under MPI rank 0's state is
            used by all ranks; on resume its state is replaced by the saved one.
        checkpoint_dir: folder for ``isac_checkpoint.npz`` (see :mod:`.checkpoint`),
            saved at the start, after every SAC stage and after every generation;
            None: no checkpoints.
        resume: continue from the checkpoint in ``checkpoint_dir`` when there is one
            (parameters and input must be the same; else a UsageError). Without a
            checkpoint the run starts afresh; ``resume=False`` starts afresh and
            replaces an old checkpoint.
        comm: communicator (:mod:`emsh.parallel`; default serial). All ranks call
            this with the same arguments and return the same result.
        log: callable receiving each progress line as it is made (rank 0 only); the
            lines are also in ``IsacResult.log``.
    """
    imgs = np.asarray(images, dtype=np.float32)
    if imgs.ndim != 3 or imgs.shape[1:] != (p.target_nx, p.target_nx):
        raise UsageError(f"ISAC2: working stack must be (n, {p.target_nx}, {p.target_nx}), "
                         f"got {imgs.shape}")
    if resume and checkpoint_dir is None:
        raise UsageError("ISAC2: resume needs checkpoint_dir (the folder of the checkpoint)")
    comm = SerialComm() if comm is None else comm
    rng = np.random.default_rng(p.rand_seed) if rng is None else rng
    n = len(imgs)
    fingerprint = None
    if checkpoint_dir is not None and comm.rank == 0:
        fingerprint = ckpt.stack_fingerprint(imgs)

    def emit_to(state, line):
        state.log.append(line)
        if log is not None and comm.rank == 0:
            log(line)

    state = None
    if resume:
        state = ckpt.resume_state(checkpoint_dir, p, fingerprint, rng, comm, emit_to)
    resumed = state is not None
    if state is None:
        if comm.size > 1:
            rng.bit_generator.state = comm.bcast(rng.bit_generator.state)
        params = np.zeros((n, 4))
        params[:, 3] = -1
        state = RunState(generation=0, pool=np.arange(n), all_parameters=params,
                         finished=n < p.img_per_grp)

    def emit(line):
        emit_to(state, line)

    def save():
        if checkpoint_dir is not None:
            ckpt.save_state(checkpoint_dir, state, p, fingerprint, rng, comm)

    if not resumed:
        save()                     # replaces an old checkpoint at once
    while not state.finished:
        work = imgs[state.pool]
        if state.sac is None:
            state.sac = sac_start(work, len(state.pool) // p.img_per_grp, rng)
        while not state.sac.done and state.sac.stage < p.init_iter:
            state.sac = sac_stage(work, state.sac, rng, p, log=emit, comm=comm)
            save()
        classes, ali = sac_finish(work, state.sac, rng, p, comm)
        _accept(state, classes, ali, p, emit)
        save()
    avgs = (np.stack(state.averages).astype(np.float32) if state.averages
            else np.zeros((0,) + imgs.shape[1:], np.float32))
    members = [np.asarray(m, np.int64) for m in state.members]
    processed = np.sort(np.concatenate(members)) if members else np.zeros(0, np.int64)
    return IsacResult(avgs, members, list(state.generations), list(state.errors),
                      np.asarray(state.all_parameters, np.float64).copy(), processed,
                      np.setdiff1d(np.arange(n), processed), list(state.log))
