"""docs/writing-plugins.md and its worked example (examples/plugins/emsh_example).

The example is loaded the way a user drops a plugin in: through ``EMSH_PLUGIN_PATH``.
Its operations run from a procedure with ``emsh run`` (serially and under mpiexec) and
the results are checked against values known in closed form. The guide's code blocks
must be the example's files, byte for byte.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import emsh.io as eio
from emsh.help import render_help
from emsh.io.docfile import read_doc
from emsh.registry import Registry

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "plugins" / "emsh_example"
GUIDE = REPO / "docs" / "writing-plugins.md"
FENCE = re.compile(r'^```(\w+) (file|output)=("[^"\n]*"|\S+)\n(.*?)^```$', re.M | re.S)


def guide_blocks(kind: str) -> dict[str, str]:
    """``{file path or command: block text}`` of the guide's tagged code blocks."""
    return {m.group(3).strip('"'): m.group(4) for m in FENCE.finditer(GUIDE.read_text())
            if m.group(2) == kind}


def gaussian(n: int, sigma: float, step: float = 1.0) -> np.ndarray:
    y, x = (np.mgrid[:n, :n] - n // 2) * step
    return np.exp(-(x**2 + y**2) / (2 * sigma**2))


def emsh(*args, cwd: Path, mpi: int = 0):
    env = dict(os.environ, PYTHONPATH=str(REPO), EMSH_PLUGIN_PATH=str(EXAMPLE),
               EMSH_FFT="scipy")  # no per-shape backend timing: these tests are about plugins
    cmd = [sys.executable, "-m", "emsh", *args]
    if mpi:
        cmd = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(mpi)] + cmd
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_guides_code_blocks_are_the_example_files():
    shown = guide_blocks("file")
    on_disk = {str(p.relative_to(REPO)) for p in EXAMPLE.rglob("*")
               if p.suffix in (".py", ".toml") and "__pycache__" not in p.parts}
    assert set(shown) == on_disk  # every file of the example is in the guide, and no other
    for path, text in shown.items():
        assert text == (REPO / path).read_text(), f"{path} differs from its block in the guide"


def test_the_guides_help_block_is_what_emsh_prints():
    registry = Registry.discover(plugin_path=str(EXAMPLE))
    assert registry.problems == []
    block = guide_blocks("output")["emsh help BIN"]
    assert block == render_help(registry.get("BIN")) + "\n"


PROC = """\
BIN [nx]
blob
small
2
BIN apix=2 [ns]
stk@
sstk@
3
PROF [n],[edge]
small
prof
0
[nx]
[n]
"""


def test_the_example_runs_from_emsh_plugin_path(tmp_path):
    eio.write(tmp_path / "blob.dat", gaussian(64, 4.0).astype(np.float32), apix=1.5)
    sigmas = (3.0, 4.0, 5.0, 6.0, 7.0)
    eio.write(tmp_path / "stk.dat", np.stack([gaussian(48, s) for s in sigmas])
              .astype(np.float32), stack=True)
    (tmp_path / "proc.spi").write_text(PROC)
    done = emsh("run", "proc.spi", "--data-ext", "dat", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert " [nx] = 32\n [n] = 17\n" in done.stdout
    # a band-limited Gaussian, binned by Fourier cropping, is the Gaussian on the coarse grid
    small = eio.read(tmp_path / "small.dat")
    assert np.abs(small - gaussian(32, 4.0, step=2.0)).max() < 1e-4
    assert eio.info(tmp_path / "small.dat").apix == pytest.approx(3.0)
    stack = eio.read(tmp_path / "sstk.dat@")
    assert stack.shape == (5, 16, 16)
    for member, sigma in zip(stack, sigmas):
        assert np.abs(member - gaussian(16, sigma, step=3.0)).max() < 2e-3
    assert eio.info(tmp_path / "sstk.dat").apix == pytest.approx(6.0)  # the apix= option
    # the profile doc against an independent rotational average
    doc = read_doc(tmp_path / "prof.dat")
    radius = np.rint(np.hypot(*(np.mgrid[:32, :32] - 16))).astype(int)
    expected = [small[radius == r].mean() for r in range(17)]
    assert np.array_equal(doc.keys, np.arange(1, 18))
    assert np.array_equal(doc.values[:, 0], np.arange(17))
    assert np.allclose(doc.values[:, 1], expected, rtol=1e-5, atol=1e-6)
    listing = emsh("plugins", cwd=tmp_path).stdout
    assert re.search(r"^example +0\.1\.0 +2  Fourier binning", listing, re.M)


@pytest.mark.mpi
def test_bin_under_mpiexec_gives_the_serial_images(tmp_path):
    rng = np.random.default_rng(7)
    for name in ("serial", "mpi"):
        (tmp_path / name).mkdir()
        eio.write(tmp_path / name / "stk.dat", rng.normal(size=(5, 40, 40)).astype(np.float32)
                  if name == "serial" else eio.read(tmp_path / "serial" / "stk.dat@"),
                  stack=True)
        (tmp_path / name / "proc.spi").write_text("BIN [nx]\nstk@\nout@\n2.5\n[nx]\n")
    one = emsh("run", "proc.spi", "--data-ext", "dat", cwd=tmp_path / "serial")
    two = emsh("run", "proc.spi", "--data-ext", "dat", cwd=tmp_path / "mpi", mpi=2)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    assert one.stdout == two.stdout and " [nx] = 16\n" in one.stdout
    a = eio.read(tmp_path / "serial" / "out.dat@")
    b = eio.read(tmp_path / "mpi" / "out.dat@")
    assert a.shape == (5, 16, 16)
    assert np.allclose(a, b, rtol=0, atol=1e-6)  # batch sizes differ: float rounding only


def test_the_examples_own_tests_pass(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(EXAMPLE), str(REPO)]),
               EMSH_FFT="scipy")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--rootdir", str(EXAMPLE), "-c", str(EXAMPLE / "pyproject.toml"),
                           str(EXAMPLE / "tests")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout
