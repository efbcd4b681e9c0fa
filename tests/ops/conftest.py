"""Running built-in operations without the interpreter: a stand-in session and two runners.

* ``fake_session``: the :class:`FakeSession` class (``fake_session(k=0.25)`` makes one);
* ``run``: ``run(code, session=None, state=None, **answers)`` calls an operation's
  implementation with the defaults of its prompts plus ``answers`` (keyword arguments);
* ``line_runner``: the :class:`LineRunner` class, which runs an operation line with its
  answer lines as text, as a procedure would, keeping one session and state between calls.
"""

from __future__ import annotations

import re
from functools import partial

import numpy as np
import pytest

from emsh.context import OpContext
from emsh.errors import UsageError
from emsh.parallel import SerialComm
from emsh.registry import Registry
from emsh.spec import parse_yesno


class FakeSession:
    """What operations use of an interpreter session: registers, string variables, the
    evaluation of expressions, substitution in text and the results log.

    Substitution knows ``{%F6.3%[v]}`` and ``{***[v]}`` formats of registers and
    ``[name]`` string variables; a bare register stays as written, as in SPIDER's text.
    """

    data_ext, project_ext = "dat", "spi"

    def __init__(self, **regs):
        self.regs = dict(regs)
        self.strings: dict[str, str] = {}
        self.lines: list[str] = []
        self.state: dict = {}  # per-session state (inline files), as a Session's

    @property
    def logged(self) -> list[str]:
        """The lines logged so far (the same list as :attr:`lines`)."""
        return self.lines

    def get_register(self, name):
        return self.regs[name.strip("[]")]

    def set_register(self, name, value):
        self.regs[name.strip("[]")] = float(value)

    def get_string(self, name):
        if name not in self.strings:
            raise UsageError(f"[{name}] is not a string variable")
        return self.strings[name]

    def set_string(self, name, value):
        self.strings[name] = value

    def evaluate(self, expression):
        from emsh.ops.arith import PixelFormula

        return float(PixelFormula(expression, self.get_register)(np.zeros(())))

    def substitute(self, text):
        def fmt(m):
            spec, v = m.group(1).upper(), self.regs[m.group(2)]
            if spec.startswith("F"):
                w, d = spec[1:].split(".")
                return f"{v:{w}.{d}f}".strip()
            return f"{int(v)}"

        text = re.sub(r"\{%([^%]+)%\[([^\]]+)\]\}", fmt, text)
        text = re.sub(r"\{(\*+)\[([^\]]+)\]\}",
                      lambda m: f"{int(self.regs[m.group(2)]):0{len(m.group(1))}d}", text)
        return re.sub(r"\[([^\]]+)\]", lambda m: self.strings.get(m.group(1), m.group(0)), text)

    def log(self, text):
        self.lines.append(text)


def call_op(registry: Registry, code: str, session=None, state=None, **answers):
    """Call ``code``'s implementation with its defaults plus ``answers``.

    Every argument starts as None; fields take their defaults, other prompts their
    ``default`` (an empty list for repeated prompts), raw inline text is empty.
    """
    op = registry.get(code)
    args = {n: None for n in op.argument_names()}
    for p in op.prompts:
        for f in p.fields:
            args[f.name] = f.default
        if p.kind != "values":
            args[p.name] = [] if p.repeat else p.default
    if op.inline == "raw":
        args["inline"] = ""
    args.update(answers)
    ctx = OpContext(op, SerialComm(), session=session or FakeSession(),
                    rng=np.random.default_rng(0), state={} if state is None else state)
    return registry.implementation(op)(ctx, **args)


class LineRunner:
    """Runs operation lines with their answer lines, as a procedure would.

    ``runner("SD 5,[x]", "data_doc")``: the text after the code goes to raw operations as
    ``inline``; each answer is parsed by its prompt's kind. The session and the state are
    kept between calls.
    """

    def __init__(self, registry: Registry):
        self.registry = registry
        self.session = FakeSession()
        self.state: dict = {}

    def __call__(self, line, *answers):
        op, inline = self.registry.match(line)
        kwargs = {"inline": inline} if op.inline == "raw" else {}
        prompts = list(op.prompts)
        assert len(answers) == len(prompts), f"{line}: {len(prompts)} answers expected"
        for p, a in zip(prompts, answers):
            if p.kind == "values":
                vals = [float(t) for t in re.split(r"[,\s]+", a.strip()) if t]
                for f, v in zip(p.fields, vals + [f.default for f in p.fields][len(vals):]):
                    kwargs[f.name] = int(v) if f.type == "int" else v
            elif p.kind == "numbers":
                kwargs[p.name] = [int(t) for t in a.split(",")]
            elif p.kind == "yesno":
                kwargs[p.name] = parse_yesno(a)
            else:
                kwargs[p.name] = a
        ctx = OpContext(op=op, comm=SerialComm(), session=self.session, rng=None,
                        state=self.state)
        return self.registry.implementation(op)(ctx, **kwargs)

    def set(self, **regs):
        self.session.regs.update({k: float(v) for k, v in regs.items()})

    @property
    def regs(self):
        return self.session.regs


@pytest.fixture(scope="session")
def builtin_registry() -> Registry:
    """The operations of emsh and its plugins, as ``emsh run`` finds them."""
    return Registry.discover()


@pytest.fixture
def fake_session():
    """The :class:`FakeSession` class."""
    return FakeSession


@pytest.fixture
def run(builtin_registry):
    """``run(code, session=None, state=None, **answers)``: see :func:`call_op`."""
    return partial(call_op, builtin_registry)


@pytest.fixture
def line_runner():
    """The :class:`LineRunner` class."""
    return LineRunner
