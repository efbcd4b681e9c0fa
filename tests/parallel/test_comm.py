import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from emsh.parallel import SerialComm, split_range

MPIEXEC = Path(sys.executable).parent / "mpiexec"


def test_split_range_covers_everything_once():
    for n in (0, 1, 7, 100):
        for size in (1, 2, 3, 5):
            parts = [split_range(n, size, r) for r in range(size)]
            idx = np.concatenate([np.arange(n)[s] for s in parts])
            assert np.array_equal(idx, np.arange(n))
            lens = [s.stop - s.start for s in parts]
            assert max(lens) - min(lens) <= 1


def test_serial_comm_is_identity():
    c = SerialComm()
    a = np.arange(4.0)
    assert c.rank == 0 and c.size == 1
    assert np.array_equal(c.allreduce(a), a)
    assert c.bcast({"x": 1}) == {"x": 1}
    assert c.my_slice(10) == slice(0, 10)


@pytest.mark.mpi
def test_two_ranks_sum_and_gather(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent("""
        import numpy as np
        from emsh.parallel import get_comm
        c = get_comm()
        s = c.my_slice(10)
        part = np.arange(10.0)[s] ** 2
        total = c.allreduce(np.array([part.sum()]))[0]
        rows = c.gather_rows(part)
        if c.rank == 0:
            print(c.size, total, rows.tolist() == (np.arange(10.0) ** 2).tolist())
    """))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    out = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, str(script)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "285.0", "True"]
