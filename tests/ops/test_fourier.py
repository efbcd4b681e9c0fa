"""FT, FQ, FQ NP and the TF family as operations.

End to end: the real SPIDER program's golden procedures 09 (FQ), 10 (FT) and 13 (TF C3,
TF CT, TF COR) run by ``emsh run proc.spi --data-ext dat`` in a copy of the case without
its outputs (every input there is made by MO inside the procedure); every file SPIDER
wrote is compared with the MANIFEST tolerances (T3 = 2e-5 of max|spider| for FFT-based
results, complex value by complex value; T1 = 1e-5 for images; T5 for doc values; T0
for Fourier header words). Unit tests cover what the goldens do not: FQ NP, FT of a
stack, TF C / TF CT3 against TF CT / TF C3, TF CTS against a known answer, TF ED on a
simulated spectrum.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import emsh.io as eio
from emsh.io.docfile import read_doc
from emsh.parallel import SerialComm
from emsh.session import Session

T1, T3 = 1e-5, 2e-5


def emsh_run(work: Path, script: str = "proc.spi") -> subprocess.CompletedProcess:
    """``emsh run SCRIPT --data-ext dat`` in ``work`` (the venv's console script)."""
    exe = Path(sys.executable).with_name("emsh")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "emsh"]
    done = subprocess.run(cmd + ["run", script, "--data-ext", "dat"], cwd=work,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def run_case(golden: Path, case: str, tmp_path: Path, keep=()) -> tuple[Path, Path]:
    """Copy ``proc.spi`` (and the input files ``keep``) of a golden case and run it."""
    src = golden / case
    shutil.copy(src / "proc.spi", tmp_path / "proc.spi")
    for name in keep:
        shutil.copy(src / name, tmp_path / name)
    emsh_run(tmp_path)
    return src, tmp_path


def rel(ours, theirs) -> float:
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape and ours.dtype.kind == theirs.dtype.kind
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def same_doc(ours: Path, theirs: Path, scale=None) -> None:
    """Keys and counts T0; values T5 with scale ``S`` per column (max|column| by default)."""
    a, b = read_doc(ours), read_doc(theirs)
    assert a.keys.tolist() == b.keys.tolist() and a.nregs.tolist() == b.nregs.tolist()
    s = np.abs(b.values).max(axis=0) if scale is None else scale
    assert np.all(np.abs(a.values - b.values) <= 1e-5 * np.abs(b.values) + 1e-6 * s), \
        np.abs(a.values - b.values).max(axis=0)


def outputs(src: Path) -> list[str]:
    return sorted(p.name for p in src.glob("*.dat"))


def spi(tmp_path, monkeypatch, text: str) -> Session:
    """Run procedure text in-process in ``tmp_path`` (data extension dat)."""
    monkeypatch.chdir(tmp_path)
    s = Session(comm=SerialComm(), data_ext="dat", results=False, out=io.StringIO())
    s.run_text(textwrap.dedent(text).strip() + "\n")
    return s


# ----------------------------------------------------------------------------- goldens

def test_golden09_fq_every_filter_type(golden, tmp_path):
    src, work = run_case(golden, "09-fq-filters", tmp_path)
    assert outputs(src) == sorted(p.name for p in work.glob("*.dat"))
    for name in outputs(src):
        if name.startswith("fq") and name != "fq_doc.dat":
            assert rel(eio.read(work / name), eio.read(src / name)) <= T3, name
        elif name != "fq_doc.dat":        # the MO/AD inputs
            assert rel(eio.read(work / name), eio.read(src / name)) <= T1, name
    same_doc(work / "fq_doc.dat", src / "fq_doc.dat")


def test_golden10_ft_forward_and_inverse(golden, tmp_path):
    src, work = run_case(golden, "10-ft", tmp_path)
    for name in ("e", "o", "ns", "v", "vo"):
        ours, theirs = eio.read(work / f"ft_{name}.dat"), eio.read(src / f"ft_{name}.dat")
        assert np.iscomplexobj(ours) and rel(ours, theirs) <= T3, name
        mine = eio.info(work / f"ft_{name}.dat").extra
        spider = eio.info(src / f"ft_{name}.dat").extra
        for word in ("iform", "nx", "ny", "nz", "labrec", "labbyt", "lenbyt"):
            assert mine[word] == spider[word], (name, word)
        back = eio.read(work / f"ift_{name}.dat")
        assert rel(back, eio.read(work / f"in_{name}.dat")) <= T1       # round trip
        assert rel(back, eio.read(src / f"ift_{name}.dat")) <= T1, name
    a, b = read_doc(work / "ft_doc.dat"), read_doc(src / "ft_doc.dat")
    assert a.keys.tolist() == b.keys.tolist() and np.array_equal(a.values, b.values)


def test_golden13_tf_ctf_and_correction(golden, tmp_path):
    src, work = run_case(golden, "13-ctf", tmp_path)
    assert outputs(src) == sorted(p.name for p in work.glob("*.dat"))
    for name in ("ctf3_a", "ctf3_b", "ctf2_a", "ctf2_b", "obj2_ft", "obj3_ft"):
        ours = eio.read(work / f"{name}.dat")
        assert np.iscomplexobj(ours) and rel(ours, eio.read(src / f"{name}.dat")) <= T3, name
    for name in ("ctf2_a", "ctf2_b"):                 # phase flipping: exactly +-1
        assert set(np.unique(eio.read(work / f"{name}.dat").real)) == {-1.0, 1.0}
    for name in ("cor2_a", "cor2_b", "cor3_a", "cor3_b"):
        assert rel(eio.read(work / f"{name}.dat"), eio.read(src / f"{name}.dat")) <= T3, name
    for name in ("obj2", "obj3"):
        assert rel(eio.read(work / f"{name}.dat"), eio.read(src / f"{name}.dat")) <= T1
    same_doc(work / "ctf_doc.dat", src / "ctf_doc.dat")
    log = (work / "results.spi.1").read_text()
    assert "Lambda: 0.0197" in log and "Kev: 300.00 --> Wavelength lambda: 0.0197" in log


@pytest.mark.parametrize("case", ["09-fq-filters", "10-ft", "11-voea-pj3q", "12-bp-recon",
                                  "13-ctf"])
def test_golden_procedures_check_clean(golden, case, monkeypatch):
    """``emsh check``: every prompt of these operations is answered in SPIDER's order."""
    from emsh.lang.checker import check_file

    monkeypatch.chdir(golden / case)
    assert [str(p) for p in check_file("proc.spi", data_ext="dat")] == []


# ----------------------------------------------------------------------------- units

def test_fq_np_keeps_a_passband_sine_and_removes_a_stopband_one(tmp_path, monkeypatch):
    y, x = np.mgrid[0:48, 0:48]
    low = np.sin(2 * np.pi * 3 * x / 48).astype(np.float32)        # 0.0625 cycles/pixel
    high = np.cos(2 * np.pi * 15 * y / 48).astype(np.float32)      # 0.3125 cycles/pixel
    eio.write(tmp_path / "img.dat", low + high)
    spi(tmp_path, monkeypatch, """
        FQ NP
        img
        lp
        1
        0.2
        FQ NP
        img
        hp
        2
        9.6
        """)
    np.testing.assert_allclose(eio.read(tmp_path / "lp.dat"), low, atol=1e-5)
    np.testing.assert_allclose(eio.read(tmp_path / "hp.dat"), high, atol=1e-5)


def test_fq_filters_a_whole_stack_like_each_member(tmp_path, monkeypatch, rng):
    stk = rng.normal(size=(3, 32, 32)).astype(np.float32)
    eio.write(tmp_path / "stk.dat", stk, stack=True)
    eio.write(tmp_path / "one.dat", stk[1])
    spi(tmp_path, monkeypatch, """
        FQ
        stk@
        out@
        7
        0.1,0.3
        FQ
        one
        one_f
        7
        0.1,0.3
        """)
    out = eio.read(tmp_path / "out.dat")
    assert out.shape == (3, 32, 32)
    np.testing.assert_allclose(out[1], eio.read(tmp_path / "one_f.dat"), atol=1e-6)
    assert np.abs(out[0] - stk[0]).max() > 0.1            # it did filter


def test_ft_of_a_stack_round_trips(tmp_path, monkeypatch, rng):
    stk = rng.normal(size=(4, 20, 21)).astype(np.float32)
    eio.write(tmp_path / "stk.dat", stk, stack=True)
    spi(tmp_path, monkeypatch, """
        FT
        stk@
        fstk@
        FT
        fstk@
        back@
        """)
    F = eio.read(tmp_path / "fstk.dat")
    assert F.shape == (4, 20, 11) and eio.info(tmp_path / "fstk.dat").extra["iform"] == -11
    np.testing.assert_allclose(F, np.conj(np.fft.rfftn(stk, axes=(1, 2))), atol=1e-4)
    np.testing.assert_allclose(eio.read(tmp_path / "back.dat"), stk, atol=1e-5)


_TF = """
    {op}
    {out}
    2.0
    {defocus},300
    {size}
    0.2
    0,0
    {astig}
    {acr}
    -1
    """


def test_tf_c_and_tf_ct3_agree_with_their_flipping_and_straight_partners(tmp_path,
                                                                          monkeypatch):
    spi(tmp_path, monkeypatch, "".join(_TF.format(op=op, out=out, defocus=d, size=n, acr=a,
                                                  astig="500,30")
                                       for op, out, d, n, a in (
        ("TF C", "c2", 18000, "48,40", "0.1,0"), ("TF CT", "ct2", 18000, "48,40", "0.1"),
        ("TF C3", "c3", 12000, "24", "0.1,10000"), ("TF CT3", "ct3", 12000, "24", "0.1"))))
    c2, ct2 = eio.read(tmp_path / "c2.dat").real, eio.read(tmp_path / "ct2.dat").real
    assert c2.shape == (40, 25) and eio.info(tmp_path / "c2.dat").shape == (40, 48)
    assert np.abs(c2).max() > 0.5
    np.testing.assert_array_equal(ct2, np.where(-c2 >= 0, -1.0, 1.0))   # sign -1
    c3, ct3 = eio.read(tmp_path / "c3.dat").real, eio.read(tmp_path / "ct3.dat").real
    assert c3.shape == (24, 24, 13)
    keep = np.abs(c3) > 1e-4                     # away from the zeros of the CTF
    np.testing.assert_array_equal(ct3[keep], np.where(-c3 >= 0, -1.0, 1.0)[keep])


def test_tf_cts_merges_flipped_groups_to_the_known_answer(tmp_path, monkeypatch, rng):
    obj = rng.normal(size=(32, 32)).astype(np.float32)
    eio.write(tmp_path / "obj.dat", obj)
    # no astigmatism: SPIDER's 2D CTF is then Hermitian on the Nyquist column too
    text = "".join(_TF.format(op="TF CT", out=f"ctf{g:02d}", defocus=d, size=32, acr="0.1",
                              astig="0,0")
                   + f"TF COR\nobj\nctf{g:02d}\nimg{g:02d}\n"
                   for g, d in ((1, 12000), (2, 21000)))
    spi(tmp_path, monkeypatch, text + """
        TF CTS
        img**
        1-2
        ctf**
        4
        merged
        """)
    # sum_g (x*C_g)*C_g / (sum_g C_g^2 + 1/snr) = 2 x / (2 + 1/4), as C_g = +-1
    np.testing.assert_allclose(eio.read(tmp_path / "merged.dat"), obj * (2 / 2.25), atol=1e-5)


def test_tf_ed_finds_the_defocus_of_a_simulated_spectrum(tmp_path, monkeypatch, rng):
    from emsh.kernels.ctf import CTFParams, ctf_2d

    apix, n, dz = 2.0, 128, 15000.0
    p = CTFParams(dz + 300, dz - 300, 40.0, 300.0, 2.0, 0.1, 0.0, 0.0, apix)
    c2 = np.fft.fftshift(ctf_2d(p, (n, n), half=False) ** 2)
    r = np.hypot(*np.meshgrid(np.arange(n) - n // 2, np.arange(n) - n // 2))
    ps = (np.exp(-r / 40.0) * (0.5 + c2) * rng.gamma(50, 1 / 50, size=(n, n)))
    eio.write(tmp_path / "pw.dat", ps.astype(np.float32))
    s = spi(tmp_path, monkeypatch, """
        TF ED [d1],[d2],[ast],[def],[cut]
        pw
        2.0,2.0
        0.0197
        0.1
        ctfdoc
        """)
    assert abs(s.top_ns["def"] - dz) < 0.02 * dz
    assert abs(s.top_ns["ast"] - 600) < 300
    doc = read_doc(tmp_path / "ctfdoc.dat")
    assert doc.n_lines == n // 2 + 1 and doc.n_cols == 3
    assert doc.values[1, 0] == pytest.approx(1 / (n * apix), rel=1e-5)


def test_tf_refuses_an_impossible_voltage_and_sign(tmp_path, monkeypatch):
    from emsh.errors import EmshError

    for defocus, sign in (("12000,1", "-1"), ("12000,300", "2")):
        with pytest.raises(EmshError, match="kV or lambda|sign"):
            spi(tmp_path, monkeypatch, f"TF CT\nbad\n2\n{defocus}\n32\n0.2\n0,0\n0,0\n0.1\n"
                                       f"{sign}\n")
        assert not (tmp_path / "bad.dat").exists()
