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


@pytest.fixture
def rng() -> np.random.Generator:
    """A generator with a fixed seed, so every test is repeatable."""
    return np.random.default_rng(20261121)
