"""Ensemble driver, summaries and the `simulate` / `summarize` sub-commands (qltlib.simulate)."""
import argparse
import contextlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import healpy as hp
import numpy as np
import pytest

from qltlib import simulate_cli
from qltlib.simulate import (SettingsMismatchError, SimulationSettings, existing_realisations,
                             pixel_directions, realisation_seed, realisation_statistics,
                             run_ensemble, run_realisation, summarize, white_noise_level)

REPO = Path(__file__).resolve().parents[1]
TINY = dict(nside=2, times=(1.0, 2.0), n_modes=24, seed=7, spectrum="white", k0=1e-2, k1=1e1)


@pytest.mark.parametrize("bad, message", [
    (dict(nside=3), "nside must be a power of two"),
    (dict(nside=0), "nside must be a power of two"),
    (dict(times=(-1.0, 2.0)), "times must be positive"),
    (dict(times=(2.0, 1.0)), "strictly increasing"),
    (dict(k0=10.0, k1=1.0), "k1 must be larger than k0"),
    (dict(spectrum="pink"), "unknown spectrum"),
    (dict(step_fraction=0.9), "step fraction"),
    (dict(n_modes=0), "number of modes"),
])
def test_bad_settings_raise_value_error(bad, message):
    with pytest.raises(ValueError, match=message):
        SimulationSettings(**{**TINY, **bad})


def test_realisation_seeds_are_spawned_children():
    children = np.random.SeedSequence(123).spawn(5)
    for i, child in enumerate(children):
        assert realisation_seed(123, i).generate_state(4).tolist() == child.generate_state(4).tolist()


def test_run_realisation_is_deterministic_and_seed_dependent():
    settings = SimulationSettings(**TINY)
    a, b = run_realisation(settings, 3), run_realisation(settings, 3)
    c = run_realisation(settings, 4)
    assert a["delta_r"].shape == (2, hp.nside2npix(2), 3)
    np.testing.assert_array_equal(a["delta_r"], b["delta_r"])
    assert not np.allclose(a["delta_r"], c["delta_r"])
    assert a["max_speed_error"] < 1e-12
    # back-tracked particles can never be further than c t from the observer
    assert np.max(np.linalg.norm(a["delta_r"][-1], axis=1)) <= a["times"][-1] * (1 + 1e-12)


def test_liouville_mapping_of_a_pure_dipole():
    """Delta r = -a p gives dI = -a p.G: C_1 = 4 pi a^2 / 9 for |G| = 1, no higher l, no noise."""
    a = 2.5
    directions = pixel_directions(8)
    stats = realisation_statistics(-a * directions[None], [1.0])
    cl = stats["C_ell"][0]
    assert math.isclose(cl[1], 4 * math.pi * a ** 2 / 9, rel_tol=1e-3)
    assert np.max(np.abs(cl[2:])) < 1e-4 * cl[1]
    assert stats["shot_noise"][0] < 1e-20
    assert math.isclose(stats["msd"][0], a ** 2, rel_tol=1e-12)


def test_white_noise_level_matches_uncorrelated_and_shuffled_maps():
    rng = np.random.default_rng(9)
    nside, sigma = 16, 3.0
    n_pix = hp.nside2npix(nside)
    expected = 4 * math.pi * sigma ** 2 / n_pix
    levels, spectra = [], []
    for _ in range(20):
        noise_map = rng.normal(0.0, sigma, n_pix)
        levels.append(white_noise_level(noise_map))
        spectra.append(hp.anafast(noise_map, use_pixel_weights=False)[2:])
    assert abs(np.mean(levels) / expected - 1) < 0.01
    measured = np.mean(spectra)
    # mean over 20 maps x ~2300 a_lm: relative sampling error ~ sqrt(2/46000) = 0.7 %
    assert abs(measured / expected - 1) < 0.03
    # a correlated map with its pixels shuffled: estimator == anafast level of the shuffled map
    correlated = hp.synfast(1.0 / (1.0 + np.arange(3 * nside)) ** 2, nside, lmax=3 * nside - 1)
    shuffled_spectra = [hp.anafast(rng.permutation(correlated), use_pixel_weights=False)[2:].mean()
                        for _ in range(20)]
    shuffled_level = np.mean(shuffled_spectra)
    variance_level = 4 * math.pi * np.var(correlated) / n_pix
    assert abs(shuffled_level / variance_level - 1) < 0.05


