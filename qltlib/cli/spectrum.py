"""``qlt spectrum``: the steady-state C_l, of the analytic theory or of the one-step recursion.

``--method qlt`` (the default) solves quasi-linear theory with pair correlations (chapters
2-6). ``--method transfer`` measures the terms of the exact one-step recursion of the
back-tracked anisotropy with test particles (:mod:`qltlib.particles.one_step`) in the part store
that ``qlt transfer`` uses for the same settings (:mod:`qltlib.particles.transfer_run`), and
prints its steady state: a long command of the shared runner (Ctrl-C exits 130 with one line,
finished realisations stay, the same command resumes).
"""
from __future__ import annotations

import math
import sys
import time

from .common import (
    announce_estimate,
    checked_json,
    integer_type,
    number_type,
    part_store_command,
    reporter,
    stderr_note,
)
from .outputs import epilog

#: defaults of the options whose default depends on --method: {dest: (qlt, transfer)}
METHOD_DEFAULTS = {"alpha": (50.0, 3200.0), "lmax": (100, 16)}
#: options of one method only: {dest: (option, default)}; given with the other method they are refused
QLT_ONLY = {"kg2": ("--kg2", 1e-4), "no_coupling": ("--no-coupling", False),
            "source": ("--source", "derived")}
TRANSFER_ONLY = {"modes": ("--modes", 256), "seed": ("--seed", 2019),
                 "step_fraction": ("--step-fraction", None), "precision": ("--precision", "float32"),
                 "grid": ("--grid", None), "realisations": ("--realisations", None),
                 "workers": ("--workers", 1), "store": ("--store", None),
                 "no_progress": ("--no-progress", False)}
#: without --realisations, --method transfer measures this many field realisations first and
#: extends them until the target error is met, up to the ceiling (about 10 minutes on 2 cores for
#: the Kolmogorov benchmark, benchmarks/bench_one_step.py; benchmarks/README.md)
FIRST_TRANSFER_REALISATIONS = 20
MAX_TRANSFER_REALISATIONS = 100
#: the relative standard error the default aims at, for l <= 8
TARGET_RELATIVE_ERROR = 0.10
#: multipoles the target applies to
TARGET_LMAX = 8


def _resolve_method_options(args) -> None:
    """Refuse the options of the other method (one line) and fill in the method's defaults."""
    own, other = (QLT_ONLY, TRANSFER_ONLY) if args.method == "qlt" else (TRANSFER_ONLY, QLT_ONLY)
    # a flag's default is False, every other option's None (0 is a value given)
    given = [option for dest, (option, _) in other.items()
             if getattr(args, dest) is not None and getattr(args, dest) is not False]
    if given:
        mine = "qlt (the default)" if args.method == "qlt" else args.method
        them = "transfer" if args.method == "qlt" else "qlt"
        raise ValueError(f"{', '.join(given)} only with --method {them}, not with --method {mine}")
    for dest, (_, default) in own.items():
        if getattr(args, dest) is None:
            setattr(args, dest, default)
    for dest, defaults in METHOD_DEFAULTS.items():
        if getattr(args, dest) is None:
            setattr(args, dest, defaults[args.method == "transfer"])


def _spectrum_command(args) -> int:
    _resolve_method_options(args)
    if args.method == "transfer":
        return _transfer_command(args)
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


# ---------------------------------------------------------------------------------------------
# --method transfer
# ---------------------------------------------------------------------------------------------

