"""The one-step predictor against an ensemble (qltlib.validation.one_step_check): chi^2, ratios,
K against the plateau, paired changes, truncation, the recursion in time, QLT beside it."""
import math

import numpy as np
import pytest
from scipy import stats

from qltlib.particles.one_step import OneStepMeasurement, one_step_recursion, one_step_steady_state
from qltlib.particles.transfer import TransferSettings
from qltlib.validation.one_step_check import (
    chapman_kolmogorov,
    chi_square,
    drift_per_doubling,
    mean_two_steps,
    paired_change,
    qlt_comparison,
    ratios,
    recursion_in_time,
    simulation_reference,
    steady_comparison,
    step_check,
    truncation_ratios,
    two_step_comparison,
)

L = 4
N_THETA = 6


def _measurement(alpha=100.0, n_real=12, seed=0, nu=0.05, coupling=0.05, scale=1.0, indices=None):
    """Synthetic per-realisation terms on l = 0..N_THETA-1: a diagonal M with weak coupling,
    positive S, negative X, and (m1, P1) of a Markov velocity exp(-nu s) with scatter."""
    settings = TransferSettings(alpha=alpha, lmax=L, n_theta=N_THETA)
    rng = np.random.default_rng(seed)
    dt = settings.delta_t
    matrix = np.zeros((n_real, N_THETA, L + 1))
    diag = 0.3 + 0.4 * rng.random((n_real, L))
    for r in range(n_real):
        matrix[r, 1:L + 1, 1:L + 1] = np.diag(diag[r]) + coupling * rng.random((L, L))
        matrix[r, 0, 0] = 1.0
    source = scale * (1.0 + rng.random((n_real, N_THETA))) / (1 + np.arange(N_THETA)) ** 2
    cross = -scale * 0.1 * rng.random((n_real, N_THETA))
    p1 = math.exp(-nu * dt) * (1 + 0.01 * rng.normal(size=n_real))
    m1 = -(1 - math.exp(-nu * dt)) / nu * (1 + 0.01 * rng.normal(size=n_real))
    indices = np.arange(n_real) if indices is None else np.asarray(indices)
    return OneStepMeasurement(settings=settings, matrix=matrix, source=source, cross=cross, m1=m1,
                              p1=p1, msd1=np.ones(n_real), seconds=np.ones(n_real), indices=indices)


def _steady_of_means(meas, lmax=L):
    sl = slice(1, lmax + 1)
    return one_step_steady_state(meas.matrix[:, sl, sl].mean(axis=0), meas.source[:, sl].mean(axis=0),
                                 meas.cross[:, sl].mean(axis=0), meas.m1.mean(), meas.p1.mean())


def _reference(c, c_err, times=(1.0,), plateau=None, plateau_err=None):
    c = np.atleast_2d(c)
    return {"times": np.asarray(times, dtype=float), "C": c[-1], "C_err": np.asarray(c_err),
            "C_cov": None, "C_t": c, "C_t_err": np.tile(c_err, (c.shape[0], 1)),
            "plateau": plateau, "plateau_err": plateau_err}


def test_chi_square_and_ratios():
    model, data = np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.5, 2.0])
    out = chi_square(model, [0.3, 0.0, 0.4], data, [0.4, 0.5, 0.3], cov=np.diag([0.25, 0.25, 0.25]))
    assert out["chi2"] == pytest.approx(0.0 + 1.0 + 4.0)
    assert out["ndof"] == 3 and out["p"] == pytest.approx(stats.chi2.sf(5.0, 3))
    assert out["chi2_cov"] == pytest.approx((0 + 0.25 + 1.0) / 0.25)
    r = ratios(model, [0.1, 0.2, 0.3], data, [0.1, 0.25, 0.2], pick=(1, 3))
    assert set(r) == {1, 3}
    assert r[3][0] == pytest.approx(1.5)
    assert r[3][1] == pytest.approx(1.5 * math.hypot(0.1, 0.1))


