"""The converged comparison of chapter *Validation*: every long ensemble against the analytic theory.

    python benchmarks/steady_comparison.py [--out FILE] [DIR ...]

For each simulation directory (default: the four long ensembles in ``data/simulation/``,
``*_k0-1e-3_k1-1e2_t1280``) runs :func:`qltlib.validation.claims.steady_analysis`: D(t) against
QLT's K with the plateau estimate, C_2/C_1 per time, the convergence time of l = 1, 2, 4, 8, 16,
the multipoles resolved to 50 and 20 per cent, and at the steady time the fit table for
l_max = 12, 24, 48, 100, 200 with free and fixed amplitude, the acceptable alpha per l_max and
the time-dependent comparison at every time. Writes one JSON file (default
``data/simulation/steady_comparison.json``). Reads only the summary files: a few minutes, most
of it for the steady-state tables at l_max = 100 and 200.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qltlib.particles.statistics import summarize  # noqa: E402
from qltlib.validation.claims import steady_analysis  # noqa: E402

DEFAULT_DIRS = [ROOT / "data" / "simulation" / f"{name}_k0-1e-3_k1-1e2_t1280"
                for name in ("white", "flat3d", "logflat", "kolmogorov")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="*", type=Path, default=DEFAULT_DIRS)
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "simulation" / "steady_comparison.json")
    args = parser.parse_args(argv)
    report = {"script": "benchmarks/steady_comparison.py", "ensembles": {}}
    for directory in args.dirs:
        if not (directory / "manifest.json").is_file():
            print(f"skipping {directory}: no manifest", file=sys.stderr)
            continue
        start = time.perf_counter()
        analysis = steady_analysis(summarize(directory))
        analysis["directory"] = directory.resolve().relative_to(ROOT).as_posix()
        report["ensembles"][analysis["spectrum"]] = analysis
        print(f"{directory.name}: {analysis['realisations']} realisations, fit at Omega t = "
              f"{analysis['fit_time']:g} ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    args.out.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
