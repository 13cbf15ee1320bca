"""Test-particle ensembles: one realisation per file, resumable, local or on a Dask cluster.

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

Files
-----
``DIR/manifest.json`` (all settings), ``DIR/realisation_00042.npz`` (``delta_r`` as float32,
shape ``(n_times, n_pix, 3)``, and the settings that produced it; written to a temporary file and
moved into place with :func:`os.replace`, so a killed run never leaves a truncated file). Files
are trusted only after a check against the manifest (:func:`load_realisation`): on restart the
valid files are skipped and corrupt ones recomputed; :func:`summarize` refuses a file that
contradicts its manifest.

Each realisation also gets a compact summary ``DIR/summary_00042.npz`` (:func:`write_summary`):
``C_l`` of the three gradient maps, their shot noise and the mean-square displacement per time,
verified the same way (:func:`load_summary`). :func:`summarize` needs only these; the raw file can
be left out (``keep_raw=False``, ``qlt simulate --no-raw``) and is recomputed, bit for bit, by
rerunning with the same settings.

Processes
---------
Local runs compute every realisation in worker processes, never in the process that receives
Ctrl-C (see the comment above :func:`_worker_main`): an interrupt at any moment ends the run
within a second, keeps the finished files and leaves neither workers nor temporary files.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .healpix import ring_pixel_directions
from .spectrum import make_spectrum
from .tracking_defaults import (DEFAULT_MULTIRATE_TOLERANCE, DEFAULT_RESYNC_EVERY, MAX_PHASE_STEP,
                                WORKING_PRECISION_NAMES)
from .turbulence import synthesise_turbulence

MANIFEST_NAME = "manifest.json"
#: bumped whenever the per-realisation summaries change meaning (older summaries are recomputed)
SUMMARY_VERSION = 1
REALISATION_PATTERN = re.compile(r"^realisation_(\d{5})\.npz$")
SUMMARY_PATTERN = re.compile(r"^summary_(\d{5})\.npz$")
#: Gradient directions used for the maps ``dI = Delta r . G`` (unit vectors, ``|G| = 1/r_g``).
GRADIENT_AXES = np.eye(3)


class SettingsMismatchError(ValueError):
    """An output directory holds a manifest written with different settings."""


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
        ``white``, ``kolmogorov``, ``logflat`` or ``flat3d`` (:mod:`qltlib.spectrum`).
    k0, k1 : float
        Turbulence band in units of ``1/r_g``.
    step_fraction : float
        ``dt = step_fraction * min(1/k_max, r_g)``.
    resync_every : int
        Steps between exact phase re-synchronisations of the tracking kernel.
    precision : {"float64", "float32"}
        Working precision of the per-mode arithmetic of the tracking kernel
        (:func:`qltlib.tracking.integrate`). Default ``float32``, validated against float64 by
        the ensemble checks of chapter *Validation*.
    multirate_tolerance : float
        Multirate field evaluation (:func:`qltlib.tracking.multirate_plan`): bound on each slow
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
    step_fraction: float = 0.2
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
        """The :class:`~qltlib.spectrum.TurbulenceSpectrum` these settings name."""
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

    Computed by :func:`qltlib.healpix.ring_pixel_directions` (identical to ``healpy.pix2vec``),
    so that starting a run does not import healpy.
    """
    return ring_pixel_directions(nside)