def test_exact_prediction_has_zero_chi2_and_unit_ratios():
    meas = _measurement()
    exact = _steady_of_means(meas)
    reference = _reference(exact["C"], 0.05 * exact["C"], plateau=exact["K"], plateau_err=0.1)
    row = steady_comparison(meas, reference, lmax=L, pick=(1, 2, 4))
    assert row["chi2"] == pytest.approx(0.0, abs=1e-20) and row["p"] == pytest.approx(1.0)
    assert row["ndof"] == L and "chi2_cov" not in row      # no simulated covariance given
    assert all(v[0] == pytest.approx(1.0) for v in row["ratio"].values())
    assert row["K"] == pytest.approx(exact["K"]) and row["K_pull"] == pytest.approx(0.0, abs=1e-12)
    # the Markov velocity of the synthetic terms: K = 1/(3 nu) up to the 1 % scatter
    assert row["K"] == pytest.approx(1 / (3 * 0.05), rel=0.05)
    assert np.all(row["C_err"] > 0) and row["K_err"] > 0
    assert row["m1"] == pytest.approx(meas.m1.mean()) and row["M11"] == pytest.approx(
        meas.matrix[:, 1, 1].mean())


def test_a_wrong_simulation_is_rejected_and_the_pull_has_its_sign():
    meas = _measurement()
    exact = _steady_of_means(meas)
    data = 1.5 * exact["C"]
    reference = _reference(data, 0.01 * data, plateau=exact["K"] - 1.0, plateau_err=0.01)
    row = steady_comparison(meas, reference, lmax=L)
    err = np.hypot(row["C_err"], reference["C_err"])
    assert row["chi2"] == pytest.approx(np.sum(((exact["C"] - data) / err) ** 2))
    assert row["p"] < 1e-6
    assert row["chi2_high"] == pytest.approx(np.sum(((exact["C"] - data) / err)[1:] ** 2))
    assert row["ratio"][1][0] == pytest.approx(1 / 1.5)
    assert row["K_pull"] > 0
    # an explicit reference K replaces the plateau
    other = steady_comparison(meas, reference, lmax=L, k_reference=(exact["K"] + 1.0, 0.01))
    assert other["K_pull"] < 0 and other["K_reference"] == pytest.approx(exact["K"] + 1.0)
    # with the simulated covariance the full chi2 is given too
    reference["C_cov"] = np.diag(reference["C_err"] ** 2)
    assert steady_comparison(meas, reference, lmax=L)["chi2_cov"] > 0


def test_an_ensemble_not_yet_steady_is_compared_with_the_recursion_at_its_own_time():
    meas = _measurement()
    sl = slice(1, L + 1)
    c, _ = one_step_recursion(meas.matrix[:, sl, sl].mean(axis=0), meas.source[:, sl].mean(axis=0),
                              meas.cross[:, sl].mean(axis=0), meas.m1.mean(), meas.p1.mean(), 3)
    dt = meas.settings.delta_t
    reference = dict(_reference(c[3], 0.05 * c[3]), time=3 * dt)
    row = steady_comparison(meas, reference, lmax=L, at_reference_time=True)
    assert row["n_steps"] == 3 and row["chi2"] == pytest.approx(0.0, abs=1e-20)
    assert np.all(row["C_err"] > 0)
    # the fixed point lies elsewhere, and a time between two steps is refused
    assert steady_comparison(meas, reference, lmax=L)["chi2"] > 1
    with pytest.raises(ValueError, match="not a whole number of steps"):
        steady_comparison(meas, dict(reference, time=2.5 * dt), lmax=L, at_reference_time=True)


