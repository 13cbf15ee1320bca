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
shape ``(n_times, n_pix, 3)``; written to a temporary file and moved into place with
:func:`os.replace`, so a killed run never leaves a truncated file). Existing realisation files are
skipped on restart.
"""
from __future__ import annotations

import concurrent.futures
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

import healpy as hp
import numpy as np

from . import __version__
from .spectrum import make_spectrum
from .tracking import DEFAULT_RESYNC_EVERY, MAX_PHASE_STEP, WORKING_PRECISIONS, backtrack
from .turbulence import synthesise_turbulence

MANIFEST_NAME = "manifest.json"
STATISTICS_CACHE = "statistics.npz"
#: bumped whenever the per-realisation statistics change meaning (invalidates the cache)
STATISTICS_VERSION = 2
REALISATION_PATTERN = re.compile(r"^realisation_(\d{5})\.npz$")
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
        ``white``, ``kolmogorov`` or ``logflat`` (:mod:`qltlib.spectrum`).
    k0, k1 : float
        Turbulence band in units of ``1/r_g``.
    step_fraction : float
        ``dt = step_fraction * min(1/k_max, r_g)``.
    resync_every : int
        Steps between exact phase re-synchronisations of the tracking kernel.
    precision : {"float64", "float32"}
        Working precision of the per-mode arithmetic of the tracking kernel
        (:func:`qltlib.tracking.integrate`).
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
    precision: str = "float64"

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
        if self.precision not in WORKING_PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(WORKING_PRECISIONS)}, got {self.precision!r}")

    @property
    def n_pix(self) -> int:
        """Number of particles per realisation, ``12 nside^2``."""
        return hp.nside2npix(self.nside)

    def make_spectrum(self):
        """The :class:`~qltlib.spectrum.TurbulenceSpectrum` these settings name."""
        return make_spectrum(self.spectrum, self.k0, self.k1)

    def as_dict(self) -> dict:
        """JSON-friendly settings (the content of ``manifest.json``)."""
        d = dataclasses.asdict(self)
        d["times"] = list(self.times)
        return d


def realisation_seed(seed: int, index: int) -> np.random.SeedSequence:
    """Seed of realisation ``index``: ``SeedSequence(seed).spawn(n)[index]`` for any ``n``."""
    return np.random.SeedSequence(entropy=int(seed), spawn_key=(int(index),))


def pixel_directions(nside: int) -> np.ndarray:
    """Unit vectors of the HEALPix (RING) pixel centres, shape ``(12 nside^2, 3)``."""
    return np.array(hp.pix2vec(nside, np.arange(hp.nside2npix(nside)))).T


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
        ``(n_times, n_pix, 3)``, units ``r_g``), ``max_speed_error`` (``max | |v| - 1 |``).

    Notes
    -----
    Chapter *Validation*, :math:numref:`eq-val-liouville`.
    """
    field = synthesise_turbulence(settings.make_spectrum(), settings.n_modes,
                                  np.random.default_rng(realisation_seed(settings.seed, index)))
    track = backtrack(field, pixel_directions(settings.nside), settings.times,
                      step_fraction=settings.step_fraction, resync_every=settings.resync_every,
                      precision=settings.precision)
    speed_error = float(np.max(np.abs(np.linalg.norm(track.final_velocities, axis=1) - 1.0)))
    return {"index": int(index), "times": track.times, "delta_r": track.positions,
            "max_speed_error": speed_error}


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------

def realisation_path(out_dir, index: int) -> Path:
    """``DIR/realisation_NNNNN.npz`` of realisation ``index``."""
    return Path(out_dir) / f"realisation_{int(index):05d}.npz"


