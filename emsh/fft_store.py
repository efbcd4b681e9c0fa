"""On-disk memory of :mod:`emsh.fft`: FFTW wisdom and the ``auto`` backend choices.

Both belong to one machine, so the files carry a host tag (host name and CPU
architecture) and live in the cache folder (:func:`emsh.config.cache_dir`):

* ``fftw_wisdom_<host>.pkl``: FFTW's exported wisdom, a pickled tuple of bytes; read
  with an unpickler that refuses every class or function;
* ``fft_backend_<host>.json``: ``{"host": ..., "choices": {key: record}}``, one record
  per transform key (``"rfft 4x64x64 nd2 t8"``: kind, full shape, ndim, threads) with
  the chosen ``backend`` (``fftw`` or ``scipy``) and the timings that decided it.

Missing or damaged files are ignored (with a log line on the ``emsh.fft`` logger);
writes are atomic and skipped quietly when the folder cannot be written. This module
is internal to :mod:`emsh.fft` and imports nothing from it.
"""

from __future__ import annotations

import functools
import json
import logging
import pickle
import platform
import re
import socket
import threading
from pathlib import Path

from emsh import config
from emsh.io._atomic import atomic_open

_log = logging.getLogger("emsh.fft")    # the FFT layer's messages, wherever they come from


def _key_text(kind: str, full: tuple[int, ...], ndim: int, nthreads: int) -> str:
    """The choices-file key of one transform: kind, full shape, ndim and threads."""
    return f"{kind} {'x'.join(map(str, full))} nd{ndim} t{nthreads}"


@functools.lru_cache(maxsize=1)
def _host_tag() -> str:
    """Host name and CPU architecture: wisdom and timings belong to one machine."""
    raw = f"{socket.gethostname()}-{platform.machine()}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("._") or "host"


class _NoClasses(pickle.Unpickler):
    """Reads pickles of plain tuples and bytes only; any class or function is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a wisdom file")


class _Disk:
    """FFTW wisdom and auto-backend choices of this machine, kept in the cache folder.

    Reads tolerate missing or damaged files (ignored, with a log line); writes are
    atomic and skipped quietly when the folder cannot be written.
    """

    def __init__(self):
        self.lock = threading.RLock()
        self.wisdom_dir: Path | None = None     # folder whose wisdom was imported
        self.choices_dir: Path | None = None    # folder whose choices were read
        self.choices: dict[str, dict] = {}

    @staticmethod
    def paths() -> tuple[Path, Path, Path]:
        d, tag = config.cache_dir(), _host_tag()
        return d, d / f"fftw_wisdom_{tag}.pkl", d / f"fft_backend_{tag}.json"

    @staticmethod
    def _read_wisdom(path: Path):
        try:
            with open(path, "rb") as fh:
                wisdom = _NoClasses(fh).load()
        except FileNotFoundError:
            return None
        except Exception as exc:  # a damaged cache file is ignored, never fatal
            _log.warning("ignoring unreadable FFTW wisdom file %s: %s", path, exc)
            return None
        if isinstance(wisdom, tuple) and all(isinstance(w, bytes) for w in wisdom):
            return wisdom
        _log.warning("ignoring FFTW wisdom file %s: not a tuple of bytes", path)
        return None

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        try:
            with atomic_open(path, "wb", overwrite=True) as fh:
                fh.write(data)
        except OSError as exc:
            _log.debug("cannot save %s (%s); carrying on without it", path, exc)

    def load_wisdom(self, pyfftw) -> None:
        """Import this folder's wisdom file into ``pyfftw`` once (again after a folder change)."""
        with self.lock:
            d, wpath, _ = self.paths()
            if self.wisdom_dir == d:
                return
            wisdom = self._read_wisdom(wpath)
            if wisdom is not None:
                pyfftw.import_wisdom(wisdom)
            self.wisdom_dir = d

    def save_wisdom(self, pyfftw) -> None:
        """Merge the file's wisdom (other processes may have added some) and write ours."""
        with self.lock:
            _, wpath, _ = self.paths()
            on_disk = self._read_wisdom(wpath)
            if on_disk is not None:
                pyfftw.import_wisdom(on_disk)
            wisdom = pyfftw.export_wisdom()
            if wisdom != on_disk:
                self._write(wpath, pickle.dumps(wisdom, protocol=4))

    def _read_choices(self, path: Path) -> dict[str, dict]:
        try:
            data = json.loads(path.read_text())
            items = data["choices"].items()
        except FileNotFoundError:
            return {}
        except Exception as exc:  # a damaged cache file is ignored, never fatal
            _log.warning("ignoring unreadable FFT choices file %s: %s", path, exc)
            return {}
        return {k: v for k, v in items
                if isinstance(v, dict) and v.get("backend") in ("fftw", "scipy")}

    def choice(self, key: str) -> dict | None:
        with self.lock:
            d, _, cpath = self.paths()
            if self.choices_dir != d:
                self.choices = self._read_choices(cpath)
                self.choices_dir = d
            return self.choices.get(key)

    def record(self, key: str, rec: dict) -> None:
        with self.lock:
            _, _, cpath = self.paths()
            merged = self._read_choices(cpath)
            merged.update(self.choices)
            merged[key] = rec
            self.choices = merged
            text = json.dumps({"host": _host_tag(), "choices": merged}, indent=1, sort_keys=True)
            self._write(cpath, text.encode())

    def forget(self) -> None:
        with self.lock:
            self.wisdom_dir = self.choices_dir = None
            self.choices = {}
