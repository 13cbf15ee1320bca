"""Reference outputs of the chapters for the notebook regression tests.

Each chapter ``chapters/NAME.md`` (MyST notebook, read through jupytext) has a reference
``tests/notebooks/NAME.ipynb``: the same cells, executed, with their outputs. pytest collects the
references with nbval (``--nbval``, see ``pyproject.toml``), re-executes every cell and compares
the new outputs with the stored ones after the substitutions in ``tests/sanitize.cfg``;
``tests/test_notebook_references.py`` fails when a reference no longer matches its chapter.

Re-bless after an intended change (executes the chapters, a few minutes)::

    python tests/bless_notebooks.py                 # every chapter
    python tests/bless_notebooks.py chapters/05_kernels.md

Chapters that track test particles (their code imports, directly or not, the compiled kernel of
``qltlib.particles.tracking``) are also re-executed under ``NUMBA_CPU_NAME=generic`` by ``.ci/run``: their
float32 round-off depends on the CPU's code path, so their stored outputs must not. List them
with ``python tests/notebook_references.py --tracking``.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import jupytext
import nbformat
from import_graph import import_graph, reachable

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_DIR = ROOT / "chapters"
REFERENCE_DIR = ROOT / "tests" / "notebooks"
BLESS_COMMAND = "python tests/bless_notebooks.py"
#: the module whose compiled particle kernel makes a chapter's digits CPU dependent
TRACKING_MODULE = "qltlib.particles.tracking"
_QLTLIB_IMPORT = re.compile(r"^\s*(?:from|import)\s+(qltlib(?:\.\w+)*)", re.M)


def chapters() -> list[Path]:
    return sorted(CHAPTER_DIR.glob("*.md"))


def reference_for(chapter: Path) -> Path:
    return REFERENCE_DIR / (chapter.stem + ".ipynb")


def cell_sources(nb) -> list[tuple[str, str]]:
    """The parts of a notebook a reference must agree on: cell types and sources."""
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def read_chapter(chapter: Path):
    return jupytext.read(chapter)


def read_reference(path: Path):
    return nbformat.read(path, as_version=4)


def imported_qltlib_modules(chapter: Path) -> list[str]:
    """The ``qltlib`` modules named in ``import`` statements of a chapter's code cells."""
    code = "\n".join(c.source for c in read_chapter(chapter).cells if c.cell_type == "code")
    return sorted(set(_QLTLIB_IMPORT.findall(code)))


def tracks_particles(chapter: Path) -> bool:
    """Whether the chapter's ``qltlib`` imports can reach :data:`TRACKING_MODULE`.

    Read from the source, function-local imports included: the modules that integrate
    trajectories import the compiled kernel only where they do, so importing them does not
    load it.
    """
    graph = import_graph()
    return TRACKING_MODULE in reachable(graph, imported_qltlib_modules(chapter))


def particle_tracking_references() -> list[Path]:
    """Reference notebooks of the chapters that track particles (see :func:`tracks_particles`).

    Only references that exist are listed; a missing one fails ``test_notebook_references``.
    """
    return [reference_for(c) for c in chapters()
            if reference_for(c).is_file() and tracks_particles(c)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="List reference notebooks.")
    parser.add_argument("--tracking", action="store_true",
                        help="only those of chapters that track particles (qltlib.particles.tracking)")
    args = parser.parse_args(argv)
    paths = particle_tracking_references() if args.tracking else [reference_for(c) for c in chapters()]
    print("\n".join(str(p.relative_to(ROOT)) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