#: what every --method transfer result says about itself (issue 21)
TRANSFER_NOTES = (
    ("validated for the flat (white) spectrum (chapter 'A parameter-free predictor', "
     "chapters/09_one_step.md): the steady state of the exact one-step recursion with its "
     "closure (the rest of the path meets an independent field and starts from one point), "
     "measured by test particles, with the quadrature grid's aliasing floor (its shot noise, the "
     "mean of the rows l >= 3 n_theta/4) subtracted; at the defaults (alpha 3200, 68 rings, 256 "
     "modes) through the long white ensemble's own fields chi2 = 17.6 for 16 multipoles "
     "(p = 0.35), dipole 0.99 +- 0.03 of the simulated one"),
    ("the result depends on alpha until one step outlasts the memory of the displacement: on "
     "the white spectrum (k 1e-3..1e2) K falls by 0.30 +- 0.05 r_g c from alpha 1600 to 3200 "
     "and by 0.05 +- 0.06 from 3200 to 6400, and the shape at l = 2..16 no longer changes from "
     "1600 on; logflat settles from alpha 6400 and then agrees with its ensemble (below, its "
     "dipole is 0.5-0.7 of the simulated one); kolmogorov and flat3d still change at alpha "
     "128000 (K by +2.4 +- 1.1 and +8.1 +- 2.1 r_g c from 64000, their dipoles by +25 and +14 "
     "per cent): the step must outlast the memory of the displacement, which P1 does not "
     "show, and kolmogorov's particles keep the memory of their field beyond any step tried "
     "(its diffusion peaks at Omega t ~ 1280 and falls again by 20480: no steady state in "
     "reach); the step check (step_check) compares every result with the same particles at "
     "half the step"),
    ("C_ell is the power of dI = Delta r . G with |G| = 1/r_g, in (r_g |G|)^2 as qlt summarize "
     "(not the relative intensity of --method qlt); K = -m_inf/3 with m_inf = m1/(1 - P1)"),
)


def _transfer_command(args) -> int:
    """``--method transfer``; Ctrl-C at any moment: one line, exit 130, finished parts kept."""
    return part_store_command("spectrum", args, _transfer_spectrum)


def _transfer_notes(steady: dict, check: dict, quenched: dict, quenched_check: dict) -> list:
    notes = [*TRANSFER_NOTES, _step_check_note(check),
             _quenched_note(steady, quenched, quenched_check)]
    bad = [int(ell) for ell, value in zip(steady["ell"], steady["C"]) if not value > 0]
    if bad or not steady["K"] > 0:
        notes.append(f"not physical: C_l <= 0 at l = {bad} or K <= 0 (K = {steady['K']:.4g}); "
                     f"more --realisations, or alpha outside the recursion's range")
    low = [ell for ell, r in relative_errors(steady).items()
           if math.isfinite(r) and r > TARGET_RELATIVE_ERROR]
    if low:
        notes.append(f"standard error above {TARGET_RELATIVE_ERROR:.0%} of C_l at l = {low}: "
                     f"more --realisations")
    return notes


def _percent(value, error) -> str:
    return f"{100 * value:+.1f} +- {100 * error:.1f} %"


def _changes(check: dict) -> str:
    """The changes a step check measured, ``K +x +- y %, C_1 ...``."""
    return ", ".join([f"K {_percent(*check['dlnK'])}",
                      *(f"C_{ell} {_percent(*value)}" for ell, value in check["dlnC"].items())])


def _step_check_note(check: dict) -> str:
    """One line: what the step check measured and what it means."""
    measured = (f"from alpha {check['alpha_half']:g} to {check['alpha']:g} (the same particles at "
                f"half the step, paired over {check['paired_realisations']} realisations): "
                f"{_changes(check)}; two chained half steps over the step's measured mean "
                f"displacement {_percent(*check['mean_excess'])}")
    tolerance = f"{check['tolerance']:.0%}"
    if check["verdict"] == "failed":
        return (f"STEP CHECK FAILED {measured}: {', '.join(check['moved'])} changed by more than "
                f"{tolerance} beyond two errors, so this is not the steady state; double --alpha "
                f"until the check passes (the cost grows with alpha)")
    if check["verdict"] == "unresolved":
        return (f"step check unresolved {measured}: nothing changed by more than {tolerance} "
                f"beyond two errors, but two errors of {', '.join(check['unresolved'])} exceed "
                f"{tolerance}: more --realisations to tell")
    return (f"step check passed {measured}: no change larger than {tolerance} beyond two errors, "
            f"each error small enough to show one (a check at half the step cannot see memory "
            f"longer than the step)")


