"""ISAC2 outputs after the run: ordering, SELECT, FULLSIZE, SUBSTACK, MONTAGE."""

import itertools
import shutil

import numpy as np
import pytest

from emsh import io as eio
from emsh.errors import DataFormatError, EmshError, UsageError
from emsh.io.hdf import read_attributes
from emsh.io.star import read_star
from emsh.kernels.align2d import align_to_reference, apply_alignment
from emsh.kernels.transform import rotate_shift_quadratic
from emsh.parallel import SerialComm
from emsh.registry import Registry
from emsh.session import Session
from emsh.sim.models import load_model, model_to_map
from emsh.sim.particles import hemisphere_views, simulate_2d_views, simulate_particles
from emsh_isac2 import PLUGIN
from emsh_isac2.montage import write_montage
from emsh_isac2.ordering import (circular_order, order_averages, similarity_matrix,
                                 tour_similarity)
from emsh_isac2.prepare import prepare_stack, shrink
from emsh_isac2.tools import load_run, select

N_VIEWS = 4


def _session():
    return Session(Registry([PLUGIN]), SerialComm(), data_ext="hdf", echo=False)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One small ISAC2 run (pre-alignment and ordering on) and its ground truth."""
    d = tmp_path_factory.mktemp("isac2run")
    rng = np.random.default_rng(21)
    vol = model_to_map(load_model("adk_closed"), 64, 1.5, resolution=4)
    imgs, truth = simulate_2d_views(vol, N_VIEWS, 30, rng, apix=1.5, shift_range_px=3.0,
                                    snr=3.0)
    views, _ = simulate_particles(vol, N_VIEWS, rng, apix=1.5,
                                  angles=hemisphere_views(N_VIEWS), shifts=np.zeros((N_VIEWS, 2)))
    eio.write(d / "views.hdf", imgs, stack=True)
    s = _session()
    s.run_text("ISAC2 [nc],[na] img_per_grp=30 minimum_grp_size=10 target_radius=12 "
               "target_nx=32 maxit=6 init_iter=2 stab_ali=3 rand_seed=3 apix=1.5\n"
               f"{d}/views.hdf@\n{d}/out\n24\n")
    return dict(dir=d, out=d / "out", imgs=imgs, truth=truth, views=views,
                nc=int(s.get_register("nc")), na=int(s.get_register("na")))


@pytest.mark.slow
def test_run_writes_ordered_consistent_classes_and_a_montage(finished):
    out, nc = finished["out"], finished["nc"]
    assert nc == N_VIEWS
    run = load_run(out)
    assert len(run.members) == nc and run.averages.shape == (nc, 32, 32)
    view = np.asarray(finished["truth"]["view_id"])
    assert all(np.bincount(view[m]).max() / len(m) >= 0.9 for m in run.members)
    star = read_star(out / "isac_particles.star")["particles"]
    cls = np.asarray(star["rlnClassNumber"])
    for k, m in enumerate(run.members):
        assert np.all(cls[m] == k + 1)
    # the averages' order maximises neighbour similarity (all 3 tours of 4 tried)
    log = (out / "isac2.log").read_text().splitlines()
    assert sorted(int(v) for v in log[-1].split(":")[1].split()) == list(range(1, nc + 1))
    sim = similarity_matrix(run.averages, ou=12, xr=2)
    best = max(tour_similarity((0,) + t, sim) for t in itertools.permutations(range(1, nc)))
    assert tour_similarity(np.arange(nc), sim) >= best - 1e-3
    # member parameters, composed with the ordering's turn, bring each working image
    # onto its own (turned) average better than onto any other
    work, _ = prepare_stack(finished["imgs"], 24, target_radius=12, target_nx=32,
                            shifts=run.prealign)
    p = run.all_parameters
    ali = apply_alignment(work, p[:, 0], p[:, 1:3], p[:, 3] > 0.5).reshape(len(work), -1)
    avg = run.averages.reshape(nc, -1)
    cc = np.corrcoef(np.vstack([ali, avg]))[: len(work), len(work):]
    for k, m in enumerate(run.members):
        assert np.all(np.argmax(cc[m], axis=1) == k)
        assert cc[m, k].mean() > 0.5
    # pre-alignment parameters are kept (original pixels) and undo the simulated shifts
    true = np.column_stack([finished["truth"]["sx"], finished["truth"]["sy"]])
    err = run.prealign + true
    assert np.sqrt(np.mean(np.sum((err - np.median(err, 0)) ** 2, 1))) < 1.0
    assert np.allclose(np.column_stack([star["emshIsacPrealignX"], star["emshIsacPrealignY"]]),
                       run.prealign, atol=1e-5)
    png = out / "class_averages.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_select_writes_combined_and_per_class_ids(finished, tmp_path):
    s = _session()
    s.run_text(f"ISAC2 SELECT [ni],[nk]\n{finished['out']}\n3,1\n{tmp_path}/sel\n")
    run = load_run(finished["out"])
    want = np.union1d(run.members[0], run.members[2])
    assert int(s.get_register("ni")) == len(want) and int(s.get_register("nk")) == 2
    assert np.array_equal(np.loadtxt(tmp_path / "sel.txt", dtype=int), want)
    for k in (1, 3):
        got = np.loadtxt(tmp_path / f"sel_class_{k:03d}.txt", dtype=int)
        assert np.array_equal(got, run.members[k - 1])
    with pytest.raises(UsageError, match="class number 9 out of range 1..4"):
        select(run, [1, 9])


@pytest.mark.slow
def test_fullsize_averages_beat_the_shrunk_ones(finished, tmp_path):
    s = _session()
    s.run_text(f"ISAC2 FULLSIZE [n]\n{finished['out']}\n*\n{tmp_path}/full.hdf@\n")
    full = eio.read(tmp_path / "full.hdf")
    run = load_run(finished["out"])
    assert int(s.get_register("n")) == N_VIEWS and full.shape == (N_VIEWS, 64, 64)
    heads = read_attributes(tmp_path / "full.hdf", None)
    assert [list(h["members"]) for h in heads] == [list(m) for m in run.members]
    up = shrink(run.averages, 1 / run.s)                  # the shrunk ones, upscaled
    view = np.asarray(finished["truth"]["view_id"])
    for k, m in enumerate(run.members):
        true = finished["views"][np.bincount(view[m]).argmax() - 1]
        c_full = align_to_reference(true, full[k], shift_range=2, last_ring=24).cc[0]
        c_up = align_to_reference(true, up[k], shift_range=2, last_ring=24).cc[0]
        # measured 0.992-0.996 vs 0.988-0.991 (4 A map, 2x shrink, SNR 3, 30 images)
        assert c_full > 0.98 and c_full > c_up, (k, c_full, c_up)
    s.run_text(f"ISAC2 MONTAGE [n] columns=2\n{tmp_path}/full.hdf@\n{tmp_path}/full.png\n")
    assert (tmp_path / "full.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_substack_copies_members_with_star_and_ids(finished, tmp_path):
    s = _session()
    s.run_text(f"ISAC2 SUBSTACK [n]\n{finished['out']}\n{finished['dir']}/views.hdf@\n2\n"
               f"{tmp_path}/sub.mrcs@\n")
    run = load_run(finished["out"])
    ids = run.members[1]
    assert int(s.get_register("n")) == len(ids)
    sub = eio.read(tmp_path / "sub.mrcs")
    assert np.array_equal(sub, finished["imgs"][ids])
    star = read_star(tmp_path / "sub.star")["particles"]
    assert np.array_equal(star["emshIsacOriginalId"], ids)
    assert np.all(star["rlnClassNumber"] == 2)
    assert str(star["rlnImageName"][0]).startswith("000001@")
    assert np.array_equal(np.loadtxt(tmp_path / "sub_ids.txt", dtype=int), ids)
    # full-size parameters centre the members onto the full-size average's frame
    ang, sx, sy, mir = (np.asarray(star[c]) for c in ("emshIsacAlpha", "emshIsacShiftX",
                                                       "emshIsacShiftY", "emshIsacMirror"))
    al = apply_alignment(sub, ang, np.column_stack([sx, sy]), mir > 0)
    mean = al.mean(0)
    assert np.mean([np.corrcoef(a.ravel(), mean.ravel())[0, 1] for a in al]) > 0.5


@pytest.mark.slow
def test_tool_errors_are_one_line(finished, tmp_path):
    with pytest.raises(DataFormatError, match="all_parameters.txt") as e:
        load_run(tmp_path)
    assert "\n" not in str(e.value)
    s = _session()
    with pytest.raises(EmshError) as e:          # the interpreter adds file:line and a caret
        s.run_text(f"ISAC2 SELECT\n{finished['out']}\n0\n{tmp_path}/x\n")
    assert "class number 0 out of range 1..4" in str(e.value).splitlines()[0]


@pytest.mark.slow
def test_restart_resumes_from_checkpoints_and_never_replaces_outputs(finished, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(finished["out"], out)
    script = ("ISAC2 [nc] img_per_grp=30 minimum_grp_size=10 target_radius=12 target_nx=32 "
              "maxit=6 init_iter=2 stab_ali=3 rand_seed=3 apix=1.5 restart=yes\n"
              f"{finished['dir']}/views.hdf@\n{out}\n24\n")
    with pytest.raises(EmshError, match="class_averages.hdf"):     # a finished run's files
        _session().run_text(script)
    keep = (out / "all_parameters.txt").read_text()
    for f in out.iterdir():              # a run killed after its last checkpoint
        if f.is_file():
            f.unlink()
    s = _session()
    s.run_text(script)
    assert int(s.get_register("nc")) == N_VIEWS
    assert (out / "all_parameters.txt").read_text() == keep
    log = (out / "isac2.log").read_text()
    assert "shifts read from" in log and "resumed from the checkpoint" in log


def _ellipse(n, a, b, angle):
    y, x = np.mgrid[:n, :n] - n // 2
    img = np.exp(-((x / a) ** 2 + (y / b) ** 2)).astype(np.float32)
    img[n // 2 - 1, n // 2 + int(a)] += 1.0          # a mark: no mirror symmetry shortcuts
    return rotate_shift_quadratic(img, angle)


def test_ordering_chains_similar_averages_and_turns_them_into_register(rng):
    aspects = np.linspace(1.0, 2.4, 8)
    perm = rng.permutation(8)
    avgs = np.stack([_ellipse(32, 4.0 * aspects[i], 4.0, rng.uniform(0, 360)) for i in perm])
    o = order_averages(avgs, ou=14, xr=1)
    ranks = perm[o.order]
    steps = np.abs(np.diff(np.append(ranks, ranks[0])))
    assert steps.max() <= 2                          # neighbours are alike
    best = max(tour_similarity((0,) + t, o.similarity)
               for t in itertools.permutations(range(1, 8)))
    assert tour_similarity(o.order, o.similarity) >= best - 1e-9
    # turned into register: neighbours now match without any alignment
    t = o.averages.reshape(8, -1)
    direct = [np.corrcoef(t[k], t[k - 1])[0, 1] for k in range(1, 8)]
    raw = avgs[o.order].reshape(8, -1)
    before = [np.corrcoef(raw[k], raw[k - 1])[0, 1] for k in range(1, 8)]
    assert min(direct) > 0.85 and np.mean(direct) > np.mean(before) + 0.1
    assert np.array_equal(circular_order(np.eye(3)), np.arange(3))


def test_ordering_fits_the_rings_of_any_run_isac_accepts(rng):
    # IsacParams accepts target_radius + xr == (target_nx - 1) // 2; ordering searches
    # xr + 1, so its last ring must come in by one instead of failing after the run
    avgs = np.stack([_ellipse(32, 4.0 * a, 4.0, rng.uniform(0, 360)) for a in (1.0, 1.8, 2.4)])
    o = order_averages(avgs, ou=14, xr=2)
    assert sorted(o.order.tolist()) == [0, 1, 2]
    with pytest.raises(UsageError, match="leave no ring"):
        order_averages(avgs, ou=14, xr=15)


def test_montage_needs_matching_counts(tmp_path, rng):
    imgs = rng.normal(0, 1, (3, 16, 16))
    path = write_montage(tmp_path / "m.png", imgs, [5, 6, 7])
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG" and path.endswith("m.png")
    with pytest.raises(UsageError, match="3 averages but 2 counts"):
        write_montage(tmp_path / "n.png", imgs, [1, 2])
