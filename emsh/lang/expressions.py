"""Register arithmetic: evaluating expressions, splitting numeric answer lines, formulas.

SPIDER's rules (research a.7): ``+ - * / **`` with Fortran precedence, ``**``
right-associative (``2**3**2`` = 512), a sign only at the start of an expression or
after ``(`` (``-3**2`` = -9, ``2*-6`` is an error), trigonometry in degrees, ``INT``
truncating toward zero (``INT(-7.5)`` = -7), ``LOG`` base 10 and ``LON`` natural.
Registers are double precision. An undefined register is an error.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from emsh.lang import ast
from emsh.lang.ast import LocatedError

__all__ = ["FUNCTIONS", "evaluate", "split_values", "strip_parens", "compile_formula",
           "format_number", "pad_power_of_two"]


def pad_power_of_two(x: float) -> float:
    """``PAD(x)``: the smallest power of two that is >= x (1 for x <= 1)."""
    if x <= 1:
        return 1.0
    return float(2 ** math.ceil(math.log2(x) - 1e-12))


def _domain(name: str, ok: Callable[[float], bool], f: Callable[[float], float], what: str):
    def g(x: float) -> float:
        if not ok(x):
            raise ValueError(f"{name}({format_number(x)}): {what}")
        return f(x)
    return g


#: The 3-letter functions of SPIDER expressions (``RAN``/``RNN`` are handled separately).
FUNCTIONS: dict[str, Callable[[float], float]] = {
    "PAD": pad_power_of_two,
    "SIN": lambda x: math.sin(math.radians(x)),
    "COS": lambda x: math.cos(math.radians(x)),
    "TAN": lambda x: math.tan(math.radians(x)),
    "ASI": _domain("ASI", lambda x: -1 <= x <= 1, lambda x: math.degrees(math.asin(x)),
                   "argument must lie in [-1, 1]"),
    "ACO": _domain("ACO", lambda x: -1 <= x <= 1, lambda x: math.degrees(math.acos(x)),
                   "argument must lie in [-1, 1]"),
    "ATA": lambda x: math.degrees(math.atan(x)),
    "EXP": math.exp,
    "LOG": _domain("LOG", lambda x: x > 0, math.log10, "argument must be positive"),
    "LON": _domain("LON", lambda x: x > 0, math.log, "argument must be positive"),
    "SQR": _domain("SQR", lambda x: x >= 0, math.sqrt, "argument must not be negative"),
    "INT": lambda x: float(math.trunc(x)),
    "ABS": abs,
}


def _power(a: float, b: float) -> float:
    if a < 0 and b != int(b):
        raise ValueError(f"{format_number(a)}**{format_number(b)}: a negative number to a "
                         "fractional power")
    if a == 0 and b < 0:
        raise ZeroDivisionError("0 to a negative power")
    return a ** b


def evaluate(expr: ast.Expr, lookup: Callable[[str, int], float], rng=None) -> float:
    """Value of an expression.

    Args:
        expr: the AST (from :func:`emsh.lang.parser.parse_expression` or a statement).
        lookup: ``lookup(name, col)`` -> value of variable ``[name]``; raises
            :class:`LocatedError` when it is undefined.
        rng: ``numpy.random.Generator`` for ``RAN``/``RNN``.

    Raises:
        LocatedError: with the column of the failing node (division by zero, domain
            errors, overflow, undefined registers).
    """
    if isinstance(expr, ast.Num):
        return expr.value
    if isinstance(expr, ast.Var):
        return lookup(expr.name, expr.col)
    if isinstance(expr, ast.Neg):
        return -evaluate(expr.operand, lookup, rng)
    if isinstance(expr, ast.BinOp):
        a = evaluate(expr.left, lookup, rng)
        b = evaluate(expr.right, lookup, rng)
        try:
            if expr.op == "+":
                r = a + b
            elif expr.op == "-":
                r = a - b
            elif expr.op == "*":
                r = a * b
            elif expr.op == "/":
                if b == 0:
                    raise ZeroDivisionError("division by zero")
                r = a / b
            else:
                r = _power(a, b)
        except (ZeroDivisionError, ValueError, OverflowError) as exc:
            raise LocatedError(expr.col, str(exc) if not isinstance(exc, OverflowError)
                               else "number too large") from None
        if isinstance(r, complex) or math.isinf(r):
            raise LocatedError(expr.col, "number too large")
        return r
    if isinstance(expr, ast.Func):
        x = evaluate(expr.arg, lookup, rng)
        if expr.name in ("RAN", "RNN"):
            if rng is None:
                rng = np.random.default_rng(0)
            return float(rng.random() if expr.name == "RAN" else rng.standard_normal())
        try:
            return float(FUNCTIONS[expr.name](x))
        except (ValueError, OverflowError) as exc:
            raise LocatedError(expr.col, str(exc) if isinstance(exc, ValueError)
                               and "(" in str(exc) else f"{expr.name}({format_number(x)}): "
                               "result out of range") from None
    raise TypeError(f"not an expression node: {expr!r}")


def format_number(v: float) -> str:
    """A register value as SPIDER users expect to read it: ``3``, ``2.5``, ``1.2e-05``."""
    v = float(v)
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.7g}"


# ----------------------------------------------------------------------------- answer lines
def strip_parens(text: str) -> tuple[str, int]:
    """Remove parentheses that enclose a whole answer (``(6,0,7,8)``); returns (text, offset)."""
    s = text.strip()
    lead = len(text) - len(text.lstrip())
    if not s.startswith("("):
        return text, 0
    depth = 0
    for i, ch in enumerate(s):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                if i == len(s) - 1:
                    return s[1:-1], lead + 1
                return text, 0
    return text, 0


def split_values(text: str) -> list[tuple[str, int]]:
    """Split a numeric answer at commas and blanks outside ``()``/``[]``.

    Returns ``(token, column)`` pairs, columns 1-based within ``text``. Two commas in a
    row give an empty token (that value keeps its default).
    """
    tokens: list[tuple[str, int]] = []
    depth, start, last_comma = 0, None, True
    for i, ch in enumerate(text + " "):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if depth <= 0 and (ch == "," or ch.isspace()):
            if start is not None:
                tokens.append((text[start:i], start + 1))
                start, last_comma = None, False
            if ch == ",":
                if last_comma:
                    tokens.append(("", i + 1))
                last_comma = True
            continue
        if start is None:
            start = i
    if start is not None:  # unbalanced brackets: keep the rest as one token (it will not parse)
        tokens.append((text[start:].rstrip(), start + 1))
    return tokens


# ----------------------------------------------------------------------------- image formulas
def compile_formula(text: str, images: tuple[str, ...] = ("P1", "P2"),
                    lookup: Callable[[str, int], float] | None = None, rng=None):
    """Compile an ``AR``-style formula such as ``P1*2+[x]`` into a function of arrays.

    Args:
        text: the formula; ``P1``, ``P2``, ... name the input images, ``[v]`` registers.
        images: the image names the formula may use.
        lookup: register values, as for :func:`evaluate` (read once, at compile time).
        rng: ``numpy.random.Generator`` for ``RAN``/``RNN`` (one value per pixel).

    Returns:
        ``f(**arrays) -> numpy.ndarray`` evaluating the formula elementwise (float32).

    Raises:
        emsh.errors.ProcedureError: a syntax error (file ``<formula>``).
        LocatedError: an undefined register.
    """
    import re

    from emsh.lang.parser import parse_expression

    names = {n.upper() for n in images}
    marked = re.sub(r"(?<![\[\w])([Pp][0-9]+)(?![\w\]])",
                    lambda m: f"[{m.group(1).upper()}]" if m.group(1).upper() in names
                    else m.group(1), text)
    tree = parse_expression(marked)
    constants: dict[str, float] = {}
    for name in sorted(ast.variables_of(tree) - names):
        if lookup is None:
            raise LocatedError(1, f"undefined register [{name}] in formula")
        constants[name] = lookup(name, 1)

    def run(node, arrays):
        if isinstance(node, ast.Num):
            return node.value
        if isinstance(node, ast.Var):
            return arrays[node.name] if node.name in names else constants[node.name]
        if isinstance(node, ast.Neg):
            return -run(node.operand, arrays)
        if isinstance(node, ast.BinOp):
            a, b = run(node.left, arrays), run(node.right, arrays)
            return {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide,
                    "**": np.power}[node.op](a, b)
        x = np.asarray(run(node.arg, arrays), dtype=np.float64)
        if node.name in ("RAN", "RNN"):
            gen = rng if rng is not None else np.random.default_rng(0)
            return gen.random(x.shape) if node.name == "RAN" else gen.standard_normal(x.shape)
        return _ARRAY_FUNCS[node.name](x)

    def formula(**arrays):
        with np.errstate(all="ignore"):
            data = {k.upper(): np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
            return np.asarray(run(tree, data), dtype=np.float32)

    return formula


_ARRAY_FUNCS = {
    "PAD": np.vectorize(pad_power_of_two),
    "SIN": lambda x: np.sin(np.radians(x)), "COS": lambda x: np.cos(np.radians(x)),
    "TAN": lambda x: np.tan(np.radians(x)), "ASI": lambda x: np.degrees(np.arcsin(x)),
    "ACO": lambda x: np.degrees(np.arccos(x)), "ATA": lambda x: np.degrees(np.arctan(x)),
    "EXP": np.exp, "LOG": np.log10, "LON": np.log, "SQR": np.sqrt, "INT": np.trunc,
    "ABS": np.abs,
}
