"""DG WINDOW: window geometry, background normalisation, the per-group outputs, errors, and
DG PICK + DG WINDOW run from a procedure file on a simulated data set."""

import io
import os

import numpy as np
import pytest

from emsh import io as eio
from emsh.errors import ProcedureError, UsageError
from emsh.io.docfile import read_doc, write_doc
from emsh.kernels.masks import radius_grid
from emsh.ops import PLUGIN as BUILTIN
from emsh.parallel import SerialComm
from emsh.registry import Registry
from emsh.session import Session
from emsh_defocus import PLUGIN
from emsh_defocus.pick import match_picks
from emsh_defocus.simdata import simulate_dataset
from emsh_defocus.window import cut_boxes, fits_in, normalise_background, window_particles


@pytest.fixture(autouse=True)
def _scipy_fft(monkeypatch):
    """No per-shape FFT backend timing: these tests are about windowing."""
    monkeypatch.setenv("EMSH_FFT", "scipy")


def run_in(folder, text=None, proc=None):
    s = Session(Registry([BUILTIN, PLUGIN]), SerialComm(), data_ext="spi", out=io.StringIO())
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        s.run_file(proc) if proc else s.run_text(text)
    finally:
        os.chdir(cwd)
    return s


# ----------------------------------------------------------------------------- geometry

