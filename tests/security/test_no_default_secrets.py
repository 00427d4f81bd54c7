"""No default secrets in the production shapes: docker-compose.yaml, the Dockerfile and everything under deploy/.

A secret there is either a reference (``${VAR:?…}``, which compose refuses to start without, ``$VAR`` in a script,
a ``*_FILE`` / ``*_CMD`` setting, a Kubernetes Secret) or a defect: anyone who reads the repository could use it.
The scan reads YAML by its structure (a key that names a password, secret, token or key and a literal value) and
every file as text (``user:pass@`` in a URI, SQL ``PASSWORD '…'``, ``admin:admin``, MinIO's and MLflow's factory
logins, CLI flags that carry a secret).
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
SECRETS_SCRIPT = ROOT / "deploy" / "compose" / "secrets.sh"

# A name that holds a secret: MINIO_ROOT_PASSWORD, AIRFLOW__API_AUTH__JWT_SECRET, fernet_key, AWS_SECRET_ACCESS_KEY…
SECRET_NAME = re.compile(
    r"password|passwd|secret|token|(^|_)key(_id)?$|_key_|fernet|pepper|credential|access_?key|private_?key|"
    r"api_?key|root_user",
    re.I,
)
# Names that match SECRET_NAME and refer to a secret: a Helm secret entry's key in its Secret, a secretKeyRef's key.
REFERENCE_KEYS = {"secretKey", "key", "envName"}
# A name that refers to a secret held elsewhere rather than holding it.
REFERENCE_NAME = re.compile(r"(_FILE|__FILE|_CMD|_SECRET_NAME|SecretName|existingSecret|secretKeyRef)$", re.I)
# A value that is a reference: compose's required variable, a shell variable, a Kubernetes secretKeyRef.
REFERENCE_VALUE = re.compile(r"^\s*(\$\{\w+(:?\?[^}]*)?\}|\$\w+|\"\$\{?\w+\}?\")\s*$")
# User-info in a URI: scheme://user:password@host.
URI_PASSWORD = re.compile(r"[a-z][\w+.-]*://([^\s:/@'\"]*):([^\s@/'\"]+)@", re.I)
FACTORY_LOGINS = re.compile(r"minioadmin|password1234|changeme|change-me|CHANGE_ME", re.I)
ADMIN_ADMIN = re.compile(r"[\\\"']*admin[\\\"']*\s*[:/]\s*[\\\"']*admin\b", re.I)
SQL_PASSWORD = re.compile(r"\bPASSWORD\s+'([^']*)'", re.I)
CLI_SECRET = re.compile(
    r"--(?:from-literal=[\w.-]*(?:password|secret|token|key)[\w.-]*=|requirepass[ =]|password[ =]|"
    r"secret[\w-]*[ =]|token[ =])([^\s\\]+)",
    re.I,
)
MC_ALIAS = re.compile(r"\bmc\s+alias\s+set\s+\S+\s+\S+\s+(\S+)\s+(\S+)")
SHELL_ASSIGN = re.compile(r"(?:^|[\s;&(])(?:export\s+|ENV\s+|ARG\s+)?([A-Za-z_]\w*)=([^\s;&)]*)")


def scanned_files() -> list[Path]:
    files = [COMPOSE, ROOT / "Dockerfile"]
    files += sorted(p for p in (ROOT / "deploy").rglob("*") if p.is_file() and not p.name.startswith("."))
    return files


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def is_reference(value: str, required: bool = False) -> bool:
    """Whether ``value`` names a secret kept elsewhere instead of being one.

    ``${VAR:?message}`` (compose refuses to start without it), ``$VAR``/``${VAR}`` and ``$(generated)`` in a script,
    ``$$VAR`` (a container's own variable, in compose), an elision (``…``, ``<password>``). ``${VAR:-default}`` is a
    default secret. ``required``: compose, where an unset ``${VAR}`` is an empty password, so only ``:?`` counts.
    """
    value = value.strip().strip("'\"")
    if not value or value.startswith(("…", "<")) or value == "...":
        return True
    if required and value.startswith("$$"):
        value = value[1:]  # compose's escape: the variable of the container's shell
    elif required:
        m = re.fullmatch(r"\$\{\w+(:?\?[^}]*)\}", value)
        return m is not None
    if value.startswith("$("):
        return True  # generated on the spot
    m = re.fullmatch(r"\$\{\w+(:?[?-])?[^}]*\}|\$\w+", value)
    return m is not None and not (m.group(1) or "").endswith("-")


def literal(value: Any, required: bool = False) -> bool:
    """A value a secret-named key may not have: a non-empty string or number that is no reference."""
    if value is None or isinstance(value, bool | dict | list):
        return False
    return not is_reference(str(value), required)


def yaml_findings(path: Path) -> Iterator[str]:
    """Keys named for a secret with a literal value, in every YAML document of the file (lists ``K=V`` too)."""
    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except yaml.YAMLError:
        return
    required = path.name == COMPOSE.name

    def walk(node: Any, where: str) -> Iterator[str]:
        if isinstance(node, dict):
            if "name" in node and "value" in node and SECRET_NAME.search(str(node["name"])):  # k8s env entries
                if not REFERENCE_NAME.search(str(node["name"])) and literal(node["value"], required):
                    yield f"{where}: {node['name']}={node['value']!r}"
            for key, value in node.items():
                name = str(key)
                if isinstance(value, str | int | float) and SECRET_NAME.search(name):
                    if not REFERENCE_NAME.search(name) and name not in REFERENCE_KEYS and literal(value, required):
                        yield f"{where}.{name}: {value!r}"
                yield from walk(value, f"{where}.{name}")
        elif isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, str) and "=" in item and " " not in item.split("=", 1)[0]:
                    name, value = item.split("=", 1)
                    if SECRET_NAME.search(name) and not REFERENCE_NAME.search(name) and literal(value, required):
                        yield f"{where}[{i}]: {item!r}"
                yield from walk(item, f"{where}[{i}]")

    for n, doc in enumerate(docs):
        yield from walk(doc, f"{shown(path)}#{n}")


def text_findings(path: Path) -> Iterator[str]:
    """Secrets in the text itself: URIs, SQL, factory logins, CLI flags, shell and Dockerfile assignments."""
    rel, required = shown(path), path.name == COMPOSE.name
    for no, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        at = f"{rel}:{no}"
        for m in URI_PASSWORD.finditer(line):
            if not is_reference(m.group(2), required):
                yield f"{at}: a password in a URI: {m.group(0)!r}"
        for m in SQL_PASSWORD.finditer(line):
            yield f"{at}: a literal SQL password: {m.group(0)!r}"
        if FACTORY_LOGINS.search(line):
            yield f"{at}: a factory login or placeholder secret: {line.strip()!r}"
        # the simple auth manager's user list is user:role, not user:password
        if ADMIN_ADMIN.search(line) and "simple_auth_manager_users" not in line.lower():
            yield f"{at}: admin:admin: {line.strip()!r}"
        for m in CLI_SECRET.finditer(line):
            if not is_reference(m.group(1), required):
                yield f"{at}: a secret on a command line: {m.group(0)!r}"
        for m in MC_ALIAS.finditer(line):
            if not (is_reference(m.group(1), required) and is_reference(m.group(2), required)):
                yield f"{at}: an object-store login on a command line: {m.group(0)!r}"
        for m in SHELL_ASSIGN.finditer(line):
            name, value = m.groups()
            if not SECRET_NAME.search(name) or REFERENCE_NAME.search(name) or not value:
                continue
            if not is_reference(value, required) and not value.startswith(("$(", "`")):  # `…`: generated there
                yield f"{at}: {name} assigned a literal: {m.group(0).strip()!r}"


def findings(path: Path) -> list[str]:
    out = list(text_findings(path))
    if path.suffix in (".yaml", ".yml"):
        out += yaml_findings(path)
    return out


def test_the_scan_reads_the_production_shapes():
    names = {str(p.relative_to(ROOT)) for p in scanned_files()}
    assert {"docker-compose.yaml", "Dockerfile", "deploy/helm/values.yaml", "deploy/helm/README.md"} <= names
    assert any(n.startswith("deploy/grafana/") for n in names) and any(n.startswith("deploy/compose/") for n in names)


@pytest.mark.parametrize(
    ("text", "suffix"),
    [
        ("AIRFLOW__API_AUTH__JWT_SECRET: change-me-shared-jwt-secret\n", ".yaml"),
        ("GF_SECURITY_ADMIN_PASSWORD: admin\n", ".yaml"),
        ("x:\n  MINIO_ROOT_PASSWORD: ativo-secret\n", ".yaml"),
        ("env:\n  - name: AWS_SECRET_ACCESS_KEY\n    value: hunter2\n", ".yaml"),
        ("environment:\n  - POSTGRES_PASSWORD=postgres\n", ".yaml"),
        ("fernetKey: ZmVybmV0LWtleS1mb3ItdGVzdHMtb25seS0xMjM0NTY3OA==\n", ".yaml"),
        ("PASSWORD: ${PASSWORD:-default-secret}\n", ".yaml"),
        ("url: postgresql+psycopg2://airflow:airflow@postgres:5432/airflow\n", ".yaml"),
        ("CREATE USER airflow WITH PASSWORD 'airflow';\n", ".sql"),
        ("mc alias set local http://minio:9000 ativo ativo-secret\n", ".sh"),
        ("MINIO_ROOT_USER=minioadmin\n", ".env"),
        ('p.write_text(json.dumps({"admin": "admin"}))\n', ".yaml"),
        ("kubectl create secret generic x --from-literal=aws-secret-access-key=hunter2\n", ".md"),
        ("ENV AIRFLOW__CORE__FERNET_KEY=abc\n", ""),
    ],
)
def test_the_scan_finds_a_literal_secret(tmp_path, text, suffix):
    path = tmp_path / f"probe{suffix}"
    path.write_text(text)
    assert findings(path), f"the scan missed a literal secret in {text!r}"


@pytest.mark.parametrize(
    "text",
    [
        "AIRFLOW__API_AUTH__JWT_SECRET: ${AIRFLOW_JWT_SECRET:?run deploy/compose/secrets.sh}\n",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS: admin:admin,operator:op,analyst:user\n",
        "GF_SECURITY_ADMIN_PASSWORD__FILE: /run/secrets/grafana\n",
        "env:\n  - name: AWS_SECRET_ACCESS_KEY\n    valueFrom: {secretKeyRef: {name: ativo-platform, key: aws}}\n",
        "secret:\n  - envName: AWS_SECRET_ACCESS_KEY\n    secretName: ativo-platform\n    secretKey: aws\n",
        "url: postgresql+psycopg2://airflow:${AIRFLOW_DB_PASSWORD:?x}@postgres:5432/airflow\n",
        "jwtSecretName: ativo-airflow-jwt\n",
        "AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME: '7200'\n",
    ],
)
def test_the_scan_accepts_references(tmp_path, text):
    path = tmp_path / "probe.yaml"
    path.write_text(text)
    assert findings(path) == []


def test_no_literal_secret_in_compose_the_dockerfile_or_deploy():
    found = [f for path in scanned_files() for f in findings(path)]
    assert found == [], "literal secrets (use a required ${VAR:?…} or a Kubernetes Secret):\n" + "\n".join(found)


# --- compose: what it publishes and how it gets its secrets -------------------------------------------------------

# The services a person opens, each behind its own login; everything else stays on the compose network.
PUBLISHED = {"airflow-apiserver", "ativo-serve", "grafana"}


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_publishes_no_admin_console():
    published = {name for name, svc in compose()["services"].items() if svc.get("ports")}
    assert published <= PUBLISHED, f"published without a login of their own: {sorted(published - PUBLISHED)}"
    minio = compose()["services"]["minio"]
    # MinIO's console is its root login's admin UI, on a port of its own even when none is given
    assert str(minio.get("environment", {}).get("MINIO_BROWSER")).lower() == "off"
    assert "--console-address" not in str(minio.get("command"))


def test_mlflow_is_reached_only_by_the_platform():
    doc = compose()
    services = doc["services"]
    assert not services["mlflow"].get("ports"), "MLflow (no authentication) must not be published"

    def networks(svc: dict) -> set[str]:
        nets = svc.get("networks") or ["default"]
        return set(nets if isinstance(nets, list) else nets.keys())

    reach = {name for name, svc in services.items() if networks(svc) & networks(services["mlflow"])}
    outsiders = {"grafana", "prometheus"}  # the consoles people open
    assert not reach & outsiders, f"these share a network with MLflow and need not: {sorted(reach & outsiders)}"


def test_grafana_has_no_default_login():
    env = compose()["services"]["grafana"]["environment"]
    assert str(env.get("GF_AUTH_ANONYMOUS_ENABLED")).lower() == "false"
    password = env.get("GF_SECURITY_ADMIN_PASSWORD") or env.get("GF_SECURITY_ADMIN_PASSWORD__FILE")
    assert password and is_reference(str(password), required=True), password


def required_variables() -> set[str]:
    """The variables compose refuses to start without (``${VAR:?message}``), in its values (not its comments)."""

    def strings(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, list):
            for item in node:
                yield from strings(item)
        elif isinstance(node, str):
            yield node

    return {name for text in strings(compose()) for name in re.findall(r"\$\{(\w+):?\?", text)}


def env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def run_secrets(env_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(SECRETS_SCRIPT), *args],
        env={**os.environ, "ATIVO_ENV_FILE": str(env_path)},
        capture_output=True,
        text=True,
        check=True,
    )


def test_secrets_script_generates_every_variable_compose_requires(tmp_path):
    from cryptography.fernet import Fernet

    required = required_variables()
    assert {"AIRFLOW_JWT_SECRET", "AIRFLOW_FERNET_KEY", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"} <= required
    first, second = tmp_path / "a.env", tmp_path / "b.env"
    run_secrets(first)
    run_secrets(second)
    a, b = env_file(first), env_file(second)
    assert required <= set(a), f"secrets.sh does not write {sorted(required - set(a))}"
    assert set(a) <= required, f"secrets.sh writes secrets compose never uses: {sorted(set(a) - required)}"
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    for name in required:
        assert len(a[name]) >= 16 and a[name] != b[name], f"{name} is not random: {a[name]!r} / {b[name]!r}"
        assert re.fullmatch(r"[\w=-]+", a[name]), f"{name} would need quoting in a URI or a shell: {a[name]!r}"
    Fernet(a["AIRFLOW_FERNET_KEY"].encode())  # a key Airflow can use

    # a second run keeps every value (the databases were initialised with them); --rotate replaces one
    first.write_text(first.read_text() + "EXTRA_SETTING=kept\n")
    run_secrets(first)
    assert env_file(first) == {**a, "EXTRA_SETTING": "kept"}
    run_secrets(first, "--rotate", "AIRFLOW_JWT_SECRET")
    rotated = env_file(first)
    assert rotated["AIRFLOW_JWT_SECRET"] != a["AIRFLOW_JWT_SECRET"]
    assert {k: v for k, v in rotated.items() if k != "AIRFLOW_JWT_SECRET"} == {
        k: v for k, v in {**a, "EXTRA_SETTING": "kept"}.items() if k != "AIRFLOW_JWT_SECRET"
    }
    assert stat.S_IMODE(first.stat().st_mode) == 0o600


# --- Helm: every secret from a Kubernetes Secret ------------------------------------------------------------------

HELM = ROOT / "deploy" / "helm"
# Settings that carry a password although their names do not say so (a URL with one, an Airflow connection).
CREDENTIAL_SETTINGS = {"ATIVO_DB_URL", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW_CONN_ATIVO_ONCALL"}


def test_helm_takes_airflow_secrets_from_kubernetes_secrets():
    doc = yaml.safe_load((HELM / "values.yaml").read_text())
    # the chart's keys that name a Secret made before the install; without them it generates one per release
    # (a fresh Fernet key on a reinstall cannot read the connections the old one encrypted) or takes a literal
    for key in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert doc.get(key), f"values.yaml sets no {key}"
    assert doc["data"].get("metadataSecretName") and "metadataConnection" not in doc["data"]
    literal_keys = {"fernetKey", "apiSecretKey", "webserverSecretKey", "jwtSecret", "defaultUser"}
    assert not literal_keys & set(doc), f"values.yaml sets a secret itself: {sorted(literal_keys & set(doc))}"
    assert not doc.get("postgresql", {}).get("enabled") and not doc.get("redis", {}).get("enabled")


def test_helm_and_pod_templates_pass_credentials_only_by_secret_reference():
    doc = yaml.safe_load((HELM / "values.yaml").read_text())
    plain = {e["name"] for e in doc["env"]}
    wrong = {n for n in plain if SECRET_NAME.search(n) or n in CREDENTIAL_SETTINGS}
    assert wrong == set(), f"values.yaml's env gives these as values, not from a Secret: {sorted(wrong)}"
    from_secrets = {s["envName"] for s in doc["secret"]}
    assert {"ATIVO_DB_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= from_secrets
    for template in sorted((HELM / "pod-templates").glob("*.yaml")):
        [container] = yaml.safe_load(template.read_text())["spec"]["containers"]
        for entry in container["env"]:
            if SECRET_NAME.search(entry["name"]) or entry["name"] in CREDENTIAL_SETTINGS:
                ref = entry.get("valueFrom", {})
                assert "secretKeyRef" in ref, f"{template.name}: {entry['name']} not from a Secret"
