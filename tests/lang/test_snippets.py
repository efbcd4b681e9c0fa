"""The snippet corpus: valid procedures with the values they must produce, invalid ones
with the exact place (line:col) and words of the error, for both ``emsh run`` (the
interpreter) and ``emsh check`` (the static checker).

Each snippet states what to expect in its own comments:

* valid: ``; expect [name] = value`` lines;
* invalid: ``; run: LINE:COL: words`` and ``; check: LINE:COL: words`` (or ``none``).

Files whose names start with ``_`` are procedures called by the others.
"""

import re
import shutil
from pathlib import Path

import pytest

from emsh.errors import ProcedureError
from emsh.lang.checker import check_file

HERE = Path(__file__).parent / "snippets"
VALID = sorted(p for p in (HERE / "valid").glob("*.spi") if not p.name.startswith("_"))
INVALID = sorted(p for p in (HERE / "invalid").glob("*.spi") if not p.name.startswith("_"))


def _copy(folder: Path, tmp: Path) -> None:
    for p in folder.glob("*.spi"):
        shutil.copy(p, tmp / p.name)


def test_corpus_is_not_empty():
    assert len(VALID) >= 12 and len(INVALID) >= 25


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_snippet_runs_and_checks_clean(path, runner, tmp_path):
    _copy(path.parent, tmp_path)
    expected = {m.group(1): float(m.group(2)) for m in
                re.finditer(r"^; expect \[([^\]]+)\] = (\S+)$", path.read_text(), re.M)}
    assert expected, f"{path.name} states no expectations"
    s = runner.session()
    s.run_file(path.name)
    got = {k: s.last_vars.get(k, s.globals.get(k)) for k in expected}
    assert got == pytest.approx(expected, abs=1e-9)
    errors = [p for p in check_file(path.name, runner.registry, "dat") if p.severity == "error"]
    assert not errors, "\n".join(map(str, errors))


def _expectation(text: str, key: str):
    m = re.search(rf"^; {key}: (none|(\d+):(\d+): (.*))$", text, re.M)
    assert m, f"no '; {key}:' line"
    return None if m.group(1) == "none" else (int(m.group(2)), int(m.group(3)), m.group(4))


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_snippet_fails_at_the_stated_place(path, runner, tmp_path):
    _copy(path.parent, tmp_path)
    text = path.read_text()
    line, col, words = _expectation(text, "run")
    with pytest.raises(ProcedureError) as info:
        runner.session().run_file(path.name)
    err = info.value
    assert (err.ref.file, err.ref.line, err.ref.col) == (path.name, line, col), str(err)
    assert words in err.reason
    rendered = str(err).splitlines()
    assert rendered[0] == f"{path.name}:{line}:{col}: {err.reason}"
    assert rendered[2] == "    " + " " * (col - 1) + "^"


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_checker_finds_the_same_problem(path, runner, tmp_path):
    _copy(path.parent, tmp_path)
    want = _expectation(path.read_text(), "check")
    errors = [p for p in check_file(path.name, runner.registry, "dat") if p.severity == "error"]
    if want is None:
        assert not errors, "\n".join(map(str, errors))
        return
    line, col, words = want
    assert errors, f"check found nothing in {path.name}"
    first = errors[0]
    assert (first.ref.file, first.ref.line, first.ref.col) == (path.name, line, col), str(first)
    assert words in first.message
