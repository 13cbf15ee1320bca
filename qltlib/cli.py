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
import sys

#: modules that add subcommands (``register(subparsers)``)
SUBCOMMAND_MODULES = [
    "qltlib.cli",
    "qltlib.fit_cli",
    "qltlib.simulate_cli",
]


class _ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints the whole usage block by default)."""

    def error(self, message):
        self.exit(2, f"qlt: error: {message}\n")


def _positive_float(name):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        return value
    return parse


def _spectrum_command(args) -> int:
    from .spectrum import make_spectrum
    from .transport import steady_state_spectrum

    spectrum = make_spectrum(args.spectrum, args.k0, args.k1)
    result = steady_state_spectrum(spectrum, alpha=args.alpha, lmax=args.lmax, kg2=args.kg2,
                                   coupling=not args.no_coupling, source=args.source)
    out = result.as_dict()
    out["settings"]["units"] = "c = 1, lengths in r_g, times in 1/Omega; kg2 in units of c k0; K in r_g c"
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


def register(subparsers) -> None:
    """Add the ``spectrum`` subcommand (steady-state C_l of the analytic core)."""
    p = subparsers.add_parser(
        "spectrum", help="steady-state angular power spectrum C_l (paper eq. 3.7) as JSON",
        description="Steady-state C_l of quasi-linear theory with pair correlations. "
                    "Units: c = 1, lengths in r_g; K|G|^2 in units of c k0.")
    p.add_argument("--spectrum", default="white", help="turbulence spectrum: white, kolmogorov or logflat")
    p.add_argument("--k0", type=_positive_float("k0"), default=1e-3, help="smallest wavenumber k0 r_g (default 1e-3)")
    p.add_argument("--k1", type=_positive_float("k1"), default=1e2, help="largest wavenumber k1 r_g (default 1e2)")
    p.add_argument("--alpha", type=_positive_float("alpha"), default=50.0, help="alpha = k1 c Delta T (default 50)")
    p.add_argument("--lmax", type=int, default=100, help="highest multipole of the truncated system (default 100)")
    p.add_argument("--kg2", type=_positive_float("kg2"), default=1e-4, help="K|G|^2 in units of c k0 (default 1e-4)")
    p.add_argument("--no-coupling", action="store_true", help="diagrams 0 and 1a only (no pair correlations)")
    p.add_argument("--source", default="derived", choices=["derived", "paper"],
                   help="source factor s_1/(K|G|^2): derived 8pi/3 (default) or the paper's printed 8pi/9")
    p.set_defaults(func=_spectrum_command)


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="qlt", description="The computations of the book from the shell; each subcommand prints JSON.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        sys.stderr.write(f"qlt {args.command}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"qlt {args.command}: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
