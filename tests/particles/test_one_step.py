"""The one-step recursion of the back-tracked anisotropy (qltlib.particles.one_step, issue 21)."""
import dataclasses
import json
import math

import numpy as np
import pytest

from qltlib.particles.one_step import (
    ARRAYS,
    combine,
    jackknife,
    load_one_step,
    mean_recursion,
    measure_one_step,
    measure_step_realisation,
    one_step_recursion,
    one_step_steady_state,
    quenched_steady_state,
    step_terms,
)
from qltlib.particles.tracking import integrate
from qltlib.particles.transfer import (
    TransferSettings,
    gauss_legendre_grid,
    harmonic_cross_power,
    harmonic_power,
    real_harmonics,
    track_grid,
)
from qltlib.particles.turbulence import uniform_field
from qltlib.paths import DATA_DIR


def helix_terms(omega: float, t: float) -> dict:
    """Analytic one-step terms in a uniform field of strength ``omega`` (any direction).

    ``p' = R p`` and ``Delta r_1 = -A p`` with ``R`` the rotation by ``omega t`` about the field and
    ``A = int_0^t R(s) ds``: ``tr A = t + 2 sin(omega t)/omega``,
    ``|A|_F^2 = t^2 + 4 (1 - cos(omega t))/omega^2``, ``tr(A R^T) = tr A``. A linear map ``u . p``
    has ``C_1 = 4 pi |u|^2 / 9`` and nothing else; averaging over ``G`` gives a factor 1/3.
    """
    sin_term = t if omega == 0 else math.sin(omega * t) / omega
    cos_term = t * t / 2 if omega == 0 else (1 - math.cos(omega * t)) / omega ** 2
    tr_a, frob = t + 2 * sin_term, t * t + 4 * cos_term
    return {"S1": 4 * math.pi / 27 * frob, "X1": -8 * math.pi / 27 * tr_a, "m1": -tr_a / 3,
            "p1": (1 + 2 * math.cos(omega * t)) / 3, "msd1": frob / 3}


@pytest.mark.parametrize("omega_vector", [[0.0, 0.0, 0.0], [0.3, -0.5, 0.8]])
def test_uniform_field_terms_are_analytic(omega_vector):
    # zero field: ballistic, Delta r_1 = -Delta T p, p' = p; otherwise a helix (Boris error ~1e-5 at dt = 0.01)
    settings = TransferSettings(alpha=250.0, lmax=6, n_theta=10, step_fraction=0.01)
    terms = measure_step_realisation(settings, 0, field=uniform_field(omega_vector))
    expected = helix_terms(float(np.linalg.norm(omega_vector)), settings.delta_t)
    assert np.allclose(terms["matrix"][:7], np.eye(7), atol=1e-10)
    assert np.allclose(terms["matrix"][7:], 0.0, atol=1e-10)
    assert terms["source"][1] == pytest.approx(expected["S1"], rel=1e-4)
    assert terms["cross"][1] == pytest.approx(expected["X1"], rel=1e-4)
    for name in ("m1", "p1", "msd1"):
        assert terms[name] == pytest.approx(expected[name], rel=1e-4, abs=1e-6)
    others = np.delete(np.arange(settings.n_theta), 1)
    assert np.abs(terms["source"][others]).max() < 1e-10
    assert np.abs(terms["cross"][others]).max() < 1e-10


def test_ballistic_recursion_gives_t_squared():
    # no field: dI = -t G.p exactly, C_1(t) = 4 pi t^2 / 9, m(t) = -t, every other C_l zero
    settings = TransferSettings(alpha=100.0, lmax=4, n_theta=6)
    terms = measure_step_realisation(settings, 0, field=uniform_field([0.0, 0.0, 0.0]))
    sl = slice(1, 5)
    c, m = one_step_recursion(terms["matrix"][sl, sl], terms["source"][sl], terms["cross"][sl],
                              terms["m1"], terms["p1"], 7)
    t = settings.delta_t * np.arange(8)
    assert np.allclose(m, -t, atol=1e-12)
    assert np.allclose(c[:, 0], 4 * math.pi / 9 * t ** 2, rtol=1e-12, atol=1e-12)
    assert np.abs(c[:, 1:]).max() < 1e-10


