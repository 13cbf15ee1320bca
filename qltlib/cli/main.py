"""The ``qlt`` command: the book's computations from the shell.

Each subcommand prints JSON on stdout. Invalid input exits with status 2 and a one-line message
on stderr naming the parameter (no traceback); Ctrl-C exits with status 130.

Sub-commands are contributed by modules listed in :data:`SUBCOMMAND_MODULES`; each exposes
``register(subparsers)`` and sets ``func`` (``args -> exit code``) on its parser.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from .common import ArgumentParser, one_line_error

#: modules that add subcommands (``register(subparsers)``)
SUBCOMMAND_MODULES = [
    "qltlib.cli.spectrum",
    "qltlib.cli.fit",
    "qltlib.cli.simulate",
    "qltlib.cli.transfer",
]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="qlt", description="The computations of the book from the shell; each subcommand prints JSON.")
    parser.add_argument("--version", action="version", version=f"qlt (qltlib) {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv=None) -> int:
    try:
        # Ctrl-C while the subcommand modules import is an interrupt like any other
        parser = build_parser()
        argv = sys.argv[1:] if argv is None else list(argv)
        if not argv:
            names = ", ".join(parser._subparsers._group_actions[0].choices)
            parser.error(f"no sub-command given ({names})")
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        sys.stderr.write("qlt: interrupted\n")
        return 130
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        return one_line_error(args.command, str(exc))
    except OSError as exc:   # unwritable or occupied output paths, unreadable files
        where = f": {exc.filename}" if exc.filename else ""
        return one_line_error(args.command, f"{exc.strerror or exc}{where}")
    except MemoryError:
        return one_line_error(args.command, "out of memory; reduce lmax, alpha or the run size")
    except KeyboardInterrupt:
        sys.stderr.write(f"qlt {args.command}: interrupted\n")
        return 130
