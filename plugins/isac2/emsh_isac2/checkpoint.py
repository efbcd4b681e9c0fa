"""Restart of an ISAC2 run: the complete state in one file, written atomically.

:func:`emsh_isac2.generation.run_isac` given ``checkpoint_dir`` saves its state after
every stage of every SAC (a stage = ``iters_per_stage`` EQ-K-means iterations followed
by the within-group stability test when ``stage % iter_reali == 0``) and after every
generation. With ``resume=True`` it loads the state and continues; the result is the
one of an uninterrupted run with the same seed, because every random draw comes from
the saved Generator state and every array is stored exactly (SPHIRE restarts per main
iteration or generation; this is finer).

Files in ``checkpoint_dir``:

* ``isac_checkpoint.npz`` -- the state (authoritative; also written at the start of a
  fresh run, replacing an old one). Written to a temporary file in
  the same folder, flushed to disk and renamed over the old one (``os.replace``), so a
  kill at any moment leaves either the old or the new complete checkpoint. Arrays:

  - ``pool``: input ids still unaccounted (int64); ``all_parameters``: ``(n, 4)``
    alpha, sx, sy, mirror (-1 never accounted) as in :class:`IsacResult`;
  - ``acc_averages``, ``acc_members`` (+ ``acc_members_off``), ``acc_generation``,
    ``acc_errors``: the classes accepted so far;
  - when a generation is in progress (``sac_*``): ``sac_refs`` (current references),
    ``sac_angle``/``sac_shift``/``sac_mirror`` (alignment of every pool image),
    ``sac_labels`` (EQ-K-means groups), ``sac_members`` (+ ``_off``), ``sac_averages``,
    ``sac_errors``, ``sac_sizes`` (the classes of the last stability test),
    ``sac_prev`` (+ ``_off``, the stable sets of the previous test, for convergence);
  - ``meta``: a JSON text with the format version, the generation (in progress or
    next), generations done, stage (stages done in the generation in progress),
    finished flag, K, convergence flags, the Generator's ``bit_generator.state``, the
    log lines, the parameters (:class:`IsacParams` fields) and the input stack's shape,
    dtype and SHA-256.

* ``isac_checkpoint.json`` -- a small human-readable summary (generation, stage,
  finished), written (also atomically) after the ``.npz``; informational only.

Resuming checks that the parameters and the input stack are the same and raises a
one-line :class:`~emsh.errors.UsageError` naming what differs otherwise (a stack whose
images have the same mean and rms to 1e-4 of its rms, but other bytes, is accepted
with a note in the log: the same stack rebuilt with other FFT rounding). Under MPI only
rank 0 writes and reads; the state is broadcast.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from emsh.errors import DataFormatError, OperationError, UsageError
from emsh.io._atomic import atomic_open

from .align import Alignment

__all__ = ["CHECKPOINT_NAME", "INFO_NAME", "FORMAT", "SacState", "RunState",
           "stack_fingerprint", "save_checkpoint", "load_checkpoint", "check_compatible",
           "read_info", "resume_state", "save_state", "shared_error"]

CHECKPOINT_NAME = "isac_checkpoint.npz"
INFO_NAME = "isac_checkpoint.json"
FORMAT = "emsh-isac2-checkpoint-1"


@dataclass
class SacState:
    """The SAC of the generation in progress, after ``stage`` stages.

    ``classes`` holds :class:`~emsh_isac2.generation.SacClass` objects of the last
    stability test (empty before the first); ``prev_sets`` the stable member sets of
    the test before it (None before the second); ``done`` is set when the SAC converged.
    """

    K: int
    stage: int
    refs: np.ndarray
    ali: Alignment
    labels: np.ndarray | None = None
    classes: list = field(default_factory=list)
    prev_sets: list | None = None
    prev_agree: float = 0.0
    done: bool = False


@dataclass
class RunState:
    """Everything :func:`run_isac` needs to continue (ids index the input stack)."""

    generation: int                      # generations completed
    pool: np.ndarray
    all_parameters: np.ndarray
    averages: list = field(default_factory=list)
    members: list = field(default_factory=list)
    generations: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    log: list = field(default_factory=list)
    finished: bool = False
    sac: SacState | None = None


def stack_fingerprint(images) -> dict:
    """Shape, dtype, SHA-256 and per-image (mean, rms) of the float32 working stack."""
    a = np.ascontiguousarray(images, dtype=np.float32)
    h = hashlib.sha256()
    rows = a.reshape(len(a), int(np.prod(a.shape[1:])))
    stats = np.zeros((len(a), 2))
    step = max(1, (1 << 26) // max(rows.shape[1] * 8, 1))       # ~64 MB of float64
    for i in range(0, len(a), step):
        block = rows[i:i + step]
        h.update(block.view(np.uint8))
        b64 = block.astype(np.float64)
        stats[i:i + step, 0] = b64.mean(1)
        stats[i:i + step, 1] = np.sqrt((b64 ** 2).mean(1))
    return {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": h.hexdigest(),
            "stats": stats}


def _ragged(lists) -> tuple[np.ndarray, np.ndarray]:
    arrs = [np.asarray(x, dtype=np.int64).reshape(-1) for x in lists]
    off = np.cumsum([0] + [len(x) for x in arrs]).astype(np.int64)
    flat = np.concatenate(arrs) if arrs else np.zeros(0, np.int64)
    return flat, off


def _unragged(flat, off) -> list:
    return [np.array(flat[off[i]:off[i + 1]], dtype=np.int64) for i in range(len(off) - 1)]


def _json_safe(obj):
    """The Generator state as JSON (numpy arrays and ints become tagged lists / ints)."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj


