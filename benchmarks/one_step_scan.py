"""Measure the one-step terms (M, S, X, m_1, P_1) of issue 21 for several alpha; resumable.

    NUMBA_NUM_THREADS=1 python benchmarks/one_step_scan.py --spectrum white \\
        --alphas 100,200,400,800,1600 --realisations 100 [--lmax 16] [--n-theta N] [--modes 1024] \\
        [--out data/one_step]

One file per (spectrum, alpha, grid, modes): ``OUT/<spectrum>_alpha<alpha>[_grid<n>][_modes<n>].npz``
(:meth:`qltlib.particles.one_step.OneStepMeasurement.save`), realisations ``0 .. R-1`` of seed 2019.
The particles are tracked through the shared runner and part store of ``qlt transfer`` and
``qlt spectrum --method transfer`` (:func:`qltlib.particles.transfer_run.run_one_step`; the cache
directory of these settings unless ``--store``): Ctrl-C keeps every finished realisation and a
rerun resumes; the file is written once all ``R`` are done, and a file that already holds them
is left as it is. Alphas are done in the order given. The files hold every term the
measurement records, the direction-resolved terms of the quenched closure included (files
written before them lack those; ``--out data/one_step/quenched`` holds those measured again).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qltlib.particles.one_step import load_one_step
from qltlib.particles.runner import stderr_line
from qltlib.particles.transfer import TransferSettings
from qltlib.particles.transfer_run import run_one_step


def file_name(settings: TransferSettings) -> str:
    name = f"{settings.spectrum}_alpha{settings.alpha:g}"
    if settings.n_theta != 2 * (settings.lmax + 1):
        name += f"_grid{settings.n_theta}"
    if settings.n_modes != 1024:
        name += f"_modes{settings.n_modes}"
    return name + ".npz"


def run(settings: TransferSettings, n_realisations: int, out: Path, workers: int = 1,
        store=None) -> None:
    path = out / file_name(settings)
    if path.is_file():
        held = load_one_step(path)
        if held.settings != settings:
            raise SystemExit(f"{path} holds other settings: {held.settings}")
        if set(range(n_realisations)) <= set(held.indices.tolist()):
            print(f"{path.name}: the {n_realisations} realisations are stored; nothing to do",
                  flush=True)
            return
    start = time.perf_counter()
    result = run_one_step(settings, n_realisations, store=store, workers=workers,
                          report=stderr_line)
    tmp = path.with_name(path.name + ".tmp.npz")
    result["measurement"].save(tmp)
    tmp.replace(path)
    print(f"{path.name}: {n_realisations} realisations ({len(result['written'])} tracked now, "
          f"{time.perf_counter() - start:.0f} s; store {result['store']})", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spectrum", default="white")
    parser.add_argument("--alphas", default="100,200,400,800")
    parser.add_argument("--realisations", type=int, default=100)
    parser.add_argument("--lmax", type=int, default=16)
    parser.add_argument("--n-theta", type=int, default=None)
    parser.add_argument("--modes", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--store", type=Path, default=None,
                        help="part store (default: the cache directory of each alpha's settings)")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "one_step")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for alpha in (float(a) for a in args.alphas.split(",")):
        settings = TransferSettings(alpha=alpha, lmax=args.lmax, n_theta=args.n_theta, n_modes=args.modes,
                                    spectrum=args.spectrum)
        store = None if args.store is None else args.store / file_name(settings).removesuffix(".npz")
        run(settings, args.realisations, args.out, args.workers, store)


if __name__ == "__main__":
    main()
