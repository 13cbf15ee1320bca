"""Build hook: ship the small observational data with a non-editable install.

``qlt fit --dataset`` needs the registry ``data/datasets.json`` and the files each entry names
(its data file and README). They stay in ``data/`` (one copy in the repository, with their
provenance); building a wheel copies them into ``qltlib/_data`` (see :mod:`qltlib.paths`).
Everything else is configured in ``pyproject.toml``.
"""
import json
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def registry_files() -> list:
    """``datasets.json`` and the files its entries name, relative to ``data/``."""
    registry = json.loads((ROOT / "data" / "datasets.json").read_text())
    names = ["datasets.json"]
    for entry in registry.get("datasets", []):
        names += [entry[key] for key in ("file", "readme") if entry.get(key)]
    return names


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "qltlib" / "_data"
        for name in registry_files():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / "data" / name, target / name)


setup(cmdclass={"build_py": BuildPyWithData})