def test_recursion_is_exact_for_a_uniform_field_renewed_every_step():
    # The closure holds exactly when the field of the second step is independent of the first and
    # uniform (the starting point does not matter): a uniform field of fixed strength whose
    # direction is drawn anew. Averaging the direction over +-x, +-y, +-z is exact here (the
    # two-step map is linear in the second step's A), so recursion and direct map agree to the
    # integrator's accuracy -- including the cross term m(Delta T) X.
    omega, step = 0.7, 0.01
    settings = TransferSettings(alpha=300.0, lmax=4, n_theta=8, step_fraction=step)
    first_field = uniform_field(omega * np.array([0.48, -0.6, 0.64]))
    grid, delta_r, final = track_grid(settings, 0, first_field)
    terms = step_terms(grid, delta_r, final, settings.lmax)
    sl = slice(1, settings.lmax + 1)
    c, m = one_step_recursion(terms["matrix"][sl, sl], terms["source"][sl], terms["cross"][sl],
                              terms["m1"], terms["p1"], 2)
    direct = []
    for axis in np.vstack([np.eye(3), -np.eye(3)]):
        second = integrate(uniform_field(omega * axis), delta_r, -final, [settings.delta_t],
                           charge_sign=-1.0, step_fraction=step)
        total = second.positions[-1]                       # r(t - 2 Delta T) - r_sun
        direct.append(step_terms(grid, total, final, settings.lmax)["source"][sl])
    direct = np.mean(direct, axis=0)
    assert direct[0] > 1.0
    assert c[2] == pytest.approx(direct, rel=1e-4, abs=1e-10)
    # the cross term matters: without it the recursion misses by far more than the tolerance
    assert abs(c[2][0] - m[1] * terms["cross"][1] - direct[0]) > 0.05 * direct[0]


def test_mean_recursion_and_diffusion_coefficient_of_a_markov_velocity():
    # exponential velocity correlation <p(0).p(s)> = exp(-nu s): m_1 = -(1 - e^{-nu T})/nu,
    # P_1 = e^{-nu T}, and K = (1/3) int exp(-nu s) ds = 1/(3 nu) for every step T
    nu = 0.05
    for t in (0.5, 4.0, 40.0):
        m1, p1 = -(1 - math.exp(-nu * t)) / nu, math.exp(-nu * t)
        out = one_step_steady_state(np.zeros((1, 1)), np.zeros(1), np.zeros(1), m1, p1)
        assert out["K"] == pytest.approx(1 / (3 * nu), rel=1e-12)
        m = mean_recursion(m1, p1, 5)
        assert np.allclose(m, -(1 - np.exp(-nu * t * np.arange(6))) / nu, rtol=1e-12)


def test_steady_state_is_the_limit_of_the_recursion():
    rng = np.random.default_rng(1)
    mat = 0.6 * rng.random((5, 5)) / 5
    s, x = rng.random(5), -rng.random(5)
    c, m = one_step_recursion(mat, s, x, -2.0, 0.7, 400)
    out = one_step_steady_state(mat, s, x, -2.0, 0.7)
    assert m[-1] == pytest.approx(out["m_inf"], rel=1e-12)
    assert np.allclose(c[-1], out["C"], rtol=1e-10)
    assert out["K"] == pytest.approx(2.0 / 0.3 / 3, rel=1e-12)


def test_state_after_n_steps_starts_at_the_source_and_ends_at_the_fixed_point(small_measurement):
    first = small_measurement.steady_state(n_steps=1)
    means = small_measurement.means()
    np.testing.assert_allclose(first["C"], means["source"], rtol=1e-12)    # C(Delta T) = S
    late, fixed = small_measurement.steady_state(n_steps=2000), small_measurement.steady_state()
    np.testing.assert_allclose(late["C"], fixed["C"], rtol=1e-8)
    assert late["K"] == fixed["K"] and np.all(first["C_err"] > 0)
    with pytest.raises(ValueError, match="positive integer"):
        small_measurement.steady_state(n_steps=0)


