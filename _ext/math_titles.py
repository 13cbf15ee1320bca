"""Typeset the maths of section titles in the cross-references that quote them.

A ``{ref}`` (or ``{doc}``) without an explicit text shows the target's title as plain text, and
Sphinx turns the maths of a title such as "The kernels $\\Lambda_\\ell$, ..." into its raw TeX
source ("The kernels \\Lambda_\\ell, ..."). This extension remembers, for every section title
that contains maths, the title's nodes, and puts them back into each reference whose text is
exactly that title's plain text, so that MathJax typesets it like the title itself.
"""
from __future__ import annotations

from docutils import nodes
from sphinx.util.nodes import clean_astext

_ENV_KEY = "qlt_math_titles"


def _store(env) -> dict:
    if not hasattr(env, _ENV_KEY):
        setattr(env, _ENV_KEY, {})
    return getattr(env, _ENV_KEY)


def _collect_titles(app, doctree):
    titles = {}
    for section in doctree.findall(nodes.section):
        if not section.children or not isinstance(section[0], nodes.title):
            continue
        title = section[0]
        if any(True for _ in title.findall(nodes.math)):
            titles[clean_astext(title)] = title.deepcopy().children
    store = _store(app.env)
    store.pop(app.env.docname, None)
    if titles:
        store[app.env.docname] = titles


def _purge(app, env, docname):
    _store(env).pop(docname, None)


def _merge(app, env, docnames, other):
    for docname in docnames:
        if docname in _store(other):
            _store(env)[docname] = _store(other)[docname]


def _typeset_references(app, doctree, docname):
    lookup = {}
    for titles in _store(app.env).values():
        lookup.update(titles)
    if not lookup:
        return
    changed = False
    for inline in list(doctree.findall(nodes.inline)):
        if not ({"std-ref", "std-doc"} & set(inline["classes"])) or not isinstance(inline.parent, nodes.reference):
            continue
        if len(inline.children) != 1 or not isinstance(inline[0], nodes.Text):
            continue
        title = lookup.get(inline.astext())
        if title is None:
            continue
        inline.children = []
        inline.extend(child.deepcopy() for child in title)
        changed = True
    if changed:   # MathJax is included only on pages with maths
        app.env.get_domain("math").data.setdefault("has_equations", {})[docname] = True


def setup(app):
    app.connect("doctree-read", _collect_titles)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("doctree-resolved", _typeset_references)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
