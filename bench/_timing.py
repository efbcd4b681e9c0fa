"""Timing helper shared by the benchmarks."""

from __future__ import annotations

import time

import numpy as np


def best_of(fn, repeats: int, warm: bool = False) -> tuple[float, float]:
    """Run ``fn`` ``repeats`` times; return (best, median) wall time in seconds.

    With ``warm`` it is run once first, untimed, so FFT plans, tables and caches exist.
    """
    if warm:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))
