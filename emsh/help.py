"""Help text rendered from operation specifications.

Everything shown here comes from :class:`emsh.spec.Operation`: the title, the answer
lines in the order a procedure gives them (with their kinds, fields, defaults and
ranges), the outputs, the ``key=value`` options, the MPI policy, the long help and the
related codes. The shell's ``HELP <op>`` (and ``<op> ?``), ``emsh help OP`` and
``emsh ops [CODE]`` all print the same text, so help cannot drift from what an
operation really asks.

Plain text only: no terminal codes, lines of at most :data:`WIDTH` characters.
"""

from __future__ import annotations

import difflib
import textwrap
from typing import Any

from emsh.errors import UsageError
from emsh.spec import FILE_KINDS, PROMPT_KINDS, REQUIRED, Field, Operation, Prompt

__all__ = ["WIDTH", "lookup", "render_help", "render_list", "prompt_hint", "field_text"]

WIDTH = 88

_MPI = {
    "root": "rank 0 runs it; its results (and any error) reach every rank",
    "all": "every rank runs it with the communicator and takes a share of the work",
}


def lookup(registry, code: str) -> Operation:
    """The operation with this code, or a UsageError that suggests near codes.

    Args:
        registry: an :class:`emsh.registry.Registry`.
        code: the code as typed (any case, any spacing; ``plugin:CODE`` accepted).

    Raises:
        UsageError: unknown code; the message names up to three close codes.
    """
    text = " ".join(code.split())
    if text and text in registry:
        return registry.get(text)
    close = difflib.get_close_matches(text.upper(), registry.codes(), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise UsageError(f"unknown operation {text!r}{hint} ('emsh ops' lists them)")


def _number(v: Any) -> str:
    if isinstance(v, float) and v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return str(v)


def _range(f: Field) -> str:
    if f.min is not None and f.max is not None:
        return f"{_number(f.min)}..{_number(f.max)}"
    if f.min is not None:
        return f">= {_number(f.min)}"
    if f.max is not None:
        return f"<= {_number(f.max)}"
    return ""


def field_text(f: Field) -> str:
    """``name (type, default 2.5, 0..10)``: one field as help and hints show it."""
    bits = [f.type]
    if f.default is REQUIRED:
        bits.append("required")
    elif f.default is None:
        bits.append("default none")
    else:
        bits.append(f"default {_number(f.default)}")
    if _range(f):
        bits.append(_range(f))
    return f"{f.name} ({', '.join(bits)})"


def prompt_hint(p: Prompt) -> str:
    """A one-line reminder of what an answer line takes (the shell shows it beside the question).

    Examples: ``a (int, required), b (float, default 2.5)``, ``A or B``,
    ``image file, or * for none``.
    """
    if p.kind == "values":
        text = ", ".join(field_text(f) for f in p.fields)
    elif p.kind == "choice":
        text = " or ".join(p.choices)
    elif p.kind == "yesno":
        text = "Y or N"
    elif p.kind in FILE_KINDS:
        text = {"image": "image file", "image_out": "output image file",
                "template": "file template (***)", "doc": "doc file",
                "doc_out": "output doc file", "file": "input file",
                "file_out": "output file"}[p.kind]
        if p.patterns:
            text += f" ({' '.join(p.patterns)})"
    elif p.kind == "numbers":
        text = "numbers (1-10,12) or selection doc"
    else:
        text = p.kind
    if p.optional:
        text += ", or * for none"
    if p.repeat:
        text += f"; {p.terminator} ends the list"
    if p.kind != "values" and p.default is not None:
        text += f"; empty answer: {p.default}"
    return text


def _usage_line(op: Operation) -> str:
    parts = [op.code]
    if op.inline == "raw":
        parts.append("<text>")
    elif op.outputs:
        parts.append(",".join(f"[{name}]" for name in op.outputs))
    parts += [f"{o.name}=..." for o in op.options]
    return " ".join(parts)


def _prompt_block(n: int, p: Prompt) -> list[str]:
    indent = " " * 8
    out = [f"  {n:>2}. {p.text.strip()}"]
    if p.kind == "values":
        for f in p.fields:
            out.append(f"{indent}{field_text(f)}" + (f": {f.help}" if f.help else ""))
    else:
        line = f"{indent}{p.name} ({p.kind}): {PROMPT_KINDS.get(p.kind, '')}"
        extra = []
        if p.choices:
            extra.append(f"one of {', '.join(p.choices)}")
        if p.patterns:
            extra.append(f"files {' '.join(p.patterns)}")
        if p.optional:
            extra.append("* for none")
        if p.default is not None:
            extra.append(f"an empty answer in the shell gives {p.default}")
        if extra:
            line += f"; {'; '.join(extra)}"
        out.append(line)
        if p.help:
            out.append(f"{indent}{p.help}")
    if p.repeat:
        out.append(f"{indent}(asked again and again; {p.terminator} ends the list)")
    if p.when is not None:
        out.append(f"{indent}(asked only when the answers above call for it)")
    return [w for line in out for w in _wrap(line, len(line) - len(line.lstrip()) + 2)]


def _wrap(line: str, hang: int) -> list[str]:
    if len(line) <= WIDTH:
        return [line]
    return textwrap.wrap(line, WIDTH, subsequent_indent=" " * hang, break_on_hyphens=False)


def render_help(op: Operation) -> str:
    """The full help of one operation (no trailing newline).

    Sections: title line, usage (operation line, then one numbered entry per answer
    line in procedure order), outputs, options, MPI, long help, see also.
    """
    plugin = f"   [{op.plugin}]" if op.plugin and op.plugin != "builtin" else ""
    lines = [f"{op.code}: {op.title}{plugin}"]
    if op.aliases:
        lines.append(f"Also written: {', '.join(op.aliases)}")
    lines += ["", "Usage:", f"  {_usage_line(op)}"]
    if op.prompts:
        lines.append("  then one answer line for each of:")
        for n, p in enumerate(op.prompts, 1):
            lines += _prompt_block(n, p)
    else:
        lines.append("  (no answer lines)")
    if op.inline == "raw":
        lines += ["", "The text after the code on the operation line is passed to the "
                  "operation as it is."]
    if op.outputs:
        lines += ["", "Outputs (into the registers listed on the operation line, in order):",
                  f"  {', '.join(op.outputs)}"]
    if op.options:
        lines += ["", "Options (key=value on the operation line):"]
        for o in op.options:
            lines += _wrap(f"  {field_text(o)}" + (f": {o.help}" if o.help else ""), 4)
    lines += ["", f"MPI: {_MPI.get(op.mpi, op.mpi)}."]
    if op.help.strip():
        lines.append("")
        for para in op.help.strip().split("\n\n"):
            lines += textwrap.wrap(" ".join(para.split()), WIDTH) + [""]
        lines.pop()
    if op.see_also:
        lines += ["", f"See also: {', '.join(op.see_also)}"]
    return "\n".join(lines)


def render_list(registry) -> str:
    """Every operation, one per line: code, title and (for plugins) the providing plugin."""
    ops = registry.operations()
    if not ops:
        return "(no operations)"
    width = max(len(op.code) for op in ops) + 2
    rows = []
    for op in ops:
        who = f"   [{op.plugin}]" if op.plugin and op.plugin != "builtin" else ""
        rows.append(f"{op.code:<{width}}{op.title}{who}")
    return "\n".join(rows)