def test_two_step_closure_is_the_markov_one_when_the_displacement_forgets_as_the_velocity():
    import dataclasses

    a = _measurement(alpha=100.0)
    exact = _steady_of_means(a)
    reference = _reference(exact["C"], 0.05 * exact["C"], plateau=exact["K"], plateau_err=0.1)
    # a double step whose mean displacement is m_1 (1 + P_1): the Markov series exactly
    b = dataclasses.replace(_measurement(alpha=200.0), m1=a.m1 * (1 + a.p1.mean()))
    row = two_step_comparison(a, b, reference, lmax=L)
    assert row["q"] == pytest.approx(a.p1.mean(), rel=1e-12)
    assert row["K"] == pytest.approx(exact["K"], rel=1e-10) and row["chi2"] == pytest.approx(0, abs=1e-16)
    assert (row["from"], row["to"], row["paired_realisations"]) == (100.0, 200.0, 12)
    # a displacement that keeps more memory than the velocity raises K and the dipole
    longer = dataclasses.replace(b, m1=1.02 * a.m1 * (1 + a.p1.mean()))
    more = two_step_comparison(a, longer, reference, lmax=L)
    assert more["K"] > row["K"] and more["ratio"][1][0] > 1
    with pytest.raises(ValueError, match="2 Delta T"):
        two_step_comparison(a, _measurement(alpha=300.0), reference, lmax=L)


def test_paired_change_matches_realisations_by_number():
    a = _measurement(seed=1)
    # the same terms with the realisations in another order: no change, and no error
    order = np.random.default_rng(5).permutation(a.realisations)
    shuffled = OneStepMeasurement(settings=a.settings, indices=a.indices[order],
                                  **{n: getattr(a, n)[order] for n in
                                     ("matrix", "source", "cross", "m1", "p1", "msd1", "seconds")})
    same = paired_change(a, shuffled, lmax=L, pick=(1, 2))
    assert same["paired_realisations"] == a.realisations
    assert same["dK"] == pytest.approx((0.0, 0.0), abs=1e-12)
    assert all(v == pytest.approx((0.0, 0.0), abs=1e-12) for v in same["dlnC"].values())
    # doubling S and X doubles every C_l exactly (paired: no error), K unchanged
    doubled = OneStepMeasurement(settings=a.settings, indices=a.indices, matrix=a.matrix,
                                 source=2 * a.source, cross=2 * a.cross, m1=a.m1, p1=a.p1,
                                 msd1=a.msd1, seconds=a.seconds)
    change = paired_change(a, doubled, lmax=L, pick=(1, 2, 4))
    assert all(v == pytest.approx((1.0, 0.0), abs=1e-10) for v in change["dlnC"].values())
    assert change["dK"][0] == pytest.approx(0.0, abs=1e-12)


def test_paired_change_uses_only_shared_realisations():
    a = _measurement(seed=2, n_real=10)
    b = _measurement(alpha=200.0, seed=3, n_real=6, indices=np.arange(4, 10))
    change = paired_change(a, b, lmax=L, pick=(1,))
    assert change["paired_realisations"] == 6 and (change["from"], change["to"]) == (100.0, 200.0)
    sub = OneStepMeasurement(settings=a.settings, indices=a.indices[4:],
                             **{n: getattr(a, n)[4:] for n in
                                ("matrix", "source", "cross", "m1", "p1", "msd1", "seconds")})
    expected = _steady_of_means(b)["K"] - _steady_of_means(sub)["K"]
    assert change["dK"][0] == pytest.approx(expected)
    with pytest.raises(ValueError, match="shared"):
        paired_change(a, _measurement(seed=4, n_real=3, indices=[20, 21, 22]), lmax=L)


def test_drift_of_a_markov_velocity_vanishes_in_k():
    # (R4) is exact for a Markov velocity: K does not depend on Delta T (no scatter here)
    runs = {a: _measurement(alpha=a, seed=7, nu=0.2) for a in (400.0, 100.0, 200.0)}
    for run in runs.values():
        run.m1[:] = -(1 - math.exp(-0.2 * run.settings.delta_t)) / 0.2
        run.p1[:] = math.exp(-0.2 * run.settings.delta_t)
    drifts = drift_per_doubling(runs, lmax=L, pick=(1,))
    assert [(d["from"], d["to"]) for d in drifts] == [(100.0, 200.0), (200.0, 400.0)]
    assert all(d["dK"] == pytest.approx((0.0, 0.0), abs=1e-10) for d in drifts)


def test_truncation_ratios():
    uncoupled = _measurement(coupling=0.0)
    assert all(v == pytest.approx(1.0) for r in truncation_ratios(uncoupled, L, (2, 3)).values()
               for v in r.values())
    coupled = truncation_ratios(_measurement(coupling=0.2), L, (2,), ells=(1, 2, 4))
    assert set(coupled[2]) == {1, 2} and coupled[2][2] < 1.0


