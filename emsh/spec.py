"""Operation specifications: what an operation asks for, in SPIDER's order.

An operation (``AP SH``, ``FS``, ``CL ISAC``) declares an ordered list of
:class:`Prompt` s. Each prompt is one *answer line*, exactly as SPIDER reads it: in
a procedure the next non-blank, non-comment line answers it; in the shell the
person is asked the prompt's text. One answer line may hold several values
(``2,14`` for "FIRST, LAST RING"): a ``values`` prompt lists them as
:class:`Field` s, and missing trailing values keep their defaults, as in SPIDER.

The same declaration drives batch answers, interactive prompting, ``emsh help``,
``emsh check`` and completion, so it is the single source of truth. The
implementation is a function ``impl(ctx, **answers)`` whose keyword arguments are
the field names (for ``values`` prompts) or prompt names (for all other kinds).
Its return value (a number, a tuple or a dict of named outputs) goes into the
registers named on the operation line, e.g. ``FS [max],[min],[avg],[std]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from emsh.errors import PluginError, UsageError

REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()

#: Prompt kinds. File kinds get variable substitution and the session's data
#: extension; ``*`` answers an ``optional`` prompt with None.
PROMPT_KINDS = {
    "image": "input image, volume, stack member (file@n) or whole stack (file@)",
    "image_out": "output image, volume or stack",
    "template": "file-name template with asterisks (img***, stk@****)",
    "doc": "input document file",
    "doc_out": "output document file",
    "file": "any input file",
    "file_out": "any output file",
    "numbers": "list of numbers (1-10,12) or a selection document file",
    "values": "one or more numbers separated by commas or blanks",
    "choice": "one of a set of letters or words",
    "yesno": "Y or N (also 1/0)",
    "text": "text, with variables substituted",
    "line": "raw line, no comment stripping and no substitution",
    "formula": "arithmetic formula on images (P1, P2, registers)",
}
FILE_KINDS = frozenset({"image", "image_out", "template", "doc", "doc_out", "file", "file_out"})
FIELD_TYPES = ("int", "float", "str", "yesno")
CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9]*( [A-Z0-9]+){0,3}$")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Field:
    """One value on a ``values`` answer line.

    Attributes:
        name: keyword argument name of the implementation.
        type: ``int`` (truncated, as SPIDER does), ``float``, ``str`` or ``yesno``.
        default: value when the answer line stops before this field; REQUIRED if none.
        min, max: accepted range (inclusive), or None.
        help: one line for help and completion.
    """

    name: str
    type: str = "float"
    default: Any = REQUIRED
    min: float | None = None
    max: float | None = None
    help: str = ""

    @property
    def required(self) -> bool:
        """True when the field has no default."""
        return self.default is REQUIRED


class Answers(Mapping):
    """The answers so far, as a ``when`` predicate sees them: a read-only mapping from
    argument names to values, plus the session they belong to.

    Attributes:
        session: the running session (:class:`emsh.context.SessionAPI`; its ``state`` holds
            per-session objects such as inline files), or None where there is none
            (``emsh check``, validating a specification). Predicates must cope with None.
    """

    __slots__ = ("_data", "_session", "_registers")

    def __init__(self, data: Mapping[str, Any] | None = None, session: Any = None,
                 registers=()):
        self._data = dict(data or {})
        self._session = session
        self._registers = tuple(registers or ())

    @property
    def registers(self) -> tuple:
        """Output register names on the operation line (``AP REF [psi],...``); () if none."""
        return self._registers

    @property
    def session(self) -> Any:
        """The running session, or None."""
        return self._session

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Answers({self._data!r}, session={self._session!r})"


@dataclass(frozen=True)
class Prompt:
    """One answer line of an operation.

    Attributes:
        name: identifier; the keyword argument of the implementation for kinds other than
            ``values`` (whose fields supply the argument names).
        text: SPIDER's prompt text, shown in the shell and echoed in the results log.
        kind: one of :data:`PROMPT_KINDS`.
        fields: the values of a ``values`` prompt, in order.
        choices: accepted answers of a ``choice`` prompt (upper case).
        default: value of a non-``values`` prompt answered with an empty line (shell only)
            or skipped by ``when``.
        optional: ``*`` is accepted and passed as None (file kinds).
        repeat: the prompt is asked again until ``*`` (open-ended input lists such as
            ``AD``); the argument is a list.
        when: a predicate on the answers so far (an :class:`Answers` mapping, whose
            ``session`` is the running session or None); the prompt is asked only when it
            is true (SPIDER operations whose questions depend on earlier answers).
        patterns: glob patterns for file completion.
        help: one line shown by ``emsh help``.
        terminator: the answer that ends a ``repeat`` prompt (``*``; ``VM M`` uses ``.``).
    """

    name: str
    text: str
    kind: str = "values"
    fields: tuple[Field, ...] = ()
    choices: tuple[str, ...] = ()
    default: Any = None
    optional: bool = False
    repeat: bool = False
    when: Callable[[Answers], bool] | None = None
    patterns: tuple[str, ...] = ()
    help: str = ""
    terminator: str = "*"

    def argument_names(self) -> tuple[str, ...]:
        """The implementation's keyword arguments this prompt supplies."""
        if self.kind == "values":
            return tuple(f.name for f in self.fields)
        return (self.name,)

    def applies(self, answers: Mapping[str, Any], session: Any = None) -> bool:
        """Whether this prompt is asked, given the answers so far.

        Args:
            answers: the answers so far; a plain mapping is wrapped in :class:`Answers`
                with ``session`` (an :class:`Answers` keeps its own session).
            session: the running session, or None where there is none.
        """
        if self.when is None:
            return True
        if not isinstance(answers, Answers):
            answers = Answers(answers, session)
        return bool(self.when(answers))


