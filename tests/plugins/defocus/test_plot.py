"""DG SELECT, DG VIEWS, DG PLOT FSC: exact selections, view counts, FSC resolutions, PNGs,
bad inputs, and one run through the interpreter on AP SH docs of simulated particles."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from emsh import io as eio
from emsh.context import OpContext
from emsh.errors import EmshError, OperationError
from emsh.io.docfile import read_doc, write_doc
from emsh.parallel import SerialComm
from emsh.registry import Registry
from emsh.session import Session
from emsh_defocus import PLUGIN

REG = Registry([PLUGIN])
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Session:
    data_ext, project_ext = "spi", "spi"

    def __init__(self):
        self.lines: list[str] = []

    def log(self, text):
        self.lines.append(text)


def _call(code, **answers):
    op = REG.get(code)
    ctx = OpContext(op, SerialComm(), session=_Session(), rng=np.random.default_rng(0))
    return REG.implementation(op)(ctx, **answers)


def _align_doc(path, cc, refs=None, mirror=None, members=None):
    """An AP SH doc (15 registers) with the given correlations, references and mirrors."""
    n = len(cc)
    members = np.arange(1, n + 1) if members is None else np.asarray(members)
    rows = np.zeros((n, 15))
    rows[:, 1] = 30.0
    rows[:, 3] = 1 if refs is None else refs
    rows[:, 4] = members
    rows[:, 8] = 6
    rows[:, 9] = -1
    rows[:, 10] = cc
    rows[:, 14] = 1 if mirror is None else np.where(mirror, -1.0, 1.0)
    write_doc(path, members, rows, overwrite=True)


def _assert_png(path, min_bytes=5000):
    import matplotlib.image as mpimg

    p = Path(path)
    assert p.is_file() and p.read_bytes()[:8] == PNG_MAGIC
    assert p.stat().st_size > min_bytes
    img = mpimg.imread(p)
    assert img.ndim == 3 and 300 <= img.shape[0] <= 1000 and 300 <= img.shape[1] <= 1200
    assert img[..., :3].std() > 0.05                 # something is drawn


def _best(cc, members, fraction):
    """The expected kept members: sort by (-cc, member), keep floor(f n + 0.5)."""
    k = int(np.floor(fraction * len(cc) + 0.5))
    ranked = sorted(zip(cc, members), key=lambda t: (-t[0], t[1]))
    return sorted(int(m) for _, m in ranked[:k])


@pytest.fixture
def two_groups(tmp_path, rng):
    cc = {1: np.round(rng.uniform(0.1, 0.9, 23), 4), 2: np.round(rng.uniform(0.2, 0.7, 17), 4)}
    cc[1][[3, 8, 15]] = 0.55                         # a tie at the fraction cut below
    for g, c in cc.items():
        _align_doc(tmp_path / f"align_{g:03d}.spi", c)
    return tmp_path, cc


# ----------------------------------------------------------------------------- DG SELECT
def test_select_keeps_the_best_fraction_per_group(two_groups):
    d, cc = two_groups
    n_kept, thr = _call("DG SELECT", align=f"{d}/align_***.spi", groups=[1, 2], fraction=0.6,
                        out=f"{d}/good***.spi", png=f"{d}/hist.png")
    want = {g: _best(cc[g], np.arange(1, cc[g].size + 1), 0.6) for g in cc}
    assert [len(want[1]), len(want[2])] == [14, 10]
    for g in cc:
        doc = read_doc(d / f"good{g:03d}.spi")
        assert doc.registers(1).astype(int).tolist() == want[g]
        np.testing.assert_allclose(doc.registers(2), cc[g][np.array(want[g]) - 1], atol=1e-6)
        assert doc.keys.tolist() == list(range(1, len(want[g]) + 1))
    assert n_kept == 24
    lowest = min(cc[g][np.array(want[g]) - 1].min() for g in cc)
    assert thr == pytest.approx(lowest, abs=1e-6)
    _assert_png(d / "hist.png")


def test_select_tie_at_the_cut_keeps_exactly_k_lower_members_first(tmp_path):
    cc = np.array([0.9, 0.5, 0.5, 0.5, 0.2, 0.5])
    _align_doc(tmp_path / "a_001.spi", cc, members=[11, 12, 13, 14, 15, 16])
    n, thr = _call("DG SELECT", align=f"{tmp_path}/a_***.spi", groups="1", fraction=0.5,
                   out=f"{tmp_path}/s***.spi", png=None)
    assert (n, thr) == (3, pytest.approx(0.5))
    assert read_doc(tmp_path / "s001.spi").registers(1).tolist() == [11, 12, 13]


def test_select_threshold_mode_keeps_cc_at_or_above(two_groups):
    d, cc = two_groups
    n_kept, thr = _call("DG SELECT", align=f"{d}/align_***.spi", groups=[1, 2], fraction=-0.55,
                        out=f"{d}/thr***.spi", png=f"{d}/thr")     # no extension: .png
    total = 0
    for g in cc:
        want = (np.flatnonzero(cc[g] >= 0.55) + 1).tolist()
        got = read_doc(d / f"thr{g:03d}.spi").registers(1).astype(int).tolist()
        assert got == want
        total += len(want)
    assert 3 <= len(read_doc(d / "thr001.spi").keys)      # the three ties at 0.55 are kept
    assert (n_kept, thr) == (total, pytest.approx(0.55))
    _assert_png(d / "thr.png")


def test_select_uses_the_last_line_of_a_key(tmp_path):
    _align_doc(tmp_path / "a_001.spi", [0.1, 0.2, 0.3])
    text = (tmp_path / "a_001.spi").read_text()
    _align_doc(tmp_path / "b.spi", [0.95], members=[1])           # an appended pass
    extra = [ln for ln in (tmp_path / "b.spi").read_text().splitlines() if ln[1:2] != ";"]
    (tmp_path / "a_001.spi").write_text(text + "\n".join(extra) + "\n")
    _call("DG SELECT", align=f"{tmp_path}/a_***.spi", groups=[1], fraction=0.34,
          out=f"{tmp_path}/s***.spi", png=None)
    assert read_doc(tmp_path / "s001.spi").registers(1).tolist() == [1]


def test_select_missing_doc_writes_nothing(two_groups):
    d, _ = two_groups
    with pytest.raises(OperationError, match=r"align_003\.spi: alignment doc not found"):
        _call("DG SELECT", align=f"{d}/align_***.spi", groups=[1, 2, 3], fraction=0.5,
              out=f"{d}/good***.spi", png=f"{d}/h.png")
    assert not list(d.glob("good*")) and not (d / "h.png").exists()


def test_select_refuses_to_replace_its_input(two_groups):
    d, _ = two_groups
    before = (d / "align_001.spi").read_text()
    with pytest.raises(OperationError, match="would replace an alignment doc"):
        _call("DG SELECT", align=f"{d}/align_***.spi", groups=[1, 2], fraction=0.5,
              out=f"{d}/align_***.spi", png=None)
    assert (d / "align_001.spi").read_text() == before


@pytest.mark.parametrize("fraction", [0.0, 1.5])
def test_select_rejects_a_bad_fraction(two_groups, fraction):
    d, _ = two_groups
    with pytest.raises(OperationError, match="keep fraction"):
        _call("DG SELECT", align=f"{d}/align_***.spi", groups=[1], fraction=fraction,
              out=f"{d}/good***.spi", png=None)


def test_select_rejects_a_doc_without_correlations(tmp_path):
    write_doc(tmp_path / "a_001.spi", [1, 2], np.ones((2, 5)))
    with pytest.raises(EmshError, match="registers; an alignment doc has 15"):
        _call("DG SELECT", align=f"{tmp_path}/a_***.spi", groups=[1], fraction=0.5,
              out=f"{tmp_path}/s***.spi", png=None)


# ----------------------------------------------------------------------------- DG VIEWS
def _angles_doc(path, theta, phi):
    write_doc(path, np.arange(1, len(theta) + 1),
              np.stack([np.zeros(len(theta)), theta, phi], 1), overwrite=True)


def test_views_counts_per_reference_with_selection(tmp_path, rng):
    theta = np.array([0.0, 30, 30, 30, 60, 60, 90])
    phi = np.array([0.0, 0, 120, 240, 60, 180, 300])
    _angles_doc(tmp_path / "ang.spi", theta, phi)
    refs, mirror, sel = {}, {}, {}
    for g, n in ((1, 40), (2, 25)):
        refs[g] = rng.integers(0, 8, n)                 # 0: unmatched (reference 0)
        refs[g][:2] = [3, 5]
        mirror[g] = rng.random(n) < 0.3
        _align_doc(tmp_path / f"al_{g:02d}.spi", rng.random(n), refs[g], mirror[g])
        sel[g] = np.sort(rng.choice(np.arange(1, n + 1), n // 2, replace=False))
        write_doc(tmp_path / f"sel{g:02d}.spi", np.arange(1, sel[g].size + 1),
                  sel[g][:, None].astype(float))
    nv, top = _call("DG VIEWS", align=f"{tmp_path}/al_**.spi", groups=[1, 2],
                    sel=f"{tmp_path}/sel**.spi", angles=f"{tmp_path}/ang.spi",
                    out=f"{tmp_path}/views.spi", png=f"{tmp_path}/views.png")
    straight, mirrored = Counter(), Counter()
    for g in refs:
        for m in sel[g]:
            r = int(refs[g][m - 1])
            if r:
                (mirrored if mirror[g][m - 1] else straight)[r] += 1
    doc = read_doc(tmp_path / "views.spi")
    assert doc.keys.tolist() == list(range(1, 8))
    assert doc.registers(4).astype(int).tolist() == [straight[r] for r in range(1, 8)]
    assert doc.registers(5).astype(int).tolist() == [mirrored[r] for r in range(1, 8)]
    total = [straight[r] + mirrored[r] for r in range(1, 8)]
    assert doc.registers(1).astype(int).tolist() == total
    np.testing.assert_allclose(doc.registers(2), theta)
    np.testing.assert_allclose(doc.registers(3), phi)
    assert (nv, top) == (sum(t > 0 for t in total), max(total))
    _assert_png(tmp_path / "views.png")


def test_views_without_selection_count_every_particle(tmp_path):
    _angles_doc(tmp_path / "ang.spi", np.array([0.0, 45]), np.array([0.0, 90]))
    _align_doc(tmp_path / "al_1.spi", [0.5] * 5, refs=[1, 2, 2, 0, 2],
               mirror=[False, False, True, False, False])
    nv, top = _call("DG VIEWS", align=f"{tmp_path}/al_*.spi", groups=[1], sel=None,
                    angles=f"{tmp_path}/ang.spi", out=f"{tmp_path}/v.spi", png=None)
    doc = read_doc(tmp_path / "v.spi")
    assert doc.registers(1).tolist() == [1, 3] and doc.registers(5).tolist() == [0, 1]
    assert (nv, top) == (2, 3)


def test_views_errors(tmp_path):
    _angles_doc(tmp_path / "ang.spi", np.array([0.0, 45]), np.array([0.0, 90]))
    _align_doc(tmp_path / "al_1.spi", [0.5] * 3, refs=[1, 2, 9])
    args = dict(align=f"{tmp_path}/al_*.spi", groups=[1], angles=f"{tmp_path}/ang.spi",
                out=f"{tmp_path}/v.spi", png=None)
    with pytest.raises(OperationError, match="reference 9 is not in the reference angles"):
        _call("DG VIEWS", sel=None, **args)
    with pytest.raises(OperationError, match=r"sel_1\.spi: selection doc not found"):
        _call("DG VIEWS", sel=f"{tmp_path}/sel_*.spi", **args)
    assert not (tmp_path / "v.spi").exists()


# ----------------------------------------------------------------------------- DG PLOT FSC
def _fsc_doc(path, freq, curve, apix):
    rows = np.stack([freq, apix / freq, curve, np.sqrt(np.clip(curve, 0, None)),
                     np.zeros_like(freq)], 1)
    write_doc(path, np.arange(2, freq.size + 2), rows, overwrite=True)


def test_plot_fsc_resolutions_of_a_known_curve(tmp_path):
    freq = np.arange(1, 33) / 64.0
    curve = np.clip(1.0 - 2.5 * freq, -0.05, 1.0)      # 0.5 at f = 0.2, 0.143 at 0.3428
    _fsc_doc(tmp_path / "fsc.spi", freq, curve, 2.0)
    r05, r0143 = _call("DG PLOT FSC", doc=f"{tmp_path}/fsc.spi", apix=0.0,
                       png=f"{tmp_path}/fsc.spi")      # the data extension becomes .png
    assert r05 == pytest.approx(2.0 / 0.2, rel=1e-5)
    assert r0143 == pytest.approx(2.0 / ((1 - 0.143) / 2.5), rel=1e-5)
    _assert_png(tmp_path / "fsc.png")
    r05b, _ = _call("DG PLOT FSC", doc=f"{tmp_path}/fsc.spi", apix=1.0, png=f"{tmp_path}/b.png")
    assert r05b == pytest.approx(5.0, rel=1e-5)


def test_plot_fsc_takes_the_last_crossing(tmp_path):
    freq = np.arange(1, 33) / 64.0
    curve = np.interp(freq, [0, 0.15, 0.2, 0.25, 0.4, 0.5], [1, 0.4, 0.6, 0.6, 0.0, 0.0])
    _fsc_doc(tmp_path / "fsc.spi", freq, curve, 1.5)
    r05, _ = _call("DG PLOT FSC", doc=f"{tmp_path}/fsc.spi", apix=0.0, png=f"{tmp_path}/f.png")
    f05 = 0.25 + (0.6 - 0.5) / (0.6 / 0.15)               # the fall after the bump
    assert r05 == pytest.approx(1.5 / f05, rel=1e-3)


def test_plot_fsc_rejects_a_doc_that_is_not_an_fsc_doc(tmp_path):
    write_doc(tmp_path / "x.spi", [1, 2, 3], np.array([[0.3, 1, 1], [0.1, 1, 1], [0.2, 1, 1]]))
    with pytest.raises(OperationError, match="must rise with the key"):
        _call("DG PLOT FSC", doc=f"{tmp_path}/x.spi", apix=1.0, png=f"{tmp_path}/x.png")
    assert not (tmp_path / "x.png").exists()


def test_plot_fsc_of_the_fsc_operation(tmp_path, rng):
    """The FSC op's own doc: the registers agree with emsh.kernels.fsc on the volumes."""
    from emsh.kernels.fsc import fsc, resolution

    n = 32
    base = rng.normal(size=(n, n, n)).astype(np.float32)
    from scipy.ndimage import gaussian_filter

    sig = gaussian_filter(base, 1.5).astype(np.float32)
    sig /= sig.std()
    a = sig + 0.3 * rng.normal(size=sig.shape).astype(np.float32)
    b = sig + 0.3 * rng.normal(size=sig.shape).astype(np.float32)
    eio.write(tmp_path / "a.spi", a)
    eio.write(tmp_path / "b.spi", b)
    s = Session(Registry.discover(), SerialComm(), data_ext="spi", echo=False)
    s.run_text(f"FSC\n{tmp_path}/a\n{tmp_path}/b\n0.5,0\n2.5,0.5\n{tmp_path}/fscdoc\n*\n"
               f"DG PLOT FSC [r5],[r1]\n{tmp_path}/fscdoc\n0\n{tmp_path}/fscplot\n")
    f, c = fsc(a, b, width=0.5)
    assert s.get_register("r5") == pytest.approx(2.5 / resolution(f, c, 0.5), rel=1e-3)
    assert s.get_register("r1") == pytest.approx(2.5 / resolution(f, c, 0.143), rel=1e-3)
    _assert_png(tmp_path / "fscplot.png")


