"""A registry for shell tests (built-in operations plus a few small fake ones), and a
helper that drives the prompt_toolkit shell through a pipe."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

import emsh.io as eio
from emsh.ops import PLUGIN as BUILTIN
from emsh.parallel import SerialComm
from emsh.registry import Registry
from emsh.session import Session
from emsh.shell.engine import ShellEngine
from emsh.spec import Field, Plugin, Prompt

FAKE = Plugin("shelltest", version="1.2", summary="operations for the shell tests")


@FAKE.operation("T PICK", "a choice, then values with defaults", outputs=("code", "total"),
                prompts=(Prompt("mode", "MODE (A/B)", kind="choice", choices=("A", "B")),
                         Prompt("vals", "FIRST, SECOND", fields=(
                             Field("first", "int", min=0), Field("second", "float", 0.5)))),
                options=(Field("iters", "int", 3, min=1, help="how many times"),
                         Field("label", "str", "x")))
def t_pick(ctx, mode, first, second, iters, label):
    ctx.log(f"  picked {mode} {first} {second:g} {iters} {label}")
    return {"code": 1.0 if mode == "A" else 2.0, "total": first + second}


@FAKE.operation("T FILE", "an input file with patterns", prompts=(
    Prompt("src", "INPUT MAP", kind="image", patterns=("*.mrc", "*.map")),))
def t_file(ctx, src):
    ctx.log(f"  got {src}")


def make_registry() -> Registry:
    return Registry([BUILTIN, FAKE])


@dataclass
class ShellRun:
    """What a scripted shell session left behind."""

    status: int
    out: str
    err: str
    session: Session
    folder: Path


def run_keys(folder: Path, keys: str, registry: Registry | None = None) -> ShellRun:
    """Type ``keys`` into a prompt_toolkit shell (pipe input, DummyOutput) in ``folder``.

    The pipe is closed after the keys, so a shell that wants more input gets Ctrl-D
    instead of waiting for ever.
    """
    from emsh.shell.repl import PromptShell

    out, err = io.StringIO(), io.StringIO()
    session = Session(registry or make_registry(), SerialComm(), out=out,
                      results=folder / "results.spi.1")
    engine = ShellEngine(session, err=err, bug_log=folder / "errors.log")
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text(keys)
        pipe.close()
        shell = PromptShell(engine, history=folder / "history", input=pipe,
                            output=DummyOutput())
        status = shell.loop()
    session.close()
    return ShellRun(status, out.getvalue(), err.getvalue(), session, folder)


@pytest.fixture
def shell_registry() -> Registry:
    """Built-in operations plus the fake ``T PICK`` and ``T FILE``."""
    return make_registry()


@pytest.fixture
def type_keys(work):
    """``type_keys(keys) -> ShellRun``: a scripted shell session in the ``work`` folder."""
    return lambda keys, registry=None: run_keys(work, keys, registry)


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """A folder holding img.spi (4x4 ramp 0..15) and a few other files, made current."""
    monkeypatch.chdir(tmp_path)
    eio.write(tmp_path / "img.spi", np.arange(16, dtype=np.float32).reshape(4, 4))
    return tmp_path
