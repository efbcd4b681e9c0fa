"""String variables and file-name templates (SPIDER's FILNAMSUB rules)."""

import pytest

from emsh.errors import UsageError
from emsh.lang.templates import (fill_template, fortran_format, nint, substitute,
                                 with_data_ext)

VARS = {"stem": "obj", "grp": 7.0, "name": "[stem]_g{**[grp]}", "i": 1.0, "num": 5.0,
        "v1": 1.0, "v11": 11.0, "ali": "../Alignment/dala01_{***[grp]}@******", "pn": 12.0,
        "ctf": "df***/ctffile", "neg": -1.0, "half": 2.5, "self": "[self]x", "n7": "7"}


def sub(text, mode="file"):
    return substitute(text, VARS.get, mode=mode)


@pytest.mark.parametrize("text, result", [
    ("[name]_{***[i]}", "obj_g07_001"),          # string expanded when used, then braces
    ("tmpl***[num]", "tmpl005"),                 # terminal-register template
    ("avg***[v1]", "avg001"),
    ("dir*/avg***[v1][v11]", "dir1/avg011"),     # each run of * takes the next register
    ("avg000[v1]", "avg001"),                    # digits before a lone register
    ("avg000{---[v1]}", "avg001"),               # {---} writes over what precedes it
    ("[ali][pn]", "../Alignment/dala01_007@000012"),
    ("[ctf][grp]", "df007/ctffile"),
    ("fmt_{%I0%[num]}_{%I2%[pn]}", "fmt_5_12"),
    ("avg{***[neg]}", "avg0-1"),                 # SPIDER pads a negative number like this
    ("{%i3%[neg]}", " -1"),
    ("{%F7.2%[grp]}", "   7.00"),
    ("{**[half]}", "03"),                        # nearest integer, halves away from zero
    ("{***[n7]}", "007"),                        # a string holding a number
    ("avg{****}", "avg****"),
    ("<stem>_x", "obj_x"),                       # legacy <name>
    ("plain/name", "plain/name"),
])
def test_file_names(text, result):
    assert sub(text) == result


def test_environment_variables(monkeypatch):
    monkeypatch.setenv("EMSH_TEST_DIR", "/data")
    assert sub("${EMSH_TEST_DIR}/img{**[grp]}") == "/data/img07"
    monkeypatch.delenv("EMSH_TEST_DIR")
    with pytest.raises(UsageError, match="EMSH_TEST_DIR is not set"):
        sub("${EMSH_TEST_DIR}/x")


@pytest.mark.parametrize("text, words", [
    ("{**[pn]}{*[pn]}", "value 12 has more digits than 1 asterisks"),
    ("out[grp]", "register [grp] in the file name"),
    ("x[undef]", "undefined variable [undef]"),
    ("[self]", "refers to itself"),
    ("{[grp]}", "no *, - or %"),
    ("{%Q3%[grp]}", "unknown edit descriptor"),
    ("{%I1%[pn]}", "does not fit in 1 characters"),
])
def test_file_name_errors(text, words):
    with pytest.raises(UsageError, match=words.replace("[", r"\[").replace("*", r"\*")):
        sub(text)


def test_text_mode_keeps_registers_and_unknown_names():
    assert sub("key [grp] {**[grp]} [name] [undef]", "text") == "key [grp] 07 obj_g07 [undef]"


def test_fortran_formats():
    assert fortran_format("E12.4", 123.45) == "  0.1235E+03"
    assert fortran_format("ES11.4", 123.45) == " 1.2345E+02"
    assert fortran_format("I5", 42.4) == "   42"
    assert fortran_format("F0.3", 2.0) == "2.000"
    assert (nint(2.5), nint(-2.5), nint(2.49)) == (3, -3, 2)


@pytest.mark.parametrize("name, result", [
    ("stk@3", "stk.dat@3"), ("stk@", "stk.dat@"), ("stk@****", "stk.dat@****"),
    ("img***", "img***.dat"), ("../x/sel", "../x/sel.dat"), ("a.spi", "a.spi"),
    ("a.spi@2", "a.spi@2"), ("_1", "_1"), ("__2@", "__2@"), ("x.y/z", "x.y/z.dat"),
])
def test_data_extension(name, result):
    assert with_data_ext(name, "dat") == result
    assert with_data_ext(name, "") == name


def test_fill_template():
    assert fill_template("stk@****", 12) == "stk@0012"
    assert fill_template("a**/img***", 7) == "a**/img007"
    with pytest.raises(UsageError):
        fill_template("img**", 123)
    with pytest.raises(UsageError):
        fill_template("img", 1)