def _from_json(obj):
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            return np.array(obj["__ndarray__"], dtype=obj["dtype"])
        return {k: _from_json(v) for k, v in obj.items()}
    return obj


def _state_arrays(state: RunState, shape) -> dict:
    acc_flat, acc_off = _ragged(state.members)
    out = {
        "pool": np.asarray(state.pool, np.int64),
        "all_parameters": np.asarray(state.all_parameters, np.float64),
        "acc_averages": (np.stack(state.averages).astype(np.float32) if state.averages
                         else np.zeros((0,) + tuple(shape), np.float32)),
        "acc_members": acc_flat, "acc_members_off": acc_off,
        "acc_generation": np.asarray(state.generations, np.int64),
        "acc_errors": np.asarray(state.errors, np.float64),
    }
    s = state.sac
    if s is not None:
        m_flat, m_off = _ragged([c.members for c in s.classes])
        p_flat, p_off = _ragged(s.prev_sets or [])
        out.update({
            "sac_refs": np.asarray(s.refs, np.float32),
            "sac_angle": s.ali.angle, "sac_shift": s.ali.shift, "sac_mirror": s.ali.mirror,
            "sac_labels": (np.zeros(0, np.int64) if s.labels is None
                           else np.asarray(s.labels, np.int64)),
            "sac_members": m_flat, "sac_members_off": m_off,
            "sac_averages": (np.stack([c.average for c in s.classes]).astype(np.float32)
                             if s.classes else np.zeros((0,) + tuple(shape), np.float32)),
            "sac_errors": np.asarray([c.group_error for c in s.classes], np.float64),
            "sac_sizes": np.asarray([c.group_size for c in s.classes], np.int64),
            "sac_prev": p_flat, "sac_prev_off": p_off,
        })
    return out


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file beside ``path``, flushed to disk, then renamed."""
    with atomic_open(path, "wb", overwrite=True) as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def save_checkpoint(folder, state: RunState, *, params, fingerprint: dict, rng) -> Path:
    """Write ``state`` (plus parameters, input fingerprint, Generator state) atomically.

    Returns the path of ``isac_checkpoint.npz``.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    s = state.sac
    meta = {
        "format": FORMAT,
        "generation": state.generation + (0 if state.finished else 1),
        "generations_done": state.generation,
        "stage": 0 if s is None else s.stage,
        "finished": bool(state.finished),
        "K": None if s is None else int(s.K),
        "sac_done": None if s is None else bool(s.done),
        "sac_prev_agree": None if s is None else float(s.prev_agree),
        "sac_has_labels": None if s is None else s.labels is not None,
        "sac_has_prev": None if s is None else s.prev_sets is not None,
        "rng": _json_safe(rng.bit_generator.state),
        "log": list(state.log),
        "params": asdict(params),
        "input": {k: v for k, v in fingerprint.items() if k != "stats"},
    }
    arrays = _state_arrays(state, fingerprint["shape"][1:])
    arrays["input_stats"] = np.asarray(fingerprint["stats"], np.float64)
    arrays["meta"] = np.array(json.dumps(meta))
    path = out / CHECKPOINT_NAME
    _atomic_write(path, lambda fh: np.savez(fh, **arrays))
    info = {k: meta[k] for k in ("generation", "generations_done", "stage", "finished")}
    info["accepted_classes"] = len(state.members)
    info["pool"] = int(len(state.pool))
    _atomic_write(out / INFO_NAME, lambda fh: fh.write((json.dumps(info) + "\n").encode()))
    return path


def read_info(folder) -> dict | None:
    """The summary ``isac_checkpoint.json`` (None when absent or being replaced)."""
    try:
        return json.loads((Path(folder) / INFO_NAME).read_text())
    except (OSError, ValueError):
        return None


