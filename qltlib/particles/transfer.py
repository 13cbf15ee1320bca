"""The pair transition matrix measured with test particles (chapter *Where quasi-linear theory holds*).

Definition (chapter *Pair propagator*, :math:numref:`eq-M-definition`)
-----------------------------------------------------------------------
Back-track a particle that arrives with momentum direction ``p`` for ``Delta T`` and call its
earlier direction ``p'(p)``. An initial state ``f_0`` that is an isotropic Gaussian random field
with power ``C_{l0}`` only at ``l0`` has ``<f_0(q1) f_0(q2)> = C_{l0} (2 l0 + 1)/(4 pi)
P_{l0}(q1.q2)``. Liouville's theorem gives ``f = f_0 o p'``, and averaging its
``C_l = (1/4 pi) \\int\\int P_l(p.q) f(p) f(q)`` over ``f_0`` and the turbulence,

    M_{l l0} = (2 l0 + 1)/(4 pi)^2 \\int dp \\int dq P_l(p.q) < P_{l0}(p'(p).p'(q)) >
             = 1/(2l+1) sum_{m, m0} < |U_{l m, l0 m0}|^2 >,   U_{lm,l0m0} = \\int dp Y*_{lm}(p) Y_{l0 m0}(p'(p)),

by the addition theorem. ``f_0`` is never sampled: the expectation over it is exact. For a
rotation ``p' = R p`` the matrix ``U`` is a Wigner ``D`` matrix, unitary within each ``l``, so
``M = 1`` exactly; ``sum_l (2l+1) M_{l l0} = 2 l0 + 1`` (Parseval, ``p'.p' = 1``) is the
conservation law of chapter *Steady state*.

Quadrature
----------
The directions ``p`` are the nodes of a Gauss-Legendre grid (``n_theta`` nodes in ``cos theta``,
``2 n_theta`` equally spaced azimuths). For ``l + l0 <= 2 n_theta - 1`` the grid integrates
``Y*_{lm} Y_{l0 m0}`` exactly, so ``U`` of any rotation, and with it ``M = 1``, is reproduced to
round-off (HEALPix pixel centres are not an exact quadrature). Rows ``l`` are measured up to
``n_theta - 1``, which shows the power that leaves ``l <= L``. Structure of ``p'(p)`` below the
node spacing is aliased; its effect on ``M_{l l0}`` is bounded by the weight of the coinciding
pairs, ``(2 l0 + 1) sum_i w_i^2 / (4 pi)^2`` (:attr:`TransferMeasurement.aliasing_scale`).

Errors: one field realisation per sample, so the standard error of the mean over realisations
is exact for independent realisations. Seeds as in :mod:`qltlib.particles.settings`.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import sys
from dataclasses import dataclass

import numpy as np

from ..theory.spectrum import make_spectrum
from .tracking_defaults import DEFAULT_RESYNC_EVERY, DEFAULT_STEP_FRACTION

#: Points per chunk when evaluating harmonics at the final directions (bounds the memory).
_CHUNK = 4096


@dataclass(frozen=True)
class SphereGrid:
    """Gauss-Legendre x uniform-azimuth quadrature grid on the unit sphere.

    Attributes
    ----------
    theta : ndarray, shape (n_theta,)
        Polar angles of the rings (``cos theta`` at the Gauss-Legendre nodes).
    ring_weights : ndarray, shape (n_theta,)
        Gauss-Legendre weights in ``cos theta`` (sum 2).
    n_phi : int
        Azimuths per ring, ``phi_k = 2 pi k / n_phi``.
    directions : ndarray, shape (n_theta * n_phi, 3)
        Unit vectors, ring-major (ring ``j``, azimuth ``k`` at row ``j n_phi + k``).
    weights : ndarray, shape (n_theta * n_phi,)
        Solid-angle weights ``2 pi w_j / n_phi`` (sum ``4 pi``).
    """

    theta: np.ndarray
    ring_weights: np.ndarray
    n_phi: int
    directions: np.ndarray
    weights: np.ndarray

    @property
    def n_theta(self) -> int:
        return int(self.theta.size)

    @property
    def lmax_exact(self) -> int:
        """Largest ``l`` whose harmonic coefficients the grid measures (``n_theta - 1``)."""
        return self.n_theta - 1


def gauss_legendre_grid(n_theta: int) -> SphereGrid:
    """The quadrature grid with ``n_theta`` rings and ``2 n_theta`` azimuths.

    Notes
    -----
    Exact for ``\\int Y*_{lm} Y_{l'm'}`` when ``l + l' <= 2 n_theta - 1`` (the product is a
    polynomial of that degree in ``cos theta`` times ``exp(i (m'-m) phi)``, ``|m' - m| < n_phi``).
    """
    if isinstance(n_theta, bool) or int(n_theta) != n_theta or n_theta < 2:
        raise ValueError(f"grid rings n_theta must be an integer >= 2, got {n_theta!r}")
    n_theta = int(n_theta)
    n_phi = 2 * n_theta
    x, w = np.polynomial.legendre.leggauss(n_theta)
    theta = np.arccos(x)
    phi = 2 * math.pi * np.arange(n_phi) / n_phi
    sin_t = np.sqrt(1 - x**2)
    directions = np.stack([np.outer(sin_t, np.cos(phi)), np.outer(sin_t, np.sin(phi)),
                           np.outer(x, np.ones(n_phi))], axis=-1).reshape(-1, 3)
    weights = np.repeat(w * 2 * math.pi / n_phi, n_phi)
    return SphereGrid(theta=theta, ring_weights=w, n_phi=n_phi, directions=directions, weights=weights)


def real_harmonics(directions, lmax: int) -> np.ndarray:
    """Orthonormal real spherical harmonics at ``directions``.

    Returns
    -------
    ndarray, shape ((lmax+1)^2, P)
        Row ``l^2 + l + m`` holds ``Y_{l m}`` for ``m = -l..l``: ``sqrt2 lambda_{l|m|} sin(|m| phi)``
        for ``m < 0``, ``lambda_{l0}`` for ``m = 0``, ``sqrt2 lambda_{lm} cos(m phi)`` for ``m > 0``.
    """
    from scipy.special import sph_legendre_p_all

    d = np.asarray(directions, dtype=float).reshape(-1, 3)
    out = np.empty(((lmax + 1) ** 2, d.shape[0]))
    for start in range(0, d.shape[0], _CHUNK):
        chunk = d[start:start + _CHUNK]
        theta = np.arccos(np.clip(chunk[:, 2], -1.0, 1.0))
        phi = np.arctan2(chunk[:, 1], chunk[:, 0])
        lam = sph_legendre_p_all(lmax, lmax, theta)[0]            # (l, m index, P)
        m = np.arange(1, lmax + 1)[:, None]
        cos_m = math.sqrt(2) * np.cos(m * phi)
        sin_m = math.sqrt(2) * np.sin(m * phi)
        for ell in range(lmax + 1):
            row = ell * ell + ell
            out[row, start:start + _CHUNK] = lam[ell, 0]
            if ell:
                out[row + 1:row + ell + 1, start:start + _CHUNK] = lam[ell, 1:ell + 1] * cos_m[:ell]
                out[row - ell:row, start:start + _CHUNK] = (lam[ell, 1:ell + 1] * sin_m[:ell])[::-1]
    return out


@functools.lru_cache(maxsize=8)
def _weighted_ring_legendre(n_theta: int, lmax: int) -> np.ndarray:
    """``w_j lambda_{lm}(theta_j)`` (indexed ``[m, l, j]``) on the rings of ``gauss_legendre_grid(n_theta)``, cached.

    scipy builds the table in seconds for ``lmax ~ 100``; every realisation reuses it.
    """
    from scipy.special import sph_legendre_p_all

    grid = gauss_legendre_grid(n_theta)
    table = np.ascontiguousarray((sph_legendre_p_all(lmax, lmax, grid.theta)[0][:, :lmax + 1]
                                  * grid.ring_weights).transpose(1, 0, 2))   # (m, l, j)
    table.setflags(write=False)
    return table


def _harmonic_coefficients(grid: SphereGrid, values, lmax: int) -> np.ndarray:
    """Real and imaginary parts of ``a_{lm}``, ``m = 0..lmax``, of real functions on ``grid``:
    shape ``(m, l, 2F)``, the ``F`` real parts first (zero where ``m > l``)."""
    if lmax > grid.lmax_exact:
        raise ValueError(f"lmax = {lmax} exceeds what the grid resolves ({grid.lmax_exact})")
    values = np.asarray(values, dtype=float)
    n_f = values.shape[0]
    # azimuthal Fourier coefficients per ring: G_m(theta_j) = (2 pi / n_phi) sum_k f e^{-i m phi_k}
    g = np.fft.rfft(values.reshape(n_f, grid.n_theta, grid.n_phi), axis=2)[:, :, :lmax + 1]
    g *= 2 * math.pi / grid.n_phi
    lam = _weighted_ring_legendre(grid.n_theta, lmax)                          # (m, l, j)
    # one batched real product over m: real and imaginary parts side by side, (m, j, 2F)
    g = g.transpose(2, 1, 0)
    return np.matmul(lam, np.concatenate([g.real, g.imag], axis=2))           # (m, l, 2F)


def harmonic_power(grid: SphereGrid, values, lmax: int) -> np.ndarray:
    """``sum_m |a_{lm}|^2`` of real functions sampled on ``grid``, for ``l = 0..lmax``.

    Parameters
    ----------
    grid : SphereGrid
    values : array_like, shape (F, n_theta * n_phi)
        ``F`` real functions at the grid directions.
    lmax : int
        ``<= grid.lmax_exact``.

    Returns
    -------
    ndarray, shape (F, lmax+1)
        ``(2l+1) C_l`` of each function (``a_{lm} = \\int Y*_{lm} f`` by the grid quadrature).
    """
    a = _harmonic_coefficients(grid, values, lmax)
    n_f = a.shape[2] // 2
    power_m = a[..., :n_f] ** 2 + a[..., n_f:] ** 2                           # |a_{lm}|^2
    power_m[1:] *= 2.0                                                        # a_{l,-m} = (-1)^m conj(a_{lm})
    return power_m.sum(axis=0).T


def harmonic_cross_power(grid: SphereGrid, values, lmax: int) -> np.ndarray:
    """``sum_m Re(a_{lm} b*_{lm})`` of every pair of real functions sampled on ``grid``.

    Returns
    -------
    ndarray, shape (lmax+1, F, F)
        Symmetric in the last two axes; its diagonal is :func:`harmonic_power`.
    """
    a = _harmonic_coefficients(grid, values, lmax)
    n_f = a.shape[2] // 2
    weight = np.full(a.shape[0], 2.0)
    weight[0] = 1.0                                                           # m = 0 once, m > 0 twice
    return (np.einsum("m,mlf,mlg->lfg", weight, a[..., :n_f], a[..., :n_f])
            + np.einsum("m,mlf,mlg->lfg", weight, a[..., n_f:], a[..., n_f:]))


def transfer_matrix_from_directions(grid: SphereGrid, final_directions, lmax: int,
                                    lmax_rows: int | None = None) -> np.ndarray:
    """``M_{l l0}`` of one map ``p -> p'`` given at the grid directions.

    Parameters
    ----------
    grid : SphereGrid
        Quadrature grid; ``final_directions[i]`` is ``p'`` of ``grid.directions[i]``.
    final_directions : array_like, shape (n_theta * n_phi, 3)
    lmax : int
        Largest initial multipole ``l0``.
    lmax_rows : int, optional
        Largest final multipole ``l`` (default ``grid.lmax_exact``).

    Returns
    -------
    ndarray, shape (lmax_rows+1, lmax+1)
        ``M_{l l0} = (1/(2l+1)) sum_{m, m0} |U_{lm, l0 m0}|^2``; the identity for a rotation.
    """
    lmax = int(lmax)
    lmax_rows = grid.lmax_exact if lmax_rows is None else int(lmax_rows)
    if lmax_rows < lmax:
        raise ValueError(f"rows up to {lmax_rows} cannot hold l0 up to {lmax}")
    y_final = real_harmonics(final_directions, lmax)              # Y_{l0 m0}(p'(p_i))
    matrix = np.empty((lmax_rows + 1, lmax + 1))
    ell_rows = np.arange(lmax_rows + 1)
    for l0 in range(lmax + 1):
        block = harmonic_power(grid, y_final[l0 * l0:(l0 + 1) ** 2], lmax_rows)   # (2l0+1, rows)
        matrix[:, l0] = block.sum(axis=0) / (2 * ell_rows + 1)
    return matrix


@dataclass(frozen=True)
class TransferSettings:
    """Everything that determines one measurement of ``M^sim``.

    Parameters
    ----------
    alpha : float
        ``k1 c Delta T``; the back-tracking time is ``Delta T = alpha / k1`` (units ``1/Omega``).
    lmax : int
        Largest ``l, l0`` of the reported matrix ``L``.
    n_theta : int or None
        Rings of the quadrature grid (``2 n_theta^2`` particles); ``None``: ``2 (L + 1)``.
    n_modes, seed, spectrum, k0, k1, step_fraction, resync_every, precision
        As in :class:`qltlib.particles.settings.SimulationSettings` (defaults: the production ensemble).
    """

    alpha: float = 50.0
    lmax: int = 24
    n_theta: int | None = None
    n_modes: int = 1024
    seed: int = 2019
    spectrum: str = "white"
    k0: float = 1.0e-3
    k1: float = 1.0e2
    step_fraction: float = DEFAULT_STEP_FRACTION
    resync_every: int = DEFAULT_RESYNC_EVERY
    precision: str = "float32"

    def __post_init__(self):
        alpha = float(self.alpha)
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha = k1 c Delta T must be positive, got {self.alpha!r}")
        object.__setattr__(self, "alpha", alpha)
        if isinstance(self.lmax, bool) or int(self.lmax) != self.lmax or self.lmax < 1:
            raise ValueError(f"lmax must be a positive integer, got {self.lmax!r}")
        object.__setattr__(self, "lmax", int(self.lmax))
        n_theta = 2 * (self.lmax + 1) if self.n_theta is None else self.n_theta
        if isinstance(n_theta, bool) or int(n_theta) != n_theta or n_theta < self.lmax + 1:
            raise ValueError(f"grid rings n_theta must be an integer >= lmax + 1 = {self.lmax + 1}, "
                             f"got {self.n_theta!r}")
        object.__setattr__(self, "n_theta", int(n_theta))
        make_spectrum(self.spectrum, self.k0, self.k1)          # validates the name and k0 < k1
        # the tracking settings are those of the ensemble driver: let it check and normalise them
        checked = self.simulation_settings()
        for name in ("n_modes", "seed", "k0", "k1", "step_fraction", "resync_every"):
            object.__setattr__(self, name, getattr(checked, name))

    @property
    def delta_t(self) -> float:
        """Back-tracking time ``Delta T = alpha / k1`` (units ``1/Omega``, ``c = r_g = 1``)."""
        return self.alpha / self.k1

    @property
    def n_particles(self) -> int:
        """Particles per realisation, ``2 n_theta^2``."""
        return 2 * self.n_theta ** 2

    def simulation_settings(self):
        """The same field and integrator as a :class:`~qltlib.particles.settings.SimulationSettings`."""
        from .settings import SimulationSettings
        return SimulationSettings(nside=1, times=(self.delta_t,), n_modes=self.n_modes, seed=self.seed,
                                  spectrum=self.spectrum, k0=self.k0, k1=self.k1,
                                  step_fraction=self.step_fraction, resync_every=self.resync_every,
                                  precision=self.precision)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def track_grid(settings: TransferSettings, index: int, field=None, half_step: bool = False) -> tuple:
    """Back-track one particle per grid node of realisation ``index`` for ``Delta T``.

    The test particles shared by :func:`measure_realisation` and :mod:`qltlib.particles.one_step`.

    Returns
    -------
    (grid, delta_r, final_directions) or (grid, delta_r, final_directions, half)
        The :class:`SphereGrid`, the displacements ``Delta r = r(t - Delta T) - r_sun``
        (``(n_particles, 3)``, units ``r_g``) and the unit momentum directions ``p'`` at
        ``t - Delta T`` (``-velocities``, renormalised). With ``half_step``, also ``half``:
        ``{"time", "delta_r", "final_directions"}`` of the same particles at the half step
        :func:`half_step_time` (what the step check of ``qlt spectrum --method transfer``
        compares with); the positions at ``Delta T`` are those without it, bit for bit.

    ``field`` replaces the synthesised turbulence (any
    :class:`~qltlib.particles.turbulence.PlaneWaveTurbulence`, e.g.
    :func:`~qltlib.particles.turbulence.uniform_field` in the tests).
    """
    from .settings import realisation_seed
    from .tracking import (
        backtrack,  # numba: imported only where trajectories are integrated
    )
    from .turbulence import synthesise_turbulence

    if field is None:
        spectrum = make_spectrum(settings.spectrum, settings.k0, settings.k1)
        field = synthesise_turbulence(spectrum, settings.n_modes, rng=realisation_seed(settings.seed, index))
    grid = gauss_legendre_grid(settings.n_theta)
    times = [settings.delta_t]
    if half_step:
        times.insert(0, half_step_time(settings, field))
    track = backtrack(field, grid.directions, times, step_fraction=settings.step_fraction,
                      resync_every=settings.resync_every, precision=settings.precision)
    directions = -track.velocities                 # momentum directions at t - T
    directions /= np.linalg.norm(directions, axis=2)[:, :, None]
    out = (grid, track.positions[-1], directions[-1])
    if not half_step:
        return out
    return (*out, {"time": float(track.times[0]), "delta_r": track.positions[0],
                   "final_directions": directions[0]})


def nominal_step(settings: TransferSettings) -> float:
    """The nominal integration step of the synthesised fields, ``1/Omega``.

    ``step_fraction * min(1/k_max, r_g)`` with ``k_max <= k1`` the largest of the modes'
    wavenumbers (:func:`~qltlib.particles.turbulence.log_bin_weights`), as
    :func:`~qltlib.particles.tracking.step_size` takes it; the step actually used divides
    ``Delta T`` and is at most this.
    """
    from .turbulence import log_bin_weights

    k, _ = log_bin_weights(make_spectrum(settings.spectrum, settings.k0, settings.k1),
                           settings.n_modes)
    return settings.step_fraction * min(1.0 / float(np.max(k)), 1.0)


def half_step_time(settings: TransferSettings, field) -> float:
    """The integration step nearest below ``Delta T / 2`` on the step grid of ``Delta T``.

    :func:`~qltlib.particles.tracking.output_schedule` puts ``Delta T`` at ``n`` steps of
    ``dt``; ``floor(n/2) dt`` lies on that grid, so asking for it as well changes neither ``dt``
    nor the trajectory to ``Delta T``. It falls short of ``Delta T/2`` by half a step when ``n``
    is odd.

    Raises
    ------
    ValueError
        ``Delta T`` is a single integration step (no half step).
    """
    from .tracking import output_schedule, step_size

    steps, dt, _ = output_schedule([settings.delta_t], step_size(field, settings.step_fraction))
    if steps[-1] < 2:
        raise ValueError(f"Delta T = {settings.delta_t:g} is one integration step: no half step "
                         f"to check it against")
    return float(steps[-1] // 2 * dt)


def measure_realisation(settings: TransferSettings, index: int, field=None) -> np.ndarray:
    """``M_{l l0}`` of realisation ``index``, rows ``l = 0..n_theta-1``, columns ``l0 = 0..L``
    (``field``: as in :func:`track_grid`)."""
    grid, _, final = track_grid(settings, index, field)
    return transfer_matrix_from_directions(grid, final, settings.lmax)


@dataclass(frozen=True)
class TransferMeasurement:
    """Ensemble estimate of ``M^sim_{l l0}(Delta T)``.

    Attributes
    ----------
    settings : TransferSettings
    per_realisation : ndarray, shape (R, n_theta, L+1)
        One matrix per field realisation (rows ``l = 0..n_theta-1``).
    aliasing_scale : ndarray, shape (L+1,)
        ``(2 l0 + 1) sum_i w_i^2 / (4 pi)^2``: weight of the coinciding pairs, the scale of the
        error from structure of ``p'(p)`` below the node spacing.
    """

    settings: TransferSettings
    per_realisation: np.ndarray
    aliasing_scale: np.ndarray

    @property
    def realisations(self) -> int:
        return int(self.per_realisation.shape[0])

    @property
    def ell(self) -> np.ndarray:
        return np.arange(self.settings.lmax + 1)

    def _mean_err(self, a):
        n = a.shape[0]
        err = a.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.full(a.shape[1:], np.nan)
        return a.mean(axis=0), err

    @property
    def full_matrix(self) -> tuple:
        """Mean and standard error of ``M_{l l0}`` on all measured rows."""
        return self._mean_err(self.per_realisation)

    @property
    def matrix(self) -> np.ndarray:
        """``M^sim_{l l0}`` for ``l, l0 = 0..L``."""
        return self.full_matrix[0][:self.settings.lmax + 1]

    @property
    def matrix_err(self) -> np.ndarray:
        """Standard error of :attr:`matrix` over realisations."""
        return self.full_matrix[1][:self.settings.lmax + 1]

    def column_power(self, lmin: int, lmax: int) -> tuple:
        """``sum_{l=lmin}^{lmax} (2l+1) M_{l l0}`` per column, with its standard error."""
        ell = np.arange(lmin, lmax + 1)
        sums = np.einsum("l,rlc->rc", 2 * ell + 1.0, self.per_realisation[:, lmin:lmax + 1])
        return self._mean_err(sums)

    def conservation(self) -> dict:
        """The conservation law ``sum_l (2l+1)(M_{l l0} - delta_{l l0})`` split at ``L``.

        Returns
        -------
        dict
            ``below`` (sum over ``l <= L``, minus ``2 l0 + 1``), ``above`` (power at
            ``L < l < n_theta``), ``total`` (their sum, 0 by the conservation law up to power
            beyond the grid), each with ``*_err``.
        """
        lmax, rows = self.settings.lmax, self.per_realisation.shape[1] - 1
        l0 = self.ell
        below, below_err = self.column_power(0, lmax)
        above, above_err = self.column_power(lmax + 1, rows) if rows > lmax else (0 * below, 0 * below)
        total, total_err = self.column_power(0, rows)
        return {"below": below - (2 * l0 + 1), "below_err": below_err, "above": above, "above_err": above_err,
                "total": total - (2 * l0 + 1), "total_err": total_err}

    def as_dict(self) -> dict:
        """JSON-friendly summary (the output of ``qlt transfer``)."""
        cons = self.conservation()
        return {"alpha": self.settings.alpha, "delta_t": self.settings.delta_t, "ell": self.ell.tolist(),
                "matrix": self.matrix.tolist(), "matrix_err": self.matrix_err.tolist(),
                "realisations": self.realisations,
                "power_above_lmax": cons["above"].tolist(), "power_above_lmax_err": cons["above_err"].tolist(),
                "aliasing_scale": self.aliasing_scale.tolist(),
                "settings": dict(self.settings.as_dict(), n_particles=self.settings.n_particles,
                                 units="c = 1, lengths in r_g, times in 1/Omega, k in 1/r_g")}

    def save(self, path) -> None:
        """Write an ``.npz`` with the settings (JSON string) and the per-realisation matrices.

        The matrices are stored as float32 (relative rounding 6e-8, far below the statistical
        errors), which halves the files the book keeps.
        """
        import json
        np.savez_compressed(path, settings=json.dumps(self.settings.as_dict()),
                            per_realisation=self.per_realisation.astype(np.float32),
                            aliasing_scale=self.aliasing_scale)


def load_measurement(path) -> TransferMeasurement:
    """Read a file written by :meth:`TransferMeasurement.save`."""
    import json
    with np.load(path) as data:
        settings = TransferSettings(**json.loads(str(data["settings"])))
        return TransferMeasurement(settings=settings, per_realisation=data["per_realisation"].astype(float),
                                   aliasing_scale=data["aliasing_scale"])


def aliasing_scale(settings: TransferSettings) -> np.ndarray:
    """``(2 l0 + 1) sum_i w_i^2 / (4 pi)^2`` for ``l0 = 0..L`` (see module docstring)."""
    w = gauss_legendre_grid(settings.n_theta).weights
    return (2 * np.arange(settings.lmax + 1) + 1.0) * np.sum(w**2) / (4 * math.pi) ** 2


def measure_transfer(settings: TransferSettings, n_realisations: int, first: int = 0,
                     progress: bool = False) -> TransferMeasurement:
    """Measure ``M^sim`` on realisations ``first .. first + n_realisations - 1``.

    A plain in-process loop: one realisation back-tracks ``2 n_theta^2`` particles for a few
    hundred steps (the tracking kernel threads over particles).
    """
    if isinstance(n_realisations, bool) or int(n_realisations) != n_realisations or n_realisations < 1:
        raise ValueError(f"number of realisations must be a positive integer, got {n_realisations!r}")
    indices = range(int(first), int(first) + int(n_realisations))
    if progress:
        # imported only when asked for: tqdm.auto warns on stderr inside a notebook without widgets
        from tqdm.auto import tqdm
        indices = tqdm(indices, desc="realisations", file=sys.stderr)
    matrices = [measure_realisation(settings, i) for i in indices]
    return TransferMeasurement(settings=settings, per_realisation=np.stack(matrices),
                               aliasing_scale=aliasing_scale(settings))


def combine(measurements) -> TransferMeasurement:
    """Pool measurements of the same settings on disjoint realisations (checked by the caller)."""
    measurements = list(measurements)
    first = measurements[0]
    if any(m.settings != first.settings for m in measurements):
        raise ValueError("cannot combine measurements with different settings")
    return TransferMeasurement(settings=first.settings,
                               per_realisation=np.concatenate([m.per_realisation for m in measurements]),
                               aliasing_scale=first.aliasing_scale)


def markov_chain(matrix, delta_t: float, source, n_steps: int) -> np.ndarray:
    """Iterate ``C(t + Delta T) = M C(t) + Delta T s`` from ``C(0) = 0``.

    Parameters
    ----------
    matrix : array_like, shape (L, L)
        Transition matrix on ``l = 1..L`` (the monopole does not feed ``l >= 1``).
    delta_t : float
    source : array_like, shape (L,)
    n_steps : int

    Returns
    -------
    ndarray, shape (n_steps + 1, L)
        ``C`` after ``0..n_steps`` steps.
    """
    m = np.asarray(matrix, dtype=float)
    s = delta_t * np.asarray(source, dtype=float)
    out = np.zeros((int(n_steps) + 1, m.shape[0]))
    for n in range(int(n_steps)):
        out[n + 1] = m @ out[n] + s
    return out


def chain_steady_state(matrix, delta_t: float, source) -> np.ndarray:
    """Fixed point of :func:`markov_chain`: ``(1 - M) C = Delta T s``."""
    m = np.asarray(matrix, dtype=float)
    return np.linalg.solve(np.eye(m.shape[0]) - m, delta_t * np.asarray(source, dtype=float))
