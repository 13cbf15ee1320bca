"""The reader's pages agree with the code and the repository (fast; no build, no browser).

* ``notation.md`` quotes every constant of ``qltlib/units.py`` with the library's value;
* ``reproduce.md`` covers every data file in ``data/``, every benchmark script and the bless
  command of the notebook references;
* the reader pages are in ``_toc.yml``;
* the vendored MathJax is the one ``_config.yml`` uses and matches its ``SHA256SUMS``;
* the code lines of every chapter and the printed lines of its reference outputs fit the page
  (:data:`LINE_LIMIT` characters), so that no page needs horizontal scrolling.
"""
from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import pytest
import yaml
from notebook_references import (
    BLESS_COMMAND,
    chapters,
    read_chapter,
    read_reference,
    reference_for,
)

ROOT = Path(__file__).resolve().parents[1]
READER_PAGES = ["bibliography", "notation", "reproduce", "execution_status"]
#: longest code or output line, in characters, that fits the book's content column at a
#: 1280-pixel-wide window without horizontal scrolling (the browser test measures the pixels)
LINE_LIMIT = 88


def _constants_on_page(text: str) -> dict[str, str]:
    return dict(re.findall(r"`([A-Z][A-Z0-9_]*) = ([-+0-9.eE]+)`", text))


def test_notation_page_matches_units():
    from qltlib import units

    quoted = _constants_on_page((ROOT / "notation.md").read_text())
    assert quoted, "notation.md quotes no constant of qltlib.units"
    for name, value in quoted.items():
        assert hasattr(units, name), f"notation.md quotes {name}, which qltlib.units does not define"
        assert math.isclose(float(value), getattr(units, name), rel_tol=0, abs_tol=0), (
            f"notation.md: {name} = {value}, qltlib.units: {getattr(units, name)!r}")
    constants = [n for n, v in vars(units).items() if n.isupper() and isinstance(v, (int, float))]
    missing = sorted(set(constants) - set(quoted))
    assert not missing, f"constants of qltlib/units.py missing from notation.md: {missing}"


def _data_files() -> list[Path]:
    return sorted(p for p in (ROOT / "data").rglob("*")
                  if p.is_file() and p.name != "README.md" and not p.name.startswith("."))


def test_reproduce_page_covers_every_data_file():
    text = (ROOT / "reproduce.md").read_text()
    uncovered = []
    for path in _data_files():
        rel = path.relative_to(ROOT).as_posix()
        parent = path.parent.relative_to(ROOT).as_posix()
        if rel not in text and f"`{parent}`" not in text and f"{parent} " not in text and f"{parent}/" not in text:
            uncovered.append(rel)
    assert not uncovered, ("data files without a regeneration entry in reproduce.md (add the command "
                           f"and run time from the data folder's README): {uncovered[:20]}")


def test_reproduce_page_has_commands():
    text = (ROOT / "reproduce.md").read_text()
    # the book may continue a long command on the next line ("\" + newline) to fit the page
    text = re.sub(r" *\\\n *", " ", text)
    readme = (ROOT / "README.md").read_text()
    for command in re.findall(r"```bash\n(python3 -m venv .*?)\n```", readme):
        assert command in text, f"reproduce.md lacks the README command: {command}"
    assert "tests/bless_notebooks.py" in text and BLESS_COMMAND.split()[-1] in text
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        assert f"benchmarks/{script.name}" in text, f"reproduce.md does not say how to run benchmarks/{script.name}"


def test_reader_pages_in_toc():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    reference = next(part for part in toc["parts"] if part.get("caption") == "Reference")
    files = [entry["file"] for entry in reference["chapters"]]
    for page in READER_PAGES:
        assert page in files, f"{page} is not under the Reference caption of _toc.yml"
        assert (ROOT / f"{page}.md").is_file()


