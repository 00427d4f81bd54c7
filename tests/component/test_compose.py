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
    """Every environment variable Settings reads → the attribute path it lands on (``ports.airflow``)."""
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
    assert {"ATIVO_HOME", "ATIVO_DB_URL", "ATIVO_AIRFLOW_PORT", "MLFLOW_TRACKING_URI"} <= set(paths)
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


DEV_ONLY = ("ativo_dev", "devtools", "tests")  # the local launcher (and its old name), the tests and their support


def test_no_service_runs_development_tooling_and_the_image_holds_none():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name, service in services.items():
        run = " ".join(
            " ".join(map(str, v)) if isinstance(v, list) else str(v)
            for v in (service.get("entrypoint") or "", service.get("command") or "")
        )
        modules = re.findall(r"python3? -m ([\w.]+)", run)
        assert not [m for m in modules if m.split(".")[0] in DEV_ONLY], f"{name} runs development tooling: {run}"
        assert not re.search(r"\b(ativo_dev|devtools)\b", run), f"{name} runs development tooling: {run}"
    # the on-call sink is the library's own component, a module of the installed package
    assert services["alert-sink"]["command"].split()[:3] == ["python", "-m", "ativo.ops.alert_sink"]
    copied = [line.split()[1:-1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY")]
    sources = {src.rstrip("/") for srcs in copied for src in srcs}
    assert sources & set(DEV_ONLY) == set(), f"the image copies development tooling: {sorted(sources)}"
    assert {"include", "dags", "plugins"} <= sources


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
    """The API server checks logins against the passwords file; Ativo's tasks read the admin password from their
    settings file (ATIVO_HOME/ativo.env), never Airflow's file: airflow-init writes both on one shared volume."""
    from ativo.config import load_settings, settings_file

    var = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
    users_var = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"
    doc, envs = yaml.safe_load(COMPOSE.read_text()), service_environments()
    readers = {name: env[var] for name, env in envs.items() if var in env}  # service → the passwords file it reads
    assert {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-worker", "airflow-worker-gpu"} <= set(
        readers
    )
    assert len(set(readers.values())) == 1, readers
    path = Path(next(iter(readers.values())))
    # every service whose Ativo calls Airflow's API without a password of its own reads it from its settings file
    callers = {
        name: settings_file(load_settings({"ATIVO_HOME": env.get("ATIVO_HOME", "")}).home)
        for name, env in envs.items()
        if env.get("ATIVO_AIRFLOW_URL") and not env.get("ATIVO_AIRFLOW_PASSWORD")
    }
    assert {"airflow-scheduler", "airflow-worker", "airflow-worker-gpu", "airflow-init"} <= set(callers)
    assert len(set(callers.values())) == 1, callers
    ativo_env = next(iter(callers.values()))
    for file, services in ((path, readers), (ativo_env, callers)):
        volumes = set()
        for name in services:
            holding = [m for m in mounts(doc["services"][name]).items() if file.is_relative_to(m[0])]
            assert holding, f"{name} reads {file} but mounts no volume holding it: its container has a file of its own"
            volumes.add(max(holding, key=lambda m: len(m[0])))  # the innermost mount is the one that holds the file
        assert len(volumes) == 1, f"the services read {file} from different volumes: {volumes}"
        [(_, volume)] = volumes
        assert volume in (doc.get("volumes") or {}), f"{volume} is not a named volume the services share"

    # airflow-init writes both there, for every user, before the services that read them start
    for name in (set(readers) | set(callers)) - {"airflow-init"}:
        assert doc["services"][name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    script = shlex.split(shlex.split(doc["services"]["airflow-init"]["command"])[2])
    steps = [step.split() for step in " ".join(script).split("&&")]
    assert ["python", "-m", "ativo.airflow.passwords"] in steps, f"airflow-init does not write {path}: {steps}"
    local, home = tmp_path / path.relative_to(path.anchor), tmp_path / "ativo-home"  # where the container has them
    init = envs["airflow-init"]
    env = {
        **{k: v for k, v in init.items() if k.startswith("ATIVO_")},
        "ATIVO_HOME": str(home),
        var: str(local),
        users_var: init[users_var],
        "PATH": "/usr/bin:/bin",
    }
    users = {user.split(":")[0] for user in init[users_var].split(",")}
    for kept in ({}, {"admin": "changed-by-hand"}):  # the first `docker compose up`, and every one after
        if kept:
            local.write_text(json.dumps(kept))
        subprocess.run([sys.executable, "-m", "ativo.airflow.passwords"], env=env, check=True, capture_output=True)
        assert local.is_file(), f"airflow-init writes no file at {path}"
        written = json.loads(local.read_text())
        assert users <= set(written), f"airflow-init writes no password for {users - set(written)}"
        assert kept.items() <= written.items(), "airflow-init overwrote a password the file already had"
        assert oct(local.stat().st_mode & 0o777) == oct(0o600), "the passwords file is readable by others"
        fresh = {u: p for u, p in written.items() if u not in kept}
        assert all(len(p) >= 16 and p != u for u, p in fresh.items()), f"guessable passwords: {fresh}"
        # what Ativo's tasks sign in with: the admin's password, in a settings file only its owner reads
        assert oct(settings_file(home).stat().st_mode & 0o777) == oct(0o600), "the settings file is readable by others"
        password = load_settings({"ATIVO_HOME": str(home)}).airflow_password
        assert password is not None and password.get_secret_value() == written["admin"]
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
