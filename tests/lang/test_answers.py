"""Answering an operation's prompts from the lines after it (fake operations)."""

import pytest

from emsh.errors import ProcedureError
from emsh.spec import Field
from emsh.io.docfile import write_doc
from emsh.lang.answers import ListAnswers
from emsh.lang.prompts import answer_operation
from emsh.lang.ast import SourceRef
from emsh.lang.interpreter import Frame
from emsh.lang.opcall import RuntimeResolver
from emsh.lang.parser import Procedure


def test_values_defaults_parentheses_and_continuation(runner, calls):
    s = runner.run("""
[n] = 4
T VAL [a],[b],[c]
7.9                   ; int field truncates; b, c keep their defaults
T VAL
([n]*2, 0.5)
T VAL [x]
1,
3 -2                  ; a trailing comma continues on the next line
T VAL
5,,2                  ; an empty value keeps its default
""")
    assert [tuple(kw.values()) for _, kw in calls] == [(7, 2.5, -1.0), (8, 0.5, -1.0),
                                                       (1, 3.0, -2.0), (5, 2.5, 2.0)]
    v = s.last_vars
    assert (v["a"], v["b"], v["c"], v["x"]) == (7, 2.5, -1, 1)


@pytest.mark.parametrize("lines, where, words", [
    ("T VAL\n1,2,3,4\n", "2:7", "4 values given, at most 3 expected (a, b, c)"),
    ("T VAL\n,2\n", "2:3", "no value for a"),
    ("T VAL\n1,2,11\n", "2:5", "above the maximum 10"),
    ("T VAL\n1 * 2\n", "2:3", "values are separated by commas or blanks"),
    ("T VAL\n1,[nope]\n", "2:3", "undefined register [nope]"),
    ("T VAL\n", "1:1", "T VAL asks for 'A, B, C', but there are no more lines to answer it"),
    ("T WHEN\nC\n", "2:1", "'C' is not one of A, B"),
    ("T WHEN\nA\nout[q]\n", "3:1", "undefined variable [q]"),
    ("[q] = 1\nT WHEN\nA\nout[q]\n", "4:1", "register [q] in the file name"),
    ("T OPTS\n*\n", "2:1", "a file name is needed here"),
    ("T OPTS itres=3\nimg\n", "1:8", "T OPTS has no option 'itres' (options: iters, name)"),
    ("T OPTS iters=0\nimg\n", "1:14", "option iters: iters = 0 is below the minimum 1"),
    ("T VAL [a],[b],[c],[d]\n1\n", "1:7", "T VAL gives 3 values (a, b, c), but 4 registers"),
    ("T NUM\n5-2\n", "2:1", "range 5-2 runs backwards"),
    ("T TEXT\nx\nmaybe\n", "3:1", "expected Y or N"),
    ("T VAL\n?ASK ME?\n", "2:1", "nothing answers ?ASK ME?"),
    ("T VAL\n?bad\n", "2:1", "?question? or ?question?[variable]"),
])
def test_bad_answers_are_located(runner, lines, where, words):
    with pytest.raises(ProcedureError) as info:
        runner.run(lines)
    first = str(info.value).splitlines()[0]
    assert first.startswith(f"main.spi:{where}: "), first
    assert words in first


def test_conditional_prompt_and_optional_file(runner, calls):
    s = runner.run("""
T WHEN [r1]
a                   ; choices in any case
*
T WHEN [r2]
B
2.5
out@3
""")
    assert calls == [("T WHEN", {"mode": "A", "radius": None, "out": None}),
                     ("T WHEN", {"mode": "B", "radius": 2.5, "out": "out.dat@3"})]
    assert (s.last_vars["r1"], s.last_vars["r2"]) == (-1, 2.5)


def test_repeat_until_star(runner, calls):
    s = runner.run("T REP [n]\na@1\nb.spi\n[f]\n*\n3\n", args={"f": "c"})
    assert calls == [("T REP", {"files": ["a.dat@1", "b.spi", "c.dat"], "weight": 3.0})]
    assert s.last_vars["n"] == 3


def test_repeat_rechecks_when_with_the_items_read_so_far(runner, calls):
    s = runner.run("""
[k] = 2
T COUNT [a]
[k]                   ; as many lines as this count: no terminator
first line
second, line
T COUNT [b]
0
T UPTO [c]
1,2,3
4 5 6
0 0 0                 ; closes the list however the zeros are written
2.5
T UPTO [d]
7,8,9
0,0,0                 ; the terminator as written
4
T COUNT [e]
3
only one
*                     ; the terminator still ends it early
""")
    assert calls == [
        ("T COUNT", {"count": 2, "items": ["first line", "second, line"]}),
        ("T COUNT", {"count": 0, "items": []}),
        ("T UPTO", {"points": ["1,2,3", "4 5 6", "0 0 0"], "weight": 2.5}),
        ("T UPTO", {"points": ["7,8,9"], "weight": 4.0}),
        ("T COUNT", {"count": 3, "items": ["only one"]})]
    v = s.last_vars
    assert (v["a"], v["b"], v["c"], v["d"], v["e"]) == (2, 0, 3, 1, 1)


