"""The ``emsh`` command line.

    emsh [--data-ext EXT] [--results FILE]
                                   the interactive shell (plain lines when stdin is a pipe)
    emsh info FILE...              header facts of image files (any supported format)
    emsh convert IN OUT [--apix A] [--overwrite]
                                   convert between SPIDER, MRC/MRCS and EMAN2 HDF
    emsh run FILE [--set NAME=VALUE ...] [--data-ext EXT] [--results FILE]
                                   run a procedure (also under mpiexec -n N)
    emsh check FILE [--data-ext EXT]
                                   find errors in a procedure without running it
    emsh ops [CODE]                list the operations, or show one operation's help
    emsh help OP                   one operation's help (same text as HELP OP in the shell)
    emsh plugins [--check]         loaded plugins, their versions and operation counts, and
                                   every problem met while loading them
    emsh --version

Errors a user can cause print one line (``emsh: file: what is wrong``) and exit 2; a
procedure that fails prints ``file:line:col: message``, the line, a caret and the chain
of calls, and exits 1.
"""

from __future__ import annotations

import argparse
import sys

from emsh import __version__
from emsh.errors import EmshError


def _cmd_info(args: argparse.Namespace) -> int:
    import emsh.io as eio

    for name in args.files:
        inf = eio.info(name)
        kind = "stack" if inf.is_stack else ("volume" if inf.ndim == 3 else "image")
        dims = " x ".join(str(d) for d in reversed(inf.shape))
        apix = f"{inf.apix:g} A/px" if inf.apix else "pixel size not recorded"
        extra = ", Fourier" if inf.is_fourier else ""
        count = f", {inf.n_images} images" if inf.is_stack else ""
        print(f"{name}: {inf.format} {kind}{extra}, {dims} (x y z){count}, {apix}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    import emsh.io as eio

    src = eio.info(args.input)
    data = eio.read(args.input)
    apix = args.apix if args.apix is not None else src.apix
    eio.write(args.output, data, stack=src.is_stack and "@" not in args.input,
              apix=apix, overwrite=args.overwrite)
    print(f"wrote {args.output}")
    return 0


def _presets(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        name = name.strip().strip("[]")
        if not eq or not name:
            raise EmshError(f"--set {pair!r}: expected NAME=VALUE")
        out[name] = value
    return out


def _project_ext(path: str) -> str:
    from pathlib import Path

    return Path(path).suffix.lstrip(".") or "spi"


def _cmd_run(args: argparse.Namespace) -> int:
    from emsh.parallel import get_comm
    from emsh.session import Session

    comm = get_comm()
    session = None
    try:
        presets = _presets(args.set)
        session = Session(comm=comm, data_ext=args.data_ext, project_ext=_project_ext(args.file),
                          results=args.results or True)
        session.run_file(args.file, presets)
    except EmshError as exc:
        return _run_failed(comm, exc, getattr(exc, "collective", True))
    except Exception as exc:  # a bug in emsh: every rank must still end
        import traceback

        if comm.size > 1:
            traceback.print_exc()
            return _run_failed(comm, exc, False)
        raise
    finally:
        if session is not None:
            session.close()
    return 0


def _run_failed(comm, exc: Exception, collective: bool) -> int:
    """Report a failed run. Under MPI the whole job ends: a rank that alone met the error
    prints it and aborts; for an error every rank met, rank 0 prints and aborts."""
    import time

    if comm.size == 1:
        print(f"emsh: {exc}", file=sys.stderr, flush=True)
        return 1
    if not collective:
        print(f"emsh: rank {comm.rank}: {exc}", file=sys.stderr, flush=True)
    elif comm.rank == 0:
        print(f"emsh: {exc}", file=sys.stderr, flush=True)
    else:
        time.sleep(30)  # rank 0 prints and ends the job first; abort anyway if it cannot
    time.sleep(0.5)  # let the launcher forward what was printed before the job is torn down
    comm.abort(1)
    return 1


def _cmd_check(args: argparse.Namespace) -> int:
    from emsh.lang.checker import check_file

    problems = check_file(args.file, data_ext=args.data_ext, presets=_presets(args.set))
    for problem in problems:
        print(problem)
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    if problems:
        print(f"{args.file}: {errors} error{'s' * (errors != 1)}, "
              f"{warnings} warning{'s' * (warnings != 1)}")
    else:
        print(f"{args.file}: no problems found")
    return 1 if errors else 0


def _cmd_shell(args: argparse.Namespace) -> int:
    from emsh.shell import start

    results = args.shell_results
    if results is None:
        results = True
    elif results.lower() == "none":
        results = None
    return start(data_ext=args.shell_data_ext or "spi", results=results)


def _registry():
    from emsh.registry import Registry

    return Registry.discover()


def _cmd_ops(args: argparse.Namespace) -> int:
    from emsh.help import lookup, render_help, render_list

    registry = _registry()
    if args.code:
        print(render_help(lookup(registry, " ".join(args.code))))
    else:
        print(render_list(registry))
    return 0


def _cmd_help(args: argparse.Namespace) -> int:
    if not args.code:
        build_parser().print_help()
        print("\n'emsh ops' lists the operations; 'emsh help OP' shows one of them.")
        return 0
    return _cmd_ops(args)


def _cmd_plugins(args: argparse.Namespace) -> int:
    registry = _registry()
    counts: dict[str, int] = {}
    for op in registry.operations():
        counts[op.plugin] = counts.get(op.plugin, 0) + 1
    rows = [(p.name, p.version, counts.get(p.name, 0), p.summary)
            for p in registry.plugins.values()]
    width = max([len(r[0]) for r in rows] + [6]) + 2
    vwidth = max([len(r[1]) for r in rows] + [7]) + 2
    print(f"{'plugin':<{width}}{'version':<{vwidth}}{'ops':>5}  summary")
    for name, version, count, summary in rows:
        print(f"{name:<{width}}{version:<{vwidth}}{count:>5}  {summary}")
    for problem in registry.problems:
        print(f"emsh: warning: {problem}", file=sys.stderr)
    return 1 if args.check and registry.problems else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``emsh`` command."""
    p = argparse.ArgumentParser(prog="emsh", description="cryo-EM workbench in the spirit of SPIDER")
    p.add_argument("--version", action="version", version=f"emsh {__version__}")
    p.add_argument("--data-ext", dest="shell_data_ext", default=None, metavar="EXT",
                   help="shell: extension appended to file names that have none (default spi)")
    p.add_argument("--results", dest="shell_results", default=None, metavar="FILE",
                   help="shell: results log (default results.spi.<n> here; 'none' for none)")
    sub = p.add_subparsers(dest="command")
    pi = sub.add_parser("info", help="print header facts of image files")
    pi.add_argument("files", nargs="+")
    pi.set_defaults(func=_cmd_info)
    pc = sub.add_parser("convert", help="convert an image, volume or stack to another format")
    pc.add_argument("input")
    pc.add_argument("output")
    pc.add_argument("--apix", type=float, default=None, help="pixel size in Angstrom to record")
    pc.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    pc.set_defaults(func=_cmd_convert)
    pr = sub.add_parser("run", help="run a procedure file")
    pr.add_argument("file")
    pr.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="preset a variable [NAME] (repeatable)")
    pr.add_argument("--data-ext", default=None, metavar="EXT",
                    help="extension appended to file names that have none (default spi)")
    pr.add_argument("--results", default=None, metavar="FILE",
                    help="results log (default results.<prj>.<n> in the current folder)")
    pr.set_defaults(func=_cmd_run)
    pk = sub.add_parser("check", help="find errors in a procedure without running it")
    pk.add_argument("file")
    pk.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a variable the run will preset with --set")
    pk.add_argument("--data-ext", default=None, metavar="EXT",
                    help="extension appended to file names that have none (default spi)")
    pk.set_defaults(func=_cmd_check)
    po = sub.add_parser("ops", help="list the operations, or show the help of one")
    po.add_argument("code", nargs="*", metavar="CODE", help='an operation code, e.g. "AP SH"')
    po.set_defaults(func=_cmd_ops)
    ph = sub.add_parser("help", help="show the help of an operation")
    ph.add_argument("code", nargs="*", metavar="OP", help='an operation code, e.g. "RT SQ"')
    ph.set_defaults(func=_cmd_help)
    pp = sub.add_parser("plugins", help="list the loaded plugins and any problems loading them")
    pp.add_argument("--check", action="store_true",
                    help="exit with status 1 when a plugin has a problem")
    pp.set_defaults(func=_cmd_plugins)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``emsh`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "data_ext", "") is None:  # run/check: their own option, else the global one
        args.data_ext = args.shell_data_ext or "spi"
    if not getattr(args, "func", None):
        args.func = _cmd_shell
    try:
        return args.func(args)
    except EmshError as exc:
        print(f"emsh: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `emsh ops | head`: the reader left; that is not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
