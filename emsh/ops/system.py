"""Language-level operations: modes, shell commands, file queries, reading from the caller.

``MD`` (mode switches and ``SET SEED``), ``VM``/``SYS`` and ``VM M``/``SYS M`` (shell
commands), ``MY FL`` (flush the results log), ``IQ FI``/``IQ DIR`` (does a file or folder
exist), ``DE`` (delete a file; a missing file is not an error), ``FR``/``FR L``/``FR G``
(string variables from the caller's lines or the next line) and ``RR``/``RR S``
(registers from the next line). ``EN``, ``RE``, ``DO``, ``IF`` and the other control words
belong to the interpreter, not to this list.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from emsh.errors import OperationError
from emsh.spec import Field, Operation, Prompt

_VALUE_OPTIONS = ("SET MP", "SET SEED", "SET VARS", "SET THREADS", "PIPE")
_FORWARD = re.compile(r"^\s*\?([^?]*)\?\s*\[([A-Za-z_][A-Za-z0-9_\-]*)\]\s*$")
_NAMED = re.compile(r"^\s*\[([A-Za-z_][A-Za-z0-9_\-]*)\]\s?(.*)$")


def _option(text: str) -> str:
    return " ".join(str(text).upper().split())


def _needs_value(answers) -> bool:
    return _option(answers["option"]) in _VALUE_OPTIONS


def md(ctx, option: str, value: str | None) -> None:
    """Set a mode: ``TR OFF``, ``VB OFF`` (shorter results log), ``SET SEED`` (random
    numbers), ``SET MP``/``SET THREADS`` (FFT threads, 0 = all cores), ``() OFF``."""
    import os

    opt = _option(option)
    s = ctx.session
    if value is not None:
        s.settings[opt] = value.strip()
    else:
        key, _, state = opt.rpartition(" ")
        s.settings.update({key: state} if state in ("ON", "OFF") and key else {opt: ""})
    if opt in ("VB OFF", "VB ON"):
        s.verbose = opt == "VB ON"
    elif opt == "SET SEED":
        s.set_seed(int(s.evaluate(value)))
    elif opt in ("SET MP", "SET THREADS"):
        n = int(s.evaluate(value))
        if n > 0:
            os.environ["EMSH_FFT_THREADS"] = str(n)
        else:
            os.environ.pop("EMSH_FFT_THREADS", None)
    elif opt == "() ON":
        ctx.log("  MD () ON (per-iteration loop answers) is not supported; answers are "
                "read as written")
    elif opt not in ("TR OFF", "TR ON", "() OFF", "SET VARS", "PIPE"):
        ctx.log(f"  MD {opt}: noted; it changes nothing in emsh")


def _shell(ctx, command: str) -> None:
    s = ctx.session
    text = s.substitute(command).replace("$DATEXT", s.data_ext).replace("$PRJEXT", s.project_ext)
    sys.stdout.flush()
    done = subprocess.run(text, shell=True, capture_output=True, text=True)
    for line in (done.stdout + done.stderr).splitlines():
        ctx.log(line)
    if done.returncode != 0:
        ctx.log(f"  VM: command exited with status {done.returncode}: {text}")


def vm(ctx, command: str) -> None:
    """Run one shell command (the answer line is not comment-stripped: ``;`` separates
    commands). ``$DATEXT``/``$PRJEXT`` become the extensions; a failing command is logged
    and the procedure goes on, as in SPIDER."""
    _shell(ctx, command)


def vm_m(ctx, commands: list[str]) -> None:
    """Run several shell commands, one per line, up to a line holding a single ``.``."""
    for command in commands:
        _shell(ctx, command)


def my_fl(ctx) -> None:
    """Flush the results log."""
    ctx.session.flush_log()


def _inline_ref(path: str):
    """The parsed answer when ``path`` names an inline file (``_1``, ``_1@``, ``_1@3``)."""
    from emsh.errors import UsageError
    from emsh.ops._util import parse

    try:
        ref = parse(path)
    except UsageError:
        return None
    return ref if ref.inline is not None else None


def iq_fi(ctx, path: str) -> tuple[float, float]:
    """1 if the file (or stack member ``stk@n``, or inline file ``_n``/``_n@``, or its
    written member ``_n@m``) exists, else 0; second value: 1 for an existing inline file
    (always open), else 0."""
    from emsh.lang.templates import split_at
    from emsh.ops import _inline

    ref = _inline_ref(path)
    if ref is not None:
        buf = _inline.store(ctx).get(ref.inline)
        exists = buf is not None and (ref.index is None or buf.has(ref.index))
        ctx.log(f"  FILE {'EXISTS' if exists else 'DOES NOT EXIST'}: {path}")
        return (1.0, 1.0) if exists else (0.0, 0.0)
    base, at = split_at(path)
    exists = Path(base).is_file()
    if exists and at[1:].isdigit():
        import emsh.io as eio

        try:
            inf = eio.info(base)
            exists = inf.is_stack and int(at[1:]) <= inf.n_images
        except Exception:  # an unreadable file holds no such member
            exists = False
    ctx.log(f"  FILE {'EXISTS' if exists else 'DOES NOT EXIST'}: {path}")
    return (1.0 if exists else 0.0, 0.0)


def iq_dir(ctx, path: str) -> float:
    """1 if the folder exists, else 0."""
    return 1.0 if Path(path).is_dir() else 0.0


def de(ctx, path: str) -> None:
    """Delete a file, a whole stack (``stk@``) or an inline file or stack (``_1``, ``_1@``:
    its memory is freed); a missing file is not an error."""
    from emsh.lang.templates import split_at
    from emsh.ops import _inline

    base, at = split_at(path)
    if at[1:]:
        raise OperationError(f"{path}: deleting one image of a stack is not supported; "
                             f"DE {base}@ deletes the whole stack", code="DE")
    ref = _inline_ref(path)
    if ref is not None:
        if _inline.free(ctx, ref):
            ctx.log(f"  DELETED INLINE FILE: _{ref.inline}")
        return
    p = Path(base)
    if p.is_dir():
        raise OperationError(f"{base} is a folder; DE deletes files", code="DE")
    if p.exists():
        p.unlink()
        ctx.log(f"  DELETED: {base}")


def _strip(line: str) -> str:
    from emsh.lang.parser import strip_comment

    return strip_comment(line)


def fr(ctx, line: str) -> None:
    """``FR`` then ``?QUESTION?[var]``: store the caller's next answer line in ``[var]``."""
    m = _FORWARD.match(_strip(line))
    if not m:
        raise OperationError(f"expected ?QUESTION?[variable], got {line.strip()!r}", code="FR")
    ctx.session.set_string(m.group(2), ctx.session.ask_caller(m.group(1).strip()))


