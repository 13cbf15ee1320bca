"""``qlt fit``: fit the steady-state QLT spectrum to one energy bin of an observed data set.

Prints one JSON object, e.g. for ``qlt fit --dataset icecube-12yr --energy-tev 13``::

    {"alpha": {"value": .., "err": .., "interval68": [.., ..], "interval_kind": ".."},
     "kg2": {"value": .., "err": .., "unit": "c k0"}, "noise": {"value": .., "err": ..},
     "chi2": .., "ndof": .., "converged": .., "at_bound": [..], ...settings..., "notes": [..]}

Errors are 1 sigma; ``null`` where a parameter sits on the edge of its range (``at_bound``).
``alpha`` is searched in ``qltlib.fit.ALPHA_RANGE`` (10..1000, where ``alpha >> 1`` holds); an
interval end is ``null`` when it lies beyond that range or on the edge where ``alpha`` sits,
``interval_kind`` says which end is missing, and ``notes`` says why.
Invalid input raises :class:`ValueError` with a one-line message, which ``qlt`` turns into exit
status 2. Chapter *Comparison with observations* (:ref:`ch-observations`).
"""
from __future__ import annotations

import argparse
import sys

from .cli import _integer, _number, checked_json
from .units import PAPER_K0, PAPER_K1

# Defaults of --lmin/--lmax/--lmax-theory live in qltlib.fit (DEFAULT_LMIN, ...); they are not
# imported here because qltlib.fit pulls in healpy and scipy (~1.5 s), which every other ``qlt``
# subcommand would then pay at start-up. The help texts quote them (checked by a test).


def _fit_command(args) -> int:
    from .fit import fit_energy_bin

    options = {name: getattr(args, name) for name in ("lmin", "lmax", "lmax_theory")
               if getattr(args, name) is not None}
    result = fit_energy_bin(args.dataset, args.energy_tev, dec_max=args.dec_max,
                            spectrum=args.spectrum, k0=args.k0, k1=args.k1,
                            fsky_normalise=args.fsky_normalise, **options)
    sys.stdout.write(checked_json(result.to_dict()) + "\n")
    return 0


def register(subparsers) -> None:
    """Add the ``fit`` subcommand to an :mod:`argparse` subparsers object."""
    p = subparsers.add_parser(
        "fit", help="fit alpha, K|G|^2 and noise to one energy bin of an observed pseudo-C_l",
        description="Maximum-likelihood fit of the steady-state QLT spectrum, forward-modelled "
                    "through the detector's field of view and the m = 0 filter, to one energy "
                    "bin. Prints JSON; K|G|^2 in units of c k0, errors 1 sigma. alpha = "
                    "k1 c Delta T is searched in 10..1000, where the theory (alpha >> 1) holds.")
    p.add_argument("--dataset", default="icecube-12yr",
                   help="registered data set (data/datasets.json; default icecube-12yr)")
    p.add_argument("--energy-tev", type=_number("energy-tev", positive=True), required=True,
                   help="median energy of the bin in TeV (e.g. 13)")
    p.add_argument("--lmin", type=_integer("lmin", 1), default=None,
                   help="lowest multipole fitted (default 2: the dipole is set by physics absent "
                        "from the model)")
    p.add_argument("--lmax", type=_integer("lmax", 2), default=None,
                   help="highest multipole fitted, at most the data's last l (default 39: the "
                        "l = 40 marker is clipped in the digitised figure)")
    p.add_argument("--dec-max", type=_number("dec-max"), default=None,
                   help="northern edge of the field of view, equatorial declination in degrees "
                        "(default: the data set's, -20 assumed for IceCube)")
    p.add_argument("--spectrum", default="white", choices=["white", "kolmogorov", "logflat"],
                   help="turbulence spectrum g(k)")
    p.add_argument("--k0", type=_number("k0", positive=True), default=PAPER_K0,
                   help="smallest wavenumber k0, units 1/r_g")
    p.add_argument("--k1", type=_number("k1", positive=True), default=PAPER_K1,
                   help="largest wavenumber k1, units 1/r_g")
    p.add_argument("--lmax-theory", type=_integer("lmax-theory", 2), default=None,
                   help="truncation of the steady-state system (default 100; memory ~ lmax^3)")
    p.add_argument("--fsky-normalise", action="store_true",
                   help="divide the model pseudo-power by f_sky (default: plain pseudo-power, "
                        "as IceCube's)")
    p.set_defaults(func=_fit_command)
