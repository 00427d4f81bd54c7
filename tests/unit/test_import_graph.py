"""The shape of the library: layers that run one way, no import cycle among its modules or packages, and only
``ativo.airflow`` imports Airflow."""

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


LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    # foundations: what every feature may use (the spec, settings, stores, the model registry, the audit log, paging)
    (
        "foundations",
        frozenset(
            {
                "errors",
                "files",
                "logs",
                "naming",
                "config",
                "spec",
                "hashing",
                "http",
                "waiting",
                "runbooks",
                "orchestrator",
            }
            | {"store", "model", "audit", "paging", "report"}
        ),
    ),
    # features: one package per stage of the lifecycle
    ("features", frozenset({"data", "compute", "serve", "monitor", "train", "evaluate", "deploy", "erasure"})),
    # operations read-outs: metrics, summary, lineage, alert payloads, incidents, the page's views
    ("operations", frozenset({"ops"})),
    # adapters: Airflow, the command line, the inference API
    ("adapters", frozenset({"airflow", "cli", "api"})),
)


def package_of(module: str) -> str:
    """``ativo.train.search`` → ``train``; ``ativo.cli`` → ``cli``."""
    return module.split(".")[1] if module.count(".") >= 1 else module


def layer_of(package: str) -> int:
    for i, (_, members) in enumerate(LAYERS):
        if package in members:
            return i
    raise KeyError(package)


def package_graph() -> dict[str, set[str]]:
    """Package → the library packages it imports (anywhere in its modules, functions included)."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        if name == "ativo":
            continue
        src = package_of(name)
        for m in imports(path, module_level=False):
            if m.startswith("ativo.") and (m in MODULES or any(k.startswith(m + ".") for k in MODULES)):
                if (dst := package_of(m)) != src:
                    graph.setdefault(src, set()).add(dst)
    return graph


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
        for a, targets in graph.items()
        for b in targets
        if layer_of(a) < layer_of(b)
    )


def test_every_package_has_a_layer():
    packages = {package_of(n) for n in MODULES if n != "ativo"}
    unplaced = sorted(p for p in packages if not any(p in members for _, members in LAYERS))
    assert unplaced == [], f"place these packages in a layer of {__name__}.LAYERS: {unplaced}"


def test_no_package_imports_a_higher_layer():
    assert upward_imports(package_graph()) == []


def test_no_package_cycle():
    # a cycle between two packages is invisible to the module-level test when the modules differ
    graph = package_graph()
    assert _cycle(graph) is None, f"package cycle: {' → '.join(_cycle(graph) or [])}"


def test_the_layer_check_sees_an_upward_import():
    assert upward_imports({"store": {"ops"}, "ops": {"store"}}) == ["store (foundations) imports ops (operations)"]


def test_only_ativo_airflow_imports_airflow():
    offenders = sorted(
        f"{name} imports {m}"
        for name, path in MODULES.items()
        if not (name == "ativo.airflow" or name.startswith("ativo.airflow."))
        for m in imports(path, module_level=False)
        if m == "airflow" or m.startswith("airflow.")
    )
    assert offenders == []


DEVELOPMENT = ("ativo_dev", "tests", "bench", "devtools")  # the local launcher, test support, benchmarks (old name)


def test_the_library_never_imports_development_tooling():
    offenders = sorted(
        f"{name} imports {m}"
        for name, path in MODULES.items()
        for m in imports(path, module_level=False)
        if m.split(".")[0] in DEVELOPMENT
    )
    assert offenders == []


def test_the_scanner_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import numpy\n"
        "def f():\n    import airflow.sdk\n    try:\n        from tests.support import harness\n"
        "    except ImportError:\n"
        "        pass\n"
    )
    assert imports(source, module_level=True) == {"typing"}
    assert {"airflow.sdk", "tests.support", "numpy"} <= imports(source, module_level=False)
