"""The package's layering: no import cycle (deferred imports included), light configs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every ``mmoe`` module and the ``mmoe`` modules it imports anywhere in its body."""
    modules = {module_name(p): p for p in SRC.joinpath("mmoe").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as a path of module names, or ``None``. Packages' ``__init__`` re-exports
    of their own submodules are edges too, so a cycle through a package counts."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_even_through_deferred_imports():
    graph = import_graph()
    assert "mmoe.training.trainer" in graph and "mmoe.io" in graph
    # Package __init__ files that only re-export are skipped as sources of edges into their own
    # submodules' importers: mmoe/__init__ (lazy, importlib) has no static imports at all.
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_config_and_specs_import_neither_torch_nor_pyarrow():
    code = (
        "import sys, mmoe.config, mmoe.specs, mmoe.io;"
        "print(sorted(m for m in ('torch', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bottom_layers_import_only_what_is_below_them():
    graph = import_graph()
    assert graph["mmoe.errors"] == set()
    assert graph["mmoe.io"] <= {"mmoe.errors"}
    assert graph["mmoe.specs"] == set()
    config = {m for m in graph if m == "mmoe.config" or m.startswith("mmoe.config.")}
    below = {"mmoe.errors", "mmoe.io", "mmoe.specs"} | config
    for module in config:
        assert graph[module] <= below, (module, graph[module] - below)
    for module in (m for m in graph if m.startswith("mmoe.data")):
        assert not any(t.startswith(("mmoe.models", "mmoe.training")) for t in graph[module])
    for module in (m for m in graph if m.startswith("mmoe.models")):
        assert not any(t.startswith(("mmoe.training", "mmoe.cli")) for t in graph[module])