def test_recursion_against_itself_in_time():
    meas = _measurement(alpha=100.0)                 # Delta T = 1
    sl = slice(1, L + 1)
    c, m = one_step_recursion(meas.matrix[:, sl, sl].mean(axis=0), meas.source[:, sl].mean(axis=0),
                              meas.cross[:, sl].mean(axis=0), meas.m1.mean(), meas.p1.mean(), 4)
    times = [1.0, 2.5, 4.0]                          # 2.5 is no multiple of Delta T
    sim = np.array([c[1], c[2], c[4]])
    reference = _reference(sim, 0.1 * sim[-1], times=times)
    ck = chapman_kolmogorov(meas, reference, lmax=L, pick=(1, 3))
    assert sorted(ck) == [1.0, 4.0]
    assert all(v[0] == pytest.approx(1.0) and v[1] > 0 for r in ck.values() for v in r.values())
    in_time = recursion_in_time(meas, reference, lmax=L)
    assert sorted(in_time) == [1.0, 4.0]
    assert in_time[4.0]["C1_ratio"] == pytest.approx(1.0) and in_time[4.0]["m"] == pytest.approx(m[4])


def _summary(n_real=20, lmax=6, times=(10.0, 20.0), seed=0, k0=1e-2, plateau=2.0):
    rng = np.random.default_rng(seed)
    signal = 1 + rng.random((n_real, len(times), lmax + 1))
    noise = 0.1 * rng.random((n_real, len(times)))
    sub = signal - 0.0                                   # per-realisation C_l with shot noise
    mean = (sub - noise[..., None]).mean(axis=0)
    err = (sub - noise[..., None]).std(axis=0, ddof=1) / math.sqrt(n_real)
    return {"times": list(times), "C_ell": mean.tolist(), "C_ell_err": err.tolist(),
            "realisations": n_real, "diffusion_plateau": plateau, "diffusion_plateau_err": 0.1,
            "diffusion_coefficient": [plateau] * len(times),
            "diffusion_coefficient_err": [0.1] * len(times),
            "settings": {"n_modes": 64, "spectrum": "white", "k0": k0, "k1": 10.0,
                         "times": list(times)},
            "per_realisation": {"C_ell": sub, "shot_noise": noise}}


def test_simulation_reference():
    summary = _summary()
    ref = simulation_reference(summary, lmax=4)
    assert ref["time"] == 20.0 and list(ref["ell"]) == [1, 2, 3, 4]
    assert np.allclose(ref["C"], np.array(summary["C_ell"])[-1, 1:5])
    assert ref["C_t"].shape == (2, 4)
    assert np.allclose(np.sqrt(np.diag(ref["C_cov"])), ref["C_err"])
    assert ref["plateau"] == 2.0 and ref["n_modes"] == 64 and ref["realisations"] == 20
    first = simulation_reference(summary, lmax=4, time=10.0)
    assert np.allclose(first["C"], np.array(summary["C_ell"])[0, 1:5])
    with pytest.raises(ValueError, match="multipoles up to 6"):
        simulation_reference(summary, lmax=7)


class _StubTheory:
    """Steady state for K|G|^2 = 1: C_l(alpha) = 1 / (1 + l(l+1)/alpha), l = 0..16."""

    alpha_range = (10.0, 1000.0)

    def cl(self, alpha):
        ell = np.arange(17)
        return 1.0 / (1.0 + ell * (ell + 1) / alpha)


