"""Steady state of the one-step recursion against the long ensembles (issue 21, first look).

    python benchmarks/one_step_compare.py [--out data/one_step/comparison.json]

Reads every ``data/one_step/<spectrum>_alpha*.npz`` (:mod:`benchmarks.one_step_scan`) and the
long ensemble of that spectrum (``data/simulation/<spectrum>_k0-1e-3_k1-1e2_t1280``) at its last
time. Per file: the fixed point (R3) on l = 1..16 with jackknife errors, K = -m_inf/3 (R4),
chi^2 and p over l = 1..16 (errors of prediction and simulation in quadrature; also with the
jackknife covariance of the prediction plus the covariance of the simulated means over
realisations), the ratios C/C_sim at l = 1, 2, 4, 8, 16, and the drift per doubling of alpha
(paired over the shared realisations, jackknife). Seconds per realisation as measured.
"""
from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qltlib.particles.one_step import (
    jackknife,
    load_one_step,
    one_step_recursion,
    one_step_steady_state,
)
from qltlib.particles.statistics import summarize

K_REFERENCE = {"white": (6.15, 0.02)}     # chapter 7: slope plateau of the far run (t <= 10240)
PICK = (1, 2, 4, 8, 16)
LMAX = 16


def simulation(spectrum: str, name: str = "{}_k0-1e-3_k1-1e2_t1280") -> dict:
    run = summarize(ROOT / "data" / "simulation" / name.format(spectrum))
    per = run["per_realisation"]
    cl = per["C_ell"][:, -1, 1:LMAX + 1] - per["shot_noise"][:, -1, None]
    return {"time": run["times"][-1], "times": list(run["times"]),
            "C_t": np.array(run["C_ell"])[:, 1:LMAX + 1], "C_t_err": np.array(run["C_ell_err"])[:, 1:LMAX + 1],
            "C": np.array(run["C_ell"])[-1, 1:LMAX + 1],
            "C_err": np.array(run["C_ell_err"])[-1, 1:LMAX + 1],
            "C_cov": np.cov(cl, rowvar=False) / cl.shape[0], "realisations": run["realisations"],
            "n_modes": run["settings"]["n_modes"], "plateau": run["diffusion_plateau"],
            "plateau_err": run["diffusion_plateau_err"]}


def compare(meas, sim: dict) -> dict:
    st = meas.steady_state(LMAX)
    c, e = st["C"], st["C_err"]
    err = np.hypot(e, sim["C_err"])
    chi2 = float(np.sum(((c - sim["C"]) / err) ** 2))
    resid = c - sim["C"]
    chi2_full = float(resid @ np.linalg.solve(st["C_cov"] + sim["C_cov"], resid))
    ratio = c / sim["C"]
    ratio_err = np.abs(ratio) * np.hypot(e / c, sim["C_err"] / sim["C"])
    m = meas.means(LMAX)
    # the recursion in time against the simulation at the times that are multiples of Delta T
    n_last = round(sim["time"] / meas.settings.delta_t)
    _, c_rec, m_rec = meas.recursion(n_last, LMAX)
    in_time = {}
    for k, t in enumerate(sim["times"]):
        n = t / meas.settings.delta_t
        if abs(n - round(n)) < 1e-6:
            n = round(n)
            in_time[f"{t:g}"] = {"C1_ratio": float(c_rec[n, 0] / sim["C_t"][k, 0]),
                                 "C2_ratio": float(c_rec[n, 1] / sim["C_t"][k, 1]),
                                 "C1_sim_rel_err": float(sim["C_t_err"][k, 0] / sim["C_t"][k, 0]),
                                 "m": float(m_rec[n])}
    # truncation: the fixed point on l <= L' (columns l0 > L' dropped) for L' = 8, 12 against 16
    trunc = {}
    for lt in (8, 12):
        o = one_step_steady_state(m["matrix"][:lt, :lt], m["source"][:lt], m["cross"][:lt], m["m1"], m["p1"])
        trunc[str(lt)] = {str(l): float(o["C"][l - 1] / c[l - 1]) for l in (1, 2, 4, 8) if l <= lt}
    return {"in_time": in_time, "truncation_ratio_to_L16": trunc,"alpha": meas.settings.alpha, "delta_t": meas.settings.delta_t, "realisations": meas.realisations,
            "n_theta": meas.settings.n_theta, "n_modes": meas.settings.n_modes,
            "seconds_per_realisation": float(np.mean(meas.seconds)),
            "K": st["K"], "K_err": st["K_err"], "m1": float(m["m1"]), "P1": float(m["p1"]),
            "M11": float(m["matrix"][0, 0]), "C": c.tolist(), "C_err": e.tolist(),
            "chi2": chi2, "p": float(stats.chi2.sf(chi2, LMAX)),
            "chi2_cov": chi2_full, "p_cov": float(stats.chi2.sf(chi2_full, LMAX)),
            "chi2_l2_16": float(np.sum((((c - sim["C"]) / err)[1:]) ** 2)),
            "ratio": {str(l): [float(ratio[l - 1]), float(ratio_err[l - 1])] for l in PICK}}


