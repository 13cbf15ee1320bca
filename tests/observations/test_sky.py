"""Forward model of a partial-sky, m = 0 filtered pseudo-power spectrum (qltlib.observations.sky).

Monte Carlo checks at nside 32 with a few hundred realisations; every comparison is in units of
the Monte Carlo's own sampling error (the analytic variance divided by the number of skies).
"""
import healpy as hp
import numpy as np
import pytest

from qltlib.observations.sky import (
    DeclinationBand,
    PseudoClModel,
    mask_power_spectrum,
    master_coupling_matrix,
    pseudo_cl,
    remove_ring_means,
    simulate_pseudo_cl,
)
from qltlib.theory.angular import wigner3j_zero

NSIDE = 32
LMAX_OUT = 30
LMAX_IN = 60
N_SKIES = 120
ICECUBE = DeclinationBand(-90.0, -20.0)


def _test_spectrum(lmax=LMAX_IN):
    """Steep, red spectrum like the QLT one (a strong dipole leaks through the mask)."""
    ell = np.arange(lmax + 1)
    cl = np.zeros(lmax + 1)
    cl[1:] = 1e-7 * ell[1:] ** -2.5
    return cl


def _z_scores(mc, model, cl, noise=0.0):
    """(Monte Carlo mean - analytic mean) / (sampling error of the mean), l = 1..LMAX_OUT."""
    expected = model.expected(cl, noise)[1:]
    sigma = np.sqrt(np.diag(model.covariance(cl, noise)) / mc.samples.shape[0])
    return (mc.mean[1:] - expected) / sigma


def test_wigner3j_special_values():
    # (1 1 0; 000)^2 = 1/3, (1 1 2; 000)^2 = 2/15, (2 2 2; 000)^2 = 2/35; odd sums vanish
    np.testing.assert_allclose(wigner3j_zero([1, 1, 2, 1], [1, 1, 2, 1], [0, 2, 2, 1]) ** 2,
                               [1 / 3, 2 / 15, 2 / 35, 0.0], rtol=1e-12)
    # orthogonality: sum_l3 (2 l3 + 1) (l1 l2 l3; 000)^2 = 1
    l3 = np.arange(0, 30)
    assert np.sum((2 * l3 + 1) * wigner3j_zero(7, 11, l3) ** 2) == pytest.approx(1.0, rel=1e-12)


def test_band_geometry_and_pixel_mask():
    mask = ICECUBE.pixel_mask(NSIDE)
    assert mask.sum() / mask.size == pytest.approx(ICECUBE.fsky(NSIDE), rel=1e-12)
    assert ICECUBE.fsky() == pytest.approx((1 - np.sin(np.radians(20))) / 2, rel=1e-12)
    assert abs(ICECUBE.fsky(NSIDE) - ICECUBE.fsky()) < 0.01
    with pytest.raises(ValueError, match="dec_min < dec_max"):
        DeclinationBand(-20.0, -30.0)
    with pytest.raises(ValueError, match="lmax_in must be"):
        PseudoClModel(ICECUBE, 30, 20)


def test_full_sky_without_filter_is_the_identity():
    model = PseudoClModel(DeclinationBand(-90.0, 90.0), LMAX_OUT, LMAX_IN, remove_m0=False)
    np.testing.assert_allclose(model.coupling_matrix, np.eye(LMAX_OUT + 1, LMAX_IN + 1), atol=1e-12)
    np.testing.assert_allclose(model.noise_response, 1.0, rtol=1e-12)
    cl = _test_spectrum()
    ell = np.arange(1, LMAX_OUT + 1)
    np.testing.assert_allclose(np.diag(model.covariance(cl)), 2 * cl[ell] ** 2 / (2 * ell + 1),
                               rtol=1e-10)   # cosmic variance


def test_full_sky_monte_carlo_returns_the_input_spectrum():
    cl = _test_spectrum()
    mc = simulate_pseudo_cl(cl, DeclinationBand(-90.0, 90.0), LMAX_OUT, N_SKIES, seed=11,
                            nside=NSIDE, remove_m0=False)
    ell = np.arange(1, LMAX_OUT + 1)
    z = (mc.mean[1:] - cl[ell]) / np.sqrt(2 * cl[ell] ** 2 / (2 * ell + 1) / N_SKIES)
    assert np.max(np.abs(z)) < 4.0
    assert abs(np.mean(z)) < 4.0 / np.sqrt(ell.size)


def test_kernel_coupling_equals_master_formula():
    model = PseudoClModel(ICECUBE, LMAX_OUT, LMAX_IN, remove_m0=False)
    master = master_coupling_matrix(mask_power_spectrum(ICECUBE, LMAX_OUT + LMAX_IN),
                                    LMAX_OUT, LMAX_IN)
    np.testing.assert_allclose(model.coupling_matrix, master, rtol=1e-9, atol=1e-14)
    # rows of a 0/1 mask sum to f_sky for a flat spectrum (completeness)
    assert model.noise_response[1:] == pytest.approx(model.fsky, rel=1e-12)


