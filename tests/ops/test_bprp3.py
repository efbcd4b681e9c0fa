"""BP RP 3 and BP RP 3L as operations: procedures answered as SPIDER's recon.spi does.

Ground truth: exact projections of analytic Gaussian blobs (n = 32) at the 84 directions
of VO EA 15 degrees (see tests/kernels/test_iterative.py for why FSC >= 0.97 up to 0.25
cycles/pixel is the bar for the full set). A half has 42 images, so its angular sampling
is twice as coarse and the bar is lower: FSC(half, phantom) >= 0.9 up to 0.2 cycles/pixel,
and FSC(half 1, half 2) >= 0.85 there (each half carries its own error).
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import emsh.io as eio
from emsh.errors import EmshError
from emsh.geom.orientations import voea
from emsh.io.docfile import write_doc
from emsh.kernels.fsc import fsc
from emsh.kernels.iterative import sphere_mask
from emsh.kernels.project import rotation_matrices
from emsh.parallel import SerialComm
from emsh.session import Session
from emsh.sim.phantoms import analytic_gaussians, analytic_projections

N, RADIUS = 32, 14
LAM = 0.9 / (84 * RADIUS)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """prj.dat (84 projections, a stack), ang.dat (psi, theta, phi), and the phantom."""
    where = tmp_path_factory.mktemp("bprp3")
    blobs, vol = analytic_gaussians(N, np.random.default_rng(3), n_blobs=6)
    ang = voea(15.0, (0, 90), (0, 359.9))
    prj = analytic_projections(blobs, N, rotation_matrices(ang)).astype(np.float32)
    eio.write(where / "prj.dat", prj, stack=True)
    write_doc(where / "ang.dat", np.arange(1, len(ang) + 1), ang, data_ext="dat")
    return where, vol * sphere_mask(N, RADIUS), ang


def _setup(tmp_path, data):
    where = data[0]
    for name in ("prj.dat", "ang.dat"):
        (tmp_path / name).write_bytes((where / name).read_bytes())


def spi(tmp_path, monkeypatch, text: str) -> Session:
    monkeypatch.chdir(tmp_path)
    s = Session(comm=SerialComm(), data_ext="dat", results=False, out=io.StringIO())
    s.run_text(textwrap.dedent(text).strip() + "\n")
    return s


def bprp3(full="*", seed=12345, iters=20, mode=0, bounds=".5, .5", smooth=".5",
          tag="", lam=LAM, limit=0.0) -> str:
    return f"""
        MD
        SET SEED
        {seed}
        BP RP 3 [niter{tag}]
        prj@**
        1-84
        {RADIUS}
        ang
        *
        {full}
        h1{tag}
        h2{tag}
        {lam}, {limit}
        {iters}, {mode}
        {bounds}
        {smooth}
        """


@pytest.mark.slow
def test_recon_spi_answers_give_halves_close_to_the_phantom(tmp_path, monkeypatch, data):
    _setup(tmp_path, data)
    s = spi(tmp_path, monkeypatch, bprp3(full="full"))
    phantom = data[1]
    full, h1, h2 = (eio.read(tmp_path / f"{n}.dat") for n in ("full", "h1", "h2"))
    assert full.shape == h1.shape == h2.shape == (N, N, N)
    f, c = fsc(full, phantom)
    assert np.all(c[f <= 0.25] >= 0.97), c
    for h in (h1, h2):
        f, c = fsc(h, phantom)
        assert np.all(c[f <= 0.2] >= 0.9), c
    f, c = fsc(h1, h2)                         # two independent errors: a lower bar
    assert np.all(c[f <= 0.2] >= 0.85), c
    assert s.top_ns["niter"] == 20


def test_halves_are_the_seeded_random_split(tmp_path, monkeypatch, data, run):
    _setup(tmp_path, data)
    monkeypatch.chdir(tmp_path)
    args = dict(src="prj@**", numbers=list(range(1, 85)), radius=RADIUS, angles="ang",
                sym=None, lam=LAM, limit=0.0, max_iter=3, mode=0, vmin=0.5, vmax=0.5,
                smooth=0.5, fbs=0)
    n = run("BP RP 3", dst=None, dst1="a1.dat", dst2="a2.dat", **args)  # ctx.rng: seed 0
    assert n == 3
    pick = np.sort(np.random.default_rng(0).permutation(84)[:42]) + 1
    rest = sorted(set(range(1, 85)) - set(pick.tolist()))
    run("BP RP 3L", list1=pick.tolist(), list2=rest, dst="all.dat", dst1="b1.dat",
        dst2="b2.dat", **args)
    for a, b in (("a1", "b1"), ("a2", "b2")):
        np.testing.assert_array_equal(eio.read(f"{a}.dat"), eio.read(f"{b}.dat"))
    run("BP RP 3L", list1=rest, list2=pick.tolist(), dst=None, dst1="c1.dat",
        dst2="c2.dat", **args)
    np.testing.assert_array_equal(eio.read("c1.dat"), eio.read("a2.dat"))
    assert np.abs(eio.read("a1.dat") - eio.read("a2.dat")).max() > 1e-3
    assert Path("all.dat").exists()


def test_md_set_seed_makes_the_split_repeatable(tmp_path, monkeypatch, data):
    _setup(tmp_path, data)
    spi(tmp_path, monkeypatch, bprp3(seed=5, iters=2, tag="1") + bprp3(seed=5, iters=2, tag="2")
        + bprp3(seed=6, iters=2, tag="3"))
    r = {n: eio.read(tmp_path / f"{n}.dat") for n in ("h11", "h12", "h13", "h21", "h22")}
    np.testing.assert_array_equal(r["h11"], r["h12"])
    np.testing.assert_array_equal(r["h21"], r["h22"])
    assert np.abs(r["h13"] - r["h11"]).max() > 1e-3


@pytest.mark.slow
def test_constraints_and_the_iteration_register(tmp_path, monkeypatch, data):
    _setup(tmp_path, data)
    prj = eio.read(tmp_path / "prj.dat")
    s = spi(tmp_path, monkeypatch, bprp3(full="full", iters=5, mode=7,
                                         bounds=f"0.0, {0.5 * float(prj.max())}"))
    free = spi(tmp_path, monkeypatch, bprp3(full="free", iters=5))
    assert s.top_ns["niter"] == 5 and free.top_ns["niter"] == 5
    log = s.out.getvalue()
    ceiling = [float(x) for x in re.findall(r"MAX CONSTRAINT ACTIVATED, VALUE IN 3D:\s*(\S+)",
                                            log)]
    assert len(ceiling) == 3                       # full volume and both halves
    v = eio.read(tmp_path / "full.dat")
    assert v.max() <= ceiling[0] * (1 + 1e-3)      # the log prints 4 digits
    assert eio.read(tmp_path / "free.dat").max() > v.max() + 0.1
    assert "ITERATION:     5   SQUARED CORRECTION OF STRUCTURE:" in log


def test_too_large_lambda_stops_when_the_correction_grows(tmp_path, monkeypatch, data):
    _setup(tmp_path, data)
    s = spi(tmp_path, monkeypatch, bprp3(full="full", iters=20, lam=30 * LAM))
    assert s.top_ns["niter"] < 20


@pytest.mark.parametrize("change, match", [
    (dict(mode=4), "mode must be one of"),
    (dict(numbers=[1]), "too few"),
    (dict(angles="short"), "key 84"),
    (dict(src="odd@**"), "square images"),
    (dict(radius=40), "does not fit"),
    (dict(mode=1, smooth=0.9999, lam=1e-2), "smoothing constant"),
])
def test_bad_answers_give_one_line_errors(tmp_path, monkeypatch, data, run, change, match):
    _setup(tmp_path, data)
    monkeypatch.chdir(tmp_path)
    write_doc(tmp_path / "short.dat", np.arange(1, 84), np.zeros((83, 3)), data_ext="dat")
    eio.write(tmp_path / "odd.dat", np.zeros((3, 32, 30), np.float32), stack=True)
    args = dict(src="prj@**", numbers=list(range(1, 85)), radius=RADIUS, angles="ang",
                sym=None, dst=None, dst1="a1", dst2="a2", lam=LAM, limit=0.0, max_iter=2,
                mode=0, vmin=0.0, vmax=1.0, smooth=0.0, fbs=0)
    if change.get("src") == "odd@**":
        change = dict(change, numbers=[1, 2, 3])
    args.update(change)
    with pytest.raises(EmshError, match=match) as err:
        run("BP RP 3", **args)
    assert "\n" not in str(err.value)


@pytest.mark.mpi
def test_two_ranks_give_the_serial_volumes(tmp_path, data):
    job = textwrap.dedent(bprp3(full="full", iters=4)).strip() + "\n"
    runs = {}
    for label, mpi in (("serial", False), ("mpi", True)):
        work = tmp_path / label
        work.mkdir()
        _setup(work, data)
        (work / "job.spi").write_text(job)
        bin_dir = Path(sys.executable).parent
        exe = [str(bin_dir / "emsh")] if (bin_dir / "emsh").exists() else \
            [sys.executable, "-m", "emsh"]
        cmd = ([str(bin_dir / "mpiexec"), "-n", "2"] if mpi else []) + exe + \
            ["run", "job.spi", "--data-ext", "dat"]
        done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        runs[label] = work
    for name in ("full", "h1", "h2"):
        a, b = (eio.read(runs[k] / f"{name}.dat") for k in ("serial", "mpi"))
        assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max(), name
    assert sorted(p.name for p in runs["mpi"].iterdir()) == \
        sorted(p.name for p in runs["serial"].iterdir())
