"""The statistics of an observed pseudo-power spectrum, shared by every fit to it.

Chapter *Comparison with observations* (:ref:`ch-observations`), equations
:math:numref:`eq-obs-likelihood` and :math:numref:`eq-obs-sandwich`. A fit's model of
``<C~_l>`` is an amplitude times the forward-modelled full-sky shape plus white noise,
``mu_l = K|G|^2 sum_l' M_{l l'} C^(1)_l' + N n_l``; the shape comes from the analytic steady
state in ``alpha`` (:mod:`qltlib.observations.fit`) or from a measured one-step steady state
(:mod:`qltlib.observations.shape_fit`). This module holds what both use: the moments of
``ln C~_l`` (:class:`PseudoClLikelihood`), the re-weighted solution of the estimating
equations (:func:`reweighted_fit`) and the selection of the data points (:func:`select_energy_bin`).
The statistics are explained in :mod:`qltlib.observations.fit`.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import optimize
from scipy.special import digamma, polygamma

from .data import load_dataset
from .sky import PseudoClModel

#: Iteratively re-weighted least squares: at most this many re-weightings, stop when the
#: parameters (natural log) move by less than the tolerance.
MAX_REWEIGHTINGS = 20
REWEIGHT_TOLERANCE = 1e-3
#: Search ranges for the two linear amplitudes (natural log): generous, they only guard the
#: optimiser against running away.
LOG_KG2_BOUNDS = (math.log(1e-14), math.log(1e3))
LOG_NOISE_BOUNDS = (math.log(1e-16), math.log(1e-4))
#: Digitisation accuracy of the IceCube numbers if the registry gives none.
DEFAULT_DIGITISATION_DEX = 0.03


def digitisation_error(data) -> float:
    """Point-to-point error (dex) of a data set's numbers: the registry's, for digitised data."""
    if not data.meta.get("digitised"):
        return 0.0
    return float(data.meta.get("digitisation_error_dex", DEFAULT_DIGITISATION_DEX))


def select_energy_bin(dataset: str, energy_tev: float, lmin: int, lmax: int, registry=None,
                      parameters: int = 3) -> tuple:
    """The data set, its energy bin and the mask of the points with ``lmin <= l <= lmax``.

    Raises
    ------
    ValueError
        Unknown data set or energy, a malformed file, an invalid multipole range, or fewer
        than ``parameters + 1`` points in it.
    """
    data = load_dataset(dataset, registry)
    energy_bin = data.bin(energy_tev)
    if int(lmin) != lmin or int(lmax) != lmax or not (1 <= lmin < lmax):
        raise ValueError(f"need integers 1 <= lmin < lmax, got lmin={lmin!r}, lmax={lmax!r}")
    data_lmax = int(np.max(energy_bin.ell))
    if lmax > data_lmax:
        raise ValueError(f"lmax = {lmax} is beyond the data: {dataset} at "
                         f"{energy_bin.energy_tev:g} TeV ends at l = {data_lmax}")
    selected = energy_bin.select(lmin, lmax)
    if np.count_nonzero(selected) < parameters + 1:
        raise ValueError(f"only {np.count_nonzero(selected)} data points in l = {lmin}..{lmax}; "
                         f"need at least {parameters + 1} for {parameters} parameters")
    return data, energy_bin, selected


class PseudoClLikelihood:
    """Statistics of observed ``C~_l`` given ``(alpha, K|G|^2, N)``.

    Parameters
    ----------
    ell : array_like of int
        Multipoles of the data points.
    cl_obs : array_like
        Observed pseudo-power (positive).
    model : PseudoClModel
        Mask and filter response (``lmax_out >= max(ell)``).
    theory : TheoryGrid or object with ``cl(alpha)`` and ``alpha_range``
        Full-sky ``C_l`` for ``K|G|^2 = 1``.
    digitisation_dex : float
        Point-to-point error of the numbers (dex), added in quadrature in ``ln C~``.

    Attributes
    ----------
    frozen_log_variance : ndarray or None
        Weights ``s_l^2`` of :meth:`objective`; ``None`` uses the model's own (at the trial
        parameters). Set by :func:`reweighted_fit` during the re-weighting.

    Notes
    -----
    :math:numref:`eq-obs-likelihood`.
    """

    def __init__(self, ell, cl_obs, model: PseudoClModel, theory, digitisation_dex: float = 0.0):
        self.ell = np.asarray(ell, dtype=int)
        cl_obs = np.asarray(cl_obs, dtype=float)
        if self.ell.shape != cl_obs.shape or self.ell.size == 0:
            raise ValueError("ell and cl_obs must be non-empty arrays of equal length")
        if np.any(cl_obs <= 0) or not np.all(np.isfinite(cl_obs)):
            raise ValueError("observed C~_l must be finite and positive (their logarithm is used)")
        if self.ell.min() < 1 or self.ell.max() > model.lmax_out:
            raise ValueError(f"ell must lie in 1..{model.lmax_out} (the model's lmax_out)")
        self.cl_obs = cl_obs
        self.log_obs = np.log(cl_obs)
        self.model = model
        self.theory = theory
        self.sigma_digitisation = digitisation_dex * math.log(10.0)
        self.frozen_log_variance = None
        self.noise_response = model.noise_response[self.ell]
        self._noise_harmonic = model.harmonic_covariances(np.zeros(1), 1.0, self.ell)
        self._noise_harmonic_diagonal = np.einsum("mii->mi", self._noise_harmonic)
        # Var C~_l = sum_m factor_m (G^m_ll)^2 / (2l+1)^2 (the diagonal of the covariance)
        self._variance_factor = (2.0 * model.mode_weight[:, None] * model.normalisation ** 2
                                 / (2.0 * self.ell + 1.0)[None, :] ** 2)
        self._cache = {}

    def _signal(self, alpha: float, full: bool = False):
        """Mean response and ``G^m`` (diagonal, or full if ``full``) for ``K|G|^2 = 1``."""
        key = (float(alpha), full)
        if key not in self._cache:
            if len(self._cache) > 512:
                self._cache.clear()
            cl = self.theory.cl(alpha)
            mean = self.model.expected(cl)[self.ell]
            if full:
                harmonic = self.model.harmonic_covariances(cl, 0.0, self.ell)
            else:
                rows = self.model.kernel[:, self.ell, : cl.size]
                harmonic = np.einsum("mik,k,mik->mi", rows, cl[: rows.shape[2]], rows)
            self._cache[key] = (mean, harmonic)
        return self._cache[key]

    def _log_moments(self, mean, variance):
        shape = mean ** 2 / variance        # Gamma shape k_l = effective number of modes / 2
        log_mean = np.log(mean) + digamma(shape) - np.log(shape)
        log_variance = polygamma(1, shape) + self.sigma_digitisation ** 2
        return log_mean, log_variance

    def diagonal_moments(self, alpha: float, kg2: float, noise: float):
        """Fast path: ``mu_l``, ``Var C~_l``, ``<ln C~_l>`` and ``s_l^2`` (no correlations)."""
        signal_mean, signal_diagonal = self._signal(alpha)
        mean = kg2 * signal_mean + noise * self.noise_response
        harmonic = kg2 * signal_diagonal + noise * self._noise_harmonic_diagonal
        variance = np.sum(self._variance_factor * harmonic ** 2, axis=0)
        log_mean, log_variance = self._log_moments(mean, variance)
        return mean, variance, log_mean, log_variance

    def moments(self, alpha: float, kg2: float, noise: float):
        """Mean ``mu_l``, full covariance of ``C~_l``, ``<ln C~_l>`` and the full covariance of
        ``ln C~_l`` (correlations of ``C~_l`` with the Gamma-matched variances on the diagonal,
        digitisation added there)."""
        signal_mean, signal_harmonic = self._signal(alpha, full=True)
        mean = kg2 * signal_mean + noise * self.noise_response
        harmonic = kg2 * signal_harmonic + noise * self._noise_harmonic
        cov = self.model.covariance_from_harmonic(harmonic, self.ell)
        variance = np.diag(cov)
        log_mean, log_variance = self._log_moments(mean, variance)
        correlation = cov / np.sqrt(np.outer(variance, variance))
        log_sd_cosmic = np.sqrt(log_variance - self.sigma_digitisation ** 2)
        log_cov = correlation * np.outer(log_sd_cosmic, log_sd_cosmic)
        log_cov[np.diag_indices_from(log_cov)] += self.sigma_digitisation ** 2
        return mean, cov, log_mean, log_cov

    def chi2(self, alpha: float, kg2: float, noise: float) -> float:
        """``sum_l (ln C~_obs - <ln C~>)^2 / s_l^2`` with the model's own ``s_l``."""
        _, _, log_mean, log_variance = self.diagonal_moments(alpha, kg2, noise)
        value = float(np.sum((self.log_obs - log_mean) ** 2 / log_variance))
        return value if math.isfinite(value) else math.inf

    def objective(self, alpha: float, kg2: float, noise: float) -> float:
        """Weighted sum of squares minimised by the fit (weights frozen if set)."""
        _, _, log_mean, log_variance = self.diagonal_moments(alpha, kg2, noise)
        if self.frozen_log_variance is not None:
            log_variance = self.frozen_log_variance
        value = float(np.sum((self.log_obs - log_mean) ** 2 / log_variance))
        return value if math.isfinite(value) else math.inf   # under/overflow of tiny amplitudes

    def log_mean_jacobian(self, log_params) -> np.ndarray:
        """``d<ln C~_l>/d(ln alpha, ln kg2, ln N)`` by central differences (one-sided at the
        edges of the tabulated ``alpha`` range)."""
        log_params = np.asarray(log_params, dtype=float)
        lo, hi = (math.log(a) for a in self.theory.alpha_range)
        step = 1e-4
        columns = []
        for i in range(3):
            up, down = log_params.copy(), log_params.copy()
            up[i] += step
            down[i] -= step
            if i == 0:
                up[0], down[0] = min(up[0], hi), max(down[0], lo)
            width = up[i] - down[i]
            columns.append((self.diagonal_moments(*np.exp(up))[2]
                            - self.diagonal_moments(*np.exp(down))[2]) / width)
        return np.column_stack(columns)

    def sandwich_covariance(self, log_params, free=(0, 1, 2)) -> np.ndarray:
        """Covariance of the estimate of the ``free`` log-parameters.

        Notes
        -----
        Sandwich form ``H^-1 V H^-1`` with ``H = J^T W J``, ``V = J^T W Sigma W J``,
        ``W = diag(1/s_l^2)``, ``J`` the Jacobian of ``<ln C~_l>`` and ``Sigma`` the full
        covariance of ``ln C~_l`` (mode coupling included): the estimating equations weight
        the multipoles as if independent, the sandwich restores their correlations
        (:math:numref:`eq-obs-sandwich`).
        """
        free = list(free)
        jacobian = self.log_mean_jacobian(log_params)[:, free]
        _, _, _, log_cov = self.moments(*np.exp(log_params))
        weighted = jacobian / np.diag(log_cov)[:, None]
        bread = np.linalg.inv(jacobian.T @ weighted)
        meat = weighted.T @ log_cov @ weighted
        return bread @ meat @ bread

    def _start_amplitudes(self, alpha: float) -> tuple:
        # relative least squares with non-negative amplitudes: a robust starting point
        signal_mean, _ = self._signal(alpha)
        design = np.column_stack([signal_mean, self.noise_response]) / self.cl_obs[:, None]
        (kg2, noise), _ = optimize.nnls(design, np.ones_like(self.cl_obs))
        kg2 = kg2 if kg2 > 0 else 1e-3 * np.min(self.cl_obs) / np.max(signal_mean)
        noise = noise if noise > 0 else 1e-3 * np.min(self.cl_obs)
        return (float(np.clip(np.log(kg2), *LOG_KG2_BOUNDS)),
                float(np.clip(np.log(noise), *LOG_NOISE_BOUNDS)))

    def profile(self, alpha: float, start=None) -> tuple:
        """Minimise :meth:`objective` over ``(K|G|^2, N)`` at fixed ``alpha``:
        ``(objective, kg2, noise)``."""
        start = self._start_amplitudes(alpha) if start is None else start

        def objective(u):
            return self.objective(alpha, math.exp(u[0]), math.exp(u[1]))

        # Nelder-Mead: robust where ln N runs into its lower bound (noise negligible), and
        # cheaper there than quasi-Newton with finite-difference gradients
        result = optimize.minimize(objective, start, method="Nelder-Mead",
                                   bounds=[LOG_KG2_BOUNDS, LOG_NOISE_BOUNDS],
                                   options={"xatol": 1e-5, "fatol": 1e-8, "maxiter": 2000})
        return float(result.fun), math.exp(result.x[0]), math.exp(result.x[1])


