"""The prompt_toolkit shell driven through a pipe: what a person types, what happens."""

from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

CTRL_C, CTRL_D = "\x03", "\x04"


def test_an_operation_asks_its_questions_and_fills_registers(work, type_keys):
    run = type_keys("FS [mx],[mn],[av]\nimg\n[mx]\n[av]*2\n")
    assert run.status == 0 and run.err == ""
    assert " [mx] = 15\n" in run.out and " [av]*2 = 15\n" in run.out
    assert run.session.top_ns["mn"] == 0
    log = (work / "results.spi.1").read_text()
    assert " .OPERATION: FS [mx],[mn],[av]\n .INPUT FILE NAME OR TEMPLATE (E.G. stk-file@*): " \
           "img.spi\n" in log  # SPIDER's question text, and the answer with its data extension


def test_a_do_block_over_several_lines_runs_when_closed(work, type_keys):
    keys = ("[s] = 0\n"
            "DO [i]=1,3\n"
            "  FS [m]\n"         # an operation inside a block reads its answers from the block
            "  img\n"
            "  IF ([i] == 2) THEN\n"
            "    [s] = [s] + 100\n"
            "  ENDIF\n"
            "  [s] = [s] + [m]*[i]\n"
            "ENDDO\n"
            "[s]\n")
    run = type_keys(keys)
    assert run.err == ""
    assert " [s] = 190\n" in run.out  # 15*(1+2+3) + 100
    assert run.out.count("FMAX:") == 3


def test_help_and_question_mark_render_the_spec(type_keys):
    run = type_keys("HELP FS\nrt sq ?\nHELP\nHELP NOPE\n")
    assert run.out.count("FS: Statistics of images: max, min, average, SD") == 1
    assert "RT SQ: Rotate, scale and shift" in run.out
    assert "   4. ROTATION ANGLE, SCALE FACTOR\n" in run.out
    assert "T PICK" in run.out and "Ctrl-D" in run.out  # HELP alone: usage and every code
    assert run.err == "emsh: unknown operation 'NOPE' ('emsh ops' lists them)\n"


def test_an_error_is_one_line_and_the_next_command_works(type_keys):
    run = type_keys("FS\nmissing\nXYZZY 3\n[a] = 1/0\n[b] = 2+3\n[b]\n")
    lines = run.err.splitlines()
    assert len(lines) == 3, run.err
    assert lines[0].startswith("emsh: ") and "missing.spi" in lines[0]
    assert lines[1] == "emsh: unknown operation 'XYZZY' ('emsh ops' lists the operations)"
    assert lines[2] == "emsh: division by zero"
    assert " [b] = 5\n" in run.out


def test_a_bad_answer_is_asked_again(type_keys):
    run = type_keys("T PICK iters=2 [c],[t]\nQ\nB\n4\n[t]\n")
    assert run.err == "emsh: T PICK, MODE (A/B): 'Q' is not one of A, B\n"
    assert "  picked B 4 0.5 2 x\n" in run.out and " [t] = 4.5\n" in run.out
    assert run.session.top_ns["c"] == 2


def test_ctrl_c_cancels_the_line_the_block_or_the_operation(type_keys):
    keys = ("[d] = 5" + CTRL_C + "[d] = 6\n"          # a half-typed line is dropped
            "DO [i]=1,3\n[d] = 0\n" + CTRL_C +         # so is an open block
            "T PICK\nA\n" + CTRL_C +                   # and an operation waiting for answers
            "[d]\n")
    run = type_keys(keys)
    assert run.err == "emsh: cancelled\n"
    assert run.out.endswith(" [d] = 6\n") and "picked" not in run.out
    assert "i" not in run.session.top_ns


def test_ctrl_d_and_en_leave_the_shell(type_keys):
    run = type_keys("[a] = 1\n" + CTRL_D + "[a] = 2\n")
    assert run.status == 0 and run.session.top_ns["a"] == 1
    run = type_keys("[a] = 1\nEN\n[a] = 2\n")
    assert run.status == 0 and run.session.top_ns["a"] == 1


def test_history_is_saved_to_the_file(work, type_keys):
    type_keys("[a] = 7\n[a]\n")
    text = (work / "history").read_text()
    assert "+[a] = 7\n" in text and "+[a]\n" in text


