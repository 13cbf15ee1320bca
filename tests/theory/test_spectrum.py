"""Turbulence spectra (qltlib.theory.spectrum): normalisation, support, moments and input validation.

The normalisation ``\\int g dk = <omega^2>/(8 pi) = 1/(8 pi)`` is derived in chapter *Liouville*
(eq-g-normalisation); here it is checked with an independent quadrature (scipy ``quad`` in
``ln k``, which resolves power laws over many decades).
"""
import math

import numpy as np
import pytest
from scipy import integrate

from qltlib.theory.spectrum import (
    G_INTEGRAL,
    SPECTRA,
    Flat3DSpectrum,
    KolmogorovSpectrum,
    LogFlatSpectrum,
    PowerLawSpectrum,
    TurbulenceSpectrum,
    WhiteNoiseSpectrum,
    make_spectrum,
)
from qltlib.units import PAPER_K0, PAPER_K1

ONE_OVER_8PI = 1.0 / (8.0 * math.pi)


class BumpSpectrum(TurbulenceSpectrum):
    """A user-defined shape: a log-normal bump at k = 1 (not a power law, uses the base class)."""

    name = "bump"

    def shape(self, k):
        return np.exp(-0.5 * (np.log(k) / 0.7) ** 2)


class BrokenPowerLaw(TurbulenceSpectrum):
    """Flat below k = 1, Kolmogorov above: a second custom shape with a kink."""

    name = "broken"

    def shape(self, k):
        return np.where(k < 1.0, 1.0, np.power(k, -5.0 / 3.0))


def _quad_log(func, k0, k1, points=()):
    """``\\int_{k0}^{k1} func(k) dk`` by scipy quad in ``u = ln k`` (independent of the library)."""
    u_points = [math.log(p) for p in points if k0 < p < k1]
    val, _ = integrate.quad(lambda u: float(func(math.exp(u))) * math.exp(u), math.log(k0), math.log(k1),
                            points=u_points or None, limit=500, epsabs=0.0, epsrel=1e-12)
    return val


SPECTRUM_CASES = [
    pytest.param(lambda: WhiteNoiseSpectrum(), id="white-paper"),
    pytest.param(lambda: KolmogorovSpectrum(), id="kolmogorov-paper"),
    pytest.param(lambda: LogFlatSpectrum(), id="logflat-paper"),
    pytest.param(lambda: WhiteNoiseSpectrum(0.5, 3.0), id="white-narrow"),
    pytest.param(lambda: KolmogorovSpectrum(1e-2, 1e3), id="kolmogorov-wide"),
    pytest.param(lambda: PowerLawSpectrum(1e-2, 10.0, index=2.0), id="flat3d"),
    pytest.param(lambda: PowerLawSpectrum(0.1, 10.0, index=-0.999999999999999), id="powerlaw-near-logflat"),
    pytest.param(lambda: BumpSpectrum(1e-3, 1e2), id="custom-bump"),
    pytest.param(lambda: BrokenPowerLaw(1e-3, 1e2), id="custom-broken"),
]


@pytest.mark.parametrize("factory", SPECTRUM_CASES)
def test_normalisation_is_one_over_8pi(factory):
    spec = factory()
    assert G_INTEGRAL == pytest.approx(ONE_OVER_8PI, rel=1e-15)
    total = _quad_log(spec.g, spec.k0, spec.k1, points=(1.0,))
    assert total == pytest.approx(ONE_OVER_8PI, rel=1e-10)
    # the library's own zeroth moment agrees too
    assert spec.moment(0.0) == pytest.approx(ONE_OVER_8PI, rel=1e-10)


@pytest.mark.parametrize("factory", SPECTRUM_CASES)
def test_g_vanishes_outside_the_band_and_is_positive_inside(factory):
    spec = factory()
    outside = np.array([0.0, spec.k0 * (1 - 1e-12), spec.k0 / 10, spec.k1 * (1 + 1e-12), spec.k1 * 10, np.inf])
    assert np.all(spec.g(outside) == 0.0)
    inside = np.geomspace(spec.k0, spec.k1, 57)
    values = spec.g(inside)
    assert values.shape == inside.shape
    assert np.all(np.isfinite(values)) and np.all(values > 0)
    # band edges are included; scalars give 0-d results; __call__ is g
    assert float(spec.g(spec.k0)) > 0 and float(spec.g(spec.k1)) > 0
    assert np.ndim(spec.g(1.0)) == 0
    np.testing.assert_array_equal(spec(inside), values)
    # 2-D input keeps its shape
    assert spec.g(inside[:56].reshape(7, 8)).shape == (7, 8)


