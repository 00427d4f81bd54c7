"""docker-compose.yaml cannot run here (no Docker engine): validate it against the compose spec and keep it honest."""

from __future__ import annotations

import importlib.util
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


def test_every_ativo_setting_in_compose_is_one_the_code_reads():
    config_src = (ROOT / "include" / "ativo" / "config.py").read_text()
    keys = set(re.findall(r"\b(ATIVO_[A-Z_]+)\b", COMPOSE.read_text()))
    assert keys, "compose configures Ativo through ATIVO_* settings"
    unknown = sorted(k for k in keys if f'"{k}"' not in config_src)
    assert unknown == [], f"compose sets settings the code never reads: {unknown}"


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