def run_realisation(settings: SimulationSettings, index: int) -> dict:
    """Back-track one particle per pixel through one field realisation.

    Parameters
    ----------
    settings : SimulationSettings
    index : int
        Realisation number (selects the seed).

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
    from .tracking import backtrack      # numba: imported only where trajectories are integrated

    field = synthesise_turbulence(settings.make_spectrum(), settings.n_modes,
                                  np.random.default_rng(realisation_seed(settings.seed, index)))
    track = backtrack(field, pixel_directions(settings.nside), settings.times,
                      step_fraction=settings.step_fraction, resync_every=settings.resync_every,
                      precision=settings.precision,
                      multirate_tolerance=settings.multirate_tolerance)
    speed_error = float(np.max(np.abs(np.linalg.norm(track.velocities, axis=2) - 1.0)))
    # back-tracking follows a forward particle with v = -p: the momentum at t - T is -v
    return {"index": int(index), "times": track.times, "delta_r": track.positions,
            "directions": -track.velocities, "max_speed_error": speed_error,
            "settings": settings.as_dict()}


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------

class CorruptRealisationError(ValueError):
    """A realisation file that cannot be read or contradicts the settings of its directory."""


#: arrays every realisation file holds (files written since qltlib 0.1.0 also hold ``settings``)
REALISATION_FIELDS = ("index", "times", "delta_r", "max_speed_error")


def realisation_path(out_dir, index: int) -> Path:
    """``DIR/realisation_NNNNN.npz`` of realisation ``index``."""
    return Path(out_dir) / f"realisation_{int(index):05d}.npz"


def _indices_matching(out_dir, pattern) -> list[int]:
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    found = (pattern.match(p.name) for p in out_dir.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def existing_realisations(out_dir) -> list[int]:
    """Indices of the realisation files in ``out_dir`` (sorted; not yet verified)."""
    return _indices_matching(out_dir, REALISATION_PATTERN)


def summary_path(out_dir, index: int) -> Path:
    """``DIR/summary_NNNNN.npz``: the compact summary of realisation ``index``."""
    return Path(out_dir) / f"summary_{int(index):05d}.npz"


def existing_summaries(out_dir) -> list[int]:
    """Indices of the summary files in ``out_dir`` (sorted; not yet verified)."""
    return _indices_matching(out_dir, SUMMARY_PATTERN)


def _temporary_path(path: Path, pid: int) -> Path:
    return path.with_name(f".{path.name}.{pid}.tmp")


def _write_atomically(path: Path, arrays: dict) -> Path:
    """``np.savez`` to a temporary file in the same directory, synced, then ``os.replace``:
    a killed writer never leaves a truncated file under the final name."""
    tmp = _temporary_path(path, os.getpid())
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def write_realisation(out_dir, result: dict) -> Path:
    """Write one realisation atomically (temporary file in the same directory + ``os.replace``).

    The file holds ``index``, ``times``, ``delta_r`` (float32), ``max_speed_error`` and, when
    ``result`` has them, the ``settings`` that produced it (JSON text), so that every file can be
    checked against the manifest of the directory it sits in (:func:`load_realisation`).
    """
    arrays = dict(index=np.int64(result["index"]), times=np.asarray(result["times"]),
                  delta_r=np.asarray(result["delta_r"], dtype=np.float32),
                  max_speed_error=np.float64(result["max_speed_error"]))
    if "directions" in result:
        arrays["directions"] = np.asarray(result["directions"], dtype=np.float32)
    if "settings" in result:
        arrays["settings"] = np.str_(json.dumps(result["settings"], sort_keys=True))
    return _write_atomically(realisation_path(out_dir, result["index"]), arrays)


def _plain(value):
    """JSON-comparable form of a setting (tuples and lists compare equal)."""
    return json.loads(json.dumps(value))


def settings_conflicts(reference: dict, other: dict) -> list[str]:
    """Names of the settings on which two settings dictionaries disagree (sorted).

    Every key of either dictionary is compared, so settings added to :class:`SimulationSettings`
    later are checked without further code. A key missing from one side takes the field's
    default, or for a setting introduced later the value that reproduces the older behaviour
    (:data:`VALUE_BEFORE_INTRODUCTION`).
    """
    defaults = {f.name: f.default for f in dataclasses.fields(SimulationSettings)}
    defaults.update(VALUE_BEFORE_INTRODUCTION)
    missing = object()

    def value(settings, key):
        if key in settings:
            return _plain(settings[key])
        return _plain(defaults[key]) if key in defaults else missing

    return sorted(key for key in set(reference) | set(other) if value(reference, key) != value(other, key))


def _time_tolerance(settings: SimulationSettings) -> float:
    # output_schedule puts the last time on the step grid exactly and rounds the others to the
    # nearest step; every mode has k >= k0, so dt <= step_fraction * min(1/k0, r_g)
    return 0.5 * settings.step_fraction * min(1.0, 1.0 / settings.k0)


def load_realisation(out_dir, index: int, settings: SimulationSettings) -> dict:
    """Read and verify one realisation file against the settings of its directory.

    Every array is read in full, so the CRC-32 that the ``.npz`` (zip) container keeps for each
    array is checked: truncated files and flipped bits are both caught. The content must then
    fit ``settings``: the file's own ``index`` and ``settings`` (when stored), ``delta_r`` of
    shape ``(n_times, 12 nside^2, 3)`` with finite entries no farther from the origin than
    ``c T``, and the times reached within half a step of the requested ones.

    Returns
    -------
    dict
        The arrays of the file.

    Raises
    ------
    CorruptRealisationError
        One line naming the file and what is wrong with it.
    """
    arrays, contradiction = _read_checked(realisation_path(out_dir, index), out_dir, index, settings,
                                          REALISATION_FIELDS)
    times, delta_r = np.asarray(arrays["times"], dtype=float), arrays["delta_r"]
    expected_shape = (len(settings.times), settings.n_pix, 3)
    if delta_r.shape != expected_shape:
        raise contradiction(f"delta_r has shape {delta_r.shape}, nside {settings.nside} and "
                            f"{len(settings.times)} times need {expected_shape}")
    _check_times(times, settings, contradiction)
    distance = np.linalg.norm(np.asarray(delta_r, dtype=np.float64), axis=2)
    # a particle moves at c: float32 storage allows a relative excess of a few 1e-7
    if not np.all(np.isfinite(distance)) or np.any(distance > times[:, None] * (1 + 1e-5)):
        raise contradiction("delta_r holds non-finite values or particles farther than c T")
    if not np.isfinite(float(arrays["max_speed_error"])):
        raise contradiction("max_speed_error is not finite")
    return arrays


def _read_checked(path: Path, out_dir, index: int, settings: SimulationSettings, fields) -> tuple:
    """Read every array of ``path`` (CRC-checked) and check ``fields``, ``settings`` and ``index``.

    Returns ``(arrays, contradiction)``, the latter a factory of the error for further checks.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as exc:       # any failure to read (BadZipFile, CRC, header, I/O) is corruption
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise CorruptRealisationError(f"{path.name} is unreadable ({type(exc).__name__}: {reason})") from None

    def contradiction(what):
        return CorruptRealisationError(f"{path.name} contradicts the manifest of {Path(out_dir)}: {what}")

    absent = [name for name in fields if name not in arrays]
    if absent:
        raise contradiction(f"it lacks {', '.join(absent)}")
    if "settings" in arrays:
        try:
            stored = json.loads(str(arrays["settings"]))
        except ValueError:
            raise contradiction("its stored settings are not JSON") from None
        expected = settings.as_dict()
        differ = settings_conflicts(expected, stored)
        if differ:
            raise contradiction("settings " + ", ".join(
                f"{key} = {stored.get(key)!r} (manifest {expected.get(key)!r})" for key in differ))
    if arrays["index"].shape != () or int(arrays["index"]) != int(index):
        raise contradiction(f"it holds realisation {arrays['index'].tolist()!r}")
    return arrays, contradiction


def _check_times(times, settings: SimulationSettings, contradiction) -> None:
    if times.shape != (len(settings.times),) or \
            np.any(np.abs(times - np.array(settings.times)) > _time_tolerance(settings)):
        raise contradiction(f"times {times.tolist()} instead of {list(settings.times)}")


#: arrays of a summary file (:func:`write_summary`)
SUMMARY_FIELDS = ("version", "index", "times", "lmax", "C_ell_axis", "shot_noise_axis", "msd",
                  "msd_axis", "settings")


def realisation_summary(result: dict, settings: SimulationSettings) -> dict:
    """Summary of one realisation (``run_realisation`` output or a loaded file) for its file.

    The statistics of :func:`realisation_statistics` at ``lmax = 3 nside - 1`` (every resolved
    multipole), per gradient axis, from the float32 displacements as stored in the raw file, so
    that a summary made by the worker equals one made later from the raw file, bit for bit.
    """
    # C order as in the file: the reductions then add in the same order (the tracker's
    # arrays may be strided views)
    delta_r = np.ascontiguousarray(result["delta_r"], dtype=np.float32)
    stats = realisation_statistics(delta_r, result["times"], lmax=check_lmax(None, settings.nside))
    return {"version": np.int64(SUMMARY_VERSION), "index": np.int64(result["index"]),
            "times": np.asarray(result["times"], dtype=float), "lmax": np.int64(stats["lmax"]),
            "C_ell_axis": stats["C_ell_axis"], "shot_noise_axis": stats["shot_noise_axis"],
            "msd": stats["msd"], "msd_axis": stats["msd_axis"],
            "settings": np.str_(json.dumps(settings.as_dict(), sort_keys=True))}


