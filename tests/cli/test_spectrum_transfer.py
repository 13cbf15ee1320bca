"""`qlt spectrum --method transfer`: the steady state of the one-step recursion (issue 21).

Tiny runs (alpha 10, lmax 2, grid 4, 16 modes, 3 realisations: 32 particles, 250 steps, about a
second each); the default part store is a cache directory, kept under ``tmp_path`` here.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_checks import assert_one_line_error

from qltlib.cli.main import build_parser
from qltlib.cli import spectrum as spectrum_cli
from qltlib.cli.main import main as qlt_main
from qltlib.cli.spectrum import _resolve_method_options, next_realisations
from qltlib.particles.transfer import TransferSettings
from qltlib.particles.transfer_run import (
    default_store,
    existing_parts,
    load_one_step_store,
    part_path,
)
from qltlib.paths import DATA_DIR
from qltlib.validation import one_step_check

REPO = Path(__file__).resolve().parents[2]
TINY = ["--alpha", "10", "--lmax", "2", "--grid", "4", "--modes", "16", "--no-progress"]
TINY_SETTINGS = TransferSettings(alpha=10, lmax=2, n_theta=4, n_modes=16)




_COMPARISON = json.loads((DATA_DIR / "one_step" / "comparison.json").read_text())


def _drift(a: float, b: float) -> tuple:
    """The paired change of K from alpha a to b as the stored scan measures it
    (data/one_step/comparison.json)."""
    row = next(r for r in _COMPARISON["spectra"]["white"]["drift"] if (r["from"], r["to"]) == (a, b))
    return abs(row["dK"][0]), row["dK"][1]


def _quoted() -> list:
    """What the help and the notes quote, formatted from the stored comparison."""
    own = _COMPARISON["spectra"]["white"]["runs"]["white_alpha3200_grid68_modes256"]["without_floor"]
    longest = [next(r["dK"] for r in _COMPARISON["spectra"][name]["drift_families"]["modes256"]
                    if (r["from"], r["to"]) == (64000, 128000)) for name in ("kolmogorov", "flat3d")]
    return ["{:.2f} +- {:.2f} r_g c from alpha".format(*_drift(1600, 3200)),
            "{:.2f} +- {:.2f} from 3200 to 6400".format(*_drift(3200, 6400)),
            f"chi2 = {own['chi2']:.1f} for 16 multipoles (p = {own['p']:.2f})",
            "K by {:+.1f} +- {:.1f} and {:+.1f} +- {:.1f} r_g c from 64000".format(*longest[0],
                                                                                   *longest[1])]


#: the help and the notes must quote what the stored scan measures
_MEASURED = _quoted()


def qlt(*args, cache):
    env = dict(os.environ, QLT_CACHE_DIR=str(cache))
    return subprocess.run([sys.executable, "-m", "qltlib.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=env)


def spectrum(*args, cache):
    proc = qlt("spectrum", "--method", "transfer", *TINY, *args, cache=cache)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def test_json_is_the_steady_state_of_the_stored_terms(tmp_path):
    out, _ = spectrum("--realisations", 3, cache=tmp_path)
    assert out["method"] == "transfer" and out["ell"] == [1, 2] and out["realisations"] == 3
    assert out["written"] == 3 and out["skipped"] == 0
    assert Path(out["store"]) == tmp_path / "transfer" / default_store(TINY_SETTINGS).name
    # the grid's aliasing floor is subtracted (rows l >= 3 of the 4-ring grid)
    steady = load_one_step_store(out["store"]).without_floor().steady_state()
    assert out["C_ell"] == pytest.approx(steady["C"].tolist(), rel=1e-12)
    assert out["C_ell_err"] == pytest.approx(steady["C_err"].tolist(), rel=1e-12)
    assert out["K"] == pytest.approx(steady["K"], rel=1e-12) and out["K_err"] > 0
    assert all(e > 0 for e in out["C_ell_err"])
    settings = out["settings"]
    assert (settings["n_theta"], settings["n_particles"], settings["delta_t"]) == (4, 32, 0.1)
    assert settings["index"] == 0.0 and settings["seed"] == 2019
    assert any("validated for the flat (white) spectrum" in note for note in out["notes"])
    for words in _MEASURED:
        assert any(words in note for note in out["notes"]), words
    assert 0 < out["P1"] < 1 and out["P1_err"] > 0
    # the quenched closure of the same particles, per realisation and then the mean
    quenched = load_one_step_store(out["store"]).without_floor().quenched()
    assert out["quenched"]["C_ell"] == pytest.approx(quenched["C"].tolist(), rel=1e-12)
    assert out["quenched"]["K"] == pytest.approx(quenched["K"], rel=1e-12)
    assert out["quenched"]["K_err"] == pytest.approx(quenched["K_err"], rel=1e-12)
    assert out["quenched"]["P_parallel"] >= out["P1"]
    assert any(note.startswith("the quenched closure") for note in out["notes"])
    # its own step check: the drift from the half step, without the Markov closure's mean test
    from qltlib.particles.transfer_run import load_one_step_store as load
    from qltlib.validation.one_step_check import step_check

    own = step_check(load(out["store"], half_step=True).without_floor(),
                     load(out["store"]).without_floor(), lmax=2, closure="quenched")
    check = out["quenched"]["step_check"]
    assert check["verdict"] == own["verdict"] and "mean_excess" not in check
    assert check["dlnK"] == pytest.approx(own["dlnK"][0], rel=1e-12)
    note = next(n for n in out["notes"] if n.startswith("the quenched closure"))
    singular = not (out["quenched"]["K"] > 0 and out["quenched"]["P_parallel"] < 1)
    assert ("has no steady state here" in note) == singular      # alpha 10: P_par ~ 1
    assert singular or f"its step check {own['verdict']}" in note


def test_the_quenched_note_quotes_its_own_step_check():
    from qltlib.cli.spectrum import _quenched_note

    steady = {"C": [2.0], "K": 1.0, "K_err": 0.1}
    quenched = {"C_ell": [3.0], "K": 1.5, "K_err": 0.2, "P_parallel": 0.4}
    check = {"dlnK": (-0.05, 0.02), "dlnC": {1: (0.01, 0.03)}, "verdict": "passed"}
    note = _quenched_note(steady, quenched, check)
    assert "K = 1.5 +- 0.2 r_g c against 1 +- 0.1" in note and "1.5 times its dipole" in note
    assert note.endswith("changed by K -5.0 +- 2.0 %, C_1 +1.0 +- 3.0 %: its step check passed")


def test_second_call_is_a_cache_hit_shared_with_qlt_transfer(tmp_path):
    first, _ = spectrum("--realisations", 3, cache=tmp_path)
    store = Path(first["store"])
    manifest = (store / "manifest.json").read_bytes()
    stamps = {p.name: p.stat().st_mtime_ns for p in store.iterdir()}
    again, _ = spectrum("--realisations", 3, cache=tmp_path)
    assert again["written"] == 0 and again["skipped"] == 3 and again["store"] == str(store)
    assert again["C_ell"] == first["C_ell"] and again["K"] == first["K"]
    # qlt transfer with the same settings finds the same parts ...
    proc = qlt("transfer", *TINY, "--realisations", 3, cache=tmp_path)
    transfer = json.loads(proc.stdout)
    assert transfer["store"] == str(store) and transfer["written"] == 0 and transfer["skipped"] == 3
    # ... and nobody changed a file
    assert (store / "manifest.json").read_bytes() == manifest
    assert {p.name: p.stat().st_mtime_ns for p in store.iterdir()} == stamps


def test_transfer_parts_serve_the_spectrum_and_fewer_realisations_use_the_first(tmp_path):
    proc = qlt("transfer", *TINY, "--realisations", 4, cache=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out, _ = spectrum("--realisations", 3, cache=tmp_path)
    assert out["written"] == 0 and out["skipped"] == 3 and out["realisations"] == 3
    more, _ = spectrum("--realisations", 5, cache=tmp_path)
    assert more["written"] == 1 and more["skipped"] == 4 and more["realisations"] == 5


def _write_old_part(store, index):
    """Part ``index`` as the code before issue 21 wrote it: index, matrix, settings only."""
    path = part_path(store, index)
    with np.load(path) as data:
        old = {name: data[name] for name in ("index", "matrix", "settings")}
    np.savez(path, **old)


def test_an_old_part_is_recomputed_with_one_line(tmp_path):
    first, _ = spectrum("--realisations", 3, cache=tmp_path)
    store = first["store"]
    _write_old_part(store, 1)
    lines = []
    measurement = load_one_step_store(store, report=lines.append)      # a loader leaves it out
    assert measurement.indices.tolist() == [0, 2] and len(lines) == 1
    assert "matrix_00001.npz was written by an older qltlib" in lines[0] and "left out" in lines[0]
    again, stderr = spectrum("--realisations", 3, cache=tmp_path)
    assert again["written"] == 1 and again["skipped"] == 2
    assert "matrix_00001.npz was written by an older qltlib (without the one-step terms " \
           "source, cross, m1, p1, msd1, mean_tensor, direction_tensor, residual_gram, " \
           "seconds, half_matrix, half_source, half_cross, half_m1, half_p1, half_msd1, " \
           "half_mean_tensor, half_direction_tensor, half_residual_gram, half_time); " \
           "recomputing it" in stderr
    assert again["C_ell"] == first["C_ell"]               # the same field, the same particles
    assert existing_parts(store) == [0, 1, 2]


def test_a_part_without_the_half_step_is_recomputed_with_one_line(tmp_path):
    """A part of the code before the step check (every one-step term, no half step)."""
    first, _ = spectrum("--realisations", 3, cache=tmp_path)
    store = first["store"]
    path = part_path(store, 2)
    with np.load(path) as data:
        np.savez(path, **{name: data[name] for name in data.files if not name.startswith("half_")})
    again, stderr = spectrum("--realisations", 3, cache=tmp_path)
    assert again["written"] == 1 and again["skipped"] == 2
    assert "matrix_00002.npz was written by an older qltlib (without the half-step terms " \
           "half_matrix, half_source, half_cross, half_m1, half_p1, half_msd1, " \
           "half_mean_tensor, half_direction_tensor, half_residual_gram, half_time); " \
           "recomputing it" in stderr
    assert again["C_ell"] == first["C_ell"] and again["step_check"] == first["step_check"]


def test_a_part_without_the_direction_resolved_terms_is_recomputed_with_one_line(tmp_path):
    """A part of the code before the quenched closure (every other term)."""
    first, _ = spectrum("--realisations", 3, cache=tmp_path)
    store = first["store"]
    path = part_path(store, 0)
    with np.load(path) as data:
        np.savez(path, **{name: data[name] for name in data.files
                          if name.removeprefix("half_") not in ("mean_tensor", "direction_tensor",
                                                                "residual_gram")})
    again, stderr = spectrum("--realisations", 3, cache=tmp_path)
    assert again["written"] == 1 and again["skipped"] == 2
    assert "matrix_00000.npz was written by an older qltlib (without the direction-resolved " \
           "terms mean_tensor, direction_tensor, residual_gram, half_mean_tensor, " \
           "half_direction_tensor, half_residual_gram); recomputing it" in stderr
    assert again["C_ell"] == first["C_ell"] and again["step_check"] == first["step_check"]


def test_an_odd_number_of_integration_steps_puts_the_half_step_one_step_short(tmp_path):
    from qltlib.particles.transfer import nominal_step

    # alpha 10.5: Delta T = 0.105 takes 19 steps (k_max = 69.8 of the 16 modes), the half
    # step 9 of them; the check still pairs them as a step and its half
    settings = TransferSettings(alpha=10.5, lmax=2, n_theta=4, n_modes=16)
    steps = math.ceil(settings.delta_t / nominal_step(settings))
    assert steps == 19
    out, _ = spectrum("--realisations", 3, "--alpha", 10.5, cache=tmp_path)
    assert out["step_check"]["alpha_half"] == pytest.approx(10.5 * 9 / 19, rel=1e-12)
    assert out["step_check"]["verdict"] in ("passed", "unresolved", "failed")


def test_the_step_check_compares_the_step_with_its_half(tmp_path):
    out, _ = spectrum("--realisations", 3, cache=tmp_path)
    check = out["step_check"]
    half = load_one_step_store(out["store"], half_step=True).without_floor()
    full = load_one_step_store(out["store"]).without_floor()
    # the tiny step takes 20 integration steps of 0.005 / Omega: the half step is 10 of them
    assert check["alpha_half"] == pytest.approx(5.0) and half.settings.alpha == check["alpha_half"]
    assert check["K_half"] == pytest.approx(half.steady_state()["K"], rel=1e-12)
    assert check["ell"] == [1, 2] and len(check["dlnC"]) == len(check["dlnC_err"]) == 2
    ratio = full.steady_state()["C"] / half.steady_state()["C"] - 1
    assert check["dlnC"] == pytest.approx(ratio.tolist(), rel=1e-12)
    assert check["dlnK"] == pytest.approx(out["K"] / check["K_half"] - 1, rel=1e-12)
    two_halves = half.m1.mean() * (1 + half.p1.mean()) / full.m1.mean() - 1
    assert check["mean_excess"] == pytest.approx(two_halves, rel=1e-9, abs=1e-12)
    assert check["verdict"] in ("passed", "unresolved", "failed")
    assert check["settled"] == (check["verdict"] == "passed")
    assert (check["verdict"] == "failed") == bool(check["moved"])
    verdict = [note for note in out["notes"] if note.lower().startswith("step check")]
    assert len(verdict) == 1 and "from alpha 5 to 10" in verdict[0]
    opening = {"failed": "STEP CHECK FAILED", "unresolved": "step check unresolved",
               "passed": "step check passed"}[check["verdict"]]
    assert verdict[0].startswith(opening)


@pytest.mark.parametrize("args, words", [
    (["--method", "transfer", "--kg2", "1"], ["--kg2 only with --method qlt"]),
    (["--method", "transfer", "--no-coupling"], ["--no-coupling only with --method qlt"]),
    (["--method", "transfer", "--source", "paper"], ["--source only with --method qlt"]),
    (["--modes", "16"], ["--modes only with --method transfer"]),
    (["--seed", "0"], ["--seed only with --method transfer"]),
    (["--method", "qlt", "--realisations", "3", "--store", "x"],
     ["--realisations, --store only with --method transfer"]),
    (["--no-progress"], ["--no-progress"]),
    (["--method", "transfer", "--realisations", "1"], ["realisations", ">= 2"]),
    (["--method", "transfer", "--lmax", "4", "--grid", "4"], ["n_theta", ">= lmax + 1 = 5"]),
    (["--method", "transfer", "--k0", "10", "--k1", "1"], ["k1"]),
    (["--method", "transfer", "--spectrum", "pink"], ["spectrum"]),
    (["--method", "transfer", "--step-fraction", "0.9"], ["step fraction"]),
    (["--method", "transfer", "--alpha", "-1"], ["alpha"]),
    (["--method", "transfer", "--workers", "0"], ["workers"]),
    (["--method", "transfer", "--store", "/proc/one-step-store", *TINY], ["/proc/one-step-store"]),
    (["--method", "fast"], ["--method"]),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, words):
    assert_one_line_error(qlt("spectrum", *args, cache=tmp_path), *words)
    assert not (tmp_path / "transfer").exists()            # refused before any store is made


def _parsed(*argv):
    args = build_parser().parse_args(["spectrum", *argv])
    _resolve_method_options(args)
    return args


def test_defaults_depend_on_the_method():
    qlt_args = _parsed()
    assert (qlt_args.alpha, qlt_args.lmax, qlt_args.kg2, qlt_args.source) == (50.0, 100, 1e-4, "derived")
    transfer = _parsed("--method", "transfer")
    assert (transfer.alpha, transfer.lmax, transfer.modes, transfer.seed) == (3200.0, 16, 256, 2019)
    assert transfer.grid is None and transfer.realisations is None      # 4 (L+1) and the default


def test_the_default_number_of_realisations_aims_at_the_target_error():
    assert next_realisations(20, 0.2) == 90            # 1.1 * 20 * 4 = 88, in tens
    assert next_realisations(20, 0.105) == 30          # at least ten more
    assert next_realisations(60, 0.121) == 100         # 96.6, and the ceiling
    assert next_realisations(90, 0.5) == 100
    assert next_realisations(20, float("inf")) == 100  # a C_l not positive


def test_without_realisations_the_store_is_extended_until_the_target(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QLT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(spectrum_cli, "FIRST_TRANSFER_REALISATIONS", 3)
    monkeypatch.setattr(spectrum_cli, "MAX_TRANSFER_REALISATIONS", 5)
    monkeypatch.setattr(spectrum_cli, "TARGET_RELATIVE_ERROR", 1e-9)      # never met
    argv = ["spectrum", "--method", "transfer", *TINY]
    assert qlt_main(argv) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["realisations"] == 5 and out["written"] == 5 and out["skipped"] == 0
    assert "with 3 realisations; extending to 5" in captured.err
    # the same command again: the same rounds, nothing measured, the same numbers
    assert qlt_main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["realisations"], again["written"], again["skipped"]) == (5, 0, 5)
    assert again["C_ell"] == out["C_ell"]
    # a target already met, and a step check resolved, stop at the first round
    monkeypatch.setattr(spectrum_cli, "TARGET_RELATIVE_ERROR", 1e9)
    monkeypatch.setattr(one_step_check, "STEP_TOLERANCE", 1e9)
    assert qlt_main([*argv, "--seed", "7"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["realisations"] == 3 and first["step_check"]["verdict"] == "passed"


def test_an_unresolved_step_check_extends_the_store(tmp_path, monkeypatch, capsys):
    """Without --realisations, realisations are added until two errors of every change the step
    check tests fall to its tolerance (here: a tolerance that no change reaches, so nothing
    moves, and two errors exceed it until the ceiling)."""
    monkeypatch.setenv("QLT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(spectrum_cli, "FIRST_TRANSFER_REALISATIONS", 3)
    monkeypatch.setattr(spectrum_cli, "MAX_TRANSFER_REALISATIONS", 5)
    monkeypatch.setattr(spectrum_cli, "TARGET_RELATIVE_ERROR", 1e9)      # always met
    real = one_step_check.step_check

    def unresolved(*args, **kwargs):
        check = real(*args, **kwargs)
        return dict(check, moved=[], unresolved=["C_1"], verdict="unresolved", settled=False)

    monkeypatch.setattr(one_step_check, "step_check", unresolved)
    assert qlt_main(["spectrum", "--method", "transfer", *TINY]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["realisations"] == 5
    assert "step check unresolved (C_1: two errors up to" in captured.err
    assert "with 3 realisations; extending to 5" in captured.err


def test_help_says_what_the_result_depends_on():
    text = " ".join(build_parser()._subparsers._group_actions[0].choices["spectrum"]
                    .format_help().split())
    for words in ("VALIDATED FOR THE FLAT SPECTRUM", *_MEASURED[:3], "aliasing floor subtracted",
                  "4 (lmax + 1), 68 rings", "C_8 17 % low at alpha 1600", "3200 with --method transfer",
                  "16 with --method transfer", "default: 256"):
        assert words in text, words
