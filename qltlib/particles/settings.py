"""Settings of a test-particle ensemble, the seed of each realisation, and one realisation.

Method (chapter *Validation*, :math:numref:`eq-val-liouville`)
--------------------------------------------------------------
One particle per HEALPix pixel centre ``p_i`` (RING ordering, :func:`healpy.pix2vec`) is
back-tracked from the observer at the origin for the times ``T`` (:func:`qltlib.tracking.backtrack`).
Liouville's theorem with the gradient ansatz (2.3) gives the phase-space density at the observer,

    f(r_sun, p_i, t) = phi + Delta r_i(T) . G ,   phi = 1,

so the relative intensity map is ``dI_i = Delta r_i . G``; its ``C_l`` for ``l >= 1`` is
independent of ``phi``. We use ``|G| = 1 / r_g`` along each coordinate axis ``x, y, z`` in turn
(three maps per realisation; isotropy makes their expectations equal) and average the three
``C_l``. Absolute ``C_l`` therefore carry units of ``(r_g |G|)^2``.

Seeds
-----
Realisation ``i`` of an ensemble with seed ``s`` uses
``numpy.random.SeedSequence(entropy=s, spawn_key=(i,))`` — identical to
``SeedSequence(s).spawn(n)[i]`` for any ``n > i`` — so a realisation does not depend on how many
others are run, in which order, or on which machine.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..theory.spectrum import make_spectrum
from . import files
from .healpix import ring_pixel_directions
from .tracking_defaults import (
    DEFAULT_MULTIRATE_TOLERANCE,
    DEFAULT_RESYNC_EVERY,
    DEFAULT_STEP_FRACTION,
    MAX_PHASE_STEP,
    WORKING_PRECISION_NAMES,
)
from .turbulence import synthesise_turbulence


@dataclass(frozen=True)
class SimulationSettings:
    """Everything that determines the content of one realisation file.

    Parameters
    ----------
    nside : int
        HEALPix resolution (power of two); one particle per pixel centre.
    times : tuple of float
        Back-tracking times ``Omega (t - t0)``, strictly increasing.
    n_modes : int
        Plane waves per field realisation.
    seed : int
        Ensemble seed (see module docstring).
    spectrum : str
        ``white``, ``kolmogorov``, ``logflat`` or ``flat3d`` (:mod:`qltlib.theory.spectrum`).
    k0, k1 : float
        Turbulence band in units of ``1/r_g``.
    step_fraction : float
        ``dt = step_fraction * min(1/k_max, r_g)``.
    resync_every : int
        Steps between exact phase re-synchronisations of the tracking kernel.
    precision : {"float64", "float32"}
        Working precision of the per-mode arithmetic of the tracking kernel
        (:func:`qltlib.particles.tracking.integrate`). Default ``float32``, validated against float64 by
        the ensemble checks of chapter *Validation*.
    multirate_tolerance : float
        Multirate field evaluation (:func:`qltlib.particles.multirate.multirate_plan`): bound on each slow
        mode's field error relative to its amplitude; ``0`` evaluates every mode at every step.
        Manifests written before this setting existed record exact evaluation (``0``).
    """

    nside: int = 16
    times: tuple = (10.0, 20.0, 40.0)
    n_modes: int = 256
    seed: int = 2019
    spectrum: str = "white"
    k0: float = 1.0e-3
    k1: float = 1.0e2
    step_fraction: float = DEFAULT_STEP_FRACTION
    resync_every: int = DEFAULT_RESYNC_EVERY
    precision: str = "float32"
    multirate_tolerance: float = DEFAULT_MULTIRATE_TOLERANCE

    def __post_init__(self):
        nside = self.nside
        if isinstance(nside, bool) or int(nside) != nside or nside < 1 or (int(nside) & (int(nside) - 1)):
            raise ValueError(f"nside must be a power of two, got {nside!r}")
        object.__setattr__(self, "nside", int(nside))
        times = tuple(float(t) for t in np.atleast_1d(self.times))
        if len(times) == 0 or not all(math.isfinite(t) and t > 0 for t in times):
            raise ValueError(f"times must be positive numbers, got {list(times)!r}")
        if any(b <= a for a, b in zip(times, times[1:])):
            raise ValueError(f"times must be strictly increasing, got {list(times)!r}")
        object.__setattr__(self, "times", times)
        if int(self.n_modes) != self.n_modes or self.n_modes < 1:
            raise ValueError(f"number of modes must be a positive integer, got {self.n_modes!r}")
        object.__setattr__(self, "n_modes", int(self.n_modes))
        if int(self.seed) != self.seed or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))
        make_spectrum(self.spectrum, self.k0, self.k1)          # validates the name and k0 < k1
        object.__setattr__(self, "k0", float(self.k0))
        object.__setattr__(self, "k1", float(self.k1))
        if not (math.isfinite(self.step_fraction) and 0 < self.step_fraction <= MAX_PHASE_STEP):
            raise ValueError(f"step fraction must lie in (0, {MAX_PHASE_STEP}], got {self.step_fraction!r}")
        object.__setattr__(self, "step_fraction", float(self.step_fraction))
        if int(self.resync_every) != self.resync_every or self.resync_every < 1:
            raise ValueError(f"resync_every must be a positive integer, got {self.resync_every!r}")
        object.__setattr__(self, "resync_every", int(self.resync_every))
        if self.precision not in WORKING_PRECISION_NAMES:
            raise ValueError(f"precision must be one of {', '.join(WORKING_PRECISION_NAMES)}, "
                             f"got {self.precision!r}")
        tolerance = self.multirate_tolerance
        if isinstance(tolerance, bool) or not (isinstance(tolerance, (int, float))
                                               and math.isfinite(tolerance) and 0 <= tolerance <= 1e-2):
            raise ValueError(f"multirate tolerance must lie in [0, 0.01], got {tolerance!r}")
        object.__setattr__(self, "multirate_tolerance", float(tolerance))

    @property
    def n_pix(self) -> int:
        """Number of particles per realisation, ``12 nside^2``."""
        return 12 * self.nside * self.nside

    def make_spectrum(self):
        """The :class:`~qltlib.theory.spectrum.TurbulenceSpectrum` these settings name."""
        return make_spectrum(self.spectrum, self.k0, self.k1)

    @classmethod
    def from_dict(cls, settings: dict) -> "SimulationSettings":
        """Settings from :meth:`as_dict` output (a manifest); ValueError on unknown or bad entries."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"unknown settings {', '.join(unknown)}")
        settings = {**VALUE_BEFORE_INTRODUCTION, **settings}
        try:
            return cls(**settings)
        except TypeError as exc:          # e.g. a string where a number belongs
            raise ValueError(str(exc)) from None

    def as_dict(self) -> dict:
        """JSON-friendly settings (the content of ``manifest.json``)."""
        d = dataclasses.asdict(self)
        d["times"] = list(self.times)
        return d


