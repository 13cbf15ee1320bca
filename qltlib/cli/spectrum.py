"""``qlt spectrum``: the steady-state C_l of the analytic theory.
"""
from __future__ import annotations

import sys

from .common import (
    announce_estimate,
    checked_json,
    integer_type,
    number_type,
    stderr_note,
)
from .outputs import epilog


def _spectrum_command(args) -> int:
    from ..theory.spectrum import make_spectrum
    from ..theory.transport import (
        check_resources,
        estimate_solves,
        steady_state_spectrum,
        theory_domain_violation,
    )

    spectrum = make_spectrum(args.spectrum, args.k0, args.k1)
    violation = theory_domain_violation(spectrum, args.alpha, args.lmax)
    if violation:
        raise ValueError(violation)
    check_resources(spectrum, args.alpha, args.lmax)
    if announce_estimate("spectrum", estimate_solves(spectrum, args.alpha, args.lmax),
                         f"the steady state at lmax = {args.lmax}, alpha = {args.alpha:g}"):
        _tables_phase(args.lmax)
        stderr_note("spectrum", f"2/2: kernel kappa (l <= {2 * args.lmax}) and the solve")
    result = steady_state_spectrum(spectrum, alpha=args.alpha, lmax=args.lmax, kg2=args.kg2,
                                   coupling=not args.no_coupling, source=args.source)
    # last guard before printing: steady_state_spectrum refuses unphysical results already
    if not (all(c >= 0 for c in result.C_ell) and result.C_ell[0] > 0 and result.K > 0):
        raise ValueError(f"steady state not physical at alpha = {args.alpha:g}; nothing printed")
    out = result.as_dict()
    out["settings"]["units"] = "c = 1, lengths in r_g, times in 1/Omega; kg2 in units of c k0; K in r_g c"
    sys.stdout.write(checked_json(out) + "\n")
    return 0


def _tables_phase(lmax: int) -> None:
    """Load (or build and cache) the Wigner tables of ``lmax`` with a progress line."""
    from ..paths import cache_dir
    from ..theory.angular import coupling_tables, tables_cached

    where = ("from the cache" if tables_cached(lmax)
             else f"building them (once; cached in {cache_dir()})")
    stderr_note("spectrum", f"1/2: Wigner tables for lmax = {lmax}, {where}")
    coupling_tables(lmax)


def register(subparsers) -> None:
    """Add the ``spectrum`` subcommand (steady-state C_l of the analytic core)."""
    from ..theory.spectrum import SPECTRA

    p = subparsers.add_parser(
        "spectrum", help="steady-state angular power spectrum C_l (paper eq. 3.7) as JSON",
        description="Steady-state C_l of quasi-linear theory with pair correlations. "
                    "Units: c = 1, lengths in r_g; K|G|^2 in units of c k0. The theory needs "
                    "alpha = k1 c Delta T >> 1 (alpha >= 10 accepted).",
        epilog=epilog("spectrum"))
    p.add_argument("--spectrum", default="white", choices=list(SPECTRA),
                   help="turbulence spectrum g(k)")
    p.add_argument("--k0", type=number_type("k0", positive=True), default=1e-3,
                   help="smallest wavenumber k0, units 1/r_g")
    p.add_argument("--k1", type=number_type("k1", positive=True), default=1e2,
                   help="largest wavenumber k1, units 1/r_g")
    p.add_argument("--alpha", type=number_type("alpha", positive=True), default=50.0,
                   help="alpha = k1 c Delta T, dimensionless, >= 10")
    p.add_argument("--lmax", type=integer_type("lmax", 2), default=100,
                   help="highest multipole of the truncated system (memory ~ lmax^3)")
    p.add_argument("--kg2", type=number_type("kg2", positive=True), default=1e-4,
                   help="K|G|^2, units c k0")
    p.add_argument("--no-coupling", action="store_true",
                   help="diagrams 0 and 1a only, no pair correlations (default: with them)")
    p.add_argument("--source", default="derived", choices=["derived", "paper"],
                   help="source factor s_1/(K|G|^2): derived 8pi/3 or the paper's printed 8pi/9")
    p.set_defaults(func=_spectrum_command)
