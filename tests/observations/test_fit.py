"""Likelihood fit of (alpha, K|G|^2, N) to pseudo-power spectra (qltlib.observations.fit, qltlib.cli.fit)."""
import argparse
import json
import math

import numpy as np
import pytest

from qltlib.cli import fit as fit_cli
from qltlib.observations.fit import (
    ALPHA_RANGE,
    DEFAULT_LMAX,
    DEFAULT_LMAX_THEORY,
    DEFAULT_LMIN,
    _alpha_interval,
    alpha_interval,
    build_likelihood,
    cached_theory_grid,
    fit_energy_bin,
    fit_likelihood,
)
from qltlib.observations.likelihood import PseudoClLikelihood
from qltlib.observations.sky import DeclinationBand, PseudoClModel, simulate_pseudo_cl
from qltlib.theory.transport import ALPHA_MIN_THEORY

LMAX_FIT = 39
ELL = np.arange(2, LMAX_FIT + 1)
TRUTH = {"alpha": 50.0, "kg2": 1.0e-5, "noise": 5.0e-9}   # like the 470 TeV bin


@pytest.fixture(scope="module")
def theory():
    return cached_theory_grid("white", 1e-3, 1e2, DEFAULT_LMAX_THEORY)


def test_theory_table_interpolates_the_steady_state(theory):
    for alpha in (13.3, 47.0, 610.0):     # between the nodes
        np.testing.assert_allclose(theory.cl(alpha)[1:], theory.direct(alpha)[1:], rtol=1e-2)
    assert theory.cl(50.0)[0] == 0.0
    with pytest.raises(ValueError, match="outside the tabulated range"):
        theory.cl(5.0)


def test_fit_recovers_parameters_of_an_exact_synthetic_data_set(theory):
    """Data = the model's own <ln C~_l> (an 'Asimov' set): the fit must return the truth."""
    model = PseudoClModel(DeclinationBand(-90.0, -20.0), LMAX_FIT, DEFAULT_LMAX_THEORY)
    # any data will do: only the model moments of this likelihood are used
    model_moments = PseudoClLikelihood(ELL, np.ones(ELL.size), model, theory, digitisation_dex=0.03)
    _, _, log_mean, _ = model_moments.moments(TRUTH["alpha"], TRUTH["kg2"], TRUTH["noise"])
    likelihood = PseudoClLikelihood(ELL, np.exp(log_mean), model, theory, digitisation_dex=0.03)
    result = fit_likelihood(likelihood)
    assert result.converged and result.at_bound == []
    # the estimating equations are exactly solved by exact data
    for name in ("alpha", "kg2", "noise"):
        assert getattr(result, name) == pytest.approx(TRUTH[name], rel=1e-3), name
        assert getattr(result, name + "_err") > 0
    assert result.chi2 < 1e-6
    assert result.ndof == ELL.size - 3
    lo, hi = result.alpha_interval
    assert lo < TRUTH["alpha"] < hi


def test_fit_recovers_parameters_from_a_monte_carlo_sky(theory):
    """One Gaussian sky through the HEALPix mask and the ring-mean filter, then the fit."""
    band = DeclinationBand(-90.0, -20.0)
    nside = 32
    # a HEALPix sky at nside 32 is band-limited at l = 95; the tail of C_l beyond is negligible
    cl = TRUTH["kg2"] * theory.cl(TRUTH["alpha"])[: 3 * nside]
    sky = simulate_pseudo_cl(cl, band, LMAX_FIT, 1, seed=2019, nside=nside, noise=TRUTH["noise"])
    model = PseudoClModel(band, LMAX_FIT, DEFAULT_LMAX_THEORY, nside=nside)
    likelihood = PseudoClLikelihood(ELL, sky.samples[0, ELL], model, theory, digitisation_dex=0.03)
    result = fit_likelihood(likelihood)
    assert result.converged
    for name in ("kg2", "noise"):
        value, err = getattr(result, name), getattr(result, name + "_err")
        assert abs(value - TRUTH[name]) < 3 * err, name
    lo, hi = result.alpha_interval
    assert (lo or 1.0) < TRUTH["alpha"] < (hi or 1000.0)
    assert result.chi2 / result.ndof < 2.0


