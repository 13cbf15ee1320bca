"""Run (or resume) a test-particle ensemble: one realisation per part of the shared runner.

Local runs compute every realisation in worker processes (:mod:`qltlib.particles.runner`):
an interrupt at any moment ends the run within a second, keeps the finished files and leaves
neither workers nor temporary files. The files are those of :mod:`qltlib.particles.store`.
"""
from __future__ import annotations

import math
import time

from .estimates import check_simulation_size
from .runner import (
    TaskSpec,
    check_realisations,
    check_workers,
    connect_dask,
    run_announced,
    stderr_line,
)
from .settings import SimulationSettings, run_realisation
from .store import (
    existing_realisations,
    existing_summaries,
    prepare_output,
    verify_existing,
    write_results,
)


class RealisationTask:
    """One realisation of an ensemble as a part of :func:`~qltlib.particles.runner.run_parts`.

    ``compute(index)`` back-tracks the particles (:func:`run_realisation`); ``write(result)``
    writes the realisation's files (:func:`~qltlib.particles.store.write_results`).
    """

    def __init__(self, out_dir, settings: dict, keep_raw: bool = True):
        self.out_dir = out_dir
        self.settings = SimulationSettings.from_dict(settings)
        self.keep_raw = bool(keep_raw)

    def compute(self, index: int) -> dict:
        return run_realisation(self.settings, index)

    def write(self, result: dict) -> None:
        write_results(self.out_dir, result, self.settings, self.keep_raw)


def run_ensemble(settings: SimulationSettings, out_dir, n_realisations: int, scheduler=None,
                 workers: int = 1, progress: bool = True, scheduler_timeout: float = 10.0,
                 report=stderr_line, keep_raw: bool = True) -> dict:
    """Run realisations ``0 .. n_realisations-1`` that are not yet in ``out_dir``.

    Parameters
    ----------
    settings : SimulationSettings
    out_dir : path
        Output directory (created; its manifest must match ``settings``).
    n_realisations : int
        Size of the ensemble.
    scheduler : str or None
        ``None``: run locally in ``workers`` worker processes (the tracking kernel never runs in
        this process, so Ctrl-C is safe at any moment; see :mod:`qltlib.particles.runner`).
        One worker uses every core (numba threads over particles); several share them.
        ``"tcp://host:port"``: submit to an existing Dask cluster
        (:class:`dask.distributed.Client`); results are written here as they arrive.
    workers : int
        Local worker processes (ignored with a scheduler).
    progress : bool
        Show a tqdm progress bar on stderr.
    scheduler_timeout : float
        Seconds to wait for the Dask scheduler.
    report : callable
        Receives one line per corrupt file found, and one on the expected duration of a run
        longer than :data:`LONG_RUN_SECONDS` (default: print them on stderr).
    keep_raw : bool
        Keep the raw file (``delta_r``, directions) of each realisation next to its summary.
        ``False`` writes the summary only (what :func:`summarize` needs, about 1/30 of the size
        at nside 16); a realisation then counts as finished when its summary verifies, and a
        later run with ``keep_raw=True`` recomputes the raw files (identical: same seeds).

    Returns
    -------
    dict
        ``out``, ``written`` (indices written now), ``skipped`` (verified files already present),
        ``repaired`` (corrupt files found and recomputed), ``total`` (finished realisations in
        the directory, counted by their summary files).

    Raises
    ------
    ValueError
        Bad settings, mismatched or corrupt manifest, a run too large for this machine, an
        unusable output directory, or an unreachable scheduler.
    WorkerError
        A worker process died (e.g. killed for memory) or failed on a realisation.
    KeyboardInterrupt
        After the worker processes are gone and their temporary files removed.
    """
    n_realisations, workers = check_realisations(n_realisations), check_workers(workers)
    if not (math.isfinite(scheduler_timeout) and scheduler_timeout > 0):
        raise ValueError(f"scheduler timeout must be a positive number of seconds, got {scheduler_timeout!r}")
    estimate = check_simulation_size(settings, 1 if scheduler else workers)
    out_dir = prepare_output(out_dir, settings, n_realisations, keep_raw)
    skipped, repaired = verify_existing(out_dir, settings, n_realisations, report, keep_raw)
    present = set(skipped)
    todo = [i for i in range(n_realisations) if i not in present]
    client = connect_dask(scheduler, scheduler_timeout) if scheduler and todo else None
    spec = TaskSpec("qltlib.particles.ensemble:RealisationTask",
                    {"settings": settings.as_dict(), "keep_raw": bool(keep_raw)})
    written = run_announced(spec, out_dir, todo, n_realisations,
                            estimate["seconds_per_realisation"], estimate["bytes"],
                            workers=workers, client=client, progress=progress, report=report)
    return {"out": str(out_dir), "written": written, "skipped": skipped, "repaired": repaired,
            "total": len(set(existing_realisations(out_dir)) | set(existing_summaries(out_dir)))}


def timed_realisation(settings: SimulationSettings, index: int = 0) -> float:
    """Wall time (s) of one realisation (used by the benchmark script)."""
    start = time.perf_counter()
    run_realisation(settings, index)
    return time.perf_counter() - start
