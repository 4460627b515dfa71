"""Every ``mcanb`` module imports, and its import graph has no cycle (imports inside functions count too).

A cycle hides behind an import inside a function: it works until someone moves the import to the top. The graph is
read with ``ast`` from the sources, so it holds every ``import``/``from ... import`` wherever it stands.
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from mcanb.paths import PACKAGE_DIR

ENTRY_POINTS = {"mcanb.fixture.__main__"}     # runs its command when imported (python -m mcanb.fixture)


def modules() -> dict[str, Path]:
    """``{dotted name: source file}`` of every module of the package."""
    out = {}
    for f in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = f.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """``{module: modules of the package it imports}``, relative imports resolved, ``from pkg import mod`` as ``mod``."""
    graph = {}
    for name, f in mods.items():
        package = name if f.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    target = f"{base}.{node.module}" if node.module else base
                else:
                    target = node.module or ""
                deps |= {f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target for a in node.names}
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first search, as ``[a, b, ..., a]``."""
    found, state, stack = [], {}, []

    def visit(n: str) -> None:
        state[n] = "open"
        stack.append(n)
        for d in sorted(graph[n]):
            if state.get(d) == "open":
                found.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[n] = "done"

    for n in sorted(graph):
        if n not in state:
            visit(n)
    return found


def test_the_graph_reader_finds_a_cycle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .a import g\n")
    (pkg / "c.py").write_text("from pkg.b import f\n")
    graph = import_graph({"pkg": pkg / "__init__.py", **{f"pkg.{m}": pkg / f"{m}.py" for m in "abc"}})
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": {"pkg.b"}}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_the_package_import_graph_has_no_cycle():
    graph = import_graph(modules())
    assert len(graph) > 30 and graph["mcanb.cli"] >= {"mcanb.study", "mcanb.report", "mcanb.pipeline"}
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


@pytest.mark.parametrize("name", sorted(set(modules()) - ENTRY_POINTS))
def test_every_module_imports(name):
    importlib.import_module(name)
