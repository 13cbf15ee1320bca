"""Calibration of the pseudo-C_l fit on simulated skies (run by hand, ~1 min on 2 cores).

Reproduces the study quoted in chapter *Comparison with observations*: Gaussian skies with the
steady-state spectrum at alpha = 50, K|G|^2 = 1e-5 c k0 and white noise N = 5e-9, seen through the
IceCube-like declination cut (dec < -20 deg) and the ring-mean (m = 0) filter at nside 32, with the
0.03 dex digitisation error added, are fitted exactly like the data. Prints the coverage of the
68 % alpha intervals, the rms of the pulls (value - truth) / error, and the mean and standard
deviation of chi^2.

    python benchmarks/fit_calibration.py [--skies 24] [--seed 2019]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from qltlib.observations.fit import (
    DEFAULT_LMAX_THEORY,
    cached_theory_grid,
    fit_likelihood,
)
from qltlib.observations.likelihood import PseudoClLikelihood
from qltlib.observations.sky import DeclinationBand, PseudoClModel, simulate_pseudo_cl

TRUTH = {"alpha": 50.0, "kg2": 1.0e-5, "noise": 5.0e-9}
LMAX_FIT = 39
ELL = np.arange(2, LMAX_FIT + 1)
NSIDE = 32
DIGITISATION_DEX = 0.03


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skies", type=int, default=24)
    parser.add_argument("--seed", type=int, default=2019)
    parser.add_argument("--verbose", action="store_true", help="print every fit")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    theory = cached_theory_grid("white", 1e-3, 1e2, DEFAULT_LMAX_THEORY)
    band = DeclinationBand(-90.0, -20.0)
    model = PseudoClModel(band, LMAX_FIT, DEFAULT_LMAX_THEORY, nside=NSIDE)
    cl = TRUTH["kg2"] * theory.cl(TRUTH["alpha"])[: 3 * NSIDE]
    skies = simulate_pseudo_cl(cl, band, LMAX_FIT, args.skies, seed=args.seed, nside=NSIDE, noise=TRUTH["noise"])
    rng = np.random.default_rng(args.seed + 1)
    pulls = {name: [] for name in TRUTH}
    covered, at_edge, chi2 = 0, 0, []
    for i in range(args.skies):
        data = skies.samples[i, ELL] * 10.0 ** rng.normal(0.0, DIGITISATION_DEX, ELL.size)
        result = fit_likelihood(PseudoClLikelihood(ELL, data, model, theory, digitisation_dex=DIGITISATION_DEX))
        chi2.append(result.chi2)
        lo, hi = result.alpha_interval
        covered += (lo or 0.0) < TRUTH["alpha"] < (hi or np.inf)
        on_bound = "alpha" in result.at_bound
        at_edge += on_bound
        for name in TRUTH:
            err = getattr(result, name + "_err")
            # with alpha on a bound its error, and the alpha-correlated part of the others, is undefined
            if err and not on_bound:
                pulls[name].append((getattr(result, name) - TRUTH[name]) / err)
        if args.verbose:
            print(f"sky {i:2d}: alpha {result.alpha:8.3g} [{lo}, {hi}]  kg2 {result.kg2:.3e} +- {result.kg2_err}  "
                  f"noise {result.noise:.3e} +- {result.noise_err}  chi2 {result.chi2:.1f}  bound {result.at_bound}")
    print(f"{args.skies} skies, truth {TRUTH}, nside {NSIDE}, l = 2..{LMAX_FIT}, digitisation {DIGITISATION_DEX} dex")
    print(f"alpha 68% interval covers the truth: {covered}/{args.skies}; alpha at an edge of the range: {at_edge}")
    for name, values in pulls.items():
        print(f"pull rms {name}: {np.sqrt(np.mean(np.square(values))):.2f} (from {len(values)} fits with alpha inside the range)")
    print(f"chi^2: mean {np.mean(chi2):.1f}, standard deviation {np.std(chi2):.1f} for {ELL.size - 3} dof")
    print(f"run time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
