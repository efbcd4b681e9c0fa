"""``emsh run`` and ``emsh check`` as a user runs them: a real subprocess, real files."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PLUGIN = textwrap.dedent('''
    import numpy as np
    from emsh.errors import OperationError
    from emsh.spec import Field, Plugin, Prompt

    PLUGIN = Plugin("clitest")

    @PLUGIN.operation("T SUM", "sum of 1..n, split over the ranks", outputs=("total",), mpi="all",
                      prompts=(Prompt("n", "N", fields=(Field("n", "int"),)),))
    def t_sum(ctx, n):
        part = float(np.arange(1, n + 1)[ctx.comm.my_slice(n)].sum())
        return ctx.comm.allreduce_scalar(part)

    @PLUGIN.operation("T WRITE", "append a value to a text file", prompts=(
        Prompt("path", "OUTPUT", kind="file_out"),
        Prompt("value", "VALUE", fields=(Field("value", "float"),))))
    def t_write(ctx, path, value):
        with open(path, "a") as fh:
            fh.write(f"{value:g}\\n")
        ctx.log(f"  wrote {value:g} to {path}")

    @PLUGIN.operation("T SETREG", "sets [made] through the session (rank 0 only)")
    def t_setreg(ctx):
        ctx.session.set_register("made", 7)

    @PLUGIN.operation("T RANKFAIL", "fails on rank 1 only; rank 0 waits for it", mpi="all")
    def t_rankfail(ctx):
        if ctx.comm.rank == 1:
            raise OperationError("rank 1 cannot go on", code="T RANKFAIL")
        ctx.comm.barrier()

    @PLUGIN.operation("T ROOTFAIL", "fails on rank 0", prompts=(
        Prompt("path", "INPUT", kind="file"),))
    def t_rootfail(ctx, path):
        raise OperationError(f"{path}: not a good file", code="T ROOTFAIL")
''')


def emsh(*args, cwd, env_extra=None, mpi=0, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(REPO), EMSH_PLUGIN_PATH=str(cwd / "plugins"),
               **(env_extra or {}))
    cmd = [sys.executable, "-m", "emsh", *args]
    if mpi:
        cmd = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(mpi)] + cmd
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)


def setup(tmp_path, text, name="job.spi"):
    (tmp_path / "plugins").mkdir(exist_ok=True)
    (tmp_path / "plugins" / "clitest.py").write_text(PLUGIN)
    (tmp_path / name).write_text(textwrap.dedent(text))
    return tmp_path


JOB = """
    ([scale])
    [n] = 10
    T SUM [t]
    [n]
    [t]*[scale]
    T SETREG
    IF ([made] == 7) THEN
      DO [i]=1,3
        T WRITE
        out_{**[i]}
        [i]*[t]
      ENDDO
    ENDIF
    IQ FI [e]
    out_02
    [e]
    [word]*2
    [word]
    MY FL
"""


def test_run_with_presets_and_results_file(tmp_path):
    work = setup(tmp_path, JOB)
    done = emsh("run", "job.spi", "--set", "scale=2", "--set", "word=3+4", "--data-ext", "txt",
                "--results", "my.log", cwd=work)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        " [t]*[scale] = 110", "  wrote 55 to out_01.txt", "  wrote 110 to out_02.txt",
        "  wrote 165 to out_03.txt", "  FILE EXISTS: out_02.txt", " [e] = 1", " [word]*2 = 14",
        " [word] = 3+4"]
    assert (work / "out_03.txt").read_text() == "165\n"
    log = (work / "my.log").read_text()
    assert " .OPERATION: T SUM [t]\n .N: [n]\n" in log
    assert " .OUTPUT: out_01.txt\n .VALUE: [i]*[t]\n" in log
    assert not list(work.glob("results.*"))


def test_run_failure_is_located_and_exits_1(tmp_path):
    work = setup(tmp_path, "[a] = 1\n@sub([a])\n")
    (work / "sub.spi").write_text("([x])\nT ROOTFAIL\nin_{***[x]}\nRE\n")
    done = emsh("run", "job.spi", cwd=work)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "emsh: sub.spi:2:1: T ROOTFAIL: in_001.spi: not a good file",
        "    T ROOTFAIL", "    ^", "  called from job.spi:2"]
    assert (work / "results.spi.1").is_file()


def test_run_usage_errors(tmp_path):
    work = setup(tmp_path, "([k])\n[a] = [k]\n")
    done = emsh("run", "job.spi", cwd=work)
    assert done.returncode == 1 and "give k with --set NAME=VALUE" in done.stderr
    done = emsh("run", "nope.spi", cwd=work)
    assert done.returncode == 1 and "nope.spi: no such procedure file" in done.stderr
    done = emsh("run", "job.spi", "--set", "k", cwd=work)
    assert done.returncode == 1 and "expected NAME=VALUE" in done.stderr


def test_check_reports_every_problem(tmp_path):
    work = setup(tmp_path, """
        [a] = 1
        XX 3
        T SUM
        DO [i]=1,3
          T WRITE
          out
        ENDDO
        T ROOTFAIL
        missing_input
        GOTO LB5
    """)
    done = emsh("check", "job.spi", cwd=work)
    assert done.returncode == 1
    out = done.stdout
    firsts = [line for line in out.splitlines() if line.startswith("job.spi:")]
    assert [line.split(": error: ")[0] for line in firsts[:-1]] == [
        "job.spi:3:1", "job.spi:5:4", "job.spi:8:1", "job.spi:10:1", "job.spi:11:1"]
    assert "unknown operation 'XX'" in firsts[0]
    # T SUM takes the DO line as its answer, as SPIDER would, and T WRITE the ENDDO line
    assert "T SUM, N: 3 values given, at most 1 expected (n)" in firsts[1]
    assert "T WRITE, VALUE: unexpected 'E'" in firsts[2]
    assert "input file missing_input.spi does not exist" in firsts[3]
    assert "no label LB5 after this line" in firsts[4]
    assert firsts[-1] == "job.spi: 5 errors, 0 warnings"
    clean = setup(tmp_path, JOB, name="good.spi")
    done = emsh("check", "good.spi", "--set", "scale=1", "--set", "word=1", cwd=clean)
    assert done.returncode == 0, done.stdout   # warnings only
    assert done.stdout.splitlines()[0] == \
        "good.spi:8:5: warning: [made] is read but never set in this procedure"
    assert done.stdout.splitlines()[-1] == "good.spi: 0 errors, 1 warning"
    (clean / "fine.spi").write_text("[a] = 1\nIQ FI [e]\ngood\n")
    done = emsh("check", "fine.spi", cwd=clean)
    assert (done.returncode, done.stdout) == (0, "fine.spi: no problems found\n")


def test_info_and_convert_still_there(tmp_path):
    done = emsh("--help", cwd=setup(tmp_path, ""))
    assert done.returncode == 0
    for word in ("info", "convert", "run", "check"):
        assert word in done.stdout
