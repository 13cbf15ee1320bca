"""The package installs without ``-e``: every subpackage and the observational data ship.

Issue 20: ``pip install .`` from a clone, then ``qlt`` from another directory. The wheel is
built and unpacked into a folder that is put first on ``sys.path``, so the ``qlt`` that runs is
the installed copy, not the repository's (its dependencies come from this environment).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    wheels = tmp_path_factory.mktemp("wheels")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    str(REPO), "-w", str(wheels)], check=True, capture_output=True, text=True)
    (wheel,) = wheels.glob("qltlib-*.whl")
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def _qlt(site: Path, cwd: Path, *args):
    env = dict(os.environ, PYTHONPATH=str(site))
    env.pop("QLT_DATA_DIR", None)
    return subprocess.run([sys.executable, "-m", "qltlib.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_every_subpackage_and_the_fit_data_are_in_the_wheel(installed):
    packages = {p.parent.relative_to(installed).as_posix() for p in installed.rglob("__init__.py")}
    assert packages == {"qltlib", "qltlib/theory", "qltlib/particles", "qltlib/observations",
                        "qltlib/validation", "qltlib/cli"}
    registry = json.loads((installed / "qltlib" / "_data" / "datasets.json").read_text())
    for entry in registry["datasets"]:
        assert (installed / "qltlib" / "_data" / entry["file"]).is_file()


def test_qlt_runs_outside_the_repository_from_the_installed_copy(installed, tmp_path):
    where = _qlt(installed, tmp_path, "spectrum", "--alpha", "50", "--lmax", "12")
    assert where.returncode == 0, where.stderr
    assert len(json.loads(where.stdout)["C_ell"]) == 12
    fit = _qlt(installed, tmp_path, "fit", "--dataset", "icecube-12yr", "--energy-tev", "13")
    assert fit.returncode == 0, fit.stderr
    assert json.loads(fit.stdout)["ndof"] > 0
    probe = subprocess.run([sys.executable, "-c", "import qltlib.paths as p; print(p.DATA_DIR)"],
                           cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(installed)),
                           capture_output=True, text=True, check=True)
    assert Path(probe.stdout.strip()) == installed / "qltlib" / "_data"