def test_noise_estimator_removes_resolved_signal():
    """White noise on top of a signal at l <= L: the L-corrected estimator is unbiased, the plain
    residual variance is not."""
    rng = np.random.default_rng(21)
    nside, sigma = 16, 1.0
    n_pix = hp.nside2npix(nside)
    expected = 4 * math.pi * sigma ** 2 / n_pix
    lmax_signal = 2 * nside
    signal_cl = np.zeros(3 * nside)
    signal_cl[2:12] = 0.3 / np.arange(2, 12) ** 2      # signal variance ~ noise variance / 10
    corrected, plain = [], []
    np.random.seed(3)                                     # synfast draws from the legacy global state
    for _ in range(10):
        m = hp.synfast(signal_cl, nside, lmax=3 * nside - 1) + rng.normal(0, sigma, n_pix)
        cl = hp.anafast(m, lmax=lmax_signal, use_pixel_weights=False)
        corrected.append(white_noise_level(m, cl, lmax_signal))
        plain.append(white_noise_level(m))
    error = np.std(corrected, ddof=1) / math.sqrt(len(corrected))
    assert error < 0.03 * expected
    assert abs(np.mean(corrected) - expected) < 4 * error
    assert np.mean(plain) / expected - 1 > 0.05          # biased by the resolved signal
    with pytest.raises(ValueError, match="no modes"):
        white_noise_level(m, cl, lmax_signal=60)


def test_ensemble_resume_and_manifest(tmp_path):
    settings = SimulationSettings(**TINY)
    out = tmp_path / "run"
    first = run_ensemble(settings, out, 2, progress=False)
    assert first["written"] == [0, 1] and first["total"] == 2
    second = run_ensemble(settings, out, 3, progress=False)
    assert second["written"] == [2] and second["skipped"] == [0, 1]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["nside"] == 2 and manifest["realisations"] == 3
    with np.load(out / "realisation_00002.npz") as data:
        np.testing.assert_array_equal(data["delta_r"],
                                      run_realisation(settings, 2)["delta_r"].astype(np.float32))
    other = SimulationSettings(**{**TINY, "n_modes": 25})
    with pytest.raises(SettingsMismatchError, match="n_modes"):
        run_ensemble(other, out, 3, progress=False)

    summary = summarize(out)
    assert (out / "statistics.npz").exists()
    cached, fresh = summarize(out), summarize(out, cache=False)
    for key in ("C_ell", "C_ell_err", "shot_noise", "diffusion_coefficient"):
        np.testing.assert_allclose(cached[key], fresh[key], rtol=1e-12)
        np.testing.assert_allclose(summary[key], fresh[key], rtol=1e-12)
    assert summary["realisations"] == 3
    assert len(summary["C_ell"]) == 2 and len(summary["ell"]) == 3 * 2
    msd = summary["per_realisation"]["msd"]
    np.testing.assert_allclose(summary["diffusion_coefficient"],
                               msd.mean(axis=0) / (6 * np.array(summary["times"])))
    assert np.all(np.array(summary["C_ell_err"]) > 0)


def test_local_process_pool_gives_identical_files(tmp_path):
    settings = SimulationSettings(**TINY)
    run_ensemble(settings, tmp_path / "serial", 2, progress=False)
    run_ensemble(settings, tmp_path / "pool", 2, workers=2, progress=False)
    for i in range(2):
        with np.load(tmp_path / "serial" / f"realisation_{i:05d}.npz") as a, \
                np.load(tmp_path / "pool" / f"realisation_{i:05d}.npz") as b:
            np.testing.assert_array_equal(a["delta_r"], b["delta_r"])


