"""Test-particle ensembles against quasi-linear theory: steady-state fits and convergence.

Chapter *Validation by test particles*. The simulated spectrum is the ensemble mean of the
shot-noise-subtracted ``C_l`` of the maps ``dI = Delta r . G`` with ``|G| = 1/r_g``
(:func:`qltlib.simulate.summarize`), so its absolute values carry units of ``(r_g |G|)^2 = 1``.
The analytic steady state (:func:`qltlib.transport.steady_state_spectrum`) is linear in
``K|G|^2``; with ``|G| = 1/r_g`` the combination ``K|G|^2`` is the diffusion coefficient in
units of ``c / r_g``, i.e. ``kg2 = K / k0`` in the library's units of ``c k0`` (``K`` in
``r_g c``, ``k0`` in ``1/r_g``).

The model of the simulated ``C_l`` at one back-tracking time ``T`` is

.. math:: C_\\ell^{\\rm sim} \\approx \\kappa\\, C^{(1)}_\\ell(\\alpha), \\qquad
          \\chi^2(\\alpha, \\kappa) = \\sum_\\ell
          \\frac{[C_\\ell^{\\rm sim} - \\kappa C^{(1)}_\\ell(\\alpha)]^2}{\\sigma_\\ell^2},

with ``C^(1)`` the steady state for ``K|G|^2 = 1 c k0`` (:class:`qltlib.fit.TheoryGrid`),
``sigma_l`` the standard error of the ensemble mean, and the amplitude ``kappa = K|G|^2/(c k0)``
either free (fitted with ``alpha``; the paper set it by hand) or fixed by the simulation's own
diffusion coefficient, ``kappa = K / k0`` with ``K`` the plateau of ``D(t)`` (``amplitude="diffusion"``,
:func:`simulated_diffusion`). ``alpha`` is
searched in :data:`qltlib.fit.ALPHA_RANGE` (``alpha = k1 c Delta T >= 10``, where the theory
holds); its 68 per cent interval is where the profile ``chi^2`` rises by 1 above its minimum.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

from ..observations.fit import (
    ALPHA_RANGE,
    DEFAULT_LMAX_THEORY,
    alpha_interval,
    announce_theory_table,
    cached_theory_grid,
    poor_fit_note,
    theory_node_count,
)
from ..particles.statistics import time_index
from ..theory.spectrum import make_spectrum

#: amplitude modes of :func:`fit_simulation`
AMPLITUDE_MODES = ("free", "diffusion")
#: default multipole range of the simulation fit (issue 9: 2 <= l <= 16)
DEFAULT_FIT_LMIN = 2
DEFAULT_FIT_LMAX = 16
#: multipoles whose standard error exceeds this fraction of |C_l| carry no shape information
#: (the sign of C_l - shot noise is not even known) and are left out of the fit
MAX_RELATIVE_ERROR = 1.0
#: points of the log-spaced alpha scan that locates the profile minimum and the Delta chi^2 = 1
#: crossings before they are refined (0.005 dex apart over 10..1000)
ALPHA_SCAN_POINTS = 401
#: lmax_theory values of the convergence table (issue 9, item 3)
TABLE_LMAX_THEORY = (12, 24, 48, 100, 200)


@dataclass
class SimulationFit:
    """Fit of the analytic steady state to a simulated ``C_l`` (:func:`fit_simulation`).

    ``alpha_interval`` is the ``Delta chi^2 = 1`` interval (``None`` ends as in
    :func:`qltlib.observations.fit.alpha_interval`), ``alpha_err`` half its width in ``ln alpha`` times
    ``alpha`` (``None`` unless two-sided). ``kg2`` is ``K|G|^2`` in units of ``c k0``.
    ``time`` is the back-tracking time of the fit as the settings request it (``640``, not the
    ``640.0000000000001`` the step grid reached).
    """

    alpha: float
    alpha_err: float | None
    alpha_interval: tuple
    alpha_interval_kind: str
    kg2: float
    kg2_err: float | None
    chi2: float
    ndof: int
    p_value: float
    converged: bool
    at_bound: list
    time: float
    lmax_theory: int
    amplitude: str
    ell: np.ndarray
    cl_sim: np.ndarray
    cl_err: np.ndarray
    cl_model: np.ndarray
    settings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-friendly result: the keys of ``qlt fit`` plus ``time``, ``lmax_theory``,
        ``p_value``, the amplitude mode and the fitted points."""
        def num(x):
            return None if x is None or not math.isfinite(x) else float(x)

        return {
            "alpha": {"value": num(self.alpha), "err": num(self.alpha_err),
                      "interval68": [num(v) for v in self.alpha_interval],
                      "interval_kind": self.alpha_interval_kind},
            "kg2": {"value": num(self.kg2), "err": num(self.kg2_err), "unit": "c k0"},
            "chi2": num(self.chi2),
            "ndof": int(self.ndof),
            "p_value": num(self.p_value),
            "converged": bool(self.converged),
            "at_bound": list(self.at_bound),
            "time": float(self.time),
            "lmax_theory": int(self.lmax_theory),
            "amplitude": self.amplitude,
            "ell": [int(v) for v in self.ell],
            "C_ell_sim": [float(v) for v in self.cl_sim],
            "C_ell_err": [float(v) for v in self.cl_err],
            "C_ell_model": [float(v) for v in self.cl_model],
            **self.settings,
            "notes": list(self.notes),
        }


