"""Speed of the analytic core (run by hand: ``python benchmarks/bench_spectrum.py``).

Targets (issue: the analytic core):
* ``qlt spectrum --lmax 100`` for one alpha in under 1 s after the first call (the first call
  builds and caches the Wigner tables);
* the full alpha scan of Fig. 2 (five alphas, lmax = 100) in under 10 s.
"""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time


def time_cli(args, repeats=5, env=None):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "qltlib.cli", *args], check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return times


def main():
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, QLT_CACHE_DIR=cache)
        first = time_cli(["spectrum", "--lmax", "100"], repeats=1, env=env)[0]
        warm = time_cli(["spectrum", "--lmax", "100", "--alpha", "50"], repeats=5, env=env)
    print(f"qlt spectrum --lmax 100, first call (builds Wigner tables): {first:.2f} s")
    print(f"qlt spectrum --lmax 100, later calls: median {statistics.median(warm):.2f} s, "
          f"min {min(warm):.2f} s, max {max(warm):.2f} s  (target < 1 s)")

    from qltlib.theory.spectrum import WhiteNoiseSpectrum
    from qltlib.theory.transport import steady_state_spectrum
    spectrum = WhiteNoiseSpectrum()
    steady_state_spectrum(spectrum, 50.0, 100)  # tables in memory, as in a notebook session
    start = time.perf_counter()
    for alpha in (10.0, 20.0, 50.0, 100.0, 200.0):
        steady_state_spectrum(spectrum, alpha, 100)
    scan = time.perf_counter() - start
    print(f"alpha scan of Fig. 2 (5 alphas, lmax = 100), in process: {scan:.2f} s  (target < 10 s)")
    start = time.perf_counter()
    for alpha in (10.0, 20.0, 50.0, 100.0, 200.0):
        subprocess.run([sys.executable, "-m", "qltlib.cli", "spectrum", "--lmax", "100", "--alpha", str(alpha)],
                       check=True, capture_output=True)
    print(f"alpha scan of Fig. 2 as five qlt calls: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
