"""Every ``qlt`` command that README.md prints runs, and says what the README says it does.

The commands are the lines starting with ``qlt `` in README's fenced code blocks, each with its
comment (after ``#``). They run in that order as ``python -m qltlib.cli ...`` from the repository
root; an output directory (``--out DIR``) and later uses of the same ``DIR`` are moved to a
temporary directory. Each must exit with status 0. A command that prints a fit (JSON with an
``at_bound`` list) must not have a parameter at a bound of its search unless its comment says
"at the bound"; ``alpha = X`` and ``p = X`` in the comment must match the printed fit.

About a minute and a half on 2 cores (the fits dominate).
"""
from __future__ import annotations

import functools
import json
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TIMEOUT = 300  # s per command


@dataclass(frozen=True)
class ReadmeCommand:
    line: str
    args: tuple[str, ...]
    comment: str


def readme_commands(text: str | None = None) -> list[ReadmeCommand]:
    """The ``qlt`` lines of README's fenced code blocks, in order."""
    text = README.read_text() if text is None else text
    commands = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S):
        for line in block.splitlines():
            if not line.startswith("qlt "):
                continue
            code, _, comment = line.partition(" #")
            commands.append(ReadmeCommand(line, tuple(shlex.split(code)), comment.strip()))
    return commands


def _relocated(args: tuple[str, ...], moved: dict[str, str], tmp: Path) -> list[str]:
    """``args`` with every ``--out DIR`` (and later uses of ``DIR``) under ``tmp``."""
    out = list(args)
    for i, arg in enumerate(out):
        if arg == "--out" and i + 1 < len(out):
            moved.setdefault(out[i + 1], str(tmp / f"out{len(moved)}"))
    return [moved.get(a, a) for a in out]


@functools.lru_cache(maxsize=None)
def _run_all() -> dict[str, subprocess.CompletedProcess]:
    results, moved = {}, {}
    tmp = Path(tempfile.mkdtemp(prefix="qlt-readme-"))
    for command in readme_commands():
        args = _relocated(command.args[1:], moved, tmp)
        results[command.line] = subprocess.run(
            [sys.executable, "-m", "qltlib.cli", *args], cwd=ROOT, capture_output=True,
            text=True, timeout=TIMEOUT)
    return results


def _json(stdout: str):
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        return None


def test_readme_has_qlt_commands():
    commands = readme_commands()
    assert len(commands) >= 5
    assert any(c.args[:2] == ("qlt", "fit") for c in commands)


def _half_unit(quoted: str) -> float:
    """Half a unit of the last digit of a quoted number ("74" -> 0.5, "9e-10" -> 5e-11)."""
    mantissa, _, exponent = quoted.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 0.5 * 10.0 ** (-decimals + (int(exponent) if exponent else 0))


def _quoted_numbers(comment: str, output: dict) -> list[tuple[str, str, float]]:
    """``(name, quoted, printed)`` for the numbers the comment quotes from the output:
    ``alpha = X``, ``p = X``, ``KEY X`` for a numeric top-level key, ``N of M realisations``."""
    found = []
    alpha = output.get("alpha")
    printed = {"alpha": alpha.get("value") if isinstance(alpha, dict) else None,
               "p": output.get("p_value")}
    for name, quoted in re.findall(r"(?<![\w-])(alpha|p) = ([0-9][0-9.e+-]*)", comment):
        found.append((name, quoted, printed[name]))
    for name, quoted in re.findall(r"\b([a-z_]+) ([0-9][0-9.e+-]*)", comment):
        if isinstance(output.get(name), (int, float)):
            found.append((name, quoted, output[name]))
    for done, total in re.findall(r"(\d+) of (\d+) realisations", comment):
        found += [("realisations", done, output.get("realisations")),
                  ("expected", total, output.get("expected"))]
    return [(n, q.rstrip(".,"), v) for n, q, v in found if v is not None]


@pytest.mark.slow
@pytest.mark.parametrize("command", readme_commands(), ids=lambda c: " ".join(c.args[:3]))
def test_readme_command(command):
    result = _run_all()[command.line]
    assert result.returncode == 0, (
        f"README: `{command.line}` exits with {result.returncode}:\n{result.stderr[-2000:]}")
    output = _json(result.stdout)
    if not isinstance(output, dict):
        return
    if output.get("at_bound"):
        assert "at the bound" in command.comment, (
            f"README: `{command.line}` prints a fit with {output['at_bound']} at a bound of the "
            "search; say so in its comment (\"at the bound\") or change the example")
    for name, quoted, printed in _quoted_numbers(command.comment, output):
        assert abs(printed - float(quoted)) <= _half_unit(quoted) * (1 + 1e-9), (
            f"README: `{command.line}` says {name} {quoted}, the command prints {printed:.6g}")