def _named(line: str, code: str) -> tuple[str, str]:
    m = _NAMED.match(_strip(line))
    if not m:
        raise OperationError(f"expected [name]value, got {line.strip()!r}", code=code)
    return m.group(1), m.group(2).strip()


def fr_l(ctx, line: str) -> None:
    """``FR L`` then ``[name]value``: set the string variable ``[name]``."""
    ctx.session.set_string(*_named(line, "FR L"))


def fr_g(ctx, line: str) -> None:
    """``FR G`` then ``[name]value``: set the global string variable ``[name]``."""
    ctx.session.set_global(*_named(line, "FR G"))


def rr(ctx, value: float) -> float:
    """``RR [v]`` then a value line (or ``?question?``, answered by the caller)."""
    return value


def rr_s(ctx, items: str, index: int) -> float:
    """``RR S [v]``: a list line, then the (1-based) index of the element to take."""
    from emsh.lang.expressions import split_values

    values = [t for t, _ in split_values(items) if t]
    if not 1 <= index <= len(values):
        raise OperationError(f"index {index} outside the list of {len(values)} values",
                             code="RR S")
    return ctx.session.evaluate(values[index - 1])


OPERATIONS = [
    Operation("MD", "Set a mode: TR OFF, VB OFF, SET SEED, SET MP, () OFF ...", impl=md, mpi="all",
              prompts=(Prompt("option", "OPTION", kind="text",
                              help="TR OFF, VB OFF, SET SEED, SET MP, SET THREADS, () OFF"),
                       Prompt("value", "VALUE", kind="text", when=_needs_value,
                              help="the number for SET SEED, SET MP, SET THREADS"))),
    Operation("VM", "Run a shell command (the next line, not comment-stripped)", impl=vm,
              aliases=("SYS",), prompts=(Prompt("command", "SYSTEM COMMAND", kind="line"),)),
    Operation("VM M", "Run shell commands, one per line, up to a line holding '.'", impl=vm_m,
              aliases=("SYS M",),
              prompts=(Prompt("commands", "SYSTEM COMMANDS (END WITH .)", kind="line",
                              repeat=True, terminator="."),)),
    Operation("MY FL", "Flush the results log", impl=my_fl, mpi="all"),
    Operation("IQ FI", "Does a file exist? [exists],[open] = 1/0", impl=iq_fi,
              outputs=("exists", "is_open"),
              prompts=(Prompt("path", "QUERY EXISTENCE OF FILE", kind="file_out"),)),
    Operation("IQ DIR", "Does a folder exist? [exists] = 1/0", impl=iq_dir, outputs=("exists",),
              prompts=(Prompt("path", "DIRECTORY", kind="text"),)),
    Operation("DE", "Delete a file or a whole stack (file@); a missing file is not an error",
              impl=de, prompts=(Prompt("path", "DELETE FILE", kind="file_out"),)),
    Operation("FR", "Read a string from the caller's lines: ?QUESTION?[var]", impl=fr, mpi="all",
              prompts=(Prompt("line", "?QUESTION?[VARIABLE]", kind="line"),)),
    Operation("FR L", "Set a string variable from the next line: [name]value", impl=fr_l,
              mpi="all", prompts=(Prompt("line", "[NAME]VALUE", kind="line"),)),
    Operation("FR G", "Set a global string variable from the next line: [name]value",
              impl=fr_g, mpi="all", prompts=(Prompt("line", "[NAME]VALUE", kind="line"),)),
    Operation("RR", "Read a register from the next line (?question? asks the caller)", impl=rr,
              mpi="all", outputs=("value",),
              prompts=(Prompt("value", "VALUE", fields=(Field("value", "float"),)),)),
    Operation("RR S", "Pick element n of a list line", impl=rr_s, mpi="all", outputs=("value",),
              prompts=(Prompt("items", "LIST OF VALUES", kind="text"),
                       Prompt("index", "ELEMENT NUMBER", fields=(Field("index", "int", min=1),)))),
]