def test_repeat_asks_at_the_terminal_only_as_often_as_needed(registry, runner):
    questions = []
    typed = iter(["2", "x", "y"])

    def ask(question):
        questions.append(question)
        return next(typed)

    s = runner.session(ask=ask)
    s.run_statement("T COUNT [n]")
    assert questions == ["NUMBER OF LINES", "LINE", "LINE"] and s.top_ns["n"] == 2


def test_numbers_from_lists_and_selection_docs(runner, calls, tmp_path):
    write_doc(tmp_path / "sel.dat", [1, 2, 3], [[4], [9], [11]])
    s = runner.run("""
[n] = 4
T NUM [k],[t]
1-3,7 9
T NUM
(1-[n])
T NUM
sel
[sel] = 'sel'
T NUM
[sel]
""")
    assert [kw["numbers"] for _, kw in calls] == [[1, 2, 3, 7, 9], [1, 2, 3, 4], [4, 9, 11],
                                                  [4, 9, 11]]
    assert (s.last_vars["k"], s.last_vars["t"]) == (5, 22)
    with pytest.raises(ProcedureError, match=r"main.spi:2:1: selection file: .*nosuch.dat"):
        runner.run("T NUM\nnosuch\n")


def test_text_yesno_formula_inline_and_options(runner, calls):
    s = runner.run("""
[g] = 3
[s] = 'abc'
T TEXT
[s] grp {**[g]} [g]
Y
P1*[g]+[s]
T RAW [g]*2+1
T OPTS iters=[g]+1 name=[s] [it]
img
""")
    assert calls[0] == ("T TEXT", {"label": "abc grp 03 [g]", "ok": True, "formula": "P1*[g]+abc"})
    assert calls[1] == ("T RAW", {"inline": "[g]*2+1"})
    assert calls[2] == ("T OPTS", {"image": "img.dat", "iters": 4, "name": "abc"})
    assert s.last_vars["it"] == 4


def test_operations_set_variables_through_the_session(runner):
    s = runner.run("T SETVAR\n[m] = [made]+1\n")
    assert (s.last_vars["made"], s.last_vars["word"], s.last_vars["m"]) == (7, "hello", 8)


def test_list_answers_drive_an_operation_directly(registry, runner):
    s = runner.session()
    frame = Frame(Procedure("", "<test>"), {"k": 2.0})
    source = ListAnswers(["; a comment", "", "3,[k]"])
    kwargs = answer_operation(registry.get("T VAL"), source,
                              RuntimeResolver(s.interp, frame), SourceRef("<test>", 1))
    assert kwargs == {"a": 3, "b": 2.0, "c": -1.0}


def test_when_sees_its_own_session(runner, calls, seen_sessions):
    """``answers.session`` is the running session: state kept by one session decides
    what is asked there, and never in another session of the same process."""
    a, b = runner.session(), runner.session()
    a.run_text("T SESS\nT SESS\n5\n")          # the second call asks EXTRA
    b.run_text("T SESS\n")                      # a new session: not asked, though A ran
    a.run_text("T SESS\n7\n")
    assert calls == [("T SESS", {"extra": 0.0}), ("T SESS", {"extra": 5.0}),
                     ("T SESS", {"extra": 0.0}), ("T SESS", {"extra": 7.0})]
    assert seen_sessions == [a, a, b, a]
    assert a.state["t sess"] == [0.0, 5.0, 7.0] and b.state["t sess"] == [0.0]


def test_answers_mapping_is_read_only_and_plain_mappings_still_work():
    from emsh.spec import Answers, Prompt

    seen = []
    p = Prompt("r", "RADIUS", fields=(Field("r", "float"),),
               when=lambda a: seen.append(a.session) or a.get("mode") == "B")
    marker = object()
    assert p.applies({"mode": "B"}) and not p.applies({"mode": "A"}, marker)
    assert seen == [None, marker]
    view = Answers({"mode": "B"}, marker)
    assert p.applies(view, None) and seen[-1] is marker  # an Answers keeps its session
    assert dict(view) == {"mode": "B"} and len(view) == 1
    with pytest.raises(AttributeError):
        view.session = None
    with pytest.raises(TypeError):
        view["mode"] = "A"


def test_the_terminal_is_asked_with_the_prompt_spec(registry, runner):
    """``ask`` gets a Question: SPIDER's text, and the spec in ``.prompt`` (None for a
    question forwarded by ``?text?``); an ``ask`` that only reads text still works."""
    from emsh.lang.answers import Question

    asked = []
    typed = iter(["B", "2.5", "*", "4,5", "out"])

    def ask(question):
        asked.append((str(question), question.prompt))
        return next(typed)

    runner.write("fwd.spi", "T VAL [x]\n?SIZES?\n")
    s = runner.session(ask=ask)
    s.run_statement("T WHEN")
    s.run_statement("@fwd")
    mode, radius, out = registry.get("T WHEN").prompts
    assert asked == [("MODE (A/B)", mode), ("RADIUS", radius), ("OUTPUT", out),
                     ("SIZES", None)]
    assert s.interactive().next("FREE TEXT").text == "out"   # plain text: prompt None too
    assert asked[-1] == ("FREE TEXT", None)
    q = Question("RADIUS", radius)
    assert q == "RADIUS" and isinstance(q, str) and q.prompt is radius
