"""Statement classification (SPIDER's order), the AST, comments and block structure."""

import pytest

from emsh.errors import ProcedureError
from emsh.lang import ast
from emsh.lang.ast import SourceRef
from emsh.lang.parser import Procedure, is_complete, parse_statement, strip_comment

REF = SourceRef("t.spi", 1)


def parse(text, registry=None, first=False):
    return parse_statement(text, SourceRef("t.spi", 1, 1, text), registry, first=first)


@pytest.mark.parametrize("text, kind", [
    ("@proc([a],[b])", ast.Call), ("@@proc", ast.Call), ("B01", ast.Call),
    ("[a] = 1", ast.Assign), ("GLO [s] = 'x'", ast.Assign), ("x11 = 2", ast.Assign),
    ("[x]", ast.Echo), ("-5+2", ast.Echo), ("(2)", ast.Echo), ("SQR(2)", ast.Echo),
    ("SQRT(2)", ast.Echo),
    ("IF ([a] == [b]) THEN", ast.IfThen), ("ELSE IF ([a]>1) THEN", ast.ElseIf),
    ("ELSEIF([a]>1)THEN", ast.ElseIf), ("else", ast.Else), ("ENDIF", ast.EndIf),
    ("IF ([a] > 0) GOTO LB3", ast.IfInline), ("DO", ast.Do), ("do [i]=1,[n],2", ast.Do),
    ("DO LB4 X10=1,36", ast.Do), ("ENDDO", ast.EndDo), ("END DO", ast.EndDo),
    ("LB12", ast.Label), ("GO TO LB1", ast.Goto), ("EXIT", ast.Exit), ("CYCLE", ast.Cycle),
    ("RE", ast.Return), ("RETURN", ast.Return), ("EN", ast.End), ("EN D", ast.End),
    ("END", ast.End),
])
def test_classification(text, kind):
    assert type(parse(text)) is kind


def test_nodes():
    s = parse("DO [j]=9,1,-2")
    assert (s.var, s.lo.value, s.hi.value) == ("j", 9.0, 1.0)
    assert isinstance(s.inc, ast.Neg) and s.inc.operand.value == 2.0
    assert parse("DO LB4 X10=1,36").label == 4 and parse("DO LB4 X10=1,36").var == "_10"
    s = parse("IF ( [t] . EQ. 5 ) [t] = [t]*2")
    assert s.cond.cmp == "==" and isinstance(s.action, ast.Assign) and s.action.target == "t"
    assert parse("IF ([a] .ge. 1) THEN").cond.cmp == ">="
    s = parse("@lang_scale([u],[s]*2)")
    assert s.name == "lang_scale" and not s.shared and isinstance(s.args[1], ast.BinOp)
    assert parse("GLOBAL [s] = 'a [b] c'").value == "a [b] c"
    assert parse("([k],[f])", first=True).params == ("k", "f")
    assert parse("[x] = 2**3", None).value.op == "**"


def test_operation_lines_resolve_through_the_registry(registry):
    s = parse("  t val [a] , [b]", registry)
    assert isinstance(s, ast.OpLine) and (s.code, s.registers) == ("T VAL", ("a", "b"))
    s = parse("T RAW 1,[a] x=3", registry)
    assert (s.code, s.rest, s.registers) == ("T RAW", "1,[a] x=3", ())
    s = parse("  T RAW /  KEY      DEFOCUS   x=1  ", registry)   # raw text: blanks as written
    assert (s.rest, s.rest_col, s.options) == ("/  KEY      DEFOCUS   x=1", 9, {})
    s = parse("T OPTS iters=4 name=abc [k]", registry)
    assert s.options == {"iters": ("4", 14), "name": ("abc", 21)} and s.registers == ("k",)
    s = parse("IQ FI [e],[o]", registry)
    assert (s.code, s.registers) == ("IQ FI", ("e", "o"))
    with pytest.raises(ProcedureError) as info:
        parse("   frobnicate 3", registry)
    assert info.value.ref.col == 4 and "unknown operation 'FROBNICATE'" in info.value.reason


def test_comments():
    assert strip_comment("FS [m] ; the max") == "FS [m]"
    assert strip_comment("[a] = 1 ! bang") == "[a] = 1"
    assert strip_comment("[s] = 'a;b' ; c") == "[s] = 'a;b'"
    assert strip_comment("; only a comment") == ""


def test_blocks_and_completeness():
    proc = Procedure("DO [i]=1,2\n IF ([i]==1) THEN\n  [a]=1\n ELSE\n  [a]=2\n ENDIF\nENDDO\n"
                     "VM M\nfor f in *; do\ndone\n.\nLB3\n", "t.spi")
    b = proc.blocks
    assert not b.problems
    assert b.do_end == {0: 6} and b.if_branches == {1: [3, 5]} and b.branch_end == {3: 5}
    assert b.labels == {3: [11]} and b.loops_around(2) == [0]
    assert is_complete("DO\n[a]=1\nENDDO\n") and not is_complete("DO [i]=1,3\n IF (1==1) THEN\n")
    assert is_complete("VM\ndo something\n[a] = 1\n")
