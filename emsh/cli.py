"""The ``emsh`` command line.

    emsh info FILE...              header facts of image files (any supported format)
    emsh convert IN OUT [--apix A] [--overwrite]
                                   convert between SPIDER, MRC/MRCS and EMAN2 HDF
    emsh run FILE [--set NAME=VALUE ...] [--data-ext EXT] [--results FILE]
                                   run a procedure (also under mpiexec -n N)
    emsh check FILE [--data-ext EXT]
                                   find errors in a procedure without running it
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``emsh`` command."""
    p = argparse.ArgumentParser(prog="emsh", description="cryo-EM workbench in the spirit of SPIDER")
    p.add_argument("--version", action="version", version=f"emsh {__version__}")
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
    pr.add_argument("--data-ext", default="spi", metavar="EXT",
                    help="extension appended to file names that have none (default spi)")
    pr.add_argument("--results", default=None, metavar="FILE",
                    help="results log (default results.<prj>.<n> in the current folder)")
    pr.set_defaults(func=_cmd_run)
    pk = sub.add_parser("check", help="find errors in a procedure without running it")
    pk.add_argument("file")
    pk.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a variable the run will preset with --set")
    pk.add_argument("--data-ext", default="spi", metavar="EXT",
                    help="extension appended to file names that have none (default spi)")
    pk.set_defaults(func=_cmd_check)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``emsh`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except EmshError as exc:
        print(f"emsh: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
