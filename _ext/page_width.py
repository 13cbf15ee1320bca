"""Widen the article at the common window widths so that no page needs horizontal scrolling.

Adds ``page_width_static/page_width.css`` (see its comments) to every page. The chapters keep
code and printed lines within 88 characters (``tests/test_reader_pages.py``); the browser test
(``tests/test_browser.py``) checks at a 1280-px window that no code block, output, display
equation, table or image is wider than its box.
"""
from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "page_width_static"
CSS_FILE = "page_width.css"


def _add_static_dir(app, config) -> None:
    config.html_static_path = [*config.html_static_path, str(STATIC_DIR)]


def setup(app):
    app.connect("config-inited", _add_static_dir)
    app.add_css_file(CSS_FILE)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
