"""Throughput of the test-particle tracking kernel (run by hand; not a pytest test).

    python benchmarks/bench_tracking.py                     # about five minutes on 2 cores
    python benchmarks/bench_tracking.py --skip-realisation  # throughput table only

Reports

* the CPU model and its vector extensions (``/proc/cpuinfo``), numba's target CPU and threads;
* for float64 and float32 working precision, with multirate evaluation off (tolerance 0) and on
  (the default tolerance), the kernel's throughput in *particle-step-modes per second*
  (particles x steps x modes / wall time) and, for multirate, in *effective* particle-step-modes
  per second: the work of exact evaluation divided by the time actually taken;
* the issue's comparison work: 768 directions x 2 field realisations, 256 modes, white g(k) on
  [1e-3, 1e2] / r_g, step fraction 0.1, back-tracking to Omega t = 40, as a whole `qlt simulate`
  process with default settings otherwise (start-up, tracking and file writing included);
* one realisation of the validation at the production settings (nside 16, 256 modes, step
  fraction 0.4, Omega t up to 640), multirate on.

The load average is printed too: on a shared machine the numbers scale with the free cores.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qltlib.particles.settings import pixel_directions  # noqa: E402
from qltlib.particles.tracking import backtrack
from qltlib.particles.tracking_defaults import DEFAULT_MULTIRATE_TOLERANCE  # noqa: E402
from qltlib.particles.turbulence import synthesise_turbulence  # noqa: E402
from qltlib.theory.spectrum import make_spectrum  # noqa: E402

VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl")


def cpu_description() -> dict:
    """CPU model name and the vector extensions it reports (Linux ``/proc/cpuinfo``)."""
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("unknown", "", platform.processor()):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {"cpu_model": model, "vector_extensions": [f for f in VECTOR_FLAGS if f in flags],
            "numba_cpu_name": os.environ.get("NUMBA_CPU_NAME", "host"),
            "numba_threads": numba.get_num_threads(), "cpu_count": os.cpu_count()}


def best_of(function, repeat=2):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def kernel_throughput(n_modes, step_fraction, precision, tolerance, nside=8, duration=4.0):
    """(particle-step-modes/s, effective particle-step-modes/s) of one configuration."""
    field = synthesise_turbulence(make_spectrum("white", 1e-3, 1e2), n_modes, rng=1)
    directions = pixel_directions(nside)
    kwargs = dict(step_fraction=step_fraction, precision=precision, multirate_tolerance=tolerance)
    backtrack(field, directions[:2], [0.05], **kwargs)                 # compile or load
    result = None

    def run():
        nonlocal result
        result = backtrack(field, directions, [duration], **kwargs)
    seconds = best_of(run)
    work = len(directions) * result.n_steps * n_modes
    return work / seconds, seconds


def timed_command(arguments) -> float:
    start = time.perf_counter()
    subprocess.run(arguments, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def comparison_work(repeat=3) -> dict:
    """Wall time of the issue's comparison run as a whole `qlt simulate` process."""
    qlt = [sys.executable, "-m", "qltlib.cli"]
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as out:
            times.append(timed_command(qlt + ["simulate", "--nside", "8", "--realisations", "2",
                                              "--times", "10,20,40", "--step-fraction", "0.1",
                                              "--modes", "256", "--no-progress", "--out", out]))
    with tempfile.TemporaryDirectory() as out:
        startup = timed_command(qlt + ["simulate", "--nside", "1", "--realisations", "1",
                                       "--times", "0.01", "--modes", "1", "--no-progress",
                                       "--out", out])
    return {"comparison_run_wall_s": min(times), "comparison_run_wall_s_all": times,
            "tiny_run_wall_s": startup}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-realisation", action="store_true",
                        help="skip the comparison run and the production realisation")
    args = parser.parse_args(argv)
    report = cpu_description()
    report["load_average_before"] = os.getloadavg()[0]
    rows = []
    for n_modes, step_fraction in ((256, 0.1), (256, 0.4), (1024, 0.4)):
        for precision in ("float64", "float32"):
            exact_rate, exact_seconds = kernel_throughput(n_modes, step_fraction, precision, 0.0)
            rate, seconds = kernel_throughput(n_modes, step_fraction, precision,
                                              DEFAULT_MULTIRATE_TOLERANCE)
            # effective rate of a multirate run: the exact-evaluation work over its time
            rows.append({"modes": n_modes, "step_fraction": step_fraction, "precision": precision,
                         "exact_psm_per_s": exact_rate, "multirate_effective_psm_per_s": rate,
                         "speedup": exact_seconds / seconds})
    report["throughput"] = rows
    if not args.skip_realisation:
        report.update(comparison_work())
        from qltlib.particles.ensemble import timed_realisation
        from qltlib.particles.settings import SimulationSettings
        settings = SimulationSettings(nside=16, times=(10, 20, 40, 80, 160, 320, 640), n_modes=256,
                                      step_fraction=0.4)
        report["validation_realisation_wall_s"] = timed_realisation(settings, 0)
        report["validation_settings"] = settings.as_dict()
    report["load_average_after"] = os.getloadavg()[0]
    print(f"CPU: {report['cpu_model']}; vector extensions: {' '.join(report['vector_extensions'])}; "
          f"numba threads {report['numba_threads']}")
    print("modes  step  precision  exact psm/s   multirate effective psm/s  speed-up")
    for r in rows:
        print(f"{r['modes']:5d}  {r['step_fraction']:4.1f}  {r['precision']:9s}  "
              f"{r['exact_psm_per_s']:.2e}     {r['multirate_effective_psm_per_s']:.2e}"
              f"                   {r['speedup']:.2f}")
    for key in ("comparison_run_wall_s", "tiny_run_wall_s", "validation_realisation_wall_s"):
        if key in report:
            print(f"{key:32s} {report[key]:.2f} s")
    print(json.dumps(report, default=float))


if __name__ == "__main__":
    main()