def load_checkpoint(folder) -> tuple[RunState, dict] | None:
    """``(RunState, meta)`` from ``folder``'s checkpoint, or None when there is none."""
    from .generation import SacClass

    path = Path(folder) / CHECKPOINT_NAME
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        meta = json.loads(str(a.pop("meta")))
        meta["input"]["stats"] = a.pop("input_stats")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise DataFormatError(path, f"not a readable ISAC2 checkpoint ({exc})") from None
    if meta.get("format") != FORMAT:
        raise DataFormatError(path, f"checkpoint format {meta.get('format')!r}, "
                              f"expected {FORMAT!r}")
    state = RunState(
        generation=int(meta["generations_done"]), pool=a["pool"],
        all_parameters=a["all_parameters"], averages=list(a["acc_averages"]),
        members=_unragged(a["acc_members"], a["acc_members_off"]),
        generations=[int(g) for g in a["acc_generation"]],
        errors=[float(e) for e in a["acc_errors"]], log=list(meta["log"]),
        finished=bool(meta["finished"]))
    if meta["K"] is not None:
        members = _unragged(a["sac_members"], a["sac_members_off"])
        classes = [SacClass(m, avg, float(e), int(sz)) for m, avg, e, sz in
                   zip(members, a["sac_averages"], a["sac_errors"], a["sac_sizes"])]
        state.sac = SacState(
            K=int(meta["K"]), stage=int(meta["stage"]), refs=a["sac_refs"],
            ali=Alignment(a["sac_angle"], a["sac_shift"], a["sac_mirror"]),
            labels=a["sac_labels"] if meta["sac_has_labels"] else None, classes=classes,
            prev_sets=(_unragged(a["sac_prev"], a["sac_prev_off"])
                       if meta["sac_has_prev"] else None),
            prev_agree=float(meta["sac_prev_agree"]), done=bool(meta["sac_done"]))
    meta["rng"] = _from_json(meta["rng"])
    return state, meta


def check_compatible(meta: dict, params, fingerprint: dict, path) -> str | None:
    """Raise a one-line UsageError when parameters or input differ from the checkpoint's.

    The input must have the same shape and either the same SHA-256 or, per image, the
    same mean and rms within ``1e-4`` of the stack's rms (a working stack rebuilt with
    other FFT plans differs by rounding only); the latter returns a note to log.
    """
    saved = meta.get("params", {})
    now = asdict(params)
    diff = [f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(saved) | set(now))
            if saved.get(k) != now.get(k)]
    if diff:
        raise UsageError(f"ISAC2 resume: parameters differ from the checkpoint in {path} "
                         f"({'; '.join(diff)}); use the same parameters or start afresh")
    old = meta.get("input", {})
    if old.get("shape") == fingerprint["shape"]:
        if old.get("sha256") == fingerprint["sha256"]:
            return None
        a, b = np.asarray(old.get("stats")), np.asarray(fingerprint["stats"])
        if a.shape == b.shape and a.size:
            tol = 1e-4 * max(float(np.sqrt(np.mean(b[:, 1] ** 2))), 1e-30)
            if np.all(np.abs(a - b) <= tol):
                return ("the working stack differs from the checkpoint's by rounding only "
                        f"(largest per-image mean/rms change {np.abs(a - b).max():.2g})")
    raise UsageError(f"ISAC2 resume: the input stack (shape {fingerprint['shape']}) is not "
                     f"the one of the checkpoint in {path} (shape {old.get('shape')}); use "
                     "the same stack or start afresh")


def shared_error(comm, exc):
    """Rank 0's exception (or None) on every rank: the same type and one-line message."""
    if comm.size == 1:
        return exc
    msg = comm.bcast(None if exc is None else (type(exc).__name__, str(exc)))
    if comm.rank == 0 or msg is None:
        return exc
    name, text = msg
    if name == "DataFormatError":
        return DataFormatError(None, text)
    if name == "UsageError":
        return UsageError(text)
    return OperationError(f"ISAC2 (rank 0): {name}: {text}")


def resume_state(folder, p, fingerprint, rng, comm, emit_note):
    """The :class:`RunState` to continue from ``folder`` (None: no checkpoint there).

    Rank 0 loads the checkpoint and checks it against the parameters ``p`` and the
    input ``fingerprint`` (:func:`stack_fingerprint`); every rank gets the state, or
    raises the same error. ``rng`` takes the saved Generator state; ``emit_note(state,
    line)`` records where the run resumes.
    """
    got, err = None, None
    if comm.rank == 0:
        try:
            got = load_checkpoint(folder)
            if got is not None:
                state, meta = got
                note = check_compatible(meta, p, fingerprint, folder)
                saved = meta["rng"]
                if saved.get("bit_generator") != type(rng.bit_generator).__name__:
                    raise UsageError(f"ISAC2 resume: the checkpoint in {folder} holds a "
                                     f"{saved.get('bit_generator')} state but the generator "
                                     f"is {type(rng.bit_generator).__name__}")
                got = (state, saved, note)
        except Exception as exc:
            err = exc
    err = shared_error(comm, err)
    if err is not None:
        raise err
    got = comm.bcast(got)
    if got is None:
        return None
    state, saved, note = got
    rng.bit_generator.state = saved
    where = ("finished run" if state.finished else
             f"generation {state.generation + 1}, after stage "
             f"{0 if state.sac is None else state.sac.stage}")
    emit_note(state, f"resumed from the checkpoint in {folder} ({where})"
              + (f"; {note}" if note else ""))
    return state


def save_state(folder, state, p, fingerprint, rng, comm) -> None:
    """Rank 0 writes the checkpoint (:func:`save_checkpoint`); a failure is raised on
    every rank."""
    err = None
    if comm.rank == 0:
        try:
            save_checkpoint(folder, state, params=p, fingerprint=fingerprint, rng=rng)
        except Exception as exc:
            err = exc
    err = shared_error(comm, err)
    if err is not None:
        raise err
