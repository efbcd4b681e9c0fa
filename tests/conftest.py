"""Shared fixtures: where the golden SPIDER data live, seeded generators, temp folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _golden_root() -> Path:
    env = os.environ.get("EMSH_GOLDEN")
    return Path(env) if env else REPO.parent / "shared" / "spider-golden"


GOLDEN = _golden_root()


@pytest.fixture(scope="session")
def golden() -> Path:
    """Folder of the real SPIDER program's inputs and outputs (../shared/spider-golden)."""
    if not (GOLDEN / "MANIFEST.md").exists():
        pytest.fail(f"golden SPIDER data not found at {GOLDEN}; set EMSH_GOLDEN")
    return GOLDEN


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Keep FFTW wisdom and backend choices of the test run out of the user's cache."""
    old = {k: os.environ.get(k) for k in ("EMSH_CACHE_DIR", "EMSH_FFT_PLAN_TIMELIMIT")}
    os.environ["EMSH_CACHE_DIR"] = str(tmp_path_factory.mktemp("emsh-cache"))
    os.environ["EMSH_FFT_PLAN_TIMELIMIT"] = "1"
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def rng() -> np.random.Generator:
    """A generator with a fixed seed, so every test is repeatable."""
    return np.random.default_rng(20261121)