@pytest.mark.parametrize("energy", [13, 24, 42, 67])
def test_fit_converges_for_the_lowest_icecube_bins(energy, theory):
    result = fit_energy_bin("icecube-12yr", energy)
    assert result.converged
    assert math.isfinite(result.chi2) and result.ndof == 35
    assert result.kg2 > 0 and result.noise > 0
    assert result.kg2_err is not None and result.kg2_err > 0
    summary = result.to_dict()
    json.dumps(summary, allow_nan=False)        # strict JSON: undetermined errors are null
    assert set(summary) >= {"alpha", "kg2", "noise", "chi2", "ndof"}
    assert summary["kg2"]["unit"] == "c k0"


def test_invalid_requests_raise_one_line_value_errors():
    with pytest.raises(ValueError, match="unknown data set"):
        build_likelihood("no-such-data")
    with pytest.raises(ValueError, match=r"energy 14 TeV is not in data set .* 13, 24"):
        build_likelihood("icecube-12yr", 14)
    with pytest.raises(ValueError, match="lmin < lmax"):
        build_likelihood("icecube-12yr", 13, lmin=10, lmax=5)
    with pytest.raises(ValueError, match="dec_min < dec_max"):
        build_likelihood("icecube-12yr", 13, dec_max=-95.0)
    with pytest.raises(ValueError, match="lmax_theory"):
        build_likelihood("icecube-12yr", 13, lmax_theory=20)