def _quenched_note(steady: dict, quenched: dict, check: dict) -> str:
    """One line: the quenched closure beside the Markov one (the two ends of memory), and
    whether it still moves with the step (its own step check, ``check``)."""
    ratio = quenched["C_ell"][0] / steady["C"][0] if steady["C"][0] > 0 else float("nan")
    if not (quenched["K"] > 0 and quenched["P_parallel"] < 1):
        return (f"the quenched closure (the rest of the path meets the same realisation) has no "
                f"steady state here (K = {quenched['K']:.4g}, P_parallel = "
                f"{quenched['P_parallel']:.2f}: 1 - P is nearly singular, the step is far "
                f"shorter than the memory along the realisations' fields)")
    return (f"the quenched closure (the rest of the path meets the same realisation; "
            f"chapter 'A parameter-free predictor', section 'A closure that keeps the "
            f"direction') gives K = {quenched['K']:.4g} +- {quenched['K_err']:.2g} r_g c against "
            f"{steady['K']:.4g} +- {steady['K_err']:.2g} from the Markov closure, and "
            f"{ratio:.3g} times its dipole, with the velocity memory along each realisation's "
            f"most persistent direction P_parallel = {quenched['P_parallel']:.2f} (P1 is the "
            f"mean over directions): the two are the ends of memory, exact where the field is "
            f"renewed at every step and where it stays the same; where they differ the step is "
            f"shorter than the memory along the realisations' fields; from the half step it "
            f"changed by {_changes(check)}: its step check {check['verdict']}")


def _quenched_json(measurement, check: dict, lmax: int) -> dict:
    """The quenched closure's steady state (per realisation, then the mean) with its own step
    check ``check``."""
    quenched = measurement.quenched(lmax)
    return {"C_ell": quenched["C"].tolist(), "C_ell_err": quenched["C_err"].tolist(),
            "K": quenched["K"], "K_err": quenched["K_err"], "P_parallel": quenched["P_parallel"],
            "step_check": _check_json(check)}


def _check_json(check: dict) -> dict:
    """The step check as flat JSON keys (values and errors apart, like C_ell and C_ell_err)."""
    return {"alpha_half": check["alpha_half"], "ell": list(check["dlnC"]),
            "dlnC": [v for v, _ in check["dlnC"].values()],
            "dlnC_err": [e for _, e in check["dlnC"].values()],
            "dlnK": check["dlnK"][0], "dlnK_err": check["dlnK"][1],
            "K_half": check["K_half"], "K_half_err": check["K_half_err"],
            **({} if check["mean_excess"] is None else
               {"mean_excess": check["mean_excess"][0],
                "mean_excess_err": check["mean_excess"][1]}),
            "moved": check["moved"], "unresolved": check["unresolved"],
            "verdict": check["verdict"], "settled": check["settled"]}


def relative_errors(steady: dict) -> dict:
    """``{l: C_err/C}`` for ``l <= TARGET_LMAX`` (infinite where ``C_l`` is not positive)."""
    return {int(ell): (e / value if value > 0 else float("inf"))
            for ell, value, e in zip(steady["ell"], steady["C"], steady["C_err"])
            if ell <= TARGET_LMAX}


def largest_relative_error(steady: dict) -> float:
    """The largest of :func:`relative_errors`: what the default number of realisations aims at."""
    return max(relative_errors(steady).values())


def next_realisations(n: int, error: float, target: float | None = None) -> int:
    """How many realisations to extend ``n`` to when an error is ``error`` and should be
    ``target`` (default :data:`TARGET_RELATIVE_ERROR`).

    The error falls as ``1/sqrt(R)``: the ``R`` that reaches the target, with a tenth more as a
    margin, rounded up to tens, at least ten more, at most :data:`MAX_TRANSFER_REALISATIONS`.
    """
    target = TARGET_RELATIVE_ERROR if target is None else target
    if not math.isfinite(error):
        return MAX_TRANSFER_REALISATIONS
    wanted = 1.1 * n * (error / target) ** 2
    return min(MAX_TRANSFER_REALISATIONS, max(n + 10, 10 * math.ceil(wanted / 10)))


