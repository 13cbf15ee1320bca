"""Boris integrator in plane-wave fields (qltlib.particles.tracking)."""
import math

import numpy as np
import pytest

from qltlib.particles.tracking import backtrack, integrate, output_schedule
from qltlib.particles.turbulence import synthesise_turbulence, uniform_field
from qltlib.theory.spectrum import WhiteNoiseSpectrum


@pytest.fixture(scope="module")
def turbulence():
    return synthesise_turbulence(WhiteNoiseSpectrum(1e-2, 1e1), 96, rng=42)


def isotropic_directions(n, seed):
    v = np.random.default_rng(seed).normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("pitch_cosine", [0.0, 0.6])
def test_gyration_radius_and_period_in_uniform_field(pitch_cosine):
    """Uniform omega = 2 z: exact Boris/leapfrog orbit (radius v_perp/|omega|, angle per step)."""
    omega = 2.0
    field = uniform_field([0.0, 0.0, omega])
    v_perp = math.sqrt(1 - pitch_cosine ** 2)
    v0 = np.array([[v_perp, 0.0, pitch_cosine]])
    times = np.linspace(0.05, 10.0, 200)
    step_fraction = 0.05
    result = integrate(field, np.zeros((1, 3)), v0, times, step_fraction=step_fraction)
    x = result.positions[:, 0, :]
    steps = np.rint(result.times / result.dt)
    # dv/dt = v x omega turns x-hat towards -y-hat: the guiding centre is at -y v_perp/omega
    centre = np.array([0.0, -v_perp / omega])
    radius = np.linalg.norm(x[:, :2] - centre, axis=1)
    np.testing.assert_allclose(radius, v_perp / omega, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(x[:, 2], pitch_cosine * result.times, rtol=1e-12, atol=1e-12)
    if v_perp > 0:
        # Boris turns by 2 arctan(omega dt / 2) per step: period 2 pi (1 + (omega dt)^2/12 + ...)
        turn = 2 * math.atan(omega * result.dt / 2)
        # the radius vector starts along +y and turns towards +x
        angle = np.unwrap(np.arctan2(x[:, 0] - centre[0], x[:, 1] - centre[1]))
        np.testing.assert_allclose(angle, steps * turn, atol=1e-9)
        period = 2 * math.pi * result.dt / turn
        relative_excess = period * omega / (2 * math.pi) - 1.0
        assert abs(relative_excess - (omega * result.dt) ** 2 / 12) < (omega * result.dt) ** 4


def test_speed_conserved_to_round_off(turbulence):
    v0 = isotropic_directions(64, 1)
    result = integrate(turbulence, np.zeros((64, 3)), v0, [30.0], step_fraction=0.2)
    assert result.n_steps > 1000
    speed_error = np.abs(np.linalg.norm(result.final_velocities, axis=1) - 1.0)
    assert np.max(speed_error) < 2e-13
    # and the particles were really deflected
    assert np.min(np.sum(result.final_velocities * v0, axis=1)) < 0.9


def test_phase_recurrence_matches_exact_phases(turbulence):
    """Re-synchronising every step (libm cos per mode) and every 250 steps agree to round-off."""
    v0 = isotropic_directions(16, 2)
    exact = integrate(turbulence, np.zeros((16, 3)), v0, [10.0], step_fraction=0.3, resync_every=1)
    recurrent = integrate(turbulence, np.zeros((16, 3)), v0, [10.0], step_fraction=0.3, resync_every=250)
    assert recurrent.n_steps > 250
    np.testing.assert_allclose(recurrent.positions, exact.positions, atol=1e-9)


def test_time_reversibility(turbulence):
    """Back-track, then run the physical particle forward: it returns to the observer."""
    directions = isotropic_directions(32, 3)
    back = backtrack(turbulence, directions, [5.0], step_fraction=0.2)
    start = back.positions[-1]
    forward = integrate(turbulence, start, -back.final_velocities, [5.0], charge_sign=+1.0,
                        step_fraction=0.2)
    assert forward.n_steps == back.n_steps
    assert np.max(np.linalg.norm(start, axis=1)) > 3.0       # they went somewhere
    np.testing.assert_allclose(forward.positions[-1], 0.0, atol=1e-8)
    np.testing.assert_allclose(forward.final_velocities, directions, atol=1e-8)


def test_backtracking_sign_convention():
    """Observed momentum p = x in omega = z: the past position is at -p T + (p x omega) T^2 / 2."""
    field = uniform_field([0.0, 0.0, 1.0])
    T = 0.05
    result = backtrack(field, np.array([[1.0, 0.0, 0.0]]), [T], step_fraction=0.01)
    expected = np.array([-T, -0.5 * T ** 2, 0.0])         # p x omega = x x z = -y
    np.testing.assert_allclose(result.positions[-1, 0], expected, atol=T ** 3)


def test_second_order_convergence_in_step(turbulence):
    directions = isotropic_directions(32, 4)
    fractions = [0.4, 0.2, 0.1]
    runs = [backtrack(turbulence, directions, [2.0], step_fraction=f) for f in fractions]
    reference = backtrack(turbulence, directions, [2.0], step_fraction=0.0125).positions[-1]
    errors = np.array([np.sqrt(np.mean((r.positions[-1] - reference) ** 2)) for r in runs])
    dts = np.array([r.dt for r in runs])
    order = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    assert 1.7 < order < 2.3, (dts, errors)


def test_output_schedule_validation():
    steps, dt, times = output_schedule([1.0, 2.0], 0.3)
    assert dt <= 0.3 and steps[-1] * dt == pytest.approx(2.0)
    np.testing.assert_allclose(times, [1.0, 2.0], atol=dt / 2)
    for bad in ([-1.0], [0.0], [2.0, 1.0], []):
        with pytest.raises(ValueError, match="times"):
            output_schedule(bad, 0.1)


# ---------------------------------------------------------------------------------------------
# multirate field evaluation
# ---------------------------------------------------------------------------------------------

from qltlib.particles.multirate import multirate_field_error, multirate_plan  # noqa: E402
from qltlib.particles.tracking import step_size
from qltlib.theory.spectrum import make_spectrum  # noqa: E402


@pytest.fixture(scope="module", params=["white", "kolmogorov", "logflat", "flat3d"])
def broad_turbulence(request):
    """The validation's five-decade band, for every spectrum the library offers."""
    return synthesise_turbulence(make_spectrum(request.param, 1e-3, 1e2), 256, rng=7)


def test_multirate_plan_respects_the_error_bound():
    k = np.geomspace(1e-3, 1e2, 300)
    dt = 1e-3
    for tolerance in (1e-5, 1e-3):
        plan = multirate_plan(k, dt, tolerance)
        theta = (6 * tolerance) ** (1 / 3)
        covered = np.zeros(k.size, dtype=bool)
        for start, stop, m in zip(plan.band_start, plan.band_stop, plan.band_interval):
            members = plan.order[start:stop]
            covered[members] = True
            assert m & (m - 1) == 0 and 512 % m == 0
            assert np.all(k[members] * (m - 1) * dt <= theta * (1 + 1e-12))
        assert np.all(~covered[plan.order[:plan.n_exact]])
        assert covered.sum() + plan.n_exact == k.size
    exact = multirate_plan(k, dt, 0.0)
    assert exact.n_exact == k.size and exact.band_start.size == 0
    with pytest.raises(ValueError, match="tolerance"):
        multirate_plan(k, dt, -1e-3)


def test_multirate_field_error_within_bound_along_a_path(broad_turbulence):
    """Field level: the Taylor models stay within tolerance * sum|A_n| of the exact field."""
    dt = step_size(broad_turbulence, 0.4)
    v = isotropic_directions(1, 5)[0]
    # a straight path, one point per step (|step| = dt), through several resync periods
    path = np.outer(np.arange(4000) * dt, v)
    for tolerance in (1e-4, 1e-3):
        result = multirate_field_error(broad_turbulence, path, dt, tolerance)
        assert result["plan"].band_start.size > 0
        assert np.max(np.abs(result["error"])) <= result["bound"]
        # the bound is worst case; the typical error is far below it
        assert np.sqrt(np.mean(result["error"] ** 2)) < 0.5 * result["bound"]


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_multirate_kernel_matches_exact_on_short_segments(broad_turbulence, precision):
    """Kernel level: short (non-chaotic) segments agree with exact evaluation to the bound's order."""
    directions = isotropic_directions(24, 11)
    exact = backtrack(broad_turbulence, directions, [0.5, 1.0], step_fraction=0.4, precision=precision)
    multirate = backtrack(broad_turbulence, directions, [0.5, 1.0], step_fraction=0.4,
                          precision=precision, multirate_tolerance=1e-3)
    # |dv| <= T max|d omega| and |dx| <= T^2/2 max|d omega|: 1e-3 * sum|A| ~ 2e-3 for T = 1
    bound = 1e-3 * np.sum(np.linalg.norm(broad_turbulence.amplitude_vectors, axis=1))
    assert np.max(np.abs(multirate.velocities - exact.velocities)) < 1.0 * bound
    assert np.max(np.abs(multirate.positions - exact.positions)) < 0.5 * bound
    # and the difference is real (the comparison is not of two identical runs)
    assert np.max(np.abs(multirate.velocities - exact.velocities)) > 0
    np.testing.assert_allclose(np.linalg.norm(multirate.velocities, axis=2), 1.0, atol=1e-12)


def test_multirate_ensemble_diffusion_agrees_with_exact():
    """Ensemble level: the running diffusion coefficient agrees within its statistical error."""
    spectrum = make_spectrum("white", 1e-3, 1e2)
    directions = isotropic_directions(48, 3)
    differences, values = [], []
    for seed in range(6):
        field = synthesise_turbulence(spectrum, 128, rng=100 + seed)
        d = {}
        for tol in (0.0, 1e-3):
            track = backtrack(field, directions, [5.0], step_fraction=0.4, precision="float32",
                              multirate_tolerance=tol)
            d[tol] = np.mean(np.sum(track.positions[-1] ** 2, axis=1)) / (6 * 5.0)
        differences.append(d[1e-3] - d[0.0])
        values.append(d[0.0])
    differences = np.array(differences)
    error = np.std(differences, ddof=1) / math.sqrt(len(differences))
    assert abs(differences.mean()) < 3 * error + 1e-3 * np.mean(values)


@pytest.mark.parametrize("tolerance", [0.0, 1e-3])
def test_float32_error_does_not_grow_with_distance_from_origin(broad_turbulence, tolerance):
    """Late times of a long back-tracking: particles 10^3-10^4 r_g from the origin.

    The phases are re-synchronised in float64 from the float64 positions and only the per-step
    increments k.v dt are float32, so the working precision's error per step must not depend
    on |x| (a float32 phase k.x would lose all digits at |k x| ~ 1e7). Short segments, before
    chaos amplifies the differences: median separation from the float64-exact twin.
    """
    velocities = isotropic_directions(128, 21)
    offsets = isotropic_directions(128, 22)
    separations = {}
    for distance in (0.0, 2e4):
        start = distance * offsets
        reference = integrate(broad_turbulence, start, velocities, [2.0], step_fraction=0.4)
        twin = integrate(broad_turbulence, start, velocities, [2.0], step_fraction=0.4,
                         precision="float32", multirate_tolerance=tolerance)
        separations[distance] = np.median(
            np.linalg.norm(twin.positions[-1] - reference.positions[-1], axis=1))
    assert 0 < separations[0.0] < 1e-4
    assert 0.5 < separations[2e4] / separations[0.0] < 2.0
