"""The tree shows the design: pillars in layers, small modules, no import cycles (issue 20).

Layers, lowest first: the foundations (``units``, ``paths``, ``machine``, ``plotting``), then
``theory``, ``particles``, ``observations``, ``validation``, ``cli``. A module may import from
its own layer and the layers below, never from a layer above; function-local imports count.
"""
from __future__ import annotations

from import_graph import import_graph, qltlib_modules

LAYERS = ["", "theory", "particles", "observations", "validation", "cli"]
MAX_LINES = 700


def _layer(name: str) -> int:
    parts = name.split(".")
    sub = parts[1] if len(parts) > 1 and parts[1] in LAYERS else ""
    return LAYERS.index(sub)


def _graph() -> dict:
    return import_graph()


def test_no_module_imports_from_a_higher_layer():
    upward = [(m, d) for m, deps in _graph().items() for d in deps if _layer(d) > _layer(m)]
    assert not upward, upward


def test_no_import_cycle():
    graph = _graph()
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in graph[node]:
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [node])
    # a package's __init__ importing nothing keeps this meaningful: every edge is a real import
    assert not cycles, cycles


def test_modules_stay_small():
    long = {name: n for name, path in qltlib_modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_the_graph_sees_the_imports():
    """Guard against a checker that finds nothing: known edges must be present."""
    graph = _graph()
    assert "qltlib.particles.runner" in graph["qltlib.particles.ensemble"]
    assert "qltlib.theory.spectrum" in graph["qltlib.particles.settings"]
    assert "qltlib.particles.statistics" in graph["qltlib.validation.claims"]