@pytest.mark.parametrize("cls, index", [(WhiteNoiseSpectrum, 0.0), (KolmogorovSpectrum, -5.0 / 3.0),
                                        (LogFlatSpectrum, -1.0), (Flat3DSpectrum, 2.0)])
def test_named_spectra_have_the_stated_power_law(cls, index):
    spec = cls(1e-3, 1e2)
    k = np.geomspace(spec.k0, spec.k1, 31)
    ratio = spec.g(k) / k**index
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)
    assert spec.index == index
    # closed-form normalisation of a power law
    p = index + 1.0
    expected = ONE_OVER_8PI * (1.0 / math.log(spec.k1 / spec.k0) if p == 0 else p / (spec.k1**p - spec.k0**p))
    assert ratio[0] == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("factory", SPECTRUM_CASES)
@pytest.mark.parametrize("power", [-3.0, -2.0, -1.0, -0.5, 0.0, 1.0, 2.0])
def test_moment_matches_scipy_quad(factory, power):
    spec = factory()
    expected = _quad_log(lambda k: spec.g(k) * k**power, spec.k0, spec.k1, points=(1.0,))
    assert spec.moment(power) == pytest.approx(expected, rel=1e-9)


def test_white_noise_moment_minus_one_closed_form():
    # the number behind the standard-QLT rate of the paper's spectrum (chapter Liouville)
    spec = WhiteNoiseSpectrum()
    expected = math.log(PAPER_K1 / PAPER_K0) / (8 * math.pi * (PAPER_K1 - PAPER_K0))
    assert spec.moment(-1.0) == pytest.approx(expected, rel=1e-13)


def test_defaults_are_the_papers_band():
    for cls in (WhiteNoiseSpectrum, KolmogorovSpectrum, LogFlatSpectrum, Flat3DSpectrum, PowerLawSpectrum):
        spec = cls()
        assert (spec.k0, spec.k1) == (PAPER_K0, PAPER_K1)


@pytest.mark.parametrize("bad_k0", [0.0, -1.0, float("nan"), float("inf"), -float("inf")])
def test_invalid_k0_raises_naming_k0(bad_k0):
    with pytest.raises(ValueError, match="k0"):
        WhiteNoiseSpectrum(bad_k0, 10.0)
    with pytest.raises(ValueError, match="k0"):
        BumpSpectrum(bad_k0, 10.0)
    with pytest.raises(ValueError, match="k0"):
        make_spectrum("kolmogorov", k0=bad_k0, k1=10.0)


@pytest.mark.parametrize("bad_k1", [1.0, 0.5, 0.0, -3.0, float("nan"), float("inf")])
def test_invalid_k1_raises_naming_k1(bad_k1):
    with pytest.raises(ValueError, match="k1"):
        WhiteNoiseSpectrum(1.0, bad_k1)
    with pytest.raises(ValueError, match="k1"):
        PowerLawSpectrum(1.0, bad_k1, index=1.5)
    with pytest.raises(ValueError, match="k1"):
        make_spectrum("logflat", k0=1.0, k1=bad_k1)


def test_abstract_base_needs_a_shape():
    with pytest.raises(NotImplementedError):
        TurbulenceSpectrum(1.0, 2.0)


@pytest.mark.parametrize("name", sorted(SPECTRA))
def test_make_spectrum_known_names(name):
    spec = make_spectrum(name, k0=0.01, k1=50.0)
    assert isinstance(spec, SPECTRA[name])
    assert spec.name == name
    assert (spec.k0, spec.k1) == (0.01, 50.0)
    d = spec.describe()
    assert d["spectrum"] == name and d["k0"] == 0.01 and d["k1"] == 50.0
    assert name in repr(spec).lower() or type(spec).__name__ in repr(spec)


@pytest.mark.parametrize("name", ["pink", "White", "", "kolmogorov "])
def test_make_spectrum_unknown_name_raises(name):
    with pytest.raises(ValueError, match="unknown spectrum"):
        make_spectrum(name)


@pytest.mark.parametrize("k0, k1, message", [
    (1e-3, float("inf"), "k1 must be a finite positive number"),
    (float("inf"), 1e2, "k0 must be a finite positive number"),
    (1e299, 1e300, "k0 must lie in"),
    (1e-3, 1e300, "k1 must lie in"),
    (1e-300, 1e2, "k0 must lie in"),
])
def test_out_of_range_wavenumbers_get_a_message_that_says_what_is_wrong(k0, k1, message):
    """Issue 11 defect 8: `--k1 inf` said `k1 must be larger than k0`, `--k0 1e299 --k1 1e300`
    ended in `Singular matrix`."""
    with pytest.raises(ValueError, match=message):
        make_spectrum("white", k0, k1)
