"""File-name substitution and templates, as SPIDER does them (research a.6, a.8).

In an answer line, in this order:

1. legacy ``<v>`` becomes ``[v]``;
2. string variables ``[s]`` are replaced by their text, again and again, so a string
   holding other variables is expanded *when it is used*;
3. ``${ENV}`` becomes the environment variable;
4. ``{***[v]}`` becomes the value of ``[v]`` rounded to the nearest integer and
   zero-padded to the number of ``*`` (an error if it has more digits), ``{---[v]}``
   writes the digits over the characters before it, ``{%I0%[v]}``/``{%F7.2%[v]}``/
   ``{%ES11.4%[v]}`` format the value with a Fortran edit descriptor;
5. file names only: the terminal-register rule. ``avg***[v]`` becomes ``avg001``:
   each run of ``*`` takes the next register after it (``dir*/avg***[v1][v2]``), and a
   name with no ``*`` that ends in digits takes the value over them (``avg000[v]``).

A register left bare in a file name (``out[grp]``) is an error; in free text it is kept.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable

from emsh.errors import UsageError

__all__ = ["substitute", "with_data_ext", "fill_template", "nint", "fortran_format",
           "is_unresolved", "split_at"]

_VAR = re.compile(r"\[([A-Za-z_][A-Za-z0-9_\-]*)\]")
_LEGACY = re.compile(r"<([A-Za-z_][A-Za-z0-9_\-]*)>")
_ENV = re.compile(r"\$\{([^}]*)\}")
_BRACE = re.compile(r"\{([^{}]*)\}")
_AT = re.compile(r"^(?P<base>.*?)(?P<at>@[0-9*]*)?$", re.S)
_INLINE = re.compile(r"^_{1,3}[0-9]+$")

Lookup = Callable[[str], "float | str | None"]


def nint(v: float) -> int:
    """Nearest integer, halves away from zero (SPIDER's file-number rounding)."""
    return int(v + 0.5) if v >= 0 else int(v - 0.5)


def _number(name_or_expr: str, lookup: Lookup) -> float:
    """Value of ``[v]`` (a register, or a string holding a number) or of a literal expression."""
    from emsh.lang.expressions import evaluate
    from emsh.lang.parser import parse_expression

    def resolve(name: str, col: int = 1) -> float:
        value = lookup(name)
        if value is None:
            raise UsageError(f"undefined variable [{name}]")
        if isinstance(value, str):
            return evaluate(parse_expression(value), resolve)
        return float(value)

    try:
        return evaluate(parse_expression(name_or_expr.strip()), resolve)
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"cannot use {name_or_expr!r} as a number here: "
                         f"{getattr(exc, 'reason', exc)}") from None


def fortran_format(descriptor: str, value: float) -> str:
    """Write ``value`` with a Fortran edit descriptor (``I5``, ``I0``, ``F7.2``, ``E12.4``,
    ``ES11.4``, ``G14.6``), as ``{%...%[v]}`` does. Leading blanks are kept."""
    m = re.fullmatch(r"\s*(ES|EN|[IFEG])(\d+)(?:\.(\d+))?\s*", descriptor, re.I)
    if not m:
        raise UsageError(f"{{%{descriptor}%...}}: unknown edit descriptor; use I, F, E, ES or G")
    kind, width = m.group(1).upper(), int(m.group(2))
    digits = int(m.group(3)) if m.group(3) is not None else None
    if kind == "I":
        text = str(nint(value))
    elif kind == "F":
        text = f"{value:.{7 if digits is None else digits}f}"
        if digits == 0:
            text += "."
    elif kind in ("ES", "EN"):
        text = f"{value:.{4 if digits is None else digits}E}"
    elif kind == "E":
        d = 4 if digits is None else digits
        if value == 0:
            text = f"0.{'0' * d}E+00"
        else:
            exp = math.floor(math.log10(abs(value))) + 1
            mant = value / 10 ** exp
            if round(abs(mant), d) >= 1:
                mant, exp = mant / 10, exp + 1
            text = f"{mant:.{d}f}E{exp:+03d}"
    else:
        text = f"{value:.{6 if digits is None else digits}G}"
    if width and len(text) > width:
        raise UsageError(f"{{%{descriptor}%...}}: {text} does not fit in {width} characters")
    return text.rjust(width) if width else text


def _braces(text: str, lookup: Lookup) -> str:
    def one(m: re.Match) -> str:
        inner = m.group(1)
        stars = re.match(r"^(\*+)(.*)$", inner, re.S)
        minus = re.match(r"^(-+)(.*)$", inner, re.S)
        pct = re.match(r"^%([^%]*)%(.*)$", inner, re.S)
        if stars:
            if not stars.group(2).strip():
                return stars.group(1)  # {****} -> **** (tolerated, as SPIDER does)
            value = str(nint(_number(stars.group(2), lookup)))
            if len(value) > len(stars.group(1)):
                raise UsageError(f"{{{inner}}}: value {value} has more digits than "
                                 f"{len(stars.group(1))} asterisks")
            return value.rjust(len(stars.group(1)), "0")
        if pct:
            return fortran_format(pct.group(1), _number(pct.group(2), lookup))
        if minus:
            return "\0" + minus.group(1) + "\0" + str(nint(_number(minus.group(2), lookup)))
        raise UsageError(f"{{{inner}}}: no *, - or % in the substitution")

    out = _BRACE.sub(one, text)
    # {---[v]}: the digits replace as many characters before the brace (and any '*' there)
    while "\0" in out:
        i = out.index("\0")
        j = out.index("\0", i + 1)
        nminus, digits = j - i - 1, out[j + 1:]
        end = re.match(r"^-?\d+", digits).end()
        value, rest = digits[:end], digits[end:]
        n = max(nminus, len(value))
        start = i - n
        while start > 0 and out[start - 1] == "*":
            start -= 1
        if start < 0:
            raise UsageError(f"{{{'-' * nminus}...}}: the number {value} does not fit before it")
        width = i - start
        out = out[:start] + value.rjust(width, "0") + rest
    return out


