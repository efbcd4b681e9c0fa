import numpy as np

from emsh import blas


def test_matmul_rows_equals_matmul_for_large_and_small_batches(monkeypatch):
    monkeypatch.setattr(blas, "_workers", lambda: 3)       # the split path, on any machine
    monkeypatch.setattr(blas, "_pool", None)
    rng = np.random.default_rng(3)
    for rows in (5, 1000):
        a = (rng.standard_normal((4, rows, 7)) + 1j * rng.standard_normal((4, rows, 7))).astype(np.complex64)
        b = (rng.standard_normal((4, 7, 9)) + 1j * rng.standard_normal((4, 7, 9))).astype(np.complex64)
        out = np.empty((4, rows, 9), np.complex64)
        blas.matmul_rows(a, b, out)
        assert np.allclose(out, a @ b, rtol=1e-5, atol=1e-5)
    assert blas._pool is not None and blas._pool._max_workers == 3


def test_blas_is_limited_to_one_thread_after_first_use():
    from threadpoolctl import threadpool_info

    blas.matmul_rows(np.ones((1, 2, 2)), np.ones((1, 2, 2)), np.empty((1, 2, 2)))
    libs = [i for i in threadpool_info() if i["user_api"] == "blas"]
    assert libs and all(i["num_threads"] == 1 for i in libs)