def _measure(settings, args, store: str) -> tuple:
    """The measurement (floor subtracted), its steady state, its step check and the realisations
    written now.

    With --realisations, that many; without, :data:`FIRST_TRANSFER_REALISATIONS` extended by
    :func:`next_realisations` until the target error is met and the step check is resolved
    (two errors of each of its changes at most its tolerance), at most
    :data:`MAX_TRANSFER_REALISATIONS`. Every round starts from the first count, so an
    interrupted call, rerun, takes the same rounds (those already in the store are only read)
    and ends with the same realisations.
    """
    from ..particles.transfer_run import run_one_step
    from ..validation.one_step_check import step_check

    fixed = args.realisations is not None
    n = args.realisations if fixed else FIRST_TRANSFER_REALISATIONS
    written = set()
    while True:
        run = run_one_step(settings, n, store=store, workers=args.workers,
                           progress=not args.no_progress, report=reporter("spectrum"))
        written.update(run["written"])
        measurement, half = run["measurement"].without_floor(), run["half_step"].without_floor()
        steady = measurement.steady_state(settings.lmax)
        check = step_check(half, measurement, settings.lmax)
        if fixed or n >= MAX_TRANSFER_REALISATIONS:
            return measurement, half, steady, check, sorted(written)
        wanted, reasons = [], []
        error = largest_relative_error(steady)
        if error > TARGET_RELATIVE_ERROR:
            wanted.append(next_realisations(n, error))
            reasons.append(f"largest standard error of C_l at l <= {TARGET_LMAX} {error:.0%} "
                           f"(target {TARGET_RELATIVE_ERROR:.0%})")
        if check["verdict"] == "unresolved":
            spread = max(2 * check["tests"][name][1] for name in check["unresolved"])
            wanted.append(next_realisations(n, spread, check["tolerance"]))
            reasons.append(f"step check unresolved ({', '.join(check['unresolved'])}: two "
                           f"errors up to {spread:.0%}, tolerance {check['tolerance']:.0%})")
        if not wanted:
            return measurement, half, steady, check, sorted(written)
        following = max(wanted)
        stderr_note("spectrum", f"{'; '.join(reasons)} with {n} realisations; extending to "
                                f"{following} (at most {MAX_TRANSFER_REALISATIONS})")
        n = following


def _transfer_spectrum(args, where: dict) -> int:
    from ..particles.one_step import floor_rows
    from ..particles.transfer import TransferSettings
    from ..particles.transfer_run import default_store
    from ..theory.spectrum import make_spectrum
    from ..validation.one_step_check import step_check

    settings = TransferSettings(
        alpha=args.alpha, lmax=args.lmax,
        n_theta=4 * (args.lmax + 1) if args.grid is None else args.grid, n_modes=args.modes,
        seed=args.seed, spectrum=args.spectrum, k0=args.k0, k1=args.k1,
        precision=args.precision,
        **({} if args.step_fraction is None else {"step_fraction": args.step_fraction}))
    floor_rows(settings.n_theta, settings.lmax)       # a grid with room for its floor, or refused now
    where["store"] = store = args.store or str(default_store(settings))
    start = time.perf_counter()
    measurement, half, steady, check, written = _measure(settings, args, store)
    described = make_spectrum(settings.spectrum, settings.k0, settings.k1).describe()
    # the quenched closure's own step check: the drift from the half step (the mean test
    # belongs to the Markov closure)
    quenched_check = step_check(half, measurement, settings.lmax, closure="quenched")
    quenched = _quenched_json(measurement, quenched_check, settings.lmax)
    out = {"ell": steady["ell"].tolist(), "C_ell": steady["C"].tolist(),
           "C_ell_err": steady["C_err"].tolist(), "K": steady["K"], "K_err": steady["K_err"],
           "P1": float(measurement.p1.mean()),
           "P1_err": float(measurement.p1.std(ddof=1) / measurement.realisations ** 0.5),
           "method": "transfer", "realisations": measurement.realisations,
           "step_check": _check_json(check), "quenched": quenched,
           "notes": _transfer_notes(steady, check, quenched, quenched_check),
           "store": store,
           "written": len(written), "skipped": measurement.realisations - len(written),
           "wall_seconds": round(time.perf_counter() - start, 3),
           "settings": dict(described, **settings.as_dict(), delta_t=settings.delta_t,
                            n_particles=settings.n_particles,
                            units="c = 1, lengths in r_g, times in 1/Omega, k in 1/r_g; C_ell "
                                  "in (r_g |G|)^2 with |G| = 1/r_g; K in r_g c")}
    sys.stdout.write(checked_json(out) + "\n")
    return 0


