"""Pixel arithmetic: AR (formula in P1), AD, MU, SU.

``AR`` evaluates SPIDER's expression language on every pixel at once: ``P1`` is the
input pixel, ``[name]`` a register, the operators are ``+ - * / **`` with Fortran
precedence (``**`` binds tightest and groups to the right, so ``-3**2`` is -9 and
``2**3**2`` is 512), and the functions are SPIDER's three-letter ones with
trigonometry in degrees (``SIN COS TAN ASI ACO ATA EXP LOG LON SQR INT ABS PAD RAN
RNN``; ``LOG`` is base 10, ``LON`` natural, ``INT`` truncates). Arithmetic is float64,
the result float32.

``AD``, ``MU`` and ``SU`` combine two or more images, volumes or whole stacks of the same
size; further inputs are asked until ``*``, and each is applied in order in float32
as SPIDER does.
"""

from __future__ import annotations

import re

import numpy as np

from emsh.errors import UsageError
from emsh.ops import _util as U
from emsh.spec import Operation, Prompt

_TOKEN = re.compile(r"""\s*(?:
    (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<reg>\[[^\]]+\])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|[-+*/(),])
)""", re.VERBOSE)


def _deg(f):
    return lambda x: f(np.deg2rad(x))


def _inv_deg(f):
    return lambda x: np.rad2deg(f(x))


def _pad2(x):
    x = np.asarray(x, dtype=np.float64)
    return np.where(x <= 1, 1.0, 2.0 ** np.ceil(np.log2(np.maximum(x, 1))))


FUNCTIONS = {
    "SIN": _deg(np.sin), "COS": _deg(np.cos), "TAN": _deg(np.tan),
    "ASI": _inv_deg(np.arcsin), "ACO": _inv_deg(np.arccos), "ATA": _inv_deg(np.arctan),
    "EXP": np.exp, "LOG": np.log10, "LON": np.log, "SQR": np.sqrt, "SQRT": np.sqrt,
    "INT": np.trunc, "ABS": np.abs, "PAD": _pad2,
}


class PixelFormula:
    """A SPIDER pixel formula, parsed once and evaluated on whole arrays.

    Args:
        text: the formula, e.g. ``SIN(P1*90)+[k]``.
        register: callable giving a register's value from its ``[name]`` text.
        rng: generator for ``RAN`` (uniform [0, 1)) and ``RNN`` (normal), one draw per pixel.
    """

    def __init__(self, text: str, register, rng=None):
        self.text = text
        self._register = register
        self._rng = rng
        self._toks = self._tokenize(text)

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str]]:
        toks, pos, s = [], 0, text.strip()
        while pos < len(s):
            m = _TOKEN.match(s, pos)
            if not m or m.end() == pos:
                rest = s[pos:].strip()
                if not rest:
                    break
                raise UsageError(f"formula {text!r}: cannot read {rest[:12]!r}")
            kind = m.lastgroup
            toks.append((kind, m.group(kind)))
            pos = m.end()
        return toks

    def __call__(self, p1: np.ndarray) -> np.ndarray:
        """Evaluate with ``P1`` = ``p1``; returns float64 of ``p1``'s shape."""
        self._p1 = np.asarray(p1, dtype=np.float64)
        self._i = 0
        with np.errstate(all="ignore"):
            val = self._expr()
        if self._i != len(self._toks):
            raise UsageError(f"formula {self.text!r}: unexpected {self._toks[self._i][1]!r}")
        return np.broadcast_to(np.asarray(val, dtype=np.float64), self._p1.shape)

    # recursive descent: expr > term > unary > power > atom
    def _peek(self):
        return self._toks[self._i] if self._i < len(self._toks) else (None, None)

    def _take(self, value=None):
        tok = self._peek()
        if tok[0] is None or (value is not None and tok[1] != value):
            want = f"{value!r}" if value else "more"
            raise UsageError(f"formula {self.text!r}: expected {want}")
        self._i += 1
        return tok

    def _expr(self):
        val = self._term()
        while self._peek()[1] in ("+", "-"):
            op = self._take()[1]
            rhs = self._term()
            val = val + rhs if op == "+" else val - rhs
        return val

    def _term(self):
        val = self._unary()
        while self._peek()[1] in ("*", "/"):
            op = self._take()[1]
            rhs = self._unary()
            val = val * rhs if op == "*" else val / rhs
        return val

    def _unary(self):
        if self._peek()[1] in ("-", "+"):
            op = self._take()[1]
            val = self._unary()
            return -val if op == "-" else val
        return self._power()

    def _power(self):
        base = self._atom()
        if self._peek()[1] == "**":
            self._take()
            return np.power(base, self._unary())
        return base

    def _atom(self):
        kind, text = self._take()
        if kind == "num":
            return float(text)
        if kind == "reg":
            return float(self._register(text))
        if text == "(":
            val = self._expr()
            self._take(")")
            return val
        if kind == "name":
            name = text.upper()
            if name == "P1":
                return self._p1
            if name in FUNCTIONS or name in ("RAN", "RNN"):
                self._take("(")
                arg = self._expr()
                self._take(")")
                if name in ("RAN", "RNN"):
                    return self._random(name)
                return FUNCTIONS[name](arg)
            raise UsageError(f"formula {self.text!r}: unknown name {text!r} (P1 is the pixel)")
        raise UsageError(f"formula {self.text!r}: unexpected {text!r}")

    def _random(self, name: str):
        if self._rng is None:
            raise UsageError(f"formula {self.text!r}: {name} needs a random generator")
        shape = self._p1.shape
        return self._rng.random(shape) if name == "RAN" else self._rng.standard_normal(shape)


