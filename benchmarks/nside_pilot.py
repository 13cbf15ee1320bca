"""Pilot for the converged validation: which nside gives C_l errors <= 20 % at late times?

    python benchmarks/nside_pilot.py [--realisations 6] [--nsides 8,16] [--out FILE]

Back-tracks the first realisations of the production seed (white g(k) on [1e-3, 1e2]/r_g,
256 modes, step fraction 0.4, float32, multirate tolerance 1e-3) to Omega t = 10 ... 1280
(factors of two) at each nside, and from the per-realisation scatter of the shot-noise-subtracted
C_l predicts the relative standard error of the ensemble mean for 100 realisations. Writes a
JSON summary (default ``data/simulation/nside_pilot.json``).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qltlib.particles.healpix import ring_pixel_directions  # noqa: E402
from qltlib.particles.map_statistics import realisation_statistics
from qltlib.particles.settings import realisation_seed  # noqa: E402
from qltlib.particles.tracking import backtrack  # noqa: E402
from qltlib.particles.turbulence import synthesise_turbulence  # noqa: E402
from qltlib.theory.spectrum import make_spectrum  # noqa: E402

TIMES = (10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realisations", type=int, default=6)
    parser.add_argument("--nsides", default="8,16")
    parser.add_argument("--target", type=int, default=100, help="ensemble size to predict for")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1]
                                             / "data" / "simulation" / "nside_pilot.json"))
    args = parser.parse_args(argv)
    spectrum = make_spectrum("white", 1e-3, 1e2)
    report = {"times": list(TIMES), "modes": 256, "step_fraction": 0.4, "precision": "float32",
              "multirate_tolerance": 1e-3, "seed": 2019, "target_realisations": args.target,
              "nside": {}}
    for nside in (int(n) for n in args.nsides.split(",")):
        directions = ring_pixel_directions(nside)
        rows, start = [], time.perf_counter()
        for index in range(args.realisations):
            field = synthesise_turbulence(spectrum, 256, np.random.default_rng(realisation_seed(2019, index)))
            track = backtrack(field, directions, TIMES, step_fraction=0.4, precision="float32",
                              multirate_tolerance=1e-3)
            rows.append(realisation_statistics(track.positions, track.times, lmax=min(16, 3 * nside - 1)))
            print(f"nside {nside}: realisation {index} done ({time.perf_counter() - start:.0f} s)",
                  file=sys.stderr, flush=True)
        cl = np.stack([r["C_ell"] - r["shot_noise"][:, None] for r in rows])     # (real, time, l)
        mean = cl.mean(axis=0)
        predicted = cl.std(axis=0, ddof=1) / math.sqrt(args.target)
        diffusion = np.stack([r["msd"] for r in rows]) / (6 * np.array(TIMES))
        report["nside"][str(nside)] = {
            "realisations": args.realisations, "wall_seconds": time.perf_counter() - start,
            "C_ell": mean.tolist(),
            "predicted_relative_error": (predicted / np.abs(mean)).tolist(),
            "shot_noise": np.mean([r["shot_noise"] for r in rows], axis=0).tolist(),
            "diffusion_coefficient": diffusion.mean(axis=0).tolist(),
            "diffusion_coefficient_err": (diffusion.std(axis=0, ddof=1)
                                          / math.sqrt(args.realisations)).tolist()}
        rel = predicted / np.abs(mean)
        for i, t in enumerate(TIMES):
            print(f"nside {nside:3d}  Omega t {t:6.0f}: max rel. error (2<=l<=8, N={args.target}) "
                  f"{np.max(rel[i, 2:9]):.2f}; l with rel. error < 0.5: "
                  f"{[int(l) for l in np.nonzero(rel[i] < 0.5)[0] if l >= 1]}")
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
