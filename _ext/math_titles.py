"""Typeset the maths of section titles in the cross-references that quote them.

A ``{ref}`` (or ``{doc}``) without an explicit text shows the target's title as plain text, and
Sphinx turns the maths of a title such as "The kernels $\\Lambda_\\ell$, ..." into its raw TeX
source ("The kernels \\Lambda_\\ell, ..."). This extension remembers, for every section title
that contains maths, the title's nodes, and puts them back into each reference whose text is
exactly that title's plain text, so that MathJax typesets it like the title itself.

The browser tab (the HTML ``<title>``) cannot be typeset by MathJax: there the maths of a page
title is written as plain Unicode text (``$C_\\ell$`` becomes "Cℓ", see :func:`plain_title`).
"""
from __future__ import annotations

import re

from docutils import nodes
from sphinx.util.nodes import clean_astext

_ENV_KEY = "qlt_math_titles"
#: inline maths as Sphinx renders it into HTML titles: ``\(...\)``
_INLINE_MATH = re.compile(r"\\\((.*?)\\\)", re.S)
_TEX_SYMBOLS = {
    "ell": "ℓ", "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "Delta": "Δ",
    "epsilon": "ε", "kappa": "κ", "lambda": "λ", "Lambda": "Λ", "mu": "μ", "nu": "ν",
    "omega": "ω", "Omega": "Ω", "phi": "φ", "pi": "π", "sigma": "σ", "tau": "τ",
    "theta": "θ", "infty": "∞", "leq": "≤", "geq": "≥", "times": "×", "pm": "±",
}
_TEX_COMMAND = re.compile(r"\\([A-Za-z]+)")


def plain_tex(tex: str) -> str:
    """Plain Unicode text for a short TeX formula: ``C_\\ell`` -> "Cℓ" (for the browser tab)."""
    text = _TEX_COMMAND.sub(lambda m: _TEX_SYMBOLS.get(m.group(1), m.group(1)), tex)
    text = re.sub(r"\\.", "", text)   # spacing commands such as \, and \;
    return re.sub(r"[_^{}]", "", text).strip()


def plain_title(title: str) -> str:
    """A rendered page title with its inline maths ``\\(...\\)`` written as plain text."""
    return _INLINE_MATH.sub(lambda m: plain_tex(m.group(1)), title)


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


def _plain_page_title(app, pagename, templatename, context, doctree):
    if context.get("title"):
        context["title"] = plain_title(context["title"])


def setup(app):
    app.connect("doctree-read", _collect_titles)
    app.connect("html-page-context", _plain_page_title)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("doctree-resolved", _typeset_references)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
