"""Turbulence spectra g(k): the one object shared by the analytic kernels and the simulation.

Isotropic, homogeneous, Gaussian turbulence has the two-point function of the gyrovector

.. math:: \\langle \\omega_i(r)\\omega_j(r')\\rangle = \\int d^3k\\, e^{ik\\cdot(r-r')}
          (\\delta_{ij} - \\hat k_i \\hat k_j) S(k),

and the paper's kernels use the one-dimensional spectrum ``g(k) = k^2 S(k)`` on ``[k_0, k_1]``.
Carrying the angular integral through the single-particle diagram (chapter *Liouville*,
:math:numref:`eq-g-normalisation`) gives ``<omega^2> = 8 pi \\int g(k) dk``, so with
``<omega^2> = 1`` every spectrum here is normalised to ``\\int_{k_0}^{k_1} g(k) dk = 1/(8 pi)``.

The shape is pluggable: :class:`PowerLawSpectrum` covers the band-limited white-noise
(flat ``g``), Kolmogorov (``g ~ k^{-5/3}``), flat-per-log-k (``g ~ 1/k``) and flat-3D
(``g ~ k^2``) readings of the paper's "white noise"; any subclass of
:class:`TurbulenceSpectrum` that implements :meth:`TurbulenceSpectrum.shape` works with the
kernels and with the test-particle field synthesis alike.
"""
from __future__ import annotations

import math

import numpy as np

from ..units import MEAN_SQUARE_GYROFREQUENCY, PAPER_K0, PAPER_K1

#: ``\\int g dk`` that gives ``<omega^2> = 1``.
G_INTEGRAL = MEAN_SQUARE_GYROFREQUENCY / (8.0 * math.pi)


#: Wavenumbers accepted for ``k0`` and ``k1`` (units ``1/r_g``). Far outside, the kernel weights
#: ``g(k) Delta T / (k Delta T)^2`` under- or overflow double precision (``k0 = 1e299`` gave a
#: singular transition matrix); 1e-30..1e30 leaves room for any physical band and its squares.
WAVENUMBER_RANGE = (1e-30, 1e30)