def ar(ctx, src, numbers, dst, formula):
    """AR: ``P2 = formula(P1)`` on every pixel of an image, volume, stack or template."""
    imgs, nums = U.read_batch(ctx, src, numbers)
    f = PixelFormula(str(formula), lambda reg: ctx.session.evaluate(reg), ctx.rng)
    U.write_batch(ctx, dst, f(imgs).astype(np.float32), nums)


def _combine(ctx, how: str, first, second, dst, more):
    """Apply ``how`` (add, multiply, subtract) to the inputs in order, in float32."""
    answers = [first, second] + [m for m in (more or []) if m and str(m).strip() != "*"]
    acc, nums = U.read_batch(ctx, first)
    acc = acc.astype(np.float32)
    for name in answers[1:]:
        x, _ = U.read_batch(ctx, name)
        if x.shape[1:] != acc.shape[1:] or x.shape[0] not in (1, acc.shape[0]):
            raise UsageError(f"{name}: size {x.shape[1:][::-1]} (x, y[, z]) differs from "
                             f"{first}'s {acc.shape[1:][::-1]}")
        acc = (acc + x if how == "add" else acc * x if how == "mul" else acc - x).astype(np.float32)
    U.write_batch(ctx, dst, acc, nums)
    ctx.log(f"  {len(answers)} INPUTS COMBINED INTO: {dst}")


def ad(ctx, src, src2, dst, more):
    """AD: sum of two or more images."""
    _combine(ctx, "add", src, src2, dst, more)


def mu(ctx, src, src2, dst, more):
    """MU: product of two or more images."""
    _combine(ctx, "mul", src, src2, dst, more)


def su(ctx, src, src2, dst, more):
    """SU: the first image minus the others."""
    _combine(ctx, "sub", src, src2, dst, more)


AR = Operation(
    "AR", "Arithmetic on every pixel: P2 = formula in P1", impl=ar,
    help=("The formula uses P1 (input pixel), numbers, registers [name], + - * / ** and "
          "SIN COS TAN ASI ACO ATA (degrees) EXP LOG (base 10) LON (natural) SQR INT ABS "
          "PAD RAN RNN. Works on an image, volume, member, whole stack or a template."),
    prompts=(
        Prompt("src", "INPUT FILE NAME OR TEMPLATE (E.G. stk-file@*)", kind="image"),
        Prompt("numbers", "FILE NUMBERS OR SELECTION DOC. FILE NAME", kind="numbers",
               when=lambda a: U.is_template(a.get("src"))),
        Prompt("dst", "OUTPUT FILE", kind="image_out"),
        Prompt("formula", "FORMULA: P2=", kind="formula"),
    ))


def _series(code, title, impl, first, second, out, help_):
    return Operation(code, title, impl=impl, help=help_, see_also=("AR",), prompts=(
        Prompt("src", first, kind="image"),
        Prompt("src2", second, kind="image"),
        Prompt("dst", out, kind="image_out"),
        Prompt("more", second, kind="image", repeat=True,
               help="further inputs, one per line; * ends the list"),
    ))


AD = _series("AD", "Add images", ad, "FIRST INPUT FILE", "NEXT INPUT FILE",
             "SUMMED OUTPUT FILE", "Sums two or more images; further inputs until *.")
MU = _series("MU", "Multiply images", mu, "INPUT FILE", "MULTIPLIER FILE", "OUTPUT FILE",
             "Pixel-by-pixel product of two or more images; further factors until *.")
SU = _series("SU", "Subtract images", su, "INPUT FILE", "SUBTRACTED FILE", "OUTPUT FILE",
             "The first image minus the second and any further ones (until *).")

OPERATIONS = [AR, AD, MU, SU]
