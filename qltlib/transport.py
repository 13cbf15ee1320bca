"""Standard quasi-linear rates, the pair transition matrix and the steady-state spectrum.

Chapter *Steady state*. With ``Delta T = alpha / (c k_1)`` the transition matrix of paper eq. (3.5)
is taken at finite ``Delta T`` (the paper's free parameter ``alpha = k_1 c Delta T``):

.. math:: A_{\\ell\\ell_0} = \\frac{\\delta_{\\ell\\ell_0} - M_{\\ell\\ell_0}(\\Delta T)}{\\Delta T},
   \\qquad M = M^{(0)} + 2M^{(1a)} + M^{(1c,0)} + M^{(1c,2)},

and the steady state (3.7) solves ``A C = s`` on ``l = 1..lmax`` with the source
``s_l = (8 pi / 3) K |G|^2 delta_{l1}`` (derived in chapter *Pair propagator*; the paper prints
``8 pi / 9``, which rescales every ``C_l`` by 1/3).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg

from .angular import coupling_tables
from .kernels import kappa_matrix, lambda_kernel
from .spectrum import TurbulenceSpectrum
from .units import PAPER_KG2_IN_CK0

#: source normalisation s_1 / (K |G|^2): derived value, and the one printed in the paper
SOURCE_FACTORS = {"derived": 8 * math.pi / 3, "paper": 8 * math.pi / 9}


@dataclass(frozen=True)
class QLTRates:
    """Single-particle (standard QLT) relaxation rates.

    Attributes
    ----------
    nu_1 : float
        Dipole relaxation rate (units ``Omega``).
    K : float
        Spatial diffusion coefficient ``1 / (3 nu_1)`` (units ``r_g c``).
    angular_coefficient : float
        ``nu_l / (l (l+1))``: the angular-diffusion coefficient.
    delta_t : float or None
        Look-back step; ``None`` for the Markov limit ``Delta T -> infinity``.
    """

    nu_1: float
    K: float
    angular_coefficient: float
    delta_t: float | None

    def nu(self, ell):
        """Relaxation rate ``nu_l = angular_coefficient * l (l+1)`` of multipole ``l``."""
        ell = np.asarray(ell, dtype=float)
        return self.angular_coefficient * ell * (ell + 1)


def standard_qlt_rates(spectrum: TurbulenceSpectrum, delta_t: float | None = None) -> QLTRates:
    """Angular-diffusion rates of standard QLT for the spectrum ``g(k)``.

    Parameters
    ----------
    spectrum : TurbulenceSpectrum
    delta_t : float, optional
        Finite look-back step (units ``1/Omega``); ``None`` gives the Markov limit.

    Notes
    -----
    Chapter *Liouville*, :math:numref:`eq-nu-l` and :math:numref:`eq-nu-markov`:
    ``nu_l = (8 pi/3)(Lambda_0 - Lambda_2/2) l(l+1) / Delta T``, which for
    ``k_0 Delta T >> 1`` tends to ``pi^2 l(l+1) \\int g(k)/k dk``; ``K = 1 / (3 nu_1)``.
    """
    if delta_t is None:
        coefficient = math.pi**2 * spectrum.moment(-1.0)
    else:
        coefficient = single_particle_coefficient(spectrum, delta_t) / float(delta_t)
    nu_1 = 2.0 * coefficient
    return QLTRates(nu_1=nu_1, K=1.0 / (3.0 * nu_1), angular_coefficient=coefficient, delta_t=delta_t)


def single_particle_coefficient(spectrum: TurbulenceSpectrum, delta_t: float) -> float:
    """``(8 pi/3)(Lambda_0 - Lambda_2/2)``: minus the coefficient of ``l(l+1)`` in ``M^(1a)``."""
    return 8 * math.pi / 3 * (lambda_kernel(0, spectrum, delta_t) - 0.5 * lambda_kernel(2, spectrum, delta_t))


@dataclass(frozen=True)
class PairMatrices:
    """The diagram matrices at one ``Delta T`` on ``l, l_0 = 0..lmax``."""

    delta_t: float
    m0: np.ndarray
    m1a: np.ndarray
    m1c0: np.ndarray
    m1c2: np.ndarray

    def total(self, coupling: bool = True) -> np.ndarray:
        """``M = M^(0) + 2 M^(1a) [+ M^(1c,0) + M^(1c,2)]``."""
        m = self.m0 + 2.0 * self.m1a
        if coupling:
            m = m + self.m1c0 + self.m1c2
        return m


def _check_lmax(lmax) -> int:
    if int(lmax) != lmax or lmax < 2:
        raise ValueError(f"lmax must be an integer >= 2, got {lmax!r}")
    return int(lmax)


def _check_alpha(alpha) -> float:
    alpha = float(alpha)
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha = k1 c Delta T must be positive, got {alpha!r}")
    return alpha


def diagram_matrices(spectrum: TurbulenceSpectrum, alpha: float, lmax: int) -> PairMatrices:
    """All diagram matrices (paper eqs. 3.10-3.13) at ``Delta T = alpha / k_1``."""
    lmax = _check_lmax(lmax)
    alpha = _check_alpha(alpha)
    delta_t = alpha / spectrum.k1
    ell = np.arange(lmax + 1)
    m0 = np.eye(lmax + 1)
    m1a = -np.diag(single_particle_coefficient(spectrum, delta_t) * ell * (ell + 1.0))
    kappa = kappa_matrix(2 * lmax, spectrum, delta_t)
    m1c0, m1c2 = coupling_tables(lmax).contract(kappa)
    return PairMatrices(delta_t=delta_t, m0=m0, m1a=m1a, m1c0=m1c0, m1c2=m1c2)


def pair_transition_matrix(spectrum: TurbulenceSpectrum, alpha: float, lmax: int,
                           coupling: bool = True) -> np.ndarray:
    """Transition matrix ``A_{l l0} = (delta_{l l0} - M_{l l0}) / Delta T`` on ``l, l0 = 1..lmax``.

    Notes
    -----
    Paper eq. (3.5) at finite ``Delta T``; chapter *Steady state*, :math:numref:`eq-A`.
    The monopole is dropped: every 1a/1c column carries ``l0 (l0+1)``, so ``l = 0`` does not
    feed higher multipoles.
    """
    mats = diagram_matrices(spectrum, alpha, lmax)
    return _transition_from(mats, coupling)


def _transition_from(mats: PairMatrices, coupling: bool) -> np.ndarray:
    return ((mats.m0 - mats.total(coupling)) / mats.delta_t)[1:, 1:]


@dataclass(frozen=True)
class SteadyState:
    """Steady-state angular power spectrum (paper eq. 3.7).

    Attributes
    ----------
    ell, C_ell : ndarray
        Multipoles ``1..lmax`` and the spectrum (dimensionless, relative intensity squared).
    nu_1 : float
        Single-particle dipole relaxation rate of the same transition matrix (units ``Omega``).
    K : float
        ``1 / (3 nu_1)``, the diffusion coefficient it implies (units ``r_g c``).
    """

    ell: np.ndarray
    C_ell: np.ndarray
    nu_1: float
    K: float
    alpha: float
    delta_t: float
    settings: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"ell": self.ell.tolist(), "C_ell": self.C_ell.tolist(), "K": self.K,
                "nu_1": self.nu_1, "settings": dict(self.settings)}


def steady_state_spectrum(spectrum: TurbulenceSpectrum, alpha: float, lmax: int,
                          kg2: float = PAPER_KG2_IN_CK0, coupling: bool = True,
                          source: str = "derived") -> SteadyState:
    """Solve ``A C = s`` for the steady-state ``C_l``, ``l = 1..lmax``.

    Parameters
    ----------
    spectrum : TurbulenceSpectrum
    alpha : float
        ``k_1 c Delta T`` (> 0).
    lmax : int
        Truncation (>= 2); the kernels are needed up to ``2 lmax``.
    kg2 : float
        ``K |G|^2`` in units of ``c k_0`` (the paper's Fig. 2 uses ``1e-4``).
    coupling : bool
        Include the pair diagrams 1c (``False``: diagrams 0 and 1a only).
    source : {"derived", "paper"}
        Source factor ``8 pi/3`` (derived in the book) or ``8 pi/9`` (as printed).

    Notes
    -----
    Chapter *Steady state*, :math:numref:`eq-steady-state`. With ``coupling=False``
    ``C_1 = 4 pi K^2 |G|^2`` (diffusion-theory dipole) and ``C_{l>=2} = 0``.
    """
    lmax = _check_lmax(lmax)
    alpha = _check_alpha(alpha)
    rhs = _source_vector(spectrum, lmax, kg2, source)
    mats = diagram_matrices(spectrum, alpha, lmax)
    a = _transition_from(mats, coupling)
    c_ell = np.linalg.solve(a, rhs)
    nu_1 = -mats.m1a[1, 1] / mats.delta_t  # M^(1a)_11 = -nu_1 Delta T (one particle)
    settings = dict(spectrum.describe(), alpha=alpha, lmax=lmax, kg2=kg2, coupling=coupling,
                    source=source, delta_t=mats.delta_t)
    return SteadyState(ell=np.arange(1, lmax + 1), C_ell=c_ell, nu_1=nu_1, K=1.0 / (3.0 * nu_1),
                       alpha=alpha, delta_t=mats.delta_t, settings=settings)


def _source_vector(spectrum: TurbulenceSpectrum, lmax: int, kg2: float, source: str) -> np.ndarray:
    kg2 = float(kg2)
    if not (np.isfinite(kg2) and kg2 > 0):
        raise ValueError(f"kg2 = K|G|^2/(c k0) must be positive, got {kg2!r}")
    if source not in SOURCE_FACTORS:
        raise ValueError(f"source must be one of {', '.join(SOURCE_FACTORS)}, got {source!r}")
    rhs = np.zeros(lmax)
    rhs[0] = SOURCE_FACTORS[source] * kg2 * spectrum.k0
    return rhs


def time_dependent_spectrum(spectrum: TurbulenceSpectrum, alpha: float, lmax: int, times,
                            kg2: float = PAPER_KG2_IN_CK0, coupling: bool = True,
                            source: str = "derived") -> np.ndarray:
    """``C_l(t)`` from ``dC/dt = -A C + s`` with ``C(0) = 0`` (an isotropic start).

    Returns an array of shape ``(len(times), lmax)`` for ``l = 1..lmax``:
    ``C(t) = A^{-1} (1 - exp(-A t)) s``.

    Notes
    -----
    Chapter *Steady state*, :math:numref:`eq-time-dependent`. Unlike the steady state, ``C_l(t)``
    at finite ``t`` converges in ``lmax``: power needs a finite time to reach the truncation.
    """
    lmax = _check_lmax(lmax)
    times = np.atleast_1d(np.asarray(times, dtype=float))
    if np.any(~np.isfinite(times)) or np.any(times < 0):
        raise ValueError("times must be finite and non-negative")
    a = pair_transition_matrix(spectrum, alpha, lmax, coupling=coupling)
    rhs = _source_vector(spectrum, lmax, kg2, source)
    out = np.empty((times.size, lmax))
    for i, t in enumerate(times):
        out[i] = np.linalg.solve(a, rhs - linalg.expm(-a * t) @ rhs)
    return out
