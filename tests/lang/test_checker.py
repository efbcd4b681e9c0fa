"""``emsh check`` beyond the snippet corpus: files, callers' lines, run-time conditions."""

from emsh.lang.checker import check_file


def problems(runner, text, name="main.spi", **files):
    for fname, body in files.items():
        runner.write(fname, body)
    runner.write(name, text)
    return [(p.severity, f"{p.ref.file}:{p.ref.line}:{p.ref.col}", p.message)
            for p in check_file(name, runner.registry, "dat")]


def test_input_files_must_exist_unless_the_procedure_writes_them(runner):
    (runner.folder / "have.dat").write_text("x")
    found = problems(runner, """
T WHEN
B
1
made_{***[i]}
T OPTS
have
T OPTS
made_007@2
T OPTS
never
T OPTS
[var]_x
""")
    assert found == [
        ("warning", "main.spi:5:1", "[i] is read but never set in this procedure"),
        ("error", "main.spi:11:1", "input file never.dat does not exist and no operation of "
         "this procedure writes it"),
        ("warning", "main.spi:13:1", "[var] is read but never set in this procedure")]

def test_a_shell_command_may_make_files(runner):
    found = problems(runner, "VM\ntouch never.dat\nT OPTS\nnever\n")
    assert [f[0] for f in found] == ["warning"]


def test_conditions_on_run_time_values_are_warnings(runner):
    found = problems(runner, "[m] = 1\nT WHEN\n[mode]\n2\n*\n", )
    assert ("warning", "main.spi:2:1", "cannot tell before running whether 'RADIUS' is asked "
            "(it depends on a value known only at run time); assuming it is") in found
    assert not [f for f in found if f[0] == "error"]


def test_lines_read_by_a_called_procedure_are_counted(runner):
    callee = "([k])\nFR\n?FIRST?[a]\nRR [b]\n?SECOND?\n[k] = [b]\nRE\n"
    ok = problems(runner, "[x] = 1\n@sub([x])\nimg\n5\n[y] = [x]\n", **{"sub.spi": callee})
    assert not [f for f in ok if f[0] == "error"]
    short = problems(runner, "[x] = 1\n@sub([x])\nimg\n", **{"sub.spi": callee})
    assert ("error", "main.spi:2:1", "sub reads 2 answer line(s) from the lines after this call, "
            "but only 1 follow") in short


def test_recursive_procedures_and_unset_variables(runner):
    rec = "([z])\n[z] = [z] + 1\nIF ([z] < 3) THEN\n  @rec([z])\nENDIF\nRE\n"
    found = problems(runner, "[d] = 0\n@rec([d])\n[e] = [nowhere] + 1\n", **{"rec.spi": rec})
    assert found == [("warning", "main.spi:3:7", "[nowhere] is read but never set in this "
                      "procedure")]


def test_top_level_question_has_no_caller(runner):
    found = problems(runner, "T VAL\n?A?\n")
    assert ("error", "main.spi:2:1", "this answer asks the caller (?question?), but a procedure "
            "run by 'emsh run' has no caller") in found


def test_a_run_time_count_of_answer_lines_takes_the_lines_that_read_as_answers(runner):
    found = problems(runner, "[n] = 2\nT COUNT\n[n]\n1.0,45,1,3\n0.5,90,-2,5\nT VAL\n1\n")
    assert found == [("warning", "main.spi:2:1", "cannot tell before running how many lines "
                      "answer 'LINE' (it depends on a value known only at run time); taking "
                      "the lines that read as answers")]
    found = problems(runner, "[n] = 2\nT COUNT\n[n]\n1,2\n")   # the end of the file ends it
    assert [f[0] for f in found] == ["warning"]
    found = problems(runner, "T COUNT\n2\n1,2\n3,4\n5,6\n")      # a literal count: decided
    assert [f[0] for f in found] == ["error"] and "asks fewer questions" in found[0][2]


def test_when_predicates_get_no_session_when_checking(runner, seen_sessions):
    """Nothing has run, so there is no session state: T SESS never asks EXTRA."""
    assert problems(runner, "T SESS\nT SESS\n") == []
    assert seen_sessions == [None, None]


def test_substituted_numbers_in_names_are_not_templates(tmp_path, monkeypatch):
    """'{***[g]}' becomes digits when run: 'data{***[g]}@' is a whole stack (no number
    prompt follows) and '[dir]/good{***[g]}' names a selection doc, not a number list."""
    from emsh.registry import Registry

    monkeypatch.chdir(tmp_path)
    (tmp_path / "main.spi").write_text("""[dir] = 'out'
DO [g]=1,2
  RT SQ
  data{***[g]}@
  [dir]/ali{***[g]}@
  6,0,7,8
  [dir]/align{***[g]}
  AS R
  [dir]/ali{***[g]}@******
  [dir]/good{***[g]}
  A
  [dir]/avg{***[g]}
  [dir]/var{***[g]}
ENDDO
""")
    found = [(p.severity, p.message) for p in check_file("main.spi", Registry.discover(), "dat")]
    assert not [f for f in found if f[0] == "error"], found
