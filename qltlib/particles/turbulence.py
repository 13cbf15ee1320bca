"""Synthetic isotropic turbulence as a finite sum of plane waves (test-particle chapter).

The gyrovector field is synthesised as

.. math:: \\omega(r) = \\sum_{n=1}^{N} a_n \\hat\\xi_n \\cos(k_n \\cdot r + \\beta_n),

with ``N`` wavenumbers ``|k_n|`` log-spaced over ``[k0, k1]`` (bin centres in ``ln k``), directions
``\\hat k_n`` uniform on the sphere, linear polarisations ``\\hat\\xi_n \\perp \\hat k_n`` at a
uniform random angle around ``\\hat k_n``, and phases ``\\beta_n`` uniform in ``[0, 2 pi)``.
Each wave is transverse (``k_n \\cdot \\hat\\xi_n = 0``), so ``\\nabla\\cdot\\omega = 0`` exactly.

Amplitudes follow the *same* :class:`~qltlib.theory.spectrum.TurbulenceSpectrum` object used by the
analytic chapters. The two-point function of the continuum,
``<omega_i(0) omega_j(r)> = \\int d^3k e^{ik.r} (delta_ij - k_i k_j / k^2) S(k)`` with
``g = k^2 S``, has trace ``<omega(0).omega(r)> = 8 pi \\int g(k) j_0(kr) dk``. The plane-wave sum
reproduces it if mode ``n`` carries the spectral weight of its logarithmic bin ``B_n``:

.. math:: \\tfrac12 a_n^2 = 8\\pi \\int_{B_n} g(k)\\, dk ,

where the factor 1/2 is the average of ``cos^2`` over the random phase (and the polarisation
average supplies ``(delta_ij - k_i k_j)/2`` per mode, the 2 transverse directions summing to the
trace). The weights are then rescaled by their sum so that ``<|omega|^2> = sum_n a_n^2 / 2 = 1``
holds exactly (to round-off) for every ``N`` — see chapter *Validation*, :math:numref:`eq-val-field`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..theory.spectrum import TurbulenceSpectrum
from ..units import MEAN_SQUARE_GYROFREQUENCY

#: Gauss-Legendre order used for the spectral weight of each logarithmic bin.
_BIN_QUADRATURE_ORDER = 16


def log_bin_weights(spectrum: TurbulenceSpectrum, n_modes: int):
    """Bin-centre wavenumbers and spectral weights ``\\int_{B_n} g dk`` of ``n_modes`` log bins.

    Parameters
    ----------
    spectrum : TurbulenceSpectrum
        Normalised spectrum ``g(k)`` on ``[k0, k1]``.
    n_modes : int
        Number of logarithmic bins (one plane wave each).

    Returns
    -------
    k : ndarray, shape (n_modes,)
        Geometric bin centres, ``k0 (k1/k0)^((n + 1/2)/N)``.
    weight : ndarray, shape (n_modes,)
        ``\\int g dk`` over each bin (Gauss-Legendre in ``ln k``); they sum to ``1/(8 pi)`` up to
        quadrature error.
    """
    if int(n_modes) != n_modes or n_modes < 1:
        raise ValueError(f"number of modes must be a positive integer, got {n_modes!r}")
    n_modes = int(n_modes)
    edges = np.linspace(math.log(spectrum.k0), math.log(spectrum.k1), n_modes + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    half_width = 0.5 * (edges[1] - edges[0])
    nodes, gl_weights = np.polynomial.legendre.leggauss(_BIN_QUADRATURE_ORDER)
    u = centres[:, None] + half_width * nodes[None, :]          # ln k at the quadrature nodes
    kq = np.exp(u)
    # dk = k du; the nodes lie strictly inside each bin, so g's edge handling never matters
    weight = half_width * np.sum(gl_weights[None, :] * spectrum.g(kq) * kq, axis=1)
    return np.exp(centres), weight


@dataclass(frozen=True)
class PlaneWaveTurbulence:
    """One realisation of the plane-wave field ``omega(r) = sum_n A_n cos(k_n.r + beta_n)``.

    Attributes
    ----------
    wavevectors : ndarray, shape (N, 3)
        ``k_n`` in units of ``1/r_g``.
    amplitude_vectors : ndarray, shape (N, 3)
        ``A_n = a_n xi_n`` (units of ``Omega``), with ``xi_n`` a unit vector orthogonal to ``k_n``.
    phases : ndarray, shape (N,)
        ``beta_n`` in ``[0, 2 pi)``.
    """

    wavevectors: np.ndarray
    amplitude_vectors: np.ndarray
    phases: np.ndarray

    @property
    def n_modes(self) -> int:
        """Number of plane waves ``N``."""
        return int(self.phases.size)

    @property
    def mean_square(self) -> float:
        """Phase-averaged ``<|omega|^2> = sum_n |A_n|^2 / 2`` (1 by construction)."""
        return 0.5 * float(np.sum(self.amplitude_vectors ** 2))

    def _phase(self, positions):
        positions = np.asarray(positions, dtype=float)
        return positions @ self.wavevectors.T + self.phases            # (..., N)

    def omega(self, positions) -> np.ndarray:
        """Gyrovector ``omega(r)`` at ``positions`` (shape ``(..., 3)``), units of ``Omega``.

        Notes
        -----
        Direct evaluation with ``numpy.cos``: the reference against which the phase-recurrence
        kernel of :mod:`qltlib.particles.tracking` is tested (chapter *Validation*,
        :math:numref:`eq-val-field`).
        """
        return np.cos(self._phase(positions)) @ self.amplitude_vectors

    def divergence(self, positions) -> np.ndarray:
        """Analytic ``div omega = -sum_n (k_n . A_n) sin(k_n.r + beta_n)`` (zero up to round-off)."""
        k_dot_a = np.sum(self.wavevectors * self.amplitude_vectors, axis=1)
        return -np.sin(self._phase(positions)) @ k_dot_a

    def curl(self, positions) -> np.ndarray:
        """Analytic ``curl omega = -sum_n (k_n x A_n) sin(k_n.r + beta_n)``."""
        k_cross_a = np.cross(self.wavevectors, self.amplitude_vectors)
        return -np.sin(self._phase(positions)) @ k_cross_a

    def correlation_trace(self, separation) -> np.ndarray:
        """Direction- and phase-averaged ``<omega(0).omega(r)> = sum_n |A_n|^2/2 j_0(k_n r)``."""
        r = np.atleast_1d(np.asarray(separation, dtype=float))
        kr = np.linalg.norm(self.wavevectors, axis=1)[None, :] * r[:, None]
        return 0.5 * np.sum(self.amplitude_vectors ** 2, axis=1) @ np.sinc(kr / np.pi).T


def synthesise_turbulence(spectrum: TurbulenceSpectrum, n_modes: int, rng=None) -> PlaneWaveTurbulence:
    """Draw one plane-wave realisation of isotropic turbulence with spectrum ``g(k)``.

    Parameters
    ----------
    spectrum : TurbulenceSpectrum
        The spectrum shared with the analytic chapters (normalised, ``\\int g dk = 1/(8 pi)``).
    n_modes : int
        Number of plane waves ``N`` (one per logarithmic bin of ``[k0, k1]``).
    rng : numpy.random.Generator, int, SeedSequence or None
        Source of randomness; anything accepted by :func:`numpy.random.default_rng`.

    Returns
    -------
    PlaneWaveTurbulence
        With ``sum_n |A_n|^2 / 2 = <omega^2> = 1`` exactly (up to round-off).

    Notes
    -----
    Chapter *Validation*, :math:numref:`eq-val-field`. The random numbers are drawn in a fixed
    order (directions, polarisation angles, phases), so a given seed always gives the same field.
    """
    rng = np.random.default_rng(rng)
    k, weight = log_bin_weights(spectrum, n_modes)
    # rescale so that sum a^2/2 = <omega^2> exactly rather than up to quadrature error
    a2 = 2.0 * MEAN_SQUARE_GYROFREQUENCY * weight / np.sum(weight)

    cos_theta = rng.uniform(-1.0, 1.0, n_modes)
    azimuth = rng.uniform(0.0, 2.0 * math.pi, n_modes)
    polarisation_angle = rng.uniform(0.0, 2.0 * math.pi, n_modes)
    phases = rng.uniform(0.0, 2.0 * math.pi, n_modes)

    sin_theta = np.sqrt(1.0 - cos_theta ** 2)
    khat = np.stack([sin_theta * np.cos(azimuth), sin_theta * np.sin(azimuth), cos_theta], axis=1)
    # orthonormal basis (e1, e2) of the plane orthogonal to khat: e1 along dkhat/dtheta, e2 along
    # dkhat/dazimuth; well defined for every direction except the poles (measure zero)
    e1 = np.stack([cos_theta * np.cos(azimuth), cos_theta * np.sin(azimuth), -sin_theta], axis=1)
    e2 = np.stack([-np.sin(azimuth), np.cos(azimuth), np.zeros(n_modes)], axis=1)
    xi = np.cos(polarisation_angle)[:, None] * e1 + np.sin(polarisation_angle)[:, None] * e2

    return PlaneWaveTurbulence(
        wavevectors=k[:, None] * khat,
        amplitude_vectors=np.sqrt(a2)[:, None] * xi,
        phases=phases,
    )


def uniform_field(omega_vector) -> PlaneWaveTurbulence:
    """A uniform gyrovector ``omega`` written as a single ``k = 0`` 'plane wave' (for tests)."""
    return PlaneWaveTurbulence(
        wavevectors=np.zeros((1, 3)),
        amplitude_vectors=np.asarray(omega_vector, dtype=float).reshape(1, 3),
        phases=np.zeros(1),
    )
