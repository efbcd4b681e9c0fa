"""What the shell offers on Tab, worked out without a terminal.

Two entry points, both pure functions of the text before the cursor:

* :func:`complete_statement`: at the ``emsh>`` prompt. Operation codes word by word
  (``AP`` offers ``AP SH`` and ``AP REF``), control words, ``HELP <code>``,
  ``key=value`` options of the operation on the line, procedure files after ``@``,
  and ``[variables]`` after ``[``.
* :func:`complete_answer`: at an operation's question. What fits the prompt's kind:
  file names (filtered by the prompt's patterns; folders always), the choices of a
  ``choice`` prompt, ``Y``/``N``, and ``[variables]`` anywhere after ``[``.

A :class:`Candidate` says what to insert and how many characters before the cursor it
replaces; :mod:`emsh.shell.completer` hands it to prompt_toolkit unchanged.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emsh.spec import FILE_KINDS, Prompt

__all__ = ["Candidate", "CONTROL_WORDS", "SHELL_WORDS", "complete_statement",
           "complete_answer", "complete_code", "complete_variable", "complete_path"]

#: Statements of the language that are not operations, offered with the codes.
CONTROL_WORDS = ("DO", "ENDDO", "IF", "ELSEIF", "ELSE", "ENDIF", "GOTO", "EXIT", "CYCLE",
                 "RE", "EN")
#: Words the shell itself understands.
SHELL_WORDS = ("HELP",)

_VAR_OPEN = re.compile(r"\[([A-Za-z0-9_\-]*)$")
_MAX_FILES = 500


@dataclass(frozen=True)
class Candidate:
    """One completion.

    Attributes:
        text: what replaces the last ``replace`` characters before the cursor.
        replace: how many characters before the cursor it replaces (>= 0).
        display: what the menu shows (default: ``text``).
        meta: a short note beside it (an operation's title, a variable's value).
    """

    text: str
    replace: int
    display: str = ""
    meta: str = ""


def complete_variable(before: str, variables: Mapping[str, Any]) -> list[Candidate] | None:
    """``[na`` -> ``[name]`` for every variable starting with ``na``; None if no ``[`` is open."""
    m = _VAR_OPEN.search(before)
    if m is None:
        return None
    prefix = m.group(1)
    out = []
    for name in sorted(variables):
        if name.startswith(prefix):
            value = variables[name]
            meta = repr(value) if isinstance(value, str) else f"{float(value):.7g}"
            out.append(Candidate(f"[{name}]", len(prefix) + 1, meta=meta))
    return out


def complete_code(typed: str, codes: Iterable[str], titles: Mapping[str, str] | None = None
                  ) -> list[Candidate]:
    """Operation codes (and control words) that extend what is typed, word by word.

    ``typed`` is the start of the line (leading blanks removed). Each of its words but
    the last must equal the code's word (any case); the last must start it. ``AP`` gives
    ``AP`` itself (when it exists), ``AP SH``, ``AP REF``; ``AP `` (with the blank) gives
    only the longer codes. The candidate replaces all of ``typed``.
    """
    words = typed.upper().split()
    partial = "" if not words or typed[-1:].isspace() else words.pop()
    titles = titles or {}
    out = []
    for code in codes:
        cw = code.split()
        if len(cw) <= len(words) or cw[:len(words)] != words:
            continue
        if not cw[len(words)].startswith(partial):
            continue
        out.append(Candidate(code, len(typed), meta=titles.get(code, "")))
    out.sort(key=lambda c: (len(c.text.split()), c.text))
    return out


def complete_path(token: str, patterns: Iterable[str] = (), cwd: str | os.PathLike = "."
                  ) -> list[Candidate]:
    """File names completing ``token`` (a path as typed, relative to ``cwd``).

    Folders are always offered (with a trailing ``/``); files only when they match one
    of ``patterns`` (fnmatch, case-insensitive) or when no patterns are given. Hidden
    entries appear only when the typed name starts with a dot. At most 500 names.
    """
    head, sep, prefix = token.rpartition("/")
    folder = Path(cwd) / (head or "/") if sep else Path(cwd)
    pats = [p.lower() for p in patterns]
    dirs, files = [], []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        name = entry.name
        if not name.startswith(prefix) or (name.startswith(".") and not prefix.startswith(".")):
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        if is_dir:
            dirs.append(name + "/")
        elif not pats or any(fnmatch.fnmatchcase(name.lower(), p) for p in pats):
            files.append(name)
    names = sorted(dirs) + sorted(files)
    return [Candidate(n, len(prefix), display=n) for n in names[:_MAX_FILES]]


def _procedure_files(token: str, cwd, project_ext: str) -> list[Candidate]:
    exts = {project_ext, "spi", "pam", "proc", "emsh"}
    found = complete_path(token, [f"*.{e}" for e in exts], cwd)
    out = []
    for c in found:
        if c.text.endswith("/"):
            out.append(c)
            continue
        stem = c.text.rsplit(".", 1)[0]  # @name finds name.<ext>
        out.append(Candidate(stem, c.replace, display=c.text))
    return out


def complete_statement(before: str, registry, variables: Mapping[str, Any], *,
                       cwd: str | os.PathLike = ".", project_ext: str = "spi"
                       ) -> list[Candidate]:
    """Completions at the statement prompt.

    Args:
        before: the text of the line before the cursor.
        registry: the session's :class:`emsh.registry.Registry`.
        variables: name -> value of the variables in scope.
        cwd: folder that relative file names start from.
        project_ext: the session's procedure extension (for ``@name``).
    """
    found = complete_variable(before, variables)
    if found is not None:
        return found
    stripped = before.lstrip()
    if stripped.startswith("@"):
        token = stripped.lstrip("@")
        if "(" in token or " " in token:
            return []
        return _procedure_files(token, cwd, project_ext)
    titles = {}
    for op in registry.operations():
        for code in (op.code, *op.aliases):
            titles.setdefault(code, op.title)
    help_match = re.match(r"^HELP\s+", stripped, re.I)
    if help_match:
        return complete_code(stripped[help_match.end():], registry.codes(), titles)
    if re.fullmatch(r"[A-Za-z0-9 ]*", stripped):
        codes = [*registry.codes(), *CONTROL_WORDS, *SHELL_WORDS]
        found = complete_code(stripped, codes, titles)
        if found:
            return found
    return _complete_option(stripped, registry)


def _complete_option(line: str, registry) -> list[Candidate]:
    """``key=`` for the options of the operation the line starts with."""
    match = registry.match(line)
    if match is None:
        return []
    op, rest = match
    if not op.options or (not rest and not line[-1:].isspace()):
        return []
    word = "" if line[-1:].isspace() else line.split()[-1]
    if "=" in word or "[" in word:
        return []
    used = {w.split("=", 1)[0].lower() for w in rest.split() if "=" in w}
    return [Candidate(f"{o.name}=", len(word), meta=o.help or o.type) for o in op.options
            if o.name.lower().startswith(word.lower()) and o.name.lower() not in used]


def complete_answer(before: str, prompt: Prompt | None, variables: Mapping[str, Any], *,
                    cwd: str | os.PathLike = ".") -> list[Candidate]:
    """Completions at an operation's question.

    Args:
        before: the answer typed so far (before the cursor).
        prompt: the prompt being answered; None when unknown (a forwarded ``?question?``):
            then file names and variables are offered.
        variables: name -> value of the variables in scope.
        cwd: folder that relative file names start from.
    """
    found = complete_variable(before, variables)
    if found is not None:
        return found
    kind = prompt.kind if prompt is not None else "file"
    token = before.lstrip()
    if kind in FILE_KINDS:
        if " " in token or "@" in token or "{" in token:
            return []
        patterns = prompt.patterns if prompt is not None else ()
        return complete_path(token, patterns, cwd)
    if kind == "choice":
        word = token.upper()
        return [Candidate(c, len(token)) for c in prompt.choices if c.startswith(word)]
    if kind == "yesno":
        word = token.upper()
        return [Candidate(c, len(token), meta=m) for c, m in (("Y", "yes"), ("N", "no"))
                if c.startswith(word)]
    if kind == "numbers" and token and not re.match(r"^[\s(]*[-+0-9.\[(]", token):
        return complete_path(token, (), cwd)  # a selection doc file
    return []
