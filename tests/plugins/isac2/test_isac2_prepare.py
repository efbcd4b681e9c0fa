"""ISAC2 preparation: pre-alignment, CTF phase flip, VPP whitening, filament band, options."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from emsh import io as eio
from emsh.errors import DataFormatError, UsageError
from emsh.io.hdf import write_stack_with_attributes
from emsh.io.star import write_star
from emsh.kernels.ctf import CTFParams, apply_ctf, ctf_2d
from emsh.kernels.filters import gaussian_lowpass
from emsh.kernels.fourier import rotational_power_spectrum
from emsh.kernels.masks import radius_grid
from emsh.sim.models import load_model, model_to_map
from emsh.sim.particles import simulate_2d_views
from emsh.table import Table
from emsh_isac2.correct import apply_table, flip_phases, vpp_table
from emsh_isac2.inputs import read_ctf
from emsh_isac2.params import IsacParams, PrepParams
from emsh_isac2.prealign import prealign, translation_schedule
from emsh_isac2.prepare import prepare_stack, shrink, shrink_ratio, subtract_inside_mean
from emsh_isac2.run import isac2

MPIEXEC = Path(sys.executable).parent / "mpiexec"


def _views(seed, n_views=3, per=20, shift=3.0, snr=1.0):
    rng = np.random.default_rng(seed)
    vol = model_to_map(load_model("adk_closed"), 64, 1.5, resolution=10)
    return simulate_2d_views(vol, n_views, per, rng, apix=1.5, shift_range_px=shift, snr=snr)


def test_translation_schedule_follows_sphire():
    # txrm = (nx - 2 (tr + 1)) // 2; 16 -> ranges 16 8 4, steps 4 2 1 (A.2 step 1.3)
    assert translation_schedule(2 * 30 + 32, 29) == [(16, 4), (8, 2), (4, 1)]
    assert translation_schedule(48, 18) == [(4, 1)]           # txrm 5
    assert translation_schedule(40, 18) == [(1, 1)]           # txrm 1: one stage


@pytest.mark.slow
def test_prealignment_recovers_known_shifts():
    imgs, truth = _views(5)
    s = shrink_ratio(24, 18)
    pa = prealign(shrink(subtract_inside_mean(imgs, 24), s), s, target_radius=18)
    true = np.column_stack([truth["sx"], truth["sy"]])
    # the centring shift undoes the simulated shift: pa.shifts ~ -true, up to one offset
    # per view (each view's projected centre is the same point only up to the
    # reference-free average's own centring)
    err = pa.shifts + true
    view = np.asarray(truth["view_id"])
    offsets = np.array([np.median(err[view == v], axis=0) for v in (1, 2, 3)])
    resid = err - offsets[view - 1]
    rms = float(np.sqrt(np.mean(np.sum(resid**2, axis=1))))
    # one shrunk pixel is 1.33 original px; the polar search's sub-pixel peak at SNR 1 is
    # good to ~0.3 shrunk px (measured rms 0.46 px at SNR 1, 0.25 px without noise)
    assert rms < 0.75, rms
    assert np.abs(offsets).max() < 1.0, offsets
    assert np.sqrt(np.mean(np.sum(true**2, axis=1))) > 2.0        # there was work to do
    # applied before shrinking, the shifts centre the working images
    work, _ = prepare_stack(imgs, 24, target_radius=18, target_nx=48, shifts=pa.shifts)
    raw, _ = prepare_stack(imgs, 24, target_radius=18, target_nx=48)
    r = radius_grid((48, 48))

    def spread(w):         # spread of the per-image centres of mass inside the particle
        wt = np.clip(w, 0, None) * (r <= 18)
        yy, xx = np.mgrid[:48, :48]
        c = np.stack([(wt * xx).sum((1, 2)), (wt * yy).sum((1, 2))], 1) / wt.sum((1, 2))[:, None]
        return float(np.sqrt(np.mean(np.sum((c - c.mean(0)) ** 2, 1))))
    assert spread(work) < 0.6 * spread(raw)


def test_phase_flip_makes_the_ctf_sign_positive(rng):
    obj = gaussian_lowpass(rng.normal(0, 1, (4, 64, 64)).astype(np.float32), 0.2, ndim=2)
    ctf = CTFParams(np.array([8000.0, 12000.0, 16000.0, 20000.0]), apix=1.5)
    img = apply_ctf(obj, ctf_2d(ctf, (64, 64)))
    flipped = flip_phases(img, ctf)
    F0 = np.fft.rfft2(obj)
    c = ctf_2d(ctf, (64, 64))
    strong = (np.abs(c) > 0.2) & (np.abs(F0) > 0.05 * np.abs(F0).max())

    def negative_fraction(x):          # sign of the transfer, object phase removed
        return float(np.mean(np.real(np.fft.rfft2(x) * np.conj(F0))[strong] < 0))
    assert negative_fraction(img) > 0.3
    assert negative_fraction(flipped) < 0.001
    # |CTF|: the flipped image is the object filtered by the absolute CTF
    expect = apply_ctf(obj, np.abs(c))
    assert np.allclose(flipped, expect, atol=1e-4 * np.abs(expect).max())


def test_ctf_comes_from_a_relion_star_or_eman2_headers(tmp_path, rng):
    n = 4
    defocus = np.array([10000.0, 12000.0, 14000.0, 16000.0])
    order = np.array([3, 1, 4, 2])                       # rows name their images
    table = Table({"rlnImageName": [f"{k:06d}@stack.mrcs" for k in order],
                   "rlnDefocusU": defocus[order - 1] + 100, "rlnDefocusV": defocus[order - 1] - 100,
                   "rlnDefocusAngle": np.full(n, 30.0), "rlnVoltage": np.full(n, 300.0),
                   "rlnSphericalAberration": np.full(n, 2.7),
                   "rlnAmplitudeContrast": np.full(n, 0.1)})
    write_star(tmp_path / "ctf.star", {"particles": table})
    p = read_ctf(tmp_path / "s.mrcs", n, str(tmp_path / "ctf.star"), apix=1.5)
    assert np.allclose(p.defocus_mean_A, defocus) and np.allclose(p.apix, 1.5)
    with pytest.raises(DataFormatError, match="3 particle rows for the 4 images"):
        write_star(tmp_path / "short.star", {"particles": Table(
            {k: table[k][:3] for k in table.columns})})
        read_ctf(tmp_path / "s.mrcs", n, str(tmp_path / "short.star"), apix=1.5)
    imgs = rng.normal(0, 1, (n, 16, 16)).astype(np.float32)
    attrs = [{"ctf": {"defocus": d / 1e4, "voltage": 300.0, "cs": 2.7, "apix": 1.2,
                      "ampcont": 10.0}} for d in defocus]
    write_stack_with_attributes(tmp_path / "h.hdf", imgs, attrs)
    q = read_ctf(f"{tmp_path}/h.hdf@", n)
    assert np.allclose(q.defocus_mean_A, defocus, rtol=1e-5) and np.allclose(q.apix, 1.2)
    eio.write(tmp_path / "plain.hdf", imgs, stack=True)
    with pytest.raises(UsageError, match="ctf_star"):
        read_ctf(tmp_path / "plain.hdf", n)


def test_vpp_whitening_flattens_the_rotational_power_spectrum(rng):
    x = gaussian_lowpass(rng.normal(0, 1, (40, 48, 48)).astype(np.float32), 0.12, ndim=2)
    x += 0.01 * rng.normal(0, 1, x.shape).astype(np.float32)
    amp = lambda a: np.sqrt(rotational_power_spectrum(a, ndim=2)[1]).mean(0)[1:]  # noqa: E731
    before = amp(x)
    assert before.max() / before.min() > 20
    freq, rpw = vpp_table(x)
    after = amp(apply_table(x, freq, rpw))
    # exact on each shell's radius; linear interpolation between shells (as SPHIRE's
    # filt_table) leaves a few per cent where the spectrum falls steeply
    assert np.allclose(after, 1.0, rtol=0.06), after
    assert np.abs(after - 1).mean() < 0.02


def test_vpp_table_from_blocks_summed_over_ranks_is_the_whole_stacks(rng):
    x = rng.normal(0, 1, (30, 32, 32)).astype(np.float32)

    class TwoRanks:                       # this rank holds x[:12], the other x[12:]
        def allreduce(self, a):
            other = np.sqrt(rotational_power_spectrum(x[12:], ndim=2)[1]).sum(0)
            return a + other

    freq, whole = vpp_table(x)
    _, split = vpp_table(x[:12], n_total=30, comm=TwoRanks())
    assert np.allclose(split, whole, rtol=1e-12)


def test_filament_band_geometry(rng):
    imgs = rng.normal(0, 1, (3, 64, 64)).astype(np.float32)
    # width 20 original px -> 15 working px (s = 0.75), soft edge of 2 px beyond +-7.5
    work, s = prepare_stack(imgs, 24, target_radius=18, target_nx=48, filament_width=20)
    rows = np.abs(np.arange(48) - 24)
    std_by_row = work.std(axis=(0, 2))
    assert np.all(std_by_row[rows <= 7] > 0.5)
    assert np.all(work[:, rows >= 10, :] == 0)
    assert np.all(std_by_row[(rows > 7) & (rows < 10)] < std_by_row[rows <= 7].min())
    # ignore: the band only defines the normalisation (mean 0 inside, sd 1 outside)
    work2, _ = prepare_stack(imgs, 24, target_radius=18, target_nx=48, filament_width=20,
                             filament_mask_ignore=True)
    assert np.all(work2[:, rows >= 10, :].std(axis=(1, 2)) > 0.5)
    inside = rows[:, None].repeat(48, 1) <= 7
    assert np.allclose(work2[:, inside].mean(1), 0, atol=0.05)
    assert np.allclose(work2[:, rows >= 10, :].reshape(3, -1).std(1), 1, atol=0.05)
    with pytest.raises(UsageError, match="filament width"):
        prepare_stack(imgs, 24, target_radius=18, target_nx=48, filament_width=70)


def test_bad_options_give_one_line_errors(tmp_path):
    cases = [(dict(CTF=True, VPP=True), "exclusive"), (dict(ctf_star="x.star"), "needs CTF"),
             (dict(filament_width=0), "filament_width"),
             (dict(filament_mask_ignore=True), "needs a filament_width")]
    for kw, msg in cases:
        with pytest.raises(UsageError, match=msg) as e:
            PrepParams(**kw)
        assert "\n" not in str(e.value)
    imgs, _ = _views(1, n_views=1, per=8)
    eio.write(tmp_path / "v.hdf", imgs, stack=True)
    with pytest.raises(UsageError, match="ctf_star") as e:     # no CTF source, fails early
        isac2(tmp_path / "v.hdf", tmp_path / "o", 24, IsacParams(img_per_grp=4,
              minimum_grp_size=2, target_radius=18, target_nx=48), PrepParams(CTF=True))
    assert "\n" not in str(e.value) and not (tmp_path / "o").exists()


@pytest.mark.mpi
@pytest.mark.slow
def test_prealignment_under_two_ranks_equals_serial(tmp_path):
    imgs, _ = _views(7, n_views=2, per=10)
    s = shrink_ratio(24, 18)
    np.save(tmp_path / "small.npy", shrink(subtract_inside_mean(imgs, 24), s))
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        import numpy as np
        from emsh.parallel import get_comm
        from emsh_isac2.prealign import prealign
        c = get_comm()
        small = np.load({str(tmp_path / 'small.npy')!r})
        out = prealign(small, {s!r}, target_radius=18, comm=c).shifts
        if c.rank == 0:
            np.save(sys.argv[1], out)
            print(c.size)
    """))
    # one FFT backend and one thread: the aligner is then bit-for-bit independent of
    # how the images are split (see emsh_isac2.align)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3]),
               EMSH_FFT="scipy", EMSH_FFT_THREADS="1", OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    runs = {}
    for n_ranks in (1, 2):
        cmd = [str(MPIEXEC), "-n", "2"] if n_ranks == 2 else []
        res = tmp_path / f"r{n_ranks}.npy"
        out = subprocess.run(cmd + [sys.executable, str(script), str(res)],
                             capture_output=True, text=True, timeout=300, env=env)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == [str(n_ranks)]
        runs[n_ranks] = np.load(res)
    assert np.array_equal(runs[1], runs[2])