def register(subparsers) -> None:
    """Add the ``spectrum`` subcommand (steady-state C_l, analytic or one-step)."""
    from ..particles.tracking_defaults import DEFAULT_STEP_FRACTION
    from ..theory.spectrum import SPECTRA

    p = subparsers.add_parser(
        "spectrum", help="steady-state angular power spectrum C_l (paper eq. 3.7, or the "
                         "one-step recursion with test particles) as JSON",
        description="Steady-state C_l. --method qlt (default): quasi-linear theory with pair "
                    "correlations; units: c = 1, lengths in r_g; K|G|^2 in units of c k0; the "
                    "theory needs alpha = k1 c Delta T >> 1 (alpha >= 10 accepted). "
                    "--method transfer: the steady state C = (1 - M)^-1 (S + m_inf X) of the "
                    "exact one-step recursion of the back-tracked anisotropy, every term "
                    "measured by test particles back-tracked for Delta T = alpha/k1 "
                    "(qltlib/particles/one_step.py), on any spectrum and band that qlt simulate "
                    "accepts, with jackknife errors over field realisations and the grid's "
                    "aliasing floor subtracted (estimated from its rows l >= 3 n_theta/4, which "
                    "must lie above lmax). VALIDATED FOR THE FLAT SPECTRUM: on the white "
                    "spectrum the predicted K falls by 0.30 +- 0.05 r_g c from alpha = 1600 to "
                    "3200 and by 0.05 +- 0.06 from 3200 to 6400, and the shape at l >= 2 no "
                    "longer changes with alpha from 1600 on; at the default 3200 through the "
                    "long ensemble's own fields chi2 = 17.6 for 16 multipoles (p = 0.35). "
                    "Spectra whose particles keep their memory longer need longer steps: "
                    "logflat agrees from alpha 6400 on, kolmogorov and flat3d still change with "
                    "alpha at 128000 (chapter 'A parameter-free predictor'); flat3d's transport "
                    "settles at K = 169 +- 6 r_g c by Omega t 10240, where alpha 128000 puts it "
                    "(172 +- 5), while kolmogorov on the band 1e-3..1e2 has no steady state "
                    "within Omega t 20480 (its particles stay in their realisation's "
                    "large-scale field; their diffusion peaks at 28 +- 3 and falls to 15 +- 2), "
                    "so no alpha predicts it. Every result "
                    "carries a STEP CHECK (step_check, and a note): the same particles at half "
                    "the step, tracked at no extra cost; it fails, naming what changed by more "
                    "than 10 % beyond two errors, where the step is too short for the "
                    "spectrum's memory, and is unresolved where the errors are too large to "
                    "tell (on the stored scans it passes for white at alpha 3200 and fails "
                    "wherever the prediction misses its ensemble: every kolmogorov step up to "
                    "128000, flat3d up to 64000, logflat up to 1600). Beside it, from the same "
                    "particles, the QUENCHED closure (quenched: the rest of the path meets the "
                    "same field realisation): the other end of memory; where the two agree the "
                    "step outlasts the memory, where they differ it does not (the kolmogorov "
                    "ensemble lies between them at every alpha from 3200 to 25600 and they meet "
                    "at 128000; the flat3d one, still rising, above both); it carries its own "
                    "step check (quenched.step_check). "
                    "The realisations "
                    "are kept in the "
                    "part store of qlt transfer for the same settings (a second call takes "
                    "seconds); Ctrl-C keeps the finished ones and the same command resumes.",
        epilog=epilog("spectrum"))
    p.add_argument("--method", choices=["qlt", "transfer"], default="qlt",
                   help="qlt: the analytic theory; transfer: the one-step recursion measured by "
                        "test particles (default: qlt)")
    p.add_argument("--spectrum", default="white", choices=list(SPECTRA),
                   help="turbulence spectrum g(k)")
    p.add_argument("--k0", type=number_type("k0", positive=True), default=1e-3,
                   help="smallest wavenumber k0, units 1/r_g")
    p.add_argument("--k1", type=number_type("k1", positive=True), default=1e2,
                   help="largest wavenumber k1, units 1/r_g")
    p.add_argument("--alpha", type=number_type("alpha", positive=True), default=None,
                   help="alpha = k1 c Delta T, dimensionless (default: 50 with --method qlt, "
                        "which accepts alpha >= 10; 3200 with --method transfer, the step "
                        "Delta T = alpha/k1 of the one-step recursion, from which its result "
                        "on the white spectrum no longer depends on alpha)")
    p.add_argument("--lmax", type=integer_type("lmax", 2), default=None,
                   help="highest multipole of the truncated system (default: 100 with --method "
                        "qlt, memory ~ lmax^3; 16 with --method transfer, the L of the recursion, "
                        "cost ~ (L+1)^2 through the grid)")
    # --method qlt only
    p.add_argument("--kg2", type=number_type("kg2", positive=True), default=None,
                   help="K|G|^2, units c k0 (--method qlt; default: 1e-4)")
    p.add_argument("--no-coupling", action="store_true",
                   help="diagrams 0 and 1a only, no pair correlations (--method qlt; default: "
                        "with them)")
    p.add_argument("--source", default=None, choices=["derived", "paper"],
                   help="source factor s_1/(K|G|^2): derived 8pi/3 or the paper's printed 8pi/9 "
                        "(--method qlt; default: derived)")
    # --method transfer only
    p.add_argument("--modes", type=integer_type("modes", 1), default=None,
                   help="plane waves per realisation (--method transfer; default: 256, as qlt "
                        "simulate and the long ensembles the predictor is checked against)")
    p.add_argument("--seed", type=integer_type("seed", 0), default=None,
                   help="ensemble seed, realisation i: SeedSequence(seed, spawn_key=(i,)) "
                        "(--method transfer; default: 2019)")
    p.add_argument("--step-fraction", type=number_type("step-fraction", positive=True),
                   default=None,
                   help="time step as a fraction of min(1/k_max, r_g), dimensionless (--method "
                        f"transfer; default: {DEFAULT_STEP_FRACTION})")
    p.add_argument("--precision", choices=["float64", "float32"], default=None,
                   help="working precision of the per-mode arithmetic in the tracking kernel "
                        "(--method transfer; default: float32)")
    p.add_argument("--grid", type=integer_type("grid", 2), default=None,
                   help="Gauss-Legendre rings n_theta, 2 n_theta^2 particles (--method transfer; "
                        "default: 4 (lmax + 1), 68 rings at lmax 16, which agrees with 100 rings "
                        "within the errors once the aliasing floor is subtracted; on qlt "
                        "transfer's 2 (lmax + 1) the floor's rows still hold signal at large "
                        "alpha, C_8 17 %% low at alpha 1600)")
    p.add_argument("--realisations", type=integer_type("realisations", 2), default=None,
                   help=f"field realisations (--method transfer; default: "
                        f"{FIRST_TRANSFER_REALISATIONS}, extended until the largest standard "
                        f"error of C_l at l <= {TARGET_LMAX} is at most "
                        f"{100 * TARGET_RELATIVE_ERROR:.0f} %% and the step check is resolved "
                        f"(two errors of each change it tests at most its tolerance), at most "
                        f"{MAX_TRANSFER_REALISATIONS}; see benchmarks/README.md; more extend "
                        f"the store)")
    p.add_argument("--workers", type=integer_type("workers", 1), default=None,
                   help="worker processes; 1 uses all cores through numba threads (--method "
                        "transfer; default: 1)")
    p.add_argument("--store", default=None,
                   help="part store, one verified file per finished realisation, resumable, "
                        "shared with qlt transfer (--method transfer; default: a cache directory "
                        "keyed by the settings, under $QLT_CACHE_DIR or ~/.cache/qltlib/transfer)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar on stderr (--method transfer; default: a bar)")
    p.set_defaults(func=_spectrum_command)
