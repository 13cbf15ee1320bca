"""Fit of the one-step steady state, a shape with no free parameter, to an observed pseudo-C_l.

Chapter *Comparison with observations* (:ref:`ch-observations`), section *The one-step shape
against IceCube*. The one-step recursion (chapter *A parameter-free predictor*,
:mod:`qltlib.particles.one_step`) gives the steady ``C^os_l`` of the map ``dI = G . Delta r`` for
``|G| = 1/r_g``, measured by test particles on ``l = 1..L``. For a relative density gradient
``G`` the observed relative intensity has ``C_l = (r_g |G|)^2 C^os_l``, so the model of one
energy bin is

.. math:: \\mu_\\ell(A, N) = A \\sum_{\\ell'} M_{\\ell\\ell'} C^{os}_{\\ell'} + N n_\\ell ,
          \\qquad A = (r_g |G|)^2 ,

(:math:numref:`eq-obs-shape-model`) with the mask and filter response ``M``, ``n_l`` of
:class:`qltlib.observations.sky.PseudoClModel`: two parameters, no ``alpha``. The statistics
and the estimator are those of the analytic fit (:mod:`qltlib.observations.likelihood`), with one
addition: the shape is itself a measurement, and its jackknife covariance over field
realisations, propagated through ``M``, is added to the covariance of ``ln C~_l``.

Beyond ``L`` the mask still feeds power into the fitted multipoles. The shape is continued
there by the power law fitted to ``ln C^os_l`` against ``ln l`` on ``l = L/2..L`` (inside the
jackknife, so its uncertainty is carried), and ``tail_share`` reports the largest fraction of
the modelled signal at a fitted multipole that comes from ``l > L``; the default range
``l = 2..12`` keeps it at a few per cent for ``L = 16`` (the chapter prints it).

Units: ``C^os`` in ``(r_g |G|)^2``; the amplitude ``A`` in ``(r_g |G|)^2`` (dimensionless), so
``|G| r_g = sqrt(A)``; ``K`` (predicted by the same recursion) in ``r_g c``; the implied dipole
``3 K |G| / c = 3 (K / r_g c) sqrt(A)`` is dimensionless.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from ..particles.one_step import jackknife, one_step_steady_state
from .fit import _BOUND_TOLERANCE, DEFAULT_LMIN, poor_fit_note
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

#: Default highest fitted multipole: with the shape measured to L = 16, the power continued
#: beyond L makes up at most a few per cent of the model at l <= 12 (``tail_share``).
DEFAULT_SHAPE_LMAX = 12
#: Multipoles that feed the fitted ones through the mask (the shape is continued up to here).
SHAPE_LMAX_IN = 100
#: ``tail_share`` above which a fit gets a note (the fit then rests on the continuation).
TAIL_SHARE_NOTE = 0.05
#: The shape does not depend on alpha; the likelihood's alpha argument is a dummy in this range.
_NO_ALPHA = 1.0


def continued_shape(c_measured, lmax_in: int) -> np.ndarray:
    """``C_l`` on ``l = 0..lmax_in``: the measured ``l = 1..L`` and a power law beyond.

    Parameters
    ----------
    c_measured : array_like
        Steady ``C_l`` for ``l = 1..L`` (``L >= 4``), positive on ``l = L/2..L``.
    lmax_in : int
        Last multipole of the result.

    Returns
    -------
    ndarray, shape (lmax_in + 1,)
        ``C_0 = 0`` (the monopole is not observed), the measured values, and for ``l > L`` the
        power law fitted by least squares to ``ln C_l`` against ``ln l`` on ``l = L//2..L``.
    """
    c = np.asarray(c_measured, dtype=float)
    lmax = c.size
    if lmax < 4 or lmax_in < lmax:
        raise ValueError(f"need a measured shape with L >= 4 and lmax_in >= L, got L = {lmax}, "
                         f"lmax_in = {lmax_in}")
    ell = np.arange(lmax // 2, lmax + 1)
    values = c[ell - 1]
    if np.any(values <= 0) or not np.all(np.isfinite(values)):
        raise ValueError(f"the one-step shape is not positive on l = {ell[0]}..{lmax}: more "
                         f"realisations, or a step where the recursion holds")
    slope, intercept = np.polyfit(np.log(ell), np.log(values), 1)
    out = np.zeros(int(lmax_in) + 1)
    out[1:lmax + 1] = c
    beyond = np.arange(lmax + 1, int(lmax_in) + 1)
    out[lmax + 1:] = np.exp(intercept + slope * np.log(beyond))
    return out


class MeasuredShape:
    """The one-step steady state as the fixed shape of a fit, with its covariance.

    Parameters
    ----------
    measurement : qltlib.particles.one_step.OneStepMeasurement
        Per-realisation one-step terms (at least 2 realisations, ``L >= 4``); the aliasing floor
        is subtracted (:meth:`~qltlib.particles.one_step.OneStepMeasurement.without_floor`).
    lmax_in : int
        The shape is continued by :func:`continued_shape` up to this multipole.
    subtract_floor : bool
        Subtract the grid's aliasing floor first (default; ``False`` keeps the terms as measured,
        for comparison).

    Attributes
    ----------
    C : ndarray
        ``C^os_l``, ``l = 0..lmax_in``, in ``(r_g |G|)^2`` for ``|G| = 1/r_g``.
    cov : ndarray
        Jackknife covariance of ``C`` over realisations (continuation included).
    K, K_err : float
        Predicted diffusion coefficient ``-m_inf/3`` and its jackknife error, ``r_g c``.
    lmax_measured : int
        ``L``.
    alpha_range
        Present so that :class:`qltlib.observations.likelihood.PseudoClLikelihood` accepts the
        object as its theory; the shape has no ``alpha`` and :meth:`cl` ignores it.
    """

    alpha_range = (0.5 * _NO_ALPHA, 2.0 * _NO_ALPHA)

    def __init__(self, measurement, lmax_in: int = SHAPE_LMAX_IN, subtract_floor: bool = True):
        if measurement.realisations < 2:
            raise ValueError(f"the one-step measurement holds {measurement.realisations} "
                             f"realisation; its errors need at least 2")
        if subtract_floor:
            measurement = measurement.without_floor()  # the grid's shot noise is not signal
        lmax = measurement.settings.lmax

        def statistic(means):
            steady = one_step_steady_state(means["matrix"], means["source"], means["cross"],
                                           means["m1"], means["p1"])
            return np.append(continued_shape(steady["C"], lmax_in), steady["K"])

        estimate, error, cov = jackknife(measurement.per_realisation(lmax), statistic)
        self.C, self.cov = estimate[:-1], cov[:-1, :-1]
        self.K, self.K_err = float(estimate[-1]), float(error[-1])
        self.lmax_measured = int(lmax)
        self.settings = measurement.settings
        self.realisations = int(measurement.realisations)

    def cl(self, alpha=None) -> np.ndarray:
        """The shape ``C^os_l`` (``l = 0..lmax_in``); ``alpha`` is ignored."""
        return self.C


class ShapeLikelihood(PseudoClLikelihood):
    """:class:`PseudoClLikelihood` of a measured shape, its covariance added to that of ``ln C~``.

    With ``R`` the rows of the coupling matrix at the fitted multipoles, the shape contributes
    ``A^2 (R Cov R^T)_{l l'} / (mu_l mu_l')`` to the covariance of ``ln C~`` (first order in the
    shape's error; it is common to all multipoles of a bin).
    """

    def __init__(self, ell, cl_obs, model, shape: MeasuredShape, digitisation_dex: float = 0.0):
        super().__init__(ell, cl_obs, model, shape, digitisation_dex)
        rows = model.coupling_matrix[self.ell, : shape.C.size]
        self.shape_covariance = rows @ shape.cov[: rows.shape[1], : rows.shape[1]] @ rows.T
        self._shape_variance = np.diag(self.shape_covariance).copy()   # every objective call
        self.signal_response = self._signal(_NO_ALPHA)[0]               # <C~_l> for A = 1
        beyond = rows[:, shape.lmax_measured + 1:] @ shape.C[shape.lmax_measured + 1: rows.shape[1]]
        #: fraction of the unit-amplitude signal at each fitted l from l > L (the continuation)
        self.tail_fraction = beyond / self.signal_response

    def diagonal_moments(self, alpha: float, kg2: float, noise: float):
        mean, variance, log_mean, log_variance = super().diagonal_moments(alpha, kg2, noise)
        return mean, variance, log_mean, log_variance + kg2 ** 2 * self._shape_variance / mean ** 2

    def moments(self, alpha: float, kg2: float, noise: float):
        mean, cov, log_mean, log_cov = super().moments(alpha, kg2, noise)
        return mean, cov, log_mean, log_cov + kg2 ** 2 * self.shape_covariance / np.outer(mean, mean)


@dataclass
class ShapeFitResult:
    """Best fit of the one-step shape to one energy bin; errors 1 sigma (``None`` on a bound).

    ``amplitude`` is ``A = (r_g |G|)^2``; ``tail_share`` the largest fraction of the fitted
    signal at a fitted multipole that comes from the continuation beyond the measured ``L``.
    """

    amplitude: float
    amplitude_err: float | None
    noise: float
    noise_err: float | None
    chi2: float
    ndof: int
    p_value: float
    converged: bool
    at_bound: list
    reweightings: int
    tail_share: float
    K: float
    K_err: float
    ell: np.ndarray
    cl_obs: np.ndarray
    model_mean: np.ndarray
    model_log_mean: np.ndarray
    model_log_sd: np.ndarray
    settings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def gradient(self) -> tuple:
        """``(|G| r_g, error)``: ``sqrt(A)``; the error ``None`` where ``A``'s is."""
        value = math.sqrt(self.amplitude)
        err = None if self.amplitude_err is None else 0.5 * self.amplitude_err / value
        return value, err

    @property
    def dipole(self) -> tuple:
        """``(3 K |G| / c, error)``: the dipole the fitted gradient implies with the predicted ``K``."""
        g, g_err = self.gradient
        value = 3.0 * self.K * g
        if g_err is None:
            return value, None
        return value, abs(value) * math.hypot(g_err / g, self.K_err / self.K)

    def to_dict(self) -> dict:
        """JSON-friendly summary (the ``qlt fit --one-step`` output)."""
        num = json_number
        g, g_err = self.gradient
        d, d_err = self.dipole
        return {
            "method": "transfer",
            "amplitude": {"value": num(self.amplitude), "err": num(self.amplitude_err),
                          "unit": "(r_g |G|)^2"},
            "gradient": {"value": num(g), "err": num(g_err), "unit": "1/r_g"},
            "K": {"value": num(self.K), "err": num(self.K_err), "unit": "r_g c"},
            "dipole": {"value": num(d), "err": num(d_err)},
            **fit_statistics(self),
            "tail_share": num(self.tail_share),
            **self.settings,
            "notes": list(self.notes),
        }


def fit_shape(likelihood: ShapeLikelihood) -> ShapeFitResult:
    """Solve the estimating equations for ``(A, N)`` and give their errors.

    The same estimator as :func:`qltlib.observations.fit.fit_likelihood` with ``alpha`` absent:
    :func:`qltlib.observations.likelihood.reweighted_fit` over the two linear parameters, errors
    from the sandwich covariance, ``chi2`` for ``n - 2`` degrees of freedom.

    Notes
    -----
    :math:numref:`eq-obs-shape-model`, :math:numref:`eq-obs-likelihood`,
    :math:numref:`eq-obs-sandwich`.
    """
    def minimise():
        _, kg2, noise = likelihood.profile(_NO_ALPHA)
        return np.array([math.log(kg2), math.log(noise)]), True

    def full(point):
        return np.array([math.log(_NO_ALPHA), *point])

    point, converged, reweightings, notes = reweighted_fit(likelihood, minimise, full)
    lower = np.array([LOG_KG2_BOUNDS[0], LOG_NOISE_BOUNDS[0]])
    upper = np.array([LOG_KG2_BOUNDS[1], LOG_NOISE_BOUNDS[1]])
    on_bound = (point - lower < _BOUND_TOLERANCE) | (upper - point < _BOUND_TOLERANCE)
    at_bound = [name for name, flag in zip(("amplitude", "noise"), on_bound) if flag]
    if on_bound[1]:
        notes.append("noise negligible (on its lower bound)")
    free = [i + 1 for i in range(2) if not on_bound[i]]
    errors = [None, None]
    if free:
        try:
            sigma = np.sqrt(np.diag(likelihood.sandwich_covariance(full(point), free)))
            if not np.all(np.isfinite(sigma)):
                raise np.linalg.LinAlgError("non-finite sandwich covariance")
            for k, i in enumerate(free):
                errors[i - 1] = float(math.exp(point[i - 1]) * sigma[k])
        except np.linalg.LinAlgError:
            notes.append("sandwich covariance singular: errors undetermined")

    amplitude, noise = np.exp(point)
    mean, _, log_mean, log_cov = likelihood.moments(_NO_ALPHA, amplitude, noise)
    chi2, ndof = likelihood.chi2(_NO_ALPHA, amplitude, noise), int(likelihood.ell.size - 2)
    p_value = float(stats.chi2.sf(chi2, ndof)) if ndof >= 1 else math.nan
    poor = poor_fit_note(chi2, ndof, p_value, "the one-step shape does not describe these "
                         "points within the errors (cosmic variance, digitisation, the shape's "
                         "own error)")
    if poor:
        notes.append(poor)
    signal = amplitude * likelihood.signal_response
    tail_share = float(np.max(likelihood.tail_fraction * signal / mean))
    if tail_share > TAIL_SHARE_NOTE:
        notes.append(f"{tail_share:.0%} of the model at a fitted multipole comes from l > "
                     f"{likelihood.theory.lmax_measured}, where the shape is a power-law "
                     f"continuation, not a measurement: lower --lmax")
    shape = likelihood.theory
    return ShapeFitResult(
        amplitude=float(amplitude), amplitude_err=errors[0], noise=float(noise),
        noise_err=errors[1], chi2=chi2, ndof=ndof, p_value=p_value, converged=converged,
        at_bound=at_bound, reweightings=reweightings, tail_share=tail_share,
        K=shape.K, K_err=shape.K_err, ell=likelihood.ell.copy(),
        cl_obs=likelihood.cl_obs.copy(), model_mean=mean, model_log_mean=log_mean,
        model_log_sd=np.sqrt(np.diag(log_cov)), notes=notes)


def build_shape_likelihood(measurement, dataset: str = "icecube-12yr", energy_tev: float = 13.0,
                           lmin: int = DEFAULT_LMIN, lmax: int = DEFAULT_SHAPE_LMAX,
                           dec_max: float | None = None, fsky_normalise: bool = False,
                           subtract_floor: bool = True, registry=None) -> tuple:
    """:class:`ShapeLikelihood` of one energy bin for a one-step measurement, and its settings.

    Raises
    ------
    ValueError
        As :func:`qltlib.observations.likelihood.select_energy_bin`; a measurement with fewer
        than 2 realisations or a shape that is not positive where it is continued.
    """
    data, energy_bin, selected = select_energy_bin(dataset, energy_tev, lmin, lmax, registry,
                                                   parameters=2)
    dec_max = data.dec_max_deg if dec_max is None else float(dec_max)
    shape = MeasuredShape(measurement, SHAPE_LMAX_IN, subtract_floor)
    model = cached_pseudo_cl_model(data.dec_min_deg, dec_max, int(lmax), SHAPE_LMAX_IN,
                                   data.m0_filtered, bool(fsky_normalise), None)
    digitisation = digitisation_error(data)
    likelihood = ShapeLikelihood(energy_bin.ell[selected], energy_bin.cl_tilde[selected],
                                 model, shape, digitisation_dex=digitisation)
    one_step = measurement.settings
    settings = {"dataset": dataset, "energy_tev": float(energy_bin.energy_tev),
                "lmin": int(lmin), "lmax": int(lmax), "n_points": int(np.count_nonzero(selected)),
                "dec_min_deg": data.dec_min_deg, "dec_max_deg": dec_max,
                "m0_filtered": data.m0_filtered, "fsky_normalise": bool(fsky_normalise),
                "digitisation_dex": digitisation,
                "one_step": {"spectrum": one_step.spectrum, "k0": one_step.k0, "k1": one_step.k1,
                             "alpha": one_step.alpha, "lmax": one_step.lmax,
                             "n_theta": one_step.n_theta, "n_modes": one_step.n_modes,
                             "realisations": int(measurement.realisations),
                             "floor_subtracted": bool(subtract_floor)}}
    return likelihood, settings


def fit_one_step_shape(measurement, dataset: str = "icecube-12yr", energy_tev: float = 13.0,
                       **options) -> ShapeFitResult:
    """Fit ``(A, N)`` of the one-step shape to one energy bin; options as
    :func:`build_shape_likelihood`.

    Notes
    -----
    :math:numref:`eq-obs-shape-model`.
    """
    likelihood, settings = build_shape_likelihood(measurement, dataset, energy_tev, **options)
    result = fit_shape(likelihood)
    result.settings = settings
    return result