def write_summary(out_dir, summary: dict) -> Path:
    """Write a :func:`realisation_summary` atomically as ``DIR/summary_NNNNN.npz``.

    Content: ``version``, ``index``, ``times`` (reached, ``1/Omega``), ``lmax = 3 nside - 1``,
    ``C_ell_axis`` ``(n_times, 3, lmax+1)`` (the maps ``dI = Delta r . G`` with ``G`` along
    ``x, y, z``, ``|G| = 1/r_g``; shot noise not subtracted), ``shot_noise_axis``
    ``(n_times, 3)``, ``msd`` ``(n_times,)`` = ``<|Delta r|^2>`` over pixels (``r_g^2``),
    ``msd_axis`` ``(n_times, 3)`` = ``<Delta x_i^2>``, ``settings`` (JSON).
    """
    return _write_atomically(summary_path(out_dir, int(summary["index"])),
                             {name: summary[name] for name in SUMMARY_FIELDS})


def load_summary(out_dir, index: int, settings: SimulationSettings) -> dict:
    """Read and verify one summary file against the settings of its directory.

    Like :func:`load_realisation`: every array is read (CRC-32 of the container), the stored
    settings, ``index``, ``version`` and ``lmax = 3 nside - 1`` must match, the shapes fit
    the times and ``nside``, the times lie within half a step of the requested ones, and the
    values are finite, ``C_l >= 0`` and ``0 <= <|Delta r|^2> <= (c T)^2`` with the per-axis
    parts adding up to it.

    Raises
    ------
    CorruptRealisationError
        One line naming the file and what is wrong with it.
    """
    arrays, contradiction = _read_checked(summary_path(out_dir, index), out_dir, index, settings,
                                          SUMMARY_FIELDS)
    if arrays["version"].shape != () or int(arrays["version"]) != SUMMARY_VERSION:
        raise contradiction(f"summary version {arrays['version'].tolist()!r}, this qltlib writes "
                            f"{SUMMARY_VERSION}")
    lmax, n_times = check_lmax(None, settings.nside), len(settings.times)
    if arrays["lmax"].shape != () or int(arrays["lmax"]) != lmax:
        raise contradiction(f"lmax {arrays['lmax'].tolist()!r}, nside {settings.nside} needs {lmax}")
    shapes = {"C_ell_axis": (n_times, len(GRADIENT_AXES), lmax + 1),
              "shot_noise_axis": (n_times, len(GRADIENT_AXES)), "msd": (n_times,),
              "msd_axis": (n_times, len(GRADIENT_AXES))}
    for name, shape in shapes.items():
        if arrays[name].shape != shape:
            raise contradiction(f"{name} has shape {arrays[name].shape}, expected {shape}")
        if not np.all(np.isfinite(arrays[name])):
            raise contradiction(f"{name} holds non-finite values")
    times = np.asarray(arrays["times"], dtype=float)
    _check_times(times, settings, contradiction)
    msd, msd_axis = arrays["msd"], arrays["msd_axis"]
    if np.any(arrays["C_ell_axis"] < 0) or np.any(msd_axis < 0) \
            or np.any(msd > times ** 2 * (1 + 1e-5)) \
            or not np.allclose(msd_axis.sum(axis=1), msd, rtol=1e-9, atol=0.0):
        raise contradiction("negative C_l, or mean-square displacements beyond (c T)^2 or "
                            "inconsistent between the axes")
    return arrays


def _manifest(settings: SimulationSettings, n_realisations: int) -> dict:
    return {"settings": settings.as_dict(), "realisations": int(n_realisations),
            "seeding": "numpy.random.SeedSequence(entropy=seed, spawn_key=(index,))",
            "file_content": "delta_r float32 (n_times, n_pix, 3) in r_g; times in 1/Omega",
            "qltlib_version": __version__}


def _os_error_line(action: str, path, exc: OSError) -> str:
    return f"cannot {action} {path}: {exc.strerror or type(exc).__name__}"


