"""The qlt command: JSON output and one-line errors."""
import json
import subprocess
import sys

import pytest
from cli_checks import assert_one_line_error

from qltlib.cli.main import main


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "qltlib.cli", *args], capture_output=True, text=True, timeout=300)
    return proc


def _strict_json(text):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


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
    assert_one_line_error(run_cli("spectrum", *args), word)


# --- issue 11: input outside the theory or the machine, and the CLI as users expect ----------

@pytest.mark.parametrize("args", [
    ["--alpha", "1e-3"], ["--alpha", "1e-8"], ["--alpha", "1e-300"],
    ["--spectrum", "kolmogorov", "--alpha", "1e-2"],
])
def test_alpha_outside_the_theory_is_refused(args):
    """Issue 11 defect 5: these exited 0 with negative C_l (or printed NaN)."""
    line = assert_one_line_error(run_cli("spectrum", *args), "alpha = k1 c Delta T >> 1")
    assert "benchmarks/alpha_domain.py" in line     # the measured threshold is quoted


def test_wide_band_gives_positive_spectrum_or_refusal():
    """`--k0 1e-10 --k1 1e10` printed negative C_l; white noise is fine there now, Kolmogorov
    is refused (its rates fall below round-off)."""
    proc = run_cli("spectrum", "--k0", "1e-10", "--k1", "1e10", "--lmax", "40")
    assert proc.returncode == 0, proc.stderr
    assert all(c > 0 for c in _strict_json(proc.stdout)["C_ell"])
    assert_one_line_error(run_cli("spectrum", "--spectrum", "kolmogorov", "--k0", "1e-10",
                                   "--k1", "1e10", "--lmax", "100"), "not physical", ">> 1")


@pytest.mark.parametrize("args", [["--lmax", "500"], ["--lmax", "100000"]])
def test_sizes_beyond_the_machine_are_refused_before_allocating(args):
    """Issue 11 defect 7: --lmax 500 passed 4 GB, --lmax 100000 died with a MemoryError."""
    assert_one_line_error(run_cli("spectrum", *args), "would need about", "GiB")


@pytest.mark.parametrize("args, words", [
    (["--k1", "inf"], ("k1", "finite")),
    (["--k0", "1e299", "--k1", "1e300"], ("k0", "must lie in")),
    (["--alpha", "nan"], ("alpha", "finite")),
    (["--lmax", "ten"], ("lmax", "integer")),
])
def test_messages_say_what_is_wrong(args, words):
    """Issue 11 defect 8: `--k1 inf` said `k1 must be larger than k0`; `--k0 1e299 --k1 1e300`
    said `Singular matrix`."""
    line = assert_one_line_error(run_cli("spectrum", *args), *words)
    assert "larger than k0" not in line and "Singular" not in line


def test_version():
    from qltlib import __version__
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"qlt (qltlib) {__version__}"


def _options_of(parser):
    return [a for a in parser._actions if a.option_strings and a.dest != "help"]


def test_every_help_shows_defaults_and_units():
    from qltlib.cli.main import build_parser
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices
    for name in ("spectrum", "fit"):
        text = " ".join(sub[name].format_help().split())
        for action in _options_of(sub[name]):
            if action.required:
                continue
            help_text = sub[name]._get_formatter()._expand_help(action)
            assert "default" in help_text, (name, action.dest)
        assert "units" in text or "unit" in text
    spectrum_help = " ".join(sub["spectrum"].format_help().split())
    for unit in ("1/r_g", "c k0", "dimensionless"):
        assert unit in spectrum_help


def test_json_output_is_strict_and_alone_on_stdout():
    proc = run_cli("spectrum", "--lmax", "6")
    assert proc.returncode == 0
    assert len(proc.stdout.splitlines()) == 1
    assert all(c > 0 for c in _strict_json(proc.stdout)["C_ell"])


def test_checked_json_refuses_nan():
    from qltlib.cli.common import checked_json
    assert checked_json({"a": 1.0}) == '{"a": 1.0}'
    with pytest.raises(ValueError, match="NaN"):
        checked_json({"a": float("nan")})


def test_os_errors_become_one_line(monkeypatch, capsys):
    """Unwritable or occupied paths are one line with exit 2, never a traceback."""
    import qltlib.cli.main as cli

    def denied(args):
        raise PermissionError(13, "Permission denied", "forbidden/run")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["spectrum"].set_defaults(func=denied)
    assert cli.main(["spectrum"]) == 2
    err = capsys.readouterr().err
    assert err == "qlt spectrum: error: Permission denied: forbidden/run\n"


# --- issue 19: pointers, plain messages, estimates -------------------------------------------

def test_bare_qlt_points_to_help():
    line = assert_one_line_error(run_cli(), "no sub-command given", "see qlt --help")
    assert "spectrum" in line and "fit" in line


def test_fit_summary_mentions_the_simulation_fit():
    proc = run_cli("--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    fit_line = text.split(" fit ", 1)[1].split(" simulate ", 1)[0]
    assert "--simulation" in fit_line, fit_line


def test_alpha_just_below_ten_is_refused_plainly():
    line = assert_one_line_error(run_cli("spectrum", "--alpha", "9.99"), "alpha = 9.99",
                                 "accepted only for alpha >= 10", "k1 c Delta T >> 1")
    assert "2e-5" not in line and "2e-05" not in line   # no measured breakdown values to confuse


def test_missing_simulation_directory_is_refused_before_the_heavy_imports(tmp_path):
    probe = ("import sys; from qltlib.cli.main import main; "
             f"rc = main(['fit', '--simulation', {str(tmp_path / 'missing')!r}]); "
             "print(rc, 'qltlib.particles.statistics' in sys.modules, "
             "'qltlib.validation.simulation_fit' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.split() == ["2", "False", "False"], proc.stdout + proc.stderr
    missing = tmp_path / "missing"
    assert proc.stderr == f"qlt fit: error: --simulation: no such directory: {missing}\n"


def test_long_spectrum_announces_its_estimate_and_phases(monkeypatch, capsys):
    import qltlib.cli.common as common
    from qltlib.theory.spectrum import WhiteNoiseSpectrum
    from qltlib.theory.transport import estimate_solves

    assert main(["spectrum", "--lmax", "6"]) == 0
    assert capsys.readouterr().err == ""                    # a short run stays silent
    # `qlt spectrum --lmax 300` (about 97 s) is above the threshold, even with cached tables
    assert estimate_solves(WhiteNoiseSpectrum(1e-3, 1e2), 50.0, 300).seconds >= 5.0
    monkeypatch.setattr(common, "ANNOUNCE_SECONDS", 0.0)
    assert main(["spectrum", "--lmax", "6"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and lines[0].startswith("qlt spectrum: about ")
    assert "(estimate) for the steady state at lmax = 6, alpha = 50" in lines[0]
    assert lines[1].startswith("qlt spectrum: 1/2: Wigner tables for lmax = 6")
    assert lines[2].startswith("qlt spectrum: 2/2: kernel")


def test_long_fit_announces_its_estimate(monkeypatch, capsys):
    import qltlib.cli.common as common

    monkeypatch.setattr(common, "ANNOUNCE_SECONDS", 0.0)
    assert main(["fit", "--energy-tev", "13", "--lmax", "10", "--lmax-theory", "12"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "(estimate) for the theory table (11 steady states at " \
        "lmax_theory = 12), then the fit" in lines[0]
