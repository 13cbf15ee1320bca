"""Ensemble check of the production settings: multirate and float32 against exact float64.

    python benchmarks/multirate_check.py [--realisations 12] [--nside 8] [--out FILE]

For realisations 0, 1, ... of the production seed (white g(k) on [1e-3, 1e2]/r_g, 256 modes,
step fraction 0.4), every field is back-tracked three times, with the same particles:
float64 with exact evaluation (the reference), float32 with exact evaluation, and float32 with
multirate evaluation at the default tolerance (the production settings), to
Omega t = 10, 20, ..., 640. For each variant it records the running diffusion coefficient and
the shot-noise-subtracted C_l (l <= 16), and reports the ensemble means with their standard
errors and the *paired* differences to the reference (mean and standard error over
realisations). Results are appended realisation by realisation to ``FILE.partial.jsonl``, so an
interrupted run resumes; the summary goes to FILE (default
``data/simulation/multirate_check.json``), read by the appendix *Convergence*.
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
from qltlib.particles.tracking import backtrack
from qltlib.particles.tracking_defaults import DEFAULT_MULTIRATE_TOLERANCE  # noqa: E402
from qltlib.particles.turbulence import synthesise_turbulence  # noqa: E402
from qltlib.theory.spectrum import make_spectrum  # noqa: E402

TIMES = (10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0)
VARIANTS = {"float64_exact": ("float64", 0.0), "float32_exact": ("float32", 0.0),
            "float32_multirate": ("float32", DEFAULT_MULTIRATE_TOLERANCE)}
LMAX = 16


def one_realisation(index: int, nside: int) -> dict:
    field = synthesise_turbulence(make_spectrum("white", 1e-3, 1e2), 256,
                                  np.random.default_rng(realisation_seed(2019, index)))
    directions = ring_pixel_directions(nside)
    row = {"index": index}
    for name, (precision, tolerance) in VARIANTS.items():
        start = time.perf_counter()
        track = backtrack(field, directions, TIMES, step_fraction=0.4, precision=precision,
                          multirate_tolerance=tolerance)
        seconds = time.perf_counter() - start
        stats = realisation_statistics(track.positions, track.times, lmax=LMAX)
        row[name] = {"seconds": seconds,
                     "diffusion": (stats["msd"] / (6 * track.times)).tolist(),
                     "C_ell": (stats["C_ell"] - stats["shot_noise"][:, None]).tolist()}
    return row


def summarise(rows: list) -> dict:
    n = len(rows)
    out = {"realisations": n, "times": list(TIMES), "lmax": LMAX, "variants": {}}
    reference = {q: np.array([r["float64_exact"][q] for r in rows]) for q in ("diffusion", "C_ell")}
    for name in VARIANTS:
        entry = {"seconds_mean": float(np.mean([r[name]["seconds"] for r in rows]))}
        for quantity in ("diffusion", "C_ell"):
            values = np.array([r[name][quantity] for r in rows])
            sem = values.std(axis=0, ddof=1) / math.sqrt(n)
            entry[quantity] = values.mean(axis=0).tolist()
            entry[quantity + "_err"] = sem.tolist()
            if name != "float64_exact":
                difference = values - reference[quantity]
                entry[quantity + "_paired_difference"] = difference.mean(axis=0).tolist()
                entry[quantity + "_paired_difference_err"] = (
                    difference.std(axis=0, ddof=1) / math.sqrt(n)).tolist()
                # the paired difference in units of the ensemble's own statistical error
                entry[quantity + "_difference_over_ensemble_error"] = (
                    difference.mean(axis=0) / sem).tolist()
        out["variants"][name] = entry
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realisations", type=int, default=12)
    parser.add_argument("--nside", type=int, default=8)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1]
                                             / "data" / "simulation" / "multirate_check.json"))
    args = parser.parse_args(argv)
    partial = Path(args.out + ".partial.jsonl")
    rows = [json.loads(line) for line in partial.read_text().splitlines()] if partial.exists() else []
    done = {r["index"] for r in rows}
    for index in range(args.realisations):
        if index in done:
            continue
        rows.append(one_realisation(index, args.nside))
        with open(partial, "a") as fh:
            fh.write(json.dumps(rows[-1]) + "\n")
        print(f"realisation {index} done: " + ", ".join(
            f"{k} {rows[-1][k]['seconds']:.1f} s" for k in VARIANTS), file=sys.stderr, flush=True)
    summary = summarise(sorted(rows, key=lambda r: r["index"])[:args.realisations])
    summary["settings"] = {"nside": args.nside, "modes": 256, "step_fraction": 0.4,
                           "spectrum": "white", "k0": 1e-3, "k1": 1e2, "seed": 2019,
                           "multirate_tolerance": DEFAULT_MULTIRATE_TOLERANCE}
    Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")
    for name in ("float32_exact", "float32_multirate"):
        v = summary["variants"][name]
        print(f"{name}: max |paired difference| / ensemble error: D "
              f"{np.max(np.abs(v['diffusion_difference_over_ensemble_error'])):.2f}, C_l (l=1..16) "
              f"{np.nanmax(np.abs(np.array(v['C_ell_difference_over_ensemble_error'])[:, 1:])):.2f}")


if __name__ == "__main__":
    main()
