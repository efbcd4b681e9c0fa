"""What Tab offers, from the terminal-free completion logic."""

import pytest

from emsh.shell.completion import (Candidate, complete_answer, complete_code, complete_path,
                                   complete_statement)
from emsh.spec import Prompt

CODES = ["AP", "AP REF", "AP SH", "FS", "RT SF", "RT SQ", "BP 32F", "BP 3F"]


def texts(cands):
    return [c.text for c in cands]


@pytest.mark.parametrize("typed, expected", [
    ("AP", ["AP", "AP REF", "AP SH"]),
    ("AP ", ["AP REF", "AP SH"]),           # after the blank: only the longer codes
    ("ap s", ["AP SH"]),                    # any case, the last word a prefix
    ("rt", ["RT SF", "RT SQ"]),
    ("BP 3", ["BP 32F", "BP 3F"]),
    ("F", ["FS"]),
    ("FS ", []),
    ("X", []),
])
def test_codes_complete_word_by_word(typed, expected):
    found = complete_code(typed, CODES)
    assert texts(found) == expected
    assert all(c.replace == len(typed) for c in found)  # the whole typed code is replaced


def test_statement_completion_codes_control_words_and_help(shell_registry):
    got = {c.text: c for c in complete_statement("SH", shell_registry, {})}
    assert {"SH", "SH F"} <= set(got) and all(t.startswith("SH") for t in got)
    assert got["SH F"].meta == "Shift by Fourier interpolation (circular)"
    assert set(texts(complete_statement("END", shell_registry, {}))) == {"ENDDO", "ENDIF"}
    assert texts(complete_statement("he", shell_registry, {})) == ["HELP"]
    got = complete_statement("HELP rt s", shell_registry, {})
    assert [(c.text, c.replace) for c in got] == [("RT SQ", 4)]


def test_variables_complete_after_an_open_bracket(shell_registry):
    variables = {"nx": 64.0, "name": "stk@", "apix": 1.31}
    got = complete_statement("[x] = [n", shell_registry, variables)
    assert got == [Candidate("[name]", 2, meta="'stk@'"), Candidate("[nx]", 2, meta="64")]
    assert complete_statement("[x] = [q", shell_registry, variables) == []
    got = complete_answer("[a", Prompt("v", "V", fields=()), variables)
    assert texts(got) == ["[apix]"]


def test_options_of_the_operation_on_the_line(shell_registry):
    got = complete_statement("T PICK ", shell_registry, {})
    assert [(c.text, c.replace, c.meta) for c in got] == [("iters=", 0, "how many times"),
                                                         ("label=", 0, "str")]
    assert texts(complete_statement("t pick IT", shell_registry, {})) == ["iters="]
    assert texts(complete_statement("T PICK iters=2 ", shell_registry, {})) == ["label="]


def test_procedure_names_after_at(tmp_path, shell_registry):
    (tmp_path / "refine.spi").touch()
    (tmp_path / "recon.pam").touch()
    (tmp_path / "readme.txt").touch()
    (tmp_path / "run").mkdir()
    got = complete_statement("@re", shell_registry, {}, cwd=tmp_path)
    assert [(c.text, c.display) for c in got] == [("recon", "recon.pam"),
                                                  ("refine", "refine.spi")]
    assert texts(complete_statement("@r", shell_registry, {}, cwd=tmp_path))[0] == "run/"


@pytest.fixture
def files(tmp_path):
    for name in ("a.mrc", "b.MAP", "c.spi", ".hidden.mrc", "sub/d.mrc", "sub/e.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).touch()
    return tmp_path


def test_file_answers_follow_the_prompts_patterns(files):
    maps = Prompt("src", "INPUT MAP", kind="image", patterns=("*.mrc", "*.map"))
    assert texts(complete_answer("", maps, {}, cwd=files)) == ["sub/", "a.mrc", "b.MAP"]
    assert texts(complete_answer("sub/", maps, {}, cwd=files)) == ["d.mrc"]
    assert texts(complete_answer(".", maps, {}, cwd=files)) == [".hidden.mrc"]
    anything = Prompt("dst", "OUTPUT", kind="image_out")
    got = complete_answer("sub/e", anything, {}, cwd=files)
    assert [(c.text, c.replace) for c in got] == [("e.txt", 1)]
    assert texts(complete_answer("", anything, {}, cwd=files)) == [
        "sub/", "a.mrc", "b.MAP", "c.spi"]
    assert complete_answer("stk@", anything, {}, cwd=files) == []
    absolute = complete_path(str(files / "sub") + "/d", cwd="/")
    assert texts(absolute) == ["d.mrc"]


def test_choices_yes_no_and_selection_docs(files):
    choice = Prompt("shape", "D/C/G/T", kind="choice", choices=("D", "C", "G", "T"))
    assert texts(complete_answer("", choice, {})) == ["D", "C", "G", "T"]
    assert texts(complete_answer("g", choice, {})) == ["G"]
    assert texts(complete_answer("", Prompt("ok", "OK?", kind="yesno"), {})) == ["Y", "N"]
    numbers = Prompt("numbers", "FILE NUMBERS", kind="numbers")
    assert texts(complete_answer("c", numbers, {}, cwd=files)) == ["c.spi"]
    assert complete_answer("1-", numbers, {}, cwd=files) == []
    assert complete_answer("", Prompt("t", "TEXT", kind="text"), {}) == []


def test_an_unknown_question_offers_files(files):
    assert texts(complete_answer("a", None, {}, cwd=files)) == ["a.mrc"]