def prepare_output(out_dir, settings: SimulationSettings, n_realisations: int) -> Path:
    """Create ``out_dir`` with its manifest, or check that an existing manifest matches.

    Raises
    ------
    SettingsMismatchError
        If ``out_dir`` already holds a manifest with different settings.
    ValueError
        If ``out_dir`` is a file, cannot be created or written, or holds a corrupt manifest.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output {out_dir} exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(_os_error_line("create output directory", out_dir, exc)) from None
    manifest_path = out_dir / MANIFEST_NAME
    if manifest_path.exists():
        old = load_manifest(out_dir)
        differ = settings_conflicts(old["settings"], settings.as_dict())
        if differ:
            raise SettingsMismatchError(
                f"{out_dir} holds a run with different settings ({', '.join(differ)}); "
                f"use another --out directory")
        n_realisations = max(n_realisations, int(old.get("realisations", 0)))
    tmp = _temporary_path(manifest_path, os.getpid())
    try:
        for stale in out_dir.glob(".*.tmp"):      # left behind by a killed run
            stale.unlink()
        tmp.write_text(json.dumps(_manifest(settings, n_realisations), indent=2) + "\n")
        os.replace(tmp, manifest_path)
    except OSError as exc:
        raise ValueError(_os_error_line("write to output directory", out_dir, exc)) from None
    return out_dir


def load_manifest(out_dir) -> dict:
    """The manifest of a simulation directory, checked for form.

    Raises
    ------
    ValueError
        One line naming the file: no manifest, not JSON, or settings that are not valid.
    """
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        raise ValueError(f"no {MANIFEST_NAME} in {out_dir}: not a simulation directory")
    try:
        manifest = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(_os_error_line("read", path, exc)) from None
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); the manifest is corrupt") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("settings"), dict):
        raise ValueError(f"{path} has no settings; the manifest is corrupt")
    try:
        SimulationSettings.from_dict(manifest["settings"])
    except ValueError as exc:
        raise ValueError(f"{path} holds invalid settings ({exc}); the manifest is corrupt") from None
    realisations = manifest.get("realisations", 0)
    if isinstance(realisations, bool) or not isinstance(realisations, int) or realisations < 0:
        raise ValueError(f"{path}: 'realisations' must be a non-negative integer, got {realisations!r}")
    return manifest


# ---------------------------------------------------------------------------------------------
# sizes: refuse before allocating
# ---------------------------------------------------------------------------------------------

#: Conservative tracking throughput per core in particle-step-modes per second: half of the
#: 2-core benchmark (``benchmarks/README.md``: 1.65e9 float64, 3.29e9 float32 on 2 cores), as a
#: busy machine gives.
THROUGHPUT_PER_CORE = {"float64": 0.4e9, "float32": 0.8e9}
#: Runs estimated to take longer than this (seconds) are announced on stderr before they start.
LONG_RUN_SECONDS = 3600.0
#: Memory of one Python process with numpy, healpy and numba loaded (bytes, measured ~0.3 GB).
PROCESS_BASE_BYTES = 400 * 2 ** 20


def available_memory() -> int:
    """Bytes of memory this machine can give one run: physical memory, or the cgroup limit if lower.

    The capacity, not what happens to be free now: a run that fits is not refused because other
    programs use memory at the moment, and the answer does not change from one call to the next.
    """
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            memory = min(memory, int(limit))
    except OSError:
        pass
    return memory


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:       # pragma: no cover - not Linux
        return os.cpu_count() or 1


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


def realisation_seconds(settings: SimulationSettings, cores: int) -> float:
    """Conservative wall time of one realisation on ``cores`` cores (particle-step-modes / throughput)."""
    n_steps = settings.times[-1] / (settings.step_fraction * min(1.0 / settings.k1, 1.0))
    updates = float(settings.n_pix) * n_steps * settings.n_modes
    return updates / (THROUGHPUT_PER_CORE[settings.precision] * max(1, cores))


def _format_bytes(n: float) -> str:
    return f"{n / 2 ** 30:.1f} GiB" if n >= 2 ** 30 else f"{n / 2 ** 20:.0f} MiB"


def _format_seconds(s: float) -> str:
    for unit, length in (("days", 86400), ("h", 3600), ("min", 60)):
        if s >= length:
            return f"{s / length:.3g} {unit}"
    return f"{s:.2g} s"


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
            f"{_format_bytes(need)} of memory ({settings.n_pix:,} particles per realisation) and about "
            f"{_format_seconds(seconds)} per realisation; this machine has {_format_bytes(memory)}")
    return {"bytes": need, "seconds_per_realisation": seconds}


# ---------------------------------------------------------------------------------------------
# ensemble driver: worker processes
# ---------------------------------------------------------------------------------------------
#
# Ctrl-C must be safe at every moment. A SIGINT that arrives while numba's threading layer runs
# the parallel kernel (or loads / compiles it) can crash the process, and a process pool whose
# workers share the terminal's process group receives the same SIGINT. So the tracking kernel
# never runs in the process that owns SIGINT: every realisation is computed in a worker process
# (also for a single worker) started in its own process group, with SIGINT ignored, and fed one
# realisation index per line on its stdin. Only the driver sees Ctrl-C; it SIGKILLs the workers
# (safe at any instruction), removes their temporary files and returns. Finished files are
# complete by construction (temporary file + os.replace). A worker whose stdin closes -- the
# driver finished or died, even by SIGKILL -- exits at once, from a watchdog thread.

def write_results(out_dir, result: dict, settings: SimulationSettings, keep_raw: bool = True) -> None:
    """Files of one finished realisation: the raw file if ``keep_raw``, else its summary.

    A raw file's summary is made later, from the raw file, by :func:`verify_existing` on
    resume or by :func:`summarize` (bit for bit the same): the summary needs healpy, whose
    import (over a second, matplotlib and astropy included) would otherwise delay the start of
    every worker.
    """
    if keep_raw:
        write_realisation(out_dir, result)
    else:
        write_summary(out_dir, realisation_summary(result, settings))


_WORKER_COMMAND = "from qltlib.simulate import _worker_main; _worker_main()"


def _worker_main() -> None:
    """Entry point of a worker process (``python -c _WORKER_COMMAND OUT_DIR``).

    Reads ``{"settings": .., "keep_raw": ..}`` (JSON) from the first stdin line, then
    realisation indices, one per line; writes each realisation's files itself (the raw file
    unless ``keep_raw`` is false, then the summary) and answers one JSON line per index on stdout.
    """
    import queue
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)       # Ctrl-C belongs to the driver
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)            # stray prints of compiled libraries go to the log, not the replies
    out_dir = Path(sys.argv[1])
    commands = sys.stdin.buffer
    first = commands.readline()
    if not first:
        os._exit(0)
    setup = json.loads(first)
    settings, keep_raw = SimulationSettings.from_dict(setup["settings"]), bool(setup["keep_raw"])
    tasks = queue.Queue()

    def read_tasks():
        for line in commands:
            tasks.put(int(line))
        os._exit(0)          # the driver closed the pipe or is gone: stop, even inside the kernel

    threading.Thread(target=read_tasks, daemon=True).start()
    while True:
        index = tasks.get()
        try:
            write_results(out_dir, run_realisation(settings, index), settings, keep_raw)
            replies.write(json.dumps({"index": index}) + "\n")
        except Exception as exc:
            # a ValueError is bad input (e.g. output times closer than one step): the driver
            # raises it again as such; anything else is a failure of the worker
            replies.write(json.dumps({"index": index, "bad_input": isinstance(exc, ValueError),
                                      "error": str(exc) if isinstance(exc, ValueError)
                                      else f"{type(exc).__name__}: {exc}"}) + "\n")


class WorkerError(RuntimeError):
    """A worker process died or failed on a realisation (not caused by the input)."""


class _WorkerProcess:
    """Driver-side handle of one worker process."""

    def __init__(self, settings: SimulationSettings, out_dir: Path, numba_threads: int | None,
                 keep_raw: bool = True):
        import subprocess
        import tempfile

        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        if numba_threads is not None:
            env.setdefault("NUMBA_NUM_THREADS", str(numba_threads))
        self.out_dir = out_dir
        self.log = tempfile.TemporaryFile()
        self.index = None
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER_COMMAND, str(out_dir)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     env=env, process_group=0)
        self._send(json.dumps({"settings": settings.as_dict(), "keep_raw": bool(keep_raw)}))

    def _send(self, line: str) -> None:
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise WorkerError(self.failure()) from None

    def assign(self, index: int) -> None:
        self.index = int(index)
        self._send(str(self.index))

    def failure(self) -> str:
        """One line on why the worker stopped (for a worker that died)."""
        code = self.proc.wait()
        self.log.seek(0)
        lines = self.log.read().decode(errors="replace").strip().splitlines()
        how = f"signal {-code}" if code < 0 else f"status {code}"
        return (f"worker process for realisation {self.index} died ({how})"
                + (f": {lines[-1]}" if lines else ""))

    def close(self, kill: bool) -> None:
        """End the worker (SIGKILL if ``kill``, else close its stdin) and remove its temporary files.

        After a normal end the worker's own stderr (warnings of the libraries) is passed on.
        """
        if kill and self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait()
        self.proc.stdout.close()
        if not kill:
            self.log.seek(0)
            sys.stderr.write(self.log.read().decode(errors="replace"))
        self.log.close()
        for tmp in self.out_dir.glob(f".*.{self.proc.pid}.tmp"):
            tmp.unlink(missing_ok=True)


def _run_local(settings: SimulationSettings, out_dir: Path, todo: list, workers: int, done,
               keep_raw: bool = True) -> None:
    """Compute realisations ``todo`` in ``workers`` worker processes; ``done(index)`` per file."""
    import collections
    import selectors

    queue = collections.deque(todo)
    # numba threads over particles in each worker; split the cores between the workers
    threads = None if workers == 1 else max(1, usable_cores() // workers)
    pool = []
    selector = selectors.DefaultSelector()
    finished = False
    try:
        for _ in range(min(workers, len(queue))):
            worker = _WorkerProcess(settings, out_dir, threads, keep_raw)
            pool.append(worker)
            selector.register(worker.proc.stdout, selectors.EVENT_READ, worker)
            worker.assign(queue.popleft())
        busy = len(pool)
        while busy:
            for key, _ in selector.select(timeout=1.0):
                worker = key.data
                line = worker.proc.stdout.readline()
                if not line:
                    raise WorkerError(worker.failure())
                reply = json.loads(line)
                if reply.get("bad_input"):
                    raise ValueError(reply["error"])
                if "error" in reply:
                    raise WorkerError(f"realisation {reply['index']} failed: {reply['error']}")
                done(reply["index"])
                if queue:
                    worker.assign(queue.popleft())
                else:
                    selector.unregister(worker.proc.stdout)
                    busy -= 1
        finished = True
    finally:
        _without_sigint(lambda: [worker.close(kill=not finished) for worker in pool])
        selector.close()


def _without_sigint(action):
    """Run ``action`` with Ctrl-C held back (a second Ctrl-C must not leave workers behind)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return action()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return action()
    finally:
        signal.signal(signal.SIGINT, previous)


