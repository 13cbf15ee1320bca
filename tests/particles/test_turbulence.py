"""Plane-wave turbulence synthesis (qltlib.particles.turbulence): transversality, normalisation, correlations."""
import math

import numpy as np
import pytest
from scipy import integrate

from qltlib.particles.turbulence import log_bin_weights, synthesise_turbulence
from qltlib.theory.spectrum import (
    KolmogorovSpectrum,
    PowerLawSpectrum,
    WhiteNoiseSpectrum,
)


@pytest.fixture(scope="module")
def white():
    return WhiteNoiseSpectrum(0.1, 10.0)


def test_bin_weights_integrate_the_spectrum(white):
    k, w = log_bin_weights(white, 50)
    assert np.all(np.diff(k) > 0) and k[0] > white.k0 and k[-1] < white.k1
    assert math.isclose(np.sum(w), 1.0 / (8.0 * math.pi), rel_tol=1e-12)
    # white noise: weight of a log bin = g * (bin width in k), exactly
    edges = np.geomspace(white.k0, white.k1, 51)
    np.testing.assert_allclose(w, white.g(k) * np.diff(edges), rtol=1e-12)


@pytest.mark.parametrize("n_modes", [1, 7, 256])
def test_mean_square_is_one_exactly(white, n_modes):
    field = synthesise_turbulence(white, n_modes, rng=3)
    assert abs(field.mean_square - 1.0) < 1e-13


def test_same_seed_same_field_different_seed_different_field(white):
    a = synthesise_turbulence(white, 32, rng=np.random.default_rng(5))
    b = synthesise_turbulence(white, 32, rng=np.random.default_rng(5))
    c = synthesise_turbulence(white, 32, rng=np.random.default_rng(6))
    np.testing.assert_array_equal(a.wavevectors, b.wavevectors)
    np.testing.assert_array_equal(a.amplitude_vectors, b.amplitude_vectors)
    assert not np.allclose(a.phases, c.phases)


def test_waves_are_transverse_and_divergence_free(white):
    field = synthesise_turbulence(white, 128, rng=11)
    k_dot_a = np.abs(np.sum(field.wavevectors * field.amplitude_vectors, axis=1))
    scale = np.linalg.norm(field.wavevectors, axis=1) * np.linalg.norm(field.amplitude_vectors, axis=1)
    assert np.max(k_dot_a / scale) < 1e-14
    points = np.random.default_rng(0).uniform(-50, 50, size=(200, 3))
    assert np.max(np.abs(field.divergence(points))) < 1e-12 * white.k1


def test_analytic_derivatives_match_finite_differences(white):
    """Central differences of omega reproduce the analytic curl and a vanishing divergence."""
    field = synthesise_turbulence(white, 64, rng=12)
    points = np.random.default_rng(1).uniform(-20, 20, size=(50, 3))
    h = 1e-4 / white.k1
    jac = np.empty((50, 3, 3))       # jac[:, i, j] = d omega_i / d x_j
    for j in range(3):
        step = np.zeros(3)
        step[j] = h
        jac[:, :, j] = (field.omega(points + step) - field.omega(points - step)) / (2 * h)
    fd_div = np.trace(jac, axis1=1, axis2=2)
    fd_curl = np.stack([jac[:, 2, 1] - jac[:, 1, 2], jac[:, 0, 2] - jac[:, 2, 0],
                        jac[:, 1, 0] - jac[:, 0, 1]], axis=1)
    gradient_scale = np.max(np.abs(jac))
    # truncation error ~ (k1 h)^2 / 6 ~ 2e-9, round-off ~ eps / (k1 h) ~ 2e-12 (relative)
    assert np.max(np.abs(fd_div)) < 1e-7 * gradient_scale
    np.testing.assert_allclose(fd_curl, field.curl(points), atol=1e-7 * gradient_scale)


def test_measured_mean_square_field_is_one():
    """<|omega|^2> over random points and realisations equals 1 within the sampling error."""
    spectrum = KolmogorovSpectrum(0.1, 10.0)
    rng = np.random.default_rng(2024)
    per_realisation = []
    for _ in range(40):
        field = synthesise_turbulence(spectrum, 64, rng=rng)
        points = rng.uniform(-1e3, 1e3, size=(100, 3))
        per_realisation.append(np.mean(np.sum(field.omega(points) ** 2, axis=1)))
    mean = np.mean(per_realisation)
    error = np.std(per_realisation, ddof=1) / math.sqrt(len(per_realisation))
    assert 0 < error < 0.05
    assert abs(mean - 1.0) < 4 * error


def continuum_correlation(spectrum, r):
    """8 pi \\int g(k) j_0(kr) dk: trace of the two-point function of the continuum."""
    value, _ = integrate.quad(lambda k: spectrum.g(k) * np.sinc(k * r / np.pi), spectrum.k0, spectrum.k1,
                              limit=400)
    return 8 * math.pi * value


def test_two_point_correlation_follows_the_spectrum():
    spectrum = PowerLawSpectrum(0.1, 10.0, index=-1.0)
    separations = np.array([0.0, 0.3, 1.0, 3.0, 10.0])
    expected = np.array([continuum_correlation(spectrum, r) for r in separations])
    assert math.isclose(expected[0], 1.0, rel_tol=1e-8)

    rng = np.random.default_rng(77)
    samples = []
    for _ in range(60):
        field = synthesise_turbulence(spectrum, 128, rng=rng)
        # the finite mode set already reproduces the continuum after the direction average
        np.testing.assert_allclose(field.correlation_trace(separations), expected, atol=0.02)
        base = rng.uniform(-1e3, 1e3, size=(100, 3))
        direction = rng.normal(size=(100, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        w0 = field.omega(base)
        samples.append([np.mean(np.sum(w0 * field.omega(base + r * direction), axis=1)) for r in separations])
    samples = np.array(samples)
    mean = samples.mean(axis=0)
    error = samples.std(axis=0, ddof=1) / math.sqrt(len(samples))
    assert np.all(np.abs(mean - expected) < 4 * error + 0.02)
    # the correlation must actually decay over this range, otherwise the test says nothing
    assert expected[-1] < 0.5 * expected[0]
