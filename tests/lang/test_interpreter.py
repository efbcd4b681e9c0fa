"""Control flow, variables, procedure calls and FR forwarding, run by the interpreter."""

import pytest

from emsh.errors import ProcedureError, UsageError
from emsh.parallel import SerialComm
from emsh.session import Session


def test_loops_keep_the_last_value_and_evaluate_bounds_once(runner):
    s = runner.run("""
[sum] = 0
DO [i]=1,10
  [sum] = [sum] + [i]*[i]
ENDDO
[n] = 0
do [j]=9,1,-2          ; lower-case keywords, negative step
  [n] = [n]*10 + [j]
enddo
[lim] = 4
[cnt] = 0
DO [k]=1,[lim]
  [lim] = 100
  [cnt] = [cnt] + 1
ENDDO
[m] = 6.11
[trips] = 0
DO [q]=1,[m]           ; non-integer bound: 1..6
  [trips] = [trips] + 1
ENDDO
[z] = 5
DO [z]=3,1             ; no pass at all: the index is untouched
  [z] = -1
ENDDO
""")
    v = s.last_vars
    assert (v["sum"], v["i"]) == (385, 10)
    assert (v["n"], v["j"]) == (97531, 1)
    assert (v["cnt"], v["lim"], v["k"]) == (4, 100, 4)
    assert (v["trips"], v["q"]) == (6, 6)
    assert v["z"] == 5


def test_exit_cycle_bare_do_and_nesting(runner):
    s = runner.run("""
[odd] = 0
DO [k]=1,20
  IF ([k] .GT. 11) EXIT
  IF (INT([k]/2)*2 == [k]) CYCLE
  [odd] = [odd] + [k]
ENDDO
[w] = 1
DO
  [w] = [w]*3
  IF ([w] > 200) EXIT
ENDDO
""")
    v = s.last_vars
    assert (v["odd"], v["k"], v["w"]) == (36, 12, 243)


def test_nested_loop_sum_exact(runner):
    s = runner.run("""
[tot] = 0
DO [p]=1,3
  DO [q]=1,4
    IF ([q] == 3) CYCLE
    [tot] = [tot] + [p]*10 + [q]
  ENDDO
ENDDO
""")
    expected = sum(p * 10 + q for p in range(1, 4) for q in range(1, 5) if q != 3)
    assert (s.last_vars["tot"], s.last_vars["p"], s.last_vars["q"]) == (expected, 3, 4)


def test_if_elseif_else_inline_if_and_goto(runner):
    s = runner.run("""
[out] = 0
DO [v]=1,5
  IF ([v] == 1) THEN
    [cls] = 100
  ELSEIF ([v] .LE. 2) THEN
    [cls] = 200
  ELSE IF ([v] >= 5) THEN
    [cls] = 500
  ELSE
    IF ([v] /= 4) THEN
      [cls] = 300
    ELSE
      [cls] = 400
    ENDIF
  END IF
  [out] = [out]*1000 + [cls]
ENDDO
[t] = 5
IF ([t] .NE. 5) [t] = -1
IF ( [t] . EQ. 5 ) [t] = [t]*2
[gone] = 1
GOTO LB7
[gone] = 2
LB7
DO [i]=1,10
  IF ([i] == 3) GOTO LB8     ; leaves the loop
ENDDO
LB8
""")
    v = s.last_vars
    assert v["out"] == 100200300400500
    assert (v["t"], v["gone"], v["i"]) == (10, 1, 3)


def test_strings_are_expanded_when_used(runner, calls):
    s = runner.run("""
[stem] = 'obj'
[grp] = 7
[name] = '[stem]_g{**[grp]}'
T OPTS
[name]_{***[grp]}
[grp] = 12
T OPTS
[name]@{****[grp]}
[num] = 5
T OPTS
tmpl***[num]
T OPTS
fmt_{%I0%[num]}_{%I2%[grp]}.spi
GLOBAL [g] = 'glob'
""")
    assert [kw["image"] for _, kw in calls] == ["obj_g07_007.dat", "obj_g12.dat@0012",
                                                 "tmpl005.dat", "fmt_5_12.spi"]
    assert s.globals["g"] == "glob" and "g" not in s.last_vars


def test_presets_and_parameter_line(runner):
    s = runner.run("([a],[b])\n[c] = [a]*[b]+[n]\n", args={"a": "3", "b": "4", "n": "1"})
    assert s.last_vars["c"] == 13
    with pytest.raises(UsageError, match=r"give b with --set"):
        runner.run("([a],[b])\n", args={"a": "1"})


