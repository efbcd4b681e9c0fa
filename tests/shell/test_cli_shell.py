"""`emsh` as a user starts it: piped input, a real terminal (pexpect), `emsh plugins`."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pexpect

import emsh.io as eio

REPO = Path(__file__).resolve().parents[2]

GOOD = textwrap.dedent('''
    from emsh.spec import Field, Plugin, Prompt

    PLUGIN = Plugin("good", version="2.0", summary="a plugin that loads")

    @PLUGIN.operation("GOOD SUM", "sum of two numbers", outputs=("total",), prompts=(
        Prompt("ab", "A, B", fields=(Field("a"), Field("b", default=1.0))),))
    def good_sum(ctx, a, b):
        return a + b
''')


def env_for(folder: Path, plugins: str = "") -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), EMSH_PLUGIN_PATH=plugins,
                XDG_DATA_HOME=str(folder / "data"), EMSH_HISTORY=str(folder / "history"))


def emsh(*args, cwd: Path, stdin: str = "", plugins: str = ""):
    return subprocess.run([sys.executable, "-m", "emsh", *args], input=stdin, cwd=cwd,
                          capture_output=True, text=True, env=env_for(cwd, plugins), timeout=60)


def test_piped_lines_run_like_a_batch_run(tmp_path):
    eio.write(tmp_path / "img.dat", np.arange(16, dtype=np.float32).reshape(4, 4))
    lines = "[a] = 6*7\n[a]\nDO [i]=1,2\n  [a] = [a]+[i]\nENDDO\nFS [m]\nimg\n[m]+[a]\nFS ?\n"
    done = emsh("--data-ext", "dat", cwd=tmp_path, stdin=lines)
    assert (done.returncode, done.stderr) == (0, "")
    out = done.stdout.splitlines()
    assert out[:2] == [" [a] = 42", "  FMIN:           0  FMAX:          15  AV:          7.5  " +
                       "SIG:      4.76095"]
    assert out[2] == " [m]+[a] = 60"
    assert out[3] == "FS: Statistics of images: max, min, average, SD"
    log = (tmp_path / "results.spi.1").read_text()
    assert ": img.dat\n" in log  # --data-ext reached the shell's answers


def test_piped_input_stops_at_the_first_error(tmp_path):
    done = emsh(cwd=tmp_path, stdin="[a] = 1\nFS\nnofile\n[a]\n")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "nofile.spi" in done.stderr
    assert "[a] = 1" not in done.stdout
    done = emsh(cwd=tmp_path, stdin="DO [i]=1,2\n[b] = 1\n")
    assert done.returncode == 1 and "inside a DO or IF block" in done.stderr


def test_plugins_lists_versions_counts_and_every_problem(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "good.py").write_text(GOOD)
    (plugins / "broken.py").write_text("import numpy\nraise ImportError('needs libfoo')\n")
    done = emsh("plugins", cwd=tmp_path, plugins=str(plugins))
    assert done.returncode == 0
    rows = [line.split(None, 3) for line in done.stdout.splitlines()]
    assert rows[0] == ["plugin", "version", "ops", "summary"]
    by_name = {r[0]: r for r in rows[1:]}
    assert by_name["good"] == ["good", "2.0", "1", "a plugin that loads"]
    assert rows[1][0] == "builtin" and int(rows[1][2]) > 40
    assert "isac2" in by_name
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("emsh: warning: plugin file ") and "broken.py" in done.stderr
    assert "ImportError: needs libfoo" in done.stderr
    assert emsh("plugins", "--check", cwd=tmp_path, plugins=str(plugins)).returncode == 1
    # the shell starts all the same, warns once, and the good plugin works
    done = emsh(cwd=tmp_path, plugins=str(plugins), stdin="GOOD SUM [t]\n2.5\n[t]\n")
    assert done.returncode == 0 and done.stdout == " [t] = 3.5\n"
    assert "broken.py" in done.stderr and done.stderr.count("\n") == 1


def test_a_real_terminal_session(tmp_path):
    eio.write(tmp_path / "img.spi", np.arange(16, dtype=np.float32).reshape(4, 4))
    script = Path(sys.executable).parent / "emsh"
    cmd, args = (str(script), []) if script.exists() else (sys.executable, ["-m", "emsh"])
    env = env_for(tmp_path)
    env.update(TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", COLUMNS="100", LINES="30")
    child = pexpect.spawn(cmd, args, cwd=str(tmp_path), env=env, encoding="utf-8",
                          timeout=10, dimensions=(30, 100))
    try:
        child.expect_exact("emsh>")
        child.send("[a] = 6*7\r")
        child.expect_exact("emsh>")
        child.send("[a]\r")
        child.expect_exact("[a] = 42")
        child.expect_exact("emsh>")
        child.send("FS\r")
        child.expect_exact(".INPUT FILE NAME OR TEMPLATE (E.G. stk-file@*):")
        child.send("img\r")
        child.expect_exact("FMAX:          15")
        child.expect_exact("emsh>")
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert "+[a] = 6*7\n" in (tmp_path / "history").read_text()