@pytest.mark.parametrize("box", [16, 15])
def test_windows_hold_the_micrograph_pixels_around_the_coordinate(box):
    mic = (np.arange(60)[:, None] * 1000 + np.arange(80)[None, :]).astype(np.float32)
    xy = np.array([[20.0, 30.0], [41.0, 12.0], [72.0, 52.0]])          # 1-based x, y
    w = cut_boxes(mic, xy, box)
    assert w.shape == (3, box, box)
    for (x, y), win in zip(xy.astype(int), w):
        r0, c0 = y - 1 - box // 2, x - 1 - box // 2
        assert np.array_equal(win, mic[r0:r0 + box, c0:c0 + box])
        assert win[box // 2, box // 2] == mic[y - 1, x - 1]


def test_a_delta_at_the_coordinate_lands_at_the_box_centre():
    mic = np.zeros((64, 64), np.float32)
    mic[40 - 1, 25 - 1] = 1.0                 # coordinate x=25, y=40
    w = cut_boxes(mic, [[25, 40]], 32)[0]
    assert np.argwhere(w == 1.0).tolist() == [[16, 16]]
    # half-pixel coordinates round half up
    assert np.array_equal(cut_boxes(mic, [[24.5, 39.5]], 32), w[None])


def test_boxes_crossing_the_edge_are_skipped():
    mic = np.random.default_rng(1).normal(size=(50, 70)).astype(np.float32)
    box = 20                                   # fits when box//2 + 1 <= coord <= size - 9
    xy = np.array([[11, 11], [10, 25], [61, 25], [62, 25], [30, 41], [30, 42], [35, 25]])
    assert fits_in(xy, mic.shape, box).tolist() == [True, False, True, False, True, False,
                                                    True]
    stack, kept = window_particles(mic, xy, box, 6)
    assert stack.shape == (4, box, box) and kept.sum() == 4
    with pytest.raises(UsageError, match="crosses the edge"):
        cut_boxes(mic, xy, box)


def test_ramp_is_removed_and_background_scaled(rng):
    n, box, radius = 5, 32, 10.0
    t = np.arange(box) - box // 2
    yy, xx = np.meshgrid(t, t, indexing="ij")
    coef = rng.normal(0, 3, (n, 3))
    ramp = coef[:, 0, None, None] + coef[:, 1, None, None] * xx + coef[:, 2, None, None] * yy
    noise = rng.normal(0, 2.5, (n, box, box))
    disc = radius_grid((box, box)) <= radius
    imgs = (ramp + noise + 40.0 * disc).astype(np.float32)
    out = normalise_background(imgs, radius)
    bg = ~disc
    assert np.allclose(out[:, bg].mean(1), 0, atol=1e-5)
    assert np.allclose(out[:, bg].std(1), 1, atol=1e-5)
    # against an independent per-image fit
    design = np.column_stack([np.ones(bg.sum()), xx[bg], yy[bg]])
    for img, o in zip(imgs.astype(np.float64), out):
        c, *_ = np.linalg.lstsq(design, img[bg], rcond=None)
        res = img - (c[0] + c[1] * xx + c[2] * yy)
        assert np.allclose(o, res / res[bg].std(), atol=1e-4)
    # the ramp itself is gone: what is left of it is the fit's small error
    assert np.abs(out[:, disc].mean(1) - 40.0 / 2.5).max() < 1.5


# ----------------------------------------------------------------------------- DG WINDOW

WINDOW = ("DG WINDOW [n],[g]\nmic***.mrc\n{mics}\ncoo***\n{box},{radius}\n{groups}\n"
          "Particles/data***\nParticles/sel***\nParticles/particles\nParticles/group_counts\n")


def _write_inputs(folder, rng):
    """3 noise micrographs 100x120 with coordinates (one on the edge of mic 2)."""
    coords = {1: [[30, 30], [70, 60]], 2: [[50, 40], [5, 40], [90, 70]], 3: [[60, 50]]}
    mics = {}
    for m, xy in coords.items():
        mics[m] = rng.normal(size=(100, 120)).astype(np.float32)
        eio.write(folder / f"mic{m:03d}.mrc", mics[m])
        write_doc(folder / f"coo{m:03d}.spi", np.arange(1, len(xy) + 1),
                  np.column_stack([np.array(xy, float), np.ones(len(xy))]))
    # def_groups: mic, defocus, group (mic 2 in group 2, mics 1 and 3 in group 1)
    write_doc(folder / "def_groups.spi", [1, 2, 3],
              [[1, 11000.0, 1], [2, 25000.0, 2], [3, 13000.0, 1]])
    return coords, mics


def test_dg_window_writes_group_stacks_and_docs(tmp_path, rng):
    coords, mics = _write_inputs(tmp_path, rng)
    s = run_in(tmp_path, WINDOW.format(mics="1-3", box=24, radius=8, groups="def_groups"))
    assert s.get_register("n") == 5 and s.get_register("g") == 2
    d1 = eio.read(tmp_path / "Particles" / "data001.spi@")
    d2 = eio.read(tmp_path / "Particles" / "data002.spi@")
    assert d1.shape == (3, 24, 24) and d2.shape == (2, 24, 24)
    expect1 = normalise_background(np.concatenate([cut_boxes(mics[1], coords[1], 24),
                                                   cut_boxes(mics[3], coords[3], 24)]), 8)
    expect2 = normalise_background(cut_boxes(mics[2], [coords[2][0], coords[2][2]], 24), 8)
    assert np.allclose(d1, expect1, atol=1e-6) and np.allclose(d2, expect2, atol=1e-6)
    # ids in micrograph order then doc order: mic1 -> 1, 2; mic2 -> 3, 4; mic3 -> 5
    sel1 = read_doc(tmp_path / "Particles" / "sel001.spi")
    assert sel1.values.tolist() == [[1, 1, 1, 30, 30, 11000], [2, 2, 1, 70, 60, 11000],
                                    [3, 5, 3, 60, 50, 13000]]
    sel2 = read_doc(tmp_path / "Particles" / "sel002.spi")
    assert sel2.values.tolist() == [[1, 3, 2, 50, 40, 25000], [2, 4, 2, 90, 70, 25000]]
    part = read_doc(tmp_path / "Particles" / "particles.spi")
    assert part.keys.tolist() == [1, 2, 3, 4, 5]
    assert part.values[:, 4:7].tolist() == [[11000, 1, 1], [11000, 1, 2], [25000, 2, 1],
                                            [25000, 2, 2], [13000, 1, 3]]
    cnt = read_doc(tmp_path / "Particles" / "group_counts.spi")
    assert np.allclose(cnt.values, [[1, 3, 35000 / 3], [2, 2, 25000]], rtol=1e-5)


def test_dg_window_rerun_leaves_no_stack_of_an_emptied_group(tmp_path, rng):
    _write_inputs(tmp_path, rng)
    run_in(tmp_path, WINDOW.format(mics="1-3", box=24, radius=8, groups="def_groups"))
    assert (tmp_path / "Particles" / "data002.spi").is_file()
    write_doc(tmp_path / "coo002.spi", np.zeros(0, int), np.zeros((0, 3)), overwrite=True)
    s = run_in(tmp_path, WINDOW.format(mics="1-3", box=24, radius=8, groups="def_groups"))
    assert s.get_register("n") == 3
    assert read_doc(tmp_path / "Particles" / "sel002.spi").n_lines == 0
    assert not (tmp_path / "Particles" / "data002.spi").exists()


def test_dg_window_without_group_doc_puts_all_in_group_one(tmp_path, rng):
    _write_inputs(tmp_path, rng)
    s = run_in(tmp_path, WINDOW.format(mics="1,3", box=24, radius=8, groups="*"))
    assert s.get_register("n") == 3 and s.get_register("g") == 1
    assert eio.read(tmp_path / "Particles" / "data001.spi@").shape == (3, 24, 24)
    assert read_doc(tmp_path / "Particles" / "group_counts.spi").values.tolist() == [[1, 3, 0]]


def test_dg_window_bad_input_is_one_line(tmp_path, rng):
    _write_inputs(tmp_path, rng)
    os.remove(tmp_path / "coo002.spi")
    cases = [(dict(mics="1-3", box=24, radius=8, groups="*"),
              "coo002.spi: coordinate doc of micrograph 2 not found"),
             (dict(mics="1", box=128, radius=8, groups="*"),
              "box size 128 px is larger than micrograph 1"),
             (dict(mics="1", box=24, radius=12, groups="*"), "leaves no background"),
             (dict(mics="1,4", box=24, radius=8, groups="*"), "micrograph 4 not found")]
    for args, message in cases:
        with pytest.raises(ProcedureError) as err:
            run_in(tmp_path, WINDOW.format(**args))
        assert message in err.value.reason and "\n" not in err.value.reason
    write_doc(tmp_path / "coo002.spi", [1], [[50, 40, 1]])
    write_doc(tmp_path / "short_groups.spi", [1, 2], [[1, 11000.0, 1], [2, 25000.0, 2]])
    with pytest.raises(ProcedureError, match="no line for micrograph 3"):
        run_in(tmp_path, WINDOW.format(mics="1-3", box=24, radius=8, groups="short_groups"))
    assert not (tmp_path / "Particles" / "data001.spi").exists()   # nothing written


# ----------------------------------------------------------------------------- the pipeline

PROC = """\
; pick and window a simulated data set
[radius] = {radius}
DG PICK [npick]
Micrographs/mic***.mrc
1-2
[radius],64
0,0
Particles/coords/coo***
DG WINDOW [npart],[ngrp]
Micrographs/mic***.mrc
1-2
Particles/coords/coo***
64,[radius]
Power_Spectra/def_groups
Particles/data***
Particles/sel***
Particles/particles
Particles/group_counts
SD 1,[npick],[npart],[ngrp]
Particles/summary
SD E
Particles/summary
"""


def test_pick_and_window_from_a_procedure_file(tmp_path):
    truth = simulate_dataset(tmp_path, n_mics=2, per_mic=15, box=64, apix=2.0, mic_size=448,
                             snr=0.2, defocus_um=(1.5, 2.5), seed=3)
    (tmp_path / "Power_Spectra").mkdir()
    write_doc(tmp_path / "Power_Spectra" / "def_groups.spi", [1, 2],
              [[1, truth.defocus_mean_A[0], 2], [2, truth.defocus_mean_A[1], 1]])
    radius = round(truth.radius, 2)
    (tmp_path / "pick.spi").write_text(PROC.format(radius=radius))
    run_in(tmp_path, proc=tmp_path / "pick.spi")
    npick, npart, ngrp = read_doc(tmp_path / "Particles" / "summary.spi").get(1)
    assert npick == npart >= 27 and ngrp == 2          # every pick fits its box
    part = read_doc(tmp_path / "Particles" / "particles.spi")
    assert part.n_lines == npart
    for m, group in ((1, 2), (2, 1)):
        coo = read_doc(tmp_path / "Particles" / "coords" / f"coo{m:03d}.spi")
        mine = part.values[part.values[:, 1] == m]
        assert np.array_equal(mine[:, 2:4], coo.values[:, :2])
        assert np.all(mine[:, 5] == group)
        assert np.allclose(mine[:, 4], truth.defocus_mean_A[m - 1])
        recall, precision, _ = match_picks(coo.values[:, :2], truth.subpixel[m - 1],
                                           truth.radius / 2)
        assert recall >= 0.9 and precision >= 0.8
    counts = read_doc(tmp_path / "Particles" / "group_counts.spi").values
    for g, m in ((1, 2), (2, 1)):
        stack = eio.read(tmp_path / "Particles" / f"data{g:03d}.spi@")
        assert stack.shape == (int(counts[g - 1, 1]), 64, 64)
        bg = radius_grid((64, 64)) > radius
        assert np.allclose(stack[:, bg].mean(1), 0, atol=1e-4)
        assert np.allclose(stack[:, bg].std(1), 1, atol=1e-4)
        # the particles are white and centred: the average is bright in the middle
        avg = stack.mean(0)
        assert avg[28:36, 28:36].mean() > 0.3 + avg[bg].mean()
