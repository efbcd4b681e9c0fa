"""Built-in operations of emsh, registered like any plugin (``emsh.ops:PLUGIN``).

Every module of this package whose name does not start with ``_`` is a family
(``docs``, ``images``, ``system`` ...) and defines ``OPERATIONS``, a list of
:class:`emsh.spec.Operation`. Importing a family must stay cheap: kernels, pyfftw and
mpi4py are imported inside the implementations (or by ``"module:function"`` impl
references resolved on first use), not at module level.
"""

from __future__ import annotations

import importlib
import pkgutil

from emsh.spec import Plugin


def families() -> list[str]:
    """Names of the family modules, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def _collect() -> Plugin:
    from emsh import __version__

    plugin = Plugin("builtin", version=__version__, summary="SPIDER-style operations built into emsh")
    for name in families():
        plugin.operations.extend(importlib.import_module(f"{__name__}.{name}").OPERATIONS)
    return plugin


PLUGIN = _collect()
