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

from ..machine import memory_available_now
from ..units import PAPER_KG2_IN_CK0
from .angular import coupling_tables
from .kernels import (
    KAPPA_BLOCK_BYTES,
    h_table_bytes_per_node,
    kappa_matrix,
    lambda_kernel,
    quadrature_node_count,
)
from .spectrum import TurbulenceSpectrum

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


#: Smallest ``alpha = k1 c Delta T`` inside the theory. The paper's expansion needs
#: ``k1 c Delta T >> 1`` (the step must be long against the decorrelation time of the smallest
#: turbulent scale); ``>> 1`` is taken as at least one decade. The *numerical* breakdown lies far
#: below (``benchmarks/alpha_domain.py``, see :func:`theory_domain_violation`), so this bound is
#: set by the theory, not by round-off.
ALPHA_MIN_THEORY = 10.0


def theory_domain_violation(spectrum: TurbulenceSpectrum, alpha: float, lmax: int) -> str | None:
    """Why ``(spectrum, alpha, lmax)`` lies outside the steady-state theory, or ``None``.

    Parameters
    ----------
    spectrum : TurbulenceSpectrum
    alpha : float
        ``k1 c Delta T``.
    lmax : int
        Truncation of the steady-state system.

    Returns
    -------
    str or None
        A one-line reason (it states the condition ``alpha >> 1``), ``None`` inside.

    Notes
    -----
    The rule is ``alpha >= ALPHA_MIN_THEORY = 10``. Measured with ``benchmarks/alpha_domain.py``
    (alpha lowered from 1e3 in 0.25-dex steps until some ``C_l <= 0``): the steady state stays
    physical far below it. For ``k1/k0 = 1e5`` (the paper's band) and ``lmax = 100`` the first
    negative ``C_l`` appears at ``alpha = 1.8e-5`` (white), ``5.6e-4`` (Kolmogorov) and
    ``3.2e-5`` (``g ~ 1/k``); for ``lmax = 10`` at ``1.8e-7``, ``1.8e-5`` and ``5.6e-7``. The
    breakdown is round-off: ``sum_l (2l+1) C_l`` is conserved, so the columns of ``M - 1``
    cancel, and the rates left over shrink like ``(k_rms Delta T)^2``; it sets in near
    ``k_rms Delta T ~ 1e-7 (lmax = 10) ... 1e-5 (lmax = 100)``, ``k_rms`` the energy-weighted rms
    wavenumber. Extreme bands shift it up: Kolmogorov with ``k1/k0 = 1e20`` and ``lmax = 100``
    still has negative ``C_l`` at ``alpha = 1e3``. No a-priori rule catches every such case,
    so :func:`steady_state_spectrum` also checks its result (positive, finite ``C_l`` and ``K``).
    """
    del spectrum, lmax   # the theory's condition involves alpha alone; kept for the interface
    alpha = float(alpha)
    if not alpha >= ALPHA_MIN_THEORY:
        return (f"alpha = {alpha:g} is outside the theory, which is accepted only for "
                f"alpha >= {ALPHA_MIN_THEORY:g}: its expansion needs alpha = k1 c Delta T >> 1 "
                f"(a step long against the decorrelation time 1/(k1 c) of the smallest scale), "
                f"taken as one decade; the cut is the theory's, not the solver's, which stays "
                f"finite far lower (benchmarks/alpha_domain.py)")
    return None


#: Refuse a steady state estimated to need more than this many seconds (one core).
MAX_ESTIMATED_SECONDS = 600.0
#: ... or more than this fraction of the memory available now.
MAX_MEMORY_FRACTION = 0.5
#: Cost model, measured on a 2-core x86-64 build machine with :func:`qltlib.theory.angular._build_tables`
#: and :func:`qltlib.theory.kernels.kappa_matrix` (lmax 40-160, alpha 1e3-3e4): building the Wigner
#: tables peaks at 7.4 times their 40 (lmax+1)^3 bytes and takes 17 s at lmax = 160, growing
#: like lmax^4; the kernel costs 1.0e-8 s per node and Bessel order plus 7.7e-10 s per node and
#: pair of orders (the Gram product).
_TABLE_PEAK_BYTES_PER_ENTRY = 300.0
_TABLE_SECONDS_AT_161 = 17.3
_KERNEL_SECONDS_PER_NODE_ORDER = 1.0e-8
_KERNEL_SECONDS_PER_NODE_PAIR = 7.7e-10
_BASELINE_BYTES = 150 * 2**20