def test_jackknife_of_a_mean_is_its_standard_error():
    rng = np.random.default_rng(2)
    values = {"a": rng.normal(size=(30, 4))}
    est, err, _ = jackknife(values, lambda m: m["a"])
    assert np.allclose(est, values["a"].mean(axis=0))
    assert np.allclose(err, values["a"].std(axis=0, ddof=1) / math.sqrt(30), rtol=1e-10)


@pytest.fixture(scope="module")
def small_measurement():
    return measure_one_step(TransferSettings(alpha=50.0, lmax=4, n_theta=8, n_modes=64), 4)


def test_measurement_round_trips_and_combines(small_measurement, tmp_path):
    path = tmp_path / "m.npz"
    small_measurement.save(path)
    back = load_one_step(path)
    assert back.settings == small_measurement.settings
    assert np.allclose(back.matrix, small_measurement.matrix, rtol=1e-6)
    assert np.allclose(back.cross, small_measurement.cross, rtol=1e-6, atol=1e-6)
    assert back.indices.tolist() == [0, 1, 2, 3]
    steady = back.steady_state()
    assert steady["C"].shape == (4,) and np.all(np.isfinite(steady["C_err"]))
    assert steady["K"] > 0 and steady["K_err"] > 0
    with pytest.raises(ValueError, match="share"):
        combine([back, back])


def test_turbulence_terms_obey_the_exact_identities(small_measurement):
    # M: the conservation law on the measured rows up to the leak; S_l >= 0; |P_1| <= 1;
    # mean displacement against the arrival direction (m_1 < 0) but shorter than c Delta T;
    # Cauchy-Schwarz for the mean part: C_1 of <Delta r_1> = 4 pi m_1^2 / 9 <= S_1
    meas = small_measurement
    dt = meas.settings.delta_t
    assert np.all(meas.source >= 0)
    assert np.all(np.abs(meas.p1) <= 1) and np.all(meas.p1 < 1)
    assert np.all((meas.m1 < 0) & (meas.m1 > -dt))
    assert np.all(4 * math.pi * meas.m1 ** 2 / 9 <= meas.source[:, 1])
    assert np.all(meas.msd1 <= dt ** 2 * (1 + 1e-6))
    assert np.allclose(meas.matrix[:, 1:, 0], 0.0, atol=1e-12)       # the monopole feeds nothing


def test_source_is_the_whole_path_at_one_step():
    # C(Delta T) = S: the first step of the recursion is the long simulation itself at t = Delta T.
    # Realisations 0-2 of the production ensemble (same seed, modes, step and precision: the same
    # fields) at Omega t = 10 against S at alpha = 1000 (Delta T = 10) on a coarse grid: the dipole
    # agrees per realisation; l >= 2 is biased up by aliasing of structure finer than the grid.
    from qltlib.particles.statistics import summarize

    prod = summarize(DATA_DIR / "simulation" / "white_k0-1e-3_k1-1e2")
    per = prod["per_realisation"]
    assert prod["times"][0] == 10.0
    settings = TransferSettings(alpha=1000.0, lmax=4, n_theta=18, n_modes=prod["settings"]["n_modes"],
                                step_fraction=prod["settings"]["step_fraction"],
                                precision=prod["settings"]["precision"])
    for i in range(3):
        row = int(np.flatnonzero(per["indices"] == i)[0])
        sim = per["C_ell"][row, 0] - per["shot_noise"][row, 0]
        s = measure_step_realisation(settings, i)["source"]
        assert s[1] == pytest.approx(sim[1], rel=0.02)
        assert np.all(s[2:5] > 0.8 * sim[2:5]) and np.all(s[2:5] < 1.6 * sim[2:5])


