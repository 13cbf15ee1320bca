"""Offer every executed chapter as an ``.ipynb`` download next to its ``.md`` source.

sphinx-book-theme puts a ``.ipynb`` entry in its download dropdown only when a launch service
(Binder, JupyterHub, Colab, Thebe, ...) is configured; this book has none. This extension does
the same without one: for each page that MyST-NB executed, it writes the executed notebook, with
its outputs, to ``_build/html/_sources/<page>.ipynb`` and sets the template variable
``ipynb_source`` that the theme's download button reads.

MyST-NB writes ``_build/jupyter_execute/<page>.ipynb``, but when a chapter comes from the
execution cache (``execute_notebooks: cache``) that file has no outputs (MyST-NB 1.x writes the
notebook before merging the cached outputs into it), so the outputs are merged from the
jupyter-cache here.
"""
from __future__ import annotations

from contextlib import suppress
from pathlib import Path

import nbformat


def _executed_notebook(app, path: Path):
    nb = nbformat.read(path, as_version=4)
    config = getattr(app.env, "mystnb_config", None)
    if config is not None and config.execution_mode == "cache" and config.execution_cache_path:
        from jupyter_cache import get_cache

        with suppress(KeyError):   # not in the cache: keep the notebook as written
            _, nb = get_cache(config.execution_cache_path).merge_match_into_notebook(nb)
    return nb


def _add_ipynb_source(app, pagename, templatename, context, doctree):
    if doctree is None or app.builder.format != "html":
        return
    if "kernelspec" not in app.env.metadata.get(pagename, {}):   # not a notebook page
        return
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if not executed.is_file():
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(_executed_notebook(app, executed), target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app):
    # before sphinx-book-theme's header buttons (priority 501) build the dropdown
    app.connect("html-page-context", _add_ipynb_source, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
