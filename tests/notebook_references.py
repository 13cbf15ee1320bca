"""Reference outputs of the chapters for the notebook regression tests.

Each chapter ``chapters/NAME.md`` (MyST notebook, read through jupytext) has a reference
``tests/notebooks/NAME.ipynb``: the same cells, executed, with their outputs. pytest collects the
references with nbval (``--nbval``, see ``pyproject.toml``), re-executes every cell and compares
the new outputs with the stored ones after the substitutions in ``tests/sanitize.cfg``;
``tests/test_notebook_references.py`` fails when a reference no longer matches its chapter.

Re-bless after an intended change (executes the chapters, a few minutes)::

    python tests/bless_notebooks.py                 # every chapter
    python tests/bless_notebooks.py chapters/05_kernels.md
"""
from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_DIR = ROOT / "chapters"
REFERENCE_DIR = ROOT / "tests" / "notebooks"
BLESS_COMMAND = "python tests/bless_notebooks.py"


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
