"""The interactive emsh shell (``emsh`` with no subcommand).

* :mod:`~emsh.shell.engine`: runs typed lines (statements, blocks, ``HELP``), errors on
  one line; no terminal code;
* :mod:`~emsh.shell.completion`: what Tab offers, as pure functions;
* :mod:`~emsh.shell.repl`: the prompt_toolkit front end (the only module importing it),
  with :mod:`~emsh.shell.completer` as its adapter;
* :mod:`~emsh.shell.plain`: the front end for piped input;
* :mod:`~emsh.shell.paths`: history and error-log locations.

:func:`start` picks the front end: prompt_toolkit when stdin and stdout are terminals,
plain lines otherwise.
"""

from __future__ import annotations

import sys

__all__ = ["start"]


def start(*, data_ext: str = "spi", project_ext: str = "spi", results=True,
          stdin=None, stdout=None) -> int:
    """Start a session and run the shell until Ctrl-D, ``EN`` or the end of the input.

    Args:
        data_ext: extension appended to file names that have none.
        project_ext: extension of procedure files (``@name``) and of the results log.
        results: results-log path, True for ``results.<prj>.<n>`` here, None for none.
        stdin, stdout: streams (default the process's).

    Returns:
        The exit status: 0, or 1 when piped input stopped at an error.
    """
    from emsh import __version__
    from emsh.parallel import get_comm
    from emsh.session import Session
    from emsh.shell.engine import ShellEngine

    stdin = stdin if stdin is not None else sys.stdin
    stdout = stdout if stdout is not None else sys.stdout
    comm = get_comm()
    session = Session(comm=comm, data_ext=data_ext, project_ext=project_ext,
                      results=results, out=stdout)
    engine = ShellEngine(session)
    if comm.rank == 0:
        for problem in session.registry.problems:
            print(f"emsh: warning: {problem}", file=sys.stderr)
    try:
        terminal = comm.size == 1 and _isatty(stdin) and _isatty(stdout)
        if terminal:
            from emsh.shell.paths import history_path
            from emsh.shell.repl import PromptShell

            where = session.results.path
            print(f"emsh {__version__}: HELP for help, HELP <op> for an operation, Ctrl-D to "
                  "leave." + (f" Results log: {where}" if where else ""), file=stdout)
            return PromptShell(engine, history=history_path()).loop()
        from emsh.shell.plain import PlainShell

        return PlainShell(engine, stdin, prompts=_isatty(stdin)).loop()
    finally:
        session.close()


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
