"""Where the book's data live, independent of the working directory of a notebook or test.

Chapters run from ``chapters/`` when the book is built and from ``tests/notebooks/`` when the
regression tests re-execute them, so they locate files through :data:`DATA_DIR` rather than
relative paths. In a clone of the repository (the editable install of the README) that is the
repository's ``data/``; an installed, non-editable ``qltlib`` carries a copy of the small
observational data (the registry ``datasets.json`` and the files it names, copied at build time
by ``setup.py``) in ``qltlib/_data``. ``QLT_DATA_DIR`` overrides both.
"""
from __future__ import annotations

import os
from pathlib import Path

#: repository root (meaningful in a clone: the editable install of the README)
REPO_ROOT = Path(__file__).resolve().parents[1]
#: the observational data packaged with a non-editable install
PACKAGED_DATA_DIR = Path(__file__).resolve().parent / "_data"


def _data_dir() -> Path:
    if os.environ.get("QLT_DATA_DIR"):
        return Path(os.environ["QLT_DATA_DIR"])
    repository_data = REPO_ROOT / "data"
    if (repository_data / "datasets.json").is_file():
        return repository_data
    return PACKAGED_DATA_DIR


#: the ``data/`` directory: the repository's, else the packaged copy
DATA_DIR = _data_dir()


def cache_dir() -> Path:
    """Directory of the on-disk cache of computed tables and measurements (Wigner tables, transfer parts) (``$QLT_CACHE_DIR`` or ``~/.cache/qltlib``)."""
    return Path(os.environ.get("QLT_CACHE_DIR", Path.home() / ".cache" / "qltlib"))