def test_procedure_calls_by_reference_recursion_and_local_loops(runner):
    runner.write("inner.spi", "([z])\n[z] = [z] + 1\nIF ([z] < 3) THEN\n  @inner([z])\nENDIF\nRE\n")
    runner.write("loop.spi", "([m])\n[acc] = 0\nDO [i]=1,[m]\n  [acc] = [acc] + [i]\nENDDO\n"
                             "[m] = [acc]\nRE\n")
    runner.write("share.spi", "[shared] = [base] + 1\nRE\n")
    s = runner.run("""
[depth] = 0
@inner([depth])
[i] = 99
[u] = 4
@loop([u])
[base] = 10
@@share
[e] = 1
@inner([e]+0)            ; an expression argument is passed by value
""")
    v = s.last_vars
    assert (v["depth"], v["u"], v["i"], v["shared"], v["e"]) == (3, 10, 99, 11, 1)
    assert "acc" not in v and "z" not in v


def test_fr_reads_the_callers_line_and_question_marks_forward(runner, calls):
    runner.write("callee.spi", "([k])\nFR\n?IMAGE?[img]\nT OPTS\n[img]\nT VAL\n?THREE VALUES?\n"
                               "[k] = [k]*2\nRE\n")
    runner.write("middle.spi", "[y] = 1\n@callee([y])\n?PASS IT ON?\n5,6\nRE\n")
    s = runner.run("""
[x] = 1
[n] = 3
@callee([x])
tmpl***[n]              ; evaluated in the caller: tmpl003
[n],7                   ; the values line, in the caller's registers
@middle
pic_{**[n]}
RR [r]
8*[n]
""")
    assert [kw["image"] for c, kw in calls if c == "T OPTS"] == ["tmpl003.dat", "pic_03.dat"]
    assert [(kw["a"], kw["b"]) for c, kw in calls if c == "T VAL"] == [(3, 7), (5, 6)]
    assert s.last_vars["x"] == 2 and s.last_vars["r"] == 24


def test_fr_l_rr_s_md_and_en(runner):
    s = runner.run("""
FR L
[dir]../data ; a comment
RR S [pick]
10,20,30
2
MD
SET SEED
42
MD
VB OFF
EN
[never] = 1
""")
    v = s.last_vars
    assert v["dir"] == "../data" and v["pick"] == 20 and "never" not in v
    assert s.seed == 42 and s.settings["SET SEED"] == "42" and s.settings["VB"] == "OFF"
    assert s.ended


def test_seed_makes_random_numbers_repeatable(runner):
    text = "MD\nSET SEED\n7\n[a] = RAN(0)\n[b] = RNN(0)\n"
    a = runner.run(text).last_vars
    b = runner.run(text, name="again.spi").last_vars
    assert (a["a"], a["b"]) == (b["a"], b["b"])
    c = runner.run(text.replace("7", "8"), name="other.spi").last_vars
    assert c["a"] != a["a"]


def test_echo_prints_value(runner):
    runner.run("[x] = 2.5\n[x]*2\nSQR(16)\n")
    assert runner.out.getvalue().splitlines() == [" [x]*2 = 5", " SQR(16) = 4"]


def test_runtime_errors_carry_location_and_call_chain(runner):
    runner.write("sub.spi", "([a])\n[b] = 1\n[c] = [a] / ([b]-1)\nRE\n")
    with pytest.raises(ProcedureError) as info:
        runner.run("; top\n[x] = 2\n@sub([x])\n")
    text = str(info.value)
    assert text.splitlines()[0] == "sub.spi:3:11: division by zero"
    assert text.splitlines()[1:] == ["    [c] = [a] / ([b]-1)", "              ^",
                                     "  called from main.spi:3"]
    err = info.value
    assert (str(err.ref), err.reason, err.collective) == ("sub.spi:3:11", "division by zero", True)
    assert [f"{r.file}:{r.line}" for r in err.stack] == ["main.spi:3"]


def test_procedure_error_fields_come_from_its_constructor():
    from emsh.lang.ast import SourceRef

    plain = ProcedureError("p.spi: cannot read procedure")
    assert (str(plain), plain.ref, plain.reason, plain.stack, plain.collective) == \
        ("p.spi: cannot read procedure", None, "p.spi: cannot read procedure", (), True)
    ref = SourceRef("a.spi", 4, 2, "x")
    err = ProcedureError("a.spi:4:2: bad", ref=ref, reason="bad", stack=[ref], collective=False)
    assert (str(err), err.ref, err.reason, err.stack, err.collective) == \
        ("a.spi:4:2: bad", ref, "bad", (ref,), False)


def test_undefined_register_is_an_error(runner):
    with pytest.raises(ProcedureError, match=r"main.spi:2:11: undefined register \[d\]"):
        runner.run("[a] = 1\n[b] = RAN([d])\n")


