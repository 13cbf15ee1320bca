"""Statistics of the gradient maps of one realisation: C_l per gradient axis, shot noise,
mean-square displacement (chapter *Validation*, :math:numref:`eq-val-shotnoise`).
"""
from __future__ import annotations

import math

import numpy as np

from ..machine import PROCESS_BASE_BYTES
from .settings import nside_of, pixel_directions

#: Gradient directions used for the maps ``dI = Delta r . G`` (unit vectors, ``|G| = 1/r_g``).
GRADIENT_AXES = np.eye(3)


# ---------------------------------------------------------------------------------------------
# summaries
# ---------------------------------------------------------------------------------------------

def white_noise_level(map_values, cl=None, lmax_signal: int = 1) -> float:
    """Shot-noise power ``N`` of a HEALPix map: the flat ``C_l`` of its unresolved part.

    For ``N_pix`` uncorrelated pixels of variance ``sigma^2``, ``anafast`` returns on average
    ``N = 4 pi sigma^2 / N_pix`` at every ``l`` (Parseval). A map also holds resolved signal;
    assuming the signal lives at ``l <= L = lmax_signal`` the estimator is

        N = 4 pi [ Var_2 - sum_{l=2}^{L} (2l+1) C_l / 4 pi ] / (N_pix - (L+1)^2),

    with ``Var_2`` the pixel variance after removing the fitted monopole and dipole and ``C_l``
    the map's spectrum. ``L = 1`` is the plain white-noise level of the residual map. The
    estimator is unbiased for white noise plus any signal confined to ``l <= L``.

    Parameters
    ----------
    map_values : array_like, shape (N_pix,)
    cl : array_like, optional
        ``anafast`` spectrum of the map, needed up to ``lmax_signal`` when ``lmax_signal >= 2``.
    lmax_signal : int
        ``L``; multipoles ``2..L`` are treated as resolved signal.

    Notes
    -----
    Chapter *Validation*, :math:numref:`eq-val-shotnoise`.
    """
    m = np.asarray(map_values, dtype=np.float64)
    n_pix = m.size
    # least-squares monopole + dipole fit (pixels have equal area, so plain least squares)
    design = np.column_stack([np.ones(n_pix), pixel_directions(nside_of(n_pix))])
    coefficients, *_ = np.linalg.lstsq(design, m, rcond=None)
    residual_variance = np.mean((m - design @ coefficients) ** 2)
    lmax_signal = int(lmax_signal)
    modes_left = n_pix - (max(lmax_signal, 1) + 1) ** 2
    if modes_left <= 0:
        raise ValueError(f"lmax_signal = {lmax_signal} leaves no modes for the noise at N_pix = {n_pix}")
    if lmax_signal >= 2:
        ell = np.arange(2, lmax_signal + 1)
        residual_variance -= np.sum((2 * ell + 1) * np.asarray(cl)[ell]) / (4.0 * math.pi)
    return float(4.0 * math.pi * residual_variance / modes_left)


def signal_multipole_limit(nside: int) -> int:
    """``L = 2 nside``: multipoles treated as resolved signal by the shot-noise estimator."""
    return 2 * int(nside)


def check_lmax(lmax, nside: int) -> int:
    """``lmax`` (default ``3 nside - 1``), refused outside ``1 .. 3 nside - 1``.

    A map of ``12 nside^2`` pixels resolves multipoles up to about ``3 nside - 1``; above that
    the transform only aliases pixel-scale structure (and healpy warns on stdout from
    ``4 nside`` on), so such ``C_l`` carry no information.
    """
    limit = 3 * int(nside) - 1
    if lmax is None:
        return limit
    if isinstance(lmax, bool) or int(lmax) != lmax or not 1 <= lmax <= limit:
        raise ValueError(f"lmax must be an integer from 1 to 3 nside - 1 = {limit} for nside {nside} "
                         f"(higher multipoles are not resolved by the map), got {lmax!r}")
    return int(lmax)


def summary_memory(nside: int, n_times: int, lmax: int) -> int:
    """Peak bytes of the statistics of one realisation file (:func:`realisation_statistics`).

    Per pixel and time: the float32 file array and its float64 copy, three intensity maps and
    the squared displacements (~ 100 B); per map the ``a_lm`` (``(lmax+1)(lmax+2)/2`` complex).
    """
    n_pix = 12 * int(nside) ** 2
    n_alm = (lmax + 1) * (lmax + 2) // 2
    return PROCESS_BASE_BYTES + n_pix * (100 * n_times + 64) + 3 * n_times * n_alm * 16


def realisation_statistics(delta_r, times, lmax=None) -> dict:
    """Per-realisation ``C_l``, shot noise and mean-square displacement.

    Parameters
    ----------
    delta_r : array_like, shape (n_times, n_pix, 3)
    times : array_like, shape (n_times,)
    lmax : int, optional
        Largest multipole (default ``3 nside - 1``).

    Returns
    -------
    dict
        ``C_ell`` ``(n_times, lmax+1)`` and ``shot_noise`` ``(n_times,)``, both averaged over the
        three gradient axes, and per axis ``C_ell_axis`` ``(n_times, 3, lmax+1)``,
        ``shot_noise_axis`` ``(n_times, 3)``; ``msd`` ``(n_times,)`` = ``<|Delta r|^2>`` over
        pixels and its parts ``msd_axis`` ``(n_times, 3)`` = ``<Delta x_i^2>``; ``lmax``. The
        shot noise treats ``l <= 2 nside`` as resolved signal (:func:`white_noise_level`).
    """
    delta_r = np.asarray(delta_r, dtype=np.float64)
    n_times, n_pix, _ = delta_r.shape
    nside = nside_of(n_pix)
    lmax = check_lmax(lmax, nside)
    # dI = Delta r . G with phi = 1, one map per (time, gradient axis)
    intensity = np.einsum("tpi,gi->tgp", delta_r, GRADIENT_AXES).reshape(-1, n_pix)
    lmax_signal = signal_multipole_limit(nside)
    lmax_transform = max(lmax, lmax_signal)
    # one batched transform: far cheaper than one anafast call per map on a busy machine
    import healpy as hp  # only the summaries need it; a run starts without it

    alms = hp.map2alm(intensity, lmax=lmax_transform, pol=False)
    cl_all = np.array([hp.alm2cl(alm) for alm in alms])
    noise = np.array([white_noise_level(m, c, lmax_signal) for m, c in zip(intensity, cl_all)])
    noise = noise.reshape(n_times, len(GRADIENT_AXES))
    cl = cl_all[:, :lmax + 1].reshape(n_times, len(GRADIENT_AXES), lmax + 1)
    msd_axis = np.mean(delta_r ** 2, axis=1)
    msd = np.mean(np.sum(delta_r ** 2, axis=2), axis=1)
    return {"C_ell": cl.mean(axis=1), "shot_noise": noise.mean(axis=1), "msd": msd,
            "C_ell_axis": cl, "shot_noise_axis": noise, "msd_axis": msd_axis, "lmax": lmax,
            "times": np.asarray(times, dtype=float)}
