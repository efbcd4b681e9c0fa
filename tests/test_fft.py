"""Tests of emsh.fft: every backend against a float64 numpy reference, round trips,
centring, normalisation, the plan cache, wisdom on disk, backend choice, bad input."""

from __future__ import annotations

import json
import pickle
import threading
from collections import OrderedDict

import numpy as np
import pyfftw
import pytest

from emsh import config, fft
from emsh.errors import UsageError

BACKENDS = ["fftw", "scipy", "numpy", "auto"]
# (full shape, ndim): 2D and 3D, even and odd sizes, with and without batch axes.
CASES = [((4, 32, 32), 2), ((3, 27, 25), 2), ((48, 40), 2), ((2, 16, 16, 16), 3),
         ((15, 17, 13), 3), ((2, 10, 9, 12), 3)]
TOL = 1e-5


@pytest.fixture(autouse=True)
def _fresh(tmp_path, monkeypatch):
    """Each test gets an empty cache folder, default settings and no cached plans."""
    monkeypatch.setenv("EMSH_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("EMSH_FFT", "EMSH_FFT_THREADS", "EMSH_FFT_CACHE_MB"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("EMSH_FFT_PLAN_TIMELIMIT", "1")   # bounded planning on a busy machine
    fft.clear_cache()
    yield
    fft.clear_cache()


def _rel(x, ref) -> float:
    return float(np.abs(np.asarray(x, np.complex128) - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape,ndim", CASES)
def test_backends_match_float64_reference(backend, shape, ndim, rng, monkeypatch):
    monkeypatch.setenv("EMSH_FFT", backend)
    ax = tuple(range(-ndim, 0))
    a = rng.standard_normal(shape).astype(np.float32)
    z = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    a64, z64 = a.astype(np.float64), z.astype(np.complex128)
    kept_a, kept_z = a.copy(), z.copy()

    F = fft.rfftn(a, ndim)
    assert F.dtype == np.complex64 and F.shape == shape[:-1] + (shape[-1] // 2 + 1,)
    assert _rel(F, np.fft.rfftn(a64, axes=ax)) < TOL
    back = fft.irfftn(F, shape[-ndim:], ndim)
    assert back.dtype == np.float32 and back.shape == shape
    assert _rel(back, np.fft.irfftn(F.astype(np.complex128), s=shape[-ndim:], axes=ax)) < TOL
    Z = fft.fftn(z, ndim)
    assert Z.dtype == np.complex64 and _rel(Z, np.fft.fftn(z64, axes=ax)) < TOL
    zi = fft.ifftn(z, ndim)
    assert zi.dtype == np.complex64 and _rel(zi, np.fft.ifftn(z64, axes=ax)) < TOL
    # inputs are never touched, whatever the backend (FFTW c2r destroys its input)
    assert np.array_equal(a, kept_a) and np.array_equal(z, kept_z)
    Fc = F.copy()
    fft.irfftn(F, shape[-ndim:], ndim)
    assert np.array_equal(F, Fc)


@pytest.mark.parametrize("shape,ndim", [((6, 76, 76), 2), ((9, 11, 10), 3)])
def test_backends_agree_to_float32_rounding(shape, ndim, rng, monkeypatch):
    a = rng.standard_normal(shape).astype(np.float32)
    out = {}
    for backend in ("fftw", "scipy", "numpy"):
        monkeypatch.setenv("EMSH_FFT", backend)
        F = fft.rfftn(a, ndim)
        out[backend] = (F, fft.irfftn(F, shape[-ndim:], ndim))
    for backend in ("fftw", "scipy"):
        assert _rel(out[backend][0], out["numpy"][0]) < 2e-6
        assert _rel(out[backend][1], out["numpy"][1]) < 2e-6


@pytest.mark.parametrize("backend", ["fftw", "scipy", "numpy"])
def test_round_trips(backend, rng, monkeypatch):
    monkeypatch.setenv("EMSH_FFT", backend)
    for shape, ndim in [((5, 64, 63), 2), ((3, 20, 21, 22), 3), ((7, 100), 1)]:
        a = rng.standard_normal(shape).astype(np.float32)
        assert np.abs(fft.irfftn(fft.rfftn(a, ndim), shape[-ndim:], ndim) - a).max() < 5e-6
        z = (a + 1j * a[..., ::-1]).astype(np.complex64)
        assert np.abs(fft.ifftn(fft.fftn(z, ndim), ndim) - z).max() < 5e-6


@pytest.mark.parametrize("backend", ["fftw", "scipy", "numpy"])
def test_inverse_normalisation(backend, monkeypatch):
    monkeypatch.setenv("EMSH_FFT", backend)
    shape = (24, 30)
    spec = np.zeros((2, 24, 16), np.complex64)
    spec[:, 0, 0] = 24 * 30                 # the DC term of a constant-1 image
    assert np.allclose(fft.irfftn(spec, shape), 1.0, atol=1e-6)
    flat = np.ones((2, 24, 30), np.complex64)  # flat spectrum -> unit delta at the origin
    d = fft.ifftn(flat)
    assert abs(d[1, 0, 0] - 1) < 1e-6 and np.abs(d).sum() == pytest.approx(2.0, abs=1e-4)
    # forward is unnormalised
    assert fft.rfftn(np.ones((8, 8, 8), np.float32), 3)[0, 0, 0] == pytest.approx(512.0)


@pytest.mark.parametrize("shape", [(16, 16), (15, 17), (8, 9, 10)])
def test_centred_helpers_origin_at_n_over_2(shape, monkeypatch):
    monkeypatch.setenv("EMSH_FFT", "fftw")
    ndim = len(shape)
    delta = np.zeros(shape, np.float32)
    centre = tuple(n // 2 for n in shape)
    delta[centre] = 1
    spec = fft.centered_fftn(delta, ndim)
    assert np.abs(spec - 1).max() < 1e-6            # flat, zero phase
    back = fft.centered_ifftn(spec, ndim)
    assert np.abs(back - delta).max() < 1e-6
    # a shift by d from the centre gives the ramp exp(-2 pi i k.d / n), k centred on n//2
    shifted = np.roll(delta, 1, axis=-1)
    k = np.arange(shape[-1]) - shape[-1] // 2
    ramp = np.exp(-2j * np.pi * k / shape[-1])
    assert np.abs(fft.centered_fftn(shifted, ndim) - ramp).max() < 1e-5
    # the spectrum of a constant is a delta at the centre
    const = fft.centered_fftn(np.ones(shape, np.float32), ndim)
    assert abs(const[centre] - np.prod(shape)) < 1e-3 and np.abs(const).sum() == pytest.approx(
        np.prod(shape), rel=1e-5)


def test_plan_cache_reuses_plans(rng, monkeypatch):
    monkeypatch.setenv("EMSH_FFT", "fftw")
    a = rng.standard_normal((6, 40, 40)).astype(np.float32)
    b = rng.standard_normal((6, 40, 40)).astype(np.float32)
    F1 = fft.rfftn(a)
    info = fft.plan_info()
    assert info["plans_created"] == 1 and info["plans"][0]["kind"] == "rfft"
    assert info["plans"][0]["shape"] == [6, 40, 40]
    F2 = fft.rfftn(b)
    info = fft.plan_info()
    assert info["plans_created"] == 1 and info["plan_hits"] == 1
    # results come in fresh arrays: the second call did not overwrite the first
    assert _rel(F1, np.fft.rfftn(a.astype(np.float64), axes=(-2, -1))) < TOL
    assert _rel(F2, np.fft.rfftn(b.astype(np.float64), axes=(-2, -1))) < TOL
    fft.rfftn(a[:5])                          # another batch size is another plan
    monkeypatch.setenv("EMSH_FFT_THREADS", "1")  # and so is another thread count
    fft.rfftn(a)
    assert fft.plan_info()["plans_created"] == 3
    fft.clear_cache()
    assert fft.plan_info()["plans_held"] == 0


def test_non_contiguous_and_other_dtypes(rng, monkeypatch):
    monkeypatch.setenv("EMSH_FFT", "fftw")
    a = rng.standard_normal((4, 40, 64))
    view = a[:, :, ::2]                       # float64, strided
    ref = np.fft.rfftn(view, axes=(-2, -1))
    assert _rel(fft.rfftn(view), ref) < TOL
    assert _rel(fft.rfftn(view.astype(">f4")), ref) < TOL


def test_cache_is_bounded_lru(rng, monkeypatch):
    monkeypatch.setenv("EMSH_FFT", "fftw")
    monkeypatch.setenv("EMSH_FFT_CACHE_MB", "0.05")  # 50 KiB: one 64x64 plan at most
    for n in (64, 60, 72):
        a = rng.standard_normal((1, n, n)).astype(np.float32)
        assert _rel(fft.rfftn(a), np.fft.rfftn(a.astype(np.float64), axes=(-2, -1))) < TOL
    info = fft.plan_info()
    assert info["plans_created"] == 3 and info["plans_held"] == 1
    assert info["plans"][0]["shape"] == [1, 72, 72]


def test_threads_share_plans_safely(rng, monkeypatch):
    monkeypatch.setenv("EMSH_FFT", "fftw")
    data = [rng.standard_normal((3, 48, 48)).astype(np.float32) for _ in range(6)]
    results = [None] * len(data)

    def work(i):
        for _ in range(5):
            results[i] = fft.irfftn(fft.rfftn(data[i]), (48, 48))

    pool = [threading.Thread(target=work, args=(i,)) for i in range(len(data))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    for a, r in zip(data, results):
        assert np.abs(r - a).max() < 5e-6
    assert fft.plan_info()["plans_created"] == 2


def _wisdom_only_plan(shape):
    a = pyfftw.empty_aligned(shape, "float32")
    b = pyfftw.empty_aligned(shape[:-1] + (shape[-1] // 2 + 1,), "complex64")
    return pyfftw.FFTW(a, b, axes=(-2, -1), flags=("FFTW_MEASURE", "FFTW_WISDOM_ONLY"),
                       threads=config.fft_threads())


def test_wisdom_written_and_reloaded(tmp_path, rng, monkeypatch):
    monkeypatch.setenv("EMSH_FFT", "fftw")
    fft.clear_cache(wisdom=True)
    shape = (3, 44, 50)
    fft.rfftn(rng.standard_normal(shape).astype(np.float32))
    path = tmp_path / "cache" / fft.plan_info()["wisdom_file"].rsplit("/", 1)[1]
    assert path.name.startswith("fftw_wisdom_") and path.suffix == ".pkl"
    wisdom = pickle.loads(path.read_bytes())
    assert isinstance(wisdom, tuple) and b"fftwf_wisdom" in wisdom[1]
    assert b"fftwf_" in wisdom[1].split(b"\n", 1)[1]       # holds at least one entry
    fft.clear_cache(wisdom=True)                           # FFTW forgets everything
    with pytest.raises(RuntimeError):
        _wisdom_only_plan(shape)
    fft.rfftn(np.zeros((2, 8, 8), np.float32))             # first use reloads the file
    assert fft.plan_info()["wisdom_loaded"]
    _wisdom_only_plan(shape)                               # known again, without measuring


def test_bad_cache_files_and_unwritable_folder(tmp_path, rng, monkeypatch):
    monkeypatch.setenv("EMSH_FFT", "fftw")
    a = rng.standard_normal((2, 30, 30)).astype(np.float32)
    ref = np.fft.rfftn(a.astype(np.float64), axes=(-2, -1))
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    monkeypatch.setenv("EMSH_CACHE_DIR", str(blocker / "cache"))   # cannot be created
    assert _rel(fft.rfftn(a), ref) < TOL
    monkeypatch.setenv("EMSH_FFT", "auto")
    assert fft.choose_backend((9, 32, 32)) in ("fftw", "scipy")
    # damaged files, and a pickle that would call code, are ignored
    cache = tmp_path / "cache"
    monkeypatch.setenv("EMSH_CACHE_DIR", str(cache))
    fft.clear_cache(wisdom=True)
    _, wpath, cpath = fft._disk.paths()
    cache.mkdir()
    wpath.write_bytes(pickle.dumps(OrderedDict(a=1)))
    cpath.write_text("{not json")
    assert _rel(fft.rfftn(a), ref) < TOL
    assert fft.choose_backend((9, 32, 32)) in ("fftw", "scipy")
    assert isinstance(pickle.loads(wpath.read_bytes()), tuple)     # rewritten as wisdom


def test_backend_override_by_environment(rng, monkeypatch):
    shape = (4, 64, 64)
    a = rng.standard_normal(shape).astype(np.float32)
    for name in ("scipy", "numpy"):
        monkeypatch.setenv("EMSH_FFT", name.upper())
        assert fft.choose_backend(shape) == name
        fft.rfftn(a)
        assert fft.plan_info()["plans_created"] == 0
    monkeypatch.setenv("EMSH_FFT", "fftw")
    assert fft.choose_backend(shape) == "fftw"
    fft.rfftn(a)
    assert fft.plan_info()["plans_created"] == 1
    monkeypatch.setenv("EMSH_FFT", "cufft")
    with pytest.raises(UsageError, match="EMSH_FFT"):
        fft.rfftn(a)
    monkeypatch.setenv("EMSH_FFT", "auto")
    monkeypatch.setenv("EMSH_FFT_THREADS", "0")
    with pytest.raises(UsageError, match="EMSH_FFT_THREADS"):
        fft.rfftn(a)


def test_auto_measures_once_and_remembers(tmp_path, monkeypatch):
    shape = (8, 64, 64)
    first = fft.choose_backend(shape, 2, "irfft")
    info = fft.plan_info()
    key = "irfft 8x64x64 nd2 t%d" % fft.threads()
    rec = info["choices"][key]
    assert rec["backend"] == first and rec["fftw_ms"] > 0 and rec["scipy_ms"] > 0
    assert fft.choose_backend(shape, 2, "irfft") == first and len(fft.plan_info()["choices"]) == 1
    assert fft.choose_backend((2, 20, 20)) == "scipy"      # too small to be worth a trial
    # the choice lives on disk: edit it, forget memory, and the edited choice is used
    path = tmp_path / "cache" / info["choices_file"].rsplit("/", 1)[1]
    data = json.loads(path.read_text())
    other = "scipy" if first == "fftw" else "fftw"
    data["choices"][key]["backend"] = other
    path.write_text(json.dumps(data))
    fft.clear_cache()
    assert fft.choose_backend(shape, 2, "irfft") == other
    a = np.ones((8, 64, 33), np.complex64)
    assert fft.irfftn(a, (64, 64))[0, 0, 0] == pytest.approx(1.0)
    fft.clear_cache(files=True)
    assert not path.exists()


def test_bad_input_is_a_clear_error():
    a = np.zeros((2, 8, 8, 8, 8), np.float32)
    with pytest.raises(UsageError, match="ndim=4"):
        fft.rfftn(a, 4)
    with pytest.raises(UsageError, match="ndim=0"):
        fft.fftn(a, 0)
    with pytest.raises(UsageError, match="empty"):
        fft.rfftn(np.zeros((0, 16, 16), np.float32))
    with pytest.raises(UsageError, match="empty"):
        fft.ifftn(np.zeros((4, 0), np.complex64))
    with pytest.raises(UsageError, match="at least 3 axes"):
        fft.rfftn(np.zeros((8, 8), np.float32), 3)
    with pytest.raises(UsageError, match="expected"):
        fft.irfftn(np.zeros((8, 8), np.complex64), (8, 8))   # needs last axis 5
    with pytest.raises(UsageError, match="ndim=4"):
        fft.centered_fftn(a, 4)
    with pytest.raises(UsageError, match="kind"):
        fft.choose_backend((8, 8), 2, "dct")


def test_good_size():
    assert fft.good_size(76) == 80 and fft.good_size(1) == 1 and fft.good_size(97) == 100
    assert fft.good_size(13) == 15 and fft.good_size(13, primes=(2, 3, 5, 7)) == 14
    assert fft.good_size(75) == 75 and fft.good_size(75, even=True) == 80

    def smooth(m, primes):
        for p in primes:
            while m % p == 0:
                m //= p
        return m == 1

    for n in range(1, 400):
        g = fft.good_size(n)
        assert g >= n and smooth(g, (2, 3, 5))
        assert not any(smooth(m, (2, 3, 5)) for m in range(n, g))
    with pytest.raises(UsageError):
        fft.good_size(0)


def test_misaligned_read_only_and_complex_inputs(rng, monkeypatch):
    monkeypatch.setenv("EMSH_FFT", "fftw")
    a = rng.standard_normal((3, 36, 36)).astype(np.float32)
    raw = np.empty(a.size + 1, np.float32)
    shifted = raw[1:].reshape(a.shape)          # contiguous but 4 bytes off alignment
    shifted[...] = a
    a.setflags(write=False)
    ref = np.fft.rfftn(a.astype(np.float64), axes=(-2, -1))
    assert _rel(fft.rfftn(shifted), ref) < TOL and _rel(fft.rfftn(a), ref) < TOL
    F = fft.rfftn(a)
    F.setflags(write=False)
    assert np.abs(fft.irfftn(F, (36, 36)) - a).max() < 5e-6
    with pytest.raises(UsageError, match="real input"):
        fft.rfftn(a + 1j)


def test_settings_from_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("EMSH_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert config.cache_dir() == tmp_path / "xdg" / "emsh"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config.cache_dir() == tmp_path / "home" / ".cache" / "emsh"
    monkeypatch.setenv("EMSH_FFT_THREADS", "3")
    monkeypatch.setenv("EMSH_FFT_CACHE_MB", "2")
    assert fft.threads() == 3 and config.fft_cache_bytes() == 2 * 2**20
    assert config.fft_plan_timelimit() == 1.0
    for var, bad, getter in (("EMSH_FFT_CACHE_MB", "-1", config.fft_cache_bytes),
                             ("EMSH_FFT_PLAN_TIMELIMIT", "soon", config.fft_plan_timelimit),
                             ("EMSH_FFT_THREADS", "2.5", config.fft_threads)):
        monkeypatch.setenv(var, bad)
        with pytest.raises(UsageError, match=var):
            getter()
