"""Help rendered from operation specs: the shell's HELP, `emsh help` and `emsh ops`."""

import re

import pytest

from emsh.cli import main
from emsh.errors import UsageError
from emsh.help import lookup, prompt_hint, render_help, render_list


def test_help_of_fs_lists_its_questions_outputs_and_mpi_policy(shell_registry):
    text = render_help(shell_registry.get("FS"))
    lines = text.splitlines()
    assert lines[0] == "FS: Statistics of images: max, min, average, SD"
    assert "  FS [max],[min],[avg],[sd]" in lines
    first = lines.index("   1. INPUT FILE NAME OR TEMPLATE (E.G. stk-file@*)")
    second = lines.index("   2. FILE NUMBERS OR SELECTION DOC. FILE NAME")
    assert first < second
    assert lines[second + 2] == "        (asked only when the answers above call for it)"
    assert "Outputs (into the registers listed on the operation line, in order):" in lines
    assert "  max, min, avg, sd" in lines
    assert "MPI: rank 0 runs it; its results (and any error) reach every rank." in lines
    assert all(len(line) <= 88 for line in lines)


def test_help_of_rt_sq_shows_fields_defaults_and_see_also(shell_registry):
    text = render_help(shell_registry.get("RT SQ"))
    numbered = [line.split(". ", 1)[1] for line in text.splitlines()
                if line[:5].strip().rstrip(".").isdigit()]
    spec = shell_registry.get("RT SQ").prompts
    assert numbered == [p.text for p in spec]  # every question, in the order asked
    assert "        angle (float, default 0)\n        scale (float, default 1)\n" in text
    assert text.rstrip().endswith("See also: SH")


def test_options_ranges_plugin_and_hints(shell_registry):
    op = shell_registry.get("T PICK")
    text = render_help(op)
    assert text.splitlines()[0] == "T PICK: a choice, then values with defaults   [shelltest]"
    assert "  T PICK [code],[total] iters=... label=..." in text
    assert "  iters (int, default 3, >= 1): how many times" in text
    assert "        first (int, required, >= 0)" in text
    assert "mode (choice): one of a set of letters or words; one of A, B" in text
    assert prompt_hint(op.prompts[0]) == "A or B"
    assert prompt_hint(op.prompts[1]) == "first (int, required, >= 0), second (float, default 0.5)"
    assert prompt_hint(shell_registry.get("T FILE").prompts[0]) == "image file (*.mrc *.map)"
    listing = render_list(shell_registry)
    assert re.search(r"^T PICK +a choice, then values with defaults   \[shelltest\]$", listing,
                     re.M)
    assert re.search(r"^FS +Statistics of images: max, min, average, SD$", listing, re.M)
    ops = shell_registry.operations()
    width = max(len(op.code) for op in ops) + 2
    rows = [(line[:width].strip(), line[width:]) for line in listing.splitlines()]
    assert [code for code, _ in rows] == [op.code for op in ops]  # one line each, sorted
    assert all(title.startswith(op.title) for (_, title), op in zip(rows, ops))


def test_lookup_accepts_any_spelling_and_suggests(shell_registry):
    assert lookup(shell_registry, " rt   sq ").code == "RT SQ"
    assert lookup(shell_registry, "shelltest:t pick").code == "T PICK"
    with pytest.raises(UsageError, match=r"unknown operation 'RTSQ'; did you mean RT SQ"):
        lookup(shell_registry, "RTSQ")


def test_emsh_ops_and_emsh_help_print_the_same_text(capsys, monkeypatch, shell_registry):
    monkeypatch.setenv("EMSH_PLUGIN_PATH", "")
    assert main(["ops"]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"^FS +Statistics of images: max, min, average, SD$", listing, re.M)
    assert re.search(r"^RT SQ +Rotate", listing, re.M) and "T PICK" not in listing
    assert main(["ops", "RT SQ"]) == 0
    ops_text = capsys.readouterr().out
    assert main(["help", "rt", "sq"]) == 0
    assert capsys.readouterr().out == ops_text
    assert ops_text == render_help(shell_registry.get("RT SQ")) + "\n"
    assert main(["help", "FS"]) == 0
    assert capsys.readouterr().out.startswith("FS: Statistics of images")
    assert main(["help", "NOPE"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("emsh: unknown operation 'NOPE'")
