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
realisations asked for) and ``DIR/matrix_00042.npz``: ``index``, the settings (JSON) and every
term of the one-step recursion of that realisation (:mod:`qltlib.particles.one_step`), all from
the same back-tracking of the same test particles: ``matrix`` (float64, ``(n_theta, L+1)``:
``M_{l l0}``, rows ``l = 0..n_theta-1``), ``source`` and ``cross`` (``(n_theta,)``: ``S_l``,
``X_l``), ``m1``, ``p1``, ``msd1`` and ``seconds`` (scalars), and the same terms of the same
particles at the half step (``half_matrix`` ... ``half_msd1``, and ``half_time``: the
integration step nearest below ``Delta T / 2``, :func:`~qltlib.particles.transfer.half_step_time`).
``qlt transfer`` reads ``M`` (:func:`load_store`), ``qlt spectrum --method transfer`` every term
(:func:`load_one_step_store`) and checks its step against the half step, so both share one
store for the same settings. Without
``--store`` the directory is a cache keyed by the settings, ``$QLT_CACHE_DIR/transfer/<key>``
(:func:`default_store`), so a repeated or interrupted command finds its parts again.

A part written before the one-step terms or the half-step terms were stored is *outdated*: a
run reports it in one line and measures that realisation again (the same field and particles,
so the same terms at ``Delta T``); a loader leaves it out with the same line.
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
from .estimates import tracking_seconds, transfer_memory
from .files import (
    CorruptRealisationError,
    OutdatedPartError,
    indices_matching,
    prepare_run_directory,
    read_manifest_json,
    read_part,
    report_bad_parts,
    verify_store_parts,
    write_atomically,
)
from .one_step import HALF_PREFIX, TENSOR_ARRAYS, from_realisations, measure_step_realisation
from .runner import TaskSpec, check_realisations, check_workers, run_announced, stderr_line
from .transfer import (
    TransferMeasurement,
    TransferSettings,
    aliasing_scale,
)

PART_PATTERN = re.compile(r"^matrix_(\d{5})\.npz$")
#: arrays of a part written before the one-step terms were stored (still recognised)
OLD_PART_FIELDS = ("index", "matrix", "settings")
#: the one-step terms every part holds besides ``OLD_PART_FIELDS``: name -> shape (``None``:
#: ``(n_theta,)``, ``()``: a scalar, ``"matrix"``: that of ``matrix``, ``"gram"``:
#: ``(n_theta, 6, 6)``); the ``half_`` terms are those of the same particles at the half step
#: (the step check of ``qlt spectrum``)
_TERM_SHAPES = {"source": None, "cross": None, "m1": (), "p1": (), "msd1": (),
                "mean_tensor": (3, 3), "direction_tensor": (3, 3), "residual_gram": "gram"}
STEP_FIELDS = {**_TERM_SHAPES, "seconds": (), HALF_PREFIX + "matrix": "matrix",
               **{HALF_PREFIX + name: shape for name, shape in _TERM_SHAPES.items()},
               "half_time": ()}
PART_FIELDS = OLD_PART_FIELDS + tuple(STEP_FIELDS)
FILE_CONTENT = ("float64 arrays of one realisation, from one back-tracking: matrix (n_theta, "
                "lmax+1) M_{l l0}, rows l = 0..n_theta-1; source, cross (n_theta,) S_l, X_l; "
                "scalars m1, p1, msd1, seconds; (3, 3) mean_tensor, direction_tensor and "
                "(n_theta, 6, 6) residual_gram of the quenched closure; the same terms of the "
                "same particles at the half step half_time (1/Omega) as half_matrix, half_source, half_cross, half_m1, "
                "half_p1, half_msd1, half_mean_tensor, half_direction_tensor, "
                "half_residual_gram (qltlib.particles.one_step)")


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
        # every one-step term from one back-tracking (M is measure_realisation's, bit for bit)
        return {"index": int(index), **measure_step_realisation(self.settings, index, half_step=True)}

    def write(self, result: dict) -> None:
        arrays = {name: np.asarray(result[name], dtype=np.float64) for name in ("matrix", *STEP_FIELDS)}
        write_atomically(part_path(self.out_dir, result["index"]),
                         {"index": np.int64(result["index"]), **arrays,
                          "settings": np.str_(json.dumps(self.settings.as_dict(), sort_keys=True))})