def simulated_diffusion(summary: dict, it: int = -1) -> tuple:
    """``(K, error, description)``: the simulation's diffusion coefficient for a fixed amplitude.

    The plateau estimate ``diffusion_plateau`` of :func:`qltlib.particles.statistics.summarize` (slope of the
    mean-square displacement over the last interval) where the summary has it, else the running
    ``D(T)`` at time index ``it``.
    """
    if summary.get("diffusion_plateau") is not None:
        err = summary.get("diffusion_plateau_err")
        return (float(summary["diffusion_plateau"]), math.nan if err is None else float(err),
                "the plateau of D(t) (slope of <|Delta r|^2>/6 over the last interval)")
    times = np.asarray(summary["times"], dtype=float)
    return (float(np.asarray(summary["diffusion_coefficient"], dtype=float)[it]),
            float(np.asarray(summary["diffusion_coefficient_err"], dtype=float)[it]),
            f"the running D(T) at T = {times[it]:g}")


def theory_grid(settings: dict, lmax_theory: int, announce=None):
    """The tabulated steady state for the simulation's spectrum; ValueError if too costly.

    ``announce`` (optional) hears the estimate before the table is built
    (:func:`qltlib.observations.fit.announce_theory_table`).
    """
    from ..theory.transport import check_resources

    spectrum = make_spectrum(settings["spectrum"], settings["k0"], settings["k1"])
    check_resources(spectrum, ALPHA_RANGE[1], int(lmax_theory),
                    solves=theory_node_count(ALPHA_RANGE), lmax_name="lmax_theory")
    announce_theory_table(announce, spectrum, int(lmax_theory))
    return cached_theory_grid(settings["spectrum"], float(settings["k0"]), float(settings["k1"]),
                              int(lmax_theory))


def _profile(model_shapes, data, sigma, fixed_amplitude):
    """``(chi2, amplitude)`` of each row of ``model_shapes`` (best positive amplitude unless fixed)."""
    weights = 1.0 / sigma ** 2
    if fixed_amplitude is None:
        amplitude = (model_shapes @ (weights * data)) / (model_shapes ** 2 @ weights)
        amplitude = np.maximum(amplitude, 0.0)   # a negative K|G|^2 is unphysical
    else:
        amplitude = np.full(model_shapes.shape[0], float(fixed_amplitude))
    residual = data[None, :] - amplitude[:, None] * model_shapes
    return np.sum(residual ** 2 * weights[None, :], axis=1), amplitude