def test_vendored_mathjax():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    path = config["mathjax_path"]
    assert "://" not in path, f"mathjax_path is a URL ({path}): the book must render offline"
    static = [ROOT / p for p in config.get("html_static_path", [])]
    assert any((d / path).is_file() for d in static), f"{path} is in no html_static_path {static}"
    assert not (ROOT / "_static").exists() or not any((ROOT / "_static").rglob("*.js")), (
        "Jupyter Book loads every .js under _static/ (and under every static path once _static/ "
        "exists) on every page: keep MathJax out of it (see _vendor/mathjax/README.md)")
    vendor = next(d for d in static if (d / path).is_file()) / Path(path).parent
    sums = (vendor / "SHA256SUMS").read_text().split("\n")
    listed = {}
    for line in filter(None, sums):
        digest, name = line.split(maxsplit=1)
        listed[name.removeprefix("./")] = digest
    for name, digest in listed.items():
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, f"{name} differs from SHA256SUMS"
    actual = {p.relative_to(vendor).as_posix() for p in vendor.rglob("*") if p.is_file()} - {"SHA256SUMS", "README.md"}
    assert actual == set(listed), f"files not in SHA256SUMS: {sorted(actual - set(listed))}"


def _long_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if len(line) > LINE_LIMIT]


@pytest.mark.parametrize("chapter", chapters(), ids=lambda p: p.stem)
def test_chapter_code_lines_fit_the_page(chapter):
    cells = [c for c in read_chapter(chapter).cells if c.cell_type == "code"]
    long = [(i, line) for i, c in enumerate(cells, 1) for line in _long_lines(c.source)]
    assert not long, (f"{chapter.name}: code lines longer than {LINE_LIMIT} characters "
                      f"(code cell, line): {long[:10]}")


@pytest.mark.parametrize("chapter", chapters(), ids=lambda p: p.stem)
def test_printed_output_lines_fit_the_page(chapter):
    reference = reference_for(chapter)
    if not reference.is_file():
        pytest.skip(f"no reference for {chapter.name} (test_notebook_references fails for it)")
    cells = [c for c in read_reference(reference).cells if c.cell_type == "code"]
    long = []
    for i, cell in enumerate(cells, 1):
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("output_type") == "stream" else (
                output.get("data", {}).get("text/plain", ""))
            long += [(i, line) for line in _long_lines(text)]
    assert not long, (f"{reference.name}: printed lines longer than {LINE_LIMIT} characters "
                      f"(code cell, line): {long[:10]}")


def test_browser_tab_titles_are_plain_text():
    """MathJax cannot typeset the HTML <title>: _ext/math_titles.py writes its maths as text."""
    import sys

    sys.path.insert(0, str(ROOT / "_ext"))
    try:
        from math_titles import plain_title
    finally:
        sys.path.remove(str(ROOT / "_ext"))
    rendered = ('The pair propagator and an evolution equation for '
                '<span class="math notranslate nohighlight">\\(C_\\ell\\)</span>')
    assert plain_title(rendered) == ('The pair propagator and an evolution equation for '
                                     '<span class="math notranslate nohighlight">Cℓ</span>')
    assert plain_title("The kernels \\(\\Lambda_\\ell\\), \\(h_\\ell\\) and "
                       "\\(\\kappa_{\\ell_A\\ell_B}\\)") == "The kernels Λℓ, hℓ and κℓAℓB"
    for chapter in chapters():
        title = next(line for line in chapter.read_text().splitlines() if line.startswith("# "))
        tab = plain_title(re.sub(r"\$(.*?)\$", r"\\(\1\\)", title[2:]))
        assert "\\" not in tab and "$" not in tab, f"{chapter.name}: browser tab {tab!r}"


def test_book_order_is_file_order():
    """The chapters' files sort in the order in which _toc.yml puts them in the book."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    in_book = [entry["file"] for part in toc["parts"] for entry in part["chapters"]
               if entry["file"].startswith("chapters/")]
    on_disk = [f"chapters/{p.stem}" for p in chapters()]
    assert in_book == on_disk, f"book order {in_book} differs from file order {on_disk}"
