"""The findings table: one source, ``findings.md``, shown by the book and by the README.

The book's introduction (``intro.md``) includes ``findings.md`` with MyST's ``{include}``.
GitHub cannot include files in a README, so this script writes the same table into
``README.md``, between :data:`START` and :data:`END`, with the book's ``{ref}`` roles turned
into links to the chapter files. ``tests/test_findings.py`` fails when README's table differs
from the one generated here.

    python tools/findings_table.py           # rewrite the findings section of README.md
    python tools/findings_table.py --check   # exit status 1 if README.md is out of date
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "findings.md"
README = ROOT / "README.md"
TOC = ROOT / "_toc.yml"
START = "<!-- findings: generated from findings.md by tools/findings_table.py; do not edit here -->"
END = "<!-- end of findings -->"
_LABEL = re.compile(r"^\(([\w-]+)\)=\s*$")
_REF = re.compile(r"\{ref\}`(?:([^`<]*?)\s*<)?([\w-]+)>?`")


def chapter_files() -> list[str]:
    """The chapter files (``chapters/NAME``, no suffix) in the book's order (``_toc.yml``)."""
    toc = yaml.safe_load(TOC.read_text())
    return [entry["file"] for part in toc["parts"] for entry in part["chapters"]
            if entry["file"].startswith("chapters/")]


def labels() -> dict[str, tuple[str, str, str]]:
    """``label -> (number, path, title)``: the chapter number ("N", or "appendix"), the chapter
    file and the title of the labelled heading, for every label of every chapter."""
    found = {}
    number = 0
    for doc in chapter_files():
        path = f"{doc}.md"
        if Path(doc).name[0].isdigit():
            number += 1
            name = str(number)
        else:
            name = "appendix"
        lines = (ROOT / path).read_text().splitlines()
        for i, line in enumerate(lines):
            match = _LABEL.match(line)
            if match:
                heading = next((s for s in lines[i + 1:] if s.strip()), "")
                title = heading.lstrip("#").strip().replace("$", "")
                found[match.group(1)] = (name, path, title)
    return found


def table_lines(text: str | None = None) -> list[str]:
    """The rows of the table in ``findings.md`` (header and separator included)."""
    text = SOURCE.read_text() if text is None else text
    return [line for line in text.splitlines() if line.startswith("|")]


def readme_table(text: str | None = None) -> str:
    """The table as GitHub Markdown: every ``{ref}`` becomes a link to its chapter file."""
    known = labels()

    def link(match):
        label = match.group(2)
        if label not in known:
            raise KeyError(f"findings.md: unknown label {label!r}")
        name, path, title = known[label]
        if label.startswith("ch-"):
            return f"[{name}]({path})"
        return f"*{title}*"

    # "chapter {ref}`ch-x`" reads "chapter [4](chapters/...)"; "section {ref}`sec-x`" reads
    # "section *Title*" (the rows name the chapter before the section)
    return "\n".join(_REF.sub(link, line) for line in table_lines(text))


def readme_section(text: str | None = None) -> str:
    return f"{START}\n\n{readme_table(text)}\n\n{END}"


def updated_readme(readme: str | None = None) -> str:
    readme = README.read_text() if readme is None else readme
    start, end = readme.find(START), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md lacks the markers {START!r} ... {END!r}")
    return readme[:start] + readme_section() + readme[end + len(END):]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check README.md")
    args = parser.parse_args(argv)
    current = README.read_text()
    wanted = updated_readme(current)
    if args.check:
        if current != wanted:
            print("README.md: the findings table differs from findings.md; run "
                  "python tools/findings_table.py", file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        README.write_text(wanted)
        print("README.md: findings table rewritten from findings.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
