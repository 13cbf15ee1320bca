"""Measure the path memories C_v(t), C_B(t) and D(t) of the long ensembles' fields; resumable.

    NUMBA_NUM_THREADS=1 python benchmarks/path_memory_scan.py \\
        --spectra white,logflat,kolmogorov,flat3d [--realisations 30] [--nside 2] \\
        [--last 2560] [--modes 256] [--out data/path_memory]

For each spectrum, the particles of ``qlt simulate`` at ``--nside`` (48 directions at 2) through
realisations ``0 .. R-1`` of seed 2019 (the fields of the long ensembles: 256 modes,
k = 1e-3 .. 1e2 / r_g, step fraction 0.4, float32, multirate), back-tracked to the output times
:data:`TIMES` (they hold the steps Delta T = alpha / k1 of chapter 9's one-step scans and the
ensembles' last times), then doublings up to ``--last``. Computed through the shared runner and
part store of :func:`qltlib.particles.path_memory.run_path_memory` (Ctrl-C keeps every finished
realisation; the same command resumes). ``OUT/<spectrum>.json`` (``<spectrum>_modes<N>.json``
for another ``--modes``: the convergence check in the number of plane waves;
:meth:`PathMemory.to_json`) is written only when its content changes, so a rerun with nothing
to do changes no file.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qltlib.particles.path_memory import run_path_memory
from qltlib.particles.runner import stderr_line
from qltlib.particles.settings import SimulationSettings

#: output times Omega t: every one-step Delta T of chapter 9 (alpha / k1 with k1 = 100) from
#: alpha = 400 to 128000, and the long ensembles' last times 1280 and 2560
TIMES = (4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 320.0, 640.0, 1280.0, 2560.0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spectra", default="white,logflat,kolmogorov,flat3d")
    parser.add_argument("--realisations", type=int, default=30)
    parser.add_argument("--nside", type=int, default=2)
    parser.add_argument("--last", type=float, default=TIMES[-1],
                        help="last output time Omega t: TIMES, then doublings up to it")
    parser.add_argument("--modes", type=int, default=256,
                        help="plane waves per field (the ensembles': 256)")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "path_memory")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    times = list(TIMES)
    while times[-1] * 2 <= args.last * (1 + 1e-9):
        times.append(times[-1] * 2)
    for spectrum in args.spectra.split(","):
        settings = SimulationSettings(nside=args.nside, times=times, n_modes=args.modes, seed=2019,
                                      spectrum=spectrum, k0=1e-3, k1=1e2, step_fraction=0.4)
        start = time.perf_counter()
        run = run_path_memory(settings, args.realisations, report=stderr_line)
        text = json.dumps(run["memory"].to_json(), indent=1) + "\n"
        suffix = "" if args.modes == 256 else f"_modes{args.modes}"
        path = args.out / f"{spectrum}{suffix}.json"
        if path.is_file() and path.read_text() == text:
            print(f"{path.name}: unchanged ({args.realisations} realisations stored)", flush=True)
            continue
        path.write_text(text)
        print(f"{path.name}: {args.realisations} realisations ({len(run['written'])} tracked now, "
              f"{time.perf_counter() - start:.0f} s; store {run['store']})", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ValueError as exc:                 # bad settings: one line, no traceback
        print(f"path_memory_scan: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("path_memory_scan: interrupted; finished realisations are kept in the part store "
              "(rerun the same command to resume)", file=sys.stderr)
        sys.exit(130)