@dataclass(frozen=True)
class Operation:
    """Specification of one operation.

    Attributes:
        code: upper-case words, e.g. ``"AP SH"``; looked up by longest match of up to
            four words of the operation line.
        title: one line, shown by ``emsh ops``.
        prompts: the answer lines, in SPIDER's order.
        impl: ``"package.module:function"`` (imported when first run) or a callable.
        aliases: other codes for the same operation.
        outputs: names of the values returned into the registers on the operation line.
        inline: what text after the code on the operation line means: ``"registers"``
            (output register list, the default) or ``"raw"`` (the text is passed to the
            implementation as ``inline``, for SD/UD-style operations).
        mpi: ``"root"``: rank 0 runs it and outputs are broadcast (file utilities);
            ``"all"``: every rank runs it with the communicator and splits the work.
        options: ``key=value`` options accepted on the operation line.
        help: long help (paragraphs of plain text).
        see_also: related codes.
        plugin: name of the providing plugin (set by the registry).
    """

    code: str
    title: str
    prompts: tuple[Prompt, ...] = ()
    impl: str | Callable[..., Any] = ""
    aliases: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    inline: str = "registers"
    mpi: str = "root"
    options: tuple[Field, ...] = ()
    help: str = ""
    see_also: tuple[str, ...] = ()
    plugin: str = ""

    def argument_names(self) -> list[str]:
        """All keyword arguments the implementation receives (besides ``ctx``)."""
        names = [n for p in self.prompts for n in p.argument_names()]
        names += [o.name for o in self.options]
        if self.inline == "raw":
            names.append("inline")
        return names


@dataclass
class Plugin:
    """A named set of operations, exposed through the ``emsh.plugins`` entry-point group.

    Operations are listed in ``operations`` or declared with the :meth:`operation`
    decorator::

        PLUGIN = Plugin("myplugin", summary="My operations")

        @PLUGIN.operation("MY OP", "Scale an image", prompts=(
            Prompt("src", "INPUT FILE", kind="image"),
            Prompt("dst", "OUTPUT FILE", kind="image_out"),
            Prompt("factor", "FACTOR", fields=(Field("factor", "float", 2.0),)),
        ))
        def my_op(ctx, src, dst, factor): ...
    """

    name: str
    operations: list[Operation] = field(default_factory=list)
    version: str = "0"
    summary: str = ""

    def operation(self, code: str, title: str, **spec: Any) -> Callable[[Callable], Callable]:
        """Decorator: declare the decorated function as the implementation of ``code``."""

        def register(func: Callable) -> Callable:
            self.operations.append(Operation(code=code, title=title, impl=func, **spec))
            return func

        return register