def test_operation_errors_are_located(runner):
    with pytest.raises(ProcedureError) as info:
        runner.run("[a] = 1\n  T FAIL\nimg001\n")
    assert str(info.value).startswith("main.spi:2:3: T FAIL: img001.dat: cannot use this image")
    with pytest.raises(ProcedureError, match=r"main.spi:1:1: T BUG failed with an internal error "
                                             r"\(ZeroDivisionError"):
        runner.run("T BUG\n")


def test_results_log(runner, tmp_path):
    runner.run("[a] = 3\nT VAL\n1,2 ; answer\nT OPTS iters=5\nimg\n", results=True)
    log = (tmp_path / "results.spi.1").read_text()
    assert " .OPERATION: [a] = 3" in log
    assert " .OPERATION: T VAL\n .A, B, C: 1,2\n" in log
    assert " .INPUT: img.dat" in log
    runner.run("[b] = 1\n", name="y.spi", results=True)
    assert (tmp_path / "results.spi.2").is_file()


def test_shell_statements_share_variables(registry, runner, calls):
    answers = iter(["2, 4", "B", "7.5", "*"])
    s = runner.session(ask=lambda q: next(answers))
    s.run_statement("[a] = 5")
    s.run_statement("T VAL [x],[y]")
    s.run_text("DO [i]=1,2\n  [a] = [a]+[i]\nENDDO\n")
    s.run_statement("T WHEN [r]")
    assert (s.top_ns["a"], s.top_ns["x"], s.top_ns["y"], s.top_ns["r"]) == (8, 2, 4, 7.5)
    assert calls[-1] == ("T WHEN", {"mode": "B", "radius": 7.5, "out": None})


def test_terminal_answers_forwarding_and_retry(runner, calls):
    questions, rejected = [], []
    answers = iter(["4", "dir/x", "Q", "a", "*"])

    def ask(question):
        questions.append(question)
        return next(answers)

    runner.write("job.spi", "T VAL [a]\n?GIVE A?\nFR\n?WHERE?[w]\n")
    s = runner.session(ask=ask, report=rejected.append)
    s.run_file("job.spi")      # ?question? answers come from the terminal
    s.run_statement("T WHEN")  # a statement typed in the shell asks every prompt
    assert questions == ["GIVE A", "WHERE", "MODE (A/B)", "MODE (A/B)", "OUTPUT"]
    assert (s.last_vars["a"], s.last_vars["w"]) == (4, "dir/x")
    assert len(rejected) == 1 and "'Q' is not one of A, B" in str(rejected[0])
    assert calls[-1] == ("T WHEN", {"mode": "A", "radius": None, "out": None})


def test_goto_to_the_label_closing_a_legacy_loop_continues_it(runner):
    s = runner.run("[s] = 0\nDO LB5 [i]=1,4\n  IF ([i] == 2) GOTO LB5\n  [s] = [s] + [i]\nLB5\n")
    assert (s.last_vars["s"], s.last_vars["i"]) == (1 + 3 + 4, 4)


def test_system_ops_on_files(runner, tmp_path):
    import numpy as np

    import emsh.io as eio

    eio.write(tmp_path / "stk.dat", np.zeros((3, 4, 4), np.float32), stack=True)
    (tmp_path / "gone.dat").write_text("x")
    s = runner.run("""
IQ FI [a],[o]
stk@3
IQ FI [b]
stk@4
IQ FI [c]
_5
DE
gone
DE
gone
IQ FI [d]
gone
IQ DIR [e]
.
VM M
echo one > m1.txt
echo two ; echo three > m2.txt
.
""")
    v = s.last_vars
    assert (v["a"], v["o"], v["b"], v["c"], v["d"], v["e"]) == (1, 0, 0, 0, 0, 1)
    assert (tmp_path / "m1.txt").read_text() == "one\n" and (tmp_path / "m2.txt").exists()
    assert "two" in runner.out.getvalue()
    with pytest.raises(ProcedureError, match="deleting one image of a stack is not supported"):
        runner.run("DE\nstk@2\n", name="x.spi")


def test_closing_the_session_closes_what_operations_keep_open(runner, tmp_path):
    from emsh.registry import Registry

    class Held:
        def __init__(self):
            self.closed = 0

        def close(self):
            self.closed += 1

    s = Session(Registry.discover(), SerialComm(), data_ext="dat", echo=False)
    s.run_text("[x] = 1.5\nSD 1,[x]\nd\n")                 # no SD E: the file stays open
    writer = s.state["emsh.ops.docs"].writers[str(tmp_path / "d.dat")]
    assert writer._fh is not None and not writer._fh.closed
    held, plain = Held(), {"kept": True}
    s.state.update(held=held, plain=plain)
    s.close()
    s.close()
    assert writer._fh is None and held.closed == 1              # each closed once
    assert s.state == {"plain": plain}                          # values without close() stay
    assert (tmp_path / "d.dat").read_text().splitlines()[1] == "    1 1   1.50000     "
