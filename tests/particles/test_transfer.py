"""The measured pair transition matrix (qltlib.particles.transfer, qlt transfer)."""
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from qltlib.particles.files import CorruptRealisationError
from qltlib.particles.transfer import (
    TransferSettings,
    chain_steady_state,
    gauss_legendre_grid,
    harmonic_power,
    load_measurement,
    markov_chain,
    measure_realisation,
    measure_transfer,
    real_harmonics,
    transfer_matrix_from_directions,
)
from qltlib.particles.transfer_run import (
    existing_parts,
    load_part,
    part_path,
    run_transfer,
)
from qltlib.particles.turbulence import uniform_field


def test_grid_integrates_harmonic_products_exactly():
    grid = gauss_legendre_grid(12)
    y = real_harmonics(grid.directions, 11)
    gram = (y * grid.weights) @ y.T
    assert np.allclose(gram, np.eye(gram.shape[0]), atol=1e-12)
    assert math.isclose(grid.weights.sum(), 4 * math.pi, rel_tol=1e-14)


def test_harmonic_power_of_a_single_harmonic():
    grid = gauss_legendre_grid(10)
    y = real_harmonics(grid.directions, 5)
    power = harmonic_power(grid, 2.0 * y[[16 + 4 + 1]], 9)        # Y_{4,1}, amplitude 2
    expected = np.zeros(10)
    expected[4] = 4.0
    assert np.allclose(power[0], expected, atol=1e-12)


def test_identity_map_gives_unit_matrix():
    grid = gauss_legendre_grid(14)
    matrix = transfer_matrix_from_directions(grid, grid.directions, 8)
    assert matrix.shape == (14, 9)
    assert np.allclose(matrix[:9], np.eye(9), atol=1e-12)
    assert np.allclose(matrix[9:], 0.0, atol=1e-12)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_rotation_leaves_every_cl_unchanged(seed):
    grid = gauss_legendre_grid(14)
    rotated = Rotation.random(random_state=seed).apply(grid.directions)
    matrix = transfer_matrix_from_directions(grid, rotated, 8)
    assert np.allclose(matrix[:9], np.eye(9), atol=1e-12)
    assert np.allclose(matrix[9:], 0.0, atol=1e-12)


def test_smooth_deformation_is_not_a_rotation_but_conserves_power():
    # p' = normalise(p + 0.3 z e_z): not a rotation, so M != 1, but sum_l (2l+1) M_{l l0} = 2 l0 + 1
    grid = gauss_legendre_grid(40)
    p = grid.directions
    moved = p + 0.3 * p[:, 2:3] * np.array([0.0, 0.0, 1.0])
    moved /= np.linalg.norm(moved, axis=1)[:, None]
    matrix = transfer_matrix_from_directions(grid, moved, 6)
    assert np.abs(np.diag(matrix[:7]) - 1).max() > 1e-2
    columns = ((2 * np.arange(40) + 1)[:, None] * matrix).sum(axis=0)
    assert np.allclose(columns, 2 * np.arange(7) + 1, rtol=1e-6)


def test_uniform_field_gives_unit_matrix():
    settings = TransferSettings(alpha=50.0, lmax=8, n_theta=12)
    matrix = measure_realisation(settings, 0, field=uniform_field([0.3, -0.5, 0.8]))
    assert np.allclose(matrix[:9], np.eye(9), atol=1e-10)
    assert np.allclose(matrix[9:], 0.0, atol=1e-10)


@pytest.fixture(scope="module")
def small_ensemble():
    return measure_transfer(TransferSettings(alpha=10.0, lmax=6, n_theta=16, n_modes=256), 6)


def test_conservation_law_on_the_simulation(small_ensemble):
    cons = small_ensemble.conservation()
    below, above, total = cons["below"][1:], cons["above"][1:], cons["total"][1:]
    # sum_{l <= L} (2l+1)(M - 1) < 0: power leaves l <= L, many standard errors from zero ...
    assert np.all(below < -5 * cons["below_err"][1:])
    # ... and reappears at L < l < n_theta: the column sums vanish to 1 % of the leak (the rest lies
    # beyond what the grid resolves, so it is missing, never added)
    assert np.all(np.abs(total) < 0.01 * np.abs(below)) and np.all(total <= 0)
    assert np.allclose(below + above, total, atol=1e-12)


def test_measured_matrix_is_a_damping_near_the_identity(small_ensemble):
    m, err = small_ensemble.matrix, small_ensemble.matrix_err
    assert m[0, 0] == pytest.approx(1.0, abs=1e-12)          # isotropy is kept
    diag = np.diag(m)[1:]
    assert np.all(np.diff(diag) < 0) and np.all(diag < 1) and np.all(diag > 0.5)
    assert np.all(err[1:, 1:] > 0)


