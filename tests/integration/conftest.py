"""Real services for the integration tier: an S3 endpoint (moto server on loopback) and PostgreSQL.

A missing service skips its tests, saying how to start it; with ATIVO_REQUIRE_SERVICES=1 (CI) it fails them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REQUIRE = os.environ.get("ATIVO_REQUIRE_SERVICES") == "1"
PG_ADMIN_URL = os.environ.get("ATIVO_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def unavailable(what: str) -> None:
    if REQUIRE:
        pytest.fail(f"{what} (ATIVO_REQUIRE_SERVICES=1, so this fails instead of skipping)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 (a real HTTP endpoint, spoken to with boto3/s3fs as in production)."""
    from tests.support.harness import free_port

    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    moto = Path(sys.executable).parent / "moto_server"
    if not moto.exists():
        unavailable(f"moto_server not found next to {sys.executable}: install requirements.txt")
    with open(log, "wb") as fh:
        proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                unavailable(f"moto_server exited: {log.read_text()[-500:]}")
            time.sleep(0.3)
    else:
        proc.terminate()
        unavailable(f"S3 endpoint did not start on {url}")
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = f"ativo-it-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    return name, client


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except OperationalError as err:
        unavailable(
            f"PostgreSQL not reachable at {PG_ADMIN_URL} ({str(err).splitlines()[0]}); start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        )
    name = f"ativo_it_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    from ativo.store import db

    for url, engine in list(db._engines.items()):
        if name in url:
            engine.dispose()
            db._engines.pop(url)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
