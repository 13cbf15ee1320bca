"""Each chapter has an up-to-date reference notebook (its outputs are checked by nbval)."""
import pytest

from notebook_references import BLESS_COMMAND, chapters, cell_sources, read_chapter, read_reference, reference_for, REFERENCE_DIR


@pytest.mark.parametrize("chapter", chapters(), ids=lambda p: p.stem)
def test_reference_matches_chapter(chapter):
    ref = reference_for(chapter)
    assert ref.is_file(), f"no reference for {chapter.name}: run `{BLESS_COMMAND} chapters/{chapter.name}`"
    assert cell_sources(read_reference(ref)) == cell_sources(read_chapter(chapter)), (
        f"reference {ref.name} is stale (the chapter changed): run `{BLESS_COMMAND} chapters/{chapter.name}`")


def test_no_orphan_references():
    names = {c.stem for c in chapters()}
    orphans = [p.name for p in REFERENCE_DIR.glob("*.ipynb") if p.stem not in names]
    assert not orphans, f"references without a chapter: {orphans}"


def test_reference_has_outputs():
    for chapter in chapters():
        ref = reference_for(chapter)
        if ref.is_file():
            nb = read_reference(ref)
            code = [c for c in nb.cells if c.cell_type == "code"]
            assert all(c.get("execution_count") for c in code), f"{ref.name} was not executed: re-bless it"
