"""Each chapter has an up-to-date reference notebook (its outputs are checked by nbval)."""
import pytest
from notebook_references import (
    BLESS_COMMAND,
    CHAPTER_DIR,
    REFERENCE_DIR,
    ROOT,
    cell_sources,
    chapters,
    read_chapter,
    read_reference,
    reference_for,
    tracks_particles,
)


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


def test_particle_tracking_chapters_are_detected():
    """.ci/run re-executes the chapters that track particles under NUMBA_CPU_NAME=generic."""
    # the kernel is imported lazily, where trajectories are integrated: the detection follows the
    # imports in the source, so it finds it behind functions that import it when called ...
    assert tracks_particles(CHAPTER_DIR / "07_validation.md")        # particles.settings -> tracking
    assert tracks_particles(CHAPTER_DIR / "08_qlt_validity.md")      # particles.transfer -> tracking
    # ... and may include a chapter that only reads stored ensembles (run once more, harmlessly)
    for analytic in ("02_liouville_qlt.md", "04_diagrams.md", "05_kernels.md"):
        assert not tracks_particles(CHAPTER_DIR / analytic)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "NUMBA_CPU_NAME=generic" in ci and "notebook_references.py --tracking" in ci


def test_reference_has_one_output_block_per_stream():
    """Consecutive prints of a cell are one block (bless_notebooks.merge_streams), as in the book."""
    split = []
    for chapter in chapters():
        ref = reference_for(chapter)
        if not ref.is_file():
            continue
        code = [c for c in read_reference(ref).cells if c.cell_type == "code"]
        for i, cell in enumerate(code, 1):
            outputs = cell.get("outputs", [])
            if any(a.output_type == b.output_type == "stream" and a.name == b.name
                   for a, b in zip(outputs, outputs[1:])):
                split.append(f"{ref.name} code cell {i}")
    assert not split, f"split output blocks (re-bless with {BLESS_COMMAND}): {split}"
