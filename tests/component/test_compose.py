"""docker-compose.yaml cannot run here (no Docker engine): validate it against the compose spec and keep it honest."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
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


def generated(name: str) -> str:
    """The stand-in for a variable compose requires (``${NAME:?…}``), shaped as deploy/compose/secrets.sh makes them."""
    return f"generated-{name.lower().replace('_', '-')}"


def interpolate(value: object) -> str:
    """A compose value as the container sees it: ``${VAR:-default}`` → ``default`` when no variable is set, and a
    required ``${VAR:?message}`` → :func:`generated` (the secrets ``.env`` holds)."""
    pattern = r"\$\$|\$\{(\w+)(?::?([-?])([^}]*))?\}"  # "$$" is a literal "$"

    def value_of(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return generated(m.group(1)) if m.group(2) == "?" else m.group(3) or ""

    return re.sub(pattern, value_of, str(value))


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
    assert {"ativo-serve", "airflow-apiserver", "airflow-scheduler", "airflow-worker"} <= set(configured)
    assert all("ATIVO_DB_URL" in env and "ATIVO_STORE_URI" in env for env in configured.values())
    # the promotion key signs what serves: the platform's processes hold it, MLflow (the registry) never does
    assert all("ATIVO_PROMOTION_KEY" in env for env in configured.values())
    mlflow = service_environments()["mlflow"]
    assert "ATIVO_PROMOTION_KEY" not in mlflow and "ATIVO_DB_URL" not in mlflow


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


def mounts(service: dict) -> dict[str, str]:
    """A service's volume mounts, short or long syntax: container path → source (a named volume or a host path)."""
    out = {}
    for mount in service.get("volumes") or []:
        if isinstance(mount, dict):
            out[str(mount["target"])] = str(mount.get("source", ""))
        else:
            source, _, rest = str(mount).partition(":")
            out[rest.split(":")[0] if rest else source] = source if rest else ""
    return out


def test_every_reader_of_the_passwords_file_shares_the_one_airflow_init_writes(tmp_path):
    """The API server checks logins against the file and Ativo's tasks read the admin password from it: one file."""
    from ativo.config import load_settings

    var = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
    doc, envs = yaml.safe_load(COMPOSE.read_text()), service_environments()
    readers = {}  # service → the path it reads: Airflow's setting, or ATIVO_HOME/airflow/passwords.json for Ativo's
    for name, env in envs.items():
        if var in env:
            readers[name] = env[var]
        if env.get("ATIVO_AIRFLOW_URL") and not env.get("ATIVO_AIRFLOW_PASSWORD"):
            home = {k: v for k, v in env.items() if k == "ATIVO_HOME"}
            ativo = str(load_settings(home).airflow_home / "passwords.json")
            assert readers.setdefault(name, ativo) == ativo, f"{name}: Airflow's {var} is not where Ativo reads it"
    assert {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-worker", "airflow-worker-gpu"} <= set(
        readers
    )
    assert len(set(readers.values())) == 1, readers
    path = Path(next(iter(readers.values())))
    volumes = set()
    for name in readers:
        holding = [m for m in mounts(doc["services"][name]).items() if path.is_relative_to(m[0])]
        assert holding, f"{name} reads {path} but mounts no volume holding it: its container has a file of its own"
        volumes.add(max(holding, key=lambda m: len(m[0])))  # the innermost mount is the one that holds the file
    assert len(volumes) == 1, f"the services read {path} from different volumes: {volumes}"
    [(_, volume)] = volumes
    assert volume in (doc.get("volumes") or {}), f"{volume} is not a named volume the services share"

    # airflow-init writes the file there, for every user, before the services that read it start
    for name in set(readers) - {"airflow-init"}:
        assert doc["services"][name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    script = shlex.split(shlex.split(doc["services"]["airflow-init"]["command"])[2])
    code = script[script.index("python") + 2]
    assert var in code or str(path) in code, f"airflow-init does not write {path}"
    local = tmp_path / path.relative_to(path.anchor)
    code = code.replace(str(path), str(local))  # a literal path, where the container has it, lands in tmp_path
    users = {user.split(":")[0] for user in envs["airflow-init"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",")}
    for kept in ({}, {"admin": "changed-by-hand"}):  # the first `docker compose up`, and every one after
        if kept:
            local.write_text(json.dumps(kept))
        users_var = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"
        subprocess.run(
            [sys.executable, "-c", code], env={var: str(local), users_var: envs["airflow-init"][users_var]}, check=True
        )
        assert local.is_file(), f"airflow-init writes no file at {path}"
        written = json.loads(local.read_text())
        assert users <= set(written), f"airflow-init writes no password for {users - set(written)}"
        assert kept.items() <= written.items(), "airflow-init overwrote a password the file already had"
        assert oct(local.stat().st_mode & 0o777) == oct(0o600), "the passwords file is readable by others"
        fresh = {u: p for u, p in written.items() if u not in kept}
        assert all(len(p) >= 16 and p != u for u, p in fresh.items()), f"guessable passwords: {fresh}"
    assert json.loads(local.read_text())["operator"] == written["operator"]  # a rerun keeps what it generated


def test_airflow_init_upgrades_the_platform_db_before_the_services_start():
    """`ativo db upgrade` (the platform DB's migrations) runs in airflow-init, with the platform DB's URL."""
    from ativo.cli import build_parser

    doc = yaml.safe_load(COMPOSE.read_text())
    script = shlex.split(doc["services"]["airflow-init"]["command"])[2]  # bash -c "…"
    upgrades = re.findall(r"(?:^|&&)\s*(ativo db [\w-]+)\s*(?=&&|$)", script)
    assert upgrades == ["ativo db upgrade"], script
    build_parser().parse_args(upgrades[0].split()[1:])  # a command the CLI has
    assert service_environments()["airflow-init"]["ATIVO_DB_URL"].startswith("postgresql")
    for name in ("airflow-scheduler", "airflow-worker", "airflow-apiserver"):
        assert doc["services"][name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