#: What a setting introduced after qltlib 0.1.0 means when a manifest or file does not record it:
#: the behaviour of the code before it existed (not the current default).
VALUE_BEFORE_INTRODUCTION = {"multirate_tolerance": 0.0}


def realisation_seed(seed: int, index: int) -> np.random.SeedSequence:
    """Seed of realisation ``index``: ``SeedSequence(seed).spawn(n)[index]`` for any ``n``."""
    return np.random.SeedSequence(entropy=int(seed), spawn_key=(int(index),))


def nside_of(n_pix: int) -> int:
    """HEALPix ``nside`` of a map with ``n_pix = 12 nside^2`` pixels; ValueError otherwise."""
    nside = int(round(math.sqrt(n_pix / 12)))
    if 12 * nside * nside != n_pix or nside & (nside - 1):
        raise ValueError(f"{n_pix} is not the pixel number of a HEALPix map")
    return nside


def pixel_directions(nside: int) -> np.ndarray:
    """Unit vectors of the HEALPix (RING) pixel centres, shape ``(12 nside^2, 3)``.

    Computed by :func:`qltlib.particles.healpix.ring_pixel_directions` (identical to ``healpy.pix2vec``),
    so that starting a run does not import healpy.
    """
    return ring_pixel_directions(nside)


def realisation_field(settings: SimulationSettings, index: int):
    """The field of realisation ``index``: :func:`synthesise_turbulence` seeded by
    :func:`realisation_seed` (the same field for every command with these settings)."""
    return synthesise_turbulence(settings.make_spectrum(), settings.n_modes,
                                 np.random.default_rng(realisation_seed(settings.seed, index)))


def run_realisation(settings: SimulationSettings, index: int, field=None) -> dict:
    """Back-track one particle per pixel through one field realisation.

    Parameters
    ----------
    settings : SimulationSettings
    index : int
        Realisation number (selects the seed).
    field : PlaneWaveTurbulence, optional
        Replaces :func:`realisation_field` (e.g. a uniform field in the tests).

    Returns
    -------
    dict
        ``index``, ``times`` (reached, ``1/Omega``), ``delta_r`` (float64,
        ``(n_times, n_pix, 3)``, units ``r_g``), ``directions`` (float64, ``(n_times, n_pix,
        3)``: the momentum direction ``p'`` of each particle at ``t - T``, chapter *Where
        quasi-linear theory holds*), ``max_speed_error`` (``max | |v| - 1 |``), ``settings``
        (:meth:`SimulationSettings.as_dict`).

    Notes
    -----
    Chapter *Validation*, :math:numref:`eq-val-liouville`.
    """
    from .tracking import (
        backtrack,  # numba: imported only where trajectories are integrated
    )

    if field is None:
        field = realisation_field(settings, index)
    track = backtrack(field, pixel_directions(settings.nside), settings.times,
                      step_fraction=settings.step_fraction, resync_every=settings.resync_every,
                      precision=settings.precision,
                      multirate_tolerance=settings.multirate_tolerance)
    speed_error = float(np.max(np.abs(np.linalg.norm(track.velocities, axis=2) - 1.0)))
    # back-tracking follows a forward particle with v = -p: the momentum at t - T is -v
    return {"index": int(index), "times": track.times, "delta_r": track.positions,
            "directions": -track.velocities, "max_speed_error": speed_error,
            "settings": settings.as_dict()}


def simulation_defaults() -> dict:
    """What a manifest or file that does not record a setting means by it.

    The field defaults, and for a setting introduced after qltlib 0.1.0 the value that
    reproduces the older behaviour (:data:`VALUE_BEFORE_INTRODUCTION`).
    """
    defaults = {f.name: f.default for f in dataclasses.fields(SimulationSettings)}
    defaults.update(VALUE_BEFORE_INTRODUCTION)
    return defaults


def settings_conflicts(reference: dict, other: dict) -> list[str]:
    """Names of the simulation settings on which two settings dictionaries disagree (sorted).

    :func:`qltlib.particles.files.settings_conflicts` with :func:`simulation_defaults`.
    """
    return files.settings_conflicts(reference, other, simulation_defaults())
