"""Run (or resume) a measurement of the transition matrix: one realisation per part, on disk.

``qlt transfer`` measures ``M^sim_{l l0}(Delta T)`` (:mod:`qltlib.particles.transfer`) on many
field realisations. Each realisation is one part of the shared runner
(:mod:`qltlib.particles.runner`): computed in a worker process, written atomically to a *part
store* and verified on every later read, like the files of an ensemble
(:mod:`qltlib.particles.files`). Ctrl-C at any moment keeps the finished parts; the same
command resumes.

Store
-----
``DIR/manifest.json`` (the :class:`~qltlib.particles.transfer.TransferSettings`, the number of
realisations asked for) and ``DIR/matrix_00042.npz``: ``index``, ``matrix`` (float64,
``(n_theta, L+1)``: ``M_{l l0}`` of that realisation, rows ``l = 0..n_theta-1``) and the
settings (JSON). Without ``--store`` the directory is a cache keyed by the settings,
``$QLT_CACHE_DIR/transfer/<key>`` (:func:`default_store`), so a repeated or interrupted command
finds its parts again.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import numpy as np

from ..machine import usable_cores
from ..paths import cache_dir
from .estimates import announce_run, tracking_seconds, transfer_memory
from .files import (
    CorruptRealisationError,
    indices_matching,
    prepare_run_directory,
    read_manifest_json,
    read_part,
    write_atomically,
)
from .runner import TaskSpec, check_workers, run_parts, stderr_line
from .tracking_defaults import kernel_compile_notice
from .transfer import (
    TransferMeasurement,
    TransferSettings,
    aliasing_scale,
    measure_realisation,
)

PART_PATTERN = re.compile(r"^matrix_(\d{5})\.npz$")
PART_FIELDS = ("index", "matrix", "settings")
FILE_CONTENT = "matrix float64 (n_theta, lmax+1): M_{l l0} of one realisation, rows l = 0..n_theta-1"


def _defaults() -> dict:
    return {f.name: f.default for f in dataclasses.fields(TransferSettings)}


def settings_from_dict(settings: dict) -> TransferSettings:
    """:class:`TransferSettings` from a manifest; ValueError (one line) on unknown or bad entries."""
    unknown = sorted(set(settings) - set(_defaults()))
    if unknown:
        raise ValueError(f"unknown transfer settings {', '.join(unknown)}")
    try:
        return TransferSettings(**settings)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def default_store(settings: TransferSettings) -> Path:
    """The cache directory of a measurement with these settings (same settings, same directory)."""
    key = hashlib.sha256(json.dumps(settings.as_dict(), sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "transfer" / f"{settings.spectrum}_alpha{settings.alpha:g}_{key}"


def part_path(store, index: int) -> Path:
    """``DIR/matrix_NNNNN.npz`` of realisation ``index``."""
    return Path(store) / f"matrix_{int(index):05d}.npz"


def existing_parts(store) -> list[int]:
    """Indices of the part files in ``store`` (sorted; not yet verified)."""
    return indices_matching(store, PART_PATTERN)


class MatrixTask:
    """One realisation of a transfer measurement as a part of the runner."""

    def __init__(self, out_dir, settings: dict):
        self.out_dir = Path(out_dir)
        self.settings = settings_from_dict(settings)

    def compute(self, index: int) -> dict:
        return {"index": int(index), "matrix": measure_realisation(self.settings, index)}

    def write(self, result: dict) -> None:
        write_atomically(part_path(self.out_dir, result["index"]),
                         {"index": np.int64(result["index"]),
                          "matrix": np.asarray(result["matrix"], dtype=np.float64),
                          "settings": np.str_(json.dumps(self.settings.as_dict(), sort_keys=True))})


def load_part(store, index: int, settings: TransferSettings) -> np.ndarray:
    """Read and verify one part: readable, its settings and index, shape and finite entries.

    Raises
    ------
    CorruptRealisationError
        One line naming the file and what is wrong with it.
    """
    arrays, contradiction = read_part(part_path(store, index), store, index, settings.as_dict(),
                                      PART_FIELDS, _defaults())
    matrix = arrays["matrix"]
    shape = (settings.n_theta, settings.lmax + 1)
    if matrix.shape != shape:
        raise contradiction(f"matrix has shape {matrix.shape}, expected {shape}")
    if not np.all(np.isfinite(matrix)):
        raise contradiction("matrix holds non-finite values")
    return matrix


def load_store(store, n_realisations: int | None = None, report=None) -> TransferMeasurement:
    """The measurement held by a part store: its verified parts below ``n_realisations``
    (default: the manifest's number); a corrupt part is reported and left out.

    Raises
    ------
    ValueError
        No manifest, bad settings, or no verified part.
    """
    manifest = read_manifest_json(store, "transfer")
    settings = settings_from_dict(manifest["settings"])
    limit = int(manifest["realisations"] if n_realisations is None else n_realisations)
    matrices = []
    for index in existing_parts(store):
        if index >= limit:
            continue
        try:
            matrices.append(load_part(store, index, settings))
        except CorruptRealisationError as exc:
            if report is not None:
                report(f"{exc}; left out")
    if not matrices:
        raise ValueError(f"no verified realisation in {store}")
    return TransferMeasurement(settings=settings, per_realisation=np.stack(matrices),
                               aliasing_scale=aliasing_scale(settings))


def verify_parts(store, settings: TransferSettings, n_realisations: int, report) -> tuple:
    """Verified part indices below ``n_realisations``, and those found corrupt (deleted)."""
    good, repaired = [], []
    for index in existing_parts(store):
        if index >= n_realisations:
            continue
        try:
            load_part(store, index, settings)
            good.append(index)
        except CorruptRealisationError as exc:
            report(f"{exc}; recomputing it")
            part_path(store, index).unlink(missing_ok=True)
            repaired.append(index)
    return good, repaired


def run_transfer(settings: TransferSettings, n_realisations: int, store=None, workers: int = 1,
                 progress: bool = True, report=stderr_line) -> dict:
    """Measure ``M^sim`` on realisations ``0 .. n_realisations-1``, resuming from ``store``.

    Parameters
    ----------
    settings : TransferSettings
    n_realisations : int
        Field realisations (parts).
    store : path, optional
        Part store (created; its manifest must match ``settings``); default
        :func:`default_store`.
    workers : int
        Worker processes (:func:`qltlib.particles.runner.run_parts`).
    progress : bool
        tqdm progress bar on stderr.
    report : callable
        Receives one line per corrupt part found, the estimate of a run longer than
        :data:`~qltlib.particles.estimates.LONG_RUN_SECONDS`, and the first-use compile notice.

    Returns
    -------
    dict
        ``measurement`` (:class:`~qltlib.particles.transfer.TransferMeasurement` over the
        ``n_realisations`` parts), ``store``, ``written``, ``skipped``, ``repaired`` (indices).

    Raises
    ------
    ValueError, WorkerError, KeyboardInterrupt
        As :func:`qltlib.particles.runner.run_parts`; finished parts stay in the store.
    """
    if isinstance(n_realisations, bool) or int(n_realisations) != n_realisations or n_realisations < 1:
        raise ValueError(f"number of realisations must be a positive integer, got {n_realisations!r}")
    n_realisations, workers = int(n_realisations), check_workers(workers)
    store = Path(default_store(settings) if store is None else store)
    prepare_run_directory(store, settings.as_dict(), n_realisations, _defaults(),
                          {"file_content": FILE_CONTENT}, option="--store")
    skipped, repaired = verify_parts(store, settings, n_realisations, report)
    todo = [i for i in range(n_realisations) if i not in set(skipped)]
    seconds = tracking_seconds(settings.n_particles, settings.delta_t, settings,
                               max(1, usable_cores() // workers))
    announce_run(report, seconds, len(todo), workers, workers * transfer_memory(settings))
    if todo and (notice := kernel_compile_notice()):
        report(notice)
    spec = TaskSpec("qltlib.particles.transfer_run:MatrixTask", {"settings": settings.as_dict()})
    written = run_parts(spec, store, todo, workers=workers, progress=progress, total=n_realisations)
    return {"measurement": load_store(store, n_realisations, report), "store": str(store),
            "written": written, "skipped": skipped, "repaired": repaired}