def _fit_points(summary: dict, it: int, lmax_theory: int, lmin, lmax, n_parameters: int) -> tuple:
    """``(ell, C_l, sigma_l, notes)`` of the simulation at time index ``it`` that enter a fit.

    The range ``lmin..lmax`` is cut at ``lmax_theory`` and at the simulation's last multipole;
    multipoles whose relative error exceeds :data:`MAX_RELATIVE_ERROR` are left out (with a note).
    ValueError when fewer than ``n_parameters + 1`` remain.
    """
    if int(lmin) != lmin or int(lmax) != lmax or not 1 <= lmin < lmax:
        raise ValueError(f"need integers 1 <= lmin < lmax, got lmin={lmin!r}, lmax={lmax!r}")
    times = np.asarray(summary["times"], dtype=float)
    cl = np.asarray(summary["C_ell"], dtype=float)[it]
    cl_err = np.asarray(summary["C_ell_err"], dtype=float)[it]
    notes = []
    top = min(int(lmax), int(lmax_theory), cl.size - 1)
    if top < int(lmax):
        why = "lmax_theory" if top == lmax_theory else "the simulation's last multipole"
        notes.append(f"fit range ends at l = {top} ({why}) instead of {int(lmax)}")
    ell = np.arange(int(lmin), top + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = cl_err[ell] / np.abs(cl[ell])
    usable = np.isfinite(relative) & (relative <= MAX_RELATIVE_ERROR)
    if not np.all(usable):
        notes.append(f"left out l = {', '.join(str(v) for v in ell[~usable])}: relative error of the "
                     f"simulated C_l above {MAX_RELATIVE_ERROR:g} (shot noise dominates)")
    ell = ell[usable]
    if ell.size < n_parameters + 1:
        raise ValueError(f"only {ell.size} multipoles with relative error <= {MAX_RELATIVE_ERROR:g} in "
                         f"l = {int(lmin)}..{top} at Omega t = {times[it]:g}; need at least "
                         f"{n_parameters + 1} to fit {n_parameters} parameter(s)")
    return ell, cl[ell], cl_err[ell], notes


def fit_simulation(summary: dict, time=None, lmax_theory: int = DEFAULT_LMAX_THEORY,
                   amplitude: str = "free", lmin: int = DEFAULT_FIT_LMIN,
                   lmax: int = DEFAULT_FIT_LMAX, theory=None, announce=None) -> SimulationFit:
    """Fit ``alpha`` (and ``K|G|^2`` if free) of the analytic steady state to a simulated ``C_l``.

    Parameters
    ----------
    summary : dict
        :func:`qltlib.particles.statistics.summarize` output (``times``, ``C_ell``, ``C_ell_err``,
        ``diffusion_coefficient``, ``diffusion_coefficient_err``, ``settings``, ``realisations``).
    time : float, optional
        Back-tracking time ``Omega T`` (one of the simulation's; default the last).
    lmax_theory : int
        Truncation of the steady-state system.
    amplitude : {"free", "diffusion"}
        ``free``: ``K|G|^2`` fitted; ``diffusion``: ``K|G|^2 = K / k0`` (units ``c k0``), with
        ``K`` the simulation's own diffusion coefficient (:func:`simulated_diffusion`: the
        plateau of ``D(t)``).
    lmin, lmax : int
        Multipole range; ``lmax`` is lowered to ``lmax_theory`` and to the simulation's last
        ``l``, and multipoles whose relative error exceeds :data:`MAX_RELATIVE_ERROR` are left
        out (each with a note).
    theory : TheoryGrid, optional
        Tabulated steady state (default: :func:`qltlib.observations.fit.cached_theory_grid` for the
        simulation's spectrum, after a resource check).
    announce : callable, optional
        Without ``theory``: hears what the table will cost once the input is checked
        (:func:`qltlib.observations.fit.announce_theory_table`; ``qlt fit`` prints it).

    Raises
    ------
    ValueError
        Unknown amplitude mode, time not in the simulation, bad multipole range, too few usable
        multipoles, or a steady state too costly for this machine (one line each).

    Notes
    -----
    Chapter *Validation by test particles*, :math:numref:`eq-val-fit`.
    """
    if amplitude not in AMPLITUDE_MODES:
        raise ValueError(f"amplitude must be one of {', '.join(AMPLITUDE_MODES)}, got {amplitude!r}")
    if isinstance(lmax_theory, bool) or int(lmax_theory) != lmax_theory or lmax_theory < 2:
        raise ValueError(f"lmax_theory must be an integer >= 2, got {lmax_theory!r}")
    lmax_theory = int(lmax_theory)
    settings = summary["settings"]
    times = np.asarray(summary["times"], dtype=float)
    it = time_index(times, time)
    free = amplitude == "free"
    n_parameters = 2 if free else 1
    ell, data, sigma, notes = _fit_points(summary, it, lmax_theory, lmin, lmax, n_parameters)
    k0 = float(settings["k0"])
    diffusion, diffusion_err, source = simulated_diffusion(summary, it)
    fixed = None if free else diffusion / k0
    if not free:
        notes.append(f"amplitude fixed: K|G|^2 = K / k0 with K = {diffusion:.4g} r_g c, {source} "
                     f"(its error is not propagated into chi2)")
    grid = theory_grid(settings, lmax_theory, announce) if theory is None else theory

    def shapes(log_alpha):
        log_alpha = np.atleast_1d(log_alpha)
        return np.array([grid.cl(math.exp(u))[ell] for u in log_alpha])

    def chi2_of(log_alpha):
        return float(_profile(shapes(log_alpha), data, sigma, fixed)[0][0])

    lo, hi = (math.log(a) for a in grid.alpha_range)
    scan = np.linspace(lo, hi, ALPHA_SCAN_POINTS)
    chi2_scan = _profile(shapes(scan), data, sigma, fixed)[0]
    best = int(np.argmin(chi2_scan))
    refined = optimize.minimize_scalar(chi2_of, bounds=(scan[max(best - 1, 0)],
                                                        scan[min(best + 1, scan.size - 1)]),
                                       method="bounded", options={"xatol": 1e-6})
    log_alpha = float(refined.x) if refined.fun <= chi2_scan[best] else float(scan[best])
    chi2_min = chi2_of(log_alpha)
    chi2_table, amplitude_best = _profile(shapes(log_alpha), data, sigma, fixed)
    model = amplitude_best[0] * shapes(log_alpha)[0]

    def crossing(direction):
        """ln alpha where the profile first exceeds chi2_min + 1 going ``direction`` from the best."""
        level = chi2_min + 1.0
        index = best
        while 0 <= index + direction < scan.size:
            index += direction
            if chi2_scan[index] > level:
                inner = scan[index - direction] if index - direction != best else log_alpha
                return float(optimize.brentq(lambda u: chi2_of(u) - level,
                                             *sorted((inner, scan[index])), xtol=1e-8))
        return -math.inf if direction < 0 else math.inf

    log_lower, log_upper = crossing(-1), crossing(+1)
    interval, kind, interval_notes = alpha_interval(log_alpha, log_lower, log_upper, grid.alpha_range)
    notes.extend(interval_notes)
    on_edge = min(log_alpha - lo, hi - log_alpha) < 0.05
    at_bound = ["alpha"] if on_edge else []
    alpha = math.exp(log_alpha)
    alpha_err = (alpha * 0.5 * (log_upper - log_lower)) if kind == "two-sided" else None

    kg2 = float(amplitude_best[0])
    if free:
        kg2_err = _free_amplitude_error(shapes, data, sigma, log_alpha, kg2, marginal=not on_edge)
        if kg2 == 0.0:
            at_bound.append("kg2")
            notes.append("best amplitude K|G|^2 = 0: no positive amplitude improves chi2")
    else:
        kg2_err = diffusion_err / k0
    ndof = int(ell.size - n_parameters)
    p_value = float(stats.chi2.sf(chi2_min, ndof))
    poor = poor_fit_note(chi2_min, ndof, p_value, "the interval (Delta chi2 = 1) assumes the "
                         "model describes the simulation")
    if poor:
        notes.append(poor)
    converged = bool(refined.success) and math.isfinite(chi2_min)
    return SimulationFit(
        alpha=alpha, alpha_err=alpha_err, alpha_interval=interval, alpha_interval_kind=kind,
        kg2=kg2, kg2_err=kg2_err, chi2=chi2_min, ndof=ndof, p_value=p_value, converged=converged,
        at_bound=at_bound, time=_requested_time(settings, times, it), lmax_theory=lmax_theory,
        amplitude=amplitude,
        ell=ell, cl_sim=data, cl_err=sigma, cl_model=model,
        settings={"spectrum": settings["spectrum"], "k0": k0, "k1": float(settings["k1"]),
                  "realisations": int(summary.get("realisations", 0)),
                  "diffusion_coefficient": diffusion, "diffusion_coefficient_err": diffusion_err,
                  "diffusion_estimate": source},
        notes=notes)


def _requested_time(settings: dict, times, it: int) -> float:
    """Back-tracking time ``it`` as the settings request it (``640``), not as the step grid
    reached it (``640.0000000000001``); the reached time where the settings hold no times."""
    requested = settings.get("times", [])
    return float(requested[it]) if len(requested) == len(times) else float(times[it])


def _free_amplitude_error(shapes, data, sigma, log_alpha, kg2, marginal=True) -> float:
    """Standard error of the free amplitude: from the inverse Hessian of ``chi^2 / 2`` in
    ``(ln alpha, kappa)`` (``marginal``, alpha free), or at fixed ``alpha`` where ``alpha``
    sits on the edge of its range."""
    weights = 1.0 / sigma ** 2
    shape = shapes(log_alpha)[0]
    if not marginal:
        return float(1.0 / math.sqrt(np.sum(shape ** 2 * weights)))
    step = 1e-4
    derivative = (shapes(log_alpha + step)[0] - shapes(log_alpha - step)[0]) / (2 * step)
    # Gauss-Newton Hessian of chi2/2: J^T W J with J = d(model)/d(ln alpha, kappa)
    jacobian = np.column_stack([kg2 * derivative, shape])
    hessian = jacobian.T @ (weights[:, None] * jacobian)
    try:
        covariance = np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        return math.nan
    return float(math.sqrt(covariance[1, 1])) if covariance[1, 1] > 0 else math.nan


def fit_table(summary: dict, lmax_theories=TABLE_LMAX_THEORY, amplitudes=AMPLITUDE_MODES,
              time=None, lmin: int = DEFAULT_FIT_LMIN, lmax: int = DEFAULT_FIT_LMAX) -> list:
    """Fits of :func:`fit_simulation` for several truncations and both amplitude modes.

    Returns
    -------
    list of dict
        One row per ``(lmax_theory, amplitude)``: ``lmax_theory``, ``amplitude``, ``alpha``,
        ``interval68``, ``interval_kind``, ``chi2``, ``ndof``, ``chi2_per_dof``, ``p_value``,
        ``kg2``, ``kg2_err``, ``n_points``, ``at_bound``, ``notes``.
    """
    rows = []
    for lmax_theory in lmax_theories:
        for amplitude in amplitudes:
            result = fit_simulation(summary, time=time, lmax_theory=lmax_theory, amplitude=amplitude,
                                    lmin=lmin, lmax=lmax)
            rows.append({"lmax_theory": int(lmax_theory), "amplitude": amplitude,
                         "alpha": result.alpha, "interval68": result.alpha_interval,
                         "interval_kind": result.alpha_interval_kind, "chi2": result.chi2,
                         "ndof": result.ndof, "chi2_per_dof": result.chi2 / result.ndof,
                         "p_value": result.p_value, "kg2": result.kg2, "kg2_err": result.kg2_err,
                         "n_points": int(result.ell.size), "at_bound": result.at_bound,
                         "notes": result.notes})
    return rows


def diffusion_comparison(times, diffusion, diffusion_err, spectrum, alphas=(50.0,),
                         n_sigma: float = 1.0) -> dict:
    """Running diffusion coefficient ``D(t)`` next to QLT's ``K`` (Markov and finite ``Delta T``).

    Parameters
    ----------
    times, diffusion, diffusion_err : array_like
        ``D(t) = <Delta x_i^2>/(2t)`` (units ``r_g c``) and its standard error.
    spectrum : TurbulenceSpectrum
    alphas : sequence of float
        ``alpha = k1 c Delta T`` at which the finite-``Delta T`` coefficient is given.
    n_sigma : float
        Plateau criterion: the last two ``D`` differ by at most ``n_sigma`` combined errors.

    Returns
    -------
    dict
        ``times``, ``D``, ``D_err``, ``K_markov``, ``K_finite`` (``{alpha: K}``),
        ``ratio_markov`` (``D / K_markov`` per time), ``last_change`` (``D(t_last) -
        D(t_prev)`` in combined errors), ``plateau`` (bool), ``D_late`` and ``D_late_err``.

    Notes
    -----
    ``K = 1/(3 nu_1)`` from :func:`qltlib.theory.transport.standard_qlt_rates`: the Markov limit
    ``nu_1 = 2 pi^2 int g/k dk``, and at finite ``Delta T = alpha / (c k1)`` the rate of the
    finite look-back step, which misses the modes with ``k c Delta T < 1``.
    """
    from ..theory.transport import standard_qlt_rates

    times = np.asarray(times, dtype=float)
    diffusion, diffusion_err = np.asarray(diffusion, dtype=float), np.asarray(diffusion_err, dtype=float)
    if not (times.shape == diffusion.shape == diffusion_err.shape) or times.ndim != 1:
        raise ValueError("times, diffusion and diffusion_err must be 1-D arrays of equal length")
    k_markov = standard_qlt_rates(spectrum).K
    k_finite = {float(a): standard_qlt_rates(spectrum, float(a) / spectrum.k1).K for a in alphas}
    if times.size > 1:
        combined = math.hypot(diffusion_err[-1], diffusion_err[-2])
        last_change = (diffusion[-1] - diffusion[-2]) / combined
        plateau = bool(abs(last_change) <= n_sigma)
    else:
        last_change, plateau = math.nan, False
    return {"times": times.tolist(), "D": diffusion.tolist(), "D_err": diffusion_err.tolist(),
            "K_markov": float(k_markov), "K_finite": k_finite,
            "ratio_markov": (diffusion / k_markov).tolist(), "last_change": float(last_change),
            "plateau": plateau, "D_late": float(diffusion[-1]), "D_late_err": float(diffusion_err[-1])}


def chi2_profile(summary: dict, alphas, time=None, lmax_theory: int = DEFAULT_LMAX_THEORY,
                 amplitude: str = "free", lmin: int = DEFAULT_FIT_LMIN, lmax: int = DEFAULT_FIT_LMAX,
                 theory=None) -> dict:
    """``chi^2(alpha)`` of the steady state against the simulation on a grid of ``alpha``.

    The profile behind :func:`fit_simulation` (same multipoles, same amplitude modes), for
    mapping which ``(alpha, lmax_theory)`` pairs describe the simulation.

    Returns
    -------
    dict
        ``alpha``, ``chi2``, ``p_value`` (per ``alpha``), ``kg2`` (amplitude per ``alpha``, units
        ``c k0``), ``ndof``, ``ell``, ``time``, ``lmax_theory``, ``amplitude``, ``notes``.
    """
    if amplitude not in AMPLITUDE_MODES:
        raise ValueError(f"amplitude must be one of {', '.join(AMPLITUDE_MODES)}, got {amplitude!r}")
    alphas = np.asarray(alphas, dtype=float)
    times = np.asarray(summary["times"], dtype=float)
    it = time_index(times, time)
    free = amplitude == "free"
    ell, data, sigma, notes = _fit_points(summary, it, lmax_theory, lmin, lmax, 2 if free else 1)
    grid = theory_grid(summary["settings"], lmax_theory) if theory is None else theory
    low, high = grid.alpha_range
    if np.any(alphas < low * (1 - 1e-12)) or np.any(alphas > high * (1 + 1e-12)):
        raise ValueError(f"alphas must lie in the tabulated range {low:g}..{high:g}")
    fixed = None if free else simulated_diffusion(summary, it)[0] / float(summary["settings"]["k0"])
    shapes = np.array([grid.cl(float(a))[ell] for a in alphas])
    chi2, kg2 = _profile(shapes, data, sigma, fixed)
    ndof = int(ell.size - (2 if free else 1))
    return {"alpha": alphas.tolist(), "chi2": chi2.tolist(), "p_value": stats.chi2.sf(chi2, ndof).tolist(),
            "kg2": kg2.tolist(), "ndof": ndof, "ell": ell.tolist(), "time": float(times[it]),
            "lmax_theory": int(lmax_theory), "amplitude": amplitude, "notes": notes}


def acceptable_alphas(profile: dict, p_min: float = 0.05) -> dict:
    """The ``alpha`` of a :func:`chi2_profile` whose fit is acceptable (p-value at least ``p_min``).

    Returns
    -------
    dict
        ``lmax_theory``, ``best_alpha`` (grid point of least ``chi^2``), ``best_p_value``,
        ``range`` (``[min, max]`` of the acceptable grid points, ``None`` if none) and ``fits``.
    """
    alpha, p = np.asarray(profile["alpha"]), np.asarray(profile["p_value"])
    best = int(np.argmin(profile["chi2"]))
    ok = alpha[p >= p_min]
    return {"lmax_theory": profile["lmax_theory"], "best_alpha": float(alpha[best]),
            "best_p_value": float(p[best]), "range": [float(ok.min()), float(ok.max())] if ok.size else None,
            "fits": bool(ok.size)}


def resolved_multipoles(cl, cl_err, threshold: float, lmin: int = 2) -> list:
    """Per time, the largest ``l`` up to which every ``C_l`` (``lmin..l``) is positive with
    relative error at most ``threshold`` (``lmin - 1`` when already ``lmin`` fails)."""
    cl, cl_err = np.asarray(cl, dtype=float), np.asarray(cl_err, dtype=float)
    out = []
    for values, errors in zip(np.atleast_2d(cl), np.atleast_2d(cl_err)):
        with np.errstate(divide="ignore", invalid="ignore"):
            good = (values[lmin:] > 0) & (np.abs(errors[lmin:]) <= threshold * values[lmin:])
        bad = np.flatnonzero(~good)
        out.append(int(lmin + (bad[0] if bad.size else good.size) - 1))
    return out


def time_dependent_comparison(summary: dict, alphas, lmax_theory: int = DEFAULT_LMAX_THEORY,
                              lmin: int = DEFAULT_FIT_LMIN, lmax: int = DEFAULT_FIT_LMAX) -> dict:
    """The analytic ``C_l(t)`` from an isotropic start against the simulated ``C_l`` at every time.

    For each ``alpha`` the model at back-tracking time ``T`` is
    :func:`qltlib.theory.transport.time_dependent_spectrum` at ``t = T`` with the source normalised by the
    simulated ``D(T)`` (no free amplitude); ``chi^2`` over the fit multipoles of that time.

    Returns
    -------
    dict
        ``times``, ``alpha``, ``chi2`` ``(n_times, n_alpha)``, ``ndof`` (per time),
        ``best_alpha`` and ``best_p_value`` (per time; grid points), ``model``
        ``(n_alpha, n_times, lmax_theory)`` for ``l = 1..lmax_theory`` and ``lmax_theory``.

    Notes
    -----
    Chapter *Steady state*, :math:numref:`eq-time-dependent`: ``C(t) = A^{-1}(1 - e^{-A t}) s``.
    """
    from ..theory.transport import time_dependent_spectrum

    settings = summary["settings"]
    spectrum = make_spectrum(settings["spectrum"], settings["k0"], settings["k1"])
    times = np.asarray(summary["times"], dtype=float)
    diffusion = np.asarray(summary["diffusion_coefficient"], dtype=float)
    alphas = np.asarray(alphas, dtype=float)
    # source for K|G|^2 = 1 c k0, rescaled per time by D(T)/k0 below
    model = np.array([time_dependent_spectrum(spectrum, a, int(lmax_theory), times, kg2=1.0) for a in alphas])
    chi2 = np.full((times.size, alphas.size), np.nan)
    ndof = []
    for it in range(times.size):
        ell, data, sigma, _ = _fit_points(summary, it, lmax_theory, lmin, lmax, 1)
        prediction = diffusion[it] / spectrum.k0 * model[:, it, ell - 1]
        chi2[it] = np.sum((data[None, :] - prediction) ** 2 / sigma[None, :] ** 2, axis=1)
        ndof.append(int(ell.size) - 1)   # alpha is chosen on the grid
    best = np.argmin(chi2, axis=1)
    best_chi2 = chi2[np.arange(times.size), best]
    return {"times": times.tolist(), "alpha": alphas.tolist(), "chi2": chi2.tolist(), "ndof": ndof,
            "best_alpha": alphas[best].tolist(),
            "best_p_value": [float(stats.chi2.sf(c, d)) for c, d in zip(best_chi2, ndof)],
            "model": model.tolist(), "lmax_theory": int(lmax_theory)}