def reweighted_fit(likelihood: PseudoClLikelihood, minimise, full_point) -> tuple:
    """Iteratively re-weighted least squares: the fixed point of the estimating equations.

    Minimise ``sum_l (ln C~_obs - <ln C~>)^2 / s_l^2`` with the weights ``s_l^2`` of the model at
    the trial parameters, then freeze the weights at the solution and minimise again, until the
    parameters stop moving (the fixed point solves ``sum_l J_l r_l / s_l^2 = 0``).

    Parameters
    ----------
    likelihood : PseudoClLikelihood
        Its ``frozen_log_variance`` is set during the iteration and reset afterwards.
    minimise : callable
        ``minimise() -> (point, success)``: the minimum of ``likelihood.objective`` over the
        free parameters (natural logs) with the weights as they are.
    full_point : callable
        ``full_point(point) -> (ln alpha, ln K|G|^2, ln N)``, the arguments of the moments.

    Returns
    -------
    (point, converged, reweightings, notes)
    """
    notes = []
    likelihood.frozen_log_variance = None
    point, success = minimise()
    reweightings = 0
    converged = False
    try:
        damped = False
        previous_step = math.inf
        for reweightings in range(1, MAX_REWEIGHTINGS + 1):
            weights_here = likelihood.diagonal_moments(*np.exp(full_point(point)))[3]
            # once a step fails to shrink (where the objective has two minima the plain iteration
            # can jump between them forever), average with the previous weights: the fixed point
            # (weights = model variances at the solution) is the same
            previous = likelihood.frozen_log_variance
            likelihood.frozen_log_variance = (0.5 * (previous + weights_here) if damped
                                              else weights_here)
            new_point, success = minimise()
            step = np.max(np.abs(new_point - point))
            point = new_point
            if step < REWEIGHT_TOLERANCE:
                converged = success
                break
            damped = damped or step >= previous_step
            previous_step = step
        else:
            notes.append(f"re-weighting did not settle in {MAX_REWEIGHTINGS} steps "
                         f"(last step {step:.1e} in ln parameters)")
    finally:
        likelihood.frozen_log_variance = None
    return point, converged, reweightings, notes


def json_number(x) -> float | None:
    """``x`` as a JSON number; ``None`` (null) for a missing or non-finite value."""
    return None if x is None or not math.isfinite(x) else float(x)


def fit_statistics(result) -> dict:
    """The keys every fit to a data set prints about its noise and its statistics.

    ``result`` has ``noise``, ``noise_err``, ``chi2``, ``ndof``, ``p_value``, ``converged``,
    ``at_bound`` and ``reweightings`` (:class:`qltlib.observations.fit.FitResult`,
    :class:`qltlib.observations.shape_fit.ShapeFitResult`).
    """
    return {
        "noise": {"value": json_number(result.noise), "err": json_number(result.noise_err)},
        "chi2": json_number(result.chi2),
        "ndof": int(result.ndof),
        "p_value": json_number(result.p_value),
        "converged": bool(result.converged),
        "at_bound": list(result.at_bound),
        "reweightings": int(result.reweightings),
    }
