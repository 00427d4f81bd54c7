"""The shape of the library: no import cycle among its modules, and only ``ativo.airflow`` imports Airflow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "include" / "ativo"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement loads (``from a.b import c`` is ``a.b.c`` when that is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def imports(path: Path, *, module_level: bool) -> set[str]:
    """What a module imports: at import time only (``module_level``), or anywhere in it (functions too)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.update(_imported(node))
            elif isinstance(node, ast.If) and module_level and _is_type_checking(node):
                continue  # annotations only: never executed
            elif isinstance(node, ast.If | ast.Try | ast.With):
                for block in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, block, []):
                        visit(child.body if isinstance(child, ast.ExceptHandler) else [child])
            elif not module_level and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                visit(node.body)
            elif not module_level:
                visit([n for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)])  # type: ignore[misc]

    visit(tree.body)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := dfs(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := dfs(node)):
            return found
    return None


def test_the_library_has_no_import_cycle():
    # Imports inside functions count too: deferring an import hides a cycle from Python, not from the design.
    graph = {
        name: {m for m in imports(path, module_level=False) if m in MODULES and m != name}
        for name, path in MODULES.items()
    }
    assert _cycle(graph) is None, f"import cycle: {' → '.join(_cycle(graph) or [])}"


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
    ],
    ids=["chain", "two-cycle", "cycle-below-the-root"],
)
def test_the_cycle_finder_finds_cycles(graph, cycle):
    assert _cycle(graph) == cycle


def test_only_ativo_airflow_imports_airflow():
    offenders = sorted(
        f"{name} imports {m}"
        for name, path in MODULES.items()
        if not (name == "ativo.airflow" or name.startswith("ativo.airflow."))
        for m in imports(path, module_level=False)
        if m == "airflow" or m.startswith("airflow.")
    )
    assert offenders == []


def test_the_library_never_imports_development_tooling():
    offenders = sorted(
        f"{name} imports {m}"
        for name, path in MODULES.items()
        for m in imports(path, module_level=False)
        if m == "devtools" or m.startswith("devtools.")
    )
    assert offenders == []


def test_the_scanner_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import numpy\n"
        "def f():\n    import airflow.sdk\n    try:\n        from devtools import harness\n    except ImportError:\n"
        "        pass\n"
    )
    assert imports(source, module_level=True) == {"typing"}
    assert {"airflow.sdk", "devtools", "numpy"} <= imports(source, module_level=False)
