"""Standard-QLT rates, the pair transition matrix and the steady state."""
import math

import numpy as np
import pytest

from qltlib.theory.kernels import lambda_kernel
from qltlib.theory.spectrum import KolmogorovSpectrum, WhiteNoiseSpectrum
from qltlib.theory.transport import (
    diagram_matrices,
    pair_transition_matrix,
    standard_qlt_rates,
    steady_state_spectrum,
)

WHITE = WhiteNoiseSpectrum(1e-3, 1e2)


def test_markov_rates_from_the_spectrum():
    rates = standard_qlt_rates(WHITE)
    integral = math.log(1e5) / (8 * math.pi * (1e2 - 1e-3))   # int g/k dk for flat g
    assert rates.nu_1 == pytest.approx(2 * math.pi**2 * integral, rel=1e-12)
    assert rates.K == pytest.approx(1 / (3 * rates.nu_1), rel=1e-15)
    assert rates.nu(3) == pytest.approx(6 * rates.nu_1, rel=1e-15)


def test_finite_delta_t_rate_tends_to_markov_limit():
    spectrum = WhiteNoiseSpectrum(1.0, 10.0)       # k0 dT >> 1 reachable
    markov = standard_qlt_rates(spectrum)
    late = standard_qlt_rates(spectrum, delta_t=1e4)
    assert late.nu_1 == pytest.approx(markov.nu_1, rel=1e-3)


@pytest.mark.parametrize("spectrum", [WHITE, KolmogorovSpectrum(1e-3, 1e2)], ids=["white", "kolmogorov"])
@pytest.mark.parametrize("alpha", [10.0, 50.0])
def test_dipole_limit_without_coupling(spectrum, alpha):
    """Coupling off: C_1 = 4 pi K^2 |G|^2 of diffusion theory, C_{l>=2} = 0."""
    kg2 = 1e-4
    result = steady_state_spectrum(spectrum, alpha, lmax=12, kg2=kg2, coupling=False)
    delta_t = alpha / spectrum.k1
    nu_1 = 16 * math.pi / 3 * (lambda_kernel(0, spectrum, delta_t) - 0.5 * lambda_kernel(2, spectrum, delta_t)) / delta_t
    k_diff = 1 / (3 * nu_1)
    g2 = kg2 * spectrum.k0 / k_diff
    assert result.K == pytest.approx(k_diff, rel=1e-12)
    assert result.C_ell[0] == pytest.approx(4 * math.pi * k_diff**2 * g2, rel=1e-10)
    assert np.all(result.C_ell[1:] == 0.0)


def test_pair_dipole_relaxes_at_twice_the_single_particle_rate():
    a = pair_transition_matrix(WHITE, 50.0, 6, coupling=False)
    rates = standard_qlt_rates(WHITE, delta_t=50.0 / WHITE.k1)
    assert a[0, 0] == pytest.approx(2 * rates.nu_1, rel=1e-12)
    assert a[0, 0] == pytest.approx(2 / (3 * rates.K), rel=1e-12)


def test_total_power_is_conserved_by_the_pair_propagator():
    """sum_l (2l+1) (M - 1)_{l l0} = 0 for every column away from the truncation edge.

    f^2 at coinciding directions is conserved by a magnetic deflection; this is the exact
    identity behind the l_max dependence of the steady state (chapter Steady state).
    """
    lmax = 80
    mats = diagram_matrices(WHITE, 20.0, lmax)
    ell = np.arange(lmax + 1)
    column = ((2 * ell + 1)[:, None] * (mats.total(True) - np.eye(lmax + 1))).sum(axis=0)
    scale = (2 * ell + 1) * np.abs(2 * np.diag(mats.m1a))
    assert np.all(np.abs(column[1:30]) <= 1e-11 * scale[1:30])
    # near the edge the truncated columns leak power: the sink that makes A invertible
    assert column[lmax] < -0.01 * scale[lmax]


def test_steady_state_solves_the_linear_system():
    result = steady_state_spectrum(WHITE, 50.0, lmax=20)
    a = pair_transition_matrix(WHITE, 50.0, 20)
    rhs = np.zeros(20)
    rhs[0] = 8 * math.pi / 3 * 1e-4 * WHITE.k0
    np.testing.assert_allclose(a @ result.C_ell, rhs, atol=1e-14 * np.abs(a).max() * np.abs(result.C_ell).max())
    assert np.all(result.C_ell > 0)


def test_steady_state_is_linear_in_kg2_and_source_factor():
    one = steady_state_spectrum(WHITE, 50.0, lmax=10, kg2=1e-4)
    two = steady_state_spectrum(WHITE, 50.0, lmax=10, kg2=3e-4)
    paper = steady_state_spectrum(WHITE, 50.0, lmax=10, kg2=1e-4, source="paper")
    np.testing.assert_allclose(two.C_ell, 3 * one.C_ell, rtol=1e-12)
    np.testing.assert_allclose(paper.C_ell, one.C_ell / 3, rtol=1e-12)


def test_paper_trend_with_alpha():
    """Fig. 2 (left): the normalisation falls and the spectrum steepens as alpha grows."""
    lmax = 40
    results = [steady_state_spectrum(WHITE, a, lmax=lmax) for a in (10.0, 50.0, 200.0)]
    c1 = [r.C_ell[0] for r in results]
    slope = [r.C_ell[9] / r.C_ell[1] for r in results]
    assert c1[0] > c1[1] > c1[2]
    assert slope[0] > slope[1] > slope[2]


