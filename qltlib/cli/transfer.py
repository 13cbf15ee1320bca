"""``qlt transfer``: the pair transition matrix ``M^sim(Delta T)`` measured by test particles.

Registered into the main ``qlt`` parser by :mod:`qltlib.cli.main` through :func:`register`.
Prints one JSON document to stdout; bad input raises :class:`ValueError` with a one-line message (exit code 2).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from ..particles.tracking_defaults import DEFAULT_STEP_FRACTION
from ..theory.spectrum import SPECTRA
from ..units import PAPER_K0, PAPER_K1
from .common import part_store_command, reporter
from .outputs import epilog


def _grid_rings(text: str):
    """``--grid``: ``auto`` or an integer number of Gauss-Legendre rings."""
    if text == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--grid must be 'auto' or an integer, got {text!r}") from None


def _check_out_file(out) -> None:
    """``--out`` must name a writable ``.npz`` file: checked before any computation."""
    path = Path(out)
    if path.suffix != ".npz":
        raise ValueError(f"--out must name an .npz file, got {out!r}")
    if not path.resolve().parent.is_dir():
        raise ValueError(f"--out: directory {str(path.parent)!r} does not exist")
    probe = path.with_name(f".{path.name}.{os.getpid()}.probe")
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"--out: cannot write to {str(path.parent)!r}: "
                         f"{exc.strerror or type(exc).__name__}") from None


def cmd_transfer(args) -> int:
    """Measure ``M^sim`` on ``--realisations`` fields; print it as JSON (and write ``--out``).

    Ctrl-C at any moment, from the imports on, ends with one line on stderr and exit code 130;
    the finished realisations stay in the part store and the same command resumes.
    """
    return part_store_command("transfer", args, _transfer)


def _transfer(args, where: dict) -> int:
    if args.out is not None:
        _check_out_file(args.out)
    from ..particles.transfer import TransferSettings
    from ..particles.transfer_run import default_store, run_transfer

    settings = TransferSettings(alpha=args.alpha, lmax=args.lmax, n_theta=args.grid, n_modes=args.modes,
                                seed=args.seed, spectrum=args.spectrum, k0=args.k0, k1=args.k1,
                                step_fraction=args.step_fraction, precision=args.precision)
    where["store"] = store = args.store or str(default_store(settings))
    start = time.perf_counter()
    run = run_transfer(settings, args.realisations, store=store, workers=args.workers,
                       progress=not args.no_progress, report=reporter("transfer"))
    measurement = run["measurement"]
    result = measurement.as_dict()
    result.update(store=run["store"], written=len(run["written"]), skipped=len(run["skipped"]),
                  wall_seconds=round(time.perf_counter() - start, 3))
    if args.out is not None:
        measurement.save(args.out)
        result["out"] = str(args.out)
    print(json.dumps(result))
    return 0


def register(subparsers) -> None:
    """Add the ``transfer`` sub-command to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "transfer", help="measure the pair transition matrix M_{l l0}(Delta T) with test particles",
        epilog=epilog("transfer"),
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
    p.add_argument("--step-fraction", type=float, default=DEFAULT_STEP_FRACTION,
                   help="time step as a fraction of min(1/k_max, r_g)")
    p.add_argument("--seed", type=int, default=2019, help="ensemble seed (realisation i: SeedSequence(seed, spawn_key=(i,)))")
    p.add_argument("--precision", choices=["float64", "float32"], default="float32",
                   help="working precision of the per-mode arithmetic in the tracking kernel")
    p.add_argument("--out", default=None,
                   help="also write the per-realisation matrices to this .npz file (compact, "
                        "float32; checked for writability before the run)")
    p.add_argument("--store", default=None,
                   help="part store: one verified file per finished realisation, resumable "
                        "(default: a cache directory keyed by the settings, under "
                        "$QLT_CACHE_DIR or ~/.cache/qltlib/transfer)")
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes; 1 uses all cores through numba threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_transfer)