def test_path_splits_exactly_at_the_first_step():
    # Delta r(p, 2 Delta T) = Delta r_1(p) + Delta r'(Delta r_1, p'; Delta T): continuing the
    # back-track from the first step's end point and direction, in the same field, gives the
    # direct back-track over 2 Delta T (same step; agreement to the integrator's round-off)
    from qltlib.particles.settings import realisation_seed
    from qltlib.particles.tracking import backtrack
    from qltlib.particles.turbulence import synthesise_turbulence
    from qltlib.theory.spectrum import make_spectrum

    settings = TransferSettings(alpha=100.0, lmax=3, n_theta=6, n_modes=64, precision="float64")
    field = synthesise_turbulence(make_spectrum("white", settings.k0, settings.k1), 64,
                                  rng=realisation_seed(settings.seed, 3))
    grid, delta_r, final = track_grid(settings, 3, field)
    second = integrate(field, delta_r, -final, [settings.delta_t], charge_sign=-1.0,
                       step_fraction=settings.step_fraction, precision="float64")
    direct = backtrack(field, grid.directions, [settings.delta_t, 2 * settings.delta_t],
                       step_fraction=settings.step_fraction, precision="float64")
    assert direct.dt == pytest.approx(second.dt, rel=1e-12)
    assert np.allclose(direct.positions[0], delta_r, atol=1e-9)
    assert np.allclose(direct.positions[1], second.positions[-1], atol=1e-6)
    assert np.abs(direct.positions[1] - delta_r).max() > 0.5          # the second step moved them


def test_shape_ratios_are_the_steady_state_normalised_at_the_reference_multipole():
    measurement = load_one_step(DATA_DIR / "one_step" / "white_alpha800_grid68.npz")
    steady, shape = measurement.steady_state(), measurement.shape_ratios(reference_ell=2)
    assert shape["ratio"][1] == 1.0 and shape["ratio_err"][1] == 0.0
    np.testing.assert_allclose(shape["ratio"], steady["C"] / steady["C"][1], rtol=1e-12)
    assert shape["K"] == steady["K"] and shape["K_err"] == steady["K_err"]
    assert np.all(shape["ratio_err"][2:] > 0)
    with pytest.raises(ValueError, match="reference multipole"):
        measurement.shape_ratios(reference_ell=17)


# --- the aliasing floor (chapter 9, section "The aliasing floor") -----------------------------

def _stored(name):
    return load_one_step(DATA_DIR / "one_step" / f"{name}.npz")


def test_a_flat_floor_is_removed_exactly_and_nothing_else():
    measured = _stored("white_alpha1600_grid100")
    floor = {"source": 0.37, "cross": -0.05, "matrix": np.linspace(0.0, 0.02, 17)}
    lifted = dataclasses.replace(measured, source=measured.source + floor["source"],
                                 cross=measured.cross + floor["cross"],
                                 matrix=measured.matrix + floor["matrix"][None, None, :])
    a, b = measured.without_floor(), lifted.without_floor()
    for name in ("source", "cross", "matrix"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-12)
    assert a.floor_subtracted and a.without_floor() is a
    assert np.allclose(a.source[:, a.floor_rows()].mean(axis=1), 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="as measured"):
        a.save("never.npz")
    with pytest.raises(ValueError, match="aliasing floor"):
        combine([measured, dataclasses.replace(lifted, indices=lifted.indices + 100).without_floor()])


def test_the_floor_is_the_grids_shot_noise():
    """The floor of S falls as the node weights sum_i w_i^2 ~ 1/n_theta^2 (same fields)."""
    floors = {n: _stored(name).aliasing_floor()["source"][:10].mean()
              for n, name in ((68, "white_alpha1600_grid68"), (100, "white_alpha1600_grid100"))}
    assert floors[68] / floors[100] == pytest.approx((100 / 68) ** 2, rel=0.25)


def _first(measurement, n):
    return dataclasses.replace(measurement, **{name: getattr(measurement, name)[:n]
                                               for name in (*ARRAYS, "indices")})


