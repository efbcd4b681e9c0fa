"""prompt_toolkit adapter for :mod:`emsh.shell.completion`.

The logic lives in ``completion.py`` (no terminal needed to test it); this class only
turns :class:`~emsh.shell.completion.Candidate` s into prompt_toolkit ``Completion`` s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from emsh.shell.completion import Candidate

__all__ = ["CandidateCompleter"]


class CandidateCompleter(Completer):
    """Completes with ``source(text_before_cursor) -> list[Candidate]``."""

    def __init__(self, source: Callable[[str], list[Candidate]]):
        self.source = source

    def get_completions(self, document: Document, complete_event: CompleteEvent
                        ) -> Iterable[Completion]:
        for c in self.source(document.text_before_cursor):
            yield Completion(c.text, start_position=-c.replace, display=c.display or None,
                             display_meta=c.meta or None)
