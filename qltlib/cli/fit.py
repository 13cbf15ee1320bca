"""``qlt fit``: fit the steady-state QLT spectrum to one energy bin of an observed data set.

Prints one JSON object; every key, with its units, is listed in :mod:`qltlib.cli.outputs`
(``qlt fit --help`` and the book's page *Output keys of qlt* show the same table).

Errors are 1 sigma; ``null`` where a parameter sits on the edge of its range (``at_bound``).
``alpha`` is searched in ``qltlib.observations.fit.ALPHA_RANGE`` (10..1000, where ``alpha >> 1`` holds); an
interval end is ``null`` when it lies beyond that range or on the edge where ``alpha`` sits,
``interval_kind`` says which end is missing, and ``notes`` says why.
Invalid input raises :class:`ValueError` with a one-line message, which ``qlt`` turns into exit
status 2. Chapter *Comparison with observations* (:ref:`ch-observations`).

``qlt fit --simulation DIR [--time T] [--lmax-theory L] [--amplitude free|diffusion]`` fits the
steady state to a test-particle ensemble instead (:func:`qltlib.validation.simulation_fit.fit_simulation`,
chapter *Validation by test particles*): the same keys, without ``noise``, plus ``time``,
``lmax_theory``, ``amplitude``, the fitted points and the steady time with its rule. Without
``--time`` it fits at the ensemble's steady time
(:func:`qltlib.validation.convergence.steady_time_report`), as chapter 7's table.

``qlt fit --one-step PATH --energy-tev E`` fits the steady state of the one-step recursion
(chapter *A parameter-free predictor*) instead of the analytic one: a shape measured by test
particles, with no ``alpha``, so only its amplitude ``A = (r_g |G|)^2`` and the noise are free
(:func:`qltlib.observations.shape_fit.fit_one_step_shape`). ``PATH`` is a measurement saved as
``.npz`` (``data/one_step/*.npz``) or the part store that ``qlt spectrum --method transfer``
prints as ``store``.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..theory.spectrum import SPECTRA
from ..units import PAPER_K0, PAPER_K1
from .common import announce_estimate, checked_json, integer_type, number_type
from .outputs import epilog

# Defaults of --lmin/--lmax/--lmax-theory live in qltlib.observations.fit (DEFAULT_LMIN, ...); they are not
# imported here because qltlib.observations.fit pulls in healpy and scipy (~1.5 s), which every other ``qlt``
# subcommand would then pay at start-up. The help texts quote them (checked by a test).


#: options of the analytic data fit that a one-step fit does not take (the measurement fixes them)
_THEORY_ONLY = ("spectrum", "k0", "k1", "lmax_theory")
#: options of the data fit that a simulation fit does not take (the simulation fixes them)
_DATA_ONLY = ("dataset", "energy_tev", "dec_max", "spectrum", "k0", "k1", "fsky_normalise")
#: defaults of the data fit's options that are ``None`` in the parser (so that an explicit value
#: given with --simulation can be refused)
_DATA_DEFAULTS = {"dataset": "icecube-12yr", "spectrum": "white", "k0": PAPER_K0, "k1": PAPER_K1}


def _announce(estimate, what) -> None:
    announce_estimate("fit", estimate, what)


def _fit_command(args) -> int:
    options = {name: getattr(args, name) for name in ("lmin", "lmax", "lmax_theory")
               if getattr(args, name) is not None}
    if args.simulation is not None:
        # before the imports of the fit (over a second): a mistyped path fails at once
        if not Path(args.simulation).is_dir():
            what = "not a directory" if Path(args.simulation).exists() else "no such directory"
            raise ValueError(f"--simulation: {what}: {args.simulation}")
        if args.one_step is not None:
            raise ValueError("--one-step fits data; it does not go with --simulation")
        return _fit_simulation_command(args, options)
    for name in ("time", "amplitude"):
        if getattr(args, name) is not None:
            raise ValueError(f"--{name} applies only with --simulation DIR")
    if args.energy_tev is None:
        raise ValueError("--energy-tev is required (or --simulation DIR to fit a test-particle ensemble)")
    if args.one_step is not None:
        return _fit_one_step_command(args, options)
    from ..observations.fit import fit_energy_bin

    data = {name: (_DATA_DEFAULTS[name] if getattr(args, name) is None else getattr(args, name))
            for name in _DATA_DEFAULTS}
    result = fit_energy_bin(data["dataset"], args.energy_tev, dec_max=args.dec_max,
                            spectrum=data["spectrum"], k0=data["k0"], k1=data["k1"],
                            fsky_normalise=args.fsky_normalise, announce=_announce, **options)
    sys.stdout.write(checked_json(result.to_dict()) + "\n")
    return 0


def _load_one_step(path: str):
    """The one-step measurement at ``path``: a saved ``.npz`` or a part store directory."""
    source = Path(path)
    if not source.exists():
        raise ValueError(f"--one-step: no such file or directory: {path}")
    if source.is_dir():
        from ..particles.transfer_run import load_one_step_store
        return load_one_step_store(source, report=lambda line: sys.stderr.write(f"qlt fit: {line}\n"))
    from ..particles.one_step import load_one_step
    try:
        return load_one_step(source)
    except (OSError, KeyError, TypeError, ValueError, EOFError):
        raise ValueError(f"--one-step: {path} is not a one-step measurement (a .npz written by "
                         f"OneStepMeasurement.save, as in data/one_step/, or a part store of qlt "
                         f"spectrum --method transfer)") from None


def _fit_one_step_command(args, options) -> int:
    given = [name for name in _THEORY_ONLY if getattr(args, name) is not None]
    if given:
        raise ValueError(f"--{given[0].replace('_', '-')} does not apply with --one-step: the "
                         f"measurement fixes the spectrum, band and truncation")
    measurement = _load_one_step(args.one_step)
    from ..observations.shape_fit import fit_one_step_shape

    result = fit_one_step_shape(measurement, args.dataset or _DATA_DEFAULTS["dataset"],
                                args.energy_tev, dec_max=args.dec_max,
                                fsky_normalise=args.fsky_normalise, **options)
    out = result.to_dict()
    out["one_step"]["source"] = str(args.one_step)
    sys.stdout.write(checked_json(out) + "\n")
    return 0


def _fit_simulation_command(args, options) -> int:
    given = [name for name in _DATA_ONLY if getattr(args, name) not in (None, False)]
    if given:
        raise ValueError(f"--{given[0].replace('_', '-')} applies only to a data fit; --simulation takes "
                         f"the spectrum and band from the simulation's manifest")
    from ..particles.statistics import summarize, time_index
    from ..validation.convergence import steady_time_report
    from ..validation.simulation_fit import fit_simulation

    summary = summarize(args.simulation)
    if summary["realisations"] < 2:
        raise ValueError(f"{args.simulation} holds {summary['realisations']} realisation; the "
                         f"fit needs at least 2 for the errors of C_l")
    if args.time is not None:
        time_index(summary["times"], args.time)     # a time not in the run: refused at once
    steady = steady_time_report(summary)
    time, note = args.time, None
    if time is not None:
        choice = "given (--time)"
    elif steady["steady_time"] is not None:
        time, choice = steady["steady_time"], "steady time"
        note = (f"time: the steady time, Omega t = {time:g}, from which C_l (l = 1, 2, 4, 8, "
                f"16) stays one constant")
    else:
        time, choice = steady["last_time"], "last time"
        note = f"time: the last, Omega t = {time:g}; the ensemble is not shown steady before it"
    result = fit_simulation(summary, time=time, amplitude=args.amplitude or "free",
                            announce=_announce, **options)
    out = result.to_dict()
    if note:
        out["notes"] = [note, *out["notes"]]
    out["time_choice"] = choice
    out.update({key: steady[key] for key in ("steady_time", "steady_time_rule",
                                            "steady_time_by_ell")})
    out["simulation"] = str(args.simulation)
    sys.stdout.write(checked_json(out) + "\n")
    return 0


def register(subparsers) -> None:
    """Add the ``fit`` subcommand to an :mod:`argparse` subparsers object."""
    p = subparsers.add_parser(
        "fit", help="fit alpha, K|G|^2 and noise to one energy bin of an observed pseudo-C_l "
                    "(with --one-step PATH: the amplitude of the measured one-step shape and "
                    "noise), or with --simulation DIR alpha and K|G|^2 to a test-particle "
                    "ensemble",
        epilog=epilog("fit", "fit --one-step", "fit --simulation"),
        description="Maximum-likelihood fit of the steady-state QLT spectrum, forward-modelled "
                    "through the detector's field of view and the m = 0 filter, to one energy "
                    "bin; with --one-step PATH the steady state of the one-step recursion "
                    "measured by test particles instead (amplitude and noise free, no alpha); "
                    "or, with --simulation DIR, chi2 fit to a test-particle ensemble. "
                    "Prints JSON; K|G|^2 in units of c k0, errors 1 sigma. alpha = "
                    "k1 c Delta T is searched in 10..1000, where the theory (alpha >> 1) holds.")
    p.add_argument("--dataset", default=None,
                   help="registered data set (data/datasets.json; default icecube-12yr)")
    p.add_argument("--energy-tev", type=number_type("energy-tev", positive=True), default=None,
                   help="median energy of the bin in TeV (e.g. 13); required unless --simulation (default: none)")
    p.add_argument("--lmin", type=integer_type("lmin", 1), default=None,
                   help="lowest multipole fitted (default 2: the dipole is set by physics absent "
                        "from the model; also 2 with --simulation)")
    p.add_argument("--lmax", type=integer_type("lmax", 2), default=None,
                   help="highest multipole fitted, at most the data's last l (default 39: the "
                        "l = 40 marker is clipped in the digitised figure; with --one-step "
                        "default 12, where the power beyond the measured l <= 16 stays a few "
                        "per cent; with --simulation default 16, multipoles with relative "
                        "error > 1 left out)")
    p.add_argument("--dec-max", type=number_type("dec-max"), default=None,
                   help="northern edge of the field of view, equatorial declination in degrees "
                        "(default: the data set's, -20 assumed for IceCube)")
    p.add_argument("--spectrum", default=None, choices=sorted(SPECTRA),
                   help="turbulence spectrum g(k) (default white)")
    p.add_argument("--k0", type=number_type("k0", positive=True), default=None,
                   help=f"smallest wavenumber k0, units 1/r_g (default {PAPER_K0:g})")
    p.add_argument("--k1", type=number_type("k1", positive=True), default=None,
                   help=f"largest wavenumber k1, units 1/r_g (default {PAPER_K1:g})")
    p.add_argument("--lmax-theory", type=integer_type("lmax-theory", 2), default=None,
                   help="truncation of the steady-state system (default 100; memory ~ lmax^3)")
    p.add_argument("--fsky-normalise", action="store_true",
                   help="divide the model pseudo-power by f_sky (default: plain pseudo-power, "
                        "as IceCube's)")
    p.add_argument("--one-step", default=None, metavar="PATH",
                   help="fit the steady state of the one-step recursion instead of the analytic "
                        "one: PATH is a measurement saved as .npz (data/one_step/*.npz) or the "
                        "part store printed by qlt spectrum --method transfer as 'store'; the "
                        "measurement fixes spectrum, band and truncation (default: none, the "
                        "analytic steady state)")
    p.add_argument("--simulation", default=None, metavar="DIR",
                   help="fit a test-particle ensemble (a `qlt simulate` directory) instead of "
                        "data: the steady state of the simulation's spectrum against its "
                        "shot-noise-subtracted C_l, chi2 with the ensemble's standard errors "
                        "(default: none, fit the data)")
    p.add_argument("--time", type=number_type("time", positive=True), default=None,
                   help="with --simulation: back-tracking time Omega t, units 1/Omega, one of "
                        "the run's (default: its steady time, the earliest from which C_l, "
                        "l = 1, 2, 4, 8, 16, stays one constant; its last time if never)")
    p.add_argument("--amplitude", choices=["free", "diffusion"], default=None,
                   help="with --simulation: K|G|^2 fitted (free) or fixed by the simulated "
                        "diffusion coefficient, K|G|^2 = K/k0 in c k0 with K the plateau of "
                        "D(t), the slope of <|dr|^2>/6 over the last interval (diffusion) "
                        "(default: free)")
    p.set_defaults(func=_fit_command)
