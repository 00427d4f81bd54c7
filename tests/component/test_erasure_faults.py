"""Erasure under faults: a worker SIGKILLed in the middle of the purge is run again and ends exactly where an
uninterrupted purge ends (no other subject's row lost, no half-redacted version); and the CLI refuses a caller
without the op role, auditing the attempt."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import pytest

START = dt.date(2026, 3, 1)
DAYS = 3


def ativo(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ativo.cli", *args], capture_output=True, text=True, timeout=300, env=env
    )


def platform(tmp_path, name, monkeypatch, spec, reference_dir, new_mlflow_db):
    """A home with four days of ETL (four dataset versions), an op key, and 300 subjects' erasure filed."""
    from ativo.config import load_settings
    from ativo.data.etl import run_interval
    from ativo.data.landing import simulate
    from ativo.serve.keys import create_key
    from ativo.store.objects import open_store

    home = tmp_path / name
    monkeypatch.setenv("ATIVO_HOME", str(home))
    monkeypatch.setenv("ATIVO_MLFLOW_TRACKING_URI", new_mlflow_db(home / "mlflow.db"))
    monkeypatch.setenv("ATIVO_SUBJECT_PEPPER", "the-same-pepper")
    settings = load_settings()
    simulate(spec, open_store(settings), reference_dir, START, DAYS)
    for i in range(DAYS):
        run_interval(spec, settings, (START + dt.timedelta(days=i)).isoformat())
    key = create_key(home / "serve" / "api_keys.json", "dpo", ("op",))
    env = dict(os.environ, ATIVO_OP_KEY=key)
    return settings, env


def subjects(settings, spec, n=300):
    from ativo.data.versioning import open_registry
    from ativo.store.db import get_engine

    registry = open_registry(settings)
    df = registry.read(registry.resolve(get_engine(settings.db_url), spec.name))
    return df[spec.data_schema.subject].drop_duplicates().sample(n, random_state=5).tolist()


def lake(settings, spec) -> dict:
    """Each lake partition's rows, sorted by record id."""
    from ativo.data.features import read_parquet_bytes
    from ativo.store.objects import open_store

    store = open_store(settings)
    rid = spec.data_schema.record_id
    return {
        k: read_parquet_bytes(store.get_bytes(k)).sort_values(rid).reset_index(drop=True)
        for k in store.list(f"lake/{spec.name}")
    }


def versions(settings, spec) -> dict:
    """Each dataset version's rows, sorted by record id."""
    from ativo.data.versioning import open_registry, versions_of
    from ativo.store.db import get_engine

    registry = open_registry(settings)
    rid = spec.data_schema.record_id
    return {
        v.tag: registry.read(v).sort_values(rid).reset_index(drop=True)
        for v in versions_of(get_engine(settings.db_url), spec.name)
    }


