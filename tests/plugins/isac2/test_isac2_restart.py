"""ISAC2 restart: a run killed mid-generation and resumed gives the uninterrupted classes.

Runs go through subprocesses (``_job``) with one FFT backend (scipy.fft) and one BLAS
thread, so that every process computes bit-for-bit the same (FFTW plans and threaded
BLAS may round differently from process to process). Data: 4 views x 24 images of a
simulated map, 32 px, SNR 2; the run has 2 generations (2 + 1 classes accepted).
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from emsh.errors import DataFormatError, UsageError
from emsh_isac2 import checkpoint as ckpt
from emsh_isac2.align import Alignment
from emsh_isac2.generation import SacClass, run_isac
from emsh_isac2.params import IsacParams

BOX, OU, VIEWS, PER = 32, 12, 4, 24
PARAMS = dict(img_per_grp=PER, minimum_grp_size=18, target_radius=OU, target_nx=BOX,
              maxit=6, init_iter=2, stab_ali=3, thld_err=0.7, rand_seed=1)
REPO = Path(__file__).resolve().parents[3]

JOB = textwrap.dedent("""
    import json, sys
    import numpy as np
    from emsh.parallel import get_comm
    from emsh_isac2 import checkpoint as ckpt
    from emsh_isac2.generation import run_isac
    from emsh_isac2.params import IsacParams

    cfg = json.loads(sys.argv[1])
    if "simulate" in cfg:                     # make the test data first, with the same FFTs
        from emsh.kernels.stats import normalize
        from emsh.sim.models import load_model, model_to_map
        from emsh.sim.particles import simulate_2d_views
        box, radius, views, per, snr = cfg["simulate"]
        vol = model_to_map(load_model("adk_closed"), box, 3.0, resolution=12)
        imgs, truth = simulate_2d_views(vol, views, per, np.random.default_rng(5), apix=3.0,
                                        shift_range_px=1.0, snr=snr)
        np.save(cfg["data"], normalize(imgs, radius=radius))
        np.save(cfg["data"] + ".truth.npy", np.asarray(truth["view_id"]))
    imgs = np.load(cfg["data"])
    if cfg.get("fail_after"):                 # raise right after the n-th checkpoint
        real, count = ckpt.save_checkpoint, [0]
        def failing(*a, **k):
            real(*a, **k)
            count[0] += 1
            if count[0] >= cfg["fail_after"]:
                raise RuntimeError("injected failure")
        ckpt.save_checkpoint = failing
    comm = get_comm()
    res = run_isac(imgs, IsacParams(**cfg["params"]), checkpoint_dir=cfg.get("ckpt"),
                   resume=cfg.get("resume", False), comm=comm)
    off = np.cumsum([0] + [len(m) for m in res.members])
    flat = np.concatenate(res.members) if res.members else np.zeros(0, np.int64)
    np.savez(cfg["out"] + f".rank{comm.rank}.npz", averages=res.averages, members=flat,
             off=off, generation=np.asarray(res.generation),
             all_parameters=res.all_parameters, log=np.array(json.dumps(res.log)))