def test_without_the_floor_two_grids_agree_where_raw_they_do_not():
    """Paired on realisations 0-9: C_12 of 68 and 100 rings differ raw, not without the floor."""
    coarse = _first(_stored("white_alpha1600_grid68"), 10)
    fine = _first(_stored("white_alpha1600_grid100"), 10)
    assert coarse.indices.tolist() == fine.indices.tolist() == list(range(10))
    raw = coarse.steady_state()["C"][11] / fine.steady_state()["C"][11] - 1
    clean = (coarse.without_floor().steady_state()["C"][11]
             / fine.without_floor().steady_state()["C"][11] - 1)
    assert raw > 0.1 and abs(clean) < raw / 3


def test_a_grid_without_rows_above_l_has_no_floor_estimate():
    from qltlib.particles.one_step import floor_rows
    assert floor_rows(68, 16) == slice(51, 68)
    with pytest.raises(ValueError, match="at least 22 rings"):
        floor_rows(20, 16)


def test_one_step_fields_are_those_of_qlt_simulate_for_the_same_seed_and_modes():
    """Chapter 9 measures one step through the long ensemble's own fields (same seed, 256 modes)."""
    from qltlib.particles.settings import realisation_seed
    from qltlib.particles.turbulence import synthesise_turbulence
    from qltlib.theory.spectrum import make_spectrum

    spectrum = make_spectrum("white", 1e-3, 1e2)
    for index in (0, 7):
        as_transfer = synthesise_turbulence(spectrum, 256, rng=realisation_seed(2019, index))
        as_simulate = synthesise_turbulence(spectrum, 256,
                                            np.random.default_rng(realisation_seed(2019, index)))
        for name in ("wavevectors", "amplitude_vectors", "phases"):
            assert np.array_equal(getattr(as_transfer, name), getattr(as_simulate, name))


def test_the_half_step_rides_along_without_changing_the_step():
    """The step check's half step: the same particles, one more output time on the integration
    grid of Delta T, so the terms at Delta T are bit for bit those without it, and the half-step
    terms those of a measurement at the half step's own alpha."""
    from qltlib.particles.one_step import HALF_PREFIX, from_realisations

    settings = TransferSettings(alpha=10, lmax=2, n_theta=4, n_modes=16)
    plain = track_grid(settings, 1)
    grid, delta_r, final, half = track_grid(settings, 1, half_step=True)
    assert np.array_equal(plain[1], delta_r) and np.array_equal(plain[2], final)
    both = measure_step_realisation(settings, 1, half_step=True)
    alone = measure_step_realisation(settings, 1)
    for name in ("matrix", "source", "cross", "m1", "p1", "msd1"):
        assert np.array_equal(both[name], alone[name]), name
    at_half = measure_step_realisation(
        dataclasses.replace(settings, alpha=both["half_time"] * settings.k1), 1)
    for name in ("matrix", "source", "cross", "m1", "p1", "msd1"):
        assert np.array_equal(both[HALF_PREFIX + name], at_half[name]), name
    assert half["time"] == both["half_time"]
    measured = from_realisations(settings, [both], [1], half_step=True)
    assert measured.settings.alpha == pytest.approx(both["half_time"] * settings.k1)
    assert measured.m1.tolist() == [both["half_m1"]] and measured.indices.tolist() == [1]


