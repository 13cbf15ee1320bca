"""Throughput of the test-particle tracking kernel (run by hand; not a pytest test).

    python benchmarks/bench_tracking.py                 # full: includes one nside-32 realisation
    python benchmarks/bench_tracking.py --skip-nside32  # a minute or so

Reports

* the machine's sin/cos throughput: numpy (one thread) and a numba ``prange`` loop over libm
  ``sin`` + ``cos`` (all threads) — the cost of the naive kernel, one ``cos``/``sin`` pair per
  particle, step and mode;
* the kernel's particle-step-modes per second (float64 and float32 working precision) for the
  production settings and its speed-up over the libm bound;
* the wall time of one production realisation at nside 16 and 32.

The load average is printed too: on a shared machine the numbers scale with the free cores.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qltlib.simulate import SimulationSettings, pixel_directions, timed_realisation  # noqa: E402
from qltlib.tracking import backtrack  # noqa: E402
from qltlib.turbulence import synthesise_turbulence  # noqa: E402


@numba.njit(parallel=True, fastmath=True, cache=True)
def _libm_sincos_sum(x):
    total = 0.0
    for i in numba.prange(x.size):
        total += math.cos(x[i]) + math.sin(x[i])
    return total


def best_of(function, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def sincos_throughput(n=20_000_000):
    """Pairs (sin x, cos x) per second for numpy (1 thread) and numba-libm (all threads)."""
    x = np.random.default_rng(0).uniform(0, 1e3, n)     # phases of size k.x, as in the kernel
    numpy_time = best_of(lambda: (np.cos(x), np.sin(x)))
    _libm_sincos_sum(x[:10])
    numba_time = best_of(lambda: _libm_sincos_sum(x))
    return n / numpy_time, n / numba_time


def kernel_throughput(settings, precision, nside=8, duration=4.0):
    field = synthesise_turbulence(settings.make_spectrum(), settings.n_modes, rng=1)
    directions = pixel_directions(nside)
    backtrack(field, directions[:2], [0.05], settings.step_fraction, precision=precision)   # compile
    result = None

    def run():
        nonlocal result
        result = backtrack(field, directions, [duration], settings.step_fraction, precision=precision)
    seconds = best_of(run, repeat=2)
    return len(directions) * result.n_steps * settings.n_modes / seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", type=int, default=1024)
    parser.add_argument("--step-fraction", type=float, default=0.4)
    parser.add_argument("--times", default="10,20,40")
    parser.add_argument("--skip-nside32", action="store_true")
    args = parser.parse_args(argv)
    times = tuple(float(t) for t in args.times.split(","))
    report = {"threads": numba.get_num_threads(), "cpu_count": os.cpu_count(),
              "load_average_before": os.getloadavg()[0]}
    numpy_rate, libm_rate = sincos_throughput()
    report["sincos_pairs_per_s_numpy_1thread"] = numpy_rate
    report["sincos_pairs_per_s_numba_libm_all_threads"] = libm_rate
    for precision in ("float64", "float32"):
        settings = SimulationSettings(nside=16, times=times, n_modes=args.modes,
                                      step_fraction=args.step_fraction, precision=precision)
        rate = kernel_throughput(settings, precision)
        report[f"particle_step_modes_per_s_{precision}"] = rate
        report[f"speedup_over_libm_{precision}"] = rate / libm_rate
    # the kernels are compiled (or loaded from numba's cache) by the throughput runs above
    for nside in ((16,) if args.skip_nside32 else (16, 32)):
        settings = SimulationSettings(nside=nside, times=times, n_modes=args.modes,
                                      step_fraction=args.step_fraction, precision="float32")
        report[f"realisation_wall_s_nside{nside}_float32"] = timed_realisation(settings, 0)
    report["load_average_after"] = os.getloadavg()[0]
    report["settings"] = {"modes": args.modes, "step_fraction": args.step_fraction, "times": list(times),
                          "spectrum": "white", "k0": 1e-3, "k1": 1e2}
    for key, value in report.items():
        text = f"{value:.3e}" if isinstance(value, float) else value
        print(f"{key:48s} {text}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
