"""The paper's claims against the stored ensemble: the steady-state analysis and its verdicts.

Chapter *Validation*, section on the claims; the introduction prints :func:`format_claims`.
"""
from __future__ import annotations

import math

import numpy as np

from ..observations.fit import ALPHA_RANGE
from ..particles.statistics import interval_diffusion, time_index
from ..theory.spectrum import make_spectrum
from ..units import PAPER_ALPHA
from .convergence import ensemble_convergence, multipole_ratio, steady_time
from .simulation_fit import (
    TABLE_LMAX_THEORY,
    acceptable_alphas,
    chi2_profile,
    diffusion_comparison,
    fit_simulation,
    fit_table,
    resolved_multipoles,
    theory_grid,
    time_dependent_comparison,
)


def _finite(values) -> list:
    """JSON-safe copy: ``None`` for missing or infinite ends."""
    return [None if v is None or not math.isfinite(v) else float(v) for v in values]


def steady_analysis(summary: dict, lmax_theories=TABLE_LMAX_THEORY, alphas=None,
                    time_dependent_lmax: int = 48, time_dependent_alphas=None, model_lmax: int = 40,
                    fit_time=None) -> dict:
    """Everything chapter *Validation* reports about one ensemble, as one JSON-friendly dict.

    ``D(t)`` against QLT's ``K`` (with the plateau estimate and the interval slopes of
    :func:`qltlib.particles.statistics.interval_diffusion`), ``C_2/C_1`` per time, the
    convergence time of ``l = 1, 2, 4, 8, 16``, the multipoles resolved to 50 and 20 per cent,
    and at the steady time (:func:`steady_time`, or ``fit_time``; the last time, with
    ``steady`` false, when the ensemble is not steady) the fit table
    (:func:`fit_table`, with the best model curve up to ``model_lmax``), the free fits at the
    smallest and largest truncation at every later time (``fits_by_time``), the acceptable
    ``alpha`` per truncation (:func:`chi2_profile`, free amplitude) and the time-dependent
    comparison (:func:`time_dependent_comparison`) at every time.

    Parameters
    ----------
    summary : dict
        :func:`qltlib.particles.statistics.summarize` output, with ``per_realisation``.
    """
    settings = summary["settings"]
    spectrum = make_spectrum(settings["spectrum"], settings["k0"], settings["k1"])
    times = np.asarray(summary["times"], dtype=float)
    cl, cl_err = np.asarray(summary["C_ell"], dtype=float), np.asarray(summary["C_ell_err"], dtype=float)
    alphas = np.geomspace(*ALPHA_RANGE, 41) if alphas is None else np.asarray(alphas, dtype=float)
    td_alphas = np.geomspace(*ALPHA_RANGE, 21) if time_dependent_alphas is None else time_dependent_alphas
    diffusion = diffusion_comparison(times, summary["diffusion_coefficient"],
                                     summary["diffusion_coefficient_err"], spectrum)
    diffusion.update(K_plateau=summary.get("diffusion_plateau"), K_plateau_err=summary.get("diffusion_plateau_err"),
                     intervals=interval_diffusion(summary["per_realisation"]["msd"], times))
    convergence = ensemble_convergence(summary)
    at, steady = steady_time(convergence, times)
    if fit_time is not None:
        at = float(times[time_index(times, fit_time)])
    out = {"spectrum": settings["spectrum"], "k0": float(settings["k0"]), "k1": float(settings["k1"]),
           "nside": int(settings["nside"]), "realisations": int(summary["realisations"]),
           "expected": int(summary.get("expected", summary["realisations"])),
           "times": times.tolist(), "diffusion": diffusion,
           "ratio_c2_c1": multipole_ratio(summary["per_realisation"]), "convergence": convergence,
           "resolved_50": resolved_multipoles(cl, cl_err, 0.5), "resolved_20": resolved_multipoles(cl, cl_err, 0.2),
           "fit_time": at, "steady": steady, "fits": [], "degeneracy": []}
    for row in fit_table(summary, lmax_theories=lmax_theories, time=at):
        grid = theory_grid(settings, row["lmax_theory"])
        row["model_curve"] = (row["kg2"] * grid.cl(row["alpha"])[1:model_lmax + 1]).tolist()
        row["interval68"] = _finite(row["interval68"])
        out["fits"].append(row)
    out["fits_by_time"] = []
    for t in times[times >= at * (1 - 1e-9)]:
        for lmax_theory in (min(lmax_theories), max(lmax_theories)):
            try:
                fit = fit_simulation(summary, time=t, lmax_theory=lmax_theory)
            except ValueError as exc:      # too few measured multipoles at this time
                out["fits_by_time"].append({"time": float(t), "lmax_theory": int(lmax_theory),
                                            "error": str(exc)})
                continue
            out["fits_by_time"].append({"time": float(t), "lmax_theory": int(lmax_theory),
                                        "alpha": fit.alpha, "interval68": _finite(fit.alpha_interval),
                                        "chi2": fit.chi2, "ndof": fit.ndof, "p_value": fit.p_value,
                                        "n_points": int(fit.ell.size)})
    for lmax_theory in lmax_theories:
        profile = chi2_profile(summary, alphas, time=at, lmax_theory=lmax_theory)
        out["degeneracy"].append({**acceptable_alphas(profile), "alpha": profile["alpha"],
                                  "chi2": profile["chi2"], "ndof": profile["ndof"]})
    td = time_dependent_comparison(summary, td_alphas, lmax_theory=time_dependent_lmax)
    td["model"] = np.asarray(td["model"])[:, :, :model_lmax].tolist()
    out["time_dependent"] = td
    return out


