"""The ``qlt`` command: the book's computations from the shell.

Each subcommand prints JSON on stdout. Invalid input exits with status 2 and a one-line message
on stderr naming the parameter (no traceback); Ctrl-C exits with status 130.

Subcommands are contributed by modules listed in :data:`SUBCOMMAND_MODULES`; each exposes
``register(subparsers)`` and sets ``func`` (``args -> exit code``) on its parser.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import sys

from . import __version__

#: modules that add subcommands (``register(subparsers)``)
SUBCOMMAND_MODULES = [
    "qltlib.cli",
    "qltlib.fit_cli",
    "qltlib.simulate_cli",
    "qltlib.transfer_cli",
]


class HelpFormatter(argparse.HelpFormatter):
    """Help text that ends with the option's default, unless the text already states one.

    Flags (default ``False``), required options and options whose default is decided later
    (``None``) get no suffix; their help says what happens instead.
    """

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or not action.option_strings
                or action.default in (None, False, argparse.SUPPRESS)):
            return text
        return f"{text} (default: %(default)s)"


class _ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints the whole usage block by default) and
    defaults in every help text."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _number(name, positive=False):
    """argparse type: a finite float (``positive``: and > 0); the error names the option."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not math.isfinite(value) or (positive and not value > 0):
            kind = "finite positive number" if positive else "finite number"
            raise argparse.ArgumentTypeError(f"{name} must be a {kind}, got {text!r}")
        return value
    return parse


def _integer(name, minimum):
    """argparse type: an integer >= ``minimum``; the error names the option."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{name} must be an integer >= {minimum}, got {text!r}")
        return value
    return parse


def checked_json(obj) -> str:
    """``obj`` as JSON, refusing NaN and infinities (``json.dump`` would print ``NaN``, which is
    not JSON) with a one-line ``ValueError``."""
    try:
        return json.dumps(obj, allow_nan=False)
    except ValueError:
        raise ValueError("result contains NaN or infinity; nothing printed") from None


def _spectrum_command(args) -> int:
    from .spectrum import make_spectrum
    from .transport import check_resources, steady_state_spectrum, theory_domain_violation

    spectrum = make_spectrum(args.spectrum, args.k0, args.k1)
    violation = theory_domain_violation(spectrum, args.alpha, args.lmax)
    if violation:
        raise ValueError(violation)
    check_resources(spectrum, args.alpha, args.lmax)
    result = steady_state_spectrum(spectrum, alpha=args.alpha, lmax=args.lmax, kg2=args.kg2,
                                   coupling=not args.no_coupling, source=args.source)
    # last guard before printing: steady_state_spectrum refuses unphysical results already
    if not (all(c >= 0 for c in result.C_ell) and result.C_ell[0] > 0 and result.K > 0):
        raise ValueError(f"steady state not physical at alpha = {args.alpha:g}; nothing printed")
    out = result.as_dict()
    out["settings"]["units"] = "c = 1, lengths in r_g, times in 1/Omega; kg2 in units of c k0; K in r_g c"
    sys.stdout.write(checked_json(out) + "\n")
    return 0


def register(subparsers) -> None:
    """Add the ``spectrum`` subcommand (steady-state C_l of the analytic core)."""
    from .spectrum import SPECTRA

    p = subparsers.add_parser(
        "spectrum", help="steady-state angular power spectrum C_l (paper eq. 3.7) as JSON",
        description="Steady-state C_l of quasi-linear theory with pair correlations. "
                    "Units: c = 1, lengths in r_g; K|G|^2 in units of c k0. The theory needs "
                    "alpha = k1 c Delta T >> 1 (alpha >= 10 accepted).")
    p.add_argument("--spectrum", default="white", choices=list(SPECTRA),
                   help="turbulence spectrum g(k)")
    p.add_argument("--k0", type=_number("k0", positive=True), default=1e-3,
                   help="smallest wavenumber k0, units 1/r_g")
    p.add_argument("--k1", type=_number("k1", positive=True), default=1e2,
                   help="largest wavenumber k1, units 1/r_g")
    p.add_argument("--alpha", type=_number("alpha", positive=True), default=50.0,
                   help="alpha = k1 c Delta T, dimensionless, >= 10")
    p.add_argument("--lmax", type=_integer("lmax", 2), default=100,
                   help="highest multipole of the truncated system (memory ~ lmax^3)")
    p.add_argument("--kg2", type=_number("kg2", positive=True), default=1e-4,
                   help="K|G|^2, units c k0")
    p.add_argument("--no-coupling", action="store_true",
                   help="diagrams 0 and 1a only, no pair correlations (default: with them)")
    p.add_argument("--source", default="derived", choices=["derived", "paper"],
                   help="source factor s_1/(K|G|^2): derived 8pi/3 or the paper's printed 8pi/9")
    p.set_defaults(func=_spectrum_command)


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="qlt", description="The computations of the book from the shell; each subcommand prints JSON.")
    parser.add_argument("--version", action="version", version=f"qlt (qltlib) {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv=None) -> int:
    try:
        # Ctrl-C while the subcommand modules import is an interrupt like any other
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        sys.stderr.write("qlt: interrupted\n")
        return 130
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        return _one_line_error(args.command, str(exc))
    except OSError as exc:   # unwritable or occupied output paths, unreadable files
        where = f": {exc.filename}" if exc.filename else ""
        return _one_line_error(args.command, f"{exc.strerror or exc}{where}")
    except MemoryError:
        return _one_line_error(args.command, "out of memory; reduce lmax, alpha or the run size")
    except KeyboardInterrupt:
        sys.stderr.write(f"qlt {args.command}: interrupted\n")
        return 130


def _one_line_error(command: str, message: str) -> int:
    first_line = " ".join(message.split())   # a message from a library may span lines
    sys.stderr.write(f"qlt {command}: error: {first_line}\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