def existing_realisations(out_dir) -> list[int]:
    """Indices of the finished realisation files in ``out_dir`` (sorted)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    found = (REALISATION_PATTERN.match(p.name) for p in out_dir.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def write_realisation(out_dir, result: dict) -> Path:
    """Write one realisation atomically (temporary file in the same directory + ``os.replace``)."""
    path = realisation_path(out_dir, result["index"])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, index=np.int64(result["index"]), times=np.asarray(result["times"]),
                 delta_r=np.asarray(result["delta_r"], dtype=np.float32),
                 max_speed_error=np.float64(result["max_speed_error"]))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def _manifest(settings: SimulationSettings, n_realisations: int) -> dict:
    return {"settings": settings.as_dict(), "realisations": int(n_realisations),
            "seeding": "numpy.random.SeedSequence(entropy=seed, spawn_key=(index,))",
            "file_content": "delta_r float32 (n_times, n_pix, 3) in r_g; times in 1/Omega",
            "qltlib_version": __version__}


def prepare_output(out_dir, settings: SimulationSettings, n_realisations: int) -> Path:
    """Create ``out_dir`` with its manifest, or check that an existing manifest matches.

    Raises
    ------
    SettingsMismatchError
        If ``out_dir`` already holds a manifest with different settings.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST_NAME
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        old_settings = old.get("settings", {})
        new_settings = settings.as_dict()
        differ = sorted(k for k in set(old_settings) | set(new_settings)
                        if old_settings.get(k) != new_settings.get(k))
        if differ:
            raise SettingsMismatchError(
                f"{out_dir} holds a run with different settings ({', '.join(differ)}); "
                f"use another --out directory")
        n_realisations = max(n_realisations, int(old.get("realisations", 0)))
    for stale in out_dir.glob(".*.tmp"):      # left behind by a killed run
        stale.unlink()
    tmp = manifest_path.with_name(f".{MANIFEST_NAME}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(_manifest(settings, n_realisations), indent=2) + "\n")
    os.replace(tmp, manifest_path)
    return out_dir


def load_manifest(out_dir) -> dict:
    """The manifest of a simulation directory; ValueError if there is none."""
    path = Path(out_dir) / MANIFEST_NAME
    if not path.exists():
        raise ValueError(f"no {MANIFEST_NAME} in {out_dir}: not a simulation directory")
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------------------------
# ensemble driver
# ---------------------------------------------------------------------------------------------

def _ignore_sigint():
    # worker processes leave Ctrl-C to the driver, which shuts them down
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


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


def run_ensemble(settings: SimulationSettings, out_dir, n_realisations: int, scheduler=None,
                 workers: int = 1, progress: bool = True, scheduler_timeout: float = 10.0) -> dict:
    """Run realisations ``0 .. n_realisations-1`` that are not yet in ``out_dir``.

    Parameters
    ----------
    settings : SimulationSettings
    out_dir : path
        Output directory (created; its manifest must match ``settings``).
    n_realisations : int
        Size of the ensemble.
    scheduler : str or None
        ``None``: run locally. ``workers == 1`` runs in this process, the tracking kernel already
        using every core (numba threads over particles); ``workers > 1`` uses that many local
        processes. ``"tcp://host:port"``: submit to an existing Dask cluster
        (:class:`dask.distributed.Client`); results are written here as they arrive.
    workers : int
        Local worker processes (ignored with a scheduler).
    progress : bool
        Show a tqdm progress bar on stderr.
    scheduler_timeout : float
        Seconds to wait for the Dask scheduler.

    Returns
    -------
    dict
        ``out``, ``written`` (indices written now), ``skipped`` (already present), ``total``.

    Raises
    ------
    ValueError
        Bad settings, mismatched manifest, or an unreachable scheduler.
    """
    if int(n_realisations) != n_realisations or n_realisations < 1:
        raise ValueError(f"number of realisations must be a positive integer, got {n_realisations!r}")
    if int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    client = _connect_dask(scheduler, scheduler_timeout) if scheduler else None
    out_dir = prepare_output(out_dir, settings, int(n_realisations))
    done = set(existing_realisations(out_dir))
    todo = [i for i in range(int(n_realisations)) if i not in done]
    skipped = sorted(done & set(range(int(n_realisations))))
    written = []

    from tqdm.auto import tqdm
    bar = tqdm(total=int(n_realisations), initial=len(skipped), disable=not progress,
               desc="realisations", unit="real", file=sys.stderr)
    try:
        if client is not None:
            from dask.distributed import as_completed
            futures = [client.submit(run_realisation, settings, i, pure=False) for i in todo]
            try:
                for fut in as_completed(futures):
                    result = fut.result()
                    write_realisation(out_dir, result)
                    written.append(result["index"])
                    bar.update()
            finally:
                for fut in futures:
                    fut.cancel()
                client.close()
        elif workers == 1:
            for i in todo:
                try:
                    result = run_realisation(settings, i)
                except SystemError as exc:
                    # Ctrl-C that lands in a Python callback of the numba dispatcher surfaces as
                    # SystemError with the KeyboardInterrupt as its cause: report it as what it is
                    if _caused_by_interrupt(exc):
                        raise KeyboardInterrupt from None
                    raise
                write_realisation(out_dir, result)
                written.append(i)
                bar.update()
        else:
            import multiprocessing
            ctx = multiprocessing.get_context("spawn")       # no fork after numba threads started
            pool = concurrent.futures.ProcessPoolExecutor(max_workers=int(workers), mp_context=ctx,
                                                          initializer=_ignore_sigint)
            try:
                futures = {pool.submit(run_realisation, settings, i): i for i in todo}
                for fut in concurrent.futures.as_completed(futures):
                    write_realisation(out_dir, fut.result())
                    written.append(futures[fut])
                    bar.update()
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                for proc in list((pool._processes or {}).values()):   # the workers we started
                    proc.terminate()
                raise
            pool.shutdown()
    finally:
        bar.close()
    return {"out": str(out_dir), "written": sorted(written), "skipped": skipped,
            "total": len(existing_realisations(out_dir))}


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
    design = np.column_stack([np.ones(n_pix), pixel_directions(hp.npix2nside(n_pix))])
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
        three gradient axes; ``msd`` ``(n_times,)`` = ``<|Delta r|^2>`` over pixels. The shot
        noise treats ``l <= 2 nside`` as resolved signal (:func:`white_noise_level`).
    """
    delta_r = np.asarray(delta_r, dtype=np.float64)
    n_times, n_pix, _ = delta_r.shape
    nside = hp.npix2nside(n_pix)
    lmax = 3 * nside - 1 if lmax is None else int(lmax)
    # dI = Delta r . G with phi = 1, one map per (time, gradient axis)
    intensity = np.einsum("tpi,gi->tgp", delta_r, GRADIENT_AXES).reshape(-1, n_pix)
    lmax_signal = signal_multipole_limit(nside)
    lmax_transform = max(lmax, lmax_signal)
    # one batched transform: far cheaper than one anafast call per map on a busy machine
    alms = hp.map2alm(intensity, lmax=lmax_transform, pol=False)
    cl_all = np.array([hp.alm2cl(alm) for alm in alms])
    noise = np.array([white_noise_level(m, c, lmax_signal) for m, c in zip(intensity, cl_all)])
    noise = noise.reshape(n_times, len(GRADIENT_AXES))
    cl = cl_all[:, :lmax + 1].reshape(n_times, len(GRADIENT_AXES), lmax + 1)
    msd = np.mean(np.sum(delta_r ** 2, axis=2), axis=1)
    return {"C_ell": cl.mean(axis=1), "shot_noise": noise.mean(axis=1), "msd": msd,
            "times": np.asarray(times, dtype=float)}


def _file_fingerprint(out_dir, indices) -> np.ndarray:
    return np.array([[i, realisation_path(out_dir, i).stat().st_size] for i in indices], dtype=np.int64)


def ensemble_statistics(out_dir, lmax=None, cache: bool = True) -> dict:
    """Per-realisation statistics of every realisation file in ``out_dir``, cached.

    The cache ``DIR/statistics.npz`` holds, per realisation, ``C_ell`` ``(n_times, lmax+1)``,
    ``shot_noise`` and ``msd`` (a compact summary of the ensemble); rows of realisations already
    in it (same index and file size, same ``lmax``) are reused and only new files are read.

    Returns
    -------
    dict
        ``indices``, ``times``, ``lmax``, ``C_ell`` ``(n_real, n_times, lmax+1)``,
        ``shot_noise`` and ``msd`` ``(n_real, n_times)``.
    """
    manifest = load_manifest(out_dir)
    indices = existing_realisations(out_dir)
    if not indices:
        raise ValueError(f"no realisation files in {out_dir}")
    nside = int(manifest["settings"]["nside"])
    lmax = 3 * nside - 1 if lmax is None else int(lmax)
    if lmax < 1:
        raise ValueError(f"lmax must be a positive integer, got {lmax!r}")
    fingerprint = _file_fingerprint(out_dir, indices)
    cache_path = Path(out_dir) / STATISTICS_CACHE
    known = {}
    if cache and cache_path.exists():
        with np.load(cache_path) as old:
            if int(old["lmax"]) == lmax and "version" in old.files \
                    and int(old["version"]) == STATISTICS_VERSION:
                for row, (index, size) in enumerate(old["fingerprint"]):
                    known[(int(index), int(size))] = (old["C_ell"][row], old["shot_noise"][row], old["msd"][row])
            times = old["times"]
    rows = []
    for index, size in fingerprint:
        key = (int(index), int(size))
        if key not in known:
            with np.load(realisation_path(out_dir, index)) as data:
                stats = realisation_statistics(data["delta_r"], data["times"], lmax=lmax)
                times = stats["times"]
            known[key] = (stats["C_ell"], stats["shot_noise"], stats["msd"])
        rows.append(known[key])
    result = {"indices": np.array(indices), "times": np.asarray(times, dtype=float), "lmax": lmax,
              "C_ell": np.stack([r[0] for r in rows]), "shot_noise": np.stack([r[1] for r in rows]),
              "msd": np.stack([r[2] for r in rows])}
    if cache:
        tmp = cache_path.with_name(f".{STATISTICS_CACHE}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, version=STATISTICS_VERSION, fingerprint=fingerprint, lmax=lmax, times=result["times"],
                     C_ell=result["C_ell"],
                     shot_noise=result["shot_noise"], msd=result["msd"])
        os.replace(tmp, cache_path)
    return result


def summarize(out_dir, lmax=None, cache: bool = True) -> dict:
    """Ensemble summary of a simulation directory.

    Parameters
    ----------
    out_dir : path
        Directory written by :func:`run_ensemble`.
    lmax : int, optional
        Largest multipole (default ``3 nside - 1``).
    cache : bool
        Read and update the per-realisation cache ``statistics.npz`` (:func:`ensemble_statistics`).

    Returns
    -------
    dict
        ``times``; ``ell``; ``C_ell`` (ensemble mean, shot noise subtracted, per time);
        ``C_ell_raw``; ``C_ell_err`` (standard error of the mean over realisations);
        ``shot_noise`` (per time); ``diffusion_coefficient`` ``<Delta x_i^2>/(2t)`` per time
        (units ``c r_g``) and its standard error; ``realisations``; ``settings``; and the
        per-realisation arrays ``per_realisation`` (not JSON-serialised by the CLI).

    Notes
    -----
    Chapter *Validation*, :math:numref:`eq-val-liouville`, :math:numref:`eq-val-shotnoise` and
    :math:numref:`eq-val-diffusion`.
    """
    manifest = load_manifest(out_dir)
    stats = ensemble_statistics(out_dir, lmax=lmax, cache=cache)
    times, cl, noise, msd = stats["times"], stats["C_ell"], stats["shot_noise"], stats["msd"]
    n = len(stats["indices"])

    def sem(a):
        return np.std(a, axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.full(a.shape[1:], np.nan)

    cl_sub = cl - noise[:, :, None]
    diffusion = msd / (6.0 * times[None, :])               # <Delta x_i^2>/(2t), averaged over i
    return {
        "times": times.tolist(),
        "ell": list(range(cl.shape[2])),
        "C_ell": cl_sub.mean(axis=0).tolist(),
        "C_ell_raw": cl.mean(axis=0).tolist(),
        "C_ell_err": sem(cl_sub).tolist(),
        "shot_noise": noise.mean(axis=0).tolist(),
        "diffusion_coefficient": diffusion.mean(axis=0).tolist(),
        "diffusion_coefficient_err": sem(diffusion).tolist(),
        "realisations": n,
        "settings": manifest["settings"],
        "per_realisation": {"indices": stats["indices"], "C_ell": cl, "shot_noise": noise, "msd": msd},
    }


def timed_realisation(settings: SimulationSettings, index: int = 0) -> float:
    """Wall time (s) of one realisation (used by the benchmark script)."""
    start = time.perf_counter()
    run_realisation(settings, index)
    return time.perf_counter() - start
