"""Fit of the measured one-step shape to pseudo-power spectra (qltlib.observations.shape_fit,
qlt fit --one-step)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_checks import assert_one_line_error

from qltlib.observations.likelihood import PseudoClLikelihood
from qltlib.observations.shape_fit import (
    DEFAULT_SHAPE_LMAX,
    SHAPE_LMAX_IN,
    TAIL_SHARE_NOTE,
    MeasuredShape,
    ShapeLikelihood,
    build_shape_likelihood,
    continued_shape,
    fit_one_step_shape,
    fit_shape,
)
from qltlib.observations.sky import cached_pseudo_cl_model
from qltlib.particles.one_step import load_one_step

REPO = Path(__file__).resolve().parents[2]
MEASUREMENT = REPO / "data" / "one_step" / "white_alpha1600_grid68.npz"
TRUTH = {"amplitude": 2.0e-9, "noise": 3.0e-9}


@pytest.fixture(scope="module")
def measurement():
    return load_one_step(MEASUREMENT)


@pytest.fixture(scope="module")
def shape(measurement):
    return MeasuredShape(measurement)


def test_a_power_law_is_continued_exactly():
    ell = np.arange(1, 17)
    continued = continued_shape(3.0 * ell ** -1.7, 40)
    full = np.arange(41, dtype=float)
    np.testing.assert_allclose(continued[1:], 3.0 * full[1:] ** -1.7, rtol=1e-12)
    assert continued[0] == 0.0


def test_a_shape_not_positive_where_it_is_continued_is_refused():
    c = np.linspace(1.0, 0.1, 16)
    c[12] = -1e-3
    with pytest.raises(ValueError, match="not positive on l = 8..16"):
        continued_shape(c, 40)


def test_the_shape_is_the_one_step_steady_state_with_its_jackknife(measurement, shape):
    steady = measurement.without_floor().steady_state()     # the grid's aliasing floor removed
    np.testing.assert_allclose(shape.C[1:17], steady["C"], rtol=1e-12)
    np.testing.assert_allclose(np.sqrt(np.diag(shape.cov))[1:17], steady["C_err"], rtol=1e-10)
    assert shape.K == pytest.approx(steady["K"]) and shape.K_err == pytest.approx(steady["K_err"])
    assert shape.C.size == SHAPE_LMAX_IN + 1 and np.all(shape.C[17:] > 0)
    assert shape.cl(10.0) is shape.cl(500.0)          # no alpha


def _asimov(shape, ell):
    """A likelihood whose data are its own <ln C~_l> at the truth (an 'Asimov' set)."""
    model = cached_pseudo_cl_model(-90.0, -20.0, int(ell.max()), SHAPE_LMAX_IN, True, False, None)
    moments = ShapeLikelihood(ell, np.ones(ell.size), model, shape, digitisation_dex=0.03)
    _, _, log_mean, _ = moments.moments(1.0, TRUTH["amplitude"], TRUTH["noise"])
    return ShapeLikelihood(ell, np.exp(log_mean), model, shape, digitisation_dex=0.03), model


def test_fit_recovers_amplitude_and_noise_of_exact_synthetic_data(shape):
    ell = np.arange(2, DEFAULT_SHAPE_LMAX + 1)
    likelihood, _ = _asimov(shape, ell)
    result = fit_shape(likelihood)
    assert result.converged and result.at_bound == []
    assert result.amplitude == pytest.approx(TRUTH["amplitude"], rel=1e-3)
    assert result.noise == pytest.approx(TRUTH["noise"], rel=1e-3)
    assert result.amplitude_err > 0 and result.noise_err > 0
    assert result.chi2 < 1e-6 and result.ndof == ell.size - 2
    assert 0 < result.tail_share < TAIL_SHARE_NOTE


def test_the_shape_error_widens_the_variance_of_ln_c(shape):
    ell = np.arange(2, DEFAULT_SHAPE_LMAX + 1)
    likelihood, model = _asimov(shape, ell)
    plain = PseudoClLikelihood(ell, likelihood.cl_obs, model, shape, digitisation_dex=0.03)
    mean, _, _, with_shape = likelihood.diagonal_moments(1.0, TRUTH["amplitude"], TRUTH["noise"])
    _, _, _, without = plain.diagonal_moments(1.0, TRUTH["amplitude"], TRUTH["noise"])
    rows = model.coupling_matrix[ell, : shape.C.size]
    expected = TRUTH["amplitude"] ** 2 * np.einsum("ik,kj,ij->i", rows, shape.cov, rows) / mean ** 2
    np.testing.assert_allclose(with_shape - without, expected, rtol=1e-10)
    assert np.all(expected > 0)


def test_icecube_bin_fits_with_the_implied_dipole(measurement):
    result = fit_one_step_shape(measurement, "icecube-12yr", 24.0)
    out = result.to_dict()
    assert out["method"] == "transfer" and out["ndof"] == out["n_points"] - 2 == 9
    g = out["gradient"]["value"]
    assert g == pytest.approx(np.sqrt(out["amplitude"]["value"]))
    assert out["dipole"]["value"] == pytest.approx(3 * out["K"]["value"] * g)
    assert 0 < out["tail_share"] < TAIL_SHARE_NOTE
    assert out["one_step"]["alpha"] == 1600.0 and out["one_step"]["realisations"] == measurement.realisations


def test_fitting_where_the_shape_is_only_continued_says_so(measurement):
    result = fit_one_step_shape(measurement, "icecube-12yr", 24.0, lmax=40)
    assert result.tail_share > 0.5
    assert any("power-law continuation" in note for note in result.notes)


def test_invalid_requests_are_one_line_value_errors(measurement):
    with pytest.raises(ValueError, match="not in data set"):
        build_shape_likelihood(measurement, "icecube-12yr", 31.0)
    with pytest.raises(ValueError, match="beyond the data"):
        build_shape_likelihood(measurement, "icecube-12yr", 24.0, lmax=41)
    with pytest.raises(ValueError, match="need at least 3 for 2 parameters"):
        build_shape_likelihood(measurement, "icecube-12yr", 24.0, lmin=2, lmax=3)


def _qlt(*args):
    return subprocess.run([sys.executable, "-m", "qltlib.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_cli_fits_a_saved_measurement_and_a_part_store(tmp_path, measurement):
    saved = _qlt("fit", "--one-step", MEASUREMENT, "--energy-tev", 24)
    assert saved.returncode == 0, saved.stderr
    out = json.loads(saved.stdout)
    assert out["lmax"] == DEFAULT_SHAPE_LMAX and out["one_step"]["source"] == str(MEASUREMENT)
    # the same measurement from a part store (what qlt spectrum --method transfer leaves)
    store = tmp_path / "store"
    spectrum = _qlt("spectrum", "--method", "transfer", "--alpha", 10, "--lmax", 4, "--grid", 8,
                    "--modes", 16, "--realisations", 3, "--no-progress", "--store", store)
    assert spectrum.returncode == 0, spectrum.stderr
    proc = _qlt("fit", "--one-step", store, "--energy-tev", 24, "--lmax", 4)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["one_step"]["realisations"] == 3 and out["one_step"]["lmax"] == 4


@pytest.mark.parametrize("args, words", [
    (["--one-step", "no/such/file.npz", "--energy-tev", "24"], ["no such file"]),
    (["--one-step", "README.md", "--energy-tev", "24"], ["not a one-step measurement"]),
    (["--one-step", str(MEASUREMENT), "--energy-tev", "24", "--k1", "3"], ["--k1", "--one-step"]),
    (["--one-step", str(MEASUREMENT), "--energy-tev", "24", "--lmax-theory", "30"],
     ["--lmax-theory"]),
    (["--one-step", str(MEASUREMENT), "--simulation", "data/simulation"], ["--simulation"]),
    (["--one-step", str(MEASUREMENT)], ["--energy-tev"]),
])
def test_cli_bad_input_is_one_line(args, words):
    assert_one_line_error(_qlt("fit", *args), *words)
