"""Forward model: from a full-sky ``C_l`` to the pseudo-power ``C~_l`` an observatory publishes.

Chapter *Comparison with observations* (:ref:`ch-observations`). A ground-based detector sees
the relative intensity ``dI`` only inside a declination band (IceCube: ``dec < dec_max``), and
its time-scrambled reference removes, in every declination ring, the mean relative intensity
inside the field of view — the ``m = 0`` modes in equatorial coordinates. Both operations are
linear in the map, so for a Gaussian sky with spectrum ``C_l`` and white noise ``N``

.. math:: \\langle \\tilde C_\\ell\\rangle = \\sum_{\\ell'} M_{\\ell\\ell'} C_{\\ell'}
          + N\\, n_\\ell ,

(:math:numref:`eq-obs-coupling`). Because the mask depends on declination only, it does not mix
``m``: the pseudo-multipoles are ``a~_lm = sum_l' W^m_{l l'} a_{l'm}`` with

.. math:: W^m_{\\ell\\ell'} = 2\\pi \\int_{x_{lo}}^{x_{hi}} dx\\, \\lambda_{\\ell m}(x)
          \\lambda_{\\ell' m}(x), \\qquad x = \\sin\\delta ,

(``lambda_lm = Y_lm(theta, 0)``; :math:numref:`eq-obs-kernel`), and the ``m = 0`` filter just
drops ``m = 0``. This module evaluates ``W^m`` exactly by Gauss-Legendre quadrature, builds the
coupling matrix ``M``, the white-noise response ``n_l`` and the exact Gaussian covariance of
``C~_l`` from it, and provides the Monte Carlo (Gaussian skies → mask → ring-mean subtraction →
``anafast``) that checks all of them, plus the MASTER formula (Wigner 3j of the mask power) as an
independent check of ``M`` without the filter.

Normalisation: by default ``C~_l`` is the plain ``anafast`` power of the map that is zero
outside the field of view (the pseudo-power of the masked map, as IceCube publishes it). With
``fsky_normalise=True`` everything is divided by the observed sky fraction ``f_sky``, which makes
``<C~_l> ≈ C_l`` for white spectra. The choice only rescales the fitted ``K|G|^2`` and ``N``
together.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import healpy as hp
import numpy as np
from scipy.special import sph_legendre_p

from ..theory.angular import wigner3j_zero

#: HEALPix resolution of the Monte Carlo (nside 32: pixels of 1.8 deg, l up to 95).
DEFAULT_NSIDE = 32
#: Assumed northern edge of IceCube's field of view (equatorial declination, degrees).
ICECUBE_DEC_MAX_DEG = -20.0


@dataclass(frozen=True)
class DeclinationBand:
    """Field of view ``dec_min <= dec < dec_max`` in equatorial coordinates (degrees).

    The default is the assumed IceCube field of view ``dec < -20 deg`` (the exact cut of the
    12-yr analysis is not known here).
    """

    dec_min_deg: float = -90.0
    dec_max_deg: float = ICECUBE_DEC_MAX_DEG

    def __post_init__(self):
        lo, hi = float(self.dec_min_deg), float(self.dec_max_deg)
        if not (np.isfinite(lo) and np.isfinite(hi) and -90.0 <= lo < hi <= 90.0):
            raise ValueError(f"declination band needs -90 <= dec_min < dec_max <= 90 degrees, "
                             f"got dec_min={self.dec_min_deg!r}, dec_max={self.dec_max_deg!r}")

    def pixel_mask(self, nside: int) -> np.ndarray:
        """Boolean HEALPix map (RING order, equatorial): pixel centre inside the band."""
        dec = _pixel_declinations(nside)
        return (dec >= self.dec_min_deg) & (dec < self.dec_max_deg)

    def sin_dec_limits(self, nside: int | None = None) -> tuple:
        """Limits ``(x_lo, x_hi)`` of ``x = sin(dec)`` used by the analytic kernel.

        ``nside=None`` gives the continuum band. For a HEALPix mask the edges are placed where
        the spherical zones hold exactly the masked pixels' area (pixels are equal-area), which
        is the continuum band that best matches the pixelised one.
        """
        if nside is None:
            return float(np.sin(np.radians(self.dec_min_deg))), float(np.sin(np.radians(self.dec_max_deg)))
        dec = _pixel_declinations(nside)
        npix = dec.size
        n_south = np.count_nonzero(dec < self.dec_min_deg)
        n_north = np.count_nonzero(dec >= self.dec_max_deg)
        return -1.0 + 2.0 * n_south / npix, 1.0 - 2.0 * n_north / npix

    def fsky(self, nside: int | None = None) -> float:
        """Observed fraction of the sky."""
        x_lo, x_hi = self.sin_dec_limits(nside)
        return 0.5 * (x_hi - x_lo)


@lru_cache(maxsize=8)
def _pixel_declinations(nside: int) -> np.ndarray:
    theta, _ = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)))
    dec = 90.0 - np.degrees(theta)
    dec.setflags(write=False)
    return dec


@lru_cache(maxsize=8)
def _ring_index(nside: int) -> np.ndarray:
    """Iso-latitude ring of every pixel (RING order): the rings are declination rings."""
    theta, _ = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)))
    _, ring = np.unique(theta, return_inverse=True)
    ring.setflags(write=False)
    return ring


# --------------------------------------------------------------------------- harmonic kernel

def spherical_legendre_table(lmax: int, mmax: int, x: np.ndarray) -> np.ndarray:
    """``lambda_lm(x) = Y_lm(arccos x, 0)`` for ``0 <= m <= mmax``, ``0 <= l <= lmax``.

    Returns an array of shape ``(mmax + 1, lmax + 1, x.size)``, zero where ``m > l``.
    """
    theta = np.arccos(np.clip(np.asarray(x, dtype=float), -1.0, 1.0))
    ell = np.arange(lmax + 1)[None, :, None]
    m = np.arange(mmax + 1)[:, None, None]
    # leading axis of sph_legendre_p holds the derivatives (only order 0 here)
    table = np.asarray(sph_legendre_p(ell, m, theta[None, None, :]))[0]
    return np.where(m <= ell, table, 0.0)


def mask_harmonic_kernel(x_lo: float, x_hi: float, lmax_out: int, lmax_in: int) -> np.ndarray:
    """Mode-coupling kernel ``W^m_{l l'}`` of a declination band, exact.

    Parameters
    ----------
    x_lo, x_hi : float
        Band limits in ``x = sin(dec)``.
    lmax_out, lmax_in : int
        Largest output (pseudo) and input (sky) multipole.

    Returns
    -------
    ndarray, shape (lmax_out + 1, lmax_out + 1, lmax_in + 1)
        ``W[m, l, l']``.

    Notes
    -----
    :math:numref:`eq-obs-kernel`. ``lambda_lm lambda_l'm`` is a polynomial of degree ``l + l'``
    in ``x``, so Gauss-Legendre quadrature with ``(lmax_out + lmax_in)/2 + 2`` nodes is exact.
    """
    n_nodes = (lmax_out + lmax_in) // 2 + 2
    nodes, weights = np.polynomial.legendre.leggauss(n_nodes)
    x = 0.5 * (x_hi - x_lo) * nodes + 0.5 * (x_hi + x_lo)
    w = 0.5 * (x_hi - x_lo) * weights
    table = spherical_legendre_table(max(lmax_out, lmax_in), lmax_out, x)
    out = table[:, : lmax_out + 1, :] * w
    return 2.0 * np.pi * np.einsum("mln,mkn->mlk", out, table[:, : lmax_in + 1, :])


def mask_power_spectrum(band: DeclinationBand, lmax: int, nside: int | None = None) -> np.ndarray:
    """Angular power ``W_L`` of the 0/1 band mask, ``L = 0..lmax`` (analytic).

    An azimuthal mask has only ``m = 0`` harmonics: ``W_L = w_L0^2 / (2L + 1)`` with
    ``w_L0 = 2 pi int lambda_L0 dx``.
    """
    x_lo, x_hi = band.sin_dec_limits(nside)
    nodes, weights = np.polynomial.legendre.leggauss(lmax // 2 + 2)
    x = 0.5 * (x_hi - x_lo) * nodes + 0.5 * (x_hi + x_lo)
    w = 0.5 * (x_hi - x_lo) * weights
    lam0 = spherical_legendre_table(lmax, 0, x)[0]
    w_l0 = 2.0 * np.pi * lam0 @ w
    return w_l0 ** 2 / (2.0 * np.arange(lmax + 1) + 1.0)


def master_coupling_matrix(mask_power: np.ndarray, lmax_out: int, lmax_in: int) -> np.ndarray:
    """MASTER mode-coupling matrix of a mask with power ``W_L`` (no ``m = 0`` filter).

    ``M_{l l'} = (2l' + 1)/(4 pi) sum_L (2L + 1) W_L (l l' L; 0 0 0)^2``; ``mask_power`` must
    reach ``L = lmax_out + lmax_in``.

    Notes
    -----
    :math:numref:`eq-obs-master` (Hivon et al. 2002); valid for any mask, used here as an
    independent check of :class:`PseudoClModel` without the filter.
    """
    big_l = lmax_out + lmax_in
    if len(mask_power) < big_l + 1:
        raise ValueError(f"mask_power must reach L = {big_l}, has only {len(mask_power)} entries")
    ell = np.arange(lmax_out + 1)[:, None, None]
    ellp = np.arange(lmax_in + 1)[None, :, None]
    lcap = np.arange(big_l + 1)[None, None, :]
    threej2 = wigner3j_zero(ell, ellp, lcap) ** 2
    weighted = (2 * lcap + 1) * np.asarray(mask_power[: big_l + 1])[None, None, :]
    return (2 * ellp[..., 0] + 1) / (4 * np.pi) * np.sum(threej2 * weighted, axis=-1)


# --------------------------------------------------------------------------- linear model

class PseudoClModel:
    """Linear forward model ``C_l (+ white noise N) -> <C~_l>`` and the covariance of ``C~_l``.

    Parameters
    ----------
    band : DeclinationBand
        Field of view.
    lmax_out : int
        Largest pseudo-multipole that is modelled (e.g. 40).
    lmax_in : int
        Largest sky multipole that feeds it (>= ``lmax_out``; the theory ``C_l`` is taken as zero
        beyond). White noise is treated with infinite bandwidth (completeness), not truncated.
    remove_m0 : bool
        Apply the time-scrambling ``m = 0`` filter.
    fsky_normalise : bool
        Divide by the observed sky fraction (default: plain pseudo-power of the masked map).
    nside : int or None
        ``None``: continuum band edges; an ``nside``: edges matched to that HEALPix mask (use it
        when comparing with a Monte Carlo at that resolution).

    Notes
    -----
    Mean: :math:numref:`eq-obs-coupling`, ``M_{l l'} = (2l+1)^{-1} sum_m w_m (W^m_{l l'})^2`` with
    ``w_0 = 1`` (0 if filtered) and ``w_m = 2`` for ``m > 0``; white-noise response
    ``n_l = (2l+1)^{-1} sum_m w_m W^m_{ll}`` (the band is a projector, ``sum_l' (W^m_{l l'})^2 =
    W^m_{l l}``). Covariance: :math:numref:`eq-obs-covariance`.
    """

    def __init__(self, band: DeclinationBand, lmax_out: int, lmax_in: int,
                 remove_m0: bool = True, fsky_normalise: bool = False, nside: int | None = None):
        if int(lmax_out) != lmax_out or lmax_out < 1:
            raise ValueError(f"lmax_out must be an integer >= 1, got {lmax_out!r}")
        if int(lmax_in) != lmax_in or lmax_in < lmax_out:
            raise ValueError(f"lmax_in must be an integer >= lmax_out = {lmax_out}, got {lmax_in!r}")
        self.band = band
        self.lmax_out = int(lmax_out)
        self.lmax_in = int(lmax_in)
        self.remove_m0 = bool(remove_m0)
        self.fsky_normalise = bool(fsky_normalise)
        self.nside = nside
        self.fsky = band.fsky(nside)
        self.normalisation = 1.0 / self.fsky if fsky_normalise else 1.0
        x_lo, x_hi = band.sin_dec_limits(nside)
        self.kernel = mask_harmonic_kernel(x_lo, x_hi, self.lmax_out, self.lmax_in)
        self.mode_weight = np.full(self.lmax_out + 1, 2.0)   # m and -m
        self.mode_weight[0] = 0.0 if self.remove_m0 else 1.0
        two_l_plus_1 = 2.0 * np.arange(self.lmax_out + 1) + 1.0
        self.coupling_matrix = self.normalisation * np.einsum(
            "m,mlk->lk", self.mode_weight, self.kernel ** 2) / two_l_plus_1[:, None]
        diagonal = np.einsum("mll->ml", self.kernel[:, :, : self.lmax_out + 1])
        self.noise_response = self.normalisation * (self.mode_weight @ diagonal) / two_l_plus_1

    def _full_cl(self, cl) -> np.ndarray:
        cl = np.asarray(cl, dtype=float)
        if cl.ndim != 1:
            raise ValueError("cl must be a one-dimensional array indexed by l = 0, 1, ...")
        full = np.zeros(self.lmax_in + 1)
        n = min(cl.size, self.lmax_in + 1)
        full[:n] = cl[:n]
        return full

    def expected(self, cl, noise: float = 0.0) -> np.ndarray:
        """``<C~_l>`` for ``l = 0..lmax_out`` from ``C_l`` (array from ``l = 0``) and noise ``N``."""
        return self.coupling_matrix @ self._full_cl(cl) + noise * self.noise_response

    def harmonic_covariances(self, cl, noise: float, ell) -> np.ndarray:
        """``G^m_{l l'} = <a~_lm a~*_l'm>`` for the multipoles ``ell``; shape ``(m, n, n)``."""
        ell = np.asarray(ell, dtype=int)
        rows = self.kernel[:, ell, :]
        signal = np.einsum("mik,k,mjk->mij", rows, self._full_cl(cl), rows)
        return signal + noise * self.kernel[:, ell][:, :, ell]

    def covariance(self, cl, noise: float = 0.0, ell=None) -> np.ndarray:
        """Covariance of ``C~_l`` (Gaussian sky), for multipoles ``ell`` (default ``1..lmax_out``).

        Notes
        -----
        :math:numref:`eq-obs-covariance`: ``Cov(C~_l, C~_l') = [2 (G^0)^2 + 4 sum_{m>0}
        (G^m)^2] / ((2l+1)(2l'+1))`` (the ``m = 0`` term absent with the filter): ``a~_lm`` of
        different ``m`` are independent for an azimuthal mask, Isserlis' theorem does the rest.
        """
        ell = np.arange(1, self.lmax_out + 1) if ell is None else np.asarray(ell, dtype=int)
        g = self.harmonic_covariances(cl, noise, ell)
        return self.covariance_from_harmonic(g, ell)

    def covariance_from_harmonic(self, g: np.ndarray, ell) -> np.ndarray:
        """Covariance of ``C~_l`` from the stack ``G^m`` of :meth:`harmonic_covariances`."""
        ell = np.asarray(ell, dtype=int)
        two_l_plus_1 = 2.0 * ell + 1.0
        # Var|a|^2 factors: 2 for real m = 0, and (2 x 2) for the pair +-m of a complex mode
        factor = 2.0 * self.mode_weight
        cov = np.einsum("m,mij->ij", factor, g ** 2)
        return self.normalisation ** 2 * cov / np.outer(two_l_plus_1, two_l_plus_1)


@lru_cache(maxsize=16)
def cached_pseudo_cl_model(dec_min_deg: float, dec_max_deg: float, lmax_out: int, lmax_in: int,
                           remove_m0: bool = True, fsky_normalise: bool = False,
                           nside: int | None = None) -> PseudoClModel:
    """:class:`PseudoClModel` cached per mask and settings (it is computed once per mask)."""
    return PseudoClModel(DeclinationBand(dec_min_deg, dec_max_deg), lmax_out, lmax_in,
                         remove_m0=remove_m0, fsky_normalise=fsky_normalise, nside=nside)


# --------------------------------------------------------------------------- Monte Carlo

def gaussian_alm(cl, rng: np.random.Generator) -> np.ndarray:
    """Random ``a_lm`` (healpy ordering) of a Gaussian isotropic sky with spectrum ``cl``.

    Same distribution as :func:`healpy.synalm` (real ``a_l0``, circular complex ``a_lm`` for
    ``m > 0``), drawn from a seeded :class:`numpy.random.Generator` instead of numpy's global
    state, so realisations are reproducible and independent of other code.
    """
    cl = np.asarray(cl, dtype=float)
    if np.any(cl < 0) or not np.all(np.isfinite(cl)):
        raise ValueError("cl must be finite and non-negative")
    lmax = cl.size - 1
    ell, m = hp.Alm.getlm(lmax)
    amplitude = np.sqrt(cl[ell])
    real = rng.standard_normal(ell.size)
    imag = rng.standard_normal(ell.size)
    alm = np.where(m == 0, real, (real + 1j * imag) / np.sqrt(2.0)) * amplitude
    return alm.astype(complex)


def gaussian_sky(cl, nside: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian sky map (RING order) with spectrum ``cl`` (``l = 0..len(cl)-1``).

    Equivalent to ``healpy.synfast(cl, nside)`` with a seeded generator.
    """
    cl = np.asarray(cl, dtype=float)
    return hp.alm2map(gaussian_alm(cl, rng), nside, lmax=cl.size - 1)


def white_noise_map(noise: float, nside: int, rng: np.random.Generator) -> np.ndarray:
    """Pixel white noise whose angular power is ``noise`` at every ``l`` (shot-noise model)."""
    npix = hp.nside2npix(nside)
    return rng.standard_normal(npix) * np.sqrt(noise * npix / (4.0 * np.pi))


def remove_ring_means(sky_map: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Time-scrambling filter: subtract, in every declination ring, the mean inside the view.

    Parameters
    ----------
    sky_map : ndarray
        Relative intensity (RING order, equatorial coordinates).
    observed : ndarray of bool
        Field of view.

    Returns
    -------
    ndarray
        Filtered map, zero outside the field of view.

    Notes
    -----
    The time-scrambled reference is, at each declination, the rate averaged over right
    ascension; ``dI_obs = (1 + dI)/(1 + <dI>_ring) - 1 ≈ dI - <dI>_ring`` to first order in the
    ``1e-3`` anisotropy. For a declination-band mask every ring is fully in or out, so this is
    exactly the removal of the ``m = 0`` modes of the masked map (:math:numref:`eq-obs-filter`).
    """
    nside = hp.npix2nside(sky_map.size)
    ring = _ring_index(nside)
    observed = np.asarray(observed, dtype=bool)
    n_rings = ring.max() + 1
    sums = np.bincount(ring[observed], weights=sky_map[observed], minlength=n_rings)
    counts = np.bincount(ring[observed], minlength=n_rings)
    means = np.divide(sums, counts, out=np.zeros(n_rings), where=counts > 0)
    return np.where(observed, sky_map - means[ring], 0.0)


def observed_map(sky_map: np.ndarray, band: DeclinationBand, remove_m0: bool = True) -> np.ndarray:
    """The map the detector publishes: masked (zero outside) and, optionally, ``m = 0`` filtered."""
    observed = band.pixel_mask(hp.npix2nside(sky_map.size))
    if remove_m0:
        return remove_ring_means(sky_map, observed)
    return np.where(observed, sky_map, 0.0)


def pseudo_cl(sky_map: np.ndarray, band: DeclinationBand, lmax: int, remove_m0: bool = True,
              fsky_normalise: bool = False) -> np.ndarray:
    """Pseudo-power ``C~_l``, ``l = 0..lmax``: ``anafast`` of the observed (masked, filtered) map.

    ``iter=0`` (plain quadrature): the masked map is not band-limited, so ``anafast``'s
    iterative refinement does not apply; the tests show agreement with the exact kernel.
    """
    nside = hp.npix2nside(sky_map.size)
    cl = hp.anafast(observed_map(sky_map, band, remove_m0), lmax=lmax, iter=0)
    return cl / band.fsky(nside) if fsky_normalise else cl


@dataclass(frozen=True)
class MonteCarloPseudoCl:
    """Monte Carlo of the forward model.

    Attributes
    ----------
    ell : ndarray
        ``0..lmax``.
    samples : ndarray, shape (n_realisations, lmax + 1)
        Pseudo-power of every realisation.
    full_sky : ndarray, shape (n_realisations, lmax + 1), or None
        ``anafast`` of the same skies without mask or filter (if requested).
    """

    ell: np.ndarray
    samples: np.ndarray
    full_sky: np.ndarray | None = None

    @property
    def mean(self) -> np.ndarray:
        return self.samples.mean(axis=0)

    @property
    def std(self) -> np.ndarray:
        """Scatter of a single realisation."""
        return self.samples.std(axis=0, ddof=1)

    @property
    def error_of_mean(self) -> np.ndarray:
        return self.std / np.sqrt(self.samples.shape[0])


def simulate_pseudo_cl(cl, band: DeclinationBand, lmax: int, n_realisations: int, seed: int,
                       nside: int = DEFAULT_NSIDE, noise: float = 0.0, remove_m0: bool = True,
                       fsky_normalise: bool = False, keep_full_sky: bool = False) -> MonteCarloPseudoCl:
    """Gaussian skies from ``cl`` (+ white noise) → mask → ``m = 0`` filter → ``anafast``.

    Parameters
    ----------
    cl : array_like
        Full-sky spectrum from ``l = 0``; its length fixes the sky's band limit (at most
        ``3 nside - 1``).
    band : DeclinationBand
    lmax : int
        Largest multipole of the output.
    n_realisations, seed : int
        Number of skies and the seed of :func:`numpy.random.default_rng` (reproducible).
    nside : int
    noise : float
        White-noise power ``N`` added in pixel space.
    remove_m0, fsky_normalise : bool
        As in :func:`pseudo_cl`.
    keep_full_sky : bool
        Also return the full-sky ``anafast`` of every sky (one more transform per sky).
    """
    cl = np.asarray(cl, dtype=float)
    if cl.size - 1 > 3 * nside - 1:
        raise ValueError(f"cl reaches l = {cl.size - 1}, beyond 3 nside - 1 = {3 * nside - 1}")
    rng = np.random.default_rng(seed)
    samples = np.empty((n_realisations, lmax + 1))
    full_sky = np.empty((n_realisations, lmax + 1)) if keep_full_sky else None
    for i in range(n_realisations):
        sky = gaussian_sky(cl, nside, rng)
        if noise > 0:
            sky = sky + white_noise_map(noise, nside, rng)
        if keep_full_sky:
            full_sky[i] = hp.anafast(sky, lmax=lmax, iter=0)
        samples[i] = pseudo_cl(sky, band, lmax, remove_m0=remove_m0, fsky_normalise=fsky_normalise)
    return MonteCarloPseudoCl(ell=np.arange(lmax + 1), samples=samples, full_sky=full_sky)
