"""Ensemble driver, summaries and the `simulate` / `summarize` sub-commands (qltlib.particles.ensemble)."""
import argparse
import contextlib
import io
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import healpy as hp
import numpy as np
import pytest
from cli_checks import assert_one_line_error, sigint_as_at_a_terminal

from qltlib.cli import simulate as simulate_cli
from qltlib.particles.ensemble import run_ensemble
from qltlib.particles.estimates import (
    check_simulation_size,
    realisation_memory,
    realisation_seconds,
)
from qltlib.particles.files import SettingsMismatchError
from qltlib.particles.map_statistics import realisation_statistics, white_noise_level
from qltlib.particles.settings import (
    SimulationSettings,
    pixel_directions,
    realisation_seed,
    run_realisation,
    settings_conflicts,
)
from qltlib.particles.statistics import summarize
from qltlib.particles.store import (
    CorruptRealisationError,
    existing_realisations,
    existing_summaries,
    load_realisation,
    load_summary,
    write_realisation,
    write_summaries,
)

REPO = Path(__file__).resolve().parents[2]
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
    assert existing_summaries(out) == [0, 1, 2]
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


def _qlt(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "qltlib.cli", *map(str, args)], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


# ~50 ms per realisation: the run is still busy when the first file appears
@pytest.mark.parametrize("args, message", [
    (["--nside", "12"], "nside must be a power of two"),
    (["--times", "10,-5"], "--times must be positive"),
    (["--k0", "10", "--k1", "1"], "k1 must be larger than k0"),
    (["--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "1"], "cannot reach Dask scheduler"),
    # found by the worker process, still reported as bad input
    (["--nside", "2", "--modes", "8", "--times", "1,1.0001", "--realisations", "1", "--no-progress"],
     "closer than one step"),
])
def test_qlt_simulate_bad_input_is_one_line_exit_2(tmp_path, args, message):
    assert_one_line_error(_qlt("simulate", "--out", tmp_path / "x", *args), message)


CLI_ARGS = ["--nside", "4", "--times", "5,10", "--modes", "512", "--seed", "11", "--k0", "1e-2",
            "--k1", "1e1", "--no-progress"]


def _simulate_cmd(out, n):
    return [sys.executable, "-m", "qltlib.cli", "simulate", *CLI_ARGS,
            "--realisations", str(n), "--out", str(out)]


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _kill_after_first_file(cmd, out, sig):
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=sigint_as_at_a_terminal)
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


# --- issue 11: verified files, one-line errors, sizes, help -------------------------------------

TINY_ARGS = ["--nside", "2", "--times", "1,2", "--modes", "24", "--seed", "7", "--k0", "1e-2",
             "--k1", "1e1", "--no-progress"]


@pytest.fixture(scope="module")
def tiny_ensemble(tmp_path_factory):
    """Three realisations at TINY settings, raw files and (written by a first `summarize`)
    summaries; made once, tests work on copies (see `_copy`)."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    run_ensemble(SimulationSettings(**TINY), out, 3, progress=False)
    assert existing_summaries(out) == []          # a raw run defers its summaries
    write_summaries(out)
    return out


@pytest.fixture(scope="module")
def nside4_ensemble(tmp_path_factory):
    out = tmp_path_factory.mktemp("nside4") / "run"
    run_ensemble(SimulationSettings(**{**TINY, "nside": 4, "times": (20.0, 40.0)}), out, 3, progress=False)
    write_summaries(out)
    return out


def _copy(ensemble, tmp_path):
    return Path(shutil.copytree(ensemble, tmp_path / "run"))


def _truncate(path, keep=3000):
    data = path.read_bytes()
    path.write_bytes(data[:min(keep, len(data) // 2)])


def test_resume_recomputes_a_truncated_file_and_reports_it(tmp_path, tiny_ensemble):
    """Defect 3: a truncated file counted as finished (written 0, skipped 3)."""
    settings = SimulationSettings(**TINY)
    out = _copy(tiny_ensemble, tmp_path)
    good = (out / "realisation_00001.npz").read_bytes()
    _truncate(out / "realisation_00001.npz")
    lines = []
    report = run_ensemble(settings, out, 3, progress=False, report=lines.append)
    assert report["repaired"] == [1] and report["written"] == [1] and report["skipped"] == [0, 2]
    assert len(lines) == 1 and "realisation_00001.npz" in lines[0] and "recomputing" in lines[0]
    assert (out / "realisation_00001.npz").read_bytes() == good


def test_flipped_bit_in_a_file_is_detected(tmp_path, tiny_ensemble):
    """The zip container's CRC-32 of every array catches a flipped bit that keeps the size."""
    settings = SimulationSettings(**TINY)
    out = _copy(tiny_ensemble, tmp_path)
    path = out / "realisation_00000.npz"
    load_realisation(out, 0, settings)
    with zipfile.ZipFile(path) as archive:
        member = archive.getinfo("delta_r.npy")
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[member.header_offset + 26:member.header_offset + 30])
    start = member.header_offset + 30 + name_length + extra_length
    data[start + member.compress_size - 100] ^= 0x04          # inside the float32 payload
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptRealisationError, match="realisation_00000.npz is unreadable"):
        load_realisation(out, 0, settings)


