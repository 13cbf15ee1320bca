"""`qlt spectrum --method transfer`: the steady state of the one-step recursion (issue 21).

Tiny runs (alpha 10, lmax 2, grid 4, 16 modes, 3 realisations: 32 particles, 250 steps, about a
second each); the default part store is a cache directory, kept under ``tmp_path`` here.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_checks import assert_one_line_error

from qltlib.cli.main import build_parser
from qltlib.cli.spectrum import DEFAULT_TRANSFER_REALISATIONS, _resolve_method_options
from qltlib.particles.transfer import TransferSettings
from qltlib.particles.transfer_run import (
    default_store,
    existing_parts,
    load_one_step_store,
    part_path,
)
from qltlib.paths import DATA_DIR

REPO = Path(__file__).resolve().parents[2]
TINY = ["--alpha", "10", "--lmax", "2", "--grid", "4", "--modes", "16", "--no-progress"]
TINY_SETTINGS = TransferSettings(alpha=10, lmax=2, n_theta=4, n_modes=16)




def _drift_1600_to_3200() -> str:
    """The paired change of K from alpha 1600 to 3200 as the stored scan measures it
    (data/one_step/comparison.json), as the command's help and notes quote it."""
    drift = json.loads((DATA_DIR / "one_step" / "comparison.json").read_text())
    row = next(r for r in drift["spectra"]["white"]["drift"] if (r["from"], r["to"]) == (1600, 3200))
    value, err = row["dK"]
    return f"{abs(value):.2f} +- {err:.2f} r_g c from alpha"


#: the help and the notes must quote what the stored scan measures
_MEASURED_DRIFT = _drift_1600_to_3200()

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
    assert any("not yet validated" in note for note in out["notes"])
    assert any(_MEASURED_DRIFT in note for note in out["notes"])


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
    assert "matrix_00001.npz was written by an older qltlib (M only, without the one-step " \
           "terms source, cross, m1, p1, msd1, seconds); recomputing it" in stderr
    assert again["C_ell"] == first["C_ell"]               # the same field, the same particles
    assert existing_parts(store) == [0, 1, 2]


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
    assert (transfer.alpha, transfer.lmax, transfer.modes, transfer.seed) == (1600.0, 16, 1024, 2019)
    assert transfer.grid is None and transfer.realisations is None      # 4 (L+1) and the default
    assert DEFAULT_TRANSFER_REALISATIONS >= 2


def test_help_says_what_the_result_depends_on():
    text = " ".join(build_parser()._subparsers._group_actions[0].choices["spectrum"]
                    .format_help().split())
    for words in ("NOT YET VALIDATED", _MEASURED_DRIFT, "aliasing floor subtracted",
                  "4 (lmax + 1), 68 rings", "C_8 17 % low at alpha 1600", "1600 with --method transfer",
                  "16 with --method transfer"):
        assert words in text, words
