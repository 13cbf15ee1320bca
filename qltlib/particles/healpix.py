"""HEALPix pixel centres in RING ordering, without importing healpy.

``qlt simulate`` needs only the pixel centres (one particle per pixel); healpy's import pulls in
matplotlib and astropy (over a second), so the start of a run computes them here from the
HEALPix definitions (Górski et al. 2005, eqs. 4-9): rings of constant ``z = cos(theta)``, the
polar caps with ``4 i`` pixels in ring ``i``, the equatorial belt with ``4 nside`` pixels per
ring, alternate belt rings shifted by half a pixel. ``tests/test_healpix.py`` checks the result
against :func:`healpy.pix2vec` (RING).
"""
from __future__ import annotations

import numpy as np


def _integer_sqrt_floor(values: np.ndarray) -> np.ndarray:
    """``floor(sqrt(values))`` exactly for non-negative integers (float sqrt, then corrected)."""
    root = np.floor(np.sqrt(values.astype(np.float64))).astype(np.int64)
    root -= (root * root > values)
    root += ((root + 1) * (root + 1) <= values)
    return root


def ring_pixel_directions(nside: int) -> np.ndarray:
    """Unit vectors of the ``12 nside^2`` HEALPix pixel centres in RING ordering, ``(N, 3)``.

    Parameters
    ----------
    nside : int
        HEALPix resolution (a power of two).
    """
    nside = int(nside)
    if nside < 1 or nside & (nside - 1):
        raise ValueError(f"nside must be a power of two, got {nside!r}")
    n_pix = 12 * nside * nside
    n_cap = 2 * nside * (nside - 1)
    p = np.arange(n_pix, dtype=np.int64)
    z = np.empty(n_pix)
    phi = np.empty(n_pix)

    north = p < n_cap
    ring = (1 + _integer_sqrt_floor(1 + 2 * p[north])) // 2
    j = p[north] + 1 - 2 * ring * (ring - 1)
    z[north] = 1.0 - ring * ring / (3.0 * nside * nside)
    phi[north] = (j - 0.5) * np.pi / (2.0 * ring)

    belt = (p >= n_cap) & (p < n_pix - n_cap)
    q = p[belt] - n_cap
    ring = q // (4 * nside) + nside
    j = q % (4 * nside) + 1
    # rings with ring + nside odd start at phi = 0, the others half a pixel later
    offset = np.where((ring + nside) % 2 == 1, 1.0, 0.5)
    z[belt] = (2 * nside - ring) * 2.0 / (3.0 * nside)
    phi[belt] = (j - offset) * np.pi / (2.0 * nside)

    south = p >= n_pix - n_cap
    q = n_pix - p[south]
    ring = (1 + _integer_sqrt_floor(2 * q - 1)) // 2
    j = 4 * ring + 1 - (q - 2 * ring * (ring - 1))
    z[south] = -(1.0 - ring * ring / (3.0 * nside * nside))
    phi[south] = (j - 0.5) * np.pi / (2.0 * ring)

    sin_theta = np.sqrt((1.0 - z) * (1.0 + z))
    return np.stack([sin_theta * np.cos(phi), sin_theta * np.sin(phi), z], axis=1)
