"""``mpiexec -n 2 emsh run``: the same output as a serial run, and a failure on one rank
ends every rank (never a hang)."""

import importlib.util
import time
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("cli_run",
                                               Path(__file__).with_name("test_cli_run.py"))
cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli)

pytestmark = pytest.mark.mpi


def _outputs(folder: Path) -> dict:
    files = {p.name: p.read_text() for p in folder.iterdir() if p.suffix == ".txt"}
    log = (folder / "results.spi.1").read_text().splitlines()[1:]  # line 1 has the time
    return {"files": files, "log": log}


def test_two_ranks_give_the_serial_output(tmp_path):
    (tmp_path / "serial").mkdir()
    (tmp_path / "mpi").mkdir()
    serial = cli.setup(tmp_path / "serial", cli.JOB)
    parallel = cli.setup(tmp_path / "mpi", cli.JOB)
    args = ("run", "job.spi", "--set", "scale=2", "--set", "word=3+4", "--data-ext", "txt")
    one = cli.emsh(*args, cwd=serial)
    two = cli.emsh(*args, cwd=parallel, mpi=2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert two.stdout == one.stdout            # rank 0 alone prints
    assert " [t]*[scale] = 110" in two.stdout  # the sum was split over the ranks
    assert _outputs(parallel) == _outputs(serial)  # T WRITE ran once (it appends)


def test_a_failure_on_rank_1_only_ends_both_ranks(tmp_path):
    work = cli.setup(tmp_path, "[a] = 1\nT RANKFAIL\n[b] = 2\n")
    start = time.monotonic()
    done = cli.emsh("run", "job.spi", cwd=work, mpi=2, timeout=60)
    assert time.monotonic() - start < 60
    assert done.returncode != 0
    assert "emsh: rank 1: job.spi:2:1: T RANKFAIL: rank 1 cannot go on" in done.stderr


def test_a_root_failure_is_reported_once_and_ends_the_job(tmp_path):
    work = cli.setup(tmp_path, "T ROOTFAIL\nthing\n[b] = 2\n")
    done = cli.emsh("run", "job.spi", cwd=work, mpi=2, timeout=60)
    assert done.returncode != 0
    assert done.stderr.count("T ROOTFAIL: thing.spi: not a good file") == 1