def test_dask_scheduler_gives_identical_files(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    settings = SimulationSettings(**TINY)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        report = run_ensemble(settings, tmp_path / "dask", 2, scheduler=cluster.scheduler_address,
                              progress=False)
    assert sorted(report["written"]) == [0, 1]
    for i in range(2):
        with np.load(tmp_path / "dask" / f"realisation_{i:05d}.npz") as data:
            np.testing.assert_array_equal(data["delta_r"],
                                          run_realisation(settings, i)["delta_r"].astype(np.float32))


def test_unreachable_scheduler_is_a_value_error(tmp_path):
    settings = SimulationSettings(**TINY)
    with pytest.raises(ValueError, match="cannot reach Dask scheduler"):
        run_ensemble(settings, tmp_path / "x", 1, scheduler="tcp://127.0.0.1:9", scheduler_timeout=1.0,
                     progress=False)


def _cli(argv):
    parser = argparse.ArgumentParser()
    simulate_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = args.func(args)
    return code, json.loads(stdout.getvalue())


def test_register_adds_simulate_and_summarize(tmp_path):
    out = str(tmp_path / "cli")
    code, report = _cli(["simulate", "--nside", "2", "--realisations", "2", "--times", "1,2",
                         "--modes", "24", "--seed", "7", "--k0", "1e-2", "--k1", "1e1",
                         "--out", out, "--no-progress"])
    assert code == 0 and report["written"] == 2
    code, summary = _cli(["summarize", out])
    assert code == 0
    assert set(summary) >= {"times", "ell", "C_ell", "C_ell_err", "shot_noise", "diffusion_coefficient",
                            "realisations"}
    assert summary["realisations"] == 2 and summary["times"] == [1.0, 2.0]
    with pytest.raises(ValueError, match="--times must be positive"):
        _cli(["simulate", "--times", "1,-2", "--out", out])


# ~50 ms per realisation: the run is still busy when the first file appears
@pytest.mark.parametrize("args, message", [
    (["--nside", "12"], "nside must be a power of two"),
    (["--times", "10,-5"], "--times must be positive"),
    (["--k0", "10", "--k1", "1"], "k1 must be larger than k0"),
    (["--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "1"], "cannot reach Dask scheduler"),
])
def test_qlt_simulate_bad_input_is_one_line_exit_2(tmp_path, args, message):
    done = subprocess.run([sys.executable, "-m", "qltlib.cli", "simulate", "--out", str(tmp_path / "x"), *args],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


CLI_ARGS = ["--nside", "4", "--times", "5,10", "--modes", "512", "--seed", "11", "--k0", "1e-2",
            "--k1", "1e1", "--no-progress"]


def _simulate_cmd(out, n):
    return [sys.executable, "-m", "qltlib.cli", "simulate", *CLI_ARGS,
            "--realisations", str(n), "--out", str(out)]


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _kill_after_first_file(cmd, out, sig):
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while not existing_realisations(out):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    return proc.returncode, stdout, stderr


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_cli_killed_and_restarted_matches_uninterrupted_run(tmp_path, sig):
    n = 30
    code, _, stderr = _kill_after_first_file(_simulate_cmd(tmp_path / "killed", n), tmp_path / "killed", sig)
    kept = existing_realisations(tmp_path / "killed")
    assert 1 <= len(kept) < n
    if sig == signal.SIGINT:
        assert code == 130
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in stderr
    else:
        assert code == -signal.SIGKILL
    for cmd in (_simulate_cmd(tmp_path / "killed", n), _simulate_cmd(tmp_path / "clean", n)):
        done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["written"] == n
    assert existing_realisations(tmp_path / "killed") == list(range(n))
    assert not list((tmp_path / "killed").glob(".*.tmp"))
    for i in range(n):
        with np.load(tmp_path / "killed" / f"realisation_{i:05d}.npz") as a, \
                np.load(tmp_path / "clean" / f"realisation_{i:05d}.npz") as b:
            np.testing.assert_array_equal(a["delta_r"], b["delta_r"])
