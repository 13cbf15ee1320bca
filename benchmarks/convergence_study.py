"""Convergence of the test-particle results in the number of modes, the step and the precision.

Run by hand (several minutes on 2 cores); writes ``data/simulation/convergence.json``, which the
appendix *Convergence* (``chapters/A1_convergence.md``) reads:

    python benchmarks/convergence_study.py
    python benchmarks/convergence_study.py --late    # to Omega t = 1280: convergence_late.json

``--late`` repeats the modes and step tests at the long ensemble's times (10 ... 1280, factors of
two) with its kernel (float32, multirate tolerance 1e-3): 128, 256 and 512 modes at step fraction
0.4, and 256 modes at 0.2 (about 10 minutes on 2 idle cores).

The file is rewritten after every configuration, so an interrupted study keeps what it finished.
Each configuration runs realisations 0..7 of the production seed at nside 8 with the production
spectrum (white, k0 = 1e-3, k1 = 1e2) and times 10, 20, 40; it records the ensemble mean and the
standard error of the running diffusion coefficient and of the shot-noise-subtracted C_l.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qltlib import __version__  # noqa: E402
from qltlib.particles.map_statistics import realisation_statistics
from qltlib.particles.settings import SimulationSettings, run_realisation  # noqa: E402
from qltlib.particles.tracking_defaults import DEFAULT_MULTIRATE_TOLERANCE  # noqa: E402

CONFIGURATIONS = [
    # (modes, step_fraction, precision): modes at the production step and precision, then the
    # step and the precision at 256 modes (their effect does not depend on the mode count)
    (128, 0.4, "float32"),
    (256, 0.4, "float32"),
    (512, 0.4, "float32"),
    (1024, 0.4, "float32"),
    (256, 0.2, "float32"),
    (256, 0.4, "float64"),
]
LATE_CONFIGURATIONS = [(128, 0.4, "float32"), (256, 0.4, "float32"), (512, 0.4, "float32"),
                       (256, 0.2, "float32")]
N_REALISATIONS = 8
NSIDE = 8
TIMES = (10.0, 20.0, 40.0)
LATE_TIMES = (10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0)
SEED = 2019
LMAX = 20


def study(modes, step_fraction, precision, times=TIMES, multirate_tolerance=0.0):
    settings = SimulationSettings(nside=NSIDE, times=times, n_modes=modes, seed=SEED,
                                  step_fraction=step_fraction, precision=precision,
                                  multirate_tolerance=multirate_tolerance)
    stats = [realisation_statistics(run_realisation(settings, i)["delta_r"], times, lmax=LMAX)
             for i in range(N_REALISATIONS)]
    diffusion = np.array([s["msd"] for s in stats]) / (6.0 * np.array(times))
    cl = np.array([s["C_ell"] - s["shot_noise"][:, None] for s in stats])
    sem = lambda a: (a.std(axis=0, ddof=1) / np.sqrt(len(a))).tolist()   # noqa: E731
    return {"modes": modes, "step_fraction": step_fraction, "precision": precision,
            "diffusion_coefficient": diffusion.mean(axis=0).tolist(), "diffusion_coefficient_err": sem(diffusion),
            "C_ell": cl.mean(axis=0).tolist(), "C_ell_err": sem(cl),
            "shot_noise": np.mean([s["shot_noise"] for s in stats], axis=0).tolist()}


def main(argv=None):
    late = "--late" in (sys.argv[1:] if argv is None else argv)
    times, tolerance = (LATE_TIMES, DEFAULT_MULTIRATE_TOLERANCE) if late else (TIMES, 0.0)
    results = []
    out = ROOT / "data" / "simulation" / ("convergence_late.json" if late else "convergence.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    for modes, step_fraction, precision in (LATE_CONFIGURATIONS if late else CONFIGURATIONS):
        start = time.perf_counter()
        results.append(study(modes, step_fraction, precision, times, tolerance))
        d = results[-1]["diffusion_coefficient"]
        print(f"modes={modes:5d} step={step_fraction:.2f} {precision}: D(t) = "
              + ", ".join(f"{x:.3f}" for x in d) + f"  [{time.perf_counter() - start:.0f} s]", flush=True)
        out.write_text(json.dumps({"nside": NSIDE, "times": times, "seed": SEED, "realisations": N_REALISATIONS,
                                   "multirate_tolerance": tolerance,
                                   "spectrum": {"name": "white", "k0": 1e-3, "k1": 1e2}, "lmax": LMAX,
                                   "qltlib_version": __version__, "results": results}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
