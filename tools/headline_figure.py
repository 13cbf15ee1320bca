"""The README's figure: the paper's Fig. 1 at the steady time, from the stored data only.

    python tools/headline_figure.py [--out docs/headline.png]

Simulated steady C_l of the long test-particle ensemble (100 realisations, Omega t = 640) against
the analytic steady state of first-order QLT fitted with the amplitude free (solid) and fixed by
the simulated diffusion coefficient (dashed), for three truncations lmax, as in chapter 7's
figure ``fig-validation-fig1`` (without its alpha = 50 line, which needs the theory), and the
steady state of the one-step recursion of chapter 9 (no free parameter; the grid's aliasing
floor subtracted) at the defaults of ``qlt spectrum --method transfer`` (alpha = 3200, 68 rings,
256 modes: the long ensemble's own fields), with its jackknife errors. Reads
``data/simulation/white_k0-1e-3_k1-1e2_t1280/``, ``data/simulation/steady_comparison.json`` and
``data/one_step/white_alpha3200_grid68_modes256.npz``; takes a few seconds.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qltlib.paths import DATA_DIR  # noqa: E402
from qltlib.particles.one_step import load_one_step  # noqa: E402
from qltlib.particles.statistics import summarize  # noqa: E402
from qltlib.validation.one_step_check import simulation_reference, steady_comparison  # noqa: E402
from qltlib.plotting import readable_log_axes  # noqa: E402

OUT = ROOT / "docs" / "headline.png"


def headline_figure(out: Path = OUT) -> Path:
    white = json.loads((DATA_DIR / "simulation" / "steady_comparison.json").read_text())[
        "ensembles"]["white"]
    long_run = summarize(DATA_DIR / "simulation" / "white_k0-1e-3_k1-1e2_t1280")
    times = np.array(long_run["times"])
    it = int(np.argmin(np.abs(times - white["fit_time"])))
    ell = np.array(long_run["ell"])
    cl, cl_err = np.array(long_run["C_ell"])[it], np.array(long_run["C_ell_err"])[it]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for j, lmax_theory in enumerate((12, 48, 200)):
        for row in white["fits"]:
            if row["lmax_theory"] != lmax_theory:
                continue
            free = row["amplitude"] == "free"
            ax.plot(np.arange(1, len(row["model_curve"]) + 1), row["model_curve"],
                    color=f"C{j + 1}", ls="-" if free else "--",
                    label=f"QLT, lmax {lmax_theory}, amplitude "
                          f"{'free' if free else 'from K'}: $\\alpha$ = {row['alpha']:.0f}")
    measured = load_one_step(DATA_DIR / "one_step" / "white_alpha3200_grid68_modes256.npz")
    one_step = steady_comparison(measured.without_floor(), simulation_reference(long_run))
    ax.errorbar(np.arange(1, len(one_step["C"]) + 1), one_step["C"], one_step["C_err"], fmt="s",
                ms=3, color="k", mfc="none",
                label=f"one-step recursion, $\\alpha$ = {one_step['alpha']:.0f}, no free parameter "
                      f"(aliasing floor subtracted)")
    shown = (ell >= 1) & (ell <= 40) & (cl_err < cl)
    ax.errorbar(ell[shown], cl[shown], cl_err[shown], fmt="o", ms=4, color="C0",
                label=f"test particles, $\\Omega t$ = {white['fit_time']:.0f} "
                      f"({long_run['realisations']} realisations)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(1e-2, 1e4)
    ax.set_xlabel(r"multipole $\ell$")
    ax.set_ylabel(r"$C_\ell$ [$(r_g|\mathbf{G}|)^2$]")
    ax.set_title("Steady small-scale power: test particles, first-order QLT, one-step recursion",
                 fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    readable_log_axes(fig)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    print(f"wrote {headline_figure(args.out).relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
