"""docker-compose.yaml cannot run here (no Docker engine): validate it against the compose spec and keep it honest."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"


def test_compose_file_matches_the_compose_spec():
    checker = Path(sys.executable).parent / "check-jsonschema"
    proc = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def setting_paths() -> dict[str, tuple[str, ...]]:
    """Every environment variable Settings reads → the attribute path it lands on (``ports.serve``)."""
    from pydantic import AliasChoices, BaseModel

    from ativo.config import Settings

    out: dict[str, tuple[str, ...]] = {}

    def walk(model: type[BaseModel], path: tuple[str, ...]) -> None:
        for name, field in model.model_fields.items():
            kind = field.annotation
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                walk(kind, (*path, name))
                continue
            alias = field.validation_alias
            for var in alias.choices if isinstance(alias, AliasChoices) else [alias] if alias else []:
                out[str(var)] = (*path, name)

    walk(Settings, ())
    return out


def interpolate(value: object) -> str:
    """A compose value as the container sees it, when no variable is set: ``${VAR:-default}`` → ``default``."""
    pattern = r"\$\$|\$\{\w+(?::?-([^}]*))?\}"  # "$$" is a literal "$"
    return re.sub(pattern, lambda m: "$" if m.group(0) == "$$" else m.group(1) or "", str(value))


def service_environments() -> dict[str, dict[str, str]]:
    """Each service's environment, YAML anchors and merge keys resolved, list or mapping form."""
    out = {}
    for name, service in yaml.safe_load(COMPOSE.read_text())["services"].items():
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
        out[name] = {str(k): interpolate(v) for k, v in env.items()}
    return out


def same(attr: object, raw: str) -> bool:
    """Whether a setting's value is the variable's value, in the setting's own type."""
    from pydantic import SecretStr

    if isinstance(attr, SecretStr):
        return attr.get_secret_value() == raw
    if isinstance(attr, Path):
        return attr in (Path(raw), Path(raw).resolve())
    if isinstance(attr, tuple):
        return attr == tuple(u.strip().rstrip("/") for u in raw.split(",") if u.strip())
    if isinstance(attr, bool | int | float):
        return attr == type(attr)(raw)
    if isinstance(attr, dict):
        return json.loads(raw).items() <= attr.items()
    return attr == raw


def test_every_ativo_setting_in_compose_is_one_the_code_reads():
    from ativo.config import load_settings

    paths = setting_paths()
    assert {"ATIVO_HOME", "ATIVO_DB_URL", "ATIVO_SERVE_PORT", "MLFLOW_TRACKING_URI"} <= set(paths)
    configured = {}
    for name, env in service_environments().items():
        given = {k: v for k, v in env.items() if k.startswith("ATIVO_") or k == "MLFLOW_TRACKING_URI"}
        if not given:
            continue
        configured[name] = given
        unknown = sorted(set(given) - set(paths))
        assert unknown == [], f"{name}: compose sets settings the code never reads: {unknown}"
        settings = load_settings(given)  # raises SettingsError naming any bad value
        for var, raw in given.items():
            attr = settings
            for part in paths[var]:
                attr = getattr(attr, part)
            if var == "MLFLOW_TRACKING_URI" and "ATIVO_MLFLOW_TRACKING_URI" in given:
                continue  # the ATIVO_ variable wins
            assert same(attr, raw), f"{name}: {var}={raw!r} became {'.'.join(paths[var])}={attr!r}"
    # compose configures Ativo through ATIVO_* settings, on every service that runs Ativo's code
    assert {"mlflow", "ativo-serve", "airflow-apiserver", "airflow-scheduler", "airflow-worker"} <= set(configured)
    assert all("ATIVO_DB_URL" in env and "ATIVO_STORE_URI" in env for env in configured.values())


def test_compose_services_run_only_commands_and_files_that_exist():
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    assert {"postgres", "redis", "minio", "mlflow", "airflow-apiserver", "airflow-scheduler", "airflow-worker"} <= set(
        services
    )
    text = COMPOSE.read_text()
    for module in re.findall(r"python -m ([\w.]+)", text):
        assert importlib.util.find_spec(module) is not None, f"compose runs python -m {module}, which does not exist"
    for path in re.findall(r"/opt/ativo/([\w/.-]+\.(?:json|sql))", text):
        assert (ROOT / path).exists(), path
    for src in re.findall(r"\./(deploy/[\w/.-]+):", text):
        assert (ROOT / src).exists(), src
    serve = services["ativo-serve"]["command"].split()
    assert serve[:2] == ["ativo", "serve"]
    from ativo.cli import build_parser

    build_parser().parse_args(serve[1:])  # flags the CLI really has
    assert "CeleryExecutor" in text and "apache-airflow-providers-celery" in (ROOT / "requirements.txt").read_text()
