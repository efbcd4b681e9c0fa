"""Block structure of a procedure: which ``ENDDO`` closes which ``DO``, the branches of
each ``IF ... THEN`` and where the labels are.

SPIDER finds these by looking at the control words of the lines it skips; emsh does
the same once, when a procedure is loaded, so an unbalanced block is reported before
the procedure runs. The lines after ``VM``/``SYS`` (shell commands, which may contain
``do`` or ``done``) are not looked at. :func:`is_complete` applies the same scan to text
typed in the shell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from emsh.errors import ProcedureError
from emsh.lang.ast import procedure_error

__all__ = ["Blocks", "find_blocks", "first_problem", "is_vm_line", "control_word",
           "is_complete"]

_VM_LINE = re.compile(r"^(VM|SYS)(\s+(M))?\s*$", re.I)


@dataclass
class Blocks:
    """Line indices (0-based) of the block structure of one procedure.

    Attributes:
        do_end: DO line -> its ENDDO line (or its closing label for ``DO LBn``).
        do_start: ENDDO (or closing label) line -> its DO line.
        if_branches: IF-THEN line -> its ELSEIF/ELSE lines, then its ENDIF line.
        branch_end: ELSEIF/ELSE line -> the ENDIF line of its IF.
        labels: label number -> the lines holding ``LBn``.
        problems: every structural error found (each a ProcedureError).
    """

    do_end: dict[int, int] = field(default_factory=dict)
    do_start: dict[int, int] = field(default_factory=dict)
    if_branches: dict[int, list[int]] = field(default_factory=dict)
    branch_end: dict[int, int] = field(default_factory=dict)
    labels: dict[int, list[int]] = field(default_factory=dict)
    problems: list[ProcedureError] = field(default_factory=list)

    def loops_around(self, line: int) -> list[int]:
        """DO lines whose body contains ``line``, outermost first."""
        return sorted(d for d, e in self.do_end.items() if d < line < e)

    def label_after(self, number: int, line: int) -> int | None:
        """The first line after ``line`` holding ``LB<number>`` (GOTO jumps forward only)."""
        return next((i for i in self.labels.get(number, ()) if i > line), None)


def find_blocks(proc) -> Blocks:
    """Scan a :class:`~emsh.lang.parser.Procedure` for its blocks; problems are collected."""
    blocks = Blocks()
    stack: list[list] = []  # ["do", line, label] or ["if", line, seen_else]
    skip_to_dot = skip_one = False

    def problem(i: int, message: str) -> None:
        ref = proc.ref(i, len(proc.code[i]) - len(proc.code[i].lstrip()) + 1)
        blocks.problems.append(procedure_error(ref, message))

    def describe(entry) -> str:
        what = "DO" if entry[0] == "do" else "IF ... THEN"
        return f"{what} at line {entry[1] + 1}"

    for i, code in enumerate(proc.code):
        s = code.strip()
        if not s:
            continue
        if skip_to_dot:
            skip_to_dot = s != "."
            continue
        if skip_one:
            skip_one = False
            continue
        vm, multi = is_vm_line(s)
        if vm:
            skip_to_dot, skip_one = multi, not multi
            continue
        word = control_word(s)
        if word is None:
            continue
        if word == "label":
            number = int(s[2:])
            blocks.labels.setdefault(number, []).append(i)
            if stack and stack[-1][0] == "do" and stack[-1][2] == number:
                _, start, _ = stack.pop()
                blocks.do_end[start], blocks.do_start[i] = i, start
        elif word == "do":
            m = re.match(r"^DO\s+LB([0-9]{1,3})\b", s, re.I)
            stack.append(["do", i, int(m.group(1)) if m else None])
        elif word == "enddo":
            if not any(e[0] == "do" and e[2] is None for e in stack):
                problem(i, "ENDDO without a DO before it")
                continue
            if stack[-1][0] != "do" or stack[-1][2] is not None:
                problem(i, f"ENDDO here, but {describe(stack[-1])} is still open"
                        + (" (missing ENDIF)" if stack[-1][0] == "if" else ""))
                while stack[-1][0] != "do" or stack[-1][2] is not None:
                    stack.pop()  # report the unclosed block once, then match the DO
            _, start, _ = stack.pop()
            blocks.do_end[start], blocks.do_start[i] = i, start
        elif word == "if_then":
            stack.append(["if", i, False])
            blocks.if_branches[i] = []
        elif word in ("elseif", "else"):
            name = "ELSEIF" if word == "elseif" else "ELSE"
            if not stack or stack[-1][0] != "if":
                inner = f"; {describe(stack[-1])} is still open" if stack else ""
                problem(i, f"{name} without an IF ... THEN before it{inner}")
            elif stack[-1][2]:
                problem(i, f"{name} after the ELSE of the IF at line {stack[-1][1] + 1}")
            else:
                blocks.if_branches[stack[-1][1]].append(i)
                stack[-1][2] = word == "else"
        elif word == "endif":
            if not any(e[0] == "if" for e in stack):
                problem(i, "ENDIF without an IF ... THEN before it")
                continue
            if stack[-1][0] != "if":
                problem(i, f"ENDIF here, but {describe(stack[-1])} is still open "
                        "(missing ENDDO)")
                while stack[-1][0] != "if":
                    stack.pop()
            _, start, _ = stack.pop()
            for b in blocks.if_branches[start]:
                blocks.branch_end[b] = i
            blocks.if_branches[start].append(i)
    for entry in stack:
        if entry[0] == "do":
            closing = f"LB{entry[2]}" if entry[2] is not None else "ENDDO"
            problem(entry[1], f"DO without a matching {closing}")
        else:
            problem(entry[1], "IF ... THEN without a matching ENDIF")
    blocks.problems.sort(key=lambda e: (e.ref.line, e.ref.col))
    return blocks


def first_problem(blocks: Blocks) -> ProcedureError | None:
    """The earliest structural error, if any."""
    return blocks.problems[0] if blocks.problems else None


# ----------------------------------------------------------------------------- control words
def is_vm_line(code: str) -> tuple[bool, bool]:
    """(is ``VM``/``SYS``, takes several lines ``VM M``) for a comment-stripped line."""
    m = _VM_LINE.match(code.strip())
    return (m is not None, bool(m and m.group(3)))


def control_word(code: str) -> str | None:
    """The block keyword a comment-stripped line starts with, for the structure scan.

    One of ``do``, ``enddo``, ``if_then``, ``elseif``, ``else``, ``endif``, ``label``;
    None for anything else (including inline ``IF (..) action``).
    """
    s = code.strip().upper()
    if not s:
        return None
    if re.match(r"^ELSE\s*IF\s*\(", s):
        return "elseif"
    if re.match(r"^ELSE$", s):
        return "else"
    if re.match(r"^END\s*IF$", s):
        return "endif"
    if re.match(r"^END\s*DO$", s):
        return "enddo"
    if re.match(r"^DO(\s|\[|$)", s):
        return "do"
    if re.match(r"^LB[0-9]{1,3}$", s):
        return "label"
    if re.match(r"^IF\s*\(", s) and re.search(r"\)\s*THEN$", s):
        return "if_then"
    return None


def is_complete(text: str) -> bool:
    """True when every ``DO`` and ``IF ... THEN`` in ``text`` is closed (for the shell)."""
    from emsh.lang.parser import strip_comment

    depth = 0
    skip_to_dot = skip_one = False
    for line in text.splitlines():
        code = strip_comment(line).strip()
        if not code:
            continue
        if skip_to_dot:
            skip_to_dot = code != "."
            continue
        if skip_one:
            skip_one = False
            continue
        vm, multi = is_vm_line(code)
        if vm:
            skip_to_dot, skip_one = multi, not multi
            continue
        word = control_word(code)
        if word in ("do", "if_then"):
            depth += 1
        elif word in ("enddo", "endif"):
            depth -= 1
    return depth <= 0
