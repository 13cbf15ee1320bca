"""The one-step predictor against test-particle ensembles (chapter *A parameter-free predictor*).

The exact one-step recursion of the back-tracked anisotropy (:mod:`qltlib.particles.one_step`)
predicts, from one measured step of length ``Delta T``, the steady ``C_l`` on ``l = 1..L`` and
the diffusion coefficient ``K`` with no free parameter. This module compares that prediction
with a simulated ensemble summarised by :func:`qltlib.particles.statistics.summarize`:

* :func:`simulation_reference` -- the simulated ``C_l`` (shot noise subtracted) at one time, with
  its standard errors and covariance over realisations, and the plateau of ``D(t)``;
* :func:`steady_comparison` -- ``chi^2`` and p over ``l = 1..L``, ratios ``C/C_sim`` with
  errors, ``K`` against the plateau;
* :func:`paired_change` -- the change of ``K`` and ``C_l`` between two measurements on the same
  field realisations (drift per doubling of ``Delta T``; finer grid), with jackknife errors;
* :func:`truncation_ratios`, :func:`chapman_kolmogorov` -- the truncation check and the
  recursion in time against an ensemble back-tracked over the whole time;
* :func:`mean_two_steps` -- the mean recursion (R2) over two steps against one step of twice
  the length (the Markov closure alone);
* :func:`two_step_comparison` -- the steady state with the mean's memory taken from a step and
  one of twice its length (a second closure);
* :func:`step_check` -- whether the prediction still moves from half the step to the step (the
  check ``qlt spectrum --method transfer`` runs on every result);
* :func:`quenched_comparison`, :func:`realisation_pairs` -- the quenched closure (the rest of
  the path meets the same realisation) against a simulation, over the ensemble and field by
  field;
* :func:`qlt_comparison` -- first-order QLT at its best ``alpha`` on the same multipoles.

Units: ``c = 1``, lengths ``r_g``, times ``1/Omega``; ``C_l`` in ``(r_g |G|)^2`` (numbers for
``|G| = 1/r_g``), ``K`` in ``r_g c``. Errors of the prediction are jackknife errors over field
realisations (:func:`qltlib.particles.one_step.jackknife`); those of the simulation the standard
errors of its ensemble mean. The two ensembles are independent unless stated.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from ..particles.one_step import jackknife, one_step_recursion, one_step_steady_state
from ..particles.statistics import interval_slopes, time_index
from ..particles.transfer import nominal_step
from ..theory.spectrum import make_spectrum
from ..theory.transport import standard_qlt_rates
from .simulation_fit import fit_simulation

#: multipoles of the ratio tables
PICK = (1, 2, 4, 8, 16)
#: truncation of the recursion in every comparison (the stored measurements have ``L = 16``)
LMAX = 16
#: multipoles whose change from the half step to the step :func:`step_check` tests (those
#: whose standard error ``qlt spectrum --method transfer`` brings to 10 per cent)
STEP_CHECK_ELLS = (1, 2, 4, 8)
#: a relative change from the half step to the step that :func:`step_check` accepts (the
#: precision the default number of realisations aims at)
STEP_TOLERANCE = 0.10


def simulation_reference(summary: dict, lmax: int = LMAX, time=None) -> dict:
    """The simulated spectrum that a one-step prediction is compared with.

    Parameters
    ----------
    summary : dict
        :func:`qltlib.particles.statistics.summarize` output.
    lmax : int
        Largest multipole ``L``.
    time : float, optional
        Back-tracking time ``Omega t`` (default: the last).

    Returns
    -------
    dict
        ``time``, ``times`` (all of the ensemble), ``ell`` (``1..L``); ``C``, ``C_err`` at
        ``time``; ``C_cov`` (covariance of the ensemble mean over realisations, shot noise
        subtracted per realisation; ``None`` without ``per_realisation``); ``C_t``, ``C_t_err``
        (every time, ``l = 1..L``); ``realisations``, ``n_modes``, ``spectrum``; ``plateau``,
        ``plateau_err`` (``diffusion_plateau`` of the summary, ``None`` where it has none).
    """
    lmax = int(lmax)
    times = np.asarray(summary["times"], dtype=float)
    it = time_index(times, time)
    cl = np.asarray(summary["C_ell"], dtype=float)
    cl_err = np.asarray(summary["C_ell_err"], dtype=float)
    if cl.shape[1] <= lmax:
        raise ValueError(f"the simulation has multipoles up to {cl.shape[1] - 1}, need {lmax}")
    per = summary.get("per_realisation")
    cov = None
    if per is not None:
        signal = (np.asarray(per["C_ell"], dtype=float)[:, it, 1:lmax + 1]
                  - np.asarray(per["shot_noise"], dtype=float)[:, it, None])
        cov = np.cov(signal, rowvar=False) / signal.shape[0]
    settings = summary.get("settings", {})
    plateau = summary.get("diffusion_plateau")
    plateau_err = summary.get("diffusion_plateau_err")
    return {"time": float(times[it]), "times": times, "ell": np.arange(1, lmax + 1),
            "C": cl[it, 1:lmax + 1], "C_err": cl_err[it, 1:lmax + 1], "C_cov": cov,
            "C_t": cl[:, 1:lmax + 1], "C_t_err": cl_err[:, 1:lmax + 1],
            "realisations": int(summary.get("realisations", 0)),
            "n_modes": settings.get("n_modes"), "spectrum": settings.get("spectrum"),
            "plateau": None if plateau is None else float(plateau),
            "plateau_err": None if plateau_err is None else float(plateau_err)}


def per_realisation(measurement, lmax: int = LMAX) -> dict:
    """The arrays of a :class:`~qltlib.particles.one_step.OneStepMeasurement` that enter the
    recursion, on ``l, l0 = 1..lmax`` (first axis: realisation)."""
    return measurement.per_realisation(lmax)


def _within(pick, lmax: int) -> list:
    """The multipoles of ``pick`` in ``1..lmax``."""
    return [int(ell) for ell in pick if 1 <= ell <= lmax]


def _steady(means: dict) -> dict:
    return one_step_steady_state(means["matrix"], means["source"], means["cross"],
                                 means["m1"], means["p1"])


def chi_square(model, model_err, data, data_err, cov=None) -> dict:
    """``chi^2`` of a prediction without free parameter against data, and its p-value.

    ``chi2`` with the two errors in quadrature (diagonal); with ``cov`` (the summed covariance of
    prediction and data) also ``chi2_cov = r^T cov^{-1} r``. Degrees of freedom: the number of
    points. Returns ``chi2``, ``p``, ``ndof`` and, with ``cov``, ``chi2_cov``, ``p_cov``.
    """
    model, data = np.asarray(model, dtype=float), np.asarray(data, dtype=float)
    err = np.hypot(np.asarray(model_err, dtype=float), np.asarray(data_err, dtype=float))
    residual = model - data
    chi2 = float(np.sum((residual / err) ** 2))
    out = {"chi2": chi2, "ndof": int(residual.size), "p": float(stats.chi2.sf(chi2, residual.size))}
    if cov is not None:
        chi2_cov = float(residual @ np.linalg.solve(np.asarray(cov, dtype=float), residual))
        out.update(chi2_cov=chi2_cov, p_cov=float(stats.chi2.sf(chi2_cov, residual.size)))
    return out


def ratios(model, model_err, data, data_err, pick=PICK) -> dict:
    """``{l: (C/C_sim, error)}`` at the multipoles ``pick`` (arrays start at ``l = 1``; relative
    errors in quadrature); multipoles beyond the arrays are skipped."""
    out = {}
    for ell in _within(pick, len(model)):
        m, d = float(model[ell - 1]), float(data[ell - 1])
        r = m / d
        out[int(ell)] = (r, abs(r) * math.hypot(model_err[ell - 1] / m, data_err[ell - 1] / d))
    return out


def steady_comparison(measurement, reference: dict, lmax: int = LMAX, pick=PICK,
                      k_reference=None, at_reference_time: bool = False) -> dict:
    """The steady state (R3)-(R4) of a measurement against a simulated spectrum.

    Parameters
    ----------
    measurement : qltlib.particles.one_step.OneStepMeasurement
    reference : dict
        :func:`simulation_reference` (``l = 1..lmax`` at least).
    lmax : int
        Truncation ``L`` of the recursion and last multipole of ``chi^2``.
    pick : sequence of int
        Multipoles of the ratios.
    k_reference : (float, float), optional
        ``(K, error)`` of the simulation; default the reference's ``plateau``.
    at_reference_time : bool
        Compare the recursion (R1)-(R2) from ``C(0) = 0`` at the reference's own time (a whole
        number of steps ``Delta T``) instead of the fixed point: the comparison for an ensemble
        that is not yet steady (``n_steps`` in the result).

    Returns
    -------
    dict
        ``alpha``, ``delta_t``, ``realisations``, ``n_theta``, ``n_modes``; the prediction
        ``C``, ``C_err`` (jackknife), ``K``, ``K_err``, ``m1``, ``P1``, ``M11`` (ensemble means);
        ``chi2``, ``ndof``, ``p`` over ``l = 1..lmax`` (errors in quadrature), ``chi2_cov``,
        ``p_cov`` (jackknife covariance plus the simulation's; where the reference has one);
        ``chi2_high``, ``p_high`` over ``l = 2..lmax``; ``ratio`` ``{l: (value, error)}``;
        ``K_reference``, ``K_reference_err`` and ``K_pull`` (difference in combined errors).

    Notes
    -----
    :math:numref:`eq-one-step-steady` and :math:numref:`eq-one-step-K` of the chapter; the
    comparison :math:numref:`eq-one-step-chi2`.
    """
    n_steps = steps_to(reference["time"], measurement.settings.delta_t) if at_reference_time else None
    steady = measurement.steady_state(lmax, n_steps=n_steps)
    means = measurement.means(lmax)
    return {**_header(measurement), "n_steps": n_steps,
            "m1": float(means["m1"]), "P1": float(means["p1"]), "M11": float(means["matrix"][0, 0]),
            **_against(steady, reference, lmax, pick, k_reference)}


def _header(measurement) -> dict:
    """What a comparison says of the measurement it compares: its step and size."""
    settings = measurement.settings
    return {"alpha": settings.alpha, "delta_t": settings.delta_t,
            "realisations": measurement.realisations, "n_theta": settings.n_theta,
            "n_modes": settings.n_modes}


def _against(steady: dict, reference: dict, lmax: int, pick, k_reference) -> dict:
    """A predicted ``C``, ``C_err``, ``C_cov``, ``K``, ``K_err`` against a simulated spectrum:
    the prediction, ``chi2`` (also with covariances and over ``l >= 2``), ratios and the pull of
    ``K`` (:func:`steady_comparison`)."""
    c, c_err, cov = steady["C"], steady["C_err"], steady["C_cov"]
    data, data_err = reference["C"][:lmax], reference["C_err"][:lmax]
    sim_cov = reference.get("C_cov")
    full_cov = None if sim_cov is None else cov[:lmax, :lmax] + np.asarray(sim_cov)[:lmax, :lmax]
    chi = chi_square(c, c_err, data, data_err, full_cov)
    high = chi_square(c[1:], c_err[1:], data[1:], data_err[1:])
    if k_reference is None:
        k_reference = (reference.get("plateau"), reference.get("plateau_err"))
    k_ref, k_ref_err = k_reference
    pull = (None if k_ref is None or k_ref_err is None
            else float((steady["K"] - k_ref) / math.hypot(steady["K_err"], k_ref_err)))
    return {"C": c, "C_err": c_err, "K": steady["K"], "K_err": steady["K_err"],
            **chi, "chi2_high": high["chi2"], "p_high": high["p"],
            "ratio": ratios(c, c_err, data, data_err, pick),
            "K_reference": k_ref, "K_reference_err": k_ref_err, "K_pull": pull}


def quenched_comparison(measurement, reference: dict, lmax: int = LMAX, pick=PICK,
                        k_reference=None) -> dict:
    """The quenched closure's steady state against a simulated spectrum.

    As :func:`steady_comparison` (same keys, the prediction from
    :meth:`~qltlib.particles.one_step.OneStepMeasurement.quenched`: per realisation, then the
    mean, with its standard errors), plus ``P_parallel``: the mean over realisations of the
    largest real part of an eigenvalue of the direction tensor ``P`` (the velocity memory along
    the direction that keeps it longest; the scalar ``P1`` is the mean of all three).

    Notes
    -----
    Chapter *A parameter-free predictor*, section *A closure that keeps the direction*,
    :math:numref:`eq-one-step-quenched-mean` and :math:numref:`eq-one-step-quenched`.
    """
    quenched = measurement.quenched(lmax)
    return {**_header(measurement), "P1": float(np.mean(measurement.p1)),
            "P_parallel": quenched["P_parallel"],
            **_against(quenched, reference, lmax, pick, k_reference)}


def realisation_pairs(measurement, summary: dict, lmax: int = LMAX) -> dict:
    """Field by field: both closures against the long ensemble through the same realisations.

    The one-step scans of the long ensembles' fields use their seed and modes, so realisation
    ``i`` of both is one field. For each shared realisation: ``K`` of the Markov closure from
    that realisation's terms alone (``-m_1/(3 (1 - P_1))``) and of the quenched closure, against
    the simulated slope over the ensemble's last interval (``r_g c``); ``C_1`` of both closures
    against the simulated one at the last time (shot noise subtracted).

    Returns
    -------
    dict
        ``indices``; arrays ``K_markov``, ``K_quenched``, ``D_sim``, ``C1_markov``,
        ``C1_quenched``, ``C1_sim``; ``correlation`` ``{"K_markov", "K_quenched", "C1_markov",
        "C1_quenched"}`` (Pearson coefficient with the simulated values over the realisations);
        ``time`` (``1/Omega``) and ``interval`` (start, end) of the simulated values.

    Raises
    ------
    ValueError
        The ensemble's fields are not those of the measurement (seed, modes, spectrum, band),
        or no realisation is shared.
    """
    settings = measurement.settings.as_dict()
    sim_settings = summary["settings"]
    differ = [key for key in ("seed", "n_modes", "spectrum", "k0", "k1")
              if sim_settings.get(key) != settings[key]]
    if differ:
        raise ValueError("the ensemble's fields are not those of the measurement: "
                         + ", ".join(f"{key} {sim_settings.get(key)} != {settings[key]}"
                                     for key in differ))
    per = summary["per_realisation"]
    sim_index = {int(i): row for row, i in enumerate(per["indices"])}
    shared = [(row, sim_index[int(i)]) for row, i in enumerate(measurement.indices)
              if int(i) in sim_index]
    if not shared:
        raise ValueError("the measurement and the ensemble share no realisation")
    mine, theirs = (np.array(x) for x in zip(*shared))
    times = np.asarray(summary["times"], dtype=float)
    slopes = interval_slopes(per["msd"], times)[:, -1]
    c1_sim = per["C_ell"][:, -1, 1] - per["shot_noise"][:, -1]
    sub = measurement.subset(mine)
    quenched = sub.quenched(lmax)
    arrays = sub.per_realisation(lmax)
    markov = [one_step_steady_state(*(arrays[key][r] for key in ("matrix", "source", "cross",
                                                                 "m1", "p1")))
              for r in range(sub.realisations)]
    out = {"indices": sub.indices, "K_markov": np.array([m["K"] for m in markov]),
           "K_quenched": quenched["K_r"], "D_sim": slopes[theirs],
           "C1_markov": np.array([m["C"][0] for m in markov]),
           "C1_quenched": quenched["C_r"][:, 0], "C1_sim": c1_sim[theirs],
           "time": float(times[-1]), "interval": (float(times[-2]) if len(times) > 1 else 0.0,
                                                  float(times[-1]))}
    out["correlation"] = {
        key: float(np.corrcoef(out[key], out["D_sim" if key.startswith("K") else "C1_sim"])[0, 1])
        for key in ("K_markov", "K_quenched", "C1_markov", "C1_quenched")}
    return out


def two_step_comparison(a, b, reference: dict, lmax: int = LMAX, pick=PICK,
                        k_reference=None) -> dict:
    """The steady state with the mean's memory taken from two step lengths, against a simulation.

    The Markov closure continues the mean displacement beyond one step with the velocity memory
    ``P_1``: ``m(n Delta T) = m_1 (1 + P_1 + ... + P_1^(n-1))``. This closure continues it with
    the memory of the displacement itself, measured by ``b``, a step of twice ``a``'s length on
    the same fields: ``q = m(2 Delta T)/m_1 - 1`` makes the series exact over two steps, and
    ``m_inf = m_1/(1 - q)``, ``K = -m_inf/3``; ``C`` is (R3) with ``a``'s ``M``, ``S``, ``X``
    and this ``m_inf``. Jackknife errors over the shared realisations.

    Returns
    -------
    dict
        ``from``, ``to`` (``alpha``), ``paired_realisations``, ``q`` and ``q_err``, ``P1`` (of
        ``a``), and what :func:`steady_comparison` gives for the prediction (``C``, ``C_err``,
        ``K``, ``K_err``, ``chi2``, ``p``, ``ratio``, ``K_pull``, ...).

    Raises
    ------
    ValueError
        ``b``'s step is not twice ``a``'s, or fewer than 2 shared realisations.

    Notes
    -----
    Chapter *A parameter-free predictor*, section *Longer steps for the other spectra*.
    """
    common, rows_a, rows_b = _double_step_rows(a, b)
    values = {**{k: v[rows_a] for k, v in per_realisation(a, lmax).items()}, "m2": b.m1[rows_b]}

    def statistic(m):
        q = m["m2"] / m["m1"] - 1
        out = one_step_steady_state(m["matrix"], m["source"], m["cross"], m["m1"], q)
        return np.concatenate([out["C"], [out["K"], q]])

    est, err, cov = jackknife(values, statistic)
    steady = {"C": est[:lmax], "C_err": err[:lmax], "C_cov": cov[:lmax, :lmax],
              "K": float(est[lmax]), "K_err": float(err[lmax])}
    return {"from": a.settings.alpha, "to": b.settings.alpha, "paired_realisations": len(common),
            "q": float(est[lmax + 1]), "q_err": float(err[lmax + 1]),
            "P1": float(values["p1"].mean()), **_against(steady, reference, lmax, pick, k_reference)}


def steps_to(time: float, delta_t: float) -> int:
    """The whole number of steps ``Delta T`` that make ``time``; a one-line error otherwise."""
    n = time / delta_t
    if abs(n - round(n)) > 1e-6 * max(1.0, n) or round(n) < 1:
        raise ValueError(f"Omega t = {time:g} is not a whole number of steps Delta T = {delta_t:g}")
    return int(round(n))


def _double_step_rows(a, b) -> tuple:
    """:func:`_shared_rows` of a step ``a`` and a step ``b`` of twice its length (refused otherwise).

    Twice within one integration step: the half step that ``qlt spectrum --method transfer``
    records lies on the integration grid of ``b``, half a step short of ``Delta T(b)/2`` when
    ``b`` takes an odd number of steps
    (:func:`~qltlib.particles.transfer.half_step_time`).
    """
    one_step = nominal_step(b.settings) * (1 + 1e-9)
    if not abs(b.settings.delta_t - 2 * a.settings.delta_t) <= one_step:
        raise ValueError(f"need Delta T(b) = 2 Delta T(a), got {b.settings.delta_t:g} and "
                         f"{a.settings.delta_t:g}")
    return _shared_rows(a, b)


def _shared_rows(a, b) -> tuple:
    """Row indices of ``a`` and ``b`` that hold the same realisation numbers (sorted)."""
    common = sorted(set(a.indices.tolist()) & set(b.indices.tolist()))
    if len(common) < 2:
        raise ValueError(f"need at least 2 shared realisations for a paired change, got {len(common)}")
    where_a = {int(i): k for k, i in enumerate(a.indices)}
    where_b = {int(i): k for k, i in enumerate(b.indices)}
    return common, [where_a[i] for i in common], [where_b[i] for i in common]


def paired_change(a, b, lmax: int = LMAX, pick=PICK, closure: str = "markov") -> dict:
    """Change of the steady state from measurement ``a`` to ``b`` on their shared realisations.

    Both steady states are computed from the same field realisations, and the jackknife leaves
    one realisation out of both at once, so the scatter between fields cancels from the
    difference (paired errors). ``closure``: ``"markov"`` (the steady state of the means,
    :meth:`~qltlib.particles.one_step.OneStepMeasurement.steady_state`) or ``"quenched"`` (the
    mean of each realisation's quenched fixed point,
    :meth:`~qltlib.particles.one_step.OneStepMeasurement.quenched`; both files need the
    direction-resolved terms).

    Returns
    -------
    dict
        ``from``, ``to`` (``alpha`` of ``a`` and ``b``), ``from_grid``, ``to_grid``
        (``n_theta``), ``paired_realisations``, ``closure``; ``dK = K(b) - K(a)`` (``r_g c``),
        ``dlnK`` ``K(b)/K(a) - 1`` and ``dlnC`` ``{l: C_l(b)/C_l(a) - 1}`` at ``pick``, each as
        ``(value, error)``.

    Notes
    -----
    The drift per doubling of ``Delta T`` of the chapter, :math:numref:`eq-one-step-drift`.
    """
    if closure not in ("markov", "quenched"):
        raise ValueError(f"closure must be 'markov' or 'quenched', got {closure!r}")
    common, rows_a, rows_b = _shared_rows(a, b)
    pick = _within(pick, lmax)
    index = [ell - 1 for ell in pick]
    if closure == "markov":
        va, vb = per_realisation(a, lmax), per_realisation(b, lmax)

        def steady(means, side):
            return _steady({k: means[side + k] for k in va})
    else:
        qa, qb = a.quenched(lmax), b.quenched(lmax)
        va, vb = ({"C": q["C_r"], "K": q["K_r"]} for q in (qa, qb))

        def steady(means, side):
            return {"C": means[side + "C"], "K": means[side + "K"]}
    values = {**{"a_" + k: v[rows_a] for k, v in va.items()},
              **{"b_" + k: v[rows_b] for k, v in vb.items()}}

    def statistic(means):
        out = [steady(means, side) for side in ("a_", "b_")]
        return np.concatenate([[out[1]["K"] - out[0]["K"], out[1]["K"] / out[0]["K"] - 1],
                               out[1]["C"][index] / out[0]["C"][index] - 1])

    est, err, _ = jackknife(values, statistic)
    return {"from": a.settings.alpha, "to": b.settings.alpha, "from_grid": a.settings.n_theta,
            "to_grid": b.settings.n_theta, "paired_realisations": len(common), "closure": closure,
            "dK": (float(est[0]), float(err[0])), "dlnK": (float(est[1]), float(err[1])),
            "dlnC": {int(ell): (float(est[i + 2]), float(err[i + 2])) for i, ell in enumerate(pick)}}


def mean_two_steps(a, b) -> dict:
    """The mean recursion (R2) over two steps against a measured step of twice the length.

    (R2) from ``C(0) = 0`` gives ``m(2 Delta T) = m_1 (1 + P_1)`` with the terms of ``a``; a
    measurement ``b`` of step ``2 Delta T`` on the same fields measures ``m(2 Delta T)`` itself,
    with no closure. Their ratio tests the Markov closure C1 alone (the mean involves no pairs).

    Returns
    -------
    dict
        ``from``, ``to`` (``alpha``), ``paired_realisations``, ``predicted`` and ``measured``
        ``m(2 Delta T)`` (means over the shared realisations, ``r_g``) and ``excess``
        ``(predicted / measured - 1, jackknife error)``.

    Raises
    ------
    ValueError
        ``b``'s step is not twice ``a``'s.

    Notes
    -----
    :math:numref:`eq-one-step-mean-recursion` of the chapter.
    """
    common, rows_a, rows_b = _double_step_rows(a, b)
    values = {"m1": a.m1[rows_a], "p1": a.p1[rows_a], "m2": b.m1[rows_b]}
    est, err, _ = jackknife(values, lambda m: [m["m1"] * (1 + m["p1"]) / m["m2"] - 1])
    return {"from": a.settings.alpha, "to": b.settings.alpha, "paired_realisations": len(common),
            "predicted": float(values["m1"].mean() * (1 + values["p1"].mean())),
            "measured": float(values["m2"].mean()), "excess": (float(est[0]), float(err[0]))}


def step_check(half, full, lmax: int = LMAX, ells=STEP_CHECK_ELLS,
               tolerance: float | None = None, closure: str = "markov") -> dict:
    """Does the prediction still depend on the step? ``full`` against ``half``, the same
    particles at half the step (or any measurement of half the step on the same fields).

    Two tests, both paired over the shared realisations (jackknife errors ``e``):

    * the **drift**: the relative change ``v`` of ``K`` and of ``C_l`` (``l`` in ``ells``) from
      the half step to the step (:func:`paired_change`), what the scan of ``Delta T`` measures
      per doubling;
    * the **mean test**: two chained half steps, (R2), against the measured mean displacement
      of the step (:func:`mean_two_steps`): the Markov closure alone, so only with
      ``closure="markov"``.

    ``closure="quenched"`` checks the quenched closure's steady state instead (the drift
    alone; both measurements need the direction-resolved terms).

    A quantity has **moved** when its change exceeds ``tolerance`` by more than two errors
    (``|v| - 2e > tolerance``); one that has not moved is **unresolved** when two errors exceed
    the tolerance (such a change could not have been seen). The verdict is ``"failed"`` when
    anything moved, else ``"unresolved"`` when anything is, else ``"passed"``. ``tolerance``
    defaults to :data:`STEP_TOLERANCE` as it stands when called.

    Returns
    -------
    dict
        ``alpha_half``, ``alpha``, ``paired_realisations``, ``K_half`` and ``K_half_err``
        (``r_g c``), ``dlnK`` and ``dlnC`` (``{l: (value, error)}``) as in
        :func:`paired_change`, ``closure``, ``mean_excess`` (``(value, error)``: two half steps
        over the measured step, minus one; ``None`` for the quenched closure), ``tests``
        (``{name: (value, error)}`` of the quantities tested), ``moved`` and ``unresolved``
        (names: ``"K"``, ``"C_<l>"``, ``"mean"``),
        ``verdict``, ``settled`` (``verdict == "passed"``) and the ``tolerance`` applied.

    Notes
    -----
    Chapter *A parameter-free predictor*, section *The step check*. A test at half the step
    cannot see memory longer than the step: a prediction that passes it may still move over
    many doublings.
    """
    tolerance = STEP_TOLERANCE if tolerance is None else float(tolerance)
    ells = _within(ells, lmax)
    drift = paired_change(half, full, lmax, ells, closure=closure)
    tests = {"K": drift["dlnK"], **{f"C_{ell}": drift["dlnC"][ell] for ell in ells}}
    if closure == "markov":
        tests["mean"] = mean_two_steps(half, full)["excess"]
        k_half = half.steady_state(lmax)
    else:
        k_half = half.quenched(lmax)
    moved = [name for name, (value, error) in tests.items() if abs(value) - 2 * error > tolerance]
    unresolved = [name for name, (_, error) in tests.items()
                  if name not in moved and 2 * error > tolerance]
    verdict = "failed" if moved else "unresolved" if unresolved else "passed"
    return {"alpha_half": half.settings.alpha, "alpha": full.settings.alpha,
            "paired_realisations": drift["paired_realisations"],
            "K_half": k_half["K"], "K_half_err": k_half["K_err"],
            "dlnK": drift["dlnK"], "dlnC": drift["dlnC"], "closure": closure,
            "mean_excess": tests.get("mean"),
            "tests": tests, "moved": moved, "unresolved": unresolved, "verdict": verdict,
            "settled": verdict == "passed", "tolerance": tolerance}


def drift_per_doubling(measurements, lmax: int = LMAX, pick=PICK) -> list:
    """:func:`paired_change` between consecutive ``alpha`` of ``{alpha: measurement}``."""
    alphas = sorted(measurements)
    return [paired_change(measurements[x], measurements[y], lmax, pick)
            for x, y in zip(alphas, alphas[1:])]


def truncation_ratios(measurement, lmax: int = LMAX, truncations=(8, 12), ells=(1, 2, 4, 8)) -> dict:
    """``{L': {l: C_l(L') / C_l(lmax)}}``: the fixed point with the columns ``l0 > L'`` dropped,
    over the one at ``lmax`` (ensemble means)."""
    means = measurement.means(lmax)
    full = _steady(means)["C"]
    out = {}
    for cut in truncations:
        cut = int(cut)
        part = _steady({"matrix": means["matrix"][:cut, :cut], "source": means["source"][:cut],
                        "cross": means["cross"][:cut], "m1": means["m1"], "p1": means["p1"]})["C"]
        out[cut] = {int(ell): float(part[ell - 1] / full[ell - 1]) for ell in ells if ell <= cut}
    return out


def chapman_kolmogorov(measurement, reference: dict, lmax: int = LMAX, pick=PICK) -> dict:
    """The recursion (R1)-(R2) from ``C(0) = 0`` against a simulation at every one of its times
    that is a multiple of ``Delta T``.

    The simulation back-tracks each trajectory over the whole time; the recursion chains
    independent steps. Where the simulation uses the same fields (same seed, modes and
    integrator settings for the same realisation numbers), the comparison tests the closure
    alone.

    Returns
    -------
    dict
        ``{time: {l: (C_rec/C_sim, error)}}`` at ``pick`` (jackknife error of the recursion and
        the simulation's standard error in quadrature).
    """
    values = per_realisation(measurement, lmax)
    pick = _within(pick, lmax)
    index = [ell - 1 for ell in pick]
    dt = measurement.settings.delta_t
    out = {}
    for k, t in enumerate(reference["times"]):
        n = t / dt
        if abs(n - round(n)) > 1e-6 or round(n) < 1:
            continue
        n = int(round(n))

        def statistic(means, n=n):
            c, _ = one_step_recursion(means["matrix"], means["source"], means["cross"],
                                      means["m1"], means["p1"], n)
            return c[n][index]

        est, err, _ = jackknife(values, statistic)
        sim, sim_err = reference["C_t"][k, index], reference["C_t_err"][k, index]
        ratio = est / sim
        out[float(t)] = {int(ell): (float(ratio[i]),
                                    float(abs(ratio[i]) * math.hypot(err[i] / est[i], sim_err[i] / sim[i])))
                         for i, ell in enumerate(pick)}
    return out


def recursion_in_time(measurement, reference: dict, lmax: int = LMAX) -> dict:
    """``{time: {"C1_ratio", "C2_ratio", "C1_sim_rel_err", "m"}}``: the recursion from the
    ensemble means against the simulated ``C_1``, ``C_2`` (and the relative error of the simulated
    ``C_1``) at the simulation's times that are multiples of ``Delta T``."""
    means = measurement.means(lmax)
    dt = measurement.settings.delta_t
    last = int(round(reference["times"][-1] / dt))
    c, m = one_step_recursion(means["matrix"], means["source"], means["cross"],
                              means["m1"], means["p1"], last)
    out = {}
    for k, t in enumerate(reference["times"]):
        n = t / dt
        if abs(n - round(n)) > 1e-6 or not 1 <= round(n) <= last:
            continue
        n = int(round(n))
        out[float(t)] = {"C1_ratio": float(c[n, 0] / reference["C_t"][k, 0]),
                         "C2_ratio": float(c[n, 1] / reference["C_t"][k, 1]),
                         "C1_sim_rel_err": float(reference["C_t_err"][k, 0] / reference["C_t"][k, 0]),
                         "m": float(m[n])}
    return out


def qlt_comparison(summary: dict, amplitude: str = "diffusion", lmax_theory: int = 24,
                   lmax: int = LMAX, pick=PICK, theory=None) -> dict:
    """First-order QLT's steady state at its best ``alpha``, on the multipoles of the one-step
    comparison.

    ``alpha`` (and with ``amplitude="free"`` the amplitude) is fitted by
    :func:`qltlib.validation.simulation_fit.fit_simulation` on ``l = 1..lmax`` at the
    simulation's last time (multipoles with relative error above one left out of the fit); the
    fitted model is then compared with the simulation on every ``l = 1..lmax``, with the
    simulation's errors alone (the model has none).

    Returns
    -------
    dict
        ``amplitude``, ``alpha``, ``alpha_interval``, ``kappa`` (fitted ``K|G|^2`` over the one
        fixed by the simulation's plateau), ``K_qlt`` (standard QLT's own ``K`` at the step
        ``Delta T = alpha / (c k1)`` of the best ``alpha``, units ``r_g c``), ``fit`` (the
        :class:`SimulationFit`), ``C``; ``chi2``, ``ndof`` (``lmax`` minus the fitted
        parameters), ``p``; ``ratio`` at ``pick``.

    Notes
    -----
    The QLT rows of the validation table of the chapter; the fit is
    :math:numref:`eq-val-fit` with the dipole included.
    """
    reference = simulation_reference(summary, lmax)
    fit = fit_simulation(summary, lmax_theory=lmax_theory, amplitude=amplitude, lmin=1, lmax=lmax,
                         theory=theory)
    if theory is None:
        from .simulation_fit import theory_grid

        theory = theory_grid(summary["settings"], lmax_theory)
    model = fit.kg2 * np.asarray(theory.cl(fit.alpha), dtype=float)[1:lmax + 1]
    data, data_err = reference["C"], reference["C_err"]
    chi2 = float(np.sum(((model - data) / data_err) ** 2))
    ndof = lmax - (2 if amplitude == "free" else 1)
    k0 = float(summary["settings"]["k0"])
    fixed = fit.settings["diffusion_coefficient"] / k0
    settings = summary["settings"]
    spectrum = make_spectrum(settings["spectrum"], k0, float(settings["k1"]))
    k_qlt = standard_qlt_rates(spectrum, fit.alpha / spectrum.k1).K
    return {"amplitude": amplitude, "alpha": fit.alpha, "alpha_interval": fit.alpha_interval,
            "kappa": fit.kg2 / fixed, "K_qlt": float(k_qlt), "fit": fit, "C": model, "chi2": chi2, "ndof": ndof,
            "p": float(stats.chi2.sf(chi2, ndof)),
            "ratio": ratios(model, np.zeros(lmax), data, data_err, pick)}
