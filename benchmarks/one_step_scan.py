"""Measure the one-step terms (M, S, X, m_1, P_1) of issue 21 for several alpha; resumable.

    NUMBA_NUM_THREADS=1 python benchmarks/one_step_scan.py --spectrum white \\
        --alphas 100,200,400,800,1600 --realisations 100 [--lmax 16] [--n-theta N] [--modes 1024] \\
        [--out data/one_step]

One file per (spectrum, alpha, grid, modes): ``OUT/<spectrum>_alpha<alpha>[_grid<n>][_modes<n>].npz``
(:meth:`qltlib.particles.one_step.OneStepMeasurement.save`). Realisations ``0 .. R-1`` of seed 2019; the
file is rewritten every ``--save-every`` realisations, and a rerun continues from the realisations
it holds (same settings required). Alphas are done in the order given.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qltlib.particles.one_step import (
    combine,
    from_realisations,
    load_one_step,
    measure_step_realisation,
)
from qltlib.particles.transfer import TransferSettings


def file_name(settings: TransferSettings) -> str:
    name = f"{settings.spectrum}_alpha{settings.alpha:g}"
    if settings.n_theta != 2 * (settings.lmax + 1):
        name += f"_grid{settings.n_theta}"
    if settings.n_modes != 1024:
        name += f"_modes{settings.n_modes}"
    return name + ".npz"


def run(settings: TransferSettings, n_realisations: int, out: Path, save_every: int) -> None:
    path = out / file_name(settings)
    done = load_one_step(path) if path.is_file() else None
    if done is not None and done.settings != settings:
        raise SystemExit(f"{path} holds other settings: {done.settings}")
    have = set() if done is None else set(done.indices.tolist())
    todo = [i for i in range(n_realisations) if i not in have]
    print(f"{path.name}: {len(have)} stored, {len(todo)} to do", flush=True)
    batch, batch_idx = [], []
    start = time.perf_counter()
    for count, index in enumerate(todo, 1):
        batch.append(measure_step_realisation(settings, index))
        batch_idx.append(index)
        if len(batch) == save_every or count == len(todo):
            part = from_realisations(settings, batch, batch_idx)
            done = part if done is None else combine([done, part])
            tmp = path.with_name(path.name + ".tmp.npz")
            done.save(tmp)
            tmp.replace(path)
            print(f"  {done.realisations} realisations, {time.perf_counter() - start:.0f} s, "
                  f"{sum(r['seconds'] for r in batch) / len(batch):.2f} s each (last batch)", flush=True)
            batch, batch_idx = [], []


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spectrum", default="white")
    parser.add_argument("--alphas", default="100,200,400,800")
    parser.add_argument("--realisations", type=int, default=100)
    parser.add_argument("--lmax", type=int, default=16)
    parser.add_argument("--n-theta", type=int, default=None)
    parser.add_argument("--modes", type=int, default=1024)
    parser.add_argument("--save-every", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "one_step")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for alpha in (float(a) for a in args.alphas.split(",")):
        settings = TransferSettings(alpha=alpha, lmax=args.lmax, n_theta=args.n_theta, n_modes=args.modes,
                                    spectrum=args.spectrum)
        run(settings, args.realisations, args.out, args.save_every)


if __name__ == "__main__":
    main()
