"""Convergence of a test-particle ensemble: steady times, changes between times, plateau of D.

Chapter *Validation* (convergence in time) and its appendix. Errors are over realisations;
quantities followed through several times are compared realisation by realisation (paired), and
constant fits use the covariance between times (generalised least squares).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from ..particles.statistics import (
    interval_diffusion,
    interval_slopes,
    standard_error,
    time_index,
)

#: multipoles of the convergence-time measurement (issue 9, item 2)
CONVERGENCE_ELLS = (1, 2, 4, 8, 16)
#: a C_l enters the convergence-time test only up to the last time it is measured to better
#: than this (2 sigma): later, shot noise swamps it and it can neither confirm nor refute
CONVERGENCE_MAX_RELATIVE_ERROR = 0.5
#: p-value at and above which C_l(t) from some time on counts as one steady value
CONVERGENCE_P_MIN = 0.05


def _generalised_least_squares(samples, design) -> dict:
    """Fit the ensemble means of ``samples`` ``(n_realisations, n_times)`` by ``design @ beta``.

    The means are weighted with their full covariance over times, estimated over realisations
    (``np.cov / n``); its inverse carries the factor ``(n - k - 2)/(n - 1)`` that makes it
    unbiased for ``k`` times and ``n`` realisations (Hartlap, Simon & Schneider 2007).

    Returns
    -------
    dict
        ``beta``, ``beta_cov`` (``(X^T C^-1 X)^-1``), ``chi2``, ``ndof`` (``k`` minus the number of
        parameters) and ``p_value`` (``nan`` when ``n <= k + 2`` or ``ndof < 1``).
    """
    n, k = samples.shape
    design = np.asarray(design, dtype=float).reshape(k, -1)
    mean = samples.mean(axis=0)
    ndof = k - design.shape[1]
    if n <= k + 2:
        return {"beta": None, "beta_cov": None, "chi2": math.nan, "ndof": ndof, "p_value": math.nan}
    covariance = np.atleast_2d(np.cov(samples, rowvar=False)) / n
    inverse = np.linalg.pinv(covariance) * (n - k - 2) / (n - 1)
    beta_cov = np.linalg.inv(design.T @ inverse @ design)
    beta = beta_cov @ design.T @ inverse @ mean
    residual = mean - design @ beta
    chi2 = float(residual @ inverse @ residual)
    p_value = float(stats.chi2.sf(chi2, ndof)) if ndof >= 1 else math.nan
    return {"beta": beta, "beta_cov": beta_cov, "chi2": chi2, "ndof": ndof, "p_value": p_value}


def _steady_tail_p_value(samples) -> tuple:
    """``(p, value, err)`` of the hypothesis that the ensemble means of ``samples``
    ``(n_realisations, n_times)`` are one value: :func:`_generalised_least_squares` with a
    constant. ``p`` is ``nan`` when ``n <= k + 2``."""
    n, k = samples.shape
    fit = _generalised_least_squares(samples, np.ones(k))
    if fit["beta"] is None:
        return math.nan, float(samples[:, -1].mean()), math.nan
    return fit["p_value"], float(fit["beta"][0]), math.sqrt(float(fit["beta_cov"][0, 0]))


def convergence_times(times, per_realisation_cl, ells=CONVERGENCE_ELLS, p_min: float = CONVERGENCE_P_MIN,
                      max_relative_error: float = CONVERGENCE_MAX_RELATIVE_ERROR) -> list:
    """Earliest time from which each ``C_l(t)`` is consistent with one steady value.

    The late time ``t_late`` is the latest at which ``C_l`` is measured (ensemble mean positive,
    relative standard error at most ``max_relative_error``; shot noise grows with ``t``, so high
    ``l`` are lost at late times). ``C_l`` is steady from ``t_i`` when the means at
    ``t_i <= t_j <= t_late`` are consistent with a constant: ``chi^2`` of the best constant, with
    the covariance of the means between times estimated over realisations, has ``p >= p_min``
    (:func:`_steady_tail_p_value`). The covariance matters: the particles back-tracked to ``t_j``
    and ``t_(j+1)`` share their first ``t_j``, so the means at neighbouring times are correlated
    (above 0.9 for the dipole), and a change between them is measured far better than the two
    standard errors suggest. One joint test per start time avoids the chance failures of checking
    each time against a noisy reference in turn. The late time always agrees with itself, so
    steadiness is shown only when ``t_i`` lies before it.

    Parameters
    ----------
    times : array_like, shape (n_times,)
    per_realisation_cl : array_like, shape (n_realisations, n_times, lmax+1)
        Shot-noise-subtracted ``C_l`` of each realisation.
    ells : sequence of int
        Multipoles to examine (those beyond the arrays are skipped).
    p_min : float
        Smallest p-value of the constant fit that counts as steady.
    max_relative_error : float
        ``l`` whose relative error exceeds this at every time are reported as not resolved.

    Returns
    -------
    list of dict
        Per ``l``: ``ell``, ``time`` (the earliest steady time, ``None`` if not shown),
        ``index``, ``steady`` (shown before the late time), ``resolved`` (at some time),
        ``late_time``, ``late_value``, ``late_err`` (the steady value: the constant fitted from
        ``time`` to ``late_time``, or ``C_l(t_late)`` when not steady), ``p_value`` (of that
        fit; ``None`` when not steady), ``last_change`` (``C_l(t_late) - C_l(t_prev)`` in units
        of the standard error of the change, paired realisation by realisation; ``nan`` with one
        time).

    Notes
    -----
    Chapter *Validation*, the convergence-time table (issue 9, item 2).
    """
    times = np.asarray(times, dtype=float)
    samples = np.asarray(per_realisation_cl, dtype=float)
    if samples.ndim != 3 or samples.shape[1] != times.size:
        raise ValueError("per_realisation_cl must have shape (n_realisations, n_times, lmax+1) matching times")
    if samples.shape[0] < 2:
        raise ValueError("the convergence time needs at least two realisations")
    rows = []
    for ell in ells:
        if not 0 <= int(ell) < samples.shape[2]:
            continue
        per_real = samples[:, :, ell]
        series = per_real.mean(axis=0)
        errors = standard_error(per_real)
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = errors / np.abs(series)
        # a negative C_l (shot noise over-subtracted) measures nothing, however small its error
        resolved_at = np.flatnonzero(np.isfinite(relative) & (relative <= max_relative_error) & (series > 0))
        # later times, where shot noise swamps C_l, can neither confirm nor refute steadiness
        last = int(resolved_at[-1]) if resolved_at.size else times.size - 1
        resolved = bool(resolved_at.size)
        index, late, late_err, p_value = last, float(series[last]), float(errors[last]), math.nan
        if resolved:
            for start in range(last):
                p, value, err = _steady_tail_p_value(per_real[:, start:last + 1])
                if p >= p_min:
                    index, late, late_err, p_value = start, value, err, p
                    break
        steady = resolved and index < last
        if last > 0:
            change = per_real[:, last] - per_real[:, last - 1]
            last_change = change.mean() / standard_error(change)
        else:
            last_change = math.nan
        rows.append({"ell": int(ell), "time": float(times[index]) if steady else None, "index": int(index),
                     "steady": bool(steady), "resolved": resolved, "late_time": float(times[last]),
                     "late_value": late, "late_err": late_err,
                     "p_value": float(p_value) if math.isfinite(p_value) else None,
                     "last_change": float(last_change)})
    return rows


def signal_per_realisation(per_realisation: dict) -> np.ndarray:
    """Shot-noise-subtracted ``C_l`` of each realisation, shape ``(n_real, n_times, lmax+1)``,
    from ``summarize(...)["per_realisation"]`` (``C_ell`` with shot noise, ``shot_noise``)."""
    return (np.asarray(per_realisation["C_ell"], dtype=float)
            - np.asarray(per_realisation["shot_noise"], dtype=float)[..., None])


def multipole_ratio(per_realisation: dict, numerator: int = 2, denominator: int = 1) -> dict:
    """Ratio of ensemble means ``C_num / C_den`` per time, with a jackknife standard error.

    Parameters
    ----------
    per_realisation : dict
        ``summarize(...)["per_realisation"]``: ``C_ell`` ``(n_real, n_times, lmax+1)`` with shot
        noise, ``shot_noise`` ``(n_real, n_times)``.

    Notes
    -----
    The two means share realisations (a realisation with a strong dipole tends to have a strong
    quadrupole), so errors added in quadrature would be wrong; deleting one realisation at a time
    keeps the correlation.
    """
    cl = signal_per_realisation(per_realisation)
    if cl.shape[0] < 2:
        raise ValueError("the jackknife needs at least two realisations")
    ratio, leave_one_out = _ratio_with_leave_one_out(cl, numerator, denominator)
    return {"ratio": ratio.tolist(), "err": _jackknife_error(leave_one_out).tolist(), "numerator": int(numerator),
            "denominator": int(denominator)}


def _paired_series(samples) -> dict:
    """Mean and standard error per time of ``samples`` ``(n_real, n_times)``, and the change from
    each time to the next with its standard error paired realisation by realisation."""
    change = np.diff(samples, axis=1)
    return {"value": samples.mean(axis=0).tolist(), "err": standard_error(samples).tolist(),
            "change": change.mean(axis=0).tolist(), "change_err": standard_error(change).tolist()}


def _ratio_with_leave_one_out(cl, numerator: int, denominator: int) -> tuple:
    """Ratio of the ensemble means of two multipoles of ``cl`` ``(n_real, n_times, lmax+1)`` per
    time, and the same ratio with each realisation left out in turn ``(n_real, n_times)``."""
    top, bottom = cl[:, :, numerator], cl[:, :, denominator]
    return top.mean(0) / bottom.mean(0), (top.sum(0) - top) / (bottom.sum(0) - bottom)


def _jackknife_error(leave_one_out) -> np.ndarray:
    n = leave_one_out.shape[0]
    return np.sqrt((n - 1) / n * np.sum((leave_one_out - leave_one_out.mean(0)) ** 2, axis=0))


def successive_changes(summary: dict, ell: int = 1, numerator: int = 2, denominator: int = 1) -> dict:
    """How ``D(t)``, the interval slope of the mean-square displacement, ``C_ell`` and
    ``C_num/C_den`` change from each back-tracking time to the next.

    The changes are measured realisation by realisation: a particle back-tracked to ``2t`` shares
    its first ``t`` with the one back-tracked to ``t``, so the values at neighbouring times are
    strongly correlated and their difference is known far better than the two standard errors
    combined. The ratio of ensemble means and its change carry jackknife errors over
    realisations.

    Parameters
    ----------
    summary : dict
        :func:`qltlib.particles.statistics.summarize` output, with ``per_realisation``.
    ell : int
        Multipole whose shot-noise-subtracted ``C_ell`` is followed.
    numerator, denominator : int
        Multipoles of the ratio.

    Returns
    -------
    dict
        ``times`` and, for ``diffusion`` (running ``D = <|Delta r|^2>/6t``), ``slope``
        (:func:`qltlib.particles.statistics.interval_diffusion`), ``cl`` and ``ratio``: ``value``, ``err``
        (per time), ``change``, ``change_err`` (per step ``t_(i-1) -> t_i``, ``n_times - 1``
        entries); also ``ell``, ``numerator``, ``denominator``.

    Notes
    -----
    Chapter *Validation*, section on the run past ``Omega t = 1280``: issue 9, item 1 ("go further
    if ``D``, ``C_1`` or ``C_2/C_1`` still change by more than their errors between the last two
    times").
    """
    times = np.asarray(summary["times"], dtype=float)
    per_realisation = summary["per_realisation"]
    msd = np.asarray(per_realisation["msd"], dtype=float)
    if msd.shape[0] < 2:
        raise ValueError("changes between times need at least two realisations")
    cl = signal_per_realisation(per_realisation)
    for name, index in (("ell", ell), ("numerator", numerator), ("denominator", denominator)):
        if not 0 <= int(index) < cl.shape[2]:
            raise ValueError(f"{name} = {index} is beyond the stored multipoles (lmax = {cl.shape[2] - 1})")
    slopes = interval_diffusion(msd, times)
    ratio, leave_one_out = _ratio_with_leave_one_out(cl, numerator, denominator)
    return {"times": times.tolist(), "ell": int(ell), "numerator": int(numerator), "denominator": int(denominator),
            "diffusion": _paired_series(msd / (6.0 * times)),
            "slope": {key: slopes[key] for key in ("value", "err", "change", "change_err")},
            "cl": _paired_series(cl[:, :, ell]),
            "ratio": {"value": ratio.tolist(), "err": _jackknife_error(leave_one_out).tolist(),
                      "change": np.diff(ratio).tolist(),
                      "change_err": _jackknife_error(np.diff(leave_one_out, axis=1)).tolist()}}


def plateau_fits(msd, times, first_end: float) -> dict:
    """The plateau ``K`` of the diffusion coefficient from the interval slopes, with and without a
    long-time tail.

    The slope of the mean-square displacement over ``[t_(i-1), t_i]``
    (:func:`qltlib.particles.statistics.interval_diffusion`) is fitted, for every interval ending at or after
    ``first_end``, by two models of the running coefficient ``D(t) = <|Delta r|^2>/6t``:

    * ``constant``: ``D(t) = K - b/t`` (an integrable velocity correlation); every slope is ``K``;
    * ``tail``: ``D(t) = K - b/t - c/sqrt(t)`` (a velocity correlation falling as ``t^(-3/2)``);
      the slope over ``[a, b]`` is ``K - c/(sqrt(a) + sqrt(b))``, which approaches ``K`` from
      below by ``1/sqrt(2)`` per doubling of ``t``;
    * ``logarithmic``: no plateau; the slopes grow by a constant amount per doubling of ``t``
      (a velocity correlation falling as ``1/t``), ``K_i = K + g log2(t_i / t_last)``, so ``K`` is
      the slope at the last time and ``g`` (``per_doubling``) its growth.

    Both by generalised least squares with the covariance of the slopes between intervals,
    estimated over realisations (Hartlap-corrected): the slopes of one realisation share its
    field, so they are correlated.

    Parameters
    ----------
    msd : array_like, shape (n_real, n_times)
        ``<|Delta r|^2>`` per realisation (units ``r_g^2``).
    times : array_like, shape (n_times,)
    first_end : float
        End of the first interval fitted.

    Returns
    -------
    dict
        ``first_end``, ``n_intervals`` and, for ``constant``, ``tail`` and ``logarithmic``:
        ``K``, ``K_err``, ``chi2``, ``ndof``, ``p_value``; ``tail`` also ``c`` and ``c_err``
        (units ``r_g c sqrt(1/Omega)``), ``logarithmic`` also ``per_doubling`` and
        ``per_doubling_err`` (units ``r_g c``).

    Notes
    -----
    Chapter *Validation*, section on the run past ``Omega t = 1280``,
    :math:numref:`eq-val-interval-diffusion`.
    """
    times = np.asarray(times, dtype=float)
    fits, (count,) = _fit_intervals([(np.asarray(msd, dtype=float), times)], first_end)
    return {"first_end": float(times[-count]), "n_intervals": count, **fits}


def _fit_intervals(runs, first_end: float) -> tuple:
    """The three slope models fitted to the intervals ending at or after ``first_end`` of every
    ``(msd, times)`` in ``runs`` (rows: the same realisations in every run); returns the fits and
    the number of intervals taken from each run."""
    blocks, starts, ends, counts = [], [], [], []
    for msd, times in runs:
        chosen = times >= first_end * (1 - 1e-9)
        blocks.append(interval_slopes(msd, times)[:, chosen])
        starts.append(np.concatenate([[0.0], times[:-1]])[chosen])
        ends.append(times[chosen])
        counts.append(int(chosen.sum()))
    if sum(counts) < 3:
        raise ValueError(f"plateau fits need at least three intervals ending at or after {first_end:g}")
    return _slope_model_fits(np.hstack(blocks), np.concatenate(starts), np.concatenate(ends)), counts


def _slope_model_fits(slopes, a, b) -> dict:
    """The three models of :func:`plateau_fits` fitted to interval slopes ``(n_real, k)`` over
    the intervals ``[a_j, b_j]`` (which may repeat: several ensembles of the same fields)."""
    designs = {"constant": np.ones((a.size, 1)),
               "tail": np.column_stack([np.ones(a.size), -1.0 / (np.sqrt(a) + np.sqrt(b))]),
               "logarithmic": np.column_stack([np.ones(a.size), np.log2(b / b.max())])}
    second = {"tail": "c", "logarithmic": "per_doubling"}
    out = {}
    for name, design in designs.items():
        fit = _generalised_least_squares(slopes, design)
        if fit["beta"] is None:
            raise ValueError(f"plateau fits over {a.size} intervals need more than {a.size + 2} realisations")
        row = {"K": float(fit["beta"][0]), "K_err": math.sqrt(float(fit["beta_cov"][0, 0])),
               "chi2": fit["chi2"], "ndof": fit["ndof"], "p_value": fit["p_value"]}
        if name in second:
            row[second[name]] = float(fit["beta"][1])
            row[f"{second[name]}_err"] = math.sqrt(float(fit["beta_cov"][1, 1]))
        out[name] = row
    return out


def joint_plateau_fits(summaries, first_end: float) -> dict:
    """:func:`plateau_fits` over several ensembles of the same fields at once.

    Ensembles made with the same seed, spectrum and modes share the turbulence of each
    realisation index (:func:`ensemble_difference`); they may differ in the sky sampling and in
    how far they back-track. The interval slopes of all of them, from the realisations they have
    in common, are stacked into one vector per realisation and fitted together, with their
    covariance over realisations (within and between ensembles): a fine sky where it was
    affordable (early times) and a coarse one that reaches further combine without counting
    a field twice.

    Parameters
    ----------
    summaries : sequence of dict
        :func:`qltlib.particles.statistics.summarize` outputs, with ``per_realisation``.
    first_end : float
        End of the first interval fitted, in every ensemble.

    Returns
    -------
    dict
        As :func:`plateau_fits` (``K`` of ``logarithmic`` is the slope at the latest time of all
        ensembles), plus ``indices`` (the common realisations) and ``n_intervals`` per ensemble.

    Notes
    -----
    Chapter *Validation*, section on the run to ``Omega t = 10240``.
    """
    if len(summaries) < 1:
        raise ValueError("joint plateau fits need at least one ensemble")
    orders = [np.asarray(s["per_realisation"]["indices"]) for s in summaries]
    indices = orders[0]
    for order in orders[1:]:
        indices = np.intersect1d(indices, order)
    runs = [(np.asarray(summary["per_realisation"]["msd"], dtype=float)[_rows_of(order, indices)],
             np.asarray(summary["times"], dtype=float)) for summary, order in zip(summaries, orders)]
    fits, counts = _fit_intervals(runs, first_end)
    return {"first_end": float(first_end), "n_intervals": counts, "indices": indices.tolist(), **fits}


def _rows_of(order, indices) -> list:
    """Rows of the realisations ``indices`` in an ensemble whose rows hold realisations ``order``."""
    row_of = {int(i): row for row, i in enumerate(order)}
    return [row_of[int(i)] for i in indices]


def ensemble_difference(summary: dict, reference: dict, ell: int = 1, tolerance: float = 1e-6) -> dict:
    """Two ensembles of the same fields compared realisation by realisation at their common times.

    Ensembles made with the same seed, spectrum and modes share the turbulence of each realisation
    index; if they differ only in the sky sampling (``nside``) or in how far they back-track, the
    running ``D(t)`` and the shot-noise-subtracted ``C_ell`` of a realisation must agree within
    the sampling noise. Differencing per realisation removes the (much larger) scatter between
    field realisations.

    Returns
    -------
    dict
        ``times`` (common), ``indices`` (common realisations), and for ``diffusion`` and ``cl``:
        ``difference`` (``summary`` minus ``reference``, mean over the common realisations),
        ``err`` (its standard error) and ``spread`` (the standard error of ``reference`` alone
        over the same realisations, for scale).
    """
    times, ref_times = np.asarray(summary["times"], dtype=float), np.asarray(reference["times"], dtype=float)
    common_times = [t for t in times if np.any(np.abs(ref_times - t) <= tolerance * t)]
    it = [time_index(times, t) for t in common_times]
    jt = [time_index(ref_times, t) for t in common_times]
    first = np.asarray(summary["per_realisation"]["indices"])
    second = np.asarray(reference["per_realisation"]["indices"])
    indices = np.intersect1d(first, second)
    if indices.size < 2 or not common_times:
        raise ValueError("the two ensembles share fewer than two realisations or no time")
    rows_a, rows_b = _rows_of(first, indices), _rows_of(second, indices)
    out = {"times": [float(t) for t in common_times], "indices": indices.tolist(), "ell": int(ell)}
    pairs = {
        "diffusion": [np.asarray(s["per_realisation"]["msd"], dtype=float)[rows][:, cols] / (6.0 * t[cols])
                      for s, rows, cols, t in ((summary, rows_a, it, times), (reference, rows_b, jt, ref_times))],
        "cl": [signal_per_realisation(s["per_realisation"])[rows][:, cols, ell]
               for s, rows, cols in ((summary, rows_a, it), (reference, rows_b, jt))],
    }
    for name, (a, b) in pairs.items():
        out[name] = {"difference": (a - b).mean(axis=0).tolist(), "err": standard_error(a - b).tolist(),
                     "spread": standard_error(b).tolist()}
    return out


def steady_time(convergence_rows, times) -> tuple:
    """``(time, steady)``: the earliest back-tracking time by which every resolved multipole of
    :func:`convergence_times` is steady, and ``True``; or the last time and ``False`` when some
    resolved multipole is not shown steady."""
    resolved = [row for row in convergence_rows if row["resolved"]]
    if not resolved or not all(row["steady"] for row in resolved):
        return float(np.asarray(times, dtype=float)[-1]), False
    return float(max(row["time"] for row in resolved)), True


def ensemble_steady_time(summary: dict) -> tuple:
    """``(time, steady)`` of one ensemble: :func:`steady_time` of the convergence table
    (:func:`convergence_times` on the shot-noise-subtracted ``C_l`` of each realisation).

    Parameters
    ----------
    summary : dict
        :func:`qltlib.particles.statistics.summarize` output, with ``per_realisation``.
    """
    return steady_time(ensemble_convergence(summary), summary["times"])


#: how :func:`steady_time_report` chooses the steady time, in words (``qlt fit --simulation``)
STEADY_TIME_RULE = (
    f"earliest back-tracking time from which every resolved C_l (l = "
    f"{', '.join(map(str, CONVERGENCE_ELLS))}) of this ensemble fits one constant up to its last "
    f"resolved time (relative error <= {CONVERGENCE_MAX_RELATIVE_ERROR:g}) with p >= "
    f"{CONVERGENCE_P_MIN:g}, covariance between times over realisations; a test of this "
    f"ensemble's errors as well as of the fields: more particles per field (higher nside) "
    f"resolve a slower approach and give a later time for the same fields")


def steady_time_report(summary: dict) -> dict:
    """The steady time of one ensemble with the rule and the multipole that set it.

    Parameters
    ----------
    summary : dict
        :func:`qltlib.particles.statistics.summarize` output, with ``per_realisation``.

    Returns
    -------
    dict
        ``steady_time`` (``None`` when some resolved multipole is not shown steady),
        ``last_time``, ``steady_time_rule`` (:data:`STEADY_TIME_RULE`) and
        ``steady_time_by_ell``: per multipole of :data:`CONVERGENCE_ELLS` that the ensemble
        has, ``ell``, ``time`` (earliest steady time, ``None`` if not shown), ``late_time``
        (its last resolved time), ``p_value`` (of the constant fit from ``time``, ``None`` if
        not shown) and ``resolved``. Times are those of the settings (as requested), not the
        ones reached on the step grid, when the summary has settings with as many times.

    Notes
    -----
    :func:`ensemble_steady_time` gives the same time; this adds why. Its value depends on the
    ensemble's statistical power: the dipole of ``white_k0-1e-3_k1-1e2_t1280`` (nside 32) is
    steady from ``Omega t = 640``, that of the nside-16 and nside-8 runs through the same
    fields from 160, where their larger shot noise cannot resolve the rise of ``C_1`` by
    about 2 per cent between 160 and 640.
    """
    reached = np.asarray(summary["times"], dtype=float)
    requested = [float(t) for t in summary.get("settings", {}).get("times", [])]
    named = requested if len(requested) == reached.size else reached.tolist()

    def as_requested(t):
        return None if t is None else named[time_index(reached, t)]

    rows = ensemble_convergence(summary)
    time, steady = steady_time(rows, reached)
    return {"steady_time": as_requested(time) if steady else None,
            "last_time": named[-1],
            "steady_time_rule": STEADY_TIME_RULE,
            "steady_time_by_ell": [
                {"ell": row["ell"], "time": as_requested(row["time"]),
                 "late_time": as_requested(row["late_time"]), "p_value": row["p_value"],
                 "resolved": row["resolved"]} for row in rows]}


def ensemble_convergence(summary: dict) -> list:
    return convergence_times(summary["times"], signal_per_realisation(summary["per_realisation"]))