def load_part_terms(store, index: int, settings: TransferSettings) -> dict:
    """Read and verify one part: readable, its settings and index, every array's shape, finite.

    Returns
    -------
    dict
        ``matrix`` and the one-step terms of :data:`STEP_FIELDS` (float64 arrays).

    Raises
    ------
    OutdatedPartError
        The part was written before the one-step terms were stored (``M`` alone).
    CorruptRealisationError
        One line naming the file and what is wrong with it.
    """
    arrays, contradiction = read_part(part_path(store, index), store, index, settings.as_dict(),
                                      OLD_PART_FIELDS, _defaults())
    absent = [name for name in STEP_FIELDS if name not in arrays]
    if absent:
        what = ("direction-resolved" if all(name.removeprefix(HALF_PREFIX) in TENSOR_ARRAYS
                                            for name in absent)
                else "half-step" if all(name.startswith(HALF_PREFIX) for name in absent)
                else "one-step")
        raise OutdatedPartError(part_path(store, index).name,
                                f"was written by an older qltlib (without the {what} terms "
                                f"{', '.join(absent)})")
    matrix = (settings.n_theta, settings.lmax + 1)
    shapes = {"matrix": matrix,
              **{name: (settings.n_theta,) if shape is None else matrix if shape == "matrix"
                 else (settings.n_theta, 6, 6) if shape == "gram" else shape
                 for name, shape in STEP_FIELDS.items()}}
    terms = {}
    for name, shape in shapes.items():
        value = arrays[name]
        if value.shape != shape:
            raise contradiction(f"{name} has shape {value.shape}, expected {shape}")
        if not np.all(np.isfinite(value)):
            raise contradiction(f"{name} holds non-finite values")
        terms[name] = value.astype(np.float64)
    return terms


def load_part(store, index: int, settings: TransferSettings) -> np.ndarray:
    """``M_{l l0}`` of one part, verified as :func:`load_part_terms` (which see)."""
    return load_part_terms(store, index, settings)["matrix"]


def _stored_parts(store, n_realisations, report) -> tuple:
    """Settings and ``{index: terms}`` of the verified parts of ``store`` below ``n_realisations``
    (default: the manifest's number); a corrupt or outdated part is reported and left out."""
    manifest = read_manifest_json(store, "transfer")
    settings = settings_from_dict(manifest["settings"])
    limit = int(manifest["realisations"] if n_realisations is None else n_realisations)
    parts, problems = {}, []
    for index in existing_parts(store):
        if index >= limit:
            continue
        try:
            parts[index] = load_part_terms(store, index, settings)
        except CorruptRealisationError as exc:
            problems.append((index, exc))
    report_bad_parts(report, problems, ("left out", "left out"))
    if not parts:
        raise ValueError(f"no verified realisation in {store}")
    return settings, parts


def load_store(store, n_realisations: int | None = None, report=None) -> TransferMeasurement:
    """The measurement of ``M`` held by a part store: its verified parts below ``n_realisations``
    (default: the manifest's number); a corrupt or outdated part is reported and left out.

    Raises
    ------
    ValueError
        No manifest, bad settings, or no verified part.
    """
    return _matrix_measurement(*_stored_parts(store, n_realisations, report))


def _matrix_measurement(settings: TransferSettings, parts: dict) -> TransferMeasurement:
    """The :class:`TransferMeasurement` of ``M`` over verified parts ``{index: terms}``."""
    return TransferMeasurement(settings=settings,
                               per_realisation=np.stack([terms["matrix"] for terms in parts.values()]),
                               aliasing_scale=aliasing_scale(settings))


