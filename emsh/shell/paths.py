"""Where the shell keeps its files: command history and the log of internal errors.

Both live in the user's data folder, ``$XDG_DATA_HOME/emsh`` (default
``~/.local/share/emsh``). ``EMSH_HISTORY`` names another history file; set to an empty
string it turns the saved history off. Nothing is created until it is written.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_dir", "history_path", "bug_log_path"]


def data_dir() -> Path:
    """``$XDG_DATA_HOME/emsh``, else ``~/.local/share/emsh``."""
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "emsh"


def history_path() -> Path | None:
    """The shell's history file (``EMSH_HISTORY``), or None when history is not saved."""
    env = os.environ.get("EMSH_HISTORY")
    if env is not None:
        return Path(env).expanduser() if env.strip() else None
    return data_dir() / "history"


def bug_log_path() -> Path:
    """The file that receives the tracebacks of internal errors (bugs in emsh)."""
    return data_dir() / "errors.log"