#: p-value at and above which a fit counts as acceptable
ACCEPTABLE_P = 0.05


def _contains(interval, value, alpha_range=ALPHA_RANGE) -> bool:
    low, high = interval
    return (alpha_range[0] if low is None else low) <= value <= (alpha_range[1] if high is None else high)


def paper_claims(analysis: dict, lmax_theory: int = 48, compare_alpha: float = 200.0) -> list:
    """Verdicts on the paper's claims about its Fig. 1 from one :func:`steady_analysis`.

    1. *C_l is steady for Omega t >~ 10*: holds when every resolved multipole of the
       convergence table is steady by ``Omega t = 10``.
    2. *alpha ~ 50 fits the simulation*: ``holds`` when a fit with the amplitude fixed by the
       simulated plateau ``K`` is acceptable (p >= :data:`ACCEPTABLE_P`) with 50 in its 68 %
       interval; ``shape only`` when only free-amplitude fits (``fits_by_time``) are; else
       ``fails``.
    3. *larger alpha lowers and steepens the spectrum*: the analytic steady state at
       ``compare_alpha`` against ``alpha = 50`` (truncation ``lmax_theory``): lower at every
       ``2 <= l <= 16`` and smaller ``C_16/C_2``.

    Returns
    -------
    list of dict
        ``claim``, ``verdict`` and ``evidence`` (one line of numbers) per claim.
    """
    from ..theory.transport import steady_state_spectrum

    rows = {r["ell"]: r for r in analysis["convergence"]}
    resolved = [r for r in analysis["convergence"] if r["resolved"]]
    steady_by_10 = bool(resolved) and all(r["steady"] and r["time"] <= 10.0 for r in resolved)

    def since(ell):
        row = rows.get(ell)
        return f"from Omega t = {row['time']:.0f}" if row and row["steady"] else "not by the last time"

    claim1 = {"claim": "C_l steady by Omega t ~ 10", "verdict": "holds" if steady_by_10 else "fails",
              "evidence": f"C_1 steady {since(1)}, C_2 {since(2)}"}

    fixed_ok = [r for r in analysis["fits"] if r["amplitude"] == "diffusion" and r["p_value"] >= ACCEPTABLE_P
                and _contains(r["interval68"], PAPER_ALPHA)]
    shape_times = sorted({r["time"] for r in analysis.get("fits_by_time", []) if "error" not in r
                          and r["p_value"] >= ACCEPTABLE_P and _contains(r["interval68"], PAPER_ALPHA)})
    best = max(analysis["fits"], key=lambda r: r["p_value"])
    plateau = analysis["diffusion"]["K_plateau"] / analysis["k0"]
    low, high = best["interval68"]
    interval = (f"{low:.0f}-{high:.0f}" if low is not None and high is not None
                else f"below {high:.0f}" if high is not None
                else f"above {low:.0f}" if low is not None else "unbounded")
    claim2 = {"claim": "alpha ~ 50 fits the simulation",
              "verdict": "holds" if fixed_ok else ("shape only" if shape_times else "fails"),
              "evidence": (f"best at Omega t = {analysis['fit_time']:.0f}"
                           f"{'' if analysis.get('steady', True) else ' (not steady)'}: lmax {best['lmax_theory']}, "
                           f"{best['amplitude']} amplitude, alpha {best['alpha']:.0f} ({interval}), "
                           f"p = {best['p_value']:.1e}, amplitude {best['kg2'] / plateau:.2f} x K/k0; "
                           f"free fits with 50 inside at p >= {ACCEPTABLE_P:g}: Omega t = "
                           f"{[int(t) for t in shape_times] or 'none'}")}

    spectrum = make_spectrum(analysis["spectrum"], analysis["k0"], analysis["k1"])
    paper = steady_state_spectrum(spectrum, PAPER_ALPHA, lmax_theory, kg2=1.0).C_ell    # l = 1..lmax
    other = steady_state_spectrum(spectrum, compare_alpha, lmax_theory, kg2=1.0).C_ell
    lower = bool(np.all(other[1:16] < paper[1:16]))
    steeper = bool(other[15] / other[1] < paper[15] / paper[1])
    claim3 = {"claim": "larger alpha lowers and steepens C_l", "verdict": "holds" if lower and steeper else "fails",
              "evidence": (f"alpha {compare_alpha:g} vs {PAPER_ALPHA:g} (lmax {lmax_theory}): C_2 ratio "
                           f"{other[1] / paper[1]:.2f}, C_16/C_2 {other[15] / other[1]:.2e} vs "
                           f"{paper[15] / paper[1]:.2e}")}
    return [claim1, claim2, claim3]


def format_claims(claims, width: int = 84) -> str:
    """The rows of :func:`paper_claims` as numbered text: claim and verdict, then the evidence
    wrapped to ``width`` characters."""
    import textwrap

    lines = []
    for number, row in enumerate(claims, start=1):
        lines.append(f"{number}. {row['claim']}: {row['verdict'].upper()}")
        lines.append(textwrap.fill(row["evidence"], width, initial_indent="   ", subsequent_indent="   "))
    return "\n".join(lines)
