"""The operation registry: plugin discovery, lookup by code, lazy implementations.

Plugins come from three places, in this order:

1. the built-in operations of emsh (``emsh.ops:PLUGIN``);
2. installed packages exposing a :class:`emsh.spec.Plugin` through the ``emsh.plugins``
   entry-point group (``[project.entry-points."emsh.plugins"] name = "pkg:PLUGIN"``);
3. Python files or packages in the folders of ``EMSH_PLUGIN_PATH`` (``:``-separated)
   that define a module-level ``PLUGIN``.

A plugin that fails to import or whose specification is unsound becomes a warning in
:attr:`Registry.problems`; the others still load. A code provided twice keeps the
first provider and records a warning naming both.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from importlib.metadata import entry_points
from pathlib import Path

from emsh.errors import PluginError, UsageError
from emsh.spec import Operation, Plugin, check_signature, validate_operation

ENTRY_POINT_GROUP = "emsh.plugins"
BUILTIN = "emsh.ops:PLUGIN"


def normalize_code(text: str) -> str:
    """Upper-case and collapse blanks: ``' ap   sh '`` -> ``'AP SH'``."""
    return " ".join(text.upper().split())


class Registry:
    """All operations known to a session.

    A registry is an ordinary object, so tests build isolated ones:
    ``Registry([my_plugin])`` holds only that plugin; ``Registry.discover()`` loads
    the built-ins, the installed plugins and ``EMSH_PLUGIN_PATH``.
    """

    def __init__(self, plugins: Iterable[Plugin] = ()):
        self._ops: dict[str, Operation] = {}
        self._impls: dict[str, Callable] = {}
        self.plugins: dict[str, Plugin] = {}
        self.problems: list[str] = []
        for plugin in plugins:
            self.add_plugin(plugin)

    # -- building --------------------------------------------------------------
    @classmethod
    def discover(cls, plugin_path: str | None = None) -> Registry:
        """Registry with built-in, entry-point and ``EMSH_PLUGIN_PATH`` plugins."""
        reg = cls()
        seen_builtin = False
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name != "builtin"):
            seen_builtin |= ep.value == BUILTIN
            reg._load(ep.value, lambda ep=ep: ep.load(), f"entry point {ep.name!r}")
        if not seen_builtin:  # running from a source tree without installed metadata
            reg._load(BUILTIN, lambda: _import_attr(BUILTIN), "built-in operations")
        path = os.environ.get("EMSH_PLUGIN_PATH", "") if plugin_path is None else plugin_path
        for folder in filter(None, path.split(os.pathsep)):
            for src in _plugin_sources(Path(folder)):
                reg._load(str(src), lambda src=src: _load_file_plugin(src), f"plugin file {src}")
        return reg

    def _load(self, what: str, loader: Callable[[], object], label: str) -> None:
        try:
            plugin = loader()
        except Exception as exc:  # a broken plugin must not stop the shell
            self.problems.append(f"{label} ({what}) failed to load: {type(exc).__name__}: {exc}")
            return
        if not isinstance(plugin, Plugin):
            self.problems.append(f"{label} ({what}) is not an emsh.spec.Plugin")
            return
        self.add_plugin(plugin)

    def add_plugin(self, plugin: Plugin) -> None:
        """Add every sound operation of ``plugin``; record problems for the others."""
        if plugin.name in self.plugins:
            self.problems.append(f"plugin {plugin.name!r} is provided twice; the second is ignored")
            return
        self.plugins[plugin.name] = plugin
        for op in plugin.operations:
            op = replace(op, plugin=plugin.name)
            bad = validate_operation(op)
            if bad:
                self.problems.extend(f"plugin {plugin.name!r}: {b}" for b in bad)
                continue
            for code in (op.code, *op.aliases):
                key = normalize_code(code)
                if key in self._ops:
                    first = self._ops[key].plugin
                    self.problems.append(
                        f"operation {key!r} is provided by {first!r} and {plugin.name!r}; "
                        f"using {first!r} (write {plugin.name}:{key} for the other)"
                    )
                    self._ops.setdefault(f"{plugin.name.upper()}:{key}", op)
                    continue
                self._ops[key] = op
                self._ops[f"{plugin.name.upper()}:{key}"] = op

    # -- lookup ----------------------------------------------------------------
    def __contains__(self, code: str) -> bool:
        return normalize_code(code) in self._ops

    def get(self, code: str) -> Operation:
        """The operation with this exact code (or ``plugin:CODE``)."""
        try:
            return self._ops[normalize_code(code)]
        except KeyError:
            raise UsageError(f"unknown operation {code!r}; 'emsh ops' lists them") from None

    def codes(self) -> list[str]:
        """All unqualified codes and aliases, sorted."""
        return sorted(k for k in self._ops if ":" not in k)

    def operations(self) -> list[Operation]:
        """Each operation once, sorted by code."""
        uniq = {id(op): op for op in self._ops.values()}
        return sorted(uniq.values(), key=lambda o: o.code)

    def match(self, line: str) -> tuple[Operation, str] | None:
        """Longest match of up to four leading words of ``line``; returns (op, rest of line).

        ``FS [max],[min]`` -> (FS, ``"[max],[min]"``); ``UD S I,[grp]`` -> (UD S, ``"I,[grp]"``).
        """
        text = line.strip()
        words = text.split()
        for n in range(min(4, len(words)), 0, -1):
            key = normalize_code(" ".join(words[:n]))
            if key in self._ops:
                rest = text
                for w in words[:n]:
                    rest = rest[rest.index(w) + len(w):]
                return self._ops[key], rest.strip()
        return None

    def implementation(self, op: Operation) -> Callable:
        """The callable of ``op``, imported on first use and checked against its prompts."""
        key = f"{op.plugin}:{op.code}"
        if key not in self._impls:
            func = op.impl if callable(op.impl) else _import_attr(op.impl, op)
            check_signature(op, func)
            self._impls[key] = func
        return self._impls[key]


def _import_attr(ref: str, op: Operation | None = None):
    module, _, attr = ref.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        who = f"{op.plugin}:{op.code}: " if op else ""
        raise PluginError(f"{who}cannot import implementation {ref!r}: {exc}") from exc


def _plugin_sources(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    files = [p for p in folder.glob("*.py") if not p.name.startswith("_")]
    pkgs = [p for p in folder.iterdir() if (p / "__init__.py").is_file()]
    return sorted(files + pkgs)


def _load_file_plugin(src: Path) -> object:
    name = f"emsh_user_plugin_{src.stem}"
    target = src / "__init__.py" if src.is_dir() else src
    spec = importlib.util.spec_from_file_location(
        name, target, submodule_search_locations=[str(src)] if src.is_dir() else None
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    if not hasattr(module, "PLUGIN"):
        raise PluginError(f"{src} defines no PLUGIN")
    return module.PLUGIN
