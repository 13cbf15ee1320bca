"""Error budget of multirate field evaluation (run by hand; not a pytest test).

    python benchmarks/multirate_budget.py

For each spectrum the library offers, each step fraction and mode count of the validation, and
two tolerances, the field of :func:`qltlib.particles.multirate.multirate_field_error` along a straight
path of 3000 steps (short enough to need no trajectory) is compared with exact evaluation. It
prints the plan (modes evaluated at every step; band sizes and update intervals), the largest
and the root-mean-square error of the field vector, and the Lagrange bound
``tolerance * sum |A_n|`` over the slow modes, all in units of the rms field (``<omega^2> = 1``).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qltlib.particles.multirate import multirate_field_error  # noqa: E402
from qltlib.particles.tracking import step_size
from qltlib.particles.turbulence import synthesise_turbulence  # noqa: E402
from qltlib.theory.spectrum import make_spectrum  # noqa: E402


def main():
    rng = np.random.default_rng(3)
    print("spectrum    step  modes  tolerance  exact  bands (modes x interval)           "
          "max|err|  rms err   bound")
    for name in ("white", "logflat", "kolmogorov"):
        for step_fraction, modes in ((0.1, 256), (0.4, 256), (0.4, 1024)):
            field = synthesise_turbulence(make_spectrum(name, 1e-3, 1e2), modes, rng=1)
            dt = step_size(field, step_fraction)
            direction = rng.normal(size=3)
            path = np.outer(np.arange(3000) * dt, direction / np.linalg.norm(direction))
            for tolerance in (1e-4, 1e-3):
                result = multirate_field_error(field, path, dt, tolerance)
                error = np.linalg.norm(result["error"], axis=1)
                plan = result["plan"]
                bands = " ".join(f"{int(b - a)}x{int(m)}" for a, b, m in
                                 zip(plan.band_start, plan.band_stop, plan.band_interval))
                print(f"{name:10s}  {step_fraction:4.1f}  {modes:5d}  {tolerance:9.0e}  "
                      f"{plan.n_exact:5d}  {bands:36s}  {error.max():.1e}  "
                      f"{np.sqrt(np.mean(error ** 2)):.1e}  {result['bound']:.1e}")


if __name__ == "__main__":
    main()
