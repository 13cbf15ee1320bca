"""The findings table has one source, ``findings.md``: the book includes it, README.md repeats it.

* README.md's findings section is exactly what ``tools/findings_table.py`` makes of
  ``findings.md`` (re-run the script after editing the table);
* ``intro.md`` includes ``findings.md``;
* every row has a finding, a number and what reproduces it; every ``{ref}`` label exists; every
  ``qlt`` command of the table is in README's command block, which
  ``tests/test_readme_commands.py`` runs.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import findings_table  # noqa: E402
from test_readme_commands import readme_commands  # noqa: E402


def _rows() -> list[list[str]]:
    lines = findings_table.table_lines()[2:]    # without header and separator
    return [[cell.strip() for cell in line.strip().strip("|").split(" | ")] for line in lines]


def test_readme_table_is_generated_from_findings_md():
    readme = findings_table.README.read_text()
    assert findings_table.START in readme and findings_table.END in readme, (
        "README.md lacks the findings markers")
    assert readme == findings_table.updated_readme(readme), (
        "README.md's findings table differs from findings.md: run python tools/findings_table.py")


def test_intro_includes_findings():
    assert re.search(r"```\{include\}\s+findings\.md\s*\n```", (ROOT / "intro.md").read_text()), (
        "intro.md does not include findings.md")


def test_every_row_has_finding_number_and_source():
    header = findings_table.table_lines()[0]
    assert [c.strip() for c in header.strip("|").split("|")] == ["finding", "number", "reproduce it"]
    rows = _rows()
    assert rows, "findings.md has no rows"
    for row in rows:
        assert len(row) == 3 and all(row), f"findings.md: row without three cells: {row}"
        assert re.search(r"\d", row[1]), f"findings.md: no number in {row[1]!r}"
        assert "{ref}`" in row[2] or "`qlt " in row[2], f"findings.md: nothing reproduces {row[0]!r}"


def test_labels_exist():
    known = findings_table.labels()
    used = {m.group(2) for line in findings_table.table_lines()
            for m in findings_table._REF.finditer(line)}
    assert used and not used - set(known), f"unknown labels in findings.md: {sorted(used - set(known))}"


def test_table_commands_are_run_by_the_readme_test():
    commands = {" ".join(c.args) for c in readme_commands()}
    in_table = re.findall(r"`(qlt [^`]+)`", findings_table.SOURCE.read_text())
    assert in_table
    missing = [c for c in in_table if c not in commands]
    assert not missing, f"qlt commands of findings.md missing from README's command block: {missing}"