def chapman_kolmogorov(meas, production: dict) -> dict:
    """Recursion C_l(n Delta T) against the production ensemble (the same fields for the same
    realisation numbers when the settings match) at its times that are multiples of Delta T."""
    out = {}
    for k, t in enumerate(production["times"]):
        n = t / meas.settings.delta_t
        if abs(n - round(n)) > 1e-6:
            continue
        n = round(n)

        def stat(m, n=n):
            c, _ = one_step_recursion(m["matrix"], m["source"], m["cross"], m["m1"], m["p1"], n)
            return c[n][[l - 1 for l in PICK]]

        est, err, _ = jackknife(meas._values(LMAX), stat)
        sim = production["C_t"][k, [l - 1 for l in PICK]]
        sim_err = production["C_t_err"][k, [l - 1 for l in PICK]]
        ratio = est / sim
        out[f"{t:g}"] = {str(l): [float(ratio[i]), float(abs(ratio[i]) * np.hypot(err[i] / est[i], sim_err[i] / sim[i]))]
                         for i, l in enumerate(PICK)}
    return out


def drift(a, b) -> dict:
    """K(b) - K(a) and C_l(b)/C_l(a) - 1 at l = 1, 2, 4, 8, 16, paired over shared realisations."""
    common = sorted(set(a.indices.tolist()) & set(b.indices.tolist()))

    def rows(meas):
        where = {i: k for k, i in enumerate(meas.indices.tolist())}
        sel = [where[i] for i in common]
        return {k: v[sel] for k, v in meas._values(LMAX).items()}

    va, vb = rows(a), rows(b)
    values = {**{"a_" + k: v for k, v in va.items()}, **{"b_" + k: v for k, v in vb.items()}}

    def stat(m):
        out = []
        for side in "ab":
            o = one_step_steady_state(m[side + "_matrix"], m[side + "_source"], m[side + "_cross"],
                                      m[side + "_m1"], m[side + "_p1"])
            out.append(np.concatenate([[o["K"]], o["C"][[l - 1 for l in PICK]]]))
        return np.concatenate([[out[1][0] - out[0][0]], out[1][1:] / out[0][1:] - 1])

    est, err, _ = jackknife(values, stat)
    return {"from": a.settings.alpha, "to": b.settings.alpha, "paired_realisations": len(common),
            "dK": [float(est[0]), float(err[0])],
            "dlnC": {str(l): [float(est[i + 1]), float(err[i + 1])] for i, l in enumerate(PICK)}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "one_step")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "one_step" / "comparison.json")
    args = parser.parse_args(argv)
    report = {"script": "benchmarks/one_step_compare.py", "lmax": LMAX, "spectra": {}}
    pattern = re.compile(r"^([a-z0-9]+)_alpha([0-9.]+)(_grid\d+)?(_modes\d+)?\.npz$")
    files = sorted(p for p in args.data.glob("*.npz") if pattern.match(p.name))
    for spectrum in sorted({pattern.match(p.name).group(1) for p in files}):
        sim = simulation(spectrum)
        entry = {"simulation": {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                for k, v in sim.items() if k not in ("C_cov", "C_t", "C_t_err")},
                 "K_reference": K_REFERENCE.get(spectrum), "runs": {}, "drift": []}
        print(f"\n== {spectrum}: simulation at Omega t = {sim['time']:.0f}, {sim['realisations']} "
              f"realisations, {sim['n_modes']} modes; summarize plateau K = {sim['plateau']:.3f} "
              f"+- {sim['plateau_err']:.3f}; reference {K_REFERENCE.get(spectrum)}")
        print(" alpha  grid modes  R   s/real     K            chi2(l=1..16)  p        chi2cov  p_cov"
              "     ratios C/C_sim at l = 1, 2, 4, 8, 16")
        plain = {}
        for path in sorted((p for p in files if pattern.match(p.name).group(1) == spectrum),
                           key=lambda p: (p.name.count("_"), float(pattern.match(p.name).group(2)))):
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
            print("        recursion/simulation in time, C_1 and C_2: " + "  ".join(
                f"t={t}: {v['C1_ratio']:.2f},{v['C2_ratio']:.2f}" for t, v in row["in_time"].items()))
            if path.stem.count("_") == 1:
                plain[meas.settings.alpha] = meas
        alphas = sorted(plain)
        for a, b in itertools.pairwise(alphas):
            d = drift(plain[a], plain[b])
            entry["drift"].append(d)
            text = "  ".join(f"{d['dlnC'][str(l)][0]:+.3f}({d['dlnC'][str(l)][1]:.3f})" for l in PICK)
            print(f" drift {a:.0f} -> {b:.0f} ({d['paired_realisations']} paired): dK = {d['dK'][0]:+.3f}"
                  f"({d['dK'][1]:.3f}); C_l(b)/C_l(a) - 1 at l = 1, 2, 4, 8, 16: {text}")
        if spectrum == "white":
            production = simulation("white", "{}_k0-1e-3_k1-1e2")
            print(f" Chapman-Kolmogorov: recursion / production ensemble ({production['n_modes']} modes, "
                  f"{production['realisations']} realisations, same seeds) at l = 1, 2, 4, 8, 16")
            entry["chapman_kolmogorov"] = {}
            for a in alphas:
                ck = chapman_kolmogorov(plain[a], production)
                entry["chapman_kolmogorov"][f"{a:g}"] = ck
                for t, r in ck.items():
                    print(f"   alpha {a:5.0f}  t = {t:>3s}: " + "  ".join(
                        f"{r[str(l)][0]:.3f}({r[str(l)][1]:.3f})" for l in PICK))
        report["spectra"][spectrum] = entry
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
