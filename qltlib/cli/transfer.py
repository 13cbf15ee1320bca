"""``qlt transfer``: the pair transition matrix ``M^sim(Delta T)`` measured by test particles.

Registered into the main ``qlt`` parser by :mod:`qltlib.cli.main` through :func:`register`.
Prints one JSON document to stdout; bad input raises :class:`ValueError` with a one-line message (exit code 2).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..theory.spectrum import SPECTRA
from ..units import PAPER_K0, PAPER_K1


def _grid_rings(text: str):
    """``--grid``: ``auto`` or an integer number of Gauss-Legendre rings."""
    if text == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--grid must be 'auto' or an integer, got {text!r}") from None


def cmd_transfer(args) -> int:
    """Measure ``M^sim`` on ``--realisations`` fields; print it as JSON (and write ``--out``)."""
    from ..particles.transfer import TransferSettings, measure_transfer

    if args.out is not None and Path(args.out).suffix != ".npz":
        raise ValueError(f"--out must name an .npz file, got {args.out!r}")
    if args.out is not None and not Path(args.out).resolve().parent.is_dir():
        raise ValueError(f"--out: directory {str(Path(args.out).parent)!r} does not exist")
    settings = TransferSettings(alpha=args.alpha, lmax=args.lmax, n_theta=args.grid, n_modes=args.modes,
                                seed=args.seed, spectrum=args.spectrum, k0=args.k0, k1=args.k1,
                                step_fraction=args.step_fraction, precision=args.precision)
    start = time.perf_counter()
    measurement = measure_transfer(settings, args.realisations, progress=not args.no_progress)
    result = measurement.as_dict()
    result["wall_seconds"] = round(time.perf_counter() - start, 3)
    if args.out is not None:
        measurement.save(args.out)
        result["out"] = str(args.out)
    print(json.dumps(result))
    return 0


def register(subparsers) -> None:
    """Add the ``transfer`` sub-command to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "transfer", help="measure the pair transition matrix M_{l l0}(Delta T) with test particles",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Back-track one particle per node of a Gauss-Legendre grid for Delta T = alpha/k1 "
                    "through --realisations turbulence fields and measure M_{l l0}, l, l0 <= lmax, "
                    "with standard errors over realisations. Units: c = 1, lengths in r_g, times in "
                    "1/Omega, wavenumbers in 1/r_g.")
    p.add_argument("--alpha", type=float, default=50.0, help="alpha = k1 c Delta T (dimensionless)")
    p.add_argument("--lmax", type=int, default=24, help="largest multipole l, l0 of the matrix")
    p.add_argument("--realisations", type=int, default=20, help="number of field realisations")
    p.add_argument("--grid", type=_grid_rings, default="auto",
                   help="Gauss-Legendre rings n_theta (2 n_theta^2 particles); auto: 2 (lmax + 1)")
    p.add_argument("--modes", type=int, default=1024, help="plane waves per realisation")
    p.add_argument("--spectrum", choices=sorted(SPECTRA), default="white", help="shape of g(k)")
    p.add_argument("--k0", type=float, default=PAPER_K0, help="smallest wavenumber (1/r_g)")
    p.add_argument("--k1", type=float, default=PAPER_K1, help="largest wavenumber (1/r_g)")
    p.add_argument("--step-fraction", type=float, default=0.4,
                   help="time step as a fraction of min(1/k_max, r_g)")
    p.add_argument("--seed", type=int, default=2019, help="ensemble seed (realisation i: SeedSequence(seed, spawn_key=(i,)))")
    p.add_argument("--precision", choices=["float64", "float32"], default="float32",
                   help="working precision of the per-mode arithmetic in the tracking kernel")
    p.add_argument("--out", default=None, help="also write the per-realisation matrices to this .npz file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_transfer)