def test_qlt_comparison_recovers_alpha_and_compares_on_every_multipole():
    theory = _StubTheory()
    k0, plateau, alpha_true = 1e-2, 2.0, 80.0
    kg2 = plateau / k0
    cl = kg2 * theory.cl(alpha_true)
    summary = {"times": [40.0], "C_ell": [cl.tolist()], "C_ell_err": [(0.02 * cl).tolist()],
               "realisations": 30, "diffusion_plateau": plateau, "diffusion_plateau_err": 0.01,
               "diffusion_coefficient": [plateau], "diffusion_coefficient_err": [0.01],
               "settings": {"spectrum": "white", "k0": k0, "k1": 10.0, "times": [40.0],
                            "n_modes": 64}}
    fixed = qlt_comparison(summary, amplitude="diffusion", lmax=16, theory=theory)
    assert fixed["alpha"] == pytest.approx(alpha_true, rel=1e-3)
    assert fixed["kappa"] == pytest.approx(1.0) and fixed["ndof"] == 15
    assert fixed["chi2"] < 1e-3 and fixed["ratio"][1][0] == pytest.approx(1.0, rel=1e-4)
    # standard QLT's own K at the best alpha (white spectrum of the settings)
    from qltlib.theory.spectrum import make_spectrum
    from qltlib.theory.transport import standard_qlt_rates

    expected_k = standard_qlt_rates(make_spectrum("white", k0, 10.0), fixed["alpha"] / 10.0).K
    assert fixed["K_qlt"] == pytest.approx(expected_k)
    # half the amplitude: the fixed one fails, the free one finds kappa = 1/2
    summary["C_ell"] = [(0.5 * cl).tolist()]
    summary["C_ell_err"] = [(0.01 * cl).tolist()]
    wrong = qlt_comparison(summary, amplitude="diffusion", lmax=16, theory=theory)
    free = qlt_comparison(summary, amplitude="free", lmax=16, theory=theory)
    assert wrong["p"] < 1e-6
    assert free["kappa"] == pytest.approx(0.5, rel=1e-3) and free["ndof"] == 14 and free["p"] > 0.99


def test_mean_over_two_steps_is_exact_for_a_markov_velocity_only():
    nu = 0.1
    one, two = _measurement(alpha=100.0, seed=8), _measurement(alpha=200.0, seed=9)
    for run in (one, two):
        run.m1[:] = -(1 - math.exp(-nu * run.settings.delta_t)) / nu
        run.p1[:] = math.exp(-nu * run.settings.delta_t)
    out = mean_two_steps(one, two)
    assert out["excess"] == pytest.approx((0.0, 0.0), abs=1e-12)
    assert out["predicted"] == pytest.approx(out["measured"]) and out["paired_realisations"] == 12
    # a velocity correlation that falls faster at the second lag: (R2) overshoots |m|
    two.m1[:] *= 0.9
    assert mean_two_steps(one, two)["excess"][0] == pytest.approx(1 / 0.9 - 1)
    with pytest.raises(ValueError, match="2 Delta T"):
        mean_two_steps(one, _measurement(alpha=300.0))


def test_a_double_step_may_miss_twice_the_step_by_one_integration_step():
    # the half step of qlt spectrum lies on the integration grid: floor(n/2) dt for n steps
    from qltlib.particles.transfer import nominal_step

    one = _measurement(alpha=100.0, seed=8)
    dt = nominal_step(one.settings)           # above step_fraction/k1: k_max lies below k1
    assert dt > one.settings.step_fraction / one.settings.k1
    for alpha_two, accepted in ((200.0 + 0.999 * dt * one.settings.k1, True),
                                (200.0 + 1.5 * dt * one.settings.k1, False)):
        two = _measurement(alpha=alpha_two, seed=9)
        if accepted:
            assert mean_two_steps(one, two)["paired_realisations"] == 12
        else:
            with pytest.raises(ValueError, match="2 Delta T"):
                mean_two_steps(one, two)