def test_an_internal_error_is_logged_and_the_shell_goes_on(work, type_keys, monkeypatch):
    from emsh.lang.interpreter import Interpreter

    real = Interpreter.execute

    def broken(self, frame, stmt, i):
        if "boom" in frame.proc.code[i]:
            raise RuntimeError("simulated bug")
        return real(self, frame, stmt, i)

    monkeypatch.setattr(Interpreter, "execute", broken)
    run = type_keys("[boom] = 1\n[ok] = 2\n[ok]\n")
    assert run.err.count("\n") == 1
    assert "internal error (RuntimeError: simulated bug)" in run.err
    assert str(work / "errors.log") in run.err
    log = (work / "errors.log").read_text()
    assert "[boom] = 1" in log and "Traceback" in log and "simulated bug" in log
    assert " [ok] = 2\n" in run.out


def test_the_completer_adapter_offers_multi_word_codes(work, shell_registry):
    from emsh.shell.engine import ShellEngine
    from emsh.shell.repl import PromptShell
    from emsh.session import Session
    from emsh.parallel import SerialComm

    session = Session(shell_registry, SerialComm())
    shell = PromptShell(ShellEngine(session))
    got = list(shell.statements.completer.get_completions(Document("ud f"), CompleteEvent()))
    assert {"UD FIND", "UD FIND E"} <= {c.text for c in got}
    assert all(c.text.startswith("UD F") and c.start_position == -4 for c in got)
    got = list(shell.statements.completer.get_completions(Document("T P"), CompleteEvent()))
    assert [(c.text, c.display_meta_text) for c in got] == [
        ("T PICK", "a choice, then values with defaults")]
    shell._asking = shell_registry.get("T FILE").prompts[0]
    (work / "a.mrc").touch()
    (work / "b.txt").touch()
    got = list(shell.answers.completer.get_completions(Document(""), CompleteEvent()))
    assert [c.text for c in got] == ["a.mrc"]


def test_questions_reach_the_front_end_with_their_prompt_spec(work, shell_registry):
    """The shell gets the spec with the question, never by looking its text up: two
    questions in the same words (one operation's, or two operations') get their own specs,
    and a question forwarded by ``?text?`` has none."""
    from emsh.parallel import SerialComm
    from emsh.registry import Registry
    from emsh.session import Session
    from emsh.shell.engine import ShellEngine
    from emsh.shell.repl import PromptShell
    from emsh.spec import Operation, Plugin, Prompt

    same = Operation("T SAME", "same words, other kinds", impl=lambda ctx, src, pick: None,
                     prompts=(Prompt("src", "INPUT MAP", kind="image", patterns=("*.map",)),
                              Prompt("pick", "INPUT MAP", kind="choice", choices=("X", "Y"))))
    registry = Registry([*shell_registry.plugins.values(), Plugin("other", operations=[same])])
    session = Session(registry, SerialComm(), out=None, echo=False)
    shell = PromptShell(ShellEngine(session))
    seen, typed = [], iter(["a.mrc", "b.map", "X", "c.mrc"])

    def answer(message):
        seen.append((message, shell._asking, shell.answers.bottom_toolbar))
        return next(typed)

    shell.answers.prompt = answer
    (work / "fwd.spi").write_text("T FILE\n?MAP NAME?\n")
    for line in ("T FILE", "T SAME", "@fwd"):
        shell.engine.push(line)
    file_spec = registry.get("T FILE").prompts[0]
    src_spec, pick_spec = registry.get("T SAME").prompts
    assert [(m, p) for m, p, _ in seen] == [(" .INPUT MAP: ", file_spec),
                                            (" .INPUT MAP: ", src_spec),
                                            (" .INPUT MAP: ", pick_spec),
                                            (" .MAP NAME: ", None)]
    assert [p for _, p, _ in seen[:3]] == [file_spec, src_spec, pick_spec]
    assert all(seen[k][1] is spec for k, spec in enumerate((file_spec, src_spec, pick_spec)))
    assert seen[2][2] != seen[1][2] and seen[3][2] is None   # the toolbar follows the spec
    assert shell._asking is None and shell.engine.errors == 0