def validate_operation(op: Operation) -> list[str]:
    """Every problem with an operation's specification (an empty list if it is sound)."""
    problems = []
    where = f"operation {op.code!r}"
    for code in (op.code, *op.aliases):
        if not CODE_RE.match(code):
            problems.append(f"{where}: code {code!r} is not 1-4 upper-case words")
    if not op.title or "\n" in op.title:
        problems.append(f"{where}: title must be one non-empty line")
    if op.inline not in ("registers", "raw"):
        problems.append(f"{where}: inline must be 'registers' or 'raw'")
    if op.mpi not in ("root", "all"):
        problems.append(f"{where}: mpi must be 'root' or 'all'")
    if not op.impl:
        problems.append(f"{where}: no implementation given")
    seen: set[str] = set()
    for p in op.prompts:
        problems += _validate_prompt(where, p)
        for n in p.argument_names():
            if n in seen:
                problems.append(f"{where}: argument {n!r} is supplied twice")
            seen.add(n)
    for o in op.options:
        problems += _validate_field(f"{where} option", o)
    return problems


def _validate_prompt(where: str, p: Prompt) -> list[str]:
    out = []
    if not NAME_RE.match(p.name):
        out.append(f"{where}: prompt name {p.name!r} is not an identifier")
    if p.kind not in PROMPT_KINDS:
        out.append(f"{where}: prompt {p.name!r} has unknown kind {p.kind!r}")
    if p.kind == "values" and not p.fields:
        out.append(f"{where}: values prompt {p.name!r} declares no fields")
    if p.kind == "choice" and not p.choices:
        out.append(f"{where}: choice prompt {p.name!r} declares no choices")
    for f in p.fields:
        out += _validate_field(f"{where} prompt {p.name!r}", f)
    return out


def _validate_field(where: str, f: Field) -> list[str]:
    out = []
    if not NAME_RE.match(f.name):
        out.append(f"{where}: field name {f.name!r} is not an identifier")
    if f.type not in FIELD_TYPES:
        out.append(f"{where}: field {f.name!r} has unknown type {f.type!r}")
    if not f.required and f.type in ("int", "float") and f.default is not None:
        if (f.min is not None and f.default < f.min) or (f.max is not None and f.default > f.max):
            out.append(f"{where}: default of {f.name!r} is outside its range")
    return out


def check_values(f: Field, value: Any) -> Any:
    """Convert one evaluated answer value to the field's type and check its range."""
    if f.type == "int":
        value = int(float(value))  # SPIDER truncates
    elif f.type == "float":
        value = float(value)
    elif f.type == "yesno":
        value = value if isinstance(value, bool) else parse_yesno(str(value))
    if f.type in ("int", "float"):
        if f.min is not None and value < f.min:
            raise UsageError(f"{f.name} = {value} is below the minimum {f.min}")
        if f.max is not None and value > f.max:
            raise UsageError(f"{f.name} = {value} is above the maximum {f.max}")
    return value


def parse_yesno(text: str) -> bool:
    """SPIDER's Y/N answer (legacy 1/0 accepted)."""
    t = text.strip().strip("()").upper()
    if t in ("Y", "YES", "1"):
        return True
    if t in ("N", "NO", "0"):
        return False
    raise UsageError(f"expected Y or N, got {text!r}")


def check_signature(op: Operation, func: Callable[..., Any]) -> None:
    """Raise PluginError unless ``func`` takes ``ctx`` plus exactly the declared arguments."""
    import inspect

    params = list(inspect.signature(func).parameters.values())
    kinds = {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}
    if any(p.kind in kinds for p in params):
        raise PluginError(f"{op.plugin}:{op.code}: implementation must not take *args/**kwargs")
    names = [p.name for p in params]
    if not names or names[0] != "ctx":
        raise PluginError(f"{op.plugin}:{op.code}: first parameter of the implementation must be ctx")
    want, have = set(op.argument_names()), set(names[1:])
    if want != have:
        missing = ", ".join(sorted(want - have)) or "-"
        extra = ", ".join(sorted(have - want)) or "-"
        raise PluginError(
            f"{op.plugin}:{op.code}: implementation parameters do not match the prompts "
            f"(missing: {missing}; not declared: {extra})"
        )
