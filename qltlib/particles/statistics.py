"""Ensemble statistics of a simulation directory: mean C_l with errors, diffusion slopes, summary.

Chapter *Validation*, :math:numref:`eq-val-liouville`, :math:numref:`eq-val-shotnoise` and
:math:numref:`eq-val-diffusion`.
"""
from __future__ import annotations

import math

import numpy as np

from .map_statistics import check_lmax
from .runner import stderr_line
from .settings import SimulationSettings
from .store import (
    CorruptRealisationError,
    existing_realisations,
    existing_summaries,
    load_manifest,
    load_realisation,
    load_summary,
    realisation_path,
    store_summary,
    summary_from_raw,
)


def ensemble_statistics(out_dir, lmax=None, cache: bool = True, report=stderr_line) -> dict:
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
    report : callable
        Receives one line per file repaired or left out, naming it: every raw file is verified
        as ``qlt simulate`` verifies it (:func:`load_realisation`), and one that fails is not
        used; a corrupt or missing summary is recomputed from a valid raw file.

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
    raw_indices, summarised = set(existing_realisations(out_dir)), set(existing_summaries(out_dir))
    indices = sorted(raw_indices | summarised)
    if not indices:
        raise ValueError(f"no realisation or summary files in {out_dir}")
    lmax = check_lmax(lmax, settings.nside)
    rows, written = [], []
    for index in indices:
        raw, raw_error = None, None
        if index in raw_indices:
            try:
                raw = load_realisation(out_dir, index, settings)
            except CorruptRealisationError as exc:
                raw_error = exc
        resume = f"`qlt simulate --resume {out_dir}` recomputes"
        summary = None
        if index in summarised and (raw is None or cache):
            try:
                summary = load_summary(out_dir, index, settings)
            except CorruptRealisationError as exc:
                if raw_error is not None:
                    raise CorruptRealisationError(f"{raw_error}; its summary fails too ({resume} "
                                                  f"both)") from None
                if raw is None:
                    raise CorruptRealisationError(f"{exc}; no raw file to recompute it from "
                                                  f"({resume} both)") from None
                report(f"{exc}; recomputed from {realisation_path(out_dir, index).name}")
        if raw_error is not None:
            if summary is None:
                raise CorruptRealisationError(f"{raw_error}; no summary to use instead ({resume} "
                                              f"it)") from None
            report(f"{raw_error}; not used, its summary is ({resume} it)")
        if summary is None:
            summary = summary_from_raw(out_dir, index, settings, raw)
            if cache and store_summary(out_dir, summary):
                written.append(index)
        rows.append(summary)

    def stack(name):
        return np.stack([np.asarray(r[name], dtype=float) for r in rows])

    cl_axis, noise_axis = stack("C_ell_axis")[..., :lmax + 1], stack("shot_noise_axis")
    return {"indices": np.array(indices), "times": np.asarray(rows[-1]["times"], dtype=float),
            "lmax": lmax, "C_ell": cl_axis.mean(axis=2), "shot_noise": noise_axis.mean(axis=2),
            "msd": stack("msd"), "C_ell_axis": cl_axis, "shot_noise_axis": noise_axis,
            "msd_axis": stack("msd_axis"), "summaries_written": written}


def standard_error(a: np.ndarray, axis: int = 0) -> np.ndarray:
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
    err = standard_error(slopes)
    change = np.diff(slopes, axis=1)
    times = np.asarray(times, dtype=float)
    return {"start": np.concatenate([[0.0], times[:-1]]).tolist(), "end": times.tolist(),
            "value": slopes.mean(axis=0).tolist(), "err": err.tolist(),
            "change": change.mean(axis=0).tolist(), "change_err": standard_error(change).tolist()}


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
        err = float(standard_error(a))
        return float(a.mean()), (None if math.isnan(err) else err)

    value, err = mean_err(slopes[:, -1])
    out = {"value": value, "err": err, "previous": None, "previous_err": None, "change": None}
    if slopes.shape[1] >= 2:
        out["previous"], out["previous_err"] = mean_err(slopes[:, -2])
        difference, difference_err = mean_err(slopes[:, -1] - slopes[:, -2])
        if difference_err:
            out["change"] = difference / difference_err
    return out


def summarize(out_dir, lmax=None, cache: bool = True, report=stderr_line) -> dict:
    """Ensemble summary of a simulation directory.

    Parameters
    ----------
    out_dir : path
        Directory written by :func:`run_ensemble`.
    lmax : int, optional
        Largest multipole (default ``3 nside - 1``).
    cache : bool
        Use and write the per-realisation summary files (:func:`ensemble_statistics`).
    report : callable
        One line per file repaired or left out (:func:`ensemble_statistics`).

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
    stats = ensemble_statistics(out_dir, lmax=lmax, cache=cache, report=report)
    times, cl, noise, msd = stats["times"], stats["C_ell"], stats["shot_noise"], stats["msd"]
    n = len(stats["indices"])
    sem = standard_error

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


def time_index(times, time=None, tolerance: float = 1e-6) -> int:
    """Index of back-tracking time ``time`` in ``times`` (default: the last).

    Raises
    ------
    ValueError
        ``time`` is not one of ``times`` (relative ``tolerance``); the message lists them.
    """
    times = np.asarray(times, dtype=float)
    if time is None:
        return times.size - 1
    time = float(time)
    match = np.flatnonzero(np.abs(times - time) <= tolerance * max(abs(time), 1.0))
    if not math.isfinite(time) or match.size == 0:
        listed = ", ".join(f"{t:g}" for t in times)
        raise ValueError(f"time {time:g} is not in the simulation; its times are Omega t = {listed}")
    return int(match[0])
