"""One communicator for the whole program: MPI under ``mpiexec``, a serial stand-in otherwise.

SPMD model: every rank runs the same interpreter on the same script. Rank 0 alone
reads the terminal, prints and writes shared files. An operation that splits work
takes the communicator from its context; run serially it sees size 1 and does the
whole job. mpi4py is imported only when the process was started by an MPI launcher,
so a plain ``emsh`` never initialises MPI.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache

import numpy as np

# Variables set by MPICH/hydra, Open MPI, Intel MPI, Slurm's PMI/PMIx launchers.
_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")


def launched_by_mpi() -> bool:
    """True when this process was started by an MPI launcher (or ``EMSH_MPI=1``)."""
    flag = os.environ.get("EMSH_MPI")
    if flag is not None:
        return flag not in ("0", "", "no", "off")
    return any(v in os.environ for v in _LAUNCHER_VARS)


def split_range(n: int, size: int, rank: int) -> slice:
    """The contiguous block of ``range(n)`` owned by ``rank`` of ``size`` (sizes differ by <= 1)."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


class SerialComm:
    """The communicator of a single process: every collective is the identity."""

    rank = 0
    size = 1
    is_mpi = False

    def barrier(self) -> None:
        """Nothing to wait for."""

    def bcast(self, obj, root: int = 0):
        """Return ``obj``."""
        return obj

    def gather(self, obj, root: int = 0) -> list:
        """``[obj]``."""
        return [obj]

    def allgather(self, obj) -> list:
        """``[obj]``."""
        return [obj]

    def allreduce(self, arr: np.ndarray) -> np.ndarray:
        """Sum over ranks: the array itself (a copy, as MPI would return)."""
        return np.array(arr, copy=True)

    def allreduce_scalar(self, value, op: str = "sum"):
        """Reduce a Python number over ranks (``sum``, ``max`` or ``min``)."""
        return value

    def gather_rows(self, arr: np.ndarray) -> np.ndarray:
        """Concatenate per-rank row blocks in rank order, on every rank."""
        return np.asarray(arr)

    def my_slice(self, n: int) -> slice:
        """This rank's block of ``range(n)``."""
        return split_range(n, self.size, self.rank)

    def abort(self, code: int = 1) -> None:
        """End the program."""
        raise SystemExit(code)


class MPIComm(SerialComm):
    """mpi4py's COMM_WORLD behind the same small interface as :class:`SerialComm`."""

    is_mpi = True

    def __init__(self):
        from mpi4py import MPI

        self._mpi = MPI
        self._comm = MPI.COMM_WORLD
        self.rank = self._comm.Get_rank()
        self.size = self._comm.Get_size()
        # Ranks share the node's cores: unless told otherwise, each FFT uses its share.
        if self.size > 1 and "EMSH_FFT_THREADS" not in os.environ:
            os.environ["EMSH_FFT_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.size))

    def barrier(self) -> None:
        self._comm.Barrier()

    def bcast(self, obj, root: int = 0):
        return self._comm.bcast(obj, root=root)

    def gather(self, obj, root: int = 0):
        return self._comm.gather(obj, root=root)

    def allgather(self, obj) -> list:
        return self._comm.allgather(obj)

    def allreduce(self, arr: np.ndarray) -> np.ndarray:
        src = np.ascontiguousarray(arr)
        out = np.empty_like(src)
        self._comm.Allreduce(src, out, op=self._mpi.SUM)
        return out

    def allreduce_scalar(self, value, op: str = "sum"):
        ops = {"sum": self._mpi.SUM, "max": self._mpi.MAX, "min": self._mpi.MIN}
        return self._comm.allreduce(value, op=ops[op])

    def gather_rows(self, arr: np.ndarray) -> np.ndarray:
        parts = self._comm.allgather(np.asarray(arr))
        return np.concatenate(parts, axis=0)

    def abort(self, code: int = 1) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self._comm.Abort(code)


@lru_cache(maxsize=1)
def get_comm() -> SerialComm:
    """The program's communicator: :class:`MPIComm` under an MPI launcher, else serial."""
    if launched_by_mpi():
        try:
            return MPIComm()
        except (ImportError, RuntimeError) as exc:  # no MPI library: say so, run serially
            print(f"emsh: MPI requested but unavailable ({exc}); running on one process",
                  file=sys.stderr)
    return SerialComm()
