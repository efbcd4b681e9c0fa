"""The ``emsh`` command line.

    emsh info FILE...              header facts of image files (any supported format)
    emsh convert IN OUT [--apix A] [--overwrite]
                                   convert between SPIDER, MRC/MRCS and EMAN2 HDF
    emsh --version

Errors a user can cause print one line (``emsh: file: what is wrong``) and exit 2.
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
