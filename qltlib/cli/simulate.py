"""``qlt simulate`` and ``qlt summarize``: the test-particle ensemble from the command line.

Registered into the main ``qlt`` parser by :mod:`qltlib.cli.main` through :func:`register`. Each
sub-command's ``func(args)`` prints one JSON document to stdout and returns an exit code; bad
input raises :class:`ValueError` with a one-line message (turned into exit code 2 by the main
CLI). Ctrl-C during ``simulate`` -- at any moment: the tracking runs in worker processes that
the command ends at once -- keeps the finished realisation files, prints one line to stderr and
returns 130; rerunning the same command resumes, after checking every file already there.
"""
from __future__ import annotations

import json
import sys
import time

from ..particles.tracking_defaults import (
    DEFAULT_MULTIRATE_TOLERANCE,
    DEFAULT_RESYNC_EVERY,
    DEFAULT_STEP_FRACTION,
    WORKING_PRECISION_NAMES,
)
from ..theory.spectrum import SPECTRA
from ..units import PAPER_K0, PAPER_K1
from .common import finished_parts
from .outputs import epilog


def parse_times(text: str) -> tuple:
    """Comma-separated positive times ``"10,20,40"`` -> ``(10.0, 20.0, 40.0)``."""
    try:
        values = tuple(float(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--times must be comma-separated numbers, got {text!r}") from None
    if not values:
        raise ValueError("--times must list at least one time")
    if any(not (v > 0) for v in values):
        raise ValueError(f"--times must be positive, got {text!r}")
    return values


def _finished_files(out) -> int:
    # a finished realisation has a raw file, a summary file (--no-raw) or both
    return finished_parts(out, ("realisation_", "summary_"))


#: options that make up a run's settings: taken from the manifest with --resume
_SETTING_OPTIONS = ("nside", "times", "modes", "seed", "spectrum", "k0", "k1", "step_fraction",
                    "resync_every", "precision", "multirate_tolerance", "realisations", "no_raw")
#: ensemble size of a new run when --realisations is not given
DEFAULT_REALISATIONS = 100


def cmd_simulate(args) -> int:
    """Run (or resume) an ensemble; print a JSON summary of what was done.

    Ctrl-C at any moment, from the imports on, ends with one line on stderr and exit code 130.
    """
    out = args.resume or args.out
    try:
        return _simulate(args, out)
    except KeyboardInterrupt:
        print(f"qlt simulate: interrupted; {_finished_files(out)} finished realisation files kept "
              f"in {out} (rerun the same command to resume)", file=sys.stderr)
        return 130


def _resumed_run(args, parser_defaults: dict):
    """Settings, ensemble size and raw-file choice of the run in ``--resume DIR``."""
    given = [name for name in _SETTING_OPTIONS if getattr(args, name) != parser_defaults[name]]
    if given:
        options = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ValueError(f"--resume takes every setting from {args.resume}/manifest.json; "
                         f"drop {options}")
    from ..particles.settings import SimulationSettings
    from ..particles.store import load_manifest, raw_files_kept

    manifest = load_manifest(args.resume)
    return (SimulationSettings.from_dict(manifest["settings"]), int(manifest["realisations"]),
            raw_files_kept(args.resume, manifest))


def _simulate(args, out) -> int:
    if args.resume:
        settings, realisations, keep_raw = _resumed_run(args, args.parser_defaults)
    else:
        from ..particles.settings import SimulationSettings
        settings = SimulationSettings(nside=args.nside, times=parse_times(args.times),
                                      n_modes=args.modes, seed=args.seed, spectrum=args.spectrum,
                                      k0=args.k0, k1=args.k1, step_fraction=args.step_fraction,
                                      resync_every=args.resync_every, precision=args.precision,
                                      multirate_tolerance=args.multirate_tolerance)
        realisations = DEFAULT_REALISATIONS if args.realisations is None else args.realisations
        keep_raw = not args.no_raw
    from ..particles.ensemble import run_ensemble
    from ..particles.runner import WorkerError

    start = time.perf_counter()
    try:
        report = run_ensemble(settings, out, realisations, scheduler=args.scheduler,
                              workers=args.workers, progress=not args.no_progress,
                              scheduler_timeout=args.scheduler_timeout,
                              report=lambda line: print(f"qlt simulate: {line}", file=sys.stderr,
                                                        flush=True),
                              keep_raw=keep_raw)
    except WorkerError as exc:           # not the input's fault: exit 1, still one line
        print(f"qlt simulate: error: {exc} ({_finished_files(out)} finished realisation files kept "
              f"in {out})", file=sys.stderr)
        return 1
    report["written"] = len(report["written"])
    report["skipped"] = len(report["skipped"])
    report["wall_seconds"] = round(time.perf_counter() - start, 3)
    report["settings"] = settings.as_dict()
    print(json.dumps(report))
    return 0


def cmd_summarize(args) -> int:
    """Print the ensemble summary of a simulation directory as JSON.

    With ``--write-summaries``: only give every raw file its summary file and print what was
    done (:func:`qltlib.particles.store.write_summaries`).
    """
    from ..particles.statistics import summarize
    from ..particles.store import write_summaries
    if args.write_summaries:
        if args.lmax is not None:
            raise ValueError("--write-summaries writes every multipole up to 3 nside - 1; drop --lmax")
        report = write_summaries(args.directory)
        report["written"], report["kept"] = len(report["written"]), len(report["kept"])
        print(json.dumps(report))
        return 0
    summary = summarize(args.directory, lmax=args.lmax,
                        report=lambda line: print(f"qlt summarize: {line}", file=sys.stderr))
    summary = _requested_times(summary)
    if summary["realisations"] < summary["expected"]:
        print(f"qlt summarize: note: incomplete ensemble, {summary['realisations']} of "
              f"{summary['expected']} realisations in {args.directory}", file=sys.stderr)
    if summary["realisations"] < 2:
        print("qlt summarize: note: one realisation has no standard error (printed as null)",
              file=sys.stderr)
    print(json.dumps(_nan_to_null(summary), allow_nan=False))
    return 0


def _requested_times(summary: dict) -> dict:
    """The summary for JSON: ``times`` as the settings request them (``640``), the times the
    step grid reached (``640.0000000000001``) under ``times_reached``; no per-realisation arrays.
    """
    reached = summary["times"]
    requested = summary["settings"].get("times", reached)
    out = {"times": requested if len(requested) == len(reached) else reached,
           "times_reached": reached}
    out.update((key, value) for key, value in summary.items()
               if key not in ("times", "per_realisation"))
    return out


def _nan_to_null(value):
    """``value`` with every NaN (an undefined standard error) replaced by ``None``: JSON has no NaN."""
    if isinstance(value, dict):
        return {k: _nan_to_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_null(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    return value


def register(subparsers) -> None:
    """Add the ``simulate`` and ``summarize`` sub-commands to an argparse ``subparsers`` object."""
    sim = subparsers.add_parser(
        "simulate", help="back-track test particles (one per HEALPix pixel) in an ensemble of fields",
        description="Back-track one particle per HEALPix pixel through N plane-wave turbulence "
                    "realisations; one file per realisation in --out (resumable).",
        epilog=epilog("simulate"))
    sim.add_argument("--nside", type=int, default=16,
                     help="HEALPix nside, a power of two; 12 nside^2 particles (default: %(default)s)")
    sim.add_argument("--realisations", type=int, default=None,
                     help=f"ensemble size, field realisations (default: {DEFAULT_REALISATIONS}; "
                          f"a larger number extends a run)")
    sim.add_argument("--times", default="10,20,40",
                     help="comma-separated back-tracking times Omega t, units 1/Omega (default: %(default)s)")
    sim.add_argument("--modes", type=int, default=256, help="plane waves per realisation (default: %(default)s)")
    sim.add_argument("--seed", type=int, default=2019, help="ensemble seed (default: %(default)s)")
    where = sim.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", help="output directory (created; required unless --resume; a rerun of the "
                            "same command resumes)")
    where.add_argument("--resume", metavar="DIR",
                       help="continue the run in DIR from its manifest alone (settings, ensemble "
                            "size, raw files or summaries only; required unless --out); a "
                            "finished run is left as it is")
    sim.add_argument("--spectrum", choices=sorted(SPECTRA), default="white",
                     help="shape of g(k) (default: %(default)s)")
    sim.add_argument("--k0", type=float, default=PAPER_K0,
                     help="smallest wavenumber, units 1/r_g (default: %(default)g)")
    sim.add_argument("--k1", type=float, default=PAPER_K1,
                     help="largest wavenumber, units 1/r_g (default: %(default)g)")
    sim.add_argument("--step-fraction", type=float, default=DEFAULT_STEP_FRACTION,
                     help="time step as a fraction of min(1/k_max, r_g), dimensionless (default: %(default)s)")
    sim.add_argument("--resync-every", type=int, default=DEFAULT_RESYNC_EVERY,
                     help="steps between exact phase re-synchronisations (default: %(default)s)")
    sim.add_argument("--precision", choices=WORKING_PRECISION_NAMES, default="float32",
                     help="working precision of the per-mode arithmetic in the tracking kernel; "
                          "positions, velocities and the Boris rotation are always float64, and "
                          "the ensembles of chapter 7 agree with float64 within their errors "
                          "(default: %(default)s)")
    sim.add_argument("--multirate-tolerance", type=float, default=DEFAULT_MULTIRATE_TOLERANCE,
                     help="multirate field evaluation: bound on each slowly varying mode's field "
                          "error between its updates, relative to its amplitude; 0 evaluates "
                          "every mode at every step (default: %(default)g)")
    sim.add_argument("--scheduler", default=None,
                     help="Dask scheduler address tcp://host:port (default: run locally)")
    sim.add_argument("--scheduler-timeout", type=float, default=10.0,
                     help="seconds to wait for the scheduler (default: %(default)s)")
    sim.add_argument("--workers", type=int, default=1,
                     help="local worker processes; 1 uses all cores through numba threads "
                          "(default: %(default)s)")
    sim.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    sim.add_argument("--no-raw", action="store_true",
                     help="keep only each realisation's summary file (C_l per gradient axis, shot "
                          "noise, mean-square displacement: all that `qlt summarize` needs), not "
                          "its raw displacements; rerunning without --no-raw recomputes them")
    sim.set_defaults(func=cmd_simulate)
    sim.set_defaults(parser_defaults={name: sim.get_default(name) for name in _SETTING_OPTIONS})

    summ = subparsers.add_parser(
        "summarize", help="ensemble C_l, shot noise and diffusion coefficient",
        description="Summarise a `qlt simulate` directory as JSON, from its per-realisation "
                    "summary files (computed from the raw files where missing).",
        epilog=epilog("summarize", "summarize --write-summaries"))
    summ.add_argument("directory", help="directory written by qlt simulate")
    summ.add_argument("--lmax", type=int, default=None,
                      help="largest multipole, at most 3 nside - 1 (default: 3 nside - 1)")
    summ.add_argument("--write-summaries", action="store_true",
                      help="only write the missing or corrupt summary files from the raw files "
                           "(converts a run made before summaries existed) and print a short "
                           "JSON report")
    summ.set_defaults(func=cmd_summarize)
