"""A test registry of tiny fake operations, and helpers to run procedure text."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from emsh.errors import OperationError
from emsh.ops import system
from emsh.parallel import SerialComm
from emsh.registry import Registry
from emsh.session import Session
from emsh.spec import Field, Plugin, Prompt

CALLS: list[tuple[str, dict]] = []


def _record(code):
    def impl(ctx, **kw):
        CALLS.append((code, kw))
        return None
    return impl


def t_val(ctx, a, b, c):
    CALLS.append(("T VAL", {"a": a, "b": b, "c": c}))
    return a, b, c


def t_when(ctx, mode, radius, out):
    CALLS.append(("T WHEN", {"mode": mode, "radius": radius, "out": out}))
    return {"radius": radius if radius is not None else -1.0}


def t_rep(ctx, files, weight):
    CALLS.append(("T REP", {"files": files, "weight": weight}))
    return float(len(files))


def t_num(ctx, numbers):
    CALLS.append(("T NUM", {"numbers": numbers}))
    return float(len(numbers)), float(sum(numbers))


def t_raw(ctx, inline):
    CALLS.append(("T RAW", {"inline": inline}))
    return ctx.session.evaluate(inline) if inline else 0.0


def t_opts(ctx, image, iters, name):
    CALLS.append(("T OPTS", {"image": image, "iters": iters, "name": name}))
    return float(iters)


def t_fail(ctx, image):
    raise OperationError(f"{image}: cannot use this image", code="T FAIL")


def t_count(ctx, count, items):
    CALLS.append(("T COUNT", {"count": count, "items": items}))
    return float(len(items))


def t_upto(ctx, points, weight):
    CALLS.append(("T UPTO", {"points": points, "weight": weight}))
    return float(len(points))


def _all_zero(text) -> bool:
    try:
        return not any(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        return False


def t_bug(ctx):
    return 1 / 0


def t_text(ctx, label, ok, formula):
    CALLS.append(("T TEXT", {"label": label, "ok": ok, "formula": formula}))


def t_setvar(ctx):
    ctx.session.set_register("made", 7)
    ctx.session.set_string("word", "hello")


#: ``answers.session`` as each ``T SESS`` predicate saw it.
SEEN_SESSIONS: list = []


def _ran_before(a) -> bool:
    """``T SESS`` asks EXTRA only once it has run in this session (session state)."""
    SEEN_SESSIONS.append(a.session)
    return a.session is not None and bool(a.session.state.get("t sess"))


def t_sess(ctx, extra):
    CALLS.append(("T SESS", {"extra": extra}))
    ctx.shared_state("t sess", list).append(extra)


FAKE = Plugin("fake", summary="test operations", operations=[])
FAKE.operation("T VAL", "three values with defaults", outputs=("a", "b", "c"), prompts=(
    Prompt("vals", "A, B, C", fields=(Field("a", "int"), Field("b", "float", 2.5),
                                      Field("c", "float", -1.0, min=-10, max=10))),))(t_val)
FAKE.operation("T WHEN", "conditional prompt", outputs=("radius",), prompts=(
    Prompt("mode", "MODE (A/B)", kind="choice", choices=("A", "B")),
    Prompt("radius", "RADIUS", fields=(Field("radius", "float"),),
           when=lambda a: a["mode"] == "B"),
    Prompt("out", "OUTPUT", kind="image_out", optional=True)))(t_when)
FAKE.operation("T REP", "files until *", outputs=("count",), prompts=(
    Prompt("files", "NEXT FILE", kind="image", repeat=True),
    Prompt("weight", "WEIGHT", fields=(Field("weight", "float", 1.0),))))(t_rep)
FAKE.operation("T COUNT", "a count, then that many lines", outputs=("n",), prompts=(
    Prompt("count", "NUMBER OF LINES", fields=(Field("count", "int", min=0),)),
    Prompt("items", "LINE", kind="text", repeat=True,
           when=lambda a: len(a["items"]) < a["count"])))(t_count)
FAKE.operation("T UPTO", "points up to one of zeros", outputs=("n",), prompts=(
    Prompt("points", "POINT", kind="text", repeat=True, terminator="0,0,0",
           when=lambda a: not (a["points"] and _all_zero(a["points"][-1]))),
    Prompt("weight", "WEIGHT", fields=(Field("weight", "float", 1.0),))))(t_upto)
FAKE.operation("T NUM", "a number list", outputs=("n", "total"), prompts=(
    Prompt("numbers", "FILE NUMBERS OR SELECTION DOC", kind="numbers"),))(t_num)
FAKE.operation("T RAW", "inline text", outputs=("value",), inline="raw")(t_raw)
FAKE.operation("T OPTS", "options on the op line", outputs=("iters",),
               options=(Field("iters", "int", 3, min=1), Field("name", "str", "x")),
               prompts=(Prompt("image", "INPUT", kind="image"),))(t_opts)
FAKE.operation("T FAIL", "always fails", prompts=(Prompt("image", "INPUT", kind="image"),))(t_fail)
FAKE.operation("T BUG", "has a bug")(t_bug)
FAKE.operation("T TEXT", "text kinds", prompts=(
    Prompt("label", "LABEL", kind="text"), Prompt("ok", "OK (Y/N)", kind="yesno"),
    Prompt("formula", "FORMULA", kind="formula")))(t_text)
FAKE.operation("T SESS", "asks more once it has run in the session", prompts=(
    Prompt("extra", "EXTRA", fields=(Field("extra", "float", 0.0),), when=_ran_before),))(t_sess)
FAKE.operation("T SETVAR", "sets variables through the session")(t_setvar)


def make_registry() -> Registry:
    return Registry([Plugin("builtin", operations=list(system.OPERATIONS)), FAKE])


@pytest.fixture
def registry() -> Registry:
    CALLS.clear()
    SEEN_SESSIONS.clear()
    return make_registry()


class Runner:
    """Runs procedure text in a folder with the fake registry; keeps the output."""

    def __init__(self, folder: Path, registry: Registry):
        self.folder, self.registry = folder, registry
        self.out = io.StringIO()

    def write(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.write_text(text)
        return path

    def session(self, **kw) -> Session:
        kw.setdefault("data_ext", "dat")
        return Session(self.registry, SerialComm(), out=self.out, **kw)

    def run(self, text: str, name: str = "main.spi", args=None, **kw) -> Session:
        self.write(name, text)
        s = self.session(**kw)
        s.run_file(name, args)  # relative to the folder, as a user types it
        s.close()
        return s


@pytest.fixture
def runner(tmp_path, registry, monkeypatch) -> Runner:
    monkeypatch.chdir(tmp_path)
    return Runner(tmp_path, registry)


@pytest.fixture
def calls() -> list:
    return CALLS


@pytest.fixture
def seen_sessions() -> list:
    """``answers.session`` as each ``T SESS`` ``when`` saw it."""
    return SEEN_SESSIONS