def _connect_dask(address: str, timeout: float):
    try:
        from dask.distributed import Client
    except ImportError as exc:  # pragma: no cover - dask is an optional dependency
        raise ValueError(f"--scheduler needs dask.distributed, which is not installed ({exc})") from None
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"cannot reach Dask scheduler at {address!r}: {reason}") from None


def _stderr_line(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def verify_existing(out_dir, settings: SimulationSettings, n_realisations: int, report=_stderr_line,
                    keep_raw: bool = True):
    """Check the files of every realisation below ``n_realisations``; remove the corrupt ones.

    A realisation is finished when its summary verifies (:func:`load_summary`) and, with
    ``keep_raw``, its raw file too (:func:`load_realisation`). A verified raw file whose summary
    is missing or corrupt is completed here, from the raw file (no tracking); a raw file is
    written without its summary when ``keep_raw`` (:func:`write_results`). Corrupt files are
    reported (one line each) and deleted.

    Returns
    -------
    (good, repaired) : lists of indices
        Finished realisations, and those where a corrupt file was found (recomputed by the run
        unless the raw file gave the summary back).
    """
    good, repaired = [], []
    indices = sorted(set(existing_realisations(out_dir)) | set(existing_summaries(out_dir)))
    for index in indices:
        if index >= n_realisations:
            continue
        found = {}
        for kind, path, load in (("raw", realisation_path(out_dir, index), load_realisation),
                                 ("summary", summary_path(out_dir, index), load_summary)):
            if not path.exists():
                found[kind] = None
                continue
            try:
                found[kind] = load(out_dir, index, settings)
            except CorruptRealisationError as exc:
                report(f"{exc}; recomputing it")
                path.unlink()
                found[kind] = None
                if index not in repaired:
                    repaired.append(index)
        if found["summary"] is None and found["raw"] is not None:
            write_summary(out_dir, realisation_summary(found["raw"], settings))
            found["summary"] = True
        if found["summary"] is not None and (found["raw"] is not None or not keep_raw):
            good.append(index)
    return good, repaired


def run_ensemble(settings: SimulationSettings, out_dir, n_realisations: int, scheduler=None,
                 workers: int = 1, progress: bool = True, scheduler_timeout: float = 10.0,
                 report=_stderr_line, keep_raw: bool = True) -> dict:
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
        this process, so Ctrl-C is safe at any moment; see the comment above ``_worker_main``).
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
    if isinstance(n_realisations, bool) or int(n_realisations) != n_realisations or n_realisations < 1:
        raise ValueError(f"number of realisations must be a positive integer, got {n_realisations!r}")
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if not (math.isfinite(scheduler_timeout) and scheduler_timeout > 0):
        raise ValueError(f"scheduler timeout must be a positive number of seconds, got {scheduler_timeout!r}")
    n_realisations, workers = int(n_realisations), int(workers)
    estimate = check_simulation_size(settings, 1 if scheduler else workers)
    out_dir = prepare_output(out_dir, settings, n_realisations)
    skipped, repaired = verify_existing(out_dir, settings, n_realisations, report, keep_raw)
    present = set(skipped)
    todo = [i for i in range(n_realisations) if i not in present]
    total_seconds = estimate["seconds_per_realisation"] * math.ceil(len(todo) / (1 if scheduler else workers))
    if total_seconds > LONG_RUN_SECONDS:
        report(f"note: about {_format_seconds(estimate['seconds_per_realisation'])} per realisation, "
               f"{_format_seconds(total_seconds)} for the {len(todo)} to run (conservative estimate); "
               f"Ctrl-C keeps the finished files, rerunning resumes")
    client = _connect_dask(scheduler, scheduler_timeout) if scheduler and todo else None
    written = []

    from tqdm.auto import tqdm
    bar = tqdm(total=n_realisations, initial=len(skipped), disable=not progress,
               desc="realisations", unit="real", file=sys.stderr)

    def done(index):
        written.append(int(index))
        bar.update()

    try:
        if client is not None:
            from dask.distributed import as_completed
            futures = [client.submit(run_realisation, settings, i, pure=False) for i in todo]
            try:
                for fut in as_completed(futures):
                    result = fut.result()
                    write_results(out_dir, result, settings, keep_raw)
                    done(result["index"])
            finally:
                for fut in futures:
                    fut.cancel()
                client.close()
        elif todo:
            _run_local(settings, out_dir, todo, workers, done, keep_raw)
    finally:
        bar.close()
    return {"out": str(out_dir), "written": sorted(written), "skipped": skipped, "repaired": repaired,
            "total": len(set(existing_realisations(out_dir)) | set(existing_summaries(out_dir)))}


# ---------------------------------------------------------------------------------------------
# summaries
# ---------------------------------------------------------------------------------------------

