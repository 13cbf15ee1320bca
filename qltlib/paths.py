"""Where the book's data live, independent of the working directory of a notebook or test.

Chapters run from ``chapters/`` when the book is built and from ``tests/notebooks/`` when the
regression tests re-execute them, so they locate files through :data:`DATA_DIR` rather than
relative paths. ``QLT_DATA_DIR`` overrides it (for an installed, non-editable ``qltlib``).
"""
from __future__ import annotations

import os
from pathlib import Path

#: repository root (for the editable install the README uses)
REPO_ROOT = Path(__file__).resolve().parents[1]
#: the ``data/`` directory of the repository
DATA_DIR = Path(os.environ.get("QLT_DATA_DIR", REPO_ROOT / "data"))