def test_step_check_passes_what_does_not_move_and_names_what_does():
    import dataclasses

    nu = 0.1
    half, full = _measurement(alpha=100.0, seed=8), _measurement(alpha=200.0, seed=8)
    for run in (half, full):               # a Markov velocity: K and the mean are exact
        run.m1[:] = -(1 - math.exp(-nu * run.settings.delta_t)) / nu
        run.p1[:] = math.exp(-nu * run.settings.delta_t)
    same = step_check(half, full, lmax=L, ells=(1, 2))
    assert same["verdict"] == "passed" and same["settled"]
    assert same["moved"] == [] and same["unresolved"] == []
    assert same["dlnK"] == pytest.approx((0.0, 0.0), abs=1e-10)
    assert same["mean_excess"] == pytest.approx((0.0, 0.0), abs=1e-12)
    assert (same["alpha_half"], same["alpha"], same["paired_realisations"]) == (100.0, 200.0, 12)
    assert same["K_half"] == pytest.approx(_steady_of_means(half)["K"])
    # 5 % more source everywhere: within the 10 % tolerance; 30 % more: every C_l moved
    for factor, moved in ((1.05, []), (1.3, ["C_1", "C_2"])):
        more = dataclasses.replace(full, source=factor * full.source, cross=factor * full.cross)
        check = step_check(half, more, lmax=L, ells=(1, 2))
        assert check["moved"] == moved and check["settled"] == (not moved)
        assert check["verdict"] == ("failed" if moved else "passed")
    # a displacement with more memory than the velocity: K, the dipole (through m_inf X_1)
    # and the mean moved
    longer = dataclasses.replace(full, m1=1.3 * full.m1)
    assert step_check(half, longer, lmax=L, ells=(1,))["moved"] == ["K", "C_1", "mean"]
    # a tolerance far below a change without scatter: the change moved
    tiny = dataclasses.replace(full, source=1.001 * full.source, cross=1.001 * full.cross)
    assert step_check(half, tiny, lmax=L, ells=(1,), tolerance=1e-6)["moved"] == ["C_1"]
    # a source that scatters by 50 % between realisations: nothing moved beyond two errors,
    # but two errors exceed the tolerance
    rng = np.random.default_rng(3)
    noisy_source = full.source * (1 + 0.5 * rng.standard_normal((full.realisations, 1)))
    noisy = step_check(half, dataclasses.replace(full, source=noisy_source), lmax=L, ells=(1,))
    assert noisy["moved"] == [] and "C_1" in noisy["unresolved"]
    assert noisy["verdict"] == "unresolved" and not noisy["settled"]


def test_step_check_on_the_stored_scans_fails_where_the_prediction_misses_the_ensembles():
    """What qlt spectrum's help says: on the white spectrum the check passes at the default
    step, on the other spectra it fails at the steps where the prediction misses (chapter 9)."""
    from qltlib.particles.one_step import load_one_step
    from qltlib.paths import DATA_DIR

    def check(name, a, b):
        runs = [load_one_step(DATA_DIR / "one_step" / f"{name}_alpha{x}.npz").without_floor()
                for x in (a, b)]
        return step_check(*runs)

    assert check("white", "800", "1600")["moved"] == ["C_1"]
    assert check("white", "1600_grid68_modes256", "3200_grid68_modes256")["verdict"] == "passed"
    for a, b in (("1600", "3200"), ("3200", "6400")):            # 1024 modes, 34 rings
        assert check("white", a, b)["verdict"] == "unresolved"
    for name, a, b in (("logflat", "400", "800"), ("logflat", "800", "1600"),
                       ("kolmogorov", "12800_modes256", "25600_modes256"),
                       ("kolmogorov", "32000_modes256", "64000_modes256"),
                       ("flat3d", "800", "1600"), ("flat3d", "12800_modes256", "25600_modes256"),
                       ("flat3d", "32000_modes256", "64000_modes256")):
        assert check(name, a, b)["verdict"] == "failed", (name, a)
    # log-flat at 6400 agrees with its ensemble: the check does not fail, the high l unresolved
    late = check("logflat", "3200_modes256", "6400_modes256")
    assert late["verdict"] == "unresolved" and late["moved"] == []


# ---------------------------------------------------------------------------------------------
# the quenched closure against the stored ensembles
# ---------------------------------------------------------------------------------------------

def _stored(name):
    from qltlib.particles.one_step import load_one_step
    from qltlib.paths import DATA_DIR

    return load_one_step(DATA_DIR / "one_step" / "quenched" / f"{name}.npz").without_floor()


def _ensemble(run):
    from qltlib.particles.statistics import summarize
    from qltlib.paths import DATA_DIR

    return summarize(DATA_DIR / "simulation" / run)