def test_the_half_step_lies_on_the_integration_grid():
    from qltlib.particles.tracking import output_schedule, step_size
    from qltlib.particles.transfer import half_step_time

    field = uniform_field([0.0, 0.0, 1.0])          # k_max = 0: steps of step_fraction r_g/c
    for alpha, steps in ((0.8, 2), (1.2, 3), (4.4, 11)):
        settings = TransferSettings(alpha=alpha, lmax=2, n_theta=4, k0=0.01, k1=1.0)
        n, dt, _ = output_schedule([settings.delta_t], step_size(field, settings.step_fraction))
        assert n[-1] == steps
        assert half_step_time(settings, field) == pytest.approx((steps // 2) * dt, rel=1e-12)
    with pytest.raises(ValueError, match="one integration step"):
        half_step_time(TransferSettings(alpha=0.3, lmax=2, n_theta=4, k0=0.01, k1=1.0), field)


def test_subset_keeps_the_chosen_realisations_and_their_numbers(small_measurement):
    part = small_measurement.subset([2, 0])
    assert part.indices.tolist() == [small_measurement.indices[2], small_measurement.indices[0]]
    for name in ARRAYS:
        assert np.array_equal(getattr(part, name), getattr(small_measurement, name)[[2, 0]])
    assert part.settings == small_measurement.settings and part.realisations == 2


# ---------------------------------------------------------------------------------------------
# the quenched closure: direction-resolved terms
# ---------------------------------------------------------------------------------------------

def test_cross_power_holds_the_power_on_its_diagonal_and_separates_harmonics():
    grid = gauss_legendre_grid(8)
    rng = np.random.default_rng(5)
    harmonics = real_harmonics(grid.directions, 3)
    maps = np.vstack([harmonics[4] + 0.5 * harmonics[2], harmonics[5], rng.normal(size=grid.weights.size)])
    cross = harmonic_cross_power(grid, maps, 5)
    assert cross.shape == (6, 3, 3)
    assert np.allclose(cross, cross.transpose(0, 2, 1))
    assert np.allclose(np.diagonal(cross, axis1=1, axis2=2).T, harmonic_power(grid, maps, 5))
    # Y_2,-2 and Y_2,-1 are orthogonal; the first map holds Y_1,0 (row 2) at l = 1
    assert cross[2, 0, 1] == pytest.approx(0.0, abs=1e-12)
    assert cross[1, 0, 0] == pytest.approx(0.25) and cross[2, 0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize("omega_vector", [[0.0, 0.0, 0.0], [0.3, -0.5, 0.8]])
def test_direction_resolved_terms_of_a_uniform_field_are_the_helix(omega_vector):
    # Delta r_1 = -A p and p' = R p are linear: mu_1 = -A, P = R (a rotation), nothing is left over
    settings = TransferSettings(alpha=250.0, lmax=6, n_theta=10, step_fraction=0.01)
    terms = measure_step_realisation(settings, 0, field=uniform_field(omega_vector))
    expected = helix_terms(float(np.linalg.norm(omega_vector)), settings.delta_t)
    mu1, step = terms["mean_tensor"], terms["direction_tensor"]
    assert np.trace(mu1) == pytest.approx(3 * expected["m1"], rel=1e-4)
    assert np.sum(mu1**2) == pytest.approx(3 * expected["msd1"], rel=1e-4)
    assert np.trace(step) == pytest.approx(3 * expected["p1"], rel=1e-4, abs=1e-6)
    assert np.allclose(step @ step.T, np.eye(3), atol=1e-4)
    assert np.abs(terms["residual_gram"]).max() < 1e-8 * settings.delta_t**2


def test_direction_resolved_terms_agree_with_the_scalar_ones(small_measurement):
    meas = small_measurement
    assert np.allclose(np.trace(meas.mean_tensor, axis1=1, axis2=2), 3 * meas.m1)
    assert np.allclose(np.trace(meas.direction_tensor, axis1=1, axis2=2), 3 * meas.p1)
    gram = meas.residual_gram
    # the residuals hold no dipole; above it their power is that of Delta r_1 itself
    assert np.abs(gram[:, 1]).max() < 1e-10 * np.abs(gram).max()
    assert np.allclose(np.trace(gram[:, 2:, :3, :3], axis1=2, axis2=3) / 3, meas.source[:, 2:])
    assert np.allclose(gram, gram.transpose(0, 1, 3, 2))


def damped_rotation_step(nu: float, omega: float, t: float) -> tuple:
    """``A(t) = int_0^t exp(-nu s) R(s) ds`` and ``exp(-nu t) R(t)`` for ``R`` the rotation by
    ``omega s`` about ``z``: a velocity that turns and forgets, the same field on every step."""
    def rot(a):
        return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])

    s, w = np.polynomial.legendre.leggauss(200)
    s = 0.5 * t * (s + 1)
    area = sum(0.5 * t * wi * math.exp(-nu * si) * rot(omega * si) for si, wi in zip(s, w))
    return area, math.exp(-nu * t) * rot(omega * t)


def test_the_quenched_closure_is_exact_where_the_field_stays_the_same():
    # Delta r(p, t) = -A(t) p with A(t) = A(T) + exp(-nu T) R(T) A(t - T): the chained tensor
    # gives A(infinity) for every step, C_1 = (4 pi/27) |A|_F^2, K = tr A/9; the scalar
    # closure, which averages the direction of the memory away, depends on the step
    nu, omega = 0.2, 1.5
    exact = np.diag([nu / (nu**2 + omega**2)] * 2 + [1 / nu])
    exact[0, 1], exact[1, 0] = -omega / (nu**2 + omega**2), omega / (nu**2 + omega**2)
    markov = []
    for t in (0.5, 3.0):
        area, step = damped_rotation_step(nu, omega, t)
        out = quenched_steady_state(np.zeros((3, 3)), np.zeros((3, 6, 6)), -area, step)
        assert np.allclose(out["mu_inf"], -exact, rtol=1e-10)
        assert out["K"] == pytest.approx(np.trace(exact) / 9, rel=1e-10)
        assert out["C"][0] == pytest.approx(4 * math.pi / 27 * np.sum(exact**2), rel=1e-10)
        assert np.allclose(out["C"][1:], 0.0)
        markov.append(one_step_steady_state(np.zeros((3, 3)), np.zeros(3), np.zeros(3),
                                            -np.trace(area) / 3, np.trace(step) / 3)["K"])
    assert abs(markov[1] / markov[0] - 1) > 0.05


def test_the_quenched_closure_of_a_measurement(small_measurement, tmp_path):
    meas = small_measurement.without_floor()
    out = meas.quenched()
    assert out["C"].shape == (4,) and out["C_cov"].shape == (4, 4)
    assert out["K_r"].shape == (4,) and np.all(np.isfinite(out["K_r"]))
    assert out["K"] == pytest.approx(out["K_r"].mean())
    assert out["K_err"] == pytest.approx(out["K_r"].std(ddof=1) / 2)
    assert np.allclose(out["K_markov_r"], -meas.m1 / (3 * (1 - meas.p1)))
    one = quenched_steady_state(meas.matrix[0, 1:5, 1:5], meas.residual_gram[0, 1:5],
                                meas.mean_tensor[0], meas.direction_tensor[0])
    assert np.allclose(out["C_r"][0], one["C"]) and out["K_r"][0] == pytest.approx(one["K"])
    path = tmp_path / "m.npz"
    small_measurement.save(path)
    back = load_one_step(path).without_floor()
    assert back.has_tensors and back.quenched()["K"] == pytest.approx(out["K"], rel=1e-5)
    assert np.array_equal(meas.subset([1, 3]).residual_gram, meas.residual_gram[[1, 3]])


def test_a_file_without_direction_resolved_terms_still_loads(small_measurement, tmp_path):
    path = tmp_path / "old.npz"
    meas = small_measurement
    np.savez(path, settings=json.dumps(meas.settings.as_dict()), indices=meas.indices,
             **{name: getattr(meas, name) for name in ARRAYS})
    old = load_one_step(path)
    assert not old.has_tensors and old.residual_gram is None
    assert old.without_floor().subset([0, 1]).realisations == 2
    assert np.allclose(old.steady_state()["C"], meas.steady_state()["C"])
    with pytest.raises(ValueError, match="no direction-resolved terms"):
        old.quenched()


def test_the_floor_of_the_residuals_goes_with_that_of_the_source():
    meas = measure_one_step(TransferSettings(alpha=50.0, lmax=3, n_theta=12, n_modes=64), 2)
    clean = meas.without_floor()
    rows = meas.floor_rows()
    floor = meas.residual_gram[:, rows].mean(axis=1)
    assert np.allclose(clean.residual_gram, meas.residual_gram - floor[:, None])
    # the trace of the residuals' floor is that of the source (rows above the dipole)
    assert np.allclose(np.trace(floor[:, :3, :3], axis1=1, axis2=2) / 3,
                       meas.aliasing_floor()["source"])