@dataclass(frozen=True)
class ResourceEstimate:
    """Estimated peak memory (bytes) and time (seconds) of one steady-state solve."""

    memory_bytes: float
    seconds: float

    def describe(self) -> str:
        """``"about 37 GiB of memory and 27 min"``."""
        gib = self.memory_bytes / 2**30
        memory = f"{gib:.2g} GiB" if gib >= 0.1 else f"{self.memory_bytes / 2**20:.0f} MiB"
        seconds = self.seconds
        if seconds < 1:
            duration = "under 1 s"
        elif seconds < 120:
            duration = f"{seconds:.0f} s"
        elif seconds < 7200:
            duration = f"{seconds / 60:.0f} min"
        else:
            duration = f"{seconds / 3600:.2g} h"
        return f"about {memory} of memory and {duration}"


def estimate_resources(spectrum: TurbulenceSpectrum, alpha: float, lmax: int) -> ResourceEstimate:
    """Memory and time of :func:`steady_state_spectrum` before anything is allocated.

    Notes
    -----
    Wigner tables (built once per ``lmax``, then read from the disk cache) scale like
    ``lmax^3`` in memory and ``lmax^4`` in time; the kernel ``kappa`` over ``l <= 2 lmax`` like
    the number of wavenumber nodes (``16 alpha`` for ``alpha >> 1``) times ``lmax^2``, in blocks
    of bounded memory. Constants are measured (see the module constants); expect a factor of
    two between machines. The time counts the tables as built (an upper bound when they are
    in the disk cache already); :func:`estimate_solves` knows the cache.
    """
    table_bytes, table_seconds = _table_cost(lmax)
    kernel_bytes, kernel_seconds = _kernel_cost(spectrum, alpha, lmax)
    return ResourceEstimate(memory_bytes=_BASELINE_BYTES + table_bytes + kernel_bytes,
                            seconds=table_seconds + kernel_seconds)


def _table_cost(lmax: int) -> tuple:
    """``(peak bytes, seconds)`` of building the Wigner tables of ``lmax``."""
    entries = (float(lmax) + 1.0) ** 3
    return (_TABLE_PEAK_BYTES_PER_ENTRY * entries,
            _TABLE_SECONDS_AT_161 * entries ** (4.0 / 3.0) / 161.0 ** 4)


def _kernel_cost(spectrum: TurbulenceSpectrum, alpha: float, lmax: int) -> tuple:
    """``(bytes, seconds)`` of the kernel ``kappa`` (and the solve) at one ``alpha``."""
    delta_t = float(alpha) / spectrum.k1
    nodes = float(quadrature_node_count(spectrum, delta_t))
    orders = 2.0 * float(lmax) + 1.0
    node_bytes = h_table_bytes_per_node(2 * int(lmax))
    memory = min(nodes * node_bytes, max(KAPPA_BLOCK_BYTES, 1024 * node_bytes)) + 64.0 * nodes
    seconds = nodes * (_KERNEL_SECONDS_PER_NODE_ORDER * node_bytes / 48.0
                       + _KERNEL_SECONDS_PER_NODE_PAIR * orders ** 2)
    return memory, seconds


def estimate_solves(spectrum: TurbulenceSpectrum, alphas, lmax: int) -> ResourceEstimate:
    """Memory and time of one steady state per ``alpha`` in ``alphas``, solved in turn.

    Parameters
    ----------
    spectrum : TurbulenceSpectrum
    alphas : float or sequence of float
        ``k1 c Delta T`` of each solve.
    lmax : int
        Truncation of every solve.

    Returns
    -------
    ResourceEstimate
        Peak memory (one solve at a time) and total time. Unlike :func:`estimate_resources`
        (the refusal's upper bound) the Wigner tables count once, and not at all when they are
        in the disk cache (:func:`qltlib.theory.angular.tables_cached`): the time a command
        announces before it starts.
    """
    from .angular import tables_cached

    alphas = np.atleast_1d(np.asarray(alphas, dtype=float))
    table_bytes, table_seconds = _table_cost(lmax)
    if tables_cached(int(lmax)):
        table_seconds = 0.0
    kernels = [_kernel_cost(spectrum, alpha, lmax) for alpha in alphas]
    return ResourceEstimate(
        memory_bytes=_BASELINE_BYTES + table_bytes + max(k[0] for k in kernels),
        seconds=table_seconds + sum(k[1] for k in kernels))