def test_measurement_round_trips_through_npz(small_ensemble, tmp_path):
    path = tmp_path / "m.npz"
    small_ensemble.save(path)
    again = load_measurement(path)
    assert again.settings == small_ensemble.settings
    assert np.allclose(again.matrix, small_ensemble.matrix, rtol=1e-6, atol=1e-12)


def test_markov_chain_reaches_its_steady_state():
    m = np.array([[0.9, 0.05], [0.02, 0.8]])
    source = np.array([1.0, 0.0])
    chain = markov_chain(m, 0.5, source, 400)
    assert np.allclose(chain[-1], chain_steady_state(m, 0.5, source), rtol=1e-12)
    assert np.allclose(chain[1], 0.5 * source)


@pytest.mark.parametrize("kwargs", [dict(alpha=0.0), dict(lmax=0), dict(lmax=8, n_theta=5),
                                    dict(step_fraction=0.7), dict(precision="half"), dict(n_modes=0)])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        TransferSettings(**kwargs)


def _cli(*args, cache=None):
    # the default part store is a cache directory: keep the tests' parts out of the user's cache
    env = dict(os.environ, QLT_CACHE_DIR=str(cache or Path(tempfile.gettempdir()) / "qlt-test-cache"))
    return subprocess.run([sys.executable, "-m", "qltlib.cli", "transfer", *args],
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("args", [["--alpha", "-3"], ["--lmax", "1.5"], ["--realisations", "0"],
                                  ["--grid", "three"], ["--grid", "4"], ["--out", "m.json"],
                                  ["--spectrum", "pink"], ["--k0", "10", "--k1", "1"]])
def test_cli_bad_input_exits_2_with_one_line(args):
    proc = _cli(*args, "--no-progress")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_cli_prints_the_matrix_with_errors(tmp_path):
    out = tmp_path / "m.npz"
    proc = _cli("--alpha", "50", "--lmax", "4", "--realisations", "3", "--modes", "128", "--no-progress",
                "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    for key in ("alpha", "delta_t", "ell", "matrix", "matrix_err", "realisations", "settings"):
        assert key in result
    assert result["delta_t"] == pytest.approx(0.5)
    assert np.array(result["matrix"]).shape == (5, 5) == np.array(result["matrix_err"]).shape
    assert result["realisations"] == 3
    assert load_measurement(out).realisations == 3


def test_cli_help_shows_defaults_and_units():
    proc = _cli("--help")
    assert proc.returncode == 0
    assert "default: 50.0" in proc.stdout and "1/r_g" in proc.stdout


def test_register_adds_the_transfer_subcommand_to_the_qlt_parser():
    from qltlib.cli.common import ArgumentParser
    from qltlib.cli.transfer import register

    parser = ArgumentParser(prog="qlt")
    register(parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser))
    args = parser.parse_args(["transfer", "--alpha", "10", "--lmax", "6", "--grid", "auto"])
    assert (args.alpha, args.lmax, args.grid, args.realisations) == (10.0, 6, None, 20)
    assert callable(args.func)


TINY_TRANSFER = ["--alpha", "10", "--lmax", "2", "--grid", "3", "--modes", "16", "--no-progress"]


def test_cli_keeps_every_realisation_in_a_verified_part_store(tmp_path):
    first = json.loads(_cli(*TINY_TRANSFER, "--realisations", "3", cache=tmp_path).stdout)
    store = Path(first["store"])
    assert store.parent == tmp_path / "transfer" and first["written"] == 3
    assert existing_parts(store) == [0, 1, 2]
    manifest = (store / "manifest.json").read_bytes()
    again = _cli(*TINY_TRANSFER, "--realisations", "3", cache=tmp_path)
    assert json.loads(again.stdout)["skipped"] == 3 and json.loads(again.stdout)["written"] == 0
    assert (store / "manifest.json").read_bytes() == manifest          # a rerun changes no file
    part_path(store, 1).write_bytes(part_path(store, 1).read_bytes()[:100])     # truncated
    repaired = _cli(*TINY_TRANSFER, "--realisations", "3", cache=tmp_path)
    assert repaired.returncode == 0
    assert "matrix_00001.npz is unreadable" in repaired.stderr and "recomputing it" in repaired.stderr
    assert json.loads(repaired.stdout)["matrix"] == first["matrix"]


def test_store_refuses_other_settings_and_parts_that_contradict_it(tmp_path):
    settings = TransferSettings(alpha=10, lmax=2, n_theta=3, n_modes=16)
    run = run_transfer(settings, 2, store=tmp_path / "s", progress=False)
    assert run["measurement"].realisations == 2
    with pytest.raises(ValueError, match="different settings.*n_modes"):
        run_transfer(TransferSettings(alpha=10, lmax=2, n_theta=3, n_modes=32), 2,
                     store=tmp_path / "s", progress=False)
    other = run_transfer(TransferSettings(alpha=20, lmax=2, n_theta=3, n_modes=16), 1,
                         store=tmp_path / "o", progress=False)
    part_path(tmp_path / "s", 0).write_bytes(part_path(other["store"], 0).read_bytes())
    with pytest.raises(CorruptRealisationError, match="matrix_00000.npz contradicts the manifest.*alpha"):
        load_part(tmp_path / "s", 0, settings)


def test_parts_hold_every_one_step_term_from_one_backtracking(tmp_path):
    """Issue 21: one store for qlt transfer and the one-step predictor; M is bit for bit the
    matrix of measure_realisation, the other terms those of measure_step_realisation."""
    from qltlib.particles.one_step import measure_step_realisation
    from qltlib.particles.transfer_run import load_one_step_store, load_part_terms

    settings = TransferSettings(alpha=10, lmax=2, n_theta=3, n_modes=16)
    run = run_transfer(settings, 2, store=tmp_path / "s", progress=False)
    terms = load_part_terms(tmp_path / "s", 1, settings)
    assert np.array_equal(terms["matrix"], measure_realisation(settings, 1))
    expected = measure_step_realisation(settings, 1)
    for name in ("source", "cross", "m1", "p1", "msd1"):
        assert np.array_equal(terms[name], expected[name]), name
    assert terms["source"].shape == terms["cross"].shape == (3,) and terms["m1"].shape == ()
    one_step = load_one_step_store(tmp_path / "s")
    assert one_step.indices.tolist() == [0, 1] and one_step.settings == settings
    assert np.array_equal(one_step.matrix, run["measurement"].per_realisation)


def test_an_old_part_is_recognised_and_measured_again(tmp_path):
    """A part of the code before issue 21 (index, matrix, settings) is not corrupt but outdated:
    qlt transfer measures it again, with one line, and gets the same matrix."""
    from qltlib.particles.transfer_run import OutdatedPartError

    settings = TransferSettings(alpha=10, lmax=2, n_theta=3, n_modes=16)
    first = run_transfer(settings, 2, store=tmp_path / "s", progress=False)
    path = part_path(tmp_path / "s", 0)
    with np.load(path) as data:
        np.savez(path, **{name: data[name] for name in ("index", "matrix", "settings")})
    with pytest.raises(OutdatedPartError, match="matrix_00000.npz was written by an older qltlib"):
        load_part(tmp_path / "s", 0, settings)
    lines = []
    again = run_transfer(settings, 2, store=tmp_path / "s", progress=False, report=lines.append)
    assert again["written"] == [0] and again["skipped"] == [1] and again["repaired"] == [0]
    assert [line for line in lines if "older qltlib" in line and line.endswith("recomputing it")]
    assert np.array_equal(again["measurement"].per_realisation, first["measurement"].per_realisation)


def test_outdated_parts_of_the_same_age_are_reported_in_one_line(tmp_path):
    settings = TransferSettings(alpha=10, lmax=2, n_theta=3, n_modes=16)
    run_transfer(settings, 3, store=tmp_path / "s", progress=False)
    for index in range(3):
        path = part_path(tmp_path / "s", index)
        with np.load(path) as data:
            np.savez(path, **{name: data[name] for name in ("index", "matrix", "settings")})
    lines = []
    again = run_transfer(settings, 3, store=tmp_path / "s", progress=False, report=lines.append)
    assert again["written"] == again["repaired"] == [0, 1, 2]
    outdated = [line for line in lines if "older qltlib" in line]
    assert outdated == [outdated[0]] and outdated[0].startswith(
        "3 parts (matrix_00000.npz ... matrix_00002.npz) were written by an older qltlib "
        "(without the one-step terms ")
    assert outdated[0].endswith("; recomputing them")


def test_a_part_with_a_bad_term_is_corrupt(tmp_path):
    settings = TransferSettings(alpha=10, lmax=2, n_theta=3, n_modes=16)
    run_transfer(settings, 1, store=tmp_path / "s", progress=False)
    path = part_path(tmp_path / "s", 0)
    for name, value in (("source", np.zeros(5)), ("p1", np.float64(np.nan))):
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
        np.savez(path, **dict(arrays, **{name: value}))
        with pytest.raises(CorruptRealisationError, match=f"contradicts the manifest.*{name}"):
            load_part(tmp_path / "s", 0, settings)
        np.savez(path, **arrays)
