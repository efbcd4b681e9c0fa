"""Run every benchmark module (``bench_*.py``) and print their results as one JSON object.

Each module provides ``run() -> dict``. ``python -m bench fft`` runs only the modules
whose name contains ``fft``.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(p.stem for p in here.glob("bench_*.py"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    report = {
        "machine": {"python": platform.python_version(), "cpu": platform.processor(),
                    "cores": __import__("os").cpu_count()},
        "results": {},
    }
    for name in names:
        t0 = time.perf_counter()
        mod = importlib.import_module(f"bench.{name}")
        result = mod.run()
        result["wall_s"] = round(time.perf_counter() - t0, 2)
        report["results"][name.removeprefix("bench_")] = result
        print(f"# {name} done in {result['wall_s']} s", file=sys.stderr, flush=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
