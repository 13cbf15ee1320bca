"""Execute chapters and store their outputs as the regression references.

Usage: ``python tests/bless_notebooks.py [chapters/NAME.md ...]`` (default: every chapter).
See :mod:`notebook_references` for how the references are used.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

os.environ.pop("MPLBACKEND", None)  # same inline backend as the nbval run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_references import REFERENCE_DIR, chapters, read_chapter, reference_for  # noqa: E402


def merge_streams(nb) -> None:
    """Join consecutive stdout (or stderr) outputs of a cell into one block.

    A kernel flushes stdout while a cell runs, so prints separated by a long computation end up
    in separate outputs; the book shows one block per cell (``nb_merge_streams`` in
    ``_config.yml``) and nbval compares the joined text, so the reference stores it joined too.
    """
    for cell in nb.cells:
        merged = []
        for output in cell.get("outputs", []):
            previous = merged[-1] if merged else None
            if (output.output_type == "stream" and previous is not None
                    and previous.output_type == "stream" and previous.name == output.name):
                previous.text += output.text
            else:
                merged.append(output)
        if "outputs" in cell:
            cell.outputs = merged


def bless(chapter: Path, timeout: int = 900) -> float:
    nb = read_chapter(chapter)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    start = time.perf_counter()
    # run where nbval will run it, so relative behaviour is identical
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(REFERENCE_DIR)}}).execute()
    elapsed = time.perf_counter() - start
    merge_streams(nb)
    REFERENCE_DIR.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, reference_for(chapter))
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", type=Path, help="chapter .md files (default: all)")
    args = parser.parse_args(argv)
    targets = [p.resolve() for p in args.chapters] or chapters()
    for chapter in targets:
        if not chapter.is_file():
            print(f"bless_notebooks: no such chapter: {chapter}", file=sys.stderr)
            return 2
        elapsed = bless(chapter)
        print(f"blessed {chapter.name} -> {reference_for(chapter).relative_to(REFERENCE_DIR.parents[1])} ({elapsed:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
