"""Cost of the one-step predictor for a new spectrum (run by hand; issue 21, item 5).

    python benchmarks/bench_one_step.py                                  # kolmogorov, k 1e-3..1e1
    python benchmarks/bench_one_step.py --extra "--grid 48"              # an alternative setting

Times ``qlt spectrum --method transfer`` as a fresh process with an empty part store (a new
``QLT_CACHE_DIR``) at the command's defaults (alpha 3200, L = 16, grid 4 (L+1) = 68 rings, 256
modes; realisations from 20, extended until the largest relative standard error of C_l at
l <= 8 is at most 10 %, at most 100), then the same command again (the cache hit). It
reports the achieved jackknife standard error of C_l for l <= 8, also for the first 5, 10, 15, ...
realisations of the same store (the cost of fewer realisations is proportional), the wall seconds
of tracking and analysis per realisation (stored in every part), the load average sampled during
the run (the machine is shared), and beside it the cost of the long-ensemble route for the same
spectrum, scaled from the measured cost of the converged validation run
(``data/simulation/README.md``: about 1e12 particle-step-modes, 3.5 min per realisation at nside
32, 256 modes, Omega t <= 1280, k1 = 1e2, on the idle machine) by particle-step-modes.

NUMBA_NUM_THREADS is left as it is (unset: both cores). Prints one JSON object at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: the converged validation run: particle-step-modes of one realisation and its measured minutes
LONG_ROUTE_PSM = 12 * 32**2 * (1280 / (0.4 / 1e2)) * 256
LONG_ROUTE_MINUTES = 3.5
LONG_ROUTE_REALISATIONS = 100


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


class LoadSampler(threading.Thread):
    """The 1-minute load average every ``every`` seconds while a run goes on."""

    def __init__(self, every=15.0):
        super().__init__(daemon=True)
        self.every, self.samples, self.stop = every, [], threading.Event()

    def run(self):
        while not self.stop.wait(self.every):
            self.samples.append(load_average()[0])


def qlt_spectrum(args, env) -> tuple:
    """Run ``qlt spectrum --method transfer ARGS``; (JSON, stderr, wall seconds, load samples)."""
    sampler = LoadSampler()
    sampler.start()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "qltlib.cli", "spectrum", "--method", "transfer",
                           *args, "--no-progress"], cwd=REPO, env=env, capture_output=True,
                          text=True)
    wall = time.perf_counter() - start
    sampler.stop.set()
    if proc.returncode != 0:
        raise SystemExit(f"qlt spectrum failed ({proc.returncode}): {proc.stderr.strip()}")
    return json.loads(proc.stdout), proc.stderr, wall, sampler.samples


def long_route(spectrum: str, k0: float, k1: float) -> dict:
    """The long-ensemble route for the same band: nside 32, 256 modes, Omega t <= 1280, step
    0.4 min(1/k1, 1), 100 realisations, scaled from the measured run by particle-step-modes."""
    from qltlib.particles.estimates import realisation_seconds
    from qltlib.particles.settings import SimulationSettings

    settings = SimulationSettings(nside=32, times=tuple(10.0 * 2**i for i in range(8)), n_modes=256,
                                  spectrum=spectrum, k0=k0, k1=k1)
    psm = settings.n_pix * (1280 / (settings.step_fraction * min(1 / k1, 1.0))) * settings.n_modes
    minutes = LONG_ROUTE_MINUTES * psm / LONG_ROUTE_PSM
    return {"nside": 32, "times": "10..1280", "n_modes": 256, "realisations": LONG_ROUTE_REALISATIONS,
            "particle_step_modes_per_realisation": psm,
            "minutes_per_realisation_scaled_from_measured": minutes,
            "hours_total_scaled_from_measured": minutes * LONG_ROUTE_REALISATIONS / 60,
            "minutes_per_realisation_qltlib_estimate_2_cores":
                realisation_seconds(settings, 2) / 60}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spectrum", default="kolmogorov")
    parser.add_argument("--k0", type=float, default=1e-3)
    parser.add_argument("--k1", type=float, default=1e1)
    parser.add_argument("--extra", default="", help="further options of qlt spectrum, quoted")
    parser.add_argument("--cache", default=None,
                        help="QLT_CACHE_DIR to use (must be empty for a cold run; kept); "
                             "default: a temporary directory, removed")
    opts = parser.parse_args()

    from qltlib.particles.transfer_run import load_one_step_store

    args = ["--spectrum", opts.spectrum, "--k0", str(opts.k0), "--k1", str(opts.k1),
            *shlex.split(opts.extra)]
    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "NUMBA_NUM_THREADS": os.environ.get("NUMBA_NUM_THREADS", "unset"),
            "load_before": load_average(), "command": "qlt spectrum --method transfer " + " ".join(args)}
    print(json.dumps(info), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(opts.cache or tmp)
        if (cache / "transfer").exists() and any((cache / "transfer").iterdir()):
            raise SystemExit(f"{cache}/transfer is not empty: not a cold run")
        env = dict(os.environ, QLT_CACHE_DIR=str(cache))
        cold, stderr, cold_wall, samples = qlt_spectrum(args, env)
        warm, _, warm_wall, _ = qlt_spectrum(args, env)
        store = cold["store"]
        measurement = load_one_step_store(store)
        subsets = {}
        for n in sorted({*range(5, measurement.realisations, 5), measurement.realisations}):
            steady = load_one_step_store(store, n).without_floor().steady_state()   # as the command
            sel = steady["ell"] <= 8
            subsets[n] = {"max_rel_err_l_le_8": float((steady["C_err"] / steady["C"])[sel].max()),
                          "K": steady["K"], "K_err": steady["K_err"]}
        rel = [e / c for ell, c, e in zip(cold["ell"], cold["C_ell"], cold["C_ell_err"]) if ell <= 8]
        result = {
            **info, "load_after": load_average(), "load_1min_samples": samples,
            "stderr": stderr.strip().splitlines(),
            "cold_wall_seconds": cold_wall, "cold_written": cold["written"],
            "warm_wall_seconds": warm_wall, "warm_written": warm["written"],
            "realisations": cold["realisations"], "settings": cold["settings"],
            "seconds_per_realisation_in_worker": float(measurement.seconds.mean()),
            "seconds_per_realisation_min_max": [float(measurement.seconds.min()),
                                                float(measurement.seconds.max())],
            "C_ell": cold["C_ell"][:8], "rel_err_l_le_8": rel, "max_rel_err_l_le_8": max(rel),
            "K": cold["K"], "K_err": cold["K_err"], "by_realisations": subsets,
            "long_route": long_route(opts.spectrum, opts.k0, opts.k1),
        }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