# ----------------------------------------------------------------------------- a procedure
def test_procedure_ap_sh_select_views_histogram(tmp_path):
    """VO EA + PJ 3Q references, particles made from known references (some mirrored,
    rotated, noisy), AP SH per group, then DG SELECT, DG VIEWS and HD D."""
    from emsh.kernels.transform import mirror_x, rotate_shift_quadratic
    from emsh.sim.models import load_model, model_to_map

    rng = np.random.default_rng(5)
    vol = model_to_map(load_model("adk_closed"), 32, 2.5, resolution=8)
    eio.write(tmp_path / "vol.spi", vol)
    s = Session(Registry.discover(), SerialComm(), data_ext="spi", echo=False)
    s.run_text(f"VO EA [nref]\n30\n0,90\n0,359.9\n{tmp_path}/ang\n"
               f"PJ 3Q\n{tmp_path}/vol\n14\n(1-[nref])\n{tmp_path}/ang\n{tmp_path}/ref@***\n")
    nref = int(s.get_register("nref"))
    refs = eio.read(tmp_path / "ref.spi")
    truth = {}
    for g in (1, 2):
        n = 24
        r = rng.integers(0, nref, n)
        mir = rng.random(n) < 0.3
        imgs = refs[r].copy()
        imgs[mir] = mirror_x(imgs[mir])
        imgs = rotate_shift_quadratic(imgs, rng.uniform(0, 360, n))
        imgs += rng.normal(0, 0.3 * imgs.std(), imgs.shape).astype(np.float32)
        eio.write(tmp_path / f"data{g:03d}.spi", imgs.astype(np.float32), stack=True)
        truth[g] = (r + 1, mir)
    proc = ""
    for g in (1, 2):
        proc += (f"AP SH\n{tmp_path}/ref@***\n(1-[nref])\n0,1\n1,13,1,1\n{tmp_path}/ang\n"
                 f"{tmp_path}/data{g:03d}@***\n(1-24)\n*\n0\nY,N\n{tmp_path}/align_{g:03d}\n")
    proc += (f"DG SELECT [kept],[thr]\n{tmp_path}/align_***\n1-2\n0.75\n{tmp_path}/good***\n"
             f"{tmp_path}/cchist\n"
             f"DG VIEWS [nv],[top]\n{tmp_path}/align_***\n1-2\n*\n{tmp_path}/ang\n"
             f"{tmp_path}/views\n{tmp_path}/views\n"
             f"HD D [mean]\n{tmp_path}/align_001\n11\n8\n{tmp_path}/cchist001\n")
    s.run_text(proc)
    assert s.get_register("kept") == 36                     # 18 of 24 per group
    views = read_doc(tmp_path / "views.spi")
    want_s, want_m = np.zeros(nref, int), np.zeros(nref, int)
    for r, mir in truth.values():
        np.add.at(want_s, r[~mir] - 1, 1)
        np.add.at(want_m, r[mir] - 1, 1)
    got_s, got_m = views.registers(4).astype(int), views.registers(5).astype(int)
    assert views.registers(1).sum() == 48
    assert np.abs(got_s - want_s).sum() + np.abs(got_m - want_m).sum() <= 4
    al = read_doc(tmp_path / "align_001.spi")
    hist = read_doc(tmp_path / "cchist001.spi")
    cc = al.registers(11)
    edges = cc.min() + (cc.max() - cc.min()) / 7 * np.arange(9)   # 8 bins, max in the last
    want = np.histogram(cc[cc < cc.max()], edges)[0]
    want[-1] += np.count_nonzero(cc == cc.max())
    assert hist.registers(2).astype(int).tolist() == want.tolist()
    np.testing.assert_allclose(hist.registers(1), edges[:8], rtol=1e-5)
    assert s.get_register("mean") == pytest.approx(cc.mean(), rel=1e-5)
    for name in ("cchist.png", "views.png"):
        _assert_png(tmp_path / name)