def load_one_step_store(store, n_realisations: int | None = None, report=None,
                        half_step: bool = False):
    """Every one-step term held by a part store, as a
    :class:`~qltlib.particles.one_step.OneStepMeasurement` (its verified parts below
    ``n_realisations``, default the manifest's number; corrupt or outdated parts are reported
    through ``report`` and left out); with ``half_step``, that of the half-step terms.

    Raises
    ------
    ValueError
        No manifest, bad settings, or no verified part.
    """
    settings, parts = _stored_parts(store, n_realisations, report)
    return from_realisations(settings, parts.values(), parts.keys(), half_step=half_step)


def verify_parts(store, settings: TransferSettings, n_realisations: int, report) -> tuple:
    """The verified parts below ``n_realisations`` as ``{index: terms}``
    (:func:`load_part_terms`), and the indices of those found corrupt (deleted)."""
    return verify_store_parts(store, PART_PATTERN, n_realisations,
                              lambda index: load_part_terms(store, index, settings),
                              lambda index: part_path(store, index), report)


def run_transfer(settings: TransferSettings, n_realisations: int, store=None, workers: int = 1,
                 progress: bool = True, report=stderr_line) -> dict:
    """Measure ``M^sim`` on realisations ``0 .. n_realisations-1``, resuming from ``store``.

    As :func:`run_store`, with ``measurement`` the
    :class:`~qltlib.particles.transfer.TransferMeasurement` of ``M`` over the parts.
    """
    run = run_store(settings, n_realisations, store, workers, progress, report)
    return {"measurement": _matrix_measurement(settings, run.pop("parts")), **run}


def run_one_step(settings: TransferSettings, n_realisations: int, store=None, workers: int = 1,
                 progress: bool = True, report=stderr_line) -> dict:
    """Measure every one-step term on realisations ``0 .. n_realisations-1``, resuming from
    ``store`` (the same store as :func:`run_transfer` for the same settings).

    As :func:`run_store`, with ``measurement`` the
    :class:`~qltlib.particles.one_step.OneStepMeasurement` over the parts and ``half_step`` that
    of the same particles at the half step.
    """
    run = run_store(settings, n_realisations, store, workers, progress, report)
    parts = run.pop("parts")
    return {"measurement": from_realisations(settings, parts.values(), parts.keys()),
            "half_step": from_realisations(settings, parts.values(), parts.keys(), half_step=True),
            **run}


def run_store(settings: TransferSettings, n_realisations: int, store=None, workers: int = 1,
              progress: bool = True, report=stderr_line) -> dict:
    """Fill the part store with realisations ``0 .. n_realisations-1`` (resuming).

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
        ``store``, ``written``, ``skipped``, ``repaired`` (indices; outdated parts count as
        repaired) and ``parts``: ``{index: terms}`` of every realisation, in index order, each
        file read and verified once.

    Raises
    ------
    ValueError, WorkerError, KeyboardInterrupt
        As :func:`qltlib.particles.runner.run_parts`; finished parts stay in the store.
    """
    n_realisations, workers = check_realisations(n_realisations), check_workers(workers)
    store = Path(default_store(settings) if store is None else store)
    prepare_run_directory(store, settings.as_dict(), n_realisations, _defaults(),
                          {"file_content": FILE_CONTENT}, option="--store")
    parts, repaired = verify_parts(store, settings, n_realisations, report)
    skipped = sorted(parts)
    todo = [i for i in range(n_realisations) if i not in parts]
    seconds = tracking_seconds(settings.n_particles, settings.delta_t, settings,
                               max(1, usable_cores() // workers))
    spec = TaskSpec("qltlib.particles.transfer_run:MatrixTask", {"settings": settings.as_dict()})
    written = run_announced(spec, store, todo, n_realisations, seconds,
                            workers * transfer_memory(settings), workers=workers,
                            progress=progress, report=report)
    parts.update((index, load_part_terms(store, index, settings)) for index in written)
    return {"store": str(store), "written": written, "skipped": skipped, "repaired": repaired,
            "parts": dict(sorted(parts.items()))}