def white_noise_level(map_values, cl=None, lmax_signal: int = 1) -> float:
    """Shot-noise power ``N`` of a HEALPix map: the flat ``C_l`` of its unresolved part.

    For ``N_pix`` uncorrelated pixels of variance ``sigma^2``, ``anafast`` returns on average
    ``N = 4 pi sigma^2 / N_pix`` at every ``l`` (Parseval). A map also holds resolved signal;
    assuming the signal lives at ``l <= L = lmax_signal`` the estimator is

        N = 4 pi [ Var_2 - sum_{l=2}^{L} (2l+1) C_l / 4 pi ] / (N_pix - (L+1)^2),

    with ``Var_2`` the pixel variance after removing the fitted monopole and dipole and ``C_l``
    the map's spectrum. ``L = 1`` is the plain white-noise level of the residual map. The
    estimator is unbiased for white noise plus any signal confined to ``l <= L``.

    Parameters
    ----------
    map_values : array_like, shape (N_pix,)
    cl : array_like, optional
        ``anafast`` spectrum of the map, needed up to ``lmax_signal`` when ``lmax_signal >= 2``.
    lmax_signal : int
        ``L``; multipoles ``2..L`` are treated as resolved signal.

    Notes
    -----
    Chapter *Validation*, :math:numref:`eq-val-shotnoise`.
    """
    m = np.asarray(map_values, dtype=np.float64)
    n_pix = m.size
    # least-squares monopole + dipole fit (pixels have equal area, so plain least squares)
    design = np.column_stack([np.ones(n_pix), pixel_directions(nside_of(n_pix))])
    coefficients, *_ = np.linalg.lstsq(design, m, rcond=None)
    residual_variance = np.mean((m - design @ coefficients) ** 2)
    lmax_signal = int(lmax_signal)
    modes_left = n_pix - (max(lmax_signal, 1) + 1) ** 2
    if modes_left <= 0:
        raise ValueError(f"lmax_signal = {lmax_signal} leaves no modes for the noise at N_pix = {n_pix}")
    if lmax_signal >= 2:
        ell = np.arange(2, lmax_signal + 1)
        residual_variance -= np.sum((2 * ell + 1) * np.asarray(cl)[ell]) / (4.0 * math.pi)
    return float(4.0 * math.pi * residual_variance / modes_left)


def signal_multipole_limit(nside: int) -> int:
    """``L = 2 nside``: multipoles treated as resolved signal by the shot-noise estimator."""
    return 2 * int(nside)


def check_lmax(lmax, nside: int) -> int:
    """``lmax`` (default ``3 nside - 1``), refused outside ``1 .. 3 nside - 1``.

    A map of ``12 nside^2`` pixels resolves multipoles up to about ``3 nside - 1``; above that
    the transform only aliases pixel-scale structure (and healpy warns on stdout from
    ``4 nside`` on), so such ``C_l`` carry no information.
    """
    limit = 3 * int(nside) - 1
    if lmax is None:
        return limit
    if isinstance(lmax, bool) or int(lmax) != lmax or not 1 <= lmax <= limit:
        raise ValueError(f"lmax must be an integer from 1 to 3 nside - 1 = {limit} for nside {nside} "
                         f"(higher multipoles are not resolved by the map), got {lmax!r}")
    return int(lmax)


def summary_memory(nside: int, n_times: int, lmax: int) -> int:
    """Peak bytes of the statistics of one realisation file (:func:`realisation_statistics`).

    Per pixel and time: the float32 file array and its float64 copy, three intensity maps and
    the squared displacements (~ 100 B); per map the ``a_lm`` (``(lmax+1)(lmax+2)/2`` complex).
    """
    n_pix = 12 * int(nside) ** 2
    n_alm = (lmax + 1) * (lmax + 2) // 2
    return PROCESS_BASE_BYTES + n_pix * (100 * n_times + 64) + 3 * n_times * n_alm * 16


def realisation_statistics(delta_r, times, lmax=None) -> dict:
    """Per-realisation ``C_l``, shot noise and mean-square displacement.

    Parameters
    ----------
    delta_r : array_like, shape (n_times, n_pix, 3)
    times : array_like, shape (n_times,)
    lmax : int, optional
        Largest multipole (default ``3 nside - 1``).

    Returns
    -------
    dict
        ``C_ell`` ``(n_times, lmax+1)`` and ``shot_noise`` ``(n_times,)``, both averaged over the
        three gradient axes, and per axis ``C_ell_axis`` ``(n_times, 3, lmax+1)``,
        ``shot_noise_axis`` ``(n_times, 3)``; ``msd`` ``(n_times,)`` = ``<|Delta r|^2>`` over
        pixels and its parts ``msd_axis`` ``(n_times, 3)`` = ``<Delta x_i^2>``; ``lmax``. The
        shot noise treats ``l <= 2 nside`` as resolved signal (:func:`white_noise_level`).
    """
    delta_r = np.asarray(delta_r, dtype=np.float64)
    n_times, n_pix, _ = delta_r.shape
    nside = nside_of(n_pix)
    lmax = check_lmax(lmax, nside)
    # dI = Delta r . G with phi = 1, one map per (time, gradient axis)
    intensity = np.einsum("tpi,gi->tgp", delta_r, GRADIENT_AXES).reshape(-1, n_pix)
    lmax_signal = signal_multipole_limit(nside)
    lmax_transform = max(lmax, lmax_signal)
    # one batched transform: far cheaper than one anafast call per map on a busy machine
    import healpy as hp          # only the summaries need it; a run starts without it

    alms = hp.map2alm(intensity, lmax=lmax_transform, pol=False)
    cl_all = np.array([hp.alm2cl(alm) for alm in alms])
    noise = np.array([white_noise_level(m, c, lmax_signal) for m, c in zip(intensity, cl_all)])
    noise = noise.reshape(n_times, len(GRADIENT_AXES))
    cl = cl_all[:, :lmax + 1].reshape(n_times, len(GRADIENT_AXES), lmax + 1)
    msd_axis = np.mean(delta_r ** 2, axis=1)
    msd = np.mean(np.sum(delta_r ** 2, axis=2), axis=1)
    return {"C_ell": cl.mean(axis=1), "shot_noise": noise.mean(axis=1), "msd": msd,
            "C_ell_axis": cl, "shot_noise_axis": noise, "msd_axis": msd_axis, "lmax": lmax,
            "times": np.asarray(times, dtype=float)}