def test_where_the_step_outlasts_the_memory_both_closures_agree():
    # log-flat at alpha = 6400: P_parallel ~ 0.04, the two ends of memory give one answer
    from qltlib.validation.one_step_check import quenched_comparison

    meas = _stored("logflat_alpha6400_modes256")
    ref = simulation_reference(_ensemble("logflat_k0-1e-3_k1-1e2_t1280"))
    markov, quenched = steady_comparison(meas, ref), quenched_comparison(meas, ref)
    assert quenched["P_parallel"] < 0.1 and quenched["realisations"] == 20
    assert abs(quenched["K"] / markov["K"] - 1) < 0.05
    assert abs(quenched["ratio"][1][0] / markov["ratio"][1][0] - 1) < 0.05


def test_kolmogorov_closures_bracket_the_ensemble_field_by_field():
    # at alpha = 12800 the Markov closure falls short of the simulated K and the quenched one
    # overshoots it, and each realisation's quenched K follows its own field
    from qltlib.validation.one_step_check import quenched_comparison, realisation_pairs

    meas = _stored("kolmogorov_alpha12800_modes256")
    summary = _ensemble("kolmogorov_k0-1e-3_k1-1e2_t2560")
    ref = simulation_reference(summary)
    markov, quenched = steady_comparison(meas, ref), quenched_comparison(meas, ref)
    assert markov["K"] + 2 * markov["K_err"] < ref["plateau"] < quenched["K"] - quenched["K_err"]
    assert quenched["P_parallel"] > 2 * quenched["P1"]
    pairs = realisation_pairs(meas, summary)
    assert pairs["indices"].tolist() == list(range(20)) and pairs["time"] == pytest.approx(2560)
    assert pairs["correlation"]["K_quenched"] > 0.3
    assert np.allclose(pairs["K_quenched"], meas.quenched()["K_r"])


def test_realisation_pairs_refuse_other_fields():
    from qltlib.validation.one_step_check import realisation_pairs

    meas = _stored("kolmogorov_alpha3200_modes256")
    with pytest.raises(ValueError, match="not those of the measurement: spectrum"):
        realisation_pairs(meas, _ensemble("flat3d_k0-1e-3_k1-1e2_t2560"))


def test_quenched_paired_change_is_the_change_of_the_realisations_mean():
    from qltlib.validation.one_step_check import paired_change

    a, b = _stored("kolmogorov_alpha12800_modes256"), _stored("kolmogorov_alpha25600_modes256")
    change = paired_change(a, b, closure="quenched")
    qa, qb = a.quenched(), b.quenched()
    assert change["closure"] == "quenched" and change["paired_realisations"] == 20
    assert change["dK"][0] == pytest.approx(qb["K"] - qa["K"], rel=1e-10)
    assert change["dlnC"][1][0] == pytest.approx(qb["C"][0] / qa["C"][0] - 1, rel=1e-10)
    # paired: the scatter between fields cancels, so the error is below the unpaired one
    assert change["dK"][1] < math.hypot(qa["K_err"], qb["K_err"])
    with pytest.raises(ValueError, match="closure must be"):
        paired_change(a, b, closure="mean-field")


def test_kolmogorov_quenched_closure_stops_moving_where_the_markov_one_still_rises():
    """What qlt spectrum's help and chapter 9 say: from alpha 25600 to 64000 the quenched K and
    dipole move by less than the step check's tolerance, the Markov ones by more."""
    from qltlib.validation.one_step_check import STEP_TOLERANCE, paired_change, step_check

    a, b = _stored("kolmogorov_alpha25600_modes256"), _stored("kolmogorov_alpha64000_modes256")
    markov = paired_change(a, b, pick=(1,))
    for value, error in (markov["dlnK"], markov["dlnC"][1]):
        assert value - 2 * error > STEP_TOLERANCE
    # no mean test for the quenched closure, so a step that is not a doubling is accepted
    quenched = step_check(a, b, ells=(1,), closure="quenched")
    assert quenched["moved"] == [] and "mean" not in quenched["tests"]
    assert quenched["mean_excess"] is None and quenched["closure"] == "quenched"
    assert quenched["K_half"] == pytest.approx(a.quenched()["K"])