def _parser():
    parser = argparse.ArgumentParser(prog="qlt")
    fit_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_prints_json(capsys):
    args = _parser().parse_args(["fit", "--dataset", "icecube-12yr", "--energy-tev", "470"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("alpha", "kg2", "noise"):
        assert set(out[key]) >= {"value", "err"}
    assert out["ndof"] == 35 and out["energy_tev"] == 470.0
    assert out["dec_max_deg"] == -20.0


def test_cli_rejects_bad_input_with_value_error():
    parser = _parser()
    args = parser.parse_args(["fit", "--energy-tev", "14"])
    with pytest.raises(ValueError, match="available energies"):
        args.func(args)
    args = parser.parse_args(["fit", "--dataset", "hawc-2018", "--energy-tev", "10"])
    with pytest.raises(ValueError, match="not available"):
        args.func(args)


def test_cli_help_quotes_the_library_defaults():
    helps = {action.dest: action.help for action in
             _parser()._subparsers._group_actions[0].choices["fit"]._actions}
    assert f"default {DEFAULT_LMIN}" in helps["lmin"]
    assert f"default {DEFAULT_LMAX}" in helps["lmax"]
    assert f"default {DEFAULT_LMAX_THEORY}" in helps["lmax_theory"]


# --- issue 11 defect 9: intervals, at_bound and notes agree; alpha only where the theory holds --

def test_fit_searches_alpha_only_inside_the_theory(theory):
    """The fits at 240 TeV and 5.3 PeV ended on alpha = 1, outside alpha >> 1."""
    assert ALPHA_RANGE[0] >= ALPHA_MIN_THEORY
    assert theory.alpha_range[0] >= ALPHA_MIN_THEORY
    assert 10.0 ** theory.log10_alpha_nodes[0] >= ALPHA_MIN_THEORY * (1 - 1e-12)


def _explained(result_dict):
    """Every null end of the interval has a note; the kind matches the ends."""
    lo, hi = result_dict["alpha"]["interval68"]
    kind = result_dict["alpha"]["interval_kind"]
    notes = " ".join(result_dict["notes"])
    expected_kind = {(True, True): "two-sided", (False, True): "upper limit",
                     (True, False): "lower limit", (False, False): "unconstrained"}
    if kind != "undetermined":
        assert kind == expected_kind[(lo is not None, hi is not None)]
    if lo is None:
        assert "no lower end" in notes or "undetermined" in notes
    if hi is None:
        assert "no upper end" in notes or "undetermined" in notes
    if "alpha" in result_dict["at_bound"]:
        assert "edge" in notes and "one-sided" in notes
        assert kind in ("upper limit", "lower limit", "unconstrained")


@pytest.mark.parametrize("log_alpha, sigma, kind, ends", [
    (math.log(50.0), 0.5, "two-sided", (True, True)),
    (math.log(50.0), 2.5, "upper limit", (False, True)),    # reaches below 10
    (math.log(50.0), 8.0, "unconstrained", (False, False)),  # the 130 TeV case
    (math.log(10.0), 0.5, "upper limit", (False, True)),     # on the lower edge
    (math.log(10.0), 9.0, "unconstrained", (False, False)),
    (math.log(1000.0), 0.5, "lower limit", (True, False)),   # on the upper edge
])
def test_alpha_interval_cases(log_alpha, sigma, kind, ends):
    (lo, hi), got_kind, notes = _alpha_interval(log_alpha, sigma, ALPHA_RANGE)
    assert got_kind == kind
    assert (lo is not None, hi is not None) == ends
    if lo is not None:
        assert ALPHA_RANGE[0] <= lo < math.exp(log_alpha)
    if hi is not None:
        assert math.exp(log_alpha) < hi <= ALPHA_RANGE[1]
    at_bound = (["alpha"] if min(abs(log_alpha - math.log(a)) for a in ALPHA_RANGE) < 0.05
                else [])
    _explained({"alpha": {"interval68": [lo, hi], "interval_kind": got_kind},
                "notes": notes, "at_bound": at_bound})
    assert _alpha_interval(log_alpha, None, ALPHA_RANGE)[1] == "undetermined"


@pytest.mark.parametrize("lower, upper, kind", [
    (30.0, 90.0, "two-sided"),
    (None, 90.0, "upper limit"),        # the profile never crossed its level below alpha
    (30.0, None, "lower limit"),
    (None, None, "unconstrained"),
])
def test_alpha_interval_with_asymmetric_ends(lower, upper, kind):
    """The interval code shared with the simulation fit (qltlib.validation) takes any two ends."""
    log_lower = -math.inf if lower is None else math.log(lower)
    log_upper = math.inf if upper is None else math.log(upper)
    (lo, hi), got_kind, notes = alpha_interval(math.log(50.0), log_lower, log_upper, ALPHA_RANGE)
    assert got_kind == kind and (lo, hi) == (pytest.approx(lower), pytest.approx(upper))
    _explained({"alpha": {"interval68": [lo, hi], "interval_kind": got_kind}, "notes": notes,
                "at_bound": []})


def test_cli_without_energy_or_with_simulation_options_is_refused():
    parser = _parser()
    args = parser.parse_args(["fit"])
    with pytest.raises(ValueError, match="--energy-tev is required"):
        args.func(args)
    args = parser.parse_args(["fit", "--energy-tev", "13", "--time", "40"])
    with pytest.raises(ValueError, match="--time applies only with --simulation"):
        args.func(args)


def test_unconstrained_bin_explains_its_null_interval():
    """130 TeV gave `interval68: [null, null]` with empty at_bound and notes."""
    summary = fit_energy_bin("icecube-12yr", 130).to_dict()
    _explained(summary)
    assert summary["notes"]
    json.dumps(summary, allow_nan=False)


def test_lmax_beyond_the_data_is_refused():
    """`qlt fit --lmax 100` was accepted silently although the data end at l = 40."""
    with pytest.raises(ValueError, match=r"lmax = 100 is beyond the data: .* ends at l = 40"):
        build_likelihood("icecube-12yr", 13, lmax=100, lmax_theory=100)


def test_lmax_theory_beyond_the_machine_is_refused():
    with pytest.raises(ValueError, match=r"lmax_theory = 100000, alpha = 1000 \(11 steady states\)"):
        build_likelihood("icecube-12yr", 13, lmax_theory=100000)


def test_cli_help_quotes_the_alpha_range():
    helps = _parser()._subparsers._group_actions[0].choices["fit"].format_help()
    assert f"{ALPHA_RANGE[0]:g}..{ALPHA_RANGE[1]:g}" in " ".join(helps.split())


def test_poor_fit_note_below_p_005_only():
    """Issue 19: data and simulation fits flag an improbable chi2 with the same note."""
    from scipy import stats

    from qltlib.observations.fit import POOR_FIT_P_VALUE, poor_fit_note

    assert POOR_FIT_P_VALUE == 0.05
    p = stats.chi2.sf(58.8, 35)
    note = poor_fit_note(58.8, 35, p, "the errors assume the model describes the data")
    assert note == ("poor fit (chi2 = 58.8 for 35 dof, p = 0.0071): the errors assume the "
                    "model describes the data")
    assert poor_fit_note(35.0, 35, stats.chi2.sf(35.0, 35), "x") is None
    assert poor_fit_note(1.0, 0, float("nan"), "x") is None
