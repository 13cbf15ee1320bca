"""The tree shows the design: pillars in layers, small modules, no import cycles (issue 20).

Layers, lowest first: the foundations (``units``, ``paths``, ``machine``, ``plotting``), then
``theory``, ``particles``, ``observations``, ``validation``, ``cli``. A module may import from
its own layer and the layers below, never from a layer above; function-local imports count.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "qltlib"
LAYERS = ["", "theory", "particles", "observations", "validation", "cli"]
MAX_LINES = 700


def _modules() -> dict:
    """``{dotted name: path}`` of every module of qltlib."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, known: set) -> set:
    """qltlib modules imported anywhere in a module (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:      # `from . import x` may import a module
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in known else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in known and m != name}


def _layer(name: str) -> int:
    parts = name.split(".")
    sub = parts[1] if len(parts) > 1 and parts[1] in LAYERS else ""
    return LAYERS.index(sub)


def _graph() -> dict:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


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
    long = {name: n for name, path in _modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_the_graph_sees_the_imports():
    """Guard against a checker that finds nothing: known edges must be present."""
    graph = _graph()
    assert "qltlib.particles.runner" in graph["qltlib.particles.ensemble"]
    assert "qltlib.theory.spectrum" in graph["qltlib.particles.settings"]
    assert "qltlib.particles.statistics" in graph["qltlib.validation.claims"]
