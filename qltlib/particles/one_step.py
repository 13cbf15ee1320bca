"""The exact one-step recursion of the back-tracked anisotropy (issue 21).

Recursion (derivation: chapter *A parameter-free predictor*, ``chapters/09_one_step.md``)
------------------------------------------------------------------------------------------
A particle that arrives at the observer with momentum direction ``p`` is back-tracked for
``Delta T``: it was at ``Delta r_1(p)`` with momentum ``p'(p)`` at ``t - Delta T``
(:func:`qltlib.transfer.track_grid`). The displacement over the whole time ``t`` splits exactly,

    Delta r(p, t) = Delta r_1(p) + Delta r'(p', t - Delta T),

where ``Delta r'`` is the displacement of a particle that arrives at ``Delta r_1`` with momentum
``p'`` at ``t - Delta T``, back-tracked for ``t - Delta T``. The map ``dI = G . Delta r`` then
obeys, averaged over the turbulence and over the direction of ``G`` (``|G| = 1/r_g``; the mean
over ``G`` along ``x, y, z`` equals the isotropic mean for these quadratic quantities),

    C_l(t) = sum_{l0} M_{l l0}(Delta T) C_{l0}(t - Delta T) + S_l(Delta T) + m(t - Delta T) X_l(Delta T),   (R1)
    m(t)   = m_1 + P_1 m(t - Delta T),                                                                    (R2)

with ``M`` the pair transition matrix of :mod:`qltlib.transfer`, ``S_l`` the angular power of the
map ``G . Delta r_1``, ``X_l`` twice the cross power of the maps ``G . Delta r_1`` and ``G . p'``,
``m_1 = <p . Delta r_1>`` and ``P_1 = <p . p'>``. ``m(t) = <p . Delta r(p, t)>`` is the mean
displacement along the arrival direction; with ``Delta r = r(t - T) - r_sun`` it is negative, and
``m(t) = -(1/2) d<|Delta r|^2>/dt``, so the diffusion coefficient is ``K = -m_inf / 3`` (R4). The
steady state on ``l = 1..L`` is

    m_inf = m_1 / (1 - P_1),   C_inf = (1 - M)^{-1} (S + m_inf X).                                  (R3)

Closure (the only approximation): the field met on the remaining path is independent of the
first step, and the pair's remaining correlation is that of two particles starting from one
point (the separation ``|Delta r_1(p) - Delta r_1(q)|`` is dropped); ``M_{l0}`` vanishes for
``l >= 1`` (the monopole feeds nothing). The recursion is exact without turbulence (ballistic
motion) and for a uniform field of fixed strength whose direction is drawn anew for every step.

Quenched closure (:func:`quenched_steady_state`): the opposite end of memory, in which the rest
of the path meets the *same* realisation and its mean displacement given its start is the
realisation's own linear response ``mu(t - Delta T) p'`` (``mu`` a 3 x 3 tensor). Then
``mu(t) = mu_1 + mu(t - Delta T) P`` with the dipole regressions ``mu_1`` and ``P`` of one step
(traces ``3 m_1`` and ``3 P_1``), the dipole part of the map carries ``(4 pi/27) |mu|_F^2``, and
the rest obeys (R1) with the power of the residual map ``(Delta r_1 - mu_1 p) + mu (p' - P p)``
as source. Exact where the field stays the same (a uniform field: the Markov closure fails
there), as the Markov closure is exact where it is renewed at every step.

Aliasing floor: the maps ``p -> Delta r_1(p)`` and ``p -> Y_l0(p')`` hold structure finer than
the node spacing of the quadrature grid, which the quadrature folds into every ``l`` as a flat
floor proportional to ``sum_i w_i^2`` (the shot noise of the grid; measured: the floor of
``S_l``, ``X_l`` and of every column of ``M`` at high ``l`` falls as ``1/n_theta^2`` from 34 to
68 to 100 rings). The long ensembles subtract the same kind of floor from their maps
(:func:`qltlib.particles.map_statistics.white_noise_level`). :meth:`OneStepMeasurement.without_floor`
subtracts it here, per realisation, estimated as the mean of the rows
``l >= FLOOR_ROWS_FRACTION n_theta`` (above ``L``, where the grid still resolves ``l``).

Units: ``c = 1``, lengths ``r_g``, times ``1/Omega``; ``C_l``, ``S_l``, ``X_l`` in ``(r_g |G|)^2``
(numbers for ``|G| = 1/r_g``), ``m`` in ``r_g``, ``K`` in ``r_g c``.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace

import numpy as np

from .transfer import (
    TransferSettings,
    harmonic_cross_power,
    harmonic_power,
    track_grid,
    transfer_matrix_from_directions,
)

#: Names of the per-realisation arrays of :class:`OneStepMeasurement` (the content of its files).
ARRAYS = ("matrix", "source", "cross", "m1", "p1", "msd1", "seconds")
#: The direction-resolved terms of the quenched closure (absent from files written before it).
TENSOR_ARRAYS = ("mean_tensor", "direction_tensor", "residual_gram")
#: Prefix of the half-step terms of :func:`measure_step_realisation` (the step check).
HALF_PREFIX = "half_"
#: The aliasing floor is the mean of the rows ``l >= ceil(FLOOR_ROWS_FRACTION * n_theta)``
#: (the top quarter of what the grid resolves, where the signal has fallen below the floor).
FLOOR_ROWS_FRACTION = 0.75


def floor_rows(n_rows: int, lmax: int) -> slice:
    """Rows ``l >= ceil(FLOOR_ROWS_FRACTION n_rows)`` of a grid that resolves ``l < n_rows``.

    Raises
    ------
    ValueError
        When no row lies there above ``L = lmax`` (the grid is too coarse for ``L``).
    """
    first = math.ceil(FLOOR_ROWS_FRACTION * n_rows)
    if first <= lmax or first >= n_rows:
        need = next(n for n in range(lmax + 2, 8 * (lmax + 2))
                    if lmax < math.ceil(FLOOR_ROWS_FRACTION * n) < n)
        raise ValueError(f"a grid of {n_rows} rings resolves l <= {n_rows - 1}, too few above "
                         f"L = {lmax} to estimate its aliasing floor: at least {need} rings")
    return slice(first, n_rows)


def step_terms(grid, delta_r, final_directions, lmax: int) -> dict:
    """The one-step terms of one map ``p -> (Delta r_1, p')`` given at the grid directions.

    Parameters
    ----------
    grid : qltlib.transfer.SphereGrid
        ``delta_r[i]``, ``final_directions[i]`` belong to ``grid.directions[i]``.
    delta_r : array_like, shape (n_theta * n_phi, 3)
        Displacement ``Delta r_1 = r(t - Delta T) - r_sun`` (units ``r_g``).
    final_directions : array_like, shape (n_theta * n_phi, 3)
        Unit momentum directions ``p'`` at ``t - Delta T``.
    lmax : int
        Largest ``l0`` of the transition matrix ``L``.

    Returns
    -------
    dict
        ``matrix`` ``M_{l l0}`` (rows ``l = 0..n_theta-1``, columns ``l0 = 0..L``); ``source``
        ``S_l`` and ``cross`` ``X_l`` (``l = 0..n_theta-1``); ``m1 = <p . Delta r_1>``,
        ``p1 = <p . p'>`` and ``msd1 = <|Delta r_1|^2>`` (solid-angle means over ``p``); for the
        quenched closure (:func:`quenched_steady_state`) the dipole regressions
        ``mean_tensor`` ``mu_1`` and ``direction_tensor`` ``P`` (3 x 3: ``Delta r_1 ~ mu_1 p``,
        ``p' ~ P p``; their traces are ``3 m1`` and ``3 p1``) and ``residual_gram``
        ``(n_theta, 6, 6)``, the cross power per ``l`` of the six residual maps
        ``Delta r_1 - mu_1 p`` and ``p' - P p`` (components ``x, y, z`` each).

    Notes
    -----
    (R1)-(R2) of the module docstring. With ``a_i = Delta r_{1,i}`` and ``c_i = p'_i`` the maps of
    ``G`` along axis ``i`` (``|G| = 1``),

        S_l = (1/3) sum_i P_l[a_i] / (2l+1),
        X_l = (2/3) sum_i (P_l[a_i + c_i] - P_l[a_i - c_i]) / (4 (2l+1)),

    ``P_l[f] = sum_m |f_{lm}|^2`` (:func:`qltlib.transfer.harmonic_power`): the polarisation
    identity gives the cross power ``sum_m Re(a_{lm} c*_{lm})``. The regressions are
    ``mu_1,jk = 3 <Delta r_1,j p_k>`` and ``P_jk = 3 <p'_j p_k>``, the dipole projections, so
    that the residuals hold no dipole; ``residual_gram[l, f, g] = sum_m Re(f_{lm} g*_{lm}) / (2l+1)``.
    """
    d = np.asarray(delta_r, dtype=float).reshape(-1, 3)
    q = np.asarray(final_directions, dtype=float).reshape(-1, 3)
    rows = grid.lmax_exact
    maps = np.concatenate([d.T, (d + q).T, (d - q).T])            # (9, P)
    power = harmonic_power(grid, maps, rows)                      # (9, rows+1): (2l+1) C_l
    two_l1 = 2 * np.arange(rows + 1) + 1.0
    source = power[0:3].sum(axis=0) / (3 * two_l1)
    cross = 2 * (power[3:6] - power[6:9]).sum(axis=0) / (12 * two_l1)
    w = grid.weights / (4 * math.pi)
    p = grid.directions
    mean_tensor = 3 * np.einsum("n,nj,nk->jk", w, d, p)
    direction_tensor = 3 * np.einsum("n,nj,nk->jk", w, q, p)
    residuals = np.concatenate([(d - p @ mean_tensor.T).T, (q - p @ direction_tensor.T).T])
    gram = harmonic_cross_power(grid, residuals, rows) / two_l1[:, None, None]
    return {"matrix": transfer_matrix_from_directions(grid, q, lmax),
            "source": source, "cross": cross,
            "m1": float(w @ np.sum(p * d, axis=1)), "p1": float(w @ np.sum(p * q, axis=1)),
            "msd1": float(w @ np.sum(d * d, axis=1)), "mean_tensor": mean_tensor,
            "direction_tensor": direction_tensor, "residual_gram": gram}


def measure_step_realisation(settings: TransferSettings, index: int, field=None,
                             half_step: bool = False) -> dict:
    """:func:`step_terms` of realisation ``index``: the test particles of
    :func:`qltlib.transfer.measure_realisation` (same grid, field and integrator).

    ``field`` replaces the synthesised turbulence (e.g. :func:`~qltlib.turbulence.uniform_field`).
    The result also holds ``seconds``, the wall time of tracking and analysis. With
    ``half_step``, it also holds the terms of the same particles at the half step
    (:func:`qltlib.particles.transfer.half_step_time`) under the names ``half_<term>``, and
    ``half_time`` (``1/Omega``); the terms at ``Delta T`` are those without it, bit for bit.
    """
    start = time.perf_counter()
    grid, delta_r, final, *half = track_grid(settings, index, field, half_step=half_step)
    terms = step_terms(grid, delta_r, final, settings.lmax)
    if half_step:
        at_half = step_terms(grid, half[0]["delta_r"], half[0]["final_directions"], settings.lmax)
        terms.update({HALF_PREFIX + name: value for name, value in at_half.items()},
                     half_time=half[0]["time"])
    terms["seconds"] = time.perf_counter() - start
    return terms


# ---------------------------------------------------------------------------------------------
# the recursion and its steady state
# ---------------------------------------------------------------------------------------------

def mean_recursion(m1: float, p1: float, n_steps: int) -> np.ndarray:
    """``m(n Delta T)`` for ``n = 0..n_steps`` from (R2), ``m(0) = 0``.

    Notes
    -----
    ``m(n Delta T) = m_1 (1 - P_1^n) / (1 - P_1)``; iterated here so that ``P_1 = 1`` (ballistic
    motion: ``m = -t``) needs no special case.
    """
    out = np.zeros(int(n_steps) + 1)
    for n in range(int(n_steps)):
        out[n + 1] = m1 + p1 * out[n]
    return out


def one_step_recursion(matrix, source, cross, m1: float, p1: float, n_steps: int) -> tuple:
    """Iterate (R1)-(R2) from ``C(0) = 0``, ``m(0) = 0``.

    Parameters
    ----------
    matrix : array_like, shape (L, L)
        ``M_{l l0}`` on ``l, l0 = 1..L``.
    source, cross : array_like, shape (L,)
        ``S_l``, ``X_l`` on ``l = 1..L``.
    m1, p1 : float
    n_steps : int

    Returns
    -------
    (C, m) : ndarrays, shapes (n_steps+1, L) and (n_steps+1,)
        ``C_l(n Delta T)`` and ``m(n Delta T)``.
    """
    mat = np.asarray(matrix, dtype=float)
    s = np.asarray(source, dtype=float)
    x = np.asarray(cross, dtype=float)
    m = mean_recursion(m1, p1, n_steps)
    c = np.zeros((int(n_steps) + 1, mat.shape[0]))
    for n in range(int(n_steps)):
        c[n + 1] = mat @ c[n] + s + m[n] * x
    return c, m


def one_step_steady_state(matrix, source, cross, m1: float, p1: float) -> dict:
    """Fixed point (R3) of :func:`one_step_recursion`, and ``K`` (R4).

    Returns
    -------
    dict
        ``C`` (``l = 1..L``), ``m_inf = m_1/(1 - P_1)`` (``r_g``) and ``K = -m_inf/3`` (``r_g c``).
    """
    mat = np.asarray(matrix, dtype=float)
    m_inf = m1 / (1.0 - p1)
    rhs = np.asarray(source, dtype=float) + m_inf * np.asarray(cross, dtype=float)
    return {"C": np.linalg.solve(np.eye(mat.shape[0]) - mat, rhs), "m_inf": m_inf, "K": -m_inf / 3.0}


def quenched_steady_state(matrix, residual_gram, mean_tensor, direction_tensor) -> dict:
    """Fixed point of the quenched closure for one field realisation.

    Parameters
    ----------
    matrix : array_like, shape (L, L)
        ``M_{l l0}``, ``l, l0 = 1..L``.
    residual_gram : array_like, shape (L, 6, 6)
        ``residual_gram`` of :func:`step_terms` on ``l = 1..L``.
    mean_tensor, direction_tensor : array_like, shape (3, 3)
        ``mu_1`` and ``P`` of :func:`step_terms`.

    Returns
    -------
    dict
        ``C`` (``l = 1..L``), ``mu_inf = mu_1 (1 - P)^{-1}`` (``r_g``; the realisation's mean
        displacement ``Delta r ~ mu_inf p``) and ``K = -tr(mu_inf)/9`` (``r_g c``).

    Notes
    -----
    Chapter *A parameter-free predictor*, section *A closure that keeps the direction*: the
    rest of the path meets the *same* realisation, so its mean displacement given its start is
    the realisation's own ``mu(t - Delta T) p'``. Then ``mu(t) = mu_1 + mu(t - Delta T) P``
    (eq. ``eq-one-step-quenched-mean``), the map's dipole part ``G . mu p`` carries
    ``C_1 = (4 pi/27) |mu|_F^2`` (mean over ``G``), and the rest obeys (R1) with the source
    of the residual map ``f = (Delta r_1 - mu_1 p) + mu_inf (p' - P p)`` and no cross term
    (eq. ``eq-one-step-quenched``). Exact for a uniform field that stays the same.
    """
    mu1 = np.asarray(mean_tensor, dtype=float)
    step = np.asarray(direction_tensor, dtype=float)
    mu = np.linalg.solve((np.eye(3) - step).T, mu1.T).T
    gram = np.asarray(residual_gram, dtype=float)
    source = (np.trace(gram[:, :3, :3], axis1=1, axis2=2)
              + 2 * np.einsum("ij,lij->l", mu, gram[:, :3, 3:])
              + np.einsum("ij,ik,ljk->l", mu, mu, gram[:, 3:, 3:])) / 3
    mat = np.asarray(matrix, dtype=float)
    c = np.linalg.solve(np.eye(mat.shape[0]) - mat, source)
    c[0] += 4 * math.pi / 27 * float(np.sum(mu**2))
    return {"C": c, "mu_inf": mu, "K": -float(np.trace(mu)) / 9.0}


def jackknife(values, statistic) -> tuple:
    """Leave-one-out jackknife of ``statistic`` over the first axis of every array in ``values``.

    Parameters
    ----------
    values : dict of ndarrays
        Per-realisation arrays (first axis: realisation).
    statistic : callable
        ``statistic(means)`` with ``means`` the dict of means over realisations; returns an array.

    Returns
    -------
    (estimate, error, covariance)
        ``statistic`` of the full means, its jackknife standard error and covariance
        ``(n-1)/n sum_i (theta_i - theta_bar)(theta_i - theta_bar)^T``.
    """
    n = len(next(iter(values.values())))
    full = np.atleast_1d(np.asarray(statistic({k: v.mean(axis=0) for k, v in values.items()}), dtype=float))
    if n < 2:
        nan = np.full(full.shape, np.nan)
        return full, nan, np.full(full.shape * 2, np.nan)
    sums = {k: v.sum(axis=0) for k, v in values.items()}
    loo = np.array([np.atleast_1d(np.asarray(statistic({k: (sums[k] - v[i]) / (n - 1)
                                                        for k, v in values.items()}), dtype=float))
                    for i in range(n)])
    dev = loo - loo.mean(axis=0)
    cov = (n - 1) / n * dev.T @ dev
    return full, np.sqrt(np.diag(cov)), cov


# ---------------------------------------------------------------------------------------------
# ensembles
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OneStepMeasurement:
    """Per-realisation one-step terms at one ``Delta T``.

    Attributes
    ----------
    settings : qltlib.transfer.TransferSettings
    matrix : ndarray, shape (R, n_theta, L+1)
    source, cross : ndarray, shape (R, n_theta)
    m1, p1, msd1, seconds : ndarray, shape (R,)
    indices : ndarray of int, shape (R,)
        Realisation numbers (seeds as in :mod:`qltlib.simulate`).
    mean_tensor, direction_tensor : ndarray, shape (R, 3, 3), or None
    residual_gram : ndarray, shape (R, n_theta, 6, 6), or None
        The terms of the quenched closure (:data:`TENSOR_ARRAYS`; ``None`` in files written
        before it).
    """

    settings: TransferSettings
    matrix: np.ndarray
    source: np.ndarray
    cross: np.ndarray
    m1: np.ndarray
    p1: np.ndarray
    msd1: np.ndarray
    seconds: np.ndarray
    indices: np.ndarray
    floor_subtracted: bool = False
    mean_tensor: np.ndarray | None = None
    direction_tensor: np.ndarray | None = None
    residual_gram: np.ndarray | None = None

    @property
    def realisations(self) -> int:
        return int(self.m1.shape[0])

    def subset(self, rows) -> "OneStepMeasurement":
        """The realisations at positions ``rows`` (their numbers stay in ``indices``)."""
        rows = np.asarray(rows)
        return replace(self, indices=self.indices[rows],
                       **{name: getattr(self, name)[rows] for name in self._array_names()})

    def _array_names(self) -> tuple:
        """:data:`ARRAYS` and, where measured, :data:`TENSOR_ARRAYS`."""
        return ARRAYS + (TENSOR_ARRAYS if self.has_tensors else ())

    @property
    def has_tensors(self) -> bool:
        """Whether the terms of the quenched closure were measured."""
        return self.residual_gram is not None

    def floor_rows(self) -> slice:
        """The rows ``l`` (of ``S``, ``X`` and ``M``) whose mean is the aliasing floor."""
        return floor_rows(self.source.shape[1], self.settings.lmax)

    def aliasing_floor(self) -> dict:
        """Per-realisation floors: ``source`` and ``cross`` ``(R,)``, ``matrix`` ``(R, L+1)`` (one per
        column ``l0``) and, where measured, ``residual_gram`` ``(R, 6, 6)``, each the mean over
        :meth:`floor_rows`; units of the arrays themselves."""
        rows = self.floor_rows()
        names = ("source", "cross", "matrix") + (("residual_gram",) if self.has_tensors else ())
        return {name: getattr(self, name)[:, rows].mean(axis=1) for name in names}

    def without_floor(self) -> "OneStepMeasurement":
        """The measurement with the aliasing floor subtracted from every row of ``S``, ``X``, ``M``.

        Notes
        -----
        Chapter *A parameter-free predictor*, section *The aliasing floor*: the floor is the
        grid's shot noise, not a property of the step; the long ensembles subtract theirs.
        """
        if self.floor_subtracted:
            return self
        floor = self.aliasing_floor()
        return replace(self, floor_subtracted=True,
                       **{name: getattr(self, name) - value[:, None] for name, value in floor.items()})

    def per_realisation(self, lmax: int | None = None) -> dict:
        """The arrays that enter the recursion, on ``l, l0 = 1..lmax`` (first axis: realisation)."""
        lmax = self._lmax(lmax)
        sl = slice(1, lmax + 1)
        return {"matrix": self.matrix[:, sl, sl], "source": self.source[:, sl], "cross": self.cross[:, sl],
                "m1": self.m1, "p1": self.p1}

    def _lmax(self, lmax):
        lmax = self.settings.lmax if lmax is None else int(lmax)
        if not 1 <= lmax <= self.settings.lmax:
            raise ValueError(f"lmax must lie in 1..{self.settings.lmax}, got {lmax}")
        return lmax

    def means(self, lmax: int | None = None) -> dict:
        """Ensemble means of ``M`` (``l, l0 = 1..lmax``), ``S``, ``X`` (``l = 1..lmax``), ``m1``, ``p1``."""
        return {k: v.mean(axis=0) for k, v in self.per_realisation(lmax).items()}

    def steady_state(self, lmax: int | None = None, n_steps: int | None = None) -> dict:
        """(R3)-(R4) from the ensemble means, with jackknife errors over realisations.

        Parameters
        ----------
        lmax : int, optional
            Truncation ``L`` (default: the measured one).
        n_steps : int, optional
            Instead of the fixed point, ``C`` after ``n_steps`` steps of (R1)-(R2) from
            ``C(0) = 0``, i.e. at ``t = n_steps Delta T``: what an ensemble back-tracked to that
            time and not yet steady is compared with. ``K`` stays the fixed point's.

        Returns
        -------
        dict
            ``ell`` (``1..lmax``), ``C``, ``C_err``, ``C_cov`` (jackknife covariance), ``K``,
            ``K_err``, ``m_inf``, ``m_inf_err``.
        """
        lmax = self._lmax(lmax)
        if n_steps is not None and not (float(n_steps).is_integer() and n_steps >= 1):
            raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")

        def stat(m):
            out = one_step_steady_state(m["matrix"], m["source"], m["cross"], m["m1"], m["p1"])
            c = out["C"] if n_steps is None else one_step_recursion(
                m["matrix"], m["source"], m["cross"], m["m1"], m["p1"], int(n_steps))[0][-1]
            return np.concatenate([c, [out["K"], out["m_inf"]]])

        est, err, cov = jackknife(self.per_realisation(lmax), stat)
        return {"ell": np.arange(1, lmax + 1), "C": est[:lmax], "C_err": err[:lmax],
                "C_cov": cov[:lmax, :lmax], "K": float(est[lmax]), "K_err": float(err[lmax]),
                "m_inf": float(est[lmax + 1]), "m_inf_err": float(err[lmax + 1])}

    def quenched(self, lmax: int | None = None) -> dict:
        """The quenched closure: :func:`quenched_steady_state` per realisation, then the mean.

        Returns
        -------
        dict
            ``ell`` (``1..lmax``), ``C``, ``C_err``, ``C_cov`` (standard errors and covariance of
            the mean over realisations: its jackknife), ``K``, ``K_err`` (``r_g c``),
            ``P_parallel`` (the mean of :meth:`parallel_memory`), and per realisation
            ``indices``, ``C_r`` ``(R, lmax)``, ``K_r`` and ``K_markov_r`` (the Markov closure's
            ``-m_1/(3 (1 - P_1))`` of the same realisation alone).

        Raises
        ------
        ValueError
            The measurement has no direction-resolved terms (written before them).
        """
        lmax = self._lmax(lmax)
        self._require_tensors()
        sl = slice(1, lmax + 1)
        rows = [quenched_steady_state(self.matrix[r, sl, sl], self.residual_gram[r, sl],
                                      self.mean_tensor[r], self.direction_tensor[r])
                for r in range(self.realisations)]
        c = np.array([row["C"] for row in rows])
        k = np.array([row["K"] for row in rows])
        est, err, cov = jackknife({"C": c, "K": k},
                                  lambda m: np.concatenate([m["C"], [m["K"]]]))
        return {"ell": np.arange(1, lmax + 1), "C": est[:lmax], "C_err": err[:lmax],
                "C_cov": cov[:lmax, :lmax], "K": float(est[lmax]), "K_err": float(err[lmax]),
                "P_parallel": float(self.parallel_memory().mean()), "indices": self.indices,
                "C_r": c, "K_r": k, "K_markov_r": -self.m1 / (3 * (1 - self.p1))}

    def _require_tensors(self) -> None:
        if not self.has_tensors:
            raise ValueError("this measurement holds no direction-resolved terms (mean_tensor, "
                             "direction_tensor, residual_gram): measure it again")

    def parallel_memory(self) -> np.ndarray:
        """Per realisation, the largest real part of an eigenvalue of the direction tensor
        ``P``: the velocity memory of one step along the direction that keeps it longest (the
        scalar ``P_1`` is the mean of all three), dimensionless."""
        self._require_tensors()
        return np.linalg.eigvals(self.direction_tensor).real.max(axis=1)

    def shape_ratios(self, reference_ell: int = 2, lmax: int | None = None) -> dict:
        """The steady shape ``C_l / C_ref`` (R3) with jackknife errors, and ``K`` (R4).

        Returns
        -------
        dict
            ``ell`` (``1..lmax``), ``ratio``, ``ratio_err``, ``K``, ``K_err`` (``r_g c``).

        Notes
        -----
        Chapter *The steady state*, figure ``fig-steady-one-step``: the shape of the one-step
        steady state beside the analytic one, whose units differ.
        """
        lmax = self._lmax(lmax)
        if not 1 <= int(reference_ell) <= lmax:
            raise ValueError(f"reference multipole must lie in 1..{lmax}, got {reference_ell!r}")

        def stat(m):
            out = one_step_steady_state(m["matrix"], m["source"], m["cross"], m["m1"], m["p1"])
            return np.concatenate([out["C"] / out["C"][int(reference_ell) - 1], [out["K"]]])

        est, err, _ = jackknife(self.per_realisation(lmax), stat)
        return {"ell": np.arange(1, lmax + 1), "ratio": est[:lmax], "ratio_err": err[:lmax],
                "K": float(est[lmax]), "K_err": float(err[lmax])}

    def recursion(self, n_steps: int, lmax: int | None = None) -> tuple:
        """:func:`one_step_recursion` with the ensemble means: ``(times, C, m)``."""
        m = self.means(lmax)
        c, mean = one_step_recursion(m["matrix"], m["source"], m["cross"], m["m1"], m["p1"], n_steps)
        return self.settings.delta_t * np.arange(int(n_steps) + 1), c, mean

    def save(self, path) -> None:
        """Compressed ``.npz``: settings (JSON) and the per-realisation arrays as float32 (as
        measured: a measurement whose floor is subtracted is refused)."""
        if self.floor_subtracted:
            raise ValueError("save the measurement as measured, not after without_floor()")
        arrays = {name: np.asarray(getattr(self, name), dtype=np.float32)
                  for name in self._array_names()}
        np.savez_compressed(path, settings=json.dumps(self.settings.as_dict()),
                            indices=np.asarray(self.indices, dtype=np.int32), **arrays)


def load_one_step(path) -> OneStepMeasurement:
    """Read a file written by :meth:`OneStepMeasurement.save` (arrays as float64)."""
    with np.load(path) as data:
        settings = TransferSettings(**json.loads(str(data["settings"])))
        return OneStepMeasurement(settings=settings, indices=data["indices"].astype(int),
                                  **{name: data[name].astype(float)
                                     for name in ARRAYS + TENSOR_ARRAYS if name in data.files})


def from_realisations(settings: TransferSettings, results, indices,
                      half_step: bool = False) -> OneStepMeasurement:
    """Stack :func:`measure_step_realisation` results of realisations ``indices``.

    With ``half_step``, the measurement of their half-step terms instead: the same particles
    at ``half_time`` (its settings' ``alpha = k1 half_time``; ``seconds`` are those of the whole
    measurement, which tracked both at once).
    """
    results = list(results)
    if half_step:
        times = {float(r["half_time"]) for r in results}
        if len(times) != 1:
            raise ValueError(f"the realisations reached different half steps: {sorted(times)}")
        settings = replace(settings, alpha=times.pop() * settings.k1)
        results = [{"seconds": r["seconds"],
                    **{name: r[HALF_PREFIX + name] for name in ARRAYS + TENSOR_ARRAYS
                       if HALF_PREFIX + name in r}} for r in results]
    names = ARRAYS + tuple(name for name in TENSOR_ARRAYS if all(name in r for r in results))
    return OneStepMeasurement(settings=settings, indices=np.asarray(list(indices), dtype=int),
                              **{name: np.array([r[name] for r in results], dtype=float) for name in names})


def measure_one_step(settings: TransferSettings, n_realisations: int, first: int = 0) -> OneStepMeasurement:
    """Measure the one-step terms on realisations ``first .. first + n_realisations - 1``."""
    if isinstance(n_realisations, bool) or int(n_realisations) != n_realisations or n_realisations < 1:
        raise ValueError(f"number of realisations must be a positive integer, got {n_realisations!r}")
    indices = range(int(first), int(first) + int(n_realisations))
    return from_realisations(settings, [measure_step_realisation(settings, i) for i in indices], indices)


def combine(measurements) -> OneStepMeasurement:
    """Pool measurements of the same settings (realisations must not repeat)."""
    measurements = list(measurements)
    first = measurements[0]
    if any(m.settings != first.settings for m in measurements):
        raise ValueError("cannot combine measurements with different settings")
    indices = np.concatenate([m.indices for m in measurements])
    if len(set(indices.tolist())) != len(indices):
        raise ValueError("the measurements share realisations")
    if any(m.floor_subtracted != first.floor_subtracted for m in measurements):
        raise ValueError("cannot combine measurements with and without the aliasing floor")
    return OneStepMeasurement(settings=first.settings, indices=indices,
                              floor_subtracted=first.floor_subtracted,
                              **{name: np.concatenate([getattr(m, name) for m in measurements])
                                 for name in ARRAYS})
