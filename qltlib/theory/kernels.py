"""Time and wavenumber kernels of the diagrams: h_l, Lambda_l and kappa_{lA lB}.

With ``c = 1`` and the spectrum ``g(k)`` of :mod:`qltlib.theory.spectrum` (paper eqs. 3.14-3.16):

.. math::
   h_l(k, \\Delta T) &= k \\int_0^{\\Delta T} d\\tau\\, j_l(k\\tau) = \\int_0^{k\\Delta T} dx\\, j_l(x),\\\\
   \\Lambda_l(\\Delta T) &= \\int_0^{\\Delta T} dT \\int_0^T d\\tau \\int dk\\, g(k)\\, j_l(k\\tau)
       = \\int dk\\, \\frac{g(k)}{k^2} F_l(k\\Delta T), \\quad F_l(x) = \\int_0^x (x-t) j_l(t)\\,dt,\\\\
   \\kappa_{l_A l_B}(\\Delta T) &= \\int_{k_0}^{k_1} dk\\, \\frac{g(k)}{k^2}\\, h_{l_A}(k,\\Delta T)\\, h_{l_B}(k,\\Delta T).

Numerical method (chapter *Kernels*, :math:numref:`eq-h-recurrence`):

* spherical Bessel functions for all ``l`` at once: upward recurrence where ``l <= x`` (stable
  there), ratios ``j_l/j_{l-1}`` from the backward continued fraction where ``l > x`` (relative
  accuracy down to underflow);
* ``h_l(x)`` from the exact three-term identity ``(l+1) h_{l+1} = l h_{l-1} - (2l+1)(j_l - \\delta_{l0})``,
  run upward from ``h_0 = Si(x)``, ``h_1 = 1 - j_0`` where ``l <= x`` and downward (a sum of
  positive terms, hence relatively accurate) where ``l > x``;
* the ``k`` integral as composite Gauss-Legendre in ``x = k \\Delta T`` on the union of a
  geometric grid (ratio <= 2, resolves the low-``k`` end) and a linear grid (width <= 1, resolves
  the oscillations of ``j_l``).

Checked against an independent ``mpmath`` evaluation in ``tests/test_kernels.py``.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special

from .spectrum import TurbulenceSpectrum

#: Gauss-Legendre points per panel of the wavenumber quadrature.
NODES_PER_PANEL = 16
_GL_X, _GL_W = np.polynomial.legendre.leggauss(NODES_PER_PANEL)


def _ratio_margin(lmax: int) -> int:
    # the continued fraction for j_l/j_{l-1} converges once l exceeds x by a few x^(1/3)
    return 40 + int(6 * max(lmax, 1) ** (1.0 / 3.0))


def spherical_jn_table(lmax: int, x) -> np.ndarray:
    """Spherical Bessel functions ``j_l(x)`` for ``l = 0..lmax`` and every ``x > 0``.

    Parameters
    ----------
    lmax : int
        Highest order.
    x : array_like
        Positive arguments.

    Returns
    -------
    ndarray, shape (lmax + 1, x.size)

    Notes
    -----
    Upward recurrence ``j_{l+1} = (2l+1)/x j_l - j_{l-1}`` for ``l + 1 <= x`` and the product of
    continued-fraction ratios for ``l > x``: relatively accurate everywhere, underflowing
    gracefully to zero for ``l >> x``.
    """
    x = np.atleast_1d(np.asarray(x, dtype=float)).ravel()
    if np.any(x <= 0):
        raise ValueError("spherical_jn_table needs positive arguments")
    lmax = int(lmax)
    table = np.empty((lmax + 1, x.size))
    sinx, cosx = np.sin(x), np.cos(x)
    table[0] = sinx / x
    if lmax == 0:
        return table
    # continued fraction for r_l = j_l / j_{l-1}, run down from well above max(lmax, x)
    lstart = lmax + _ratio_margin(lmax)
    ratio = np.zeros((lmax + 1, x.size))
    r = np.zeros_like(x)
    for l in range(lstart, 0, -1):
        r = x / ((2 * l + 1) - x * r)
        if l <= lmax:
            ratio[l] = r
    upward = x >= 1.0
    table[1] = np.where(upward, (sinx / x - cosx) / np.where(upward, x, 1.0), table[0] * ratio[1])
    for l in range(1, lmax):
        up = (l + 1) <= x
        table[l + 1] = np.where(up, (2 * l + 1) / x * table[l] - table[l - 1], table[l] * ratio[l + 1])
    return table


def h_table(lmax: int, x) -> np.ndarray:
    """``h_l(x) = \\int_0^x j_l(t) dt`` for ``l = 0..lmax`` (paper's h_l with ``x = k\\Delta T``).

    Notes
    -----
    Implements :math:numref:`eq-h-recurrence` (chapter *Kernels*). Upward where ``l <= x``,
    downward (positive terms only) where ``l > x``; for ``x -> infinity``
    ``h_l -> sqrt(pi) Gamma((l+1)/2) / (2 Gamma(l/2 + 1))``.
    """
    x = np.atleast_1d(np.asarray(x, dtype=float)).ravel()
    lmax = int(lmax)
    ltop = lmax + _ratio_margin(lmax)
    jn = spherical_jn_table(ltop + 2, x)
    h = np.empty((lmax + 1, x.size))
    # downward branch, valid for l > x: (n+1) h_n = (n+2) h_{n+2} + (2n+3) j_{n+1}
    down = np.zeros((ltop + 3, x.size))
    for n in range(ltop, -1, -1):
        down[n] = ((n + 2) * down[n + 2] + (2 * n + 3) * jn[n + 1]) / (n + 1)
    # upward branch, valid for l <= x
    up = np.empty((lmax + 1, x.size))
    up[0] = special.sici(x)[0]
    if lmax >= 1:
        up[1] = 1.0 - jn[0]
    for l in range(1, lmax):
        up[l + 1] = (l * up[l - 1] - (2 * l + 1) * jn[l]) / (l + 1)
    ells = np.arange(lmax + 1)[:, None]
    h[:] = np.where(ells <= x[None, :], up, down[: lmax + 1])
    h[0] = up[0]  # Si(x) is accurate for every x
    return h


def h_kernel(l: int, x):
    """``h_l(x)`` for a single order ``l`` (convenience wrapper of :func:`h_table`)."""
    x = np.asarray(x, dtype=float)
    return h_table(l, x.ravel())[l].reshape(x.shape)


def _double_factorial_odd(n: int) -> float:
    # (2n+1)!! as float
    return math.exp(special.gammaln(2 * n + 2) - n * math.log(2.0) - special.gammaln(n + 1))


def _f_series(l: int, x: np.ndarray, terms: int = 40) -> np.ndarray:
    # F_l(x) = sum_n (-1/2)^n x^(l+2n+2) / (n! (2l+2n+1)!! (l+2n+1)(l+2n+2))
    out = np.zeros_like(x)
    for n in range(terms):
        coef = (-0.5) ** n / (math.factorial(n) * _double_factorial_odd(l + n) * (l + 2 * n + 1) * (l + 2 * n + 2))
        out += coef * x ** (l + 2 * n + 2)
    return out


def double_time_integral(l: int, x) -> np.ndarray:
    """``F_l(x) = \\int_0^x (x - t) j_l(t) dt`` for ``l`` in {0, 2} (the Lambda_l integrand).

    Notes
    -----
    Closed forms (chapter *Kernels*, :math:numref:`eq-F-closed`):
    ``F_0 = x Si(x) - 1 + cos x`` and ``F_2 = x (Si(x) - 3 j_1(x))/2 - 2 + 3 j_0(x) - cos x``;
    a power series is used for ``x <= 2`` where the closed forms cancel.
    """
    x = np.asarray(x, dtype=float)
    if l not in (0, 2):
        raise ValueError(f"Lambda_l is needed (and implemented) for l = 0 and 2 only, got l={l}")
    small = x <= 2.0
    xs = np.where(small, x, 2.0)
    xl = np.where(small, 3.0, x)
    si = special.sici(xl)[0]
    j0 = np.sin(xl) / xl
    if l == 0:
        closed = xl * si - 1.0 + np.cos(xl)
    else:
        j1 = (np.sin(xl) / xl - np.cos(xl)) / xl
        closed = xl * (si - 3.0 * j1) / 2.0 - 2.0 + 3.0 * j0 - np.cos(xl)
    return np.where(small, _f_series(l, xs), closed)


class WavenumberQuadrature:
    """Composite Gauss-Legendre rule in ``x = k \\Delta T`` over ``[k_0 \\Delta T, k_1 \\Delta T]``.

    ``nodes`` are the ``x`` values, ``weights`` already include ``g(k) dk / k^2`` expressed in
    ``x``: for any ``F``, ``sum(weights * F(nodes)) = \\int dk g(k)/k^2 F(k \\Delta T)``.
    """

    def __init__(self, spectrum: TurbulenceSpectrum, delta_t: float):
        delta_t = float(delta_t)
        if not (np.isfinite(delta_t) and delta_t > 0):
            raise ValueError(f"Delta T must be positive, got {delta_t!r}")
        x0, x1 = spectrum.k0 * delta_t, spectrum.k1 * delta_t
        n_geo = int(math.ceil(math.log2(x1 / x0))) + 1
        n_lin = max(65, int(math.ceil(x1)) + 1)
        breaks = np.unique(np.concatenate([np.geomspace(x0, x1, n_geo), np.linspace(x0, x1, n_lin)]))
        lo, hi = breaks[:-1], breaks[1:]
        half = 0.5 * (hi - lo)
        mid = 0.5 * (hi + lo)
        x = (mid[:, None] + half[:, None] * _GL_X[None, :]).ravel()
        w = (half[:, None] * _GL_W[None, :]).ravel()
        k = x / delta_t
        # dk = dx / dT ; g/k^2 = g dT^2 / x^2  ->  weight = g(k) dT / x^2 dx
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            weights = w * spectrum.g(k) * delta_t / x**2
        if not np.all(np.isfinite(weights)):
            # x = k Delta T so small that its square underflows: far outside alpha >> 1
            raise ValueError(f"kernels not physical at Delta T = {delta_t!r} (k Delta T underflows); "
                             f"the theory needs alpha = k1 c Delta T >> 1")
        self.nodes = x
        self.weights = weights
        self.delta_t = delta_t
        self.spectrum = spectrum


def lambda_kernel(l: int, spectrum: TurbulenceSpectrum, delta_t: float) -> float:
    """``Lambda_l(\\Delta T)`` of paper eq. (3.14) for ``l`` in {0, 2}.

    Notes
    -----
    Chapter *Kernels*, :math:numref:`eq-Lambda`. Limits: ``Lambda_l -> \\Delta T^2/2 \\int g``
    (``l = 0``) for ``k_1 \\Delta T << 1`` and ``\\Delta T \\int dk g/k \\int_0^\\infty j_l`` for
    ``k_0 \\Delta T >> 1``.
    """
    quad = WavenumberQuadrature(spectrum, delta_t)
    return float(np.sum(quad.weights * double_time_integral(l, quad.nodes)))


def kappa_matrix(lmax: int, spectrum: TurbulenceSpectrum, delta_t: float) -> np.ndarray:
    """``kappa_{lA lB}(\\Delta T)`` of paper eq. (3.16) for ``0 <= lA, lB <= lmax``.

    Notes
    -----
    Chapter *Kernels*, :math:numref:`eq-kappa`. Symmetric, positive semi-definite (a Gram matrix
    of the ``h_l`` under the weight ``g/k^2``).
    """
    quad = WavenumberQuadrature(spectrum, delta_t)
    # the nodes grow like alpha = k1 Delta T (16 per unit of x): take them in blocks so that
    # alpha = 1e5 needs KAPPA_BLOCK_BYTES, not gigabytes; one block (bit-identical to the
    # unblocked sum) for every alpha <= ~2000 at lmax <= 200
    block = max(1024, KAPPA_BLOCK_BYTES // h_table_bytes_per_node(lmax))
    kappa = np.zeros((int(lmax) + 1, int(lmax) + 1))
    for start in range(0, quad.nodes.size, block):
        h = h_table(lmax, quad.nodes[start:start + block])
        kappa += (h * quad.weights[None, start:start + block]) @ h.T
    return kappa


#: Working memory of one block of wavenumber nodes in :func:`kappa_matrix` (bytes).
KAPPA_BLOCK_BYTES = 256 * 2**20


def h_table_bytes_per_node(lmax: int) -> int:
    """Peak memory of :func:`h_table` per argument ``x`` (bytes).

    Six float rows of length ``lmax + margin`` (the Bessel table, the continued-fraction ratios,
    both recurrences, the result and a temporary): an upper bound of the measured ~3.
    """
    return 8 * 6 * (int(lmax) + _ratio_margin(int(lmax)) + 3)


def quadrature_node_count(spectrum: TurbulenceSpectrum, delta_t: float) -> int:
    """Number of nodes of :class:`WavenumberQuadrature`, an upper bound (coinciding breaks of the
    two grids merge), without building it."""
    x0, x1 = spectrum.k0 * delta_t, spectrum.k1 * delta_t
    n_geo = int(math.ceil(math.log2(x1 / x0))) + 1
    n_lin = max(65, int(math.ceil(x1)) + 1)
    return NODES_PER_PANEL * (n_geo + n_lin)


def h_limit(l) -> np.ndarray:
    """``\\int_0^\\infty j_l(x) dx = \\sqrt{\\pi}\\,\\Gamma((l+1)/2) / (2\\Gamma(l/2+1))``."""
    l = np.asarray(l, dtype=float)
    return np.sqrt(np.pi) * np.exp(special.gammaln((l + 1) / 2) - special.gammaln(l / 2 + 1)) / 2
