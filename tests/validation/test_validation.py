"""Simulation against theory (qltlib.validation): steady-state fits, convergence times, D(t) vs K,
and `qlt fit --simulation`."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qltlib.observations.fit import TheoryGrid
from qltlib.particles.settings import SimulationSettings
from qltlib.particles.statistics import (
    interval_diffusion,
    plateau_diffusion,
    summarize,
    time_index,
)
from qltlib.particles.store import existing_summaries, prepare_output, write_summary
from qltlib.theory.spectrum import make_spectrum
from qltlib.theory.transport import standard_qlt_rates, time_dependent_spectrum
from qltlib.validation.claims import format_claims, paper_claims
from qltlib.validation.convergence import (
    convergence_times,
    ensemble_difference,
    ensemble_steady_time,
    joint_plateau_fits,
    multipole_ratio,
    plateau_fits,
    steady_time,
    successive_changes,
)
from qltlib.validation.simulation_fit import (
    acceptable_alphas,
    chi2_profile,
    diffusion_comparison,
    fit_simulation,
    fit_table,
    resolved_multipoles,
    simulated_diffusion,
    time_dependent_comparison,
)

REPO = Path(__file__).resolve().parents[2]
K0, K1 = 1e-2, 1e1
LMAX_THEORY = 16
ALPHA_TRUE, KG2_TRUE = 60.0, 300.0


@pytest.fixture(scope="module")
def theory():
    return TheoryGrid("white", K0, K1, LMAX_THEORY)


def _summary(theory, alpha=ALPHA_TRUE, kg2=KG2_TRUE, relative_error=0.02, noise_seed=None,
             times=(5.0, 10.0, 20.0)):
    """A summarize()-like dict whose C_l at every time is kg2 * C^(1)(alpha) (optionally scattered)."""
    cl = kg2 * theory.direct(alpha)
    err = relative_error * cl
    n_times = len(times)
    data = np.tile(cl, (n_times, 1))
    if noise_seed is not None:
        data = data + np.random.default_rng(noise_seed).normal(size=data.shape) * err
    diffusion = kg2 * K0
    settings = SimulationSettings(nside=8, times=times, n_modes=16, spectrum="white", k0=K0, k1=K1)
    return {"times": list(times), "C_ell": data.tolist(), "C_ell_err": np.tile(err, (n_times, 1)).tolist(),
            "diffusion_coefficient": [diffusion] * n_times,
            "diffusion_coefficient_err": [1e-3 * diffusion] * n_times,
            "settings": settings.as_dict(), "realisations": 50}


def test_free_fit_recovers_alpha_and_amplitude_of_an_exact_steady_state(theory):
    result = fit_simulation(_summary(theory), lmax_theory=LMAX_THEORY, theory=theory)
    assert result.converged and result.at_bound == []
    assert result.alpha == pytest.approx(ALPHA_TRUE, rel=1e-3)
    assert result.kg2 == pytest.approx(KG2_TRUE, rel=1e-3)
    assert result.chi2 < 1e-3 and result.ndof == 15 - 2 and result.p_value > 0.999
    low, high = result.alpha_interval
    assert result.alpha_interval_kind == "two-sided" and low < ALPHA_TRUE < high
    assert result.time == 20.0 and list(result.ell) == list(range(2, 17))
    out = result.to_dict()
    for key in ("alpha", "kg2", "chi2", "ndof", "converged", "at_bound", "notes", "time", "lmax_theory",
                "p_value"):
        assert key in out
    assert set(out["alpha"]) >= {"value", "err", "interval68", "interval_kind"}
    json.dumps(out, allow_nan=False)


def test_diffusion_amplitude_is_fixed_by_the_simulated_plateau(theory):
    summary = _summary(theory)
    result = fit_simulation(summary, amplitude="diffusion", lmax_theory=LMAX_THEORY, theory=theory)
    assert result.kg2 == pytest.approx(KG2_TRUE, rel=1e-12)        # D / k0, not fitted
    assert result.kg2_err == pytest.approx(1e-3 * KG2_TRUE, rel=1e-12)
    assert result.alpha == pytest.approx(ALPHA_TRUE, rel=1e-3) and result.ndof == 15 - 1
    assert any("amplitude fixed" in note for note in result.notes)
    # a wrong diffusion coefficient pulls alpha away and the fit becomes poor
    summary["diffusion_coefficient"] = [2 * d for d in summary["diffusion_coefficient"]]
    wrong = fit_simulation(summary, amplitude="diffusion", lmax_theory=LMAX_THEORY, theory=theory)
    assert abs(math.log(wrong.alpha / ALPHA_TRUE)) > 0.1 and wrong.p_value < 1e-3
    assert any("poor fit" in note for note in wrong.notes)


def test_interval_is_where_the_profile_chi2_rises_by_one(theory):
    summary = _summary(theory, noise_seed=3, relative_error=0.1)
    result = fit_simulation(summary, lmax_theory=LMAX_THEORY, theory=theory)
    data = np.array(summary["C_ell"])[-1, result.ell]
    sigma = np.array(summary["C_ell_err"])[-1, result.ell]

    def profile(alpha):
        shape = theory.cl(alpha)[result.ell]
        amplitude = np.sum(data * shape / sigma ** 2) / np.sum(shape ** 2 / sigma ** 2)
        return np.sum((data - amplitude * shape) ** 2 / sigma ** 2)

    assert profile(result.alpha) == pytest.approx(result.chi2, rel=1e-9)
    assert result.alpha_interval_kind == "two-sided"
    for end in result.alpha_interval:
        assert profile(end) == pytest.approx(result.chi2 + 1.0, abs=1e-4)
    for alpha in np.geomspace(*result.alpha_interval, 7)[1:-1]:
        assert profile(alpha) < result.chi2 + 1.0
    assert result.alpha_err == pytest.approx(
        result.alpha * 0.5 * math.log(result.alpha_interval[1] / result.alpha_interval[0]))


def test_alpha_stays_inside_the_theory_and_reports_its_edge(theory):
    """Data made at alpha = 10 (the theory's edge): the fit must not wander below it."""
    result = fit_simulation(_summary(theory, alpha=10.0), lmax_theory=LMAX_THEORY, theory=theory)
    assert result.alpha >= 10.0 and "alpha" in result.at_bound
    assert result.alpha_interval[0] is None and result.alpha_interval_kind == "upper limit"
    assert any("lower edge" in note for note in result.notes)


def test_noisy_multipoles_and_truncation_are_left_out_with_notes(theory):
    summary = _summary(theory)
    err = np.array(summary["C_ell_err"])
    err[:, 5] = 2.0 * np.abs(np.array(summary["C_ell"])[:, 5])       # relative error 2
    summary["C_ell_err"] = err.tolist()
    result = fit_simulation(summary, lmax_theory=LMAX_THEORY, theory=theory)
    assert 5 not in result.ell and result.ell.size == 14
    assert any("left out l = 5" in note for note in result.notes)
    short = TheoryGrid("white", K0, K1, 8)
    truncated = fit_simulation(summary, lmax_theory=8, theory=short)
    assert truncated.ell.max() == 8 and any("lmax_theory" in note for note in truncated.notes)


@pytest.mark.parametrize("options, message", [
    (dict(amplitude="shape"), "amplitude must be one of free, diffusion"),
    (dict(time=7.0), r"time 7 is not in the simulation; its times are Omega t = 5, 10, 20"),
    (dict(lmin=5, lmax=5), "lmin < lmax"),
    (dict(lmax_theory=1), "lmax_theory must be an integer >= 2"),
    (dict(lmin=2, lmax=3, amplitude="free"), "only 2 multipoles"),
])
def test_bad_requests_are_one_line_value_errors(theory, options, message):
    with pytest.raises(ValueError, match=message):
        fit_simulation(_summary(theory), **{"lmax_theory": LMAX_THEORY, "theory": theory, **options})


def test_theory_too_large_for_the_machine_is_refused(theory):
    with pytest.raises(ValueError, match="lmax_theory = 100000"):
        fit_simulation(_summary(theory), lmax_theory=100000)


def test_fit_table_covers_every_truncation_and_amplitude(theory):
    rows = fit_table(_summary(theory), lmax_theories=(8, LMAX_THEORY))
    assert [(r["lmax_theory"], r["amplitude"]) for r in rows] == [
        (8, "free"), (8, "diffusion"), (LMAX_THEORY, "free"), (LMAX_THEORY, "diffusion")]
    for row in rows:
        assert row["chi2_per_dof"] == pytest.approx(row["chi2"] / row["ndof"])
        assert 0.0 <= row["p_value"] <= 1.0
    exact = rows[2]
    assert exact["alpha"] == pytest.approx(ALPHA_TRUE, rel=1e-3) and exact["p_value"] > 0.999
    assert rows[0]["n_points"] == 7                       # l = 2..8 at lmax_theory = 8


def _realisations(means, independent, common=0.0, n=400, seed=0):
    """``(n, n_times)`` samples with the given means, independent scatter and a scatter shared by
    all times (as particles back-tracked further share their start)."""
    rng = np.random.default_rng(seed)
    means = np.asarray(means, dtype=float)
    noise = rng.normal(size=(n, means.size)) * independent + rng.normal(size=(n, 1)) * common
    return means + noise - noise.mean(axis=0)            # exact means: the test is about the errors


def test_convergence_times_find_the_earliest_steady_time():
    times = np.array([10.0, 20.0, 40.0, 80.0, 160.0])
    n = 400
    columns = [
        _realisations([1.0, 0.5, 1.0, 1.0, 1.0], 1.0, seed=0),       # l = 0: away at 20, back from 40
        _realisations([0.2, 0.6, 0.97, 1.02, 1.0], 1.0, seed=1),     # l = 1: steady from 40
        _realisations([0.1, 0.2, 0.4, 0.7, 1.0], 1.0, seed=2),       # l = 2: still rising
        _realisations([1.0, 1.0, 1.0, 1.0, 1.0], 40.0, seed=3),      # l = 3: never resolved
        _realisations([0.5, 1.0, 1.05, 1.0, 3.0], [1, 1, 1, 1, 100], seed=4),  # l = 4: lost in shot noise
        _realisations([0.5, 1.0, 1.0, 1.0, -0.6], [1, 1, 1, 1, 4], seed=5),    # l = 5: over-subtracted
        # l = 6: a 2 % drift per step under a large scatter common to all times: each mean has
        # a 5 % error, but the change between times is measured to 0.1 %
        _realisations([1.00, 1.02, 1.04, 1.06, 1.08], 0.02, common=1.0, seed=6),
    ]
    cl = np.stack(columns, axis=-1)
    rows = {r["ell"]: r for r in convergence_times(times, cl, ells=(0, 1, 2, 3, 4, 5, 6, 16))}
    assert sorted(rows) == [0, 1, 2, 3, 4, 5, 6]          # l = 16 is beyond the arrays
    assert rows[0]["time"] == 40.0
    assert rows[1]["time"] == 40.0 and rows[1]["steady"] and rows[1]["late_time"] == 160.0
    assert rows[1]["late_value"] == pytest.approx(1.0, abs=0.1) and rows[1]["p_value"] >= 0.05
    assert rows[2]["time"] is None and not rows[2]["steady"]
    assert rows[2]["last_change"] == pytest.approx(0.3 / (math.sqrt(2.0) / math.sqrt(n)), rel=0.1)
    assert rows[3]["time"] is None and not rows[3]["resolved"]
    assert rows[4]["late_time"] == 80.0 and rows[4]["time"] == 20.0
    assert rows[5]["late_time"] == 80.0 and rows[5]["time"] == 20.0
    assert rows[6]["time"] is None and rows[6]["resolved"]
    errors = cl[:, :, 6].std(axis=0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(np.diff(cl[:, :, 6].mean(axis=0))) < errors[1:])   # invisible to one-sigma bands
    with pytest.raises(ValueError, match="shape"):
        convergence_times(times, cl[:, :3])


def test_diffusion_comparison_uses_qlt_rates_and_detects_a_plateau():
    spectrum = make_spectrum("white", 1e-3, 1e2)
    times = [10.0, 20.0, 40.0]
    rising = diffusion_comparison(times, [1.4, 2.4, 3.6], [0.01, 0.01, 0.01], spectrum, alphas=(50.0,))
    markov = standard_qlt_rates(spectrum).K
    assert rising["K_markov"] == pytest.approx(markov)
    # Markov limit: nu_1 = 2 pi^2 int g/k dk, K = 1/(3 nu_1)
    assert markov == pytest.approx(1.0 / (6.0 * math.pi ** 2 * spectrum.moment(-1.0)))
    assert rising["K_finite"][50.0] == pytest.approx(standard_qlt_rates(spectrum, 50.0 / 1e2).K)
    assert not rising["plateau"] and rising["ratio_markov"][0] == pytest.approx(1.4 / markov)
    flat = diffusion_comparison(times, [3.0, 3.59, 3.6], [0.01, 0.01, 0.01], spectrum)
    assert flat["plateau"] and flat["last_change"] == pytest.approx(0.01 / math.hypot(0.01, 0.01))


def test_time_index():
    assert time_index([10.0, 20.0, 40.0]) == 2
    assert time_index([10.0, 20.0, 40.0], 20) == 1
    with pytest.raises(ValueError, match="not in the simulation"):
        time_index([10.0, 20.0], 30.0)


# --- qlt fit --simulation -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def simulation_dir(tmp_path_factory, theory):
    """A simulation directory of summary files alone (nside 8, 6 realisations) whose C_l scatter
    about kg2 C^(1)(alpha) at every time, with a flat shot noise on top."""
    out = tmp_path_factory.mktemp("sim") / "run"
    times = (50.0, 100.0)          # 6 D t stays below (c t)^2
    settings = SimulationSettings(nside=8, times=times, n_modes=16, spectrum="white", k0=K0, k1=K1)
    prepare_output(out, settings, 6)
    lmax = 3 * settings.nside - 1
    cl = np.zeros(lmax + 1)
    cl[:LMAX_THEORY + 1] = KG2_TRUE * theory.direct(ALPHA_TRUE)
    rng = np.random.default_rng(1)
    for index in range(6):
        noise = np.full((len(times), 3), 1e-3)
        scatter = 1.0 + 0.05 * rng.normal(size=(len(times), 3, lmax + 1))
        msd = 6.0 * np.array(times) * KG2_TRUE * K0 * (1 + 0.01 * rng.normal(size=len(times)))
        write_summary(out, {"version": np.int64(1), "index": np.int64(index), "times": np.array(times),
                            "lmax": np.int64(lmax), "C_ell_axis": cl * scatter + noise[..., None],
                            "shot_noise_axis": noise, "msd": msd,
                            "msd_axis": np.repeat(msd[:, None] / 3.0, 3, axis=1),
                            "settings": np.str_(json.dumps(settings.as_dict(), sort_keys=True))})
    return out


def _qlt(*args):
    return subprocess.run([sys.executable, "-m", "qltlib.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_qlt_fit_simulation_prints_the_fit(simulation_dir):
    assert existing_summaries(simulation_dir) == list(range(6))
    assert summarize(simulation_dir)["realisations"] == 6
    done = _qlt("fit", "--simulation", simulation_dir, "--lmax-theory", LMAX_THEORY)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    steady_at, steady = ensemble_steady_time(summarize(simulation_dir))
    assert out["time"] == steady_at and out["notes"][0].startswith("time: the")
    assert ("steady time" in out["notes"][0]) == steady
    # issue 22: the JSON says which steady time was used, and by which rule
    assert out["time_choice"] == ("steady time" if steady else "last time")
    assert out["steady_time"] == (steady_at if steady else None)
    assert "p >= 0.05" in out["steady_time_rule"]
    if steady:
        by_ell = [row for row in out["steady_time_by_ell"] if row["resolved"]]
        assert max(row["time"] for row in by_ell) == out["steady_time"]
    assert out["lmax_theory"] == LMAX_THEORY and out["amplitude"] == "free"
    low, high = out["alpha"]["interval68"]
    assert low < ALPHA_TRUE < high and out["alpha"]["interval_kind"] == "two-sided"
    assert 0.0 < out["p_value"] <= 1.0 and out["ndof"] == 13
    fixed = json.loads(_qlt("fit", "--simulation", simulation_dir, "--lmax-theory", LMAX_THEORY,
                            "--amplitude", "diffusion", "--time", "50").stdout)
    assert fixed["time"] == 50.0 and fixed["ndof"] == 14 and fixed["amplitude"] == "diffusion"
    assert fixed["kg2"]["value"] == pytest.approx(KG2_TRUE, rel=0.03)


@pytest.mark.parametrize("args, message", [
    (["--simulation", "{tmp}"], "not a simulation directory"),
    (["--simulation", "{tmp}/missing"], "no such directory"),
    (["--simulation", "{sim}/manifest.json"], "not a directory"),
    (["--simulation", "{sim}", "--time", "7"], "time 7 is not in the simulation"),
    (["--simulation", "{sim}", "--lmax-theory", "100000"], "lmax_theory = 100000"),
    (["--simulation", "{sim}", "--energy-tev", "13"], "--energy-tev applies only to a data fit"),
    (["--simulation", "{sim}", "--amplitude", "shape"], "invalid choice"),
    (["--energy-tev", "13", "--amplitude", "free"], "--amplitude applies only with --simulation"),
    ([], "--energy-tev is required"),
])
def test_qlt_fit_simulation_bad_input_is_one_line_exit_2(tmp_path, simulation_dir, args, message):
    done = _qlt("fit", *[a.format(tmp=tmp_path, sim=simulation_dir) for a in args])
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_chi2_profile_is_zero_at_the_true_alpha_and_maps_the_acceptable_range(theory):
    alphas = [20.0, 40.0, 60.0, 90.0, 200.0]
    profile = chi2_profile(_summary(theory), alphas, lmax_theory=LMAX_THEORY, theory=theory)
    # the grid interpolates between solved alpha nodes: chi2 ~ 5e-4 at the truth, not zero
    assert profile["chi2"][2] < 1e-2 and profile["ndof"] == 15 - 2
    assert profile["kg2"][2] == pytest.approx(KG2_TRUE, rel=1e-4)
    assert min(profile["chi2"][:2] + profile["chi2"][3:]) > 1.0
    accepted = acceptable_alphas(profile)
    assert accepted["best_alpha"] == 60.0 and accepted["fits"]
    assert accepted["range"][0] <= 60.0 <= accepted["range"][1]
    # amplitude fixed at the true K: the same minimum, one parameter fewer
    fixed = chi2_profile(_summary(theory), alphas, lmax_theory=LMAX_THEORY, theory=theory, amplitude="diffusion")
    assert fixed["ndof"] == 15 - 1 and fixed["chi2"][2] < 1e-2
    assert fixed["kg2"] == pytest.approx([KG2_TRUE] * len(alphas))
    with pytest.raises(ValueError, match="range"):
        chi2_profile(_summary(theory), [5.0], lmax_theory=LMAX_THEORY, theory=theory)


def test_plateau_diffusion_is_the_slope_of_the_mean_square_displacement():
    times = np.array([10.0, 20.0, 40.0, 80.0])
    k_true, b = np.array([[5.0], [7.0]]), np.array([[30.0], [10.0]])
    msd = 6 * (k_true * times - b)          # D(t) = K - b/t: running D still below K
    out = plateau_diffusion(msd, times)
    assert out["value"] == pytest.approx(6.0) and out["previous"] == pytest.approx(6.0)
    assert out["err"] == pytest.approx(1.0)  # K = 5, 7: standard error of the mean
    assert np.all(msd[:, -1] / (6 * times[-1]) < k_true[:, 0])
    intervals = interval_diffusion(msd, times)
    assert intervals["value"][1:] == pytest.approx([6.0] * 3) and intervals["end"] == times.tolist()
    assert intervals["value"][0] == pytest.approx(np.mean(msd[:, 0]) / 60.0) and intervals["start"][0] == 0.0
    # the two realisations differ by 2 in K, but each has the same slope on every later interval:
    # the paired change is exactly zero, where the combined errors would allow +-1.4
    assert intervals["change"][1:] == pytest.approx([0.0, 0.0]) and intervals["change_err"][1:] == pytest.approx([0.0, 0.0])
    single = plateau_diffusion(msd[:, :1], times[:1])   # one time: the running D itself
    assert single["value"] == pytest.approx(np.mean(msd[:, 0]) / 60.0) and single["previous"] is None
    # the summary's plateau, when present, fixes the amplitude; else the running D(T)
    assert simulated_diffusion({"diffusion_plateau": 6.0, "diffusion_plateau_err": 0.1})[:2] == (6.0, 0.1)
    assert simulated_diffusion({"times": [1.0, 2.0], "diffusion_coefficient": [1.0, 2.0],
                                "diffusion_coefficient_err": [0.1, 0.2]})[:2] == (2.0, 0.2)


def test_multipole_ratio_keeps_the_correlation_between_the_two_means():
    rng = np.random.default_rng(3)
    c1 = rng.uniform(50, 150, size=(40, 2))
    cl = np.zeros((40, 2, 3))
    cl[:, :, 1], cl[:, :, 2] = c1, 0.04 * c1        # C_2 follows C_1 exactly in every realisation
    noise = np.full((40, 2), 0.5)
    out = multipole_ratio({"C_ell": cl + noise[..., None], "shot_noise": noise})
    np.testing.assert_allclose(out["ratio"], 0.04, rtol=1e-12)
    np.testing.assert_allclose(out["err"], 0.0, atol=1e-12)  # quadrature would give about 2 per cent
    cl[:, :, 2] = rng.uniform(2, 6, size=(40, 2))            # independent: error of order the scatter
    out = multipole_ratio({"C_ell": cl, "shot_noise": np.zeros((40, 2))})
    # first-order error propagation with the sample covariance (delta method)
    for it in range(2):
        x, y = cl[:, it, 1], cl[:, it, 2]
        cov = np.cov(y / y.mean(), x / x.mean())
        relative = math.sqrt((cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]) / 40)
        assert out["err"][it] == pytest.approx(out["ratio"][it] * relative, rel=0.05)


def test_successive_changes_are_paired_over_realisations():
    rng = np.random.default_rng(11)
    n, times = 60, np.array([10.0, 20.0, 40.0])
    k_true = rng.uniform(4.0, 8.0, size=(n, 1))      # realisations differ a lot ...
    msd = 6 * k_true * times                          # ... but each is diffusive with D = K at all times
    level = rng.uniform(50, 150, size=(n, 1))
    cl = np.zeros((n, 3, 3))
    cl[:, :, 1] = level * np.array([1.0, 1.0, 1.02])  # C_1 grows by exactly 2 % in the last step
    cl[:, :, 2] = 0.05 * level                        # C_2/C_1 drops by the same factor
    noise = rng.uniform(0.1, 1.0, size=(n, 3))
    out = successive_changes({"times": times, "per_realisation": {"msd": msd, "C_ell": cl + noise[..., None],
                                                                   "shot_noise": noise}})
    assert out["times"] == times.tolist() and len(out["cl"]["change"]) == 2
    np.testing.assert_allclose(out["diffusion"]["value"], k_true.mean(), rtol=1e-12)
    np.testing.assert_allclose(out["diffusion"]["change"], 0.0, atol=1e-12)
    np.testing.assert_allclose(out["diffusion"]["change_err"], 0.0, atol=1e-12)  # unpaired: about 0.15
    np.testing.assert_allclose(out["slope"]["change"], 0.0, atol=1e-12)
    assert out["cl"]["change"][1] == pytest.approx(0.02 * level.mean())
    assert out["cl"]["change_err"][1] == pytest.approx(0.02 * level.std(ddof=1) / math.sqrt(n))
    assert out["cl"]["change_err"][1] < 0.05 * out["cl"]["err"][1]
    assert out["ratio"]["value"] == pytest.approx([0.05, 0.05, 0.05 / 1.02])
    # C_2 follows C_1 in every realisation: the ratio and its change carry no jackknife error
    np.testing.assert_allclose(out["ratio"]["err"], 0.0, atol=1e-12)
    np.testing.assert_allclose(out["ratio"]["change_err"], 0.0, atol=1e-12)
    assert out["ratio"]["change"][1] == pytest.approx(0.05 / 1.02 - 0.05)
    # the jackknife error of the change against its delta-method value for independent C_2
    cl[:, :, 2] = rng.uniform(2, 8, size=(n, 3))
    out = successive_changes({"times": times, "per_realisation": {"msd": msd, "C_ell": cl,
                                                                   "shot_noise": np.zeros((n, 3))}})
    x0, x1, y0, y1 = cl[:, 1, 1], cl[:, 2, 1], cl[:, 1, 2], cl[:, 2, 2]
    r0, r1 = y0.mean() / x0.mean(), y1.mean() / x1.mean()
    gradient = np.array([-r0 / x0.mean(), 1 / x0.mean(), r1 / x1.mean(), -1 / x1.mean()])
    delta = math.sqrt(gradient @ np.cov(np.array([x0, y0, x1, y1])) @ gradient / n)
    assert out["ratio"]["change_err"][1] == pytest.approx(delta, rel=0.05)
    with pytest.raises(ValueError, match="beyond the stored multipoles"):
        successive_changes({"times": times, "per_realisation": {"msd": msd, "C_ell": cl,
                                                                 "shot_noise": np.zeros((n, 3))}}, ell=5)
    with pytest.raises(ValueError, match="two realisations"):
        successive_changes({"times": times, "per_realisation": {"msd": msd[:1], "C_ell": cl[:1],
                                                                 "shot_noise": np.zeros((1, 3))}})


def test_ensemble_difference_pairs_realisations_and_times():
    rng = np.random.default_rng(5)
    n = 30
    k_true = rng.uniform(4.0, 8.0, size=n)          # one diffusion coefficient per field realisation
    c1 = rng.uniform(100.0, 900.0, size=n)
    times_a, times_b = np.array([10.0, 20.0, 40.0, 80.0]), np.array([20.0, 40.0])

    def ensemble(indices, times, offset):
        cl = np.zeros((indices.size, times.size, 2))
        cl[:, :, 1] = c1[indices, None] + offset
        return {"times": times, "per_realisation": {
            "indices": indices, "msd": 6 * (k_true[indices, None] + offset) * times,
            "C_ell": cl + 1.0, "shot_noise": np.ones((indices.size, times.size))}}

    # the reference holds realisations 10..29 in reverse order; 20 are shared
    out = ensemble_difference(ensemble(np.arange(0, 30), times_a, 0.0),
                              ensemble(np.arange(29, 9, -1), times_b, 0.0))
    assert out["times"] == [20.0, 40.0] and out["indices"] == list(range(10, 30))
    for name in ("diffusion", "cl"):   # same fields, same values: no difference at all
        np.testing.assert_allclose(out[name]["difference"], 0.0, atol=1e-9)
        np.testing.assert_allclose(out[name]["err"], 0.0, atol=1e-9)
    assert out["cl"]["spread"][0] == pytest.approx(np.std(c1[10:], ddof=1) / math.sqrt(20))
    shifted = ensemble_difference(ensemble(np.arange(0, 30), times_a, 0.5),
                                  ensemble(np.arange(29, 9, -1), times_b, 0.0))
    np.testing.assert_allclose(shifted["diffusion"]["difference"], 0.5)
    np.testing.assert_allclose(shifted["cl"]["difference"], 0.5)
    with pytest.raises(ValueError, match="share fewer"):
        ensemble_difference(ensemble(np.arange(0, 5), times_a, 0.0), ensemble(np.arange(10, 15), times_b, 0.0))


def test_plateau_fits_tell_a_plateau_from_a_tail():
    rng = np.random.default_rng(17)
    n, times = 200, 10.0 * 2.0 ** np.arange(9)
    k_field = rng.normal(6.0, 0.3, size=(n, 1))    # the plateau differs from field to field
    wobble = rng.normal(0.0, 0.05, size=(n, times.size)) * times   # noise of the msd slopes
    plateau = 6 * (k_field * times - 40.0) + np.cumsum(wobble, axis=1)
    out = plateau_fits(plateau, times, 160.0)
    assert out["first_end"] == 160.0 and out["n_intervals"] == 5
    assert out["constant"]["ndof"] == 4 and out["tail"]["ndof"] == 3
    assert out["constant"]["p_value"] > 1e-3
    assert abs(out["constant"]["K"] - 6.0) < 4 * out["constant"]["K_err"] + 0.05
    assert abs(out["tail"]["c"]) < 4 * out["tail"]["c_err"]
    # D(t) = K - b/t - c/sqrt(t): the slopes creep up by 1/sqrt(2) per doubling
    tail = plateau - 6 * 8.0 * np.sqrt(times)
    out = plateau_fits(tail, times, 160.0)
    assert out["constant"]["p_value"] < 1e-6 and out["constant"]["K"] < 6.0 - 0.1
    assert out["tail"]["p_value"] > 1e-3
    assert out["tail"]["K"] == pytest.approx(6.0, abs=4 * out["tail"]["K_err"] + 0.05)
    assert out["tail"]["c"] == pytest.approx(8.0, abs=4 * out["tail"]["c_err"])
    # no plateau: the slope grows by 0.1 per doubling
    creep = plateau + 6 * 0.1 * times * np.log2(times / times[-1])
    out = plateau_fits(creep, times, 160.0)
    assert out["logarithmic"]["p_value"] > 1e-3 and out["constant"]["p_value"] < 1e-6
    assert out["logarithmic"]["per_doubling"] == pytest.approx(
        0.1, abs=4 * out["logarithmic"]["per_doubling_err"])
    # over [t/2, t] the slope of 6 g t log2(t/T) is g (log2(t/T) + 1): 0.1 above K at t = T
    assert out["logarithmic"]["K"] == pytest.approx(
        plateau_fits(plateau, times, 160.0)["constant"]["K"] + 0.1, abs=0.01)
    with pytest.raises(ValueError, match="three intervals"):
        plateau_fits(tail, times, 1280.0)
    with pytest.raises(ValueError, match="realisations"):
        plateau_fits(tail[:6], times, 160.0)


def test_joint_plateau_fits_combine_ensembles_of_the_same_fields():
    rng = np.random.default_rng(23)
    n = 120
    k_field = rng.normal(6.0, 0.3, size=(n, 1))    # shared by both ensembles of a realisation

    def ensemble(times, indices, particle_noise):
        times = np.asarray(times, dtype=float)
        wobble = rng.normal(0.0, particle_noise, size=(n, times.size)) * times
        # a slope that creeps up by 0.1 per doubling (log2), on top of each field's plateau
        msd = 6 * (k_field * times - 40.0 + 0.1 * times * np.log2(times / 10240.0)) \
            + np.cumsum(wobble, axis=1)
        return {"times": times.tolist(), "per_realisation": {"msd": msd[indices], "indices": indices}}

    fine = ensemble(10.0 * 2.0 ** np.arange(9), np.arange(n), 0.03)        # to 2560
    coarse = ensemble(10.0 * 2.0 ** np.arange(11), np.arange(5, n), 0.06)  # to 10240, fewer
    # one ensemble alone is plateau_fits over its common realisations
    alone = joint_plateau_fits([coarse], 160.0)
    reference = plateau_fits(coarse["per_realisation"]["msd"], coarse["times"], 160.0)
    for model in ("constant", "tail", "logarithmic"):
        assert alone[model]["K"] == pytest.approx(reference[model]["K"], rel=1e-12)
        assert alone[model]["p_value"] == pytest.approx(reference[model]["p_value"], rel=1e-9)
    joint = joint_plateau_fits([fine, coarse], 160.0)
    assert joint["indices"] == list(range(5, n)) and joint["n_intervals"] == [5, 7]
    growth = joint["logarithmic"]
    assert growth["ndof"] == 12 - 2 and growth["p_value"] > 1e-3
    assert growth["per_doubling"] == pytest.approx(0.1, abs=4 * growth["per_doubling_err"])
    # the fine sky sharpens the early slopes, so the growth is known better than from either
    assert growth["per_doubling_err"] < reference["logarithmic"]["per_doubling_err"]
    assert joint["constant"]["p_value"] < 1e-6
    with pytest.raises(ValueError, match="at least one"):
        joint_plateau_fits([], 160.0)


def test_resolved_multipoles_stops_at_the_first_noisy_multipole():
    cl = np.array([[9.0, 9.0, 1.0, 1.0, 1.0, 1.0], [9.0, 9.0, 1.0, 1.0, 1.0, 1.0]])
    err = np.array([[0.0, 0.0, 0.1, 0.3, 0.1, 0.1], [0.0, 0.0, 0.6, 0.1, 0.1, 0.1]])
    assert resolved_multipoles(cl, err, 0.5) == [5, 1]
    assert resolved_multipoles(cl, err, 0.2) == [2, 1]


def test_time_dependent_comparison_recovers_the_alpha_of_an_exact_evolution():
    spectrum = make_spectrum("white", K0, K1)
    times, diffusion = (5.0, 10.0, 20.0), [2.0, 2.5, 3.0]
    exact = time_dependent_spectrum(spectrum, 60.0, LMAX_THEORY, times, kg2=1.0)
    cl = np.zeros((3, LMAX_THEORY + 1))
    cl[:, 1:] = np.array(diffusion)[:, None] / K0 * exact
    settings = SimulationSettings(nside=8, times=times, n_modes=16, spectrum="white", k0=K0, k1=K1)
    summary = {"times": list(times), "C_ell": cl.tolist(), "C_ell_err": (0.02 * cl + 1e-30).tolist(),
               "diffusion_coefficient": diffusion, "settings": settings.as_dict()}
    out = time_dependent_comparison(summary, [30.0, 60.0, 120.0], lmax_theory=LMAX_THEORY)
    assert out["best_alpha"] == [60.0, 60.0, 60.0] and out["ndof"] == [14, 14, 14]
    assert np.all(np.array(out["chi2"])[:, 1] < 1e-12) and min(out["best_p_value"]) > 0.999


def _analysis(steady_from, fixed_p, free_rows):
    """A steady_analysis()-like dict with what paper_claims reads."""
    def conv(ell, time):
        return {"ell": ell, "time": time, "steady": time is not None, "resolved": True}

    return {"spectrum": "white", "k0": 1e-3, "k1": 1e2, "fit_time": 80.0,
            "convergence": [conv(1, steady_from), conv(2, steady_from)],
            "diffusion": {"K_plateau": 6.0},
            "fits": [{"lmax_theory": 24, "amplitude": "diffusion", "alpha": 55.0, "interval68": [45.0, 65.0],
                      "p_value": fixed_p, "kg2": 6000.0},
                     {"lmax_theory": 24, "amplitude": "free", "alpha": 30.0, "interval68": [20.0, 40.0],
                      "p_value": 1e-3, "kg2": 600.0}],
            "fits_by_time": free_rows}


def test_paper_claims_follow_the_tables():
    free_at_50 = [{"time": 160.0, "alpha": 48.0, "interval68": [None, 70.0], "p_value": 0.3}]
    steady, holds, _ = paper_claims(_analysis(10.0, 0.5, []))
    assert steady["verdict"] == "holds" and holds["verdict"] == "holds"
    late, shape, larger_alpha = paper_claims(_analysis(80.0, 1e-6, free_at_50))
    assert late["verdict"] == "fails" and "C_1 steady from Omega t = 80" in late["evidence"]
    assert shape["verdict"] == "shape only" and "[160]" in shape["evidence"]
    assert "amplitude 0.10 x K/k0" in shape["evidence"]        # 600 / (6.0 / 1e-3)
    # the analytic steady state: alpha = 200 lies below alpha = 50 and falls faster
    assert larger_alpha["verdict"] == "holds"
    _, fails, _ = paper_claims(_analysis(None, 1e-6, [dict(free_at_50[0], p_value=0.01)]))
    assert fails["verdict"] == "fails"
    text = format_claims([late, shape], width=40).splitlines()
    assert text[0] == "1. C_l steady by Omega t ~ 10: FAILS" and text[1].startswith("   C_1 steady")
    assert max(len(line) for line in text if line.startswith("   ")) <= 40   # evidence wrapped


def test_steady_time_needs_every_resolved_multipole_steady():
    def row(ell, time, resolved=True):
        return {"ell": ell, "time": time, "steady": time is not None, "resolved": resolved}

    times = [10.0, 20.0, 40.0, 80.0]
    assert steady_time([row(1, 20.0), row(2, 40.0), row(16, None, resolved=False)], times) == (40.0, True)
    assert steady_time([row(1, None), row(4, 20.0)], times) == (80.0, False)


def test_steady_time_report_names_the_rule_and_the_requested_times():
    """Issue 22 and 19: the steady time with its rule, per multipole, in the times as typed
    (640, not the 640.0000000000001 the step grid reached)."""
    from qltlib.validation.convergence import STEADY_TIME_RULE, steady_time_report

    requested = [10.0, 20.0, 40.0, 80.0, 160.0]
    reached = [t * (1 + 2e-16) + 1e-13 for t in requested]
    rng = np.random.default_rng(5)
    n_real, lmax = 40, 3
    cl = np.ones((n_real, len(requested), lmax + 1))
    cl[:, :, 1] = [1.0, 2.0, 3.0, 3.0, 3.0]                  # the dipole settles at t = 40
    cl += 0.01 * rng.normal(size=cl.shape)
    summary = {"times": reached, "settings": {"times": requested},
               "per_realisation": {"C_ell": cl, "shot_noise": np.zeros((n_real, len(requested)))}}
    report = steady_time_report(summary)
    assert report["steady_time"] == 40.0 and report["last_time"] == 160.0
    assert report["steady_time_rule"] == STEADY_TIME_RULE
    rows = {row["ell"]: row for row in report["steady_time_by_ell"]}
    assert set(rows) == {1, 2} and rows[1]["time"] == 40.0 and rows[2]["time"] == 10.0
    assert rows[1]["late_time"] == 160.0 and rows[1]["p_value"] >= 0.05
    assert ensemble_steady_time(summary) == (pytest.approx(40.0, rel=1e-12), True)
    # never steady: null, and the last time is the fallback
    cl[:, :, 1] = np.linspace(1.0, 5.0, len(requested)) + 0.01 * rng.normal(size=(n_real, 5))
    assert steady_time_report(summary)["steady_time"] is None