def check_resources(spectrum: TurbulenceSpectrum, alpha: float, lmax: int, solves: int = 1,
                    available_bytes: float | None = None,
                    max_seconds: float = MAX_ESTIMATED_SECONDS,
                    lmax_name: str = "lmax") -> ResourceEstimate:
    """Refuse (``ValueError``, one line) a computation this machine cannot do.

    ``solves`` steady states at ``(alpha, lmax)`` may use at most ``MAX_MEMORY_FRACTION`` of the
    available memory and ``max_seconds``; the message (which calls the truncation
    ``lmax_name``) says what the run would need.
    """
    estimate = estimate_resources(spectrum, alpha, lmax)
    total = ResourceEstimate(estimate.memory_bytes, estimate.seconds * int(solves))
    available = memory_available_now() if available_bytes is None else float(available_bytes)
    if total.memory_bytes > MAX_MEMORY_FRACTION * available or total.seconds > max_seconds:
        count = f" ({solves} steady states)" if solves > 1 else ""
        raise ValueError(
            f"{lmax_name} = {int(lmax)}, alpha = {float(alpha):g}{count} would need "
            f"{total.describe()}; this "
            f"machine allows {MAX_MEMORY_FRACTION * available / 2**30:.3g} GiB (half the available "
            f"memory) and {max_seconds / 60:g} min")
    return total


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
    # (1 - M) without forming 1 + (M - 1): at small alpha the entries of M - 1 fall to ~1e-11
    # and adding the identity first would round most of their digits away
    change = 2.0 * mats.m1a
    if coupling:
        change = change + mats.m1c0 + mats.m1c2
    return (-change / mats.delta_t)[1:, 1:]


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
    nu_1 = -mats.m1a[1, 1] / mats.delta_t  # M^(1a)_11 = -nu_1 Delta T (one particle)
    try:
        c_ell = np.linalg.solve(a, rhs)
    except np.linalg.LinAlgError:
        c_ell = np.full(lmax, np.nan)
    _check_physical(c_ell, nu_1, alpha, coupling)
    settings = dict(spectrum.describe(), alpha=alpha, lmax=lmax, kg2=kg2, coupling=coupling,
                    source=source, delta_t=mats.delta_t)
    return SteadyState(ell=np.arange(1, lmax + 1), C_ell=c_ell, nu_1=nu_1, K=1.0 / (3.0 * nu_1),
                       alpha=alpha, delta_t=mats.delta_t, settings=settings)


def _check_physical(c_ell: np.ndarray, nu_1: float, alpha: float, coupling: bool) -> None:
    """Raise ``ValueError`` unless ``K`` and every ``C_l`` are finite and positive.

    Without coupling only the dipole is fed, and ``C_{l >= 2} = 0`` exactly is physical.
    """
    positive = (c_ell > 0) if coupling else c_ell >= 0
    positive[0] = c_ell[0] > 0
    bad = np.flatnonzero(~(np.isfinite(c_ell) & positive)) + 1
    if bad.size == 0 and math.isfinite(nu_1) and nu_1 > 0:
        return
    if bad.size:
        where = (f"C_l <= 0 or not finite at l = {', '.join(map(str, bad[:5]))}"
                 + (", ..." if bad.size > 5 else ""))
    else:
        where = f"nu_1 = {nu_1:g}, so K = 1/(3 nu_1) is not positive"
    raise ValueError(f"steady state not physical at alpha = {alpha:g} ({where}): the theory "
                     f"needs alpha = k1 c Delta T >> 1 and rates above round-off "
                     f"(see benchmarks/alpha_domain.py)")


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
