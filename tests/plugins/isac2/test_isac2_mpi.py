"""ISAC2 under ``mpiexec -n 2`` gives the serial classes, also when resuming a serial run.

The job script, data and environment (scipy.fft, one BLAS/FFT thread: bit-for-bit equal
processes) are those of ``test_isac2_restart.py``.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emsh_isac2 import checkpoint as ckpt

_spec = importlib.util.spec_from_file_location(
    "isac2_restart_jobs", Path(__file__).with_name("test_isac2_restart.py"))
R = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(R)

MPIEXEC = Path(sys.executable).parent / "mpiexec"


def _run(cmd, **kw):
    out = subprocess.run(cmd, env=R.job_env(), timeout=300, capture_output=True, text=True, **kw)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def _assert_identical(a: dict, b: dict) -> None:
    """Same classes; parameters and averages equal to float32 rounding.

    Not bit for bit: the restricted alignment batches images by rank, and BLAS picks
    its kernels by matrix size, so the last bits of a correlation can differ.
    """
    assert [m.tolist() for m in a["members"]] == [m.tolist() for m in b["members"]]
    assert np.array_equal(a["generation"], b["generation"])
    pa, pb = np.asarray(a["all_parameters"]), np.asarray(b["all_parameters"])
    assert np.array_equal(pa[:, 3], pb[:, 3])
    dang = np.abs((pa[:, 0] - pb[:, 0] + 180) % 360 - 180)
    print("max angle/shift difference", dang.max(), np.abs(pa[:, 1:3] - pb[:, 1:3]).max())
    assert dang.max() < 1e-2 and np.abs(pa[:, 1:3] - pb[:, 1:3]).max() < 1e-2
    va, vb = np.asarray(a["averages"]), np.asarray(b["averages"])
    assert np.abs(va - vb).max() <= 1e-3 * np.abs(vb).max()


@pytest.mark.slow
@pytest.mark.mpi
def test_two_ranks_equal_serial_and_resume_a_serial_checkpoint(tmp_path):
    data, truth, ref = R.data_and_reference(tmp_path)
    base = {"data": str(data), "params": R.PARAMS}
    assert len(ref["members"]) >= 3 and ref["n_generations"] >= 2
    for m in ref["members"]:
        assert np.bincount(truth[m]).max() / len(m) >= 0.9

    # the whole run on 2 ranks, with checkpoints (written by rank 0)
    mpi = str(tmp_path / "mpi")
    ck = tmp_path / "ck_mpi"
    _run([str(MPIEXEC), "-n", "2"] + R.job_command(tmp_path, {**base, "out": mpi,
                                                               "ckpt": str(ck)}))
    r0, r1 = R.load_result(mpi, 0), R.load_result(mpi, 1)
    _assert_identical(r0, r1)
    _assert_identical(r0, ref)
    assert r0["log"] == ref["log"]
    assert ckpt.read_info(ck)["finished"]
    assert sorted(p.name for p in ck.iterdir()) == sorted([ckpt.CHECKPOINT_NAME, ckpt.INFO_NAME])

    # a serial run stopped in generation 2 and resumed on 2 ranks
    ck2 = tmp_path / "ck_serial"
    failed = subprocess.run(R.job_command(tmp_path, {**base, "out": str(tmp_path / "x"),
                                                     "ckpt": str(ck2), "fail_after": 5}),
                            env=R.job_env(), timeout=300, capture_output=True, text=True)
    assert failed.returncode != 0 and "injected failure" in failed.stderr
    assert (ckpt.read_info(ck2)["generation"], ckpt.read_info(ck2)["stage"]) == (2, 1)
    # other parameters: both ranks stop with rank 0's one-line error (no hang)
    bad = subprocess.run([str(MPIEXEC), "-n", "2"] + R.job_command(
        tmp_path, {**base, "params": {**R.PARAMS, "stab_ali": 4}, "out": str(tmp_path / "y"),
                   "ckpt": str(ck2), "resume": True}),
        env=R.job_env(), timeout=120, capture_output=True, text=True)
    assert bad.returncode != 0
    assert bad.stderr.count("UsageError: ISAC2 resume: parameters differ") == 2
    resumed = str(tmp_path / "resumed")
    _run([str(MPIEXEC), "-n", "2"] + R.job_command(
        tmp_path, {**base, "out": resumed, "ckpt": str(ck2), "resume": True}))
    _assert_identical(R.load_result(resumed, 0), ref)
    _assert_identical(R.load_result(resumed, 1), ref)
