"""MLflow's model versions and aliases have one writer, and MLflow clients one maker.

:mod:`ativo.model.registry` is the only module that creates, tags, describes or deletes a model version or moves an
alias (every other module calls its :func:`~ativo.model.registry.tag_version`,
:func:`~ativo.model.registry.describe_version`, :func:`~ativo.model.registry.register`, …), and
:mod:`ativo.model.client` is the only one that builds an ``MlflowClient``. A module under ``include/ativo`` that names
one of MLflow's write methods (a call, a bound method kept for later, a ``from mlflow import register_model``) or
constructs an ``MlflowClient`` elsewhere fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "include" / "ativo"
REGISTRY = "ativo.model.registry"
CLIENT_MAKER = "ativo.model.client"
WRITES = frozenset(
    {
        "set_model_version_tag",
        "update_model_version",
        "register_model",
        "create_model_version",
        "set_registered_model_alias",
        "delete_registered_model_alias",
        "delete_model_version",
        "delete_model_version_tag",
    }
)
"""MLflow's methods that write a model version (its tags, description, existence) or an alias."""


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _client_names(tree: ast.AST) -> set[str]:
    """Names the module binds to the ``MlflowClient`` class (``from mlflow import MlflowClient as C`` binds ``C``)."""
    return {
        a.asname or a.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mlflow"
        for a in node.names
        if a.name == "MlflowClient"
    }


def offences(source: str) -> list[tuple[int, str]]:
    """(line, what) for each registry write and each ``MlflowClient`` construction in a module's source."""
    tree = ast.parse(source)
    clients = _client_names(tree) | {"MlflowClient"}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in WRITES:
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mlflow":
            found.extend((node.lineno, a.name) for a in node.names if a.name in WRITES)
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called in clients:
                found.append((node.lineno, "MlflowClient("))
    return sorted(found)


def foreign_writes(root: Path) -> dict[str, list[tuple[int, str]]]:
    """Module → its offences, for every module under ``root`` (a copy of ``include/ativo``) but their owners."""
    out: dict[str, list[tuple[int, str]]] = {}
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        found = [
            (line, what)
            for line, what in offences(path.read_text())
            if not (module == REGISTRY and what in WRITES) and not (module == CLIENT_MAKER and what == "MlflowClient(")
        ]
        if found:
            out[module] = found
    return out


def test_only_the_registry_writes_versions_and_aliases_and_only_the_client_module_builds_clients() -> None:
    found = foreign_writes(PACKAGE)
    assert not found, "\n".join(
        f"{module} line {line}: {what}: "
        + (
            f"build clients with {CLIENT_MAKER}.mlflow_client"
            if what == "MlflowClient("
            else f"write versions, their tags and descriptions, and aliases through {REGISTRY}"
            " (tag_version, describe_version, register, move)"
        )
        for module, hits in sorted(found.items())
        for line, what in hits
    )


def test_the_owners_do_write_what_they_own() -> None:
    """The scan looks at the right names: the owners' own writes are found (else the check above proves nothing)."""
    registry = {what for _, what in offences((PACKAGE / "model" / "registry.py").read_text())}
    client = {what for _, what in offences((PACKAGE / "model" / "client.py").read_text())}
    assert {"set_model_version_tag", "update_model_version", "create_model_version"} <= registry
    assert {"set_registered_model_alias", "delete_registered_model_alias", "register_model"} <= registry
    assert client == {"MlflowClient("}


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("def f(c):\n    c.set_model_version_tag('m', '1', 'k', 'v')\n", "set_model_version_tag"),
        ("def f(c):\n    c.update_model_version('m', '1', description='d')\n", "update_model_version"),
        ("import mlflow\n\n\ndef f(u):\n    mlflow.register_model(u, 'm')\n", "register_model"),
        ("from mlflow import register_model\n", "register_model"),
        ("def f(c):\n    c.create_model_version('m', 's')\n", "create_model_version"),
        ("def f(c):\n    c.set_registered_model_alias('m', 'champion', '2')\n", "set_registered_model_alias"),
        ("def f(c):\n    c.delete_registered_model_alias('m', 'canary')\n", "delete_registered_model_alias"),
        ("def f(c):\n    c.delete_model_version('m', '1')\n", "delete_model_version"),
        ("def f(c):\n    c.delete_model_version_tag('m', '1', 'k')\n", "delete_model_version_tag"),
        ("def f(c):\n    write = c.set_model_version_tag\n    write('m', '1', 'k', 'v')\n", "set_model_version_tag"),
        ("from mlflow import MlflowClient\n\nc = MlflowClient('sqlite://')\n", "MlflowClient("),
        ("import mlflow\n\nc = mlflow.MlflowClient()\n", "MlflowClient("),
        ("import mlflow.tracking\n\nc = mlflow.tracking.MlflowClient()\n", "MlflowClient("),
        ("from mlflow.tracking import MlflowClient as C\n\nc = C()\n", "MlflowClient("),
    ],
    ids=[
        "tag",
        "description",
        "register-model",
        "register-model-import",
        "create-version",
        "set-alias",
        "delete-alias",
        "delete-version",
        "delete-tag",
        "bound-method",
        "client",
        "client-attribute",
        "client-tracking",
        "client-renamed",
    ],
)
def test_a_synthetic_offender_is_caught(tmp_path: Path, source: str, what: str) -> None:
    root = tmp_path / "ativo"
    (root / "deploy").mkdir(parents=True)
    (root / "model").mkdir()
    (root / "deploy" / "sneaky.py").write_text("from __future__ import annotations\n\n" + source)
    (root / "model" / "registry.py").write_text("def f(c):\n    c.set_model_version_tag('m', '1', 'k', 'v')\n")
    (root / "model" / "client.py").write_text("from mlflow import MlflowClient\n\nc = MlflowClient()\n")
    found = foreign_writes(root)
    assert list(found) == ["ativo.deploy.sneaky"]  # the owners' own writes pass
    assert what in {w for _, w in found["ativo.deploy.sneaky"]}


@pytest.mark.parametrize(
    "source",
    [
        "def f(c):\n    c.get_model_version('m', '1')\n    c.set_tag('run', 'k', 'v')\n",
        "from ativo.model.registry import tag_version\n",
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from mlflow import MlflowClient\n",
    ],
    ids=["reads-and-run-tags", "owner-function", "client-annotation"],
)
def test_reads_run_tags_and_the_owners_functions_pass(tmp_path: Path, source: str) -> None:
    root = tmp_path / "ativo"
    root.mkdir()
    (root / "innocent.py").write_text(source)
    assert foreign_writes(root) == {}