def test_lmax_dependence_is_monotone_growth():
    """The truncated steady state grows slowly with l_max (no convergence; see chapter)."""
    c = [steady_state_spectrum(WHITE, 50.0, lmax=lmax).C_ell[:5] for lmax in (12, 24, 48)]
    assert np.all(c[1] > c[0]) and np.all(c[2] > c[1])


@pytest.mark.parametrize("bad, match", [
    (dict(alpha=-1.0), "alpha"), (dict(alpha=0.0), "alpha"), (dict(lmax=1), "lmax"),
    (dict(kg2=-1.0), "kg2"), (dict(source="x"), "source"),
])
def test_invalid_parameters(bad, match):
    kwargs = dict(alpha=50.0, lmax=5, kg2=1e-4)
    kwargs.update(bad)
    with pytest.raises(ValueError, match=match):
        steady_state_spectrum(WHITE, **kwargs)


# --- issue 11: input outside the theory or the machine -------------------------------------

from qltlib.theory.transport import (
    ALPHA_MIN_THEORY,
    check_resources,
    estimate_resources,
    theory_domain_violation,
)


def test_small_alpha_keeps_its_digits():
    """1 - M was formed as 1 + (M - 1): at alpha = 1e-3 (nu_1 Delta T ~ 3e-11) that rounded the
    rates away and C_1 came out as -6e7 (issue 11 defect 5). Power conservation is exact, so
    the steady state is positive there."""
    result = steady_state_spectrum(WHITE, 1e-3, lmax=100)
    assert np.all(result.C_ell > 0) and result.K > 0


@pytest.mark.parametrize("spectrum, alpha", [(WHITE, 1e-8), (WHITE, 1e-300),
                                             (KolmogorovSpectrum(1e-10, 1e10), 50.0)])
def test_unphysical_steady_state_is_refused(spectrum, alpha):
    """Where round-off exceeds the rates the solve is refused, never returned negative/NaN."""
    with pytest.raises(ValueError, match=r"not physical.*alpha = k1 c Delta T >> 1"):
        steady_state_spectrum(spectrum, alpha, lmax=100)


def test_theory_domain_states_the_condition():
    assert theory_domain_violation(WHITE, ALPHA_MIN_THEORY, 100) is None
    assert theory_domain_violation(WHITE, 50.0, 100) is None
    message = theory_domain_violation(WHITE, 1e-3, 100)
    assert ">> 1" in message and "alpha = 0.001" in message and "\n" not in message


def test_measured_breakdown_lies_far_below_the_theory_bound():
    """benchmarks/alpha_domain.py: the numerical breakdown sits decades below alpha = 10, so the
    theory's condition, not round-off, is the binding one (paper band, lmax = 10)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "alpha_domain.py"
    module_spec = importlib.util.spec_from_file_location("alpha_domain", path)
    benchmark = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(benchmark)
    scan = benchmark.scan
    for name in ("white", "kolmogorov", "logflat"):
        row = scan(name, 1e-3, 1e2, 10, step_dex=1.0, alpha_top=1e2)
        assert row["alpha_first_unphysical"] is not None, name
        assert row["alpha_first_unphysical"] < 1e-3 * ALPHA_MIN_THEORY, name


def test_resources_are_estimated_before_allocating():
    """Issue 11 defect 7: lmax = 500 took > 4 GB, lmax = 1e5 died with MemoryError."""
    small = estimate_resources(WHITE, 50.0, 100)
    assert small.memory_bytes < 2**30 and small.seconds < 60
    assert estimate_resources(WHITE, 1e5, 100).memory_bytes < 2**30     # blocked kernel
    check_resources(WHITE, 50.0, 100, available_bytes=24 * 2**30)
    for lmax in (500, 100000):
        with pytest.raises(ValueError, match=r"would need about .* GiB of memory"):
            check_resources(WHITE, 50.0, lmax, available_bytes=24 * 2**30)
    with pytest.raises(ValueError, match="would need"):
        check_resources(WHITE, 1e9, 20, available_bytes=24 * 2**30)    # too long


def test_estimate_solves_counts_the_tables_once_and_not_when_cached(monkeypatch, tmp_path):
    """The estimate a command announces (issue 19): Wigner tables are built once per lmax and
    then read from the disk cache; the kernel is paid per alpha."""
    from qltlib.theory import angular
    from qltlib.theory.transport import _table_cost, estimate_solves

    monkeypatch.setenv("QLT_CACHE_DIR", str(tmp_path))
    lmax = 997                                  # far above any table held in memory
    assert not angular.tables_cached(lmax)
    one = estimate_resources(WHITE, 50.0, lmax)
    table = _table_cost(lmax)[1]
    three = estimate_solves(WHITE, [50.0, 50.0, 50.0], lmax)
    assert three.seconds == pytest.approx(table + 3 * (one.seconds - table), rel=1e-12)
    assert three.memory_bytes == pytest.approx(one.memory_bytes, rel=1e-12)
    angular._cache_path(lmax).touch()
    assert angular.tables_cached(lmax)
    assert estimate_solves(WHITE, [50.0] * 3, lmax).seconds == pytest.approx(
        3 * (one.seconds - table), rel=1e-12)