def _check_summary_memory(settings: SimulationSettings) -> None:
    need = summary_memory(settings.nside, len(settings.times), check_lmax(None, settings.nside))
    memory = available_memory()
    if need > memory:
        raise ValueError(f"summarising nside {settings.nside} at lmax {check_lmax(None, settings.nside)} "
                         f"needs about {_format_bytes(need)} of memory; this machine has "
                         f"{_format_bytes(memory)}")


def summary_from_raw(out_dir, index: int, settings: SimulationSettings) -> dict:
    """:func:`realisation_summary` of the verified raw file of realisation ``index``.

    Raises
    ------
    CorruptRealisationError
        The raw file is unreadable or contradicts the manifest (one line naming it).
    ValueError
        Too little memory for the transform.
    """
    _check_summary_memory(settings)
    try:
        data = load_realisation(out_dir, index, settings)
    except CorruptRealisationError as exc:
        raise CorruptRealisationError(f"{exc} (`qlt simulate` with the manifest's settings "
                                      f"recomputes it)") from None
    return realisation_summary(data, settings)


def _store_summary(out_dir, summary: dict) -> bool:
    """Write a summary; ``False`` (and nothing left behind) where the directory is read-only."""
    try:
        write_summary(out_dir, summary)
        return True
    except OSError:
        _temporary_path(summary_path(out_dir, int(summary["index"])), os.getpid()).unlink(missing_ok=True)
        return False


def ensemble_statistics(out_dir, lmax=None, cache: bool = True) -> dict:
    """Per-realisation statistics of a simulation directory, from its summary files.

    A realisation counts when it has a summary file (:func:`load_summary`) or a raw file
    (:func:`load_realisation`). A verified summary is used as it is; where it is missing or
    fails verification the statistics are computed from the raw file and, with ``cache``,
    written as a new summary. So a directory of summaries alone (raw files deleted or never
    kept) and one of raw files alone (runs before summaries existed) both work.

    Parameters
    ----------
    out_dir : path
    lmax : int, optional
        Largest multipole returned (default and at most ``3 nside - 1``).
    cache : bool
        ``False``: recompute every realisation that has a raw file from it, and write nothing
        (summaries are still used where there is no raw file).

    Returns
    -------
    dict
        ``indices``, ``times``, ``lmax``, ``C_ell`` ``(n_real, n_times, lmax+1)``,
        ``shot_noise`` and ``msd`` ``(n_real, n_times)`` (averaged over the gradient axes), and
        per axis ``C_ell_axis`` ``(n_real, n_times, 3, lmax+1)``, ``shot_noise_axis`` and
        ``msd_axis`` ``(n_real, n_times, 3)``; ``summaries_written`` (indices).

    Raises
    ------
    ValueError
        No realisation or summary files, ``lmax`` out of range, too little memory, or a file that
        is unreadable or contradicts the manifest and cannot be replaced (one line naming it).
    """
    manifest = load_manifest(out_dir)
    settings = SimulationSettings.from_dict(manifest["settings"])
    raw, summarised = set(existing_realisations(out_dir)), set(existing_summaries(out_dir))
    indices = sorted(raw | summarised)
    if not indices:
        raise ValueError(f"no realisation or summary files in {out_dir}")
    lmax = check_lmax(lmax, settings.nside)
    rows, written = [], []
    for index in indices:
        summary = None
        if index in summarised and (index not in raw or cache):
            try:
                summary = load_summary(out_dir, index, settings)
            except CorruptRealisationError as exc:
                if index not in raw:
                    raise CorruptRealisationError(f"{exc}; no raw file to recompute it from (`qlt simulate` "
                                                  f"with the manifest's settings recomputes both)") from None
        if summary is None:
            summary = summary_from_raw(out_dir, index, settings)
            if cache and _store_summary(out_dir, summary):
                written.append(index)
        rows.append(summary)

    def stack(name):
        return np.stack([np.asarray(r[name], dtype=float) for r in rows])

    cl_axis, noise_axis = stack("C_ell_axis")[..., :lmax + 1], stack("shot_noise_axis")
    return {"indices": np.array(indices), "times": np.asarray(rows[-1]["times"], dtype=float),
            "lmax": lmax, "C_ell": cl_axis.mean(axis=2), "shot_noise": noise_axis.mean(axis=2),
            "msd": stack("msd"), "C_ell_axis": cl_axis, "shot_noise_axis": noise_axis,
            "msd_axis": stack("msd_axis"), "summaries_written": written}


def write_summaries(out_dir) -> dict:
    """Give every raw realisation file of ``out_dir`` a verified summary file.

    Converts a run made before summaries existed (or repairs missing and corrupt summaries);
    afterwards the raw files may be deleted, :func:`summarize` needs only the summaries.

    Returns
    -------
    dict
        ``out``, ``written`` (indices whose summary was computed now), ``kept`` (valid summaries
        already there), ``summaries`` (summary files now in the directory).
    """
    manifest = load_manifest(out_dir)
    settings = SimulationSettings.from_dict(manifest["settings"])
    written, kept = [], []
    for index in existing_realisations(out_dir):
        try:
            load_summary(out_dir, index, settings)
            kept.append(index)
            continue
        except CorruptRealisationError:
            pass
        summary = summary_from_raw(out_dir, index, settings)
        try:
            write_summary(out_dir, summary)
        except OSError as exc:
            raise ValueError(_os_error_line("write to", out_dir, exc)) from None
        written.append(index)
    return {"out": str(out_dir), "written": written, "kept": kept,
            "summaries": len(existing_summaries(out_dir))}


