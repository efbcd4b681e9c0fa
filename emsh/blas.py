"""Matrix products over emsh's own threads, with BLAS itself single-threaded.

OpenBLAS (numpy's BLAS on Linux wheels) keeps its worker threads spinning for a while
after every threaded call. In emsh's hot loops a batched GEMM is followed at once by
threaded FFTW transforms, and the spinning threads steal the cores those transforms
need: on 2 cores the 2-D alignment benchmark ran 1.5x slower, and with other work on
the machine up to 5x slower (51 s instead of 10 s for 80 images x 100 references x 81
shifts). emsh therefore asks BLAS for one thread (``threadpoolctl``) the first time a
kernel calls :func:`matmul_rows`, and spreads the rows of large products over a pool of
Python threads instead (numpy releases the GIL inside BLAS), which go idle at once.

``EMSH_BLAS_THREADS`` sets the BLAS thread count emsh asks for (default 1); the pool
has :func:`emsh.config.fft_threads` workers.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from emsh import config

__all__ = ["limit_blas_threads", "matmul_rows"]

_limited = False
_pool: ThreadPoolExecutor | None = None
_MIN_ROWS = 256          # smaller products run in the calling thread


def limit_blas_threads() -> None:
    """Set BLAS to ``EMSH_BLAS_THREADS`` threads (default 1), once per process."""
    global _limited
    if _limited:
        return
    _limited = True
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:         # without threadpoolctl BLAS keeps its own setting
        return
    n = int(os.environ.get("EMSH_BLAS_THREADS", "1") or 1)
    threadpool_limits(limits=max(n, 1), user_api="blas")


def _workers() -> int:
    return config.fft_threads()


def matmul_rows(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[...] = a @ b`` for stacked matrices, the rows of ``a`` split over threads.

    Args:
        a: ``(batch, rows, k)``; b: ``(batch, k, cols)``; out: ``(batch, rows, cols)``.
    """
    global _pool
    limit_blas_threads()
    rows, n = a.shape[-2], _workers()
    if n <= 1 or rows < _MIN_ROWS:
        return np.matmul(a, b, out=out)
    if _pool is None or _pool._max_workers != n:
        _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="emsh-gemm")
    edges = np.linspace(0, rows, n + 1).astype(int)
    jobs = [_pool.submit(np.matmul, a[..., r0:r1, :], b, out=out[..., r0:r1, :])
            for r0, r1 in zip(edges[:-1], edges[1:]) if r1 > r0]
    for j in jobs:
        j.result()
    return out
