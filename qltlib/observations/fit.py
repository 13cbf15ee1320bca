"""Likelihood fit of the steady-state QLT spectrum to an observed pseudo-power spectrum.

Chapter *Comparison with observations* (:ref:`ch-observations`). For one energy bin the model
of the observed ``C~_l`` is

.. math:: \\mu_\\ell(\\alpha, K|G|^2, N) = K|G|^2 \\sum_{\\ell'} M_{\\ell\\ell'}
          C^{(1)}_{\\ell'}(\\alpha) + N n_\\ell ,

(:math:numref:`eq-obs-model`) with ``C^(1)`` the steady-state spectrum for ``K|G|^2 = 1 c k_0``
(:func:`qltlib.theory.transport.steady_state_spectrum` is linear in ``K|G|^2``), ``M`` and ``n_l`` the
mask + ``m = 0`` filter response (:class:`qltlib.observations.sky.PseudoClModel`).

Statistics (:math:numref:`eq-obs-likelihood`), in ``ln C~_l``. Each ``C~_l`` of a Gaussian sky
is a sum of squared Gaussian modes, close to a Gamma variable with shape
``k_l = mu_l^2 / Var C~_l`` (the exact variance from the mode-coupling covariance, which holds the
cosmic variance of signal and noise). Its logarithm has mean ``ln mu_l + psi(k_l) - ln k_l`` and
variance ``psi_1(k_l)`` (digamma, trigamma) — exact moments of the log of a Gamma variable, which
matter at low ``l`` where few modes survive the ``m = 0`` filter (``C~_1`` has two). The
digitisation error (``0.03 dex``, independent point to point) adds in quadrature:
``s_l^2 = psi_1(k_l) + (0.03 ln 10)^2``. The published statistical error bars are not added: they
are the noise part of the same variance (counted already), and mostly hidden behind the markers.

Estimator: the quasi-likelihood (estimating) equations ``sum_l J_l (ln C~_l - <ln C~_l>) / s_l^2
= 0``, solved by iteratively re-weighted least squares (weights ``1/s_l^2`` frozen at the previous
solution). Neighbouring ``l`` are strongly correlated through the mask, and the full
log-normal likelihood with those correlations is badly calibrated (its near-singular correlation
matrix is not respected by the nonlinear log); with the variance term ``sum ln s_l^2`` kept, the
estimate is pulled toward flat spectra, without it (plain ``chi^2`` with model variances) toward
steep ones. The estimating equations have neither bias (exact for exact data), and their
covariance follows from the sandwich formula with the *full* covariance of ``ln C~_l``.
In 24 simulated skies the pulls had rms 0.3-1 and every ``alpha`` interval covered the truth
(chapter): the errors are conservative.

``K|G|^2`` and ``N`` enter the mean linearly, so for each ``alpha`` they are found by a cheap
two-parameter minimisation; ``alpha`` is scanned on the grid on which the theory is tabulated
(:class:`TheoryGrid`) and refined with Brent's method.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import optimize, stats
from scipy.interpolate import CubicSpline

from ..theory.spectrum import TurbulenceSpectrum, make_spectrum
from ..theory.transport import ALPHA_MIN_THEORY, check_resources, estimate_solves
from ..units import PAPER_K0, PAPER_K1
from .likelihood import (
    LOG_KG2_BOUNDS,
    LOG_NOISE_BOUNDS,
    PseudoClLikelihood,
    digitisation_error,
    fit_statistics,
    json_number,
    reweighted_fit,
    select_energy_bin,
)
from .sky import cached_pseudo_cl_model

#: Default multipole range of the fit. l = 1 is left out: the observed dipole is set by the
#: large-scale gradient and the regular field (absent in the model, B_0 = 0, which fixes neither
#: its direction nor its coupling to the heliosphere), and after the m = 0 filter it is a single
#: complex mode. l = 40 is left out: its digitised marker is clipped by the plot's right axis
#: (flag ``marker_clipped_at_axis``).
DEFAULT_LMIN = 2
DEFAULT_LMAX = 39
#: Theory truncation: C_l enters up to this l (it feeds l <= 40 through the mask); 100 as in the
#: steady-state chapter.
DEFAULT_LMAX_THEORY = 100
#: Range of alpha = k1 c Delta T explored, and the spacing of the theory table (dex). The lower
#: edge is the theory's (alpha = k1 c Delta T >> 1, :data:`qltlib.theory.transport.ALPHA_MIN_THEORY`):
#: a fit does not wander where the steady state no longer applies.
ALPHA_RANGE = (ALPHA_MIN_THEORY, 1000.0)
THEORY_GRID_STEP_DEX = 0.2
#: a fit whose chi2 has a p-value below this gets a "poor fit" note (data and simulation fits)
POOR_FIT_P_VALUE = 0.05


def poor_fit_note(chi2: float, ndof: int, p_value: float, caveat: str) -> str | None:
    """The note of a fit whose ``chi2`` is improbable for ``ndof`` degrees of freedom, or ``None``.

    Parameters
    ----------
    chi2, ndof, p_value : float, int, float
        The fit's ``chi2``, its degrees of freedom and the chi2 survival function there.
    caveat : str
        What rests on the model being right, e.g. ``"the interval (Delta chi2 = 1) assumes
        the model describes the simulation"``.

    Returns
    -------
    str or None
        ``"poor fit (chi2 = 58.8 for 35 dof, p = 0.0073): ..."`` when ``p_value`` is below
        :data:`POOR_FIT_P_VALUE`, else ``None``.
    """
    if not (math.isfinite(p_value) and p_value < POOR_FIT_P_VALUE):
        return None
    return f"poor fit (chi2 = {chi2:.3g} for {ndof} dof, p = {p_value:.2g}): {caveat}"


class TheoryGrid:
    """Steady-state ``C_l`` for ``K|G|^2 = 1 c k_0`` tabulated in ``alpha`` and interpolated.

    ``ln C_l`` is a smooth function of ``ln alpha``; a cubic spline through nodes spaced
    ``THEORY_GRID_STEP_DEX`` reproduces a direct evaluation to better than 0.5 per cent
    (tested), far below the 7 per cent digitisation error, and lets every fit reuse one table.

    Parameters
    ----------
    spectrum_name : str
        ``white``, ``kolmogorov``, ``logflat`` or ``flat3d`` (:func:`qltlib.theory.spectrum.make_spectrum`).
    k0, k1 : float
        Turbulence band (units ``1/r_g``).
    lmax_theory : int
        Truncation of the steady-state system.
    alpha_range : tuple
        Tabulated range of ``alpha``.
    """

    def __init__(self, spectrum_name: str = "white", k0: float = PAPER_K0, k1: float = PAPER_K1,
                 lmax_theory: int = DEFAULT_LMAX_THEORY, alpha_range=ALPHA_RANGE,
                 step_dex: float = THEORY_GRID_STEP_DEX):
        from ..theory.transport import steady_state_spectrum  # the analytic core

        self.spectrum = make_spectrum(spectrum_name, k0, k1)
        self.lmax_theory = int(lmax_theory)
        lo, hi = (math.log10(a) for a in alpha_range)
        self.log10_alpha_nodes = np.linspace(lo, hi, theory_node_count(alpha_range, step_dex))
        self.alpha_range = (float(alpha_range[0]), float(alpha_range[1]))
        self._solve = steady_state_spectrum
        table = np.array([self._direct(10.0 ** x) for x in self.log10_alpha_nodes])
        if np.any(table <= 0):
            raise ValueError("steady-state C_l not positive on the alpha grid; cannot tabulate ln C_l")
        self._spline = CubicSpline(self.log10_alpha_nodes, np.log(table), axis=0)

    def _direct(self, alpha: float) -> np.ndarray:
        return self._solve(self.spectrum, alpha, self.lmax_theory, kg2=1.0).C_ell

    def direct(self, alpha: float) -> np.ndarray:
        """``C_l``, ``l = 0..lmax_theory`` (``C_0 = 0``), solved directly (no interpolation)."""
        return np.concatenate([[0.0], self._direct(alpha)])

    def cl(self, alpha: float) -> np.ndarray:
        """``C_l``, ``l = 0..lmax_theory`` (``C_0 = 0``: the relative intensity has no monopole)."""
        x = math.log10(alpha)
        if not (self.log10_alpha_nodes[0] - 1e-12 <= x <= self.log10_alpha_nodes[-1] + 1e-12):
            raise ValueError(f"alpha = {alpha:g} outside the tabulated range "
                             f"{self.alpha_range[0]:g}..{self.alpha_range[1]:g}")
        return np.concatenate([[0.0], np.exp(self._spline(x))])


def theory_node_count(alpha_range=ALPHA_RANGE, step_dex: float = THEORY_GRID_STEP_DEX) -> int:
    """Number of ``alpha`` nodes of a :class:`TheoryGrid` (steady states it solves)."""
    span = math.log10(alpha_range[1]) - math.log10(alpha_range[0])
    return max(4, int(round(span / step_dex)) + 1)


def theory_alphas(alpha_range=ALPHA_RANGE, step_dex: float = THEORY_GRID_STEP_DEX) -> np.ndarray:
    """The ``alpha`` nodes of a :class:`TheoryGrid`: log-spaced over ``alpha_range``."""
    lo, hi = (math.log10(a) for a in alpha_range)
    return 10.0 ** np.linspace(lo, hi, theory_node_count(alpha_range, step_dex))


def announce_theory_table(announce, spectrum: TurbulenceSpectrum, lmax_theory: int) -> None:
    """Tell ``announce`` what the default :class:`TheoryGrid` will cost, before it is built.

    Parameters
    ----------
    announce : callable or None
        Called as ``announce(estimate, what)`` with the
        :class:`~qltlib.theory.transport.ResourceEstimate` of its steady states
        (:func:`~qltlib.theory.transport.estimate_solves`) and a few words on what is
        estimated; ``None`` does nothing.
    spectrum : TurbulenceSpectrum
    lmax_theory : int
        Truncation of the table.
    """
    if announce is None:
        return
    alphas = theory_alphas()
    announce(estimate_solves(spectrum, alphas, int(lmax_theory)),
             f"the theory table ({alphas.size} steady states at lmax_theory = "
             f"{int(lmax_theory)}), then the fit")


@lru_cache(maxsize=8)
def cached_theory_grid(spectrum_name: str = "white", k0: float = PAPER_K0, k1: float = PAPER_K1,
                       lmax_theory: int = DEFAULT_LMAX_THEORY) -> TheoryGrid:
    """One :class:`TheoryGrid` per spectrum and truncation (shared by all energy bins)."""
    return TheoryGrid(spectrum_name, k0, k1, lmax_theory)


@dataclass
class FitResult:
    """Best fit of one energy bin; errors are 1 sigma (``None`` where undetermined).

    ``at_bound`` names the parameters whose best fit lies on the edge of the explored range
    (``alpha``: the tabulated range; ``kg2``/``noise``: negligible contribution). Their symmetric
    error is ``None``. ``alpha_interval`` is the 68 per cent interval; an end that lies beyond
    the explored range (or on the side of the edge where ``alpha`` sits) is ``None``, and
    ``alpha_interval_kind`` says which: ``two-sided``, ``upper limit`` (no lower end),
    ``lower limit`` (no upper end), ``unconstrained`` (neither) or ``undetermined`` (no
    covariance). Every ``None`` end has a note in ``notes`` saying why.
    """

    alpha: float
    alpha_err: float | None
    alpha_interval: tuple | None
    kg2: float
    kg2_err: float | None
    noise: float
    noise_err: float | None
    chi2: float
    ndof: int
    converged: bool
    at_bound: list
    ell: np.ndarray
    cl_obs: np.ndarray
    model_mean: np.ndarray
    model_log_mean: np.ndarray
    model_log_sd: np.ndarray
    reweightings: int = 0
    settings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    alpha_interval_kind: str = "undetermined"
    p_value: float = math.nan

    def to_dict(self) -> dict:
        """JSON-friendly summary (the ``qlt fit`` output); ``kg2`` in units of ``c k_0``."""
        num = json_number
        interval = None if self.alpha_interval is None else [num(v) for v in self.alpha_interval]
        return {
            "alpha": {"value": num(self.alpha), "err": num(self.alpha_err), "interval68": interval,
                      "interval_kind": self.alpha_interval_kind},
            "kg2": {"value": num(self.kg2), "err": num(self.kg2_err), "unit": "c k0"},
            **fit_statistics(self),
            **{key: value for key, value in self.settings.items()},
            "notes": list(self.notes),
        }


#: distance (in the natural log of a parameter) below which a best fit counts as on the bound
_BOUND_TOLERANCE = 0.05


def _minimise_weighted(likelihood: PseudoClLikelihood, log_nodes) -> tuple:
    """Minimise :meth:`PseudoClLikelihood.objective`: scan ``alpha`` over the nodes (profiling
    ``K|G|^2`` and ``N``), refine around the best node with Brent's method.

    Returns ``(log_alpha, kg2, noise, success)``.
    """
    def profile_of_log_alpha(u):
        return likelihood.profile(math.exp(u))[0]

    # the profile can have two minima (flat and steep spectra), so scan before refining
    scan = np.array([profile_of_log_alpha(u) for u in log_nodes])
    best = int(np.argmin(scan))
    left = log_nodes[max(best - 1, 0)]
    right = log_nodes[min(best + 1, log_nodes.size - 1)]
    refined = optimize.minimize_scalar(profile_of_log_alpha, bounds=(left, right),
                                       method="bounded", options={"xatol": 1e-4})
    log_alpha = float(refined.x) if refined.fun <= scan[best] else float(log_nodes[best])
    value, kg2, noise = likelihood.profile(math.exp(log_alpha))
    return log_alpha, kg2, noise, bool(refined.success) and math.isfinite(value)


def fit_likelihood(likelihood: PseudoClLikelihood, alpha_nodes=None) -> FitResult:
    """Solve the estimating equations for ``(alpha, K|G|^2, N)`` and give their errors.

    Iteratively re-weighted least squares: minimise ``sum_l (ln C~_obs - <ln C~>)^2 / s_l^2``
    with the weights ``s_l^2`` of the model at the trial parameters, then freeze the weights at
    the solution and minimise again, until the parameters stop moving (its fixed point solves
    ``sum_l J_l r_l / s_l^2 = 0``). Each minimisation scans ``alpha`` over ``alpha_nodes``
    (default: the theory table's nodes) and profiles ``K|G|^2`` and ``N``. Errors come from the
    sandwich covariance in the logarithms of the parameters
    (:meth:`PseudoClLikelihood.sandwich_covariance`), ``sigma_x = x sigma_{ln x}``; the 68 per
    cent interval of ``alpha`` is ``alpha exp(+-sigma_{ln alpha})`` (``None`` for an end beyond
    the explored range or on the edge where ``alpha`` sits, each with a note; see
    :func:`_alpha_interval`).

    Notes
    -----
    :math:numref:`eq-obs-likelihood`, :math:numref:`eq-obs-sandwich`.
    """
    theory = likelihood.theory
    if alpha_nodes is None:
        alpha_nodes = 10.0 ** np.asarray(theory.log10_alpha_nodes)
    log_nodes = np.log(np.asarray(alpha_nodes, dtype=float))
    lo_bound, hi_bound = (math.log(a) for a in theory.alpha_range)

    def minimise():
        log_alpha, kg2, noise, success = _minimise_weighted(likelihood, log_nodes)
        return np.array([log_alpha, math.log(kg2), math.log(noise)]), success

    point, converged, reweightings, notes = reweighted_fit(likelihood, minimise, lambda p: p)

    lower = np.array([lo_bound, LOG_KG2_BOUNDS[0], LOG_NOISE_BOUNDS[0]])
    upper = np.array([hi_bound, LOG_KG2_BOUNDS[1], LOG_NOISE_BOUNDS[1]])
    names = ("alpha", "kg2", "noise")
    on_bound = (point - lower < _BOUND_TOLERANCE) | (upper - point < _BOUND_TOLERANCE)
    at_bound = [name for name, flag in zip(names, on_bound) if flag]
    if on_bound[2]:
        notes.append("noise negligible (on its lower bound)")

    # sandwich errors; a parameter on its bound keeps no symmetric error, but alpha still gets
    # the one-sided end of its interval from the local slope
    free = [i for i in range(3) if not on_bound[i] or i == 0]
    errors = [None, None, None]
    sigma_log_alpha = None
    try:
        cov = likelihood.sandwich_covariance(point, free)
        sigma = np.sqrt(np.diag(cov))
        if not np.all(np.isfinite(sigma)):
            raise np.linalg.LinAlgError("non-finite sandwich covariance")
        for k, i in enumerate(free):
            if not on_bound[i]:
                errors[i] = float(math.exp(point[i]) * sigma[k])
        sigma_log_alpha = float(sigma[free.index(0)])
    except np.linalg.LinAlgError:
        notes.append("sandwich covariance singular: errors and the alpha interval undetermined")
    interval, interval_kind, interval_notes = _alpha_interval(point[0], sigma_log_alpha,
                                                              theory.alpha_range)
    notes.extend(interval_notes)

    alpha, kg2, noise = np.exp(point)
    mean, _, log_mean, log_cov = likelihood.moments(alpha, kg2, noise)
    chi2, ndof = likelihood.chi2(alpha, kg2, noise), int(likelihood.ell.size - 3)
    p_value = float(stats.chi2.sf(chi2, ndof)) if ndof >= 1 else math.nan
    poor = poor_fit_note(chi2, ndof, p_value, "the errors and the alpha interval assume the "
                         "model describes the data")
    if poor:
        notes.append(poor)
    return FitResult(
        alpha=float(alpha), alpha_err=errors[0], alpha_interval=interval,
        alpha_interval_kind=interval_kind,
        kg2=float(kg2), kg2_err=errors[1], noise=float(noise), noise_err=errors[2],
        chi2=chi2, ndof=ndof, p_value=p_value, converged=converged, at_bound=at_bound,
        ell=likelihood.ell.copy(),
        cl_obs=likelihood.cl_obs.copy(), model_mean=mean, model_log_mean=log_mean,
        model_log_sd=np.sqrt(np.diag(log_cov)), reweightings=reweightings, notes=notes)


def _alpha_interval(log_alpha: float, sigma_log_alpha: float | None, alpha_range) -> tuple:
    """68 per cent interval ``alpha exp(+-sigma_{ln alpha})`` within the explored range.

    Returns ``((lower, upper), kind, notes)`` as :func:`alpha_interval`.
    """
    if sigma_log_alpha is None:
        return (None, None), "undetermined", []
    return alpha_interval(log_alpha, log_alpha - sigma_log_alpha, log_alpha + sigma_log_alpha,
                          alpha_range)


def alpha_interval(log_alpha: float, log_lower: float, log_upper: float, alpha_range) -> tuple:
    """68 per cent interval ``(exp(log_lower), exp(log_upper))`` of ``alpha`` within the explored range.

    Parameters
    ----------
    log_alpha : float
        ``ln`` of the best fit.
    log_lower, log_upper : float
        ``ln`` of the interval's ends; ``-inf`` / ``+inf`` for an end not found inside the range.
    alpha_range : tuple
        Explored range of ``alpha``.

    Returns
    -------
    ((lower, upper), kind, notes)
        An end is ``None`` when the best fit sits on that edge of the range (the interval is
        one-sided there) or when it falls beyond the range (the data do not bound ``alpha`` on
        that side); each ``None`` comes with a note. ``kind`` is ``two-sided``, ``upper limit``
        (no lower end), ``lower limit`` (no upper end) or ``unconstrained``.
    """
    lo, hi = (float(a) for a in alpha_range)
    edges = f"{lo:g}..{hi:g}"
    theory_edge = (f" (the theory needs alpha = k1 c Delta T >> 1, alpha >= {ALPHA_MIN_THEORY:g})"
                   if lo == ALPHA_MIN_THEORY else "")
    notes = []
    at_lower = log_alpha - math.log(lo) < _BOUND_TOLERANCE
    at_upper = math.log(hi) - log_alpha < _BOUND_TOLERANCE
    lower = math.exp(log_lower)
    upper = math.exp(log_upper)
    if at_lower:
        notes.append(f"alpha on the lower edge {lo:g} of the explored range {edges}{theory_edge}; "
                     "the data prefer smaller alpha: the interval is one-sided, no lower end")
        lower = None
    elif lower < lo * (1 - 1e-9):
        notes.append(f"68% interval reaches below the explored range {edges}{theory_edge}: "
                     "no lower end")
        lower = None
    if at_upper:
        notes.append(f"alpha on the upper edge {hi:g} of the explored range {edges}: the interval "
                     "is one-sided, no upper end")
        upper = None
    elif upper > hi * (1 + 1e-9):
        notes.append(f"68% interval reaches above the explored range {edges}: no upper end")
        upper = None
    kind = {(True, True): "two-sided", (False, True): "upper limit",
            (True, False): "lower limit", (False, False): "unconstrained"}[
                (lower is not None, upper is not None)]
    if kind == "unconstrained":
        notes.append(f"alpha is not constrained by these data within {edges}")
    return (lower, upper), kind, notes


def build_likelihood(dataset: str = "icecube-12yr", energy_tev: float = 13.0,
                     lmin: int = DEFAULT_LMIN, lmax: int = DEFAULT_LMAX,
                     dec_max: float | None = None, spectrum: str = "white",
                     k0: float = PAPER_K0, k1: float = PAPER_K1,
                     lmax_theory: int = DEFAULT_LMAX_THEORY, fsky_normalise: bool = False,
                     registry=None, announce=None) -> tuple:
    """Likelihood of one energy bin of a registered data set, and the settings used.

    ``announce``, if given, is called as :func:`announce_theory_table` says, once the input is
    checked and before the theory table is built (``qlt fit`` prints the estimate).

    Raises
    ------
    ValueError
        Unknown data set, energy not in it (the message lists the available ones), malformed
        file, or an invalid multipole range / declination cut.
    """
    if int(lmax_theory) != lmax_theory or lmax_theory < lmax:
        raise ValueError(f"lmax_theory must be an integer >= lmax = {lmax}, got {lmax_theory!r}")
    data, energy_bin, selected = select_energy_bin(dataset, energy_tev, lmin, lmax, registry)
    spectrum_model = make_spectrum(spectrum, float(k0), float(k1))
    check_resources(spectrum_model, ALPHA_RANGE[1], int(lmax_theory),
                    solves=theory_node_count(ALPHA_RANGE), lmax_name="lmax_theory")
    dec_max = data.dec_max_deg if dec_max is None else float(dec_max)
    model = cached_pseudo_cl_model(data.dec_min_deg, dec_max, int(lmax), int(lmax_theory),
                                   data.m0_filtered, bool(fsky_normalise), None)
    announce_theory_table(announce, spectrum_model, int(lmax_theory))
    theory = cached_theory_grid(spectrum, float(k0), float(k1), int(lmax_theory))
    digitisation = digitisation_error(data)
    likelihood = PseudoClLikelihood(energy_bin.ell[selected], energy_bin.cl_tilde[selected],
                                    model, theory, digitisation_dex=digitisation)
    settings = {"dataset": dataset, "energy_tev": float(energy_bin.energy_tev),
                "lmin": int(lmin), "lmax": int(lmax), "n_points": int(np.count_nonzero(selected)),
                "dec_min_deg": data.dec_min_deg, "dec_max_deg": dec_max,
                "m0_filtered": data.m0_filtered, "fsky_normalise": bool(fsky_normalise),
                "spectrum": spectrum, "k0": float(k0), "k1": float(k1),
                "lmax_theory": int(lmax_theory), "digitisation_dex": digitisation}
    return likelihood, settings


def fit_energy_bin(dataset: str = "icecube-12yr", energy_tev: float = 13.0, **options) -> FitResult:
    """Fit ``(alpha, K|G|^2, N)`` to one energy bin; options as :func:`build_likelihood`.

    Notes
    -----
    :math:numref:`eq-obs-model` and :math:numref:`eq-obs-likelihood`.
    """
    likelihood, settings = build_likelihood(dataset, energy_tev, **options)
    result = fit_likelihood(likelihood)
    result.settings = settings
    return result
