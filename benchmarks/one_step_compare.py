"""Steady state of the one-step recursion against the long ensembles (issue 21).

    python benchmarks/one_step_compare.py [--out data/one_step/comparison.json]

Reads every ``data/one_step/<spectrum>_alpha*.npz`` (:mod:`benchmarks.one_step_scan`) and the
long ensemble of that spectrum (``data/simulation/<spectrum>_k0-1e-3_k1-1e2_t1280``) at its last
time, and writes, per file, what :mod:`qltlib.validation.one_step_check` computes: the fixed point
(R3) on l = 1..16 with jackknife errors, K = -m_inf/3 (R4), chi^2 and p over l = 1..16 (errors in
quadrature; also with the jackknife covariance of the prediction plus the covariance of the
simulated means), the ratios C/C_sim at l = 1, 2, 4, 8, 16, the same for the recursion at the
ensemble's own last time (``at_simulation_time``: the comparison for an ensemble not yet steady),
the truncation check, the recursion in time; per spectrum the drift per doubling of alpha (paired over the shared realisations) and,
for the white spectrum, the Chapman-Kolmogorov comparison with the production ensemble. Seconds
per realisation as measured. The chapter *A parameter-free predictor* computes the same from the
stored files.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qltlib.particles.one_step import load_one_step
from qltlib.particles.statistics import summarize
from qltlib.validation.one_step_check import (
    LMAX,
    PICK,
    chapman_kolmogorov,
    drift_per_doubling,
    recursion_in_time,
    simulation_reference,
    steady_comparison,
    truncation_ratios,
)

K_REFERENCE = {"white": (6.15, 0.01)}     # chapter 7: slope plateau of the far run (t <= 10240)
PATTERN = re.compile(r"^([a-z0-9]+)_alpha([0-9.]+)(_grid\d+)?(_modes\d+)?\.npz$")


def simulation(spectrum: str, name: str = "{}_k0-1e-3_k1-1e2_t1280") -> dict:
    return simulation_reference(summarize(ROOT / "data" / "simulation" / name.format(spectrum)), LMAX)


def compare(meas, sim: dict) -> dict:
    row = steady_comparison(meas, sim, LMAX, PICK)
    clean = meas.without_floor()
    return {"in_time": {f"{t:g}": v for t, v in recursion_in_time(meas, sim, LMAX).items()},
            "truncation_ratio_to_L16": {str(cut): {str(ell): v for ell, v in r.items()}
                                        for cut, r in truncation_ratios(meas, LMAX).items()},
            "alpha": row["alpha"], "delta_t": row["delta_t"], "realisations": row["realisations"],
            "n_theta": row["n_theta"], "n_modes": row["n_modes"],
            "seconds_per_realisation": float(np.mean(meas.seconds)),
            "K": row["K"], "K_err": row["K_err"], "m1": row["m1"], "P1": row["P1"], "M11": row["M11"],
            **_steady_json(row),
            "without_floor": _steady_json(steady_comparison(clean, sim, LMAX, PICK)),
            "at_simulation_time": _steady_json(steady_comparison(clean, sim, LMAX, PICK,
                                                                 at_reference_time=True))}


def _steady_json(row: dict) -> dict:
    """Steady state, chi2 and ratios of one :func:`steady_comparison` row (as measured, and again
    with the grid's aliasing floor subtracted: what qlt spectrum prints)."""
    return {"C": row["C"].tolist(), "C_err": row["C_err"].tolist(), "chi2": row["chi2"],
            "p": row["p"], "chi2_cov": row["chi2_cov"], "p_cov": row["p_cov"],
            "chi2_l2_16": row["chi2_high"],
            "ratio": {str(ell): list(v) for ell, v in row["ratio"].items()}}


def drift_json(d: dict, clean: dict) -> dict:
    return {"from": d["from"], "to": d["to"], "paired_realisations": d["paired_realisations"],
            "dK": list(d["dK"]), "dlnC": {str(ell): list(v) for ell, v in d["dlnC"].items()},
            "dlnC_without_floor": {str(ell): list(v) for ell, v in clean["dlnC"].items()}}


def _drift(runs: dict) -> list:
    """Paired drift per step of alpha within one family of files (same grid and modes), printed
    and as JSON, as measured and without the aliasing floor."""
    if not runs:
        return []
    out, settings = [], next(iter(runs.values())).settings
    clean_drift = drift_per_doubling({a: m.without_floor() for a, m in runs.items()}, LMAX, PICK)
    for d, clean in zip(drift_per_doubling(runs, LMAX, PICK), clean_drift):
        out.append(drift_json(d, clean))
        text = "  ".join(f"{d['dlnC'][l][0]:+.3f}({d['dlnC'][l][1]:.3f})" for l in PICK)
        print(f" drift {d['from']:.0f} -> {d['to']:.0f} (grid {settings.n_theta}, {settings.n_modes} modes, "
              f"{d['paired_realisations']} paired): dK = {d['dK'][0]:+.3f}({d['dK'][1]:.3f}); "
              f"C_l(b)/C_l(a) - 1 at l = 1, 2, 4, 8, 16: {text}")
        print("        without the aliasing floor: " + "  ".join(
            f"{clean['dlnC'][l][0]:+.3f}({clean['dlnC'][l][1]:.3f})" for l in PICK))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "one_step")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "one_step" / "comparison.json")
    args = parser.parse_args(argv)
    report = {"script": "benchmarks/one_step_compare.py", "lmax": LMAX, "spectra": {}}
    files = sorted(p for p in args.data.glob("*.npz") if PATTERN.match(p.name))
    for spectrum in sorted({PATTERN.match(p.name).group(1) for p in files}):
        sim = simulation(spectrum)
        entry = {"simulation": {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                for k, v in sim.items() if k not in ("C_cov", "C_t", "C_t_err", "ell")},
                 "K_reference": K_REFERENCE.get(spectrum), "runs": {}}
        print(f"\n== {spectrum}: simulation at Omega t = {sim['time']:.0f}, {sim['realisations']} "
              f"realisations, {sim['n_modes']} modes; summarize plateau K = {sim['plateau']:.3f} "
              f"+- {sim['plateau_err']:.3f}; reference {K_REFERENCE.get(spectrum)}")
        print(" alpha  grid modes  R   s/real     K            chi2(l=1..16)  p        chi2cov  p_cov"
              "     ratios C/C_sim at l = 1, 2, 4, 8, 16")
        families = {}        # {"grid68_modes256": {alpha: measurement}}: pairs share grid and modes
        for path in sorted((p for p in files if PATTERN.match(p.name).group(1) == spectrum),
                           key=lambda p: (p.name.count("_"), float(PATTERN.match(p.name).group(2)))):
            meas = load_one_step(path)
            row = compare(meas, sim)
            entry["runs"][path.stem] = row
            text = "  ".join(f"{row['ratio'][str(l)][0]:.3f}({row['ratio'][str(l)][1]:.3f})" for l in PICK)
            print(f" {row['alpha']:5.0f} {row['n_theta']:5d} {row['n_modes']:5d} {row['realisations']:3d}"
                  f" {row['seconds_per_realisation']:7.2f}  {row['K']:.3f}({row['K_err']:.3f})"
                  f"  {row['chi2']:10.1f}  {row['p']:8.1e} {row['chi2_cov']:8.1f}  {row['p_cov']:8.1e}   {text}")
            print(f"        m_1 = {row['m1']:.4f}, P_1 = {row['P1']:.4f}, M_11 = {row['M11']:.4f}; "
                  f"chi2 over l = 2..16: {row['chi2_l2_16']:.1f} (p = {stats.chi2.sf(row['chi2_l2_16'], LMAX - 1):.2g})")
            print("        truncation C(L')/C(L=16) at l = 1, 2, 4, 8: " + "  ".join(
                f"L'={lt}: " + ",".join(f"{v:.4f}" for v in r.values())
                for lt, r in row["truncation_ratio_to_L16"].items()))
            clean = row["without_floor"]
            print(f"        without the aliasing floor: chi2 = {clean['chi2']:.1f} (p = {clean['p']:.2g}); "
                  "ratios " + "  ".join(f"{clean['ratio'][str(l)][0]:.3f}({clean['ratio'][str(l)][1]:.3f})"
                                        for l in PICK))
            late = row["at_simulation_time"]
            print(f"        the recursion at Omega t = {sim['time']:.0f} itself (no floor): chi2 = "
                  f"{late['chi2']:.1f} (p = {late['p']:.2g}); ratios " + "  ".join(
                      f"{late['ratio'][str(l)][0]:.3f}({late['ratio'][str(l)][1]:.3f})" for l in PICK))
            print("        recursion/simulation in time, C_1 and C_2: " + "  ".join(
                f"t={t}: {v['C1_ratio']:.2f},{v['C2_ratio']:.2f}" for t, v in row["in_time"].items()))
            family = "".join(part or "" for part in PATTERN.match(path.name).group(3, 4))
            families.setdefault(family.lstrip("_"), {})[meas.settings.alpha] = meas
        plain = families.get("", {})
        entry["drift"] = _drift(plain)
        entry["drift_families"] = {name: _drift(runs) for name, runs in sorted(families.items())
                                   if name and len(runs) > 1}
        if spectrum == "white":
            production = simulation("white", "{}_k0-1e-3_k1-1e2")
            print(f" Chapman-Kolmogorov: recursion / production ensemble ({production['n_modes']} modes, "
                  f"{production['realisations']} realisations, same seeds) at l = 1, 2, 4, 8, 16")
            entry["chapman_kolmogorov"] = {}
            for a in sorted(plain):
                ck = chapman_kolmogorov(plain[a], production, LMAX, PICK)
                entry["chapman_kolmogorov"][f"{a:g}"] = {
                    f"{t:g}": {str(ell): list(v) for ell, v in r.items()} for t, r in ck.items()}
                for t, r in ck.items():
                    print(f"   alpha {a:5.0f}  t = {t:>3g}: " + "  ".join(
                        f"{r[l][0]:.3f}({r[l][1]:.3f})" for l in PICK))
        report["spectra"][spectrum] = entry
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
