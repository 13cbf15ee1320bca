"""Every key of every ``qlt`` JSON is documented, with units, in qltlib/cli/outputs.py.

The commands run on tiny inputs (about a minute in all); a key printed but not documented, or
documented but never printed, fails. The help texts and the book page reference_outputs.md are
checked to come from the same tables.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

from qltlib.cli.main import build_parser
from qltlib.cli.outputs import TABLES, epilog, json_paths, markdown_page

REPO = Path(__file__).resolve().parents[2]
LONG_RUN = REPO / "data" / "simulation" / "white_k0-1e-3_k1-1e2_t1280"
ONE_STEP = REPO / "data" / "one_step" / "white_alpha1600_grid68.npz"


def _qlt(*args):
    proc = subprocess.run([sys.executable, "-m", "qltlib.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (args, proc.stderr)
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """The JSON of every table's command, one or more runs each: ``{table: [json, ...]}``."""
    tmp = tmp_path_factory.mktemp("outputs")
    run = tmp / "run"
    transfer = ("transfer", "--alpha", 10, "--lmax", 2, "--realisations", 2, "--grid", 3,
                "--modes", 8, "--no-progress", "--store", tmp / "parts")
    return {
        "spectrum": [_qlt("spectrum", "--lmax", 6),
                     _qlt("spectrum", "--method", "transfer", "--alpha", 10, "--lmax", 2,
                          "--grid", 4, "--modes", 16, "--realisations", 3, "--no-progress",
                          "--store", tmp / "one_step")],
        "simulate": [_qlt("simulate", "--nside", 1, "--realisations", 2, "--times", "1,2",
                          "--modes", 8, "--out", run, "--no-progress")],
        "summarize": [_qlt("summarize", run)],
        "summarize --write-summaries": [_qlt("summarize", run, "--write-summaries")],
        "fit": [_qlt("fit", "--dataset", "icecube-12yr", "--energy-tev", 13)],
        "fit --simulation": [_qlt("fit", "--simulation", LONG_RUN, "--lmax-theory", 24)],
        "fit --one-step": [_qlt("fit", "--one-step", ONE_STEP, "--energy-tev", 24)],
        "transfer": [_qlt(*transfer), _qlt(*transfer, "--out", tmp / "m.npz")],
    }


@pytest.mark.parametrize("name", list(TABLES))
def test_every_printed_key_is_documented_and_every_documented_key_printed(printed, name):
    table = TABLES[name]
    runs = [json_paths(output) for output in printed[name]]
    seen = set().union(*runs)
    undocumented, unprinted = sorted(seen - table.paths()), sorted(table.paths() - seen)
    assert not undocumented, f"{table.command}: undocumented keys {undocumented}"
    assert not unprinted, f"{table.command}: documented, never printed: {unprinted}"
    for paths in runs:   # a key without a condition is printed by every run
        missing = table.paths(conditional=False) - paths
        assert not missing, f"{table.command}: keys missing from a run: {sorted(missing)}"


def test_times_come_back_as_requested():
    """Issue 19: the long run reached 640.0000000000001; its JSON says 640, the reached time
    apart."""
    summary = _qlt("summarize", LONG_RUN)
    assert summary["times"] == [10.0 * 2 ** i for i in range(8)] == summary["settings"]["times"]
    assert summary["times_reached"] != summary["times"]
    assert summary["times_reached"] == pytest.approx(summary["times"], rel=1e-12)


def test_fit_reports_the_steady_time_as_typed(printed):
    out = printed["fit --simulation"][0]
    assert out["time"] == out["steady_time"] == 640.0 and out["time_choice"] == "steady time"
    rows = {row["ell"]: row["time"] for row in out["steady_time_by_ell"]}
    assert rows[1] == 640.0 and max(rows.values()) == 640.0


def test_data_fit_has_a_p_value_and_the_poor_fit_note(printed):
    """Issue 19: at 13 TeV chi2 = 58.8 for 35 dof; p = 0.007 must be printed and flagged."""
    out = printed["fit"][0]
    assert out["p_value"] == pytest.approx(stats.chi2.sf(out["chi2"], out["ndof"]), rel=1e-12)
    assert out["ndof"] == 35 and out["p_value"] < 0.05
    assert any(note.startswith(f"poor fit (chi2 = {out['chi2']:.3g} for 35 dof")
               for note in out["notes"])


def test_summarize_and_spectrum_say_where_ell_starts(printed):
    """``ell`` of qlt summarize (and transfer) starts at the monopole, qlt spectrum's at 1:
    both documented so."""
    assert printed["spectrum"][0]["ell"][0] == 1 and printed["summarize"][0]["ell"][0] == 0
    text = {key.path: key.text for key in TABLES["summarize"].keys}["ell"]
    assert "from the monopole" in text
    assert "l = 1..lmax" in {key.path: key.text for key in TABLES["spectrum"].keys}["ell"]


def _subparsers():
    return build_parser()._subparsers._group_actions[0].choices


@pytest.mark.parametrize("command, names", [
    ("spectrum", ["spectrum"]),
    ("simulate", ["simulate"]),
    ("summarize", ["summarize", "summarize --write-summaries"]),
    ("fit", ["fit", "fit --simulation"]),
    ("transfer", ["transfer"]),
])
def test_help_ends_with_the_tables(command, names):
    text = _subparsers()[command].format_help()
    assert text.rstrip().endswith(epilog(*names).rstrip().splitlines()[-1].strip())
    for name in names:
        assert f"{TABLES[name].command} prints:" in text
        for key in TABLES[name].keys:
            assert f"  {key.path} " in text or f"  {key.path}\n" in text, (command, key.path)
    options = text.split("output: one JSON object")[0]
    assert "(default: " in options          # the defaults suffix is kept


def test_book_page_is_generated_from_the_tables():
    page = (REPO / "reference_outputs.md").read_text()
    assert page == markdown_page(), (
        "reference_outputs.md is stale: python -m qltlib.cli.outputs > reference_outputs.md")
    toc = (REPO / "_toc.yml").read_text()
    assert "- file: reference_outputs" in toc


def test_markdown_cells_escape_what_would_split_a_table():
    row = next(line for line in markdown_page().splitlines() if line.startswith("| `kg2` |"))
    assert "K\\|G\\|^2" in row and row.count(" | ") == 1


def test_json_paths_reach_nested_objects_and_lists_of_objects():
    value = {"a": 1, "b": {"c": [1, 2], "d": {"e": None}},
             "rows": [{"x": 1}, {"y": [{"z": 0}]}], "matrix": [[1, 2], [3, 4]]}
    assert json_paths(value) == {"a", "b", "b.c", "b.d", "b.d.e", "rows", "rows[].x", "rows[].y",
                                 "rows[].y[].z", "matrix"}
    assert json_paths([]) == set() and json_paths(3.0) == set()
