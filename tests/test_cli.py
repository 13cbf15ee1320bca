"""The qlt command: JSON output and one-line errors."""
import json
import subprocess
import sys

import pytest

from qltlib.cli import main


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "qltlib.cli", *args], capture_output=True, text=True, timeout=300)
    return proc


def test_spectrum_json(capsys):
    assert main(["spectrum", "--lmax", "8", "--alpha", "50"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"ell", "C_ell", "K", "nu_1", "settings"}
    assert out["ell"] == list(range(1, 9))
    assert len(out["C_ell"]) == 8 and all(c > 0 for c in out["C_ell"])
    assert out["K"] == pytest.approx(1 / (3 * out["nu_1"]))
    assert out["settings"]["alpha"] == 50.0 and out["settings"]["spectrum"] == "white"


def test_no_coupling_gives_pure_dipole(capsys):
    assert main(["spectrum", "--lmax", "4", "--no-coupling", "--spectrum", "kolmogorov"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["C_ell"][0] > 0 and out["C_ell"][1:] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("args, word", [
    (["--k0", "5", "--k1", "1"], "k1"),
    (["--alpha", "-2"], "alpha"),
    (["--alpha", "0"], "alpha"),
    (["--lmax", "1"], "lmax"),
    (["--spectrum", "pink"], "spectrum"),
    (["--kg2", "abc"], "kg2"),
])
def test_bad_input_is_one_line_error(args, word):
    proc = run_cli("spectrum", *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and word in lines[0] and "Traceback" not in proc.stderr