def _standard_error(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """Standard error of the mean over realisations (``nan`` with one realisation)."""
    n = a.shape[axis]
    if n < 2:
        return np.full(np.delete(a.shape, axis), np.nan)
    return np.std(a, axis=axis, ddof=1) / math.sqrt(n)


def interval_slopes(msd, times) -> np.ndarray:
    """Per realisation, the slope ``Delta<|Delta r|^2> / 6 Delta t`` over each interval.

    Parameters
    ----------
    msd : array_like, shape (n_real, n_times)
        ``<|Delta r|^2>`` per realisation (units ``r_g^2``).
    times : array_like, shape (n_times,)
        Back-tracking times (``1/Omega``); the first interval starts at ``t = 0``.

    Returns
    -------
    ndarray, shape (n_real, n_times)
        Units ``c r_g``; their ensemble means are :func:`interval_diffusion`'s ``value``.

    Notes
    -----
    Chapter *Validation*, :math:numref:`eq-val-interval-diffusion`.
    """
    msd = np.atleast_2d(np.asarray(msd, dtype=float))
    padded_t = np.concatenate([[0.0], np.asarray(times, dtype=float)])
    padded = np.concatenate([np.zeros((msd.shape[0], 1)), msd], axis=1)
    return np.diff(padded, axis=1) / (6.0 * np.diff(padded_t))[None, :]


def interval_diffusion(msd, times) -> dict:
    """Diffusion coefficient over each interval between back-tracking times.

    ``(<|Delta r|^2>(t_i) - <|Delta r|^2>(t_{i-1})) / 6 (t_i - t_{i-1})`` (with ``t_0 = 0``):
    unlike the running ``D(t) = <|Delta r|^2>/6t`` it forgets the ballistic start, so it reaches
    the plateau ``K`` as soon as the transport is diffusive (:func:`plateau_diffusion`).

    Returns
    -------
    dict
        ``start``, ``end`` (interval ends), ``value`` and ``err`` (mean and standard error over
        realisations; ``err`` is ``nan`` with one realisation), and ``change``, ``change_err``:
        the change of the slope from each interval to the next, with its standard error paired
        realisation by realisation (the slopes of one realisation are correlated, so this is
        smaller than the two errors combined).
    """
    slopes = interval_slopes(msd, times)
    err = _standard_error(slopes)
    change = np.diff(slopes, axis=1)
    times = np.asarray(times, dtype=float)
    return {"start": np.concatenate([[0.0], times[:-1]]).tolist(), "end": times.tolist(),
            "value": slopes.mean(axis=0).tolist(), "err": err.tolist(),
            "change": change.mean(axis=0).tolist(), "change_err": _standard_error(change).tolist()}


def plateau_diffusion(msd, times) -> dict:
    """Estimate of the diffusion coefficient ``K = lim D(t)`` from the slope of the mean-square
    displacement between the last two times.

    Where ``D(t) = <Delta x_i^2>/(2t)`` approaches ``K`` as ``K - b/t`` (the running coefficient
    ``(1/3t) int_0^t (t - tau) R(tau) dtau`` with an integrable ``tau R(tau)``), the slope
    ``(<Delta x_i^2>(t_n) - <Delta x_i^2>(t_{n-1})) / 2(t_n - t_{n-1})`` equals ``K`` exactly,
    while ``D(t_n)`` still lies ``b/t_n`` below it. The slope between the two times before
    (``previous``) tests that form: both agree when the ``1/t`` approach holds.

    Parameters
    ----------
    msd : array_like, shape (n_real, n_times)
        ``<|Delta r|^2>`` per realisation (units ``r_g^2``).
    times : array_like, shape (n_times,)

    Returns
    -------
    dict
        ``value``, ``err`` (standard error over realisations; ``None`` with one realisation),
        ``previous``, ``previous_err`` (the slope one interval earlier, ``None`` with one time)
        and ``change`` (last minus previous, in its standard errors).
    """
    slopes = interval_slopes(msd, times)

    def mean_err(a):
        err = float(_standard_error(a))
        return float(a.mean()), (None if math.isnan(err) else err)

    value, err = mean_err(slopes[:, -1])
    out = {"value": value, "err": err, "previous": None, "previous_err": None, "change": None}
    if slopes.shape[1] >= 2:
        out["previous"], out["previous_err"] = mean_err(slopes[:, -2])
        difference, difference_err = mean_err(slopes[:, -1] - slopes[:, -2])
        if difference_err:
            out["change"] = difference / difference_err
    return out


def summarize(out_dir, lmax=None, cache: bool = True) -> dict:
    """Ensemble summary of a simulation directory.

    Parameters
    ----------
    out_dir : path
        Directory written by :func:`run_ensemble`.
    lmax : int, optional
        Largest multipole (default ``3 nside - 1``).
    cache : bool
        Use and write the per-realisation summary files (:func:`ensemble_statistics`).

    Returns
    -------
    dict
        ``times``; ``ell``; ``C_ell`` (ensemble mean, shot noise subtracted, per time);
        ``C_ell_raw``; ``C_ell_err`` (standard error of the mean over realisations);
        ``C_ell_axis`` (ensemble mean per gradient axis ``x, y, z``, shot noise subtracted);
        ``shot_noise`` (per time); ``diffusion_coefficient`` ``<Delta x_i^2>/(2t)`` per time
        (units ``c r_g``) and its standard error; ``diffusion_plateau`` and its error
        (:func:`plateau_diffusion`); ``realisations``; ``settings``; and the
        per-realisation arrays ``per_realisation`` (not JSON-serialised by the CLI);
        ``expected`` (the ensemble size of the manifest) and ``missing`` (indices below it
        without a file): an incomplete ensemble has ``realisations < expected``.

    Notes
    -----
    Chapter *Validation*, :math:numref:`eq-val-liouville`, :math:numref:`eq-val-shotnoise` and
    :math:numref:`eq-val-diffusion`.
    """
    manifest = load_manifest(out_dir)
    stats = ensemble_statistics(out_dir, lmax=lmax, cache=cache)
    times, cl, noise, msd = stats["times"], stats["C_ell"], stats["shot_noise"], stats["msd"]
    n = len(stats["indices"])
    sem = _standard_error

    cl_sub = cl - noise[:, :, None]
    diffusion = msd / (6.0 * times[None, :])               # <Delta x_i^2>/(2t), averaged over i
    plateau = plateau_diffusion(msd, times)
    return {
        "times": times.tolist(),
        "ell": list(range(cl.shape[2])),
        "C_ell": cl_sub.mean(axis=0).tolist(),
        "C_ell_raw": cl.mean(axis=0).tolist(),
        "C_ell_err": sem(cl_sub).tolist(),
        "C_ell_axis": (stats["C_ell_axis"] - stats["shot_noise_axis"][..., None]).mean(axis=0).tolist(),
        "shot_noise": noise.mean(axis=0).tolist(),
        "diffusion_coefficient": diffusion.mean(axis=0).tolist(),
        "diffusion_coefficient_err": sem(diffusion).tolist(),
        "diffusion_plateau": plateau["value"],
        "diffusion_plateau_err": plateau["err"],
        "realisations": n,
        "expected": int(manifest.get("realisations", n)),
        "missing": sorted(set(range(int(manifest.get("realisations", n)))) - set(stats["indices"].tolist())),
        "settings": manifest["settings"],
        "per_realisation": {name: stats[name] for name in ("indices", "C_ell", "shot_noise", "msd",
                                                            "C_ell_axis", "shot_noise_axis", "msd_axis")},
    }


def timed_realisation(settings: SimulationSettings, index: int = 0) -> float:
    """Wall time (s) of one realisation (used by the benchmark script)."""
    start = time.perf_counter()
    run_realisation(settings, index)
    return time.perf_counter() - start