""")


def job_env():
    """One FFT backend and one thread everywhere: bit-for-bit equal processes."""
    return dict(os.environ, PYTHONPATH=str(REPO), EMSH_FFT="scipy", EMSH_FFT_THREADS="1",
                OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def job_command(folder: Path, cfg: dict) -> list:
    script = folder / "isac_job.py"
    if not script.exists():
        script.write_text(JOB)
    return [sys.executable, str(script), json.dumps(cfg)]


def load_result(prefix: str, rank: int = 0) -> dict:
    with np.load(f"{prefix}.rank{rank}.npz") as z:
        r = {k: z[k] for k in z.files}
    r["members"] = [r["members"][a:b] for a, b in zip(r["off"][:-1], r["off"][1:])]
    r["log"] = json.loads(str(r["log"]))
    r["n_generations"] = sum(line.startswith("generation ") for line in r["log"])
    return r


def assert_same_classes(a: dict, b: dict) -> None:
    assert len(a["members"]) == len(b["members"])
    for ma, mb in zip(a["members"], b["members"]):
        assert np.array_equal(ma, mb)
    assert np.array_equal(a["generation"], b["generation"])
    np.testing.assert_allclose(a["all_parameters"], b["all_parameters"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(a["averages"], b["averages"], rtol=0, atol=1e-5)


def data_and_reference(folder: Path):
    """One subprocess: simulate the views (with the jobs' FFTs), then the uninterrupted
    run. Returns ``(data path, true view ids, result)``."""
    data = folder / "data.npy"
    out = str(folder / "ref")
    cfg = {"simulate": [BOX, OU, VIEWS, PER, 2.0], "data": str(data), "params": PARAMS,
           "out": out}
    done = subprocess.run(job_command(folder, cfg), env=job_env(), timeout=300,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return data, np.load(str(data) + ".truth.npy"), load_result(out)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    folder = tmp_path_factory.mktemp("isac_restart")
    data, truth, ref = data_and_reference(folder)
    return folder, data, truth, ref


@pytest.fixture(scope="module")
def reference(work):
    """The uninterrupted run (no checkpoints)."""
    return work[3]


@pytest.mark.slow
def test_reference_run_finds_pure_classes_in_several_generations(work, reference):
    truth = work[2]
    # measured: generations 1, 1, 2; 24 members each, each of one view
    assert reference["n_generations"] == 2
    assert len(set(reference["generation"].tolist())) >= 2
    assert len(reference["members"]) >= 3
    for m in reference["members"]:
        assert np.bincount(truth[m]).max() / len(m) >= 0.9


@pytest.mark.slow
def test_killed_mid_generation_and_resumed_equals_uninterrupted(work, reference):
    folder, data = work[:2]
    target = min(2, max(reference["n_generations"], 1))   # 2 when the run has >= 2
    ck = folder / "ck_kill"
    cfg = {"data": str(data), "params": PARAMS, "out": str(folder / "killed"), "ckpt": str(ck)}
    proc = subprocess.Popen(job_command(folder, cfg), env=job_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = None
    t0 = time.monotonic()
    try:
        while proc.poll() is None and time.monotonic() - t0 < 240:
            info = ckpt.read_info(ck)
            if info and info["generation"] >= target and info["stage"] >= 1:
                os.kill(proc.pid, signal.SIGKILL)       # a real kill -9 mid-generation
                seen = info
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None and seen is None:
            proc.kill()
        proc.wait(timeout=60)
    assert seen is not None, "no mid-generation checkpoint appeared before the run ended"
    assert proc.returncode == -signal.SIGKILL
    info = ckpt.read_info(ck)
    assert not info["finished"] and info["generation"] >= target
    cfg.update(resume=True, out=str(folder / "resumed"))
    subprocess.run(job_command(folder, cfg), check=True, env=job_env(), timeout=300,
                   capture_output=True)
    res = load_result(cfg["out"])
    assert_same_classes(res, reference)
    assert any(line.startswith("resumed from the checkpoint") for line in res["log"])
    assert [x for x in res["log"] if not x.startswith("resumed")] == reference["log"]
    assert ckpt.read_info(ck)["finished"]


@pytest.mark.slow
def test_failure_at_a_generation_boundary_then_resume(work, reference):
    folder, data = work[:2]
    ck = folder / "ck_fail"
    # checkpoints: start, g1 stage 1, g1 stage 2, end of g1 (4th), g2 stage 1, ...
    cfg = {"data": str(data), "params": PARAMS, "out": str(folder / "failed"),
           "ckpt": str(ck), "fail_after": 4}
    out = subprocess.run(job_command(folder, cfg), env=job_env(), timeout=300,
                         capture_output=True, text=True)
    assert out.returncode != 0 and "injected failure" in out.stderr
    info = ckpt.read_info(ck)
    assert (info["generations_done"], info["stage"], info["finished"]) == (1, 0, False)
    assert info["accepted_classes"] == 2

    imgs = np.load(data)
    # other parameters or another stack: one clear line, nothing computed
    with pytest.raises(UsageError, match=r"parameters differ.*thld_err 0.7 -> 0.6") as e:
        run_isac(imgs, IsacParams(**{**PARAMS, "thld_err": 0.6}), checkpoint_dir=ck,
                 resume=True)
    assert "\n" not in str(e.value)
    with pytest.raises(UsageError, match="input stack") as e:
        run_isac(imgs[::-1].copy(), IsacParams(**PARAMS), checkpoint_dir=ck, resume=True)
    assert "\n" not in str(e.value)

    cfg.update(resume=True, out=str(folder / "resumed2"), fail_after=0)
    subprocess.run(job_command(folder, cfg), check=True, env=job_env(), timeout=300,
                   capture_output=True)
    res = load_result(cfg["out"])
    assert_same_classes(res, reference)
    # a finished checkpoint: resuming returns the result without computing
    t = time.monotonic()
    again = run_isac(imgs, IsacParams(**PARAMS), checkpoint_dir=ck, resume=True)
    assert time.monotonic() - t < 5
    assert [m.tolist() for m in again.members] == [m.tolist() for m in reference["members"]]
    np.testing.assert_array_equal(again.all_parameters, res["all_parameters"])


def test_checkpoint_round_trip_and_bad_files(tmp_path):
    rng = np.random.default_rng(3)
    rng.random(5)
    ali = Alignment(rng.uniform(0, 360, 6), rng.normal(size=(6, 2)), rng.random(6) > 0.5)
    classes = [SacClass(np.array([0, 2]), rng.random((12, 12)).astype(np.float32), 0.25, 3),
               SacClass(np.array([], np.int64), np.zeros((12, 12), np.float32), np.inf, 0)]
    sac = ckpt.SacState(K=2, stage=3, refs=rng.random((2, 12, 12)).astype(np.float32), ali=ali,
                        labels=np.array([0, 1, 0, 1, 0, 1]), classes=classes,
                        prev_sets=[np.array([0]), np.array([1, 3])], prev_agree=0.4)
    params = np.zeros((9, 4))
    params[:, 3] = -1
    state = ckpt.RunState(generation=1, pool=np.array([0, 1, 2, 4, 5, 6]),
                          all_parameters=params, averages=[np.ones((12, 12), np.float32)],
                          members=[np.array([3, 7, 8])], generations=[1], errors=[0.1],
                          log=["a", "b"], sac=sac)
    p = IsacParams(img_per_grp=3, minimum_grp_size=1, target_radius=3, target_nx=12)
    stack = rng.normal(size=(9, 12, 12)).astype(np.float32)
    fp = ckpt.stack_fingerprint(stack)
    ckpt.save_checkpoint(tmp_path, state, params=p, fingerprint=fp, rng=rng)
    got, meta = ckpt.load_checkpoint(tmp_path)
    other = np.random.default_rng(0)
    other.bit_generator.state = meta["rng"]
    assert other.random() == rng.random()
    s = got.sac
    assert (s.K, s.stage, s.prev_agree, s.done) == (2, 3, 0.4, False)
    np.testing.assert_array_equal(s.refs, sac.refs)
    np.testing.assert_array_equal(s.ali.shift, ali.shift)
    np.testing.assert_array_equal(s.ali.mirror, ali.mirror)
    assert [c.members.tolist() for c in s.classes] == [[0, 2], []]
    assert s.classes[1].group_error == np.inf
    assert [x.tolist() for x in s.prev_sets] == [[0], [1, 3]]
    assert got.members[0].tolist() == [3, 7, 8] and got.log == ["a", "b"]
    assert ckpt.read_info(tmp_path)["stage"] == 3
    assert ckpt.check_compatible(meta, p, fp, tmp_path) is None      # the same
    near = ckpt.stack_fingerprint(stack * np.float32(1 + 1e-6))      # rounding only
    assert "rounding only" in ckpt.check_compatible(meta, p, near, tmp_path)
    with pytest.raises(UsageError, match="input stack"):
        ckpt.check_compatible(meta, p, ckpt.stack_fingerprint(stack[::-1]), tmp_path)
    with pytest.raises(UsageError, match="img_per_grp 3 -> 4"):
        ckpt.check_compatible(meta, p.replace(img_per_grp=4), fp, tmp_path)

    (tmp_path / ckpt.CHECKPOINT_NAME).write_bytes(b"not a zip file")
    with pytest.raises(DataFormatError, match="isac_checkpoint.npz: not a readable"):
        ckpt.load_checkpoint(tmp_path)
    assert ckpt.load_checkpoint(tmp_path / "empty") is None
    with pytest.raises(UsageError, match="resume needs checkpoint_dir"):
        run_isac(np.zeros((9, 12, 12), np.float32), p, resume=True)