def test_a_purge_killed_midway_resumes_to_the_end_state_of_an_uninterrupted_one(
    tmp_path, monkeypatch, spec, reference_dir, new_mlflow_db
):
    import pandas as pd

    from ativo.data.features import to_parquet_bytes
    from ativo.data.versioning import open_registry
    from ativo.erasure import requests as rq
    from ativo.store.db import dataset_redactions, get_engine, subject_index
    from ativo.store.objects import open_store

    settings, env = platform(tmp_path, "killed", monkeypatch, spec, reference_dir, new_mlflow_db)
    gone = subjects(settings, spec)
    sid = spec.data_schema.subject
    lake_before, versions_before = lake(settings, spec), versions(settings, spec)
    engine = get_engine(settings.db_url)
    filed = ativo(
        "erasure",
        "request",
        "--spec",
        spec.name,
        "--request-id",
        "R-1",
        *[a for s in gone for a in ("--subject", s)],
        env=env,
    )
    assert filed.returncode == 0 and json.loads(filed.stdout.splitlines()[0])["status"] == "received"

    # the worker is killed as soon as it has redacted its first historical object
    worker = subprocess.Popen(
        [sys.executable, "-m", "ativo.cli", "erasure", "run", "--spec", spec.name],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and worker.poll() is None:
        with engine.connect() as conn:
            if conn.execute(dataset_redactions.select().limit(1)).first():
                break
        time.sleep(0.005)
    assert worker.poll() is None, "the purge finished before it could be killed"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    batch = rq.get(engine, "R-1")["batch_id"]
    assert rq.step_result(engine, batch, "purge") is None  # killed inside the purge step
    assert rq.get(engine, "R-1")["status"] == "processing"

    again = ativo("erasure", "run", "--spec", spec.name, env=env)  # the retry resumes the batch
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["closed"]["closed"] is True and rq.get(engine, "R-1")["status"] == "closed"

    # the end state of an uninterrupted purge: each partition rewritten by the ETL's writer without the subjects
    store = open_store(settings)
    for key, frame in lake_before.items():
        want = frame[~frame[sid].isin(gone)].reset_index(drop=True)
        assert store.get_bytes(key) == to_parquet_bytes(want), key
    # every historical version holds exactly its other rows, and one new version holds the purged lake
    after = versions(settings, spec)
    assert sorted(after) == sorted(versions_before) + [f"{spec.name}-v{DAYS + 1:04d}"]
    for tag, frame in versions_before.items():
        pd.testing.assert_frame_equal(after[tag], frame[~frame[sid].isin(gone)].reset_index(drop=True))
    registry = open_registry(settings)
    with engine.connect() as conn:
        redactions = conn.execute(dataset_redactions.select()).all()
        indexed = {r.subject_id for r in conn.execute(subject_index.select())}
    assert len(redactions) == DAYS and all(registry.object_locations(r.old_md5) == [] for r in redactions)
    assert indexed == {s for f in lake_before.values() for s in f[sid]} - set(gone)  # the index follows the lake
    assert json.loads(again.stdout)["scan"] == {"clean": True, "hits": []}  # nor their record ids, anywhere

    # the receipt counts what the killed try did as well as what the retry did: the same as an uninterrupted purge
    shown = ativo("erasure", "receipt", "R-1", env=env)
    assert shown.returncode == 0, shown.stderr
    receipt = json.loads(shown.stdout[: shown.stdout.rindex("}") + 1])
    held = {key.split("ds=")[1].split("/")[0]: int(f[sid].isin(gone).sum()) for key, f in lake_before.items()}
    assert receipt["purged"]["lake_partitions"] == {k: n for k, n in held.items() if n}
    assert receipt["purged"]["lake_rows"] == sum(held.values()) > 0
    assert receipt["dataset_versions"]["before"] == f"{spec.name}-v{DAYS:04d}"
    assert receipt["dataset_versions"]["after"] == f"{spec.name}-v{DAYS + 1:04d}"
    assert sorted(receipt["dataset_versions"]["redacted"]) == sorted(versions_before)
    assert receipt["purged"]["dvc_objects_redacted"] == DAYS
    assert len(receipt["purged"]["dvc_objects_deleted"]) == 2 * DAYS  # each old object from the cache and the remote


def test_the_cli_refuses_a_caller_without_the_op_role(ativo_home):
    from ativo import audit
    from ativo.config import load_settings
    from ativo.serve.keys import create_key
    from ativo.store.db import get_engine

    keys = ativo_home / "serve" / "api_keys.json"
    predict = create_key(keys, "app", ("predict",))
    env = dict(os.environ)
    env.pop("ATIVO_OP_KEY", None)
    for args in ((), ("--key", predict), ("--key", "ak_not-a-key")):
        out = ativo("erasure", "request", "--spec", "adult_income", "--subject", "cust-1", *args, env=env)
        assert out.returncode == 1 and "need the 'op' role" in out.stderr, out.stderr
    engine = get_engine(load_settings().db_url)
    refused = audit.entries(engine, kind="erasure_refused")
    assert [r["payload"]["why"] for r in refused] == [
        "no key given (--key or ATIVO_OP_KEY)",
        "key 'app' lacks the role 'op'",
        "unknown key",
    ]
    from ativo.erasure.requests import pending

    assert pending(engine, "adult_income") == []  # nothing was filed
    op = create_key(keys, "dpo", ("op",))
    argv = ["erasure", "request", "--spec", "adult_income", "--subject", "cust-1", "--request-id", "R-9", "--key", op]
    out = ativo(*argv, env=env)
    assert out.returncode == 0 and json.loads(out.stdout.splitlines()[0])["request_id"] == "R-9"
    status = json.loads(ativo("erasure", "status", "R-9", env=env).stdout)
    assert status["status"] == "received" and status["subjects"] == 1 and status["actor"] == "key:dpo"


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
