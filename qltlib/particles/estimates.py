"""Memory and time of an ensemble run, estimated before anything is allocated.
"""
from __future__ import annotations

import math

from ..machine import (
    PROCESS_BASE_BYTES,
    available_memory,
    format_bytes,
    format_seconds,
    usable_cores,
)
from .map_statistics import check_lmax, summary_memory
from .settings import SimulationSettings

# ---------------------------------------------------------------------------------------------
# sizes: refuse before allocating
# ---------------------------------------------------------------------------------------------

#: Conservative tracking throughput per core in particle-step-modes per second: half of the
#: 2-core benchmark (``benchmarks/README.md``: 1.65e9 float64, 3.29e9 float32 on 2 cores), as a
#: busy machine gives.
THROUGHPUT_PER_CORE = {"float64": 0.4e9, "float32": 0.8e9}
#: Runs estimated to take longer than this (seconds) are announced on stderr before they start.
LONG_RUN_SECONDS = 10.0


def realisation_memory(settings: SimulationSettings) -> int:
    """Peak bytes of one worker computing one realisation (:func:`run_realisation` + write).

    Per particle: pixel centres and their copies (~ 100 B), start positions and velocities
    (48 B), positions and velocities at every output time from the kernel (2 x 24 B per time) and
    the float32 copy written to the file (12 B per time); mode data is negligible. The summary
    (:func:`summary_memory`) is computed while the trajectories are still held.
    """
    per_particle = 160 + 64 * len(settings.times)
    summary = summary_memory(settings.nside, len(settings.times), check_lmax(None, settings.nside))
    return summary + settings.n_pix * per_particle + 200 * settings.n_modes


def tracking_seconds(n_particles: int, duration: float, settings, cores: int) -> float:
    """Conservative wall time of tracking ``n_particles`` for ``duration`` (``1/Omega``) through
    one field of ``settings`` (step, modes, precision) on ``cores`` cores:
    particle-step-modes over :data:`THROUGHPUT_PER_CORE`."""
    n_steps = duration / (settings.step_fraction * min(1.0 / settings.k1, 1.0))
    updates = float(n_particles) * n_steps * settings.n_modes
    return updates / (THROUGHPUT_PER_CORE[settings.precision] * max(1, cores))


def realisation_seconds(settings: SimulationSettings, cores: int) -> float:
    """Conservative wall time of one realisation on ``cores`` cores (:func:`tracking_seconds`)."""
    return tracking_seconds(settings.n_pix, settings.times[-1], settings, cores)


def transfer_memory(settings) -> int:
    """Peak bytes of one worker measuring one realisation of the transition matrix.

    The process itself, the particles' start and end states (~ 300 B each) and the real
    harmonics of one chunk of 4096 final directions up to ``L``, twice (values and products).
    """
    return PROCESS_BASE_BYTES + 300 * settings.n_particles + 2 * 8 * 4096 * (settings.lmax + 1) ** 2


def announce_run(report, seconds_per_realisation: float, to_run: int, workers: int,
                 memory_bytes: float) -> None:
    """One line on stderr (through ``report``) before a run longer than :data:`LONG_RUN_SECONDS`."""
    total = seconds_per_realisation * math.ceil(to_run / max(1, workers))
    if to_run and total > LONG_RUN_SECONDS:
        report(f"note: about {format_seconds(seconds_per_realisation)} per realisation, "
               f"{format_seconds(total)} for the {to_run} to run, {format_bytes(memory_bytes)} of "
               f"memory (conservative estimate); Ctrl-C keeps the finished files, rerunning resumes")


def check_simulation_size(settings: SimulationSettings, workers: int = 1, memory: int | None = None) -> dict:
    """Estimate memory and time of a run; ValueError (one line) if it needs more memory than the machine has.

    Returns
    -------
    dict
        ``bytes`` (all workers together) and ``seconds_per_realisation`` (conservative).
    """
    memory = available_memory() if memory is None else int(memory)
    need = int(workers) * realisation_memory(settings)
    seconds = realisation_seconds(settings, max(1, usable_cores() // int(workers)))
    if need > memory:
        raise ValueError(
            f"nside {settings.nside} with {len(settings.times)} times and {workers} worker(s) needs about "
            f"{format_bytes(need)} of memory ({settings.n_pix:,} particles per realisation) and about "
            f"{format_seconds(seconds)} per realisation; this machine has {format_bytes(memory)}")
    return {"bytes": need, "seconds_per_realisation": seconds}