@pytest.mark.parametrize("remove_m0", [False, True])
def test_mask_and_filter_coupling_agree_with_monte_carlo(remove_m0):
    cl = _test_spectrum()
    model = PseudoClModel(ICECUBE, LMAX_OUT, LMAX_IN, remove_m0=remove_m0, nside=NSIDE)
    mc = simulate_pseudo_cl(cl, ICECUBE, LMAX_OUT, N_SKIES, seed=5, nside=NSIDE,
                            remove_m0=remove_m0)
    z = _z_scores(mc, model, cl)
    assert np.max(np.abs(z)) < 4.0
    assert np.mean(z ** 2) < 2.0
    # the analytic covariance predicts the scatter of single realisations
    ratio = mc.std[1:] / np.sqrt(np.diag(model.covariance(cl)))
    assert 0.85 < np.mean(ratio) < 1.15


def test_white_noise_response_agrees_with_monte_carlo():
    noise = 1e-9
    model = PseudoClModel(ICECUBE, LMAX_OUT, LMAX_IN, remove_m0=True, nside=NSIDE)
    mc = simulate_pseudo_cl(np.zeros(LMAX_IN + 1), ICECUBE, LMAX_OUT, N_SKIES, seed=8,
                            nside=NSIDE, noise=noise)
    z = _z_scores(mc, model, np.zeros(LMAX_IN + 1), noise)
    assert np.max(np.abs(z)) < 4.0
    # filter removes one of 2l+1 modes: the dipole keeps less than 2/3 of the masked noise
    assert model.noise_response[1] < 2 / 3 * model.fsky


def test_m0_filter_removes_m0_power():
    # white noise has power in every (l, m), so a leftover m = 0 part would show
    sky = np.random.default_rng(3).standard_normal(hp.nside2npix(NSIDE))
    observed = ICECUBE.pixel_mask(NSIDE)
    filtered = remove_ring_means(sky, observed)
    assert np.all(filtered[~observed] == 0.0)
    alm = hp.map2alm(filtered, lmax=LMAX_OUT, iter=0)
    ell, m = hp.Alm.getlm(LMAX_OUT)
    assert np.max(np.abs(alm[m == 0])) < 1e-12 * np.max(np.abs(alm[m > 0]))
    # m > 0 untouched, up to aliasing of m = 4, 8, ... on the 4-, 8-pixel rings at the pole
    unfiltered = hp.map2alm(np.where(observed, sky, 0.0), lmax=LMAX_OUT, iter=0)
    change = np.linalg.norm(alm[m > 0] - unfiltered[m > 0]) / np.linalg.norm(unfiltered[m > 0])
    assert change < 1e-3
    # the analytic model drops exactly the m = 0 part of the coupling
    with_m0 = PseudoClModel(ICECUBE, LMAX_OUT, LMAX_IN, remove_m0=False)
    without = PseudoClModel(ICECUBE, LMAX_OUT, LMAX_IN, remove_m0=True)
    two_l_plus_1 = 2 * np.arange(LMAX_OUT + 1) + 1
    np.testing.assert_allclose(with_m0.coupling_matrix - without.coupling_matrix,
                               with_m0.kernel[0] ** 2 / two_l_plus_1[:, None], atol=1e-15)


def test_seeds_are_reproducible():
    cl = _test_spectrum(40)
    first = simulate_pseudo_cl(cl, ICECUBE, 20, 3, seed=42, nside=16)
    again = simulate_pseudo_cl(cl, ICECUBE, 20, 3, seed=42, nside=16)
    other = simulate_pseudo_cl(cl, ICECUBE, 20, 3, seed=43, nside=16)
    np.testing.assert_array_equal(first.samples, again.samples)
    assert not np.allclose(first.samples, other.samples)
    # independent of numpy's global random state
    np.random.seed(0)
    third = simulate_pseudo_cl(cl, ICECUBE, 20, 3, seed=42, nside=16)
    np.testing.assert_array_equal(first.samples, third.samples)


def test_fsky_normalisation_is_a_pure_rescaling():
    plain = PseudoClModel(ICECUBE, LMAX_OUT, LMAX_IN)
    scaled = PseudoClModel(ICECUBE, LMAX_OUT, LMAX_IN, fsky_normalise=True)
    np.testing.assert_allclose(scaled.coupling_matrix * plain.fsky, plain.coupling_matrix, rtol=1e-12)
    sky = np.random.default_rng(1).standard_normal(hp.nside2npix(16))
    np.testing.assert_allclose(pseudo_cl(sky, ICECUBE, 10, fsky_normalise=True) * ICECUBE.fsky(16),
                               pseudo_cl(sky, ICECUBE, 10), rtol=1e-12)
