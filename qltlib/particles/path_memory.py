"""How long a back-tracked path remembers its direction and the field it started in.

The one-step recursion (chapter *A parameter-free predictor*) closes on an assumption about the
rest of a path: the Markov closure lets it meet a new, independent field; the quenched closure
lets it meet the same field again. Which one holds for a step ``Delta T`` is decided by two
memories of the back-tracked paths, both measured here from the particles of ``qlt simulate``
(the same fields, seeds and integrator as the long ensembles):

``velocity``
    ``C_v(t) = < p'(t) . p >``, the momentum direction ``p'`` at ``t`` back along the path
    against the direction ``p`` at the observer, averaged over directions and realisations; at
    ``t = Delta T`` it is the scalar ``P_1`` of a step.
``field``
    ``C_B(t) = sum_i < omega_i(r(t)) . omega_i(0) >_p / sum_i |omega_i(0)|^2``: the gyrovector
    where the path is at ``t`` against the one at the observer, in the same realisation ``i``
    (a ratio of means over realisations, so that it is 1 at ``t = 0`` and insensitive to
    the realisations' own field strength at the observer).
``diffusion``, ``slope``
    ``D(t) = < |Delta r|^2 > / (6 t)`` (units ``r_g c``), the running diffusion coefficient,
    and the interval slope ``Delta < |Delta r|^2 > / (6 Delta t)`` between consecutive output
    times (from ``t = 0`` for the first), which settles first where transport is diffusive.

Where ``C_v`` has decayed the step outlasts the direction memory; where ``C_B`` has not, the
rest of the path still sees the field of the step, which the Markov closure treats as new.

Every realisation is one part of the shared runner (:mod:`qltlib.particles.runner`): Ctrl-C keeps
the finished parts and the same call resumes. Store: ``DIR/manifest.json`` and
``DIR/memory_NNNNN.npz`` (``index``, the settings as JSON, ``field_overlap``,
``velocity_overlap``, ``square_displacement`` per output time, ``field_square``), by default in
the cache, keyed by the settings (:func:`default_memory_store`).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..machine import usable_cores
from ..paths import cache_dir
from .estimates import realisation_memory, realisation_seconds
from .files import prepare_run_directory, read_part, verify_store_parts, write_atomically
from .one_step import jackknife
from .runner import TaskSpec, check_realisations, check_workers, run_announced, stderr_line
from .settings import (
    SimulationSettings,
    pixel_directions,
    realisation_field,
    run_realisation,
    simulation_defaults,
)

PART_PATTERN = re.compile(r"^memory_(\d{5})\.npz$")
#: per-time arrays of a part, each ``(n_times,)``
TIME_FIELDS = ("field_overlap", "velocity_overlap", "square_displacement")
FILE_CONTENT = ("float64 arrays of one realisation: field_overlap, velocity_overlap, "
                "square_displacement (n_times,), field_square (scalar)")


def memory_terms(settings: SimulationSettings, index: int, field=None) -> dict:
    """The per-realisation sums of the path memories (the part of realisation ``index``).

    Parameters
    ----------
    settings : SimulationSettings
        Particles (one per HEALPix pixel), times and field, as for ``qlt simulate``.
    index : int
        Realisation (selects the seed).
    field : PlaneWaveTurbulence, optional
        Replaces the synthesised field (tests).

    Returns
    -------
    dict
        ``index``; ``field_overlap`` (``<omega(r(t)) . omega(0)>`` over the particles, units
        ``Omega^2``), ``velocity_overlap`` (``<p'(t) . p>``), ``square_displacement``
        (``<|Delta r(t)|^2>``, units ``r_g^2``), each ``(n_times,)``; ``field_square``
        (``|omega(0)|^2``, units ``Omega^2``).

    Notes
    -----
    The sums behind the field memory, chapter *A parameter-free predictor*,
    :math:numref:`eq-one-step-field-memory`; combined over realisations by
    :meth:`PathMemory.from_parts`.
    """
    if field is None:
        field = realisation_field(settings, index)
    track = run_realisation(settings, index, field=field)
    start = field.omega(np.zeros(3))
    directions = track["directions"]                     # p' at each time, (T, P, 3)
    at_observer = pixel_directions(settings.nside)       # p, (P, 3)
    return {
        "index": int(index),
        "field_overlap": np.mean(field.omega(track["delta_r"]) @ start, axis=1),
        "velocity_overlap": np.mean(np.einsum("tpi,pi->tp", directions, at_observer), axis=1),
        "square_displacement": np.mean(np.sum(track["delta_r"] ** 2, axis=2), axis=1),
        "field_square": float(start @ start),
    }


def default_memory_store(settings: SimulationSettings) -> Path:
    """The cache directory of these settings (same settings, same directory)."""
    key = hashlib.sha256(json.dumps(settings.as_dict(), sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "path_memory" / f"{settings.spectrum}_{key}"


def memory_part_path(store, index: int) -> Path:
    """``DIR/memory_NNNNN.npz`` of realisation ``index``."""
    return Path(store) / f"memory_{int(index):05d}.npz"


class MemoryTask:
    """One realisation of a path-memory measurement as a part of the runner."""

    def __init__(self, out_dir, settings: dict):
        self.out_dir = Path(out_dir)
        self.settings = SimulationSettings.from_dict(settings)

    def compute(self, index: int) -> dict:
        return memory_terms(self.settings, index)

    def write(self, result: dict) -> None:
        arrays = {name: np.asarray(result[name], dtype=np.float64)
                  for name in (*TIME_FIELDS, "field_square")}
        write_atomically(memory_part_path(self.out_dir, result["index"]),
                         {"index": np.int64(result["index"]), **arrays,
                          "settings": np.str_(json.dumps(self.settings.as_dict(), sort_keys=True))})


def load_memory_part(store, index: int, settings: SimulationSettings) -> dict:
    """Read and verify one part (readable, settings, index, shapes, finite); one-line
    :class:`~qltlib.particles.files.CorruptRealisationError` otherwise."""
    arrays, contradiction = read_part(memory_part_path(store, index), store, index,
                                      settings.as_dict(), (*TIME_FIELDS, "field_square"),
                                      simulation_defaults())
    terms = {}
    for name in (*TIME_FIELDS, "field_square"):
        value = arrays[name].astype(np.float64)
        shape = () if name == "field_square" else (len(settings.times),)
        if value.shape != shape:
            raise contradiction(f"{name} has shape {value.shape}, expected {shape}")
        if not np.all(np.isfinite(value)):
            raise contradiction(f"{name} holds non-finite values")
        terms[name] = value
    return terms


@dataclass(frozen=True)
class PathMemory:
    """The path memories of an ensemble, with standard errors over realisations.

    Attributes
    ----------
    times : ndarray
        Back-tracking times ``Omega t``.
    velocity, velocity_err : ndarray
        ``C_v(t) = <p'(t) . p>`` (dimensionless; the ``P_1`` of a step ``Delta T = t``).
    field, field_err : ndarray
        ``C_B(t)``, the gyrovector along the path against the one at the observer, ratio of
        means over realisations (dimensionless, 1 at ``t = 0``); jackknife errors.
    diffusion, diffusion_err : ndarray
        ``D(t) = <|Delta r|^2> / (6 t)``, units ``r_g c``.
    slope, slope_err : ndarray
        Interval slope ``Delta <|Delta r|^2> / (6 Delta t)`` ending at each time, ``r_g c``.
    realisations : int
    settings : dict
        :meth:`SimulationSettings.as_dict` of the particles.
    """

    times: np.ndarray
    velocity: np.ndarray
    velocity_err: np.ndarray
    field: np.ndarray
    field_err: np.ndarray
    diffusion: np.ndarray
    diffusion_err: np.ndarray
    slope: np.ndarray
    slope_err: np.ndarray
    realisations: int
    settings: dict

    @classmethod
    def from_parts(cls, settings: SimulationSettings, parts) -> "PathMemory":
        """Combine per-realisation :func:`memory_terms` (at least one)."""
        parts = list(parts)
        values = {name: np.array([p[name] for p in parts], dtype=float)
                  for name in (*TIME_FIELDS, "field_square")}
        n = len(parts)
        times = np.asarray(settings.times, dtype=float)

        def standard_error(x):
            return x.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(x.shape[1:], np.nan)

        field, field_err, _ = jackknife(values, lambda m: m["field_overlap"] / m["field_square"])
        msd = values["square_displacement"]
        diffusion = msd / (6.0 * times)
        slope = np.diff(msd, axis=1, prepend=0.0) / (6.0 * np.diff(times, prepend=0.0))
        return cls(times=times, velocity=values["velocity_overlap"].mean(axis=0),
                   velocity_err=standard_error(values["velocity_overlap"]),
                   field=field, field_err=field_err, diffusion=diffusion.mean(axis=0),
                   diffusion_err=standard_error(diffusion), slope=slope.mean(axis=0),
                   slope_err=standard_error(slope), realisations=n, settings=settings.as_dict())

    def at(self, time: float) -> dict:
        """The memories at an output time (``ValueError`` if ``time`` is not one of them)."""
        match = np.flatnonzero(np.isclose(self.times, time, rtol=1e-9))
        if match.size == 0:
            raise ValueError(f"Omega t = {time:g} is not an output time of this measurement "
                             f"({', '.join(f'{t:g}' for t in self.times)})")
        i = int(match[0])
        return {name: float(getattr(self, name)[i])
                for name in ("velocity", "velocity_err", "field", "field_err", "diffusion",
                             "diffusion_err", "slope", "slope_err")}

    def to_json(self) -> dict:
        """A JSON-ready dict (arrays as lists); :meth:`from_json` reads it back."""
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in out.items()}

    @classmethod
    def from_json(cls, data: dict) -> "PathMemory":
        arrays = {k: np.asarray(v, dtype=float) for k, v in data.items()
                  if k not in ("realisations", "settings")}
        return cls(**arrays, realisations=int(data["realisations"]), settings=dict(data["settings"]))


def run_path_memory(settings: SimulationSettings, n_realisations: int, store=None,
                    workers: int = 1, progress: bool = True, report=stderr_line) -> dict:
    """Measure the path memories on realisations ``0 .. n_realisations-1``, resuming.

    Parameters
    ----------
    settings : SimulationSettings
        As for ``qlt simulate`` (``nside`` sets the particles, ``times`` the output times).
    n_realisations : int
    store : path, optional
        Part store; default :func:`default_memory_store`.
    workers : int
        Worker processes of :func:`qltlib.particles.runner.run_parts`.
    progress : bool
        tqdm bar on stderr.
    report : callable
        One line per corrupt part (measured again), the estimate of a long run, the compile notice.

    Returns
    -------
    dict
        ``memory`` (:class:`PathMemory`), ``store``, ``written`` (indices measured now).

    Raises
    ------
    ValueError, WorkerError, KeyboardInterrupt
        As :func:`~qltlib.particles.runner.run_parts`; finished parts stay in the store.
    """
    n_realisations, workers = check_realisations(n_realisations), check_workers(workers)
    store = Path(default_memory_store(settings) if store is None else store)
    prepare_run_directory(store, settings.as_dict(), n_realisations, simulation_defaults(),
                          {"file_content": FILE_CONTENT}, option="--store")
    parts, _ = verify_store_parts(store, PART_PATTERN, n_realisations,
                                  lambda index: load_memory_part(store, index, settings),
                                  lambda index: memory_part_path(store, index), report)
    todo = [i for i in range(n_realisations) if i not in parts]
    spec = TaskSpec("qltlib.particles.path_memory:MemoryTask", {"settings": settings.as_dict()})
    written = run_announced(spec, store, todo, n_realisations,
                            realisation_seconds(settings, max(1, usable_cores() // workers)),
                            workers * realisation_memory(settings), workers=workers,
                            progress=progress, report=report)
    parts.update((index, load_memory_part(store, index, settings)) for index in written)
    memory = PathMemory.from_parts(settings, (parts[i] for i in sorted(parts)))
    return {"memory": memory, "store": str(store), "written": written}
