"""Shared fixtures. Airflow and Ativo are pointed at a throw-away home *before* anything imports Airflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="ativo-tests-"))

from devtools.supervisor import airflow_base_env  # noqa: E402  # imports no Airflow

os.environ.update(
    {
        **airflow_base_env(_SESSION_HOME / "airflow"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "ATIVO_HOME": str(_SESSION_HOME / "ativo"),
        "ATIVO_SPECS_DIR": str(ROOT / "include" / "specs"),
        "ATIVO_REFERENCE_DIR": os.environ.get("ATIVO_REFERENCE_DIR", str(ROOT / "var" / "reference")),
        "ATIVO_MLFLOW_TRACKING_URI": f"sqlite:///{_SESSION_HOME / 'mlflow.db'}",
    }
)
for _key in ("ATIVO_STORE_URI", "ATIVO_DB_URL", "ATIVO_REGISTRY_PATH", "ATIVO_DVC_REMOTE", "ATIVO_S3_ENDPOINT_URL"):
    os.environ.pop(_key, None)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The UCI Adult reference data (fetched by `make data`; fetched here if missing)."""
    from ativo.data.reference import fetch_adult

    return fetch_adult(Path(os.environ["ATIVO_REFERENCE_DIR"]))


@pytest.fixture
def ativo_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh Ativo home (object store, platform DB, data registry, MLflow) for one test."""
    home = tmp_path / "ativo"
    monkeypatch.setenv("ATIVO_HOME", str(home))
    monkeypatch.setenv("ATIVO_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return home


@pytest.fixture
def settings(ativo_home: Path):
    from ativo.config import load_settings

    return load_settings()


@pytest.fixture(scope="session")
def spec():
    from ativo.spec import load_spec

    return load_spec(ROOT / "include" / "specs" / "adult_income.yaml")


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata DB (SQLite) for DagBag and dag.test()."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, env=dict(os.environ)
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return home


@pytest.fixture
def webhook():
    """A real HTTP webhook on loopback: yields (url, list of the JSON bodies it received)."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