def _wavenumber(name: str, value) -> float:
    """``value`` as a float, or a ValueError naming ``name`` if not finite and in range."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite positive number, got {value!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    lo, hi = WAVENUMBER_RANGE
    if not lo <= value <= hi:
        raise ValueError(f"{name} must lie in {lo:g}..{hi:g} (units 1/r_g), got {value!r}")
    return value


class TurbulenceSpectrum:
    """One-dimensional turbulence spectrum ``g(k)`` on ``[k0, k1]`` (units of ``1/r_g``).

    Subclasses implement :meth:`shape` (any positive function of ``k``, unnormalised); this base
    class supplies the normalisation ``\\int g dk = <omega^2>/(8 pi) = 1/(8 pi)``.

    Parameters
    ----------
    k0, k1 : float
        Smallest and largest wavenumber of the turbulence, ``0 < k0 < k1``.
    """

    name = "custom"

    def __init__(self, k0: float = PAPER_K0, k1: float = PAPER_K1):
        k0 = _wavenumber("k0", k0)
        k1 = _wavenumber("k1", k1)
        if not k1 > k0:
            raise ValueError(f"k1 must be larger than k0 (k0={k0!r}, k1={k1!r})")
        self.k0 = k0
        self.k1 = k1
        self._norm = G_INTEGRAL / self._shape_integral()

    def shape(self, k):
        """Unnormalised spectral shape; subclasses override."""
        raise NotImplementedError

    def _shape_integral(self) -> float:
        from scipy import (
            integrate,  # only general shapes need it; keeps `qlt` start-up fast
        )

        # integrate in log k: the shapes of interest are power laws over many decades
        u0, u1 = math.log(self.k0), math.log(self.k1)
        val, _ = integrate.quad(lambda u: float(self.shape(math.exp(u))) * math.exp(u), u0, u1,
                                limit=200, epsabs=0.0, epsrel=1e-13)
        return val

    def g(self, k):
        """Normalised spectrum ``g(k)``; zero outside ``[k0, k1]``.

        Notes
        -----
        Normalised so that ``\\int g dk = 1/(8 pi)``, i.e. ``<omega^2> = 1``
        (chapter *Liouville*, :math:numref:`eq-g-normalisation`).
        """
        k = np.asarray(k, dtype=float)
        inside = (k >= self.k0) & (k <= self.k1)
        return np.where(inside, self._norm * self.shape(np.where(inside, k, self.k0)), 0.0)

    __call__ = g

    def moment(self, power: float) -> float:
        """``\\int_{k0}^{k1} g(k) k^power dk`` (used by the standard-QLT rates)."""
        from scipy import integrate

        u0, u1 = math.log(self.k0), math.log(self.k1)
        val, _ = integrate.quad(lambda u: float(self.g(math.exp(u))) * math.exp((power + 1) * u),
                                u0, u1, limit=200, epsabs=0.0, epsrel=1e-13)
        return val

    def describe(self) -> dict:
        """JSON-friendly description (used in CLI output and data files)."""
        return {"spectrum": self.name, "k0": self.k0, "k1": self.k1}

    def __repr__(self):
        return f"{type(self).__name__}(k0={self.k0!r}, k1={self.k1!r})"


class PowerLawSpectrum(TurbulenceSpectrum):
    """``g(k) \\propto k^index`` on ``[k0, k1]``.

    ``index = 0`` is band-limited white noise in ``g`` (the default reading of the paper),
    ``-5/3`` Kolmogorov, ``-1`` equal energy per logarithmic band, ``2`` flat 3-D spectrum
    ``S(k)``.
    """

    name = "powerlaw"

    def __init__(self, k0: float = PAPER_K0, k1: float = PAPER_K1, index: float = 0.0):
        self.index = float(index)
        super().__init__(k0, k1)

    def shape(self, k):
        return np.power(k, self.index)

    def _shape_integral(self) -> float:
        # closed form: exact normalisation for the power laws used everywhere
        p = self.index + 1.0
        if abs(p) < 1e-14:
            return math.log(self.k1 / self.k0)
        return (self.k1 ** p - self.k0 ** p) / p

    def moment(self, power: float) -> float:
        p = self.index + power + 1.0
        if abs(p) < 1e-14:
            return self._norm * math.log(self.k1 / self.k0)
        return self._norm * (self.k1 ** p - self.k0 ** p) / p

    def describe(self) -> dict:
        d = super().describe()
        d["index"] = self.index
        return d

    def __repr__(self):
        return f"{type(self).__name__}(k0={self.k0!r}, k1={self.k1!r}, index={self.index!r})"


class WhiteNoiseSpectrum(PowerLawSpectrum):
    """Band-limited white noise: ``g(k)`` flat on ``[k0, k1]`` (the paper's Sect. 4)."""

    name = "white"

    def __init__(self, k0: float = PAPER_K0, k1: float = PAPER_K1):
        super().__init__(k0, k1, index=0.0)

    def __repr__(self):
        return f"{type(self).__name__}(k0={self.k0!r}, k1={self.k1!r})"


class KolmogorovSpectrum(PowerLawSpectrum):
    """Kolmogorov turbulence: energy spectrum ``g(k) \\propto k^{-5/3}`` on ``[k0, k1]``."""

    name = "kolmogorov"

    def __init__(self, k0: float = PAPER_K0, k1: float = PAPER_K1):
        super().__init__(k0, k1, index=-5.0 / 3.0)

    def __repr__(self):
        return f"{type(self).__name__}(k0={self.k0!r}, k1={self.k1!r})"


class LogFlatSpectrum(PowerLawSpectrum):
    """Equal energy per logarithmic band: ``g(k) \\propto 1/k`` on ``[k0, k1]``."""

    name = "logflat"

    def __init__(self, k0: float = PAPER_K0, k1: float = PAPER_K1):
        super().__init__(k0, k1, index=-1.0)

    def __repr__(self):
        return f"{type(self).__name__}(k0={self.k0!r}, k1={self.k1!r})"


class Flat3DSpectrum(PowerLawSpectrum):
    """Flat three-dimensional spectrum: ``S(k)`` constant, so ``g(k) = k^2 S \\propto k^2``.

    Read this way, "white noise" puts almost all the energy at the shortest wavelengths:
    ``k r_g >> 1`` for the paper's band, where scattering is weak.
    """

    name = "flat3d"

    def __init__(self, k0: float = PAPER_K0, k1: float = PAPER_K1):
        super().__init__(k0, k1, index=2.0)

    def __repr__(self):
        return f"{type(self).__name__}(k0={self.k0!r}, k1={self.k1!r})"


SPECTRA = {
    "white": WhiteNoiseSpectrum,
    "kolmogorov": KolmogorovSpectrum,
    "logflat": LogFlatSpectrum,
    "flat3d": Flat3DSpectrum,
}


def make_spectrum(name: str, k0: float = PAPER_K0, k1: float = PAPER_K1) -> TurbulenceSpectrum:
    """Build a named spectrum (``white``, ``kolmogorov``, ``logflat`` or ``flat3d``).

    Raises
    ------
    ValueError
        For an unknown name or invalid ``k0``/``k1``; the message names the parameter.
    """
    try:
        cls = SPECTRA[name]
    except KeyError:
        raise ValueError(f"unknown spectrum {name!r}; choose one of {', '.join(SPECTRA)}") from None
    return cls(k0, k1)
