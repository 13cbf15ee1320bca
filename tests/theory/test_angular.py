"""Angular algebra: Wigner symbols against sympy, matrix elements against sphere quadrature."""
import numpy as np
import pytest
from sympy.physics.wigner import wigner_3j, wigner_6j

from qltlib.theory.angular import (
    CouplingTables,
    brute_force_coupling,
    coupling_tables,
    wigner3j_zero,
    wigner6j,
)


def test_3j_against_sympy():
    rng = np.random.default_rng(3)
    for _ in range(200):
        a, b = rng.integers(0, 150, 2)
        c = rng.integers(abs(a - b), a + b + 1)
        exact = float(wigner_3j(int(a), int(b), int(c), 0, 0, 0))
        value = float(wigner3j_zero(a, b, c))
        assert value == pytest.approx(exact, rel=1e-11, abs=1e-300)


def test_3j_selection_rules():
    assert wigner3j_zero(1, 1, 1) == 0.0          # odd sum
    assert wigner3j_zero(1, 1, 3) == 0.0          # triangle violated
    assert wigner3j_zero(0, 2, 0) == 0.0          # the (l0 2 l0) at l0 = 0


def test_6j_against_sympy_with_a_two():
    rng = np.random.default_rng(4)
    for _ in range(150):
        l, l0 = rng.integers(0, 100), rng.integers(1, 100)
        la = rng.integers(abs(l - l0), l + l0 + 1)
        lb = la + rng.choice([-2, 0, 2])
        if lb < 0:
            continue
        exact = float(wigner_6j(2, int(l0), int(l0), int(l), int(la), int(lb)))
        assert float(wigner6j(2, l0, l0, l, la, lb)) == pytest.approx(exact, rel=1e-9, abs=1e-14)


def test_6j_general_small():
    for args in [(1, 2, 3, 2, 1, 2), (3, 3, 3, 3, 3, 3), (4, 2, 2, 2, 4, 4), (5, 3, 2, 1, 4, 3)]:
        assert float(wigner6j(*args)) == pytest.approx(float(wigner_6j(*args)), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("l0", range(0, 5))
def test_matrix_elements_against_sphere_quadrature(l0):
    """Paper eqs. (3.12)+(3.13), phase i^(lA+lB), against direct quadrature for l, l0 <= 4."""
    tables = coupling_tables(8)
    for l in range(0, 5):
        for la in range(0, 9):
            for lb in range(max(0, la - 2), la + 3, 2):
                kappa = np.zeros((17, 17))
                kappa[la, lb] = kappa[lb, la] = 1.0
                scalar, tensor = tables.contract(kappa)
                expected = brute_force_coupling(l, l0, la, lb)
                if lb != la:
                    expected += brute_force_coupling(l, l0, lb, la)
                assert scalar[l, l0] + tensor[l, l0] == pytest.approx(expected, rel=1e-10, abs=1e-10), (l, l0, la, lb)


def test_monopole_column_vanishes():
    """Every 1c term carries l0(l0+1): an isotropic state does not feed higher multipoles."""
    tables = coupling_tables(10)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(21, 21))
    scalar, tensor = tables.contract(a @ a.T)
    assert np.all(scalar[:, 0] == 0) and np.all(tensor[:, 0] == 0)


def test_tables_are_cached_on_disk(tmp_path, monkeypatch):
    import qltlib.theory.angular as angular
    monkeypatch.setenv("QLT_CACHE_DIR", str(tmp_path))
    angular._load_or_build.cache_clear()
    angular._largest_tables.clear()
    first = CouplingTables(6)
    assert list(tmp_path.glob("coupling_lmax6_*.npz"))
    angular._load_or_build.cache_clear()
    angular._largest_tables.clear()
    second = CouplingTables(6)
    np.testing.assert_array_equal(first.tensor, second.tensor)
    angular._load_or_build.cache_clear()
    angular._largest_tables.clear()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_cache_file_is_reported_and_rebuilt(tmp_path, monkeypatch, capsys, damage):
    """Issue 11 defect 3: a truncated cache file gave a zipfile.BadZipFile traceback."""
    import qltlib.theory.angular as angular
    monkeypatch.setenv("QLT_CACHE_DIR", str(tmp_path))
    fresh = angular._load_or_build_exact(6)
    (path,) = tmp_path.glob("coupling_lmax6_*.npz")
    content = path.read_bytes()
    path.write_bytes({"truncate": content[: len(content) // 2], "garbage": b"x" * 4096,
                      "empty": b""}[damage])
    capsys.readouterr()
    rebuilt = angular._load_or_build_exact(6)
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "unreadable" in err and path.name in err and "rebuilding" in err
    for key in ("l_a", "scalar", "tensor"):
        np.testing.assert_array_equal(rebuilt[key], fresh[key])
    assert path.read_bytes() == content          # the file was rewritten whole
    angular._load_or_build_exact(6)
    assert capsys.readouterr().err == ""         # and is trusted again


def test_cache_file_with_wrong_shapes_is_rebuilt(tmp_path, monkeypatch, capsys):
    import qltlib.theory.angular as angular
    monkeypatch.setenv("QLT_CACHE_DIR", str(tmp_path))
    angular._load_or_build_exact(6)
    (path,) = tmp_path.glob("coupling_lmax6_*.npz")
    small = angular._build_tables(4)
    with open(path, "wb") as fh:
        np.savez(fh, **small)
    rebuilt = angular._load_or_build_exact(6)
    assert rebuilt["tensor"].shape == (7, 7, 7, 3)
    assert "unexpected shape" in capsys.readouterr().err
