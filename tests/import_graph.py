"""The import graph of ``qltlib``, read from the source (function-local imports included).

Used by ``test_architecture.py`` (layers, cycles) and by ``notebook_references.py`` (which
chapters can run the compiled particle kernel: its modules import it lazily, where trajectories
are integrated, so importing them does not show it).
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "qltlib"


def qltlib_modules() -> dict:
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


def import_graph() -> dict:
    """``{module: set of qltlib modules it imports}``."""
    modules = qltlib_modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def reachable(graph: dict, start) -> set:
    """Every module that importing ``start`` (names) may import, ``start`` included."""
    seen, stack = set(), [m for m in start if m in graph]
    while stack:
        module = stack.pop()
        if module not in seen:
            seen.add(module)
            stack.extend(graph[module])
    return seen