def test_qlt_summarize_on_a_truncated_file_is_one_line(tmp_path, tiny_ensemble):
    out = _copy(tiny_ensemble, tmp_path)
    (out / "summary_00001.npz").unlink()        # so that summarize needs the raw file
    _truncate(out / "realisation_00001.npz")
    assert_one_line_error(_qlt("summarize", out), "realisation_00001.npz", "unreadable")


def test_corrupt_summary_is_recomputed_from_the_raw_file(tmp_path, tiny_ensemble):
    out = _copy(tiny_ensemble, tmp_path)
    fresh = summarize(out)
    good = (out / "summary_00002.npz").read_bytes()
    _truncate(out / "summary_00002.npz", keep=200)
    again = summarize(out)
    np.testing.assert_array_equal(again["C_ell"], fresh["C_ell"])
    assert (out / "summary_00002.npz").read_bytes() == good


def _mixed_run(tmp_path, tiny_ensemble, nside4_ensemble):
    """The issue's case: a manifest for nside 2, times 1, 2 holding files made at nside 4, times 20, 40."""
    small = _copy(tiny_ensemble, tmp_path)
    for i in range(3):
        for name in (f"realisation_{i:05d}.npz", f"summary_{i:05d}.npz"):
            shutil.copy(nside4_ensemble / name, small / name)
    return small


def test_summarize_refuses_files_that_contradict_the_manifest(tmp_path, tiny_ensemble, nside4_ensemble):
    """Defect 4: such a run printed "times": [20.000000000000004, 40.00000000000001]."""
    out = _mixed_run(tmp_path, tiny_ensemble, nside4_ensemble)
    with pytest.raises(ValueError, match="realisation_00000.npz contradicts the manifest.*nside"):
        summarize(out)
    assert_one_line_error(_qlt("summarize", out), "realisation_00000.npz", "contradicts the manifest")
    # files of the older format (no stored settings) are checked by shape and times
    for i in range(3):
        with np.load(out / f"realisation_{i:05d}.npz") as data:
            arrays = {k: data[k] for k in data.files if k != "settings"}
        np.savez(out / f"realisation_{i:05d}.npz", **arrays)
    with pytest.raises(ValueError, match="delta_r has shape"):
        summarize(out)


def test_resume_recomputes_files_that_contradict_the_manifest(tmp_path, tiny_ensemble, nside4_ensemble):
    out = _mixed_run(tmp_path, tiny_ensemble, nside4_ensemble)
    lines = []
    report = run_ensemble(SimulationSettings(**TINY), out, 3, progress=False, report=lines.append)
    assert report["repaired"] == [0, 1, 2] and len(lines) == 6      # raw and summary file of each
    assert sum("summary_0000" in line for line in lines) == 3
    assert summarize(out)["times"] == [1.0, 2.0]