def _asterisk_rule(text: str, lookup: Lookup) -> str:
    """Terminal-register and multiple-``***`` substitution (SPIDER's ``FILNAMSUB``)."""
    if text.startswith("?"):
        return text
    names = _VAR.findall(text)
    if len(names) == 1 and text.endswith("]") and len(text) > 3 and "*" not in text:
        m = re.search(r"(\d+)\[[^\]]*\]$", text)
        if m:  # avg000[v] -> the value over the digits
            text = text[:m.start(1)] + "*" * len(m.group(1)) + text[m.end(1):]
    pos = 0
    while True:
        run = re.compile(r"\*+").search(text, pos)
        if not run:
            return text
        var = _VAR.search(text, run.end())
        if not var:
            return text
        value = lookup(var.group(1))
        if value is None or isinstance(value, str):
            return text
        digits = str(nint(float(value)))
        width = run.end() - run.start()
        if len(digits) > width:
            raise UsageError(f"{text}: value {digits} of [{var.group(1)}] has more digits than "
                             f"{width} asterisks")
        text = text[:var.start()] + text[var.end():]
        text = text[:run.start()] + digits.rjust(width, "0") + text[run.end():]
        pos = run.start() + width


def substitute(text: str, lookup: Lookup, *, mode: str = "file") -> str:
    """Apply SPIDER's answer-line substitutions.

    Args:
        text: the answer (comment already stripped).
        lookup: ``lookup(name)`` -> register value (float), string (str) or None.
        mode: ``"file"`` (file names: terminal-register rule; bare registers and undefined
            variables are errors) or ``"text"`` (free text: both are kept as written).

    Raises:
        UsageError: undefined variables (file mode), a value too wide for its template,
            an unknown ``${ENV}``, a string variable that contains itself.
    """
    def legacy(m: re.Match) -> str:
        return f"[{m.group(1)}]" if lookup(m.group(1)) is not None else m.group(0)

    out = _LEGACY.sub(legacy, text)
    for _ in range(64):
        changed = False

        def string_var(m: re.Match) -> str:
            nonlocal changed
            value = lookup(m.group(1))
            if isinstance(value, str):
                changed = True
                return value
            return m.group(0)

        out = _VAR.sub(string_var, out)
        if not changed:
            break
    else:
        raise UsageError(f"{text}: a string variable refers to itself")

    def env(m: re.Match) -> str:
        if m.group(1) not in os.environ:
            raise UsageError(f"environment variable {m.group(1)} is not set (in {text!r})")
        return os.environ[m.group(1)]

    out = _ENV.sub(env, out)
    out = _braces(out, lookup)
    if mode == "file":
        out = _asterisk_rule(out, lookup)
        for m in _VAR.finditer(out):
            if lookup(m.group(1)) is None:
                raise UsageError(f"undefined variable [{m.group(1)}] in {text!r}")
            raise UsageError(f"register [{m.group(1)}] in the file name {text!r}: write "
                             f"{{***[{m.group(1)}]}} or name***[{m.group(1)}]")
    return out


def split_at(name: str) -> tuple[str, str]:
    """``'stk@3'`` -> ``('stk', '@3')``; ``'img'`` -> ``('img', '')``."""
    m = _AT.match(name)
    return m.group("base"), m.group("at") or ""


def with_data_ext(name: str, ext: str) -> str:
    """Append ``.ext`` when the file part of ``name`` has no extension.

    ``stk@3`` -> ``stk.dat@3``, ``stk@`` -> ``stk.dat@``, ``../x/sel`` -> ``../x/sel.dat``;
    inline files (``_1``, ``_2@``) and names with an extension are kept.
    """
    base, at = split_at(name)
    last = base.replace("\\", "/").rsplit("/", 1)[-1]
    if not ext or not last or "." in last.lstrip(".") or _INLINE.match(last) or last in (".", ".."):
        return name
    return f"{base}.{ext.lstrip('.')}{at}"


def fill_template(template: str, number: int) -> str:
    """Fill the last run of ``*`` with ``number`` zero-padded: ``img***`` + 7 -> ``img007``."""
    runs = list(re.finditer(r"\*+", template))
    if not runs:
        raise UsageError(f"{template}: a template needs asterisks (img***, stk@****)")
    run = runs[-1]
    digits = str(int(number))
    width = run.end() - run.start()
    if len(digits) > width:
        raise UsageError(f"{template}: number {digits} has more digits than {width} asterisks")
    return template[:run.start()] + digits.rjust(width, "0") + template[run.end():]


def is_unresolved(text: str) -> bool:
    """True when ``text`` still holds variables, braces or environment references."""
    return bool(re.search(r"[\[{]|\$\{", text))
