"""Where does the steady state stop being physical as alpha = k1 c Delta T falls?

For each turbulence spectrum, band ``k1/k0`` and truncation ``lmax`` this script lowers ``alpha``
from 1e3 in steps of ``--step-dex`` and solves the steady state (paper eq. 3.7) until it is no
longer physical: some ``C_l <= 0``, a non-finite ``C_l``, or ``K <= 0``. It prints, per case, the
last physical ``alpha``, the first unphysical one, and the single-particle relaxation per step
``nu_1 Delta T = -M^(1a)_11`` at both.

The measurement behind :func:`qltlib.theory.transport.check_theory_domain`: the breakdown is a loss of
significance. The pair propagator conserves ``sum_l (2l+1) C_l`` exactly, so the columns of
``M - 1`` sum to zero and the transition matrix is a small difference of entries of size
``nu_1 Delta T``; once ``nu_1 Delta T`` falls to ~1e-11 the round-off of the kernels exceeds
the physical rates and ``C_l`` turn negative. Across spectra, bands and truncations the
failure sets in at the same ``nu_1 Delta T`` (not at the same ``alpha``), which is why the rule
is stated in it.

Run: ``python benchmarks/alpha_domain.py`` (about a minute on one core).
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import sys

import numpy as np

from qltlib.theory.spectrum import make_spectrum
from qltlib.theory.transport import _transition_from, diagram_matrices


def physical_steady_state(spectrum, alpha: float, lmax: int) -> tuple:
    """``(is_physical, nu_1 Delta T)`` of the steady state with coupling at ``alpha``."""
    mats = diagram_matrices(spectrum, alpha, lmax)
    relaxation_per_step = float(-mats.m1a[1, 1])
    try:
        c_ell = np.linalg.solve(_transition_from(mats, True), np.eye(lmax)[0])
    except np.linalg.LinAlgError:
        return False, relaxation_per_step
    ok = bool(np.all(np.isfinite(c_ell)) and np.all(c_ell > 0) and relaxation_per_step > 0)
    return ok, relaxation_per_step


def scan(spectrum_name: str, k0: float, k1: float, lmax: int, step_dex: float,
         alpha_top: float = 1e3, alpha_floor: float = 1e-12) -> dict:
    """Lower alpha from ``alpha_top`` until the steady state is unphysical."""
    spectrum = make_spectrum(spectrum_name, k0, k1)
    last_ok = None
    log_alpha = math.log10(alpha_top)
    while 10.0 ** log_alpha >= alpha_floor:
        alpha = 10.0 ** log_alpha
        ok, per_step = physical_steady_state(spectrum, alpha, lmax)
        if not ok:
            return {"spectrum": spectrum_name, "k0": k0, "k1": k1, "lmax": lmax,
                    "alpha_last_physical": None if last_ok is None else last_ok[0],
                    "nu1_dt_last_physical": None if last_ok is None else last_ok[1],
                    "alpha_first_unphysical": alpha, "nu1_dt_first_unphysical": per_step}
        last_ok = (alpha, per_step)
        log_alpha -= step_dex
    return {"spectrum": spectrum_name, "k0": k0, "k1": k1, "lmax": lmax,
            "alpha_last_physical": last_ok[0], "nu1_dt_last_physical": last_ok[1],
            "alpha_first_unphysical": None, "nu1_dt_first_unphysical": None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--spectra", default="white,kolmogorov,logflat", help="comma-separated")
    parser.add_argument("--bands", default="1e-3:1e2,1e-6:1e2,1e-1:1e2,1e-10:1e10",
                        help="comma-separated k0:k1 pairs (units 1/r_g)")
    parser.add_argument("--lmax", default="10,40,100", help="comma-separated truncations")
    parser.add_argument("--step-dex", type=float, default=0.25, help="alpha step (dex)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    bands = [tuple(float(v) for v in band.split(":")) for band in args.bands.split(",")]
    rows = []
    for name, (k0, k1), lmax in itertools.product(args.spectra.split(","), bands,
                                                  [int(v) for v in args.lmax.split(",")]):
        rows.append(scan(name, k0, k1, lmax, args.step_dex))
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0

    def fmt(x):
        return "      -" if x is None else f"{x:9.2e}"

    print("spectrum     k0       k1    lmax  alpha_ok  alpha_bad  nu1dT_ok  nu1dT_bad")
    for r in rows:
        print(f"{r['spectrum']:10s} {r['k0']:7.0e} {r['k1']:7.0e} {r['lmax']:5d} "
              f"{fmt(r['alpha_last_physical'])} {fmt(r['alpha_first_unphysical'])} "
              f"{fmt(r['nu1_dt_last_physical'])} {fmt(r['nu1_dt_first_unphysical'])}")
    ok = [r["nu1_dt_last_physical"] for r in rows if r["nu1_dt_last_physical"] is not None]
    bad = [r["nu1_dt_first_unphysical"] for r in rows if r["nu1_dt_first_unphysical"] is not None]
    if ok and bad:
        print(f"nu_1 Delta T: smallest still physical {min(ok):.1e}, "
              f"largest already unphysical {max(bad):.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