def test_summarize_reports_an_incomplete_ensemble(tmp_path, tiny_ensemble):
    out = _copy(tiny_ensemble, tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["realisations"] = 5
    (out / "manifest.json").write_text(json.dumps(manifest))
    summary = summarize(out)
    assert summary["realisations"] == 3 and summary["expected"] == 5 and summary["missing"] == [3, 4]
    done = _qlt("summarize", out)
    assert done.returncode == 0
    assert json.loads(done.stdout)["expected"] == 5
    assert done.stderr.strip().splitlines() == [f"qlt summarize: note: incomplete ensemble, 3 of 5 "
                                                f"realisations in {out}"]


def test_committed_ensemble_passes_verification():
    """The production files predate stored settings; they must still verify and summarise."""
    data = REPO / "data" / "simulation" / "white_k0-1e-3_k1-1e2"
    settings = SimulationSettings.from_dict(json.loads((data / "manifest.json").read_text())["settings"])
    for index in (0, 99):
        arrays = load_realisation(data, index, settings)
        assert "settings" not in arrays and arrays["delta_r"].shape == (3, 3072, 3)


def test_settings_added_later_are_compared_generically():
    old = SimulationSettings(**TINY).as_dict()
    new = {**old, "a_setting_added_later": 1}
    assert settings_conflicts(old, new) == ["a_setting_added_later"]
    without_precision = {k: v for k, v in old.items() if k != "precision"}
    # a key missing on one side takes the field's default
    assert settings_conflicts(without_precision, old) == []
    assert settings_conflicts(without_precision, {**old, "precision": "float64"}) == ["precision"]
    assert settings_conflicts(old, {**old, "times": [1.0, 2.0]}) == []


def test_summarize_lmax_beyond_the_map_is_refused_without_healpy_noise(tmp_path, tiny_ensemble):
    """Defect 6: --lmax 20 at nside 2 printed 120 lines of healpy warnings on stdout."""
    out = _copy(tiny_ensemble, tmp_path)
    assert_one_line_error(_qlt("summarize", out, "--lmax", "20"), "3 nside - 1 = 5")
    done = _qlt("summarize", out, "--lmax", "5")
    assert done.returncode == 0 and done.stderr == ""
    assert len(json.loads(done.stdout)["ell"]) == 6
    with pytest.raises(ValueError, match="lmax"):
        realisation_statistics(np.zeros((1, 48, 3)), [1.0], lmax=6)


def test_sizes_beyond_the_machine_are_refused_before_allocating(tmp_path, monkeypatch, tiny_ensemble):
    """Defect 7: `simulate --nside 4096` passed 4 GB before failing."""
    start = time.monotonic()
    line = assert_one_line_error(_qlt("simulate", "--nside", 2 ** 16, "--out", tmp_path / "huge"), "needs about",
                           "of memory", "this machine has")
    assert time.monotonic() - start < 30 and not (tmp_path / "huge").exists()
    assert "per realisation" in line
    settings = SimulationSettings(**{**TINY, "nside": 4096})
    assert realisation_memory(settings) > 12 * 4096 ** 2 * 200
    with pytest.raises(ValueError, match="2 worker"):
        check_simulation_size(SimulationSettings(**TINY), workers=2, memory=2 ** 20)
    assert check_simulation_size(SimulationSettings(**TINY), memory=2 ** 40)["bytes"] < 2 ** 30
    out = _copy(tiny_ensemble, tmp_path)
    for summary in out.glob("summary_*.npz"):       # the transform is needed only without them
        summary.unlink()
    monkeypatch.setattr("qltlib.particles.store.available_memory", lambda: 2 ** 20)
    with pytest.raises(ValueError, match="summarising nside 2 at lmax 5 needs about"):
        summarize(out)


def test_time_estimate_scales_with_particle_steps_modes():
    base = SimulationSettings(**TINY)
    assert math.isclose(realisation_seconds(SimulationSettings(**{**TINY, "nside": 4}), 2),
                        4 * realisation_seconds(base, 2))
    assert math.isclose(realisation_seconds(base, 1), 2 * realisation_seconds(base, 2))


def _unwritable(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if not os.access(locked, os.W_OK):
        return locked / "out"
    try:                                    # running as root: permissions do not stop us
        Path("/sys/qlt-unwritable").mkdir()
    except PermissionError:
        return Path("/sys/qlt-unwritable")
    pytest.skip("no unwritable location on this machine")


@pytest.mark.parametrize("case", ["out is a file", "out unwritable", "negative scheduler timeout",
                                  "corrupt manifest"])
def test_simulate_errors_are_one_line_exit_2(tmp_path, case):
    """Defect 8: these gave FileExistsError / PermissionError tracebacks or misleading messages."""
    out = tmp_path / "out"
    if case == "out is a file":
        out.write_text("not a directory")
        expected = [str(out), "not a directory"]
    elif case == "out unwritable":
        out = _unwritable(tmp_path)
        expected = ["cannot create output directory", str(out)]
    elif case == "negative scheduler timeout":
        done = _qlt("simulate", *TINY_ARGS, "--out", out, "--scheduler", "tcp://127.0.0.1:9",
                    "--scheduler-timeout", "-1")
        assert_one_line_error(done, "scheduler timeout must be a positive number of seconds, got -1.0")
        return
    else:
        out.mkdir()
        (out / "manifest.json").write_text("{ truncated")
        expected = [str(out / "manifest.json"), "manifest is corrupt"]
        assert_one_line_error(_qlt("summarize", out), *expected)
    assert_one_line_error(_qlt("simulate", *TINY_ARGS, "--out", out), *expected)


@pytest.mark.parametrize("command", ["simulate", "summarize"])
def test_help_shows_defaults_and_units(command):
    parser = argparse.ArgumentParser()
    simulate_cli.register(parser.add_subparsers(dest="command"))
    sub = parser._subparsers._group_actions[0].choices[command]
    for action in sub._actions:
        if action.option_strings and action.help != argparse.SUPPRESS and action.dest != "help" \
                and not isinstance(action, argparse._StoreTrueAction):
            assert "default" in action.help or "required" in action.help, action.option_strings
    text = sub.format_help()
    if command == "simulate":
        from qltlib.particles.tracking_defaults import DEFAULT_RESYNC_EVERY
        assert f"(default: {DEFAULT_RESYNC_EVERY})" in " ".join(text.split())
        for unit in ("1/Omega", "1/r_g", "seconds"):
            assert unit in text


def test_long_runs_are_announced_with_their_estimate(tmp_path, monkeypatch, tiny_ensemble):
    out = _copy(tiny_ensemble, tmp_path)
    lines = []
    monkeypatch.setattr("qltlib.particles.estimates.LONG_RUN_SECONDS", 0.0)
    report = run_ensemble(SimulationSettings(**TINY), out, 4, progress=False, report=lines.append)
    assert report["written"] == [3]
    assert len(lines) == 1 and lines[0].startswith("note: about") and "for the 1 to run" in lines[0]


def test_cli_defaults_are_the_production_settings():
    """--precision float32 and the multirate tolerance of qltlib.particles.tracking are the defaults."""
    from qltlib.particles.tracking_defaults import DEFAULT_MULTIRATE_TOLERANCE

    settings = SimulationSettings()
    assert settings.precision == "float32"
    assert settings.multirate_tolerance == DEFAULT_MULTIRATE_TOLERANCE
    help_text = subprocess.run([sys.executable, "-m", "qltlib.cli", "simulate", "--help"],
                               capture_output=True, text=True, check=True).stdout
    assert "(default: float32)" in help_text
    assert "--multirate-tolerance" in help_text and "(default: 0.001)" in help_text


def test_manifest_without_multirate_setting_means_exact_evaluation():
    """Runs made before multirate existed are read as exact evaluation, not as today's default."""
    old = SimulationSettings(multirate_tolerance=0.0).as_dict()
    del old["multirate_tolerance"]
    assert SimulationSettings.from_dict(old).multirate_tolerance == 0.0
    assert settings_conflicts(old, SimulationSettings(multirate_tolerance=0.0).as_dict()) == []
    assert settings_conflicts(old, SimulationSettings().as_dict()) == ["multirate_tolerance"]


def test_realisation_files_hold_the_final_directions(tmp_path):
    settings = SimulationSettings(nside=1, times=(0.5, 1.0), n_modes=8)
    result = run_realisation(settings, 0)
    path = write_realisation(tmp_path, result)
    with np.load(path) as data:
        directions = data["directions"]
    assert directions.shape == (2, 12, 3)
    np.testing.assert_allclose(np.linalg.norm(directions, axis=2), 1.0, atol=1e-6)


# --- issue 9: compact per-realisation summaries -------------------------------------------------

def test_summary_files_hold_the_statistics_of_the_raw_files(tmp_path, tiny_ensemble):
    settings = SimulationSettings(**TINY)
    assert existing_summaries(tiny_ensemble) == existing_realisations(tiny_ensemble) == [0, 1, 2]
    for index in range(3):
        summary = load_summary(tiny_ensemble, index, settings)
        raw = load_realisation(tiny_ensemble, index, settings)
        stats = realisation_statistics(raw["delta_r"], raw["times"])
        assert int(summary["lmax"]) == 3 * TINY["nside"] - 1
        assert summary["C_ell_axis"].shape == (2, 3, 6) and summary["shot_noise_axis"].shape == (2, 3)
        np.testing.assert_array_equal(summary["C_ell_axis"], stats["C_ell_axis"])
        np.testing.assert_array_equal(summary["C_ell_axis"].mean(axis=1), stats["C_ell"])
        np.testing.assert_array_equal(summary["msd"], stats["msd"])
        np.testing.assert_allclose(summary["msd_axis"].sum(axis=1), summary["msd"], rtol=1e-12)
    # verified like the raw files: other settings, truncation
    with pytest.raises(CorruptRealisationError, match="summary_00000.npz contradicts the manifest.*n_modes"):
        load_summary(tiny_ensemble, 0, SimulationSettings(**{**TINY, "n_modes": 25}))
    out = _copy(tiny_ensemble, tmp_path)
    _truncate(out / "summary_00001.npz", keep=300)
    with pytest.raises(CorruptRealisationError, match="summary_00001.npz is unreadable"):
        load_summary(out, 1, settings)
    summary = dict(np.load(out / "summary_00002.npz"))
    summary["msd_axis"] = summary["msd_axis"] * 2.0
    np.savez(out / "summary_00002.npz", **summary)
    with pytest.raises(CorruptRealisationError, match="inconsistent between the axes"):
        load_summary(out, 2, settings)


def test_summarize_works_from_summaries_alone(tmp_path, tiny_ensemble):
    out = _copy(tiny_ensemble, tmp_path)
    full = summarize(out)
    for raw in out.glob("realisation_*.npz"):
        raw.unlink()
    alone = summarize(out)
    for key in ("C_ell", "C_ell_err", "shot_noise", "diffusion_coefficient", "C_ell_axis"):
        np.testing.assert_array_equal(alone[key], full[key])
    assert alone["realisations"] == 3 and np.array(alone["C_ell_axis"]).shape == (2, 3, 6)
    _truncate(out / "summary_00001.npz", keep=300)
    with pytest.raises(CorruptRealisationError, match="summary_00001.npz is unreadable.*no raw file"):
        summarize(out)


def test_no_raw_run_keeps_summaries_only_and_a_later_run_restores_the_raw_files(tmp_path, tiny_ensemble):
    settings = SimulationSettings(**TINY)
    out = tmp_path / "compact"
    report = run_ensemble(settings, out, 3, progress=False, keep_raw=False)
    assert report["written"] == [0, 1, 2] and report["total"] == 3
    assert existing_realisations(out) == [] and existing_summaries(out) == [0, 1, 2]
    for index in range(3):
        name = f"summary_{index:05d}.npz"
        assert (out / name).read_bytes() == (tiny_ensemble / name).read_bytes()
    again = run_ensemble(settings, out, 3, progress=False, keep_raw=False)
    assert again["written"] == [] and again["skipped"] == [0, 1, 2]
    restored = run_ensemble(settings, out, 3, progress=False)
    assert restored["written"] == [0, 1, 2]
    for index in range(3):
        name = f"realisation_{index:05d}.npz"
        assert (out / name).read_bytes() == (tiny_ensemble / name).read_bytes()


def test_resume_completes_a_missing_or_corrupt_summary_from_the_raw_file(tmp_path, tiny_ensemble):
    settings = SimulationSettings(**TINY)
    out = _copy(tiny_ensemble, tmp_path)
    good = {i: (out / f"summary_{i:05d}.npz").read_bytes() for i in range(3)}
    (out / "summary_00000.npz").unlink()                 # killed between the raw and the summary file
    _truncate(out / "summary_00002.npz", keep=300)
    lines = []
    report = run_ensemble(settings, out, 3, progress=False, report=lines.append)
    assert report["written"] == [] and report["skipped"] == [0, 1, 2] and report["repaired"] == [2]
    assert len(lines) == 1 and "summary_00002.npz" in lines[0]
    assert all((out / f"summary_{i:05d}.npz").read_bytes() == good[i] for i in range(3))
    # without raw files a corrupt summary means tracking again
    for raw in out.glob("realisation_*.npz"):
        raw.unlink()
    _truncate(out / "summary_00001.npz", keep=300)
    report = run_ensemble(settings, out, 3, progress=False, report=lines.append, keep_raw=False)
    assert report["written"] == [1] and report["repaired"] == [1]
    assert (out / "summary_00001.npz").read_bytes() == good[1]


def _old_format(out):
    """Strip the summaries and the stored settings: a run made before either existed."""
    for summary in out.glob("summary_*.npz"):
        summary.unlink()
    for raw in out.glob("realisation_*.npz"):
        with np.load(raw) as data:
            arrays = {k: data[k] for k in data.files if k not in ("settings", "directions")}
        np.savez(raw, **arrays)


def test_old_format_directory_summarizes_and_converts(tmp_path, tiny_ensemble):
    reference = summarize(tiny_ensemble, cache=False)
    out = _copy(tiny_ensemble, tmp_path)
    _old_format(out)
    summary = summarize(out, cache=False)
    assert existing_summaries(out) == []
    np.testing.assert_array_equal(summary["C_ell"], reference["C_ell"])
    done = _qlt("summarize", out, "--write-summaries")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["written"] == 3 and report["kept"] == 0 and report["summaries"] == 3
    assert write_summaries(out)["written"] == []
    for index in range(3):
        name = f"summary_{index:05d}.npz"
        assert (out / name).read_bytes() == (tiny_ensemble / name).read_bytes()
    assert_one_line_error(_qlt("summarize", out, "--write-summaries", "--lmax", "3"), "--write-summaries")


def test_qlt_simulate_no_raw(tmp_path):
    out = tmp_path / "run"
    done = _qlt("simulate", *TINY_ARGS, "--realisations", "2", "--no-raw", "--out", out)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total"] == 2
    assert existing_realisations(out) == [] and existing_summaries(out) == [0, 1]
    assert json.loads(_qlt("summarize", out).stdout)["realisations"] == 2


def test_summarize_of_one_realisation_is_strict_json(tiny_ensemble, tmp_path):
    """One realisation has no standard error: null in the JSON, never NaN, and a note."""
    out = _copy(tiny_ensemble, tmp_path)
    for index in (1, 2):
        (out / f"realisation_{index:05d}.npz").unlink()
        (out / f"summary_{index:05d}.npz").unlink()
    done = subprocess.run([sys.executable, "-m", "qltlib.cli", "summarize", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "NaN" not in done.stdout
    summary = json.loads(done.stdout)
    assert summary["realisations"] == 1 and summary["C_ell_err"][0][1] is None
    assert "no standard error" in done.stderr


def _complete_committed_runs():
    runs = []
    for manifest in sorted((REPO / "data" / "simulation").glob("*/manifest.json")):
        expected = json.loads(manifest.read_text())["realisations"]
        if len(list(manifest.parent.glob("summary_*.npz"))) == expected:
            runs.append(manifest.parent)
    return runs


def _digests(directory):
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("run", _complete_committed_runs(), ids=lambda p: p.name)
def test_resume_of_a_finished_committed_run_changes_no_file(run):
    """Issue 19: a no-op rerun rewrote the committed manifest; --resume continues from it alone."""
    before = _digests(run)
    proc = subprocess.run([sys.executable, "-m", "qltlib.cli", "simulate", "--resume", str(run),
                           "--no-progress"], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["written"] == 0 and report["repaired"] == [] and report["skipped"] == report["total"]
    assert _digests(run) == before


def test_resume_continues_an_interrupted_run_from_its_manifest(tmp_path):
    out = tmp_path / "run"
    first = _cli(["simulate", "--nside", "1", "--realisations", "3", "--times", "1,2",
                  "--modes", "8", "--no-raw", "--no-progress", "--out", str(out)])
    assert first[0] == 0
    (out / "summary_00001.npz").unlink()                 # as if interrupted before it finished
    code, report = _cli(["simulate", "--resume", str(out), "--no-progress"])
    assert code == 0 and report["written"] == 1 and report["total"] == 3
    assert existing_realisations(out) == []              # the manifest says: summaries only
    with pytest.raises(ValueError, match="--resume takes every setting.*drop --nside, --times"):
        _cli(["simulate", "--resume", str(out), "--nside", "2", "--times", "1"])


def test_summarize_names_every_file_it_repairs_or_leaves_out(tmp_path):
    """Issue 19: a truncated summary was recomputed silently, a truncated raw file not noticed."""
    out = tmp_path / "run"
    assert _cli(["simulate", "--nside", "1", "--realisations", "3", "--times", "1,2", "--modes", "8",
                 "--no-progress", "--out", str(out)])[0] == 0
    clean = summarize(out, report=lambda line: pytest.fail(line))
    for name in ("summary_00001.npz", "realisation_00002.npz"):
        (out / name).write_bytes((out / name).read_bytes()[:200])
    lines = []
    again = summarize(out, report=lines.append)
    assert len(lines) == 2
    assert lines[0].startswith("summary_00001.npz is unreadable") and "recomputed from" in lines[0]
    assert lines[1].startswith("realisation_00002.npz is unreadable") and "not used" in lines[1]
    assert "its summary is" in lines[1]
    assert again["C_ell"] == clean["C_ell"]          # the summary of realisation 2 is still valid
    (out / "summary_00002.npz").unlink()
    with pytest.raises(CorruptRealisationError, match="realisation_00002.npz is unreadable.*no summary"):
        summarize(out, report=lines.append)
