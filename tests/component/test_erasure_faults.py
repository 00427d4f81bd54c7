"""Erasure under faults: a worker SIGKILLed in the middle of the purge is run again and ends exactly where an
uninterrupted purge ends (no other subject's row lost, no half-redacted version); and the CLI refuses a caller
without the op role, auditing the attempt."""

from __future__ import annotations

import datetime as dt
import hashlib
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
    return subprocess.run([sys.executable, "-m", "ativo.cli", *args], capture_output=True, text=True, timeout=300,
                          env=env)  # fmt: skip


def platform(tmp_path, name, monkeypatch, spec, reference_dir):
    """A home with four days of ETL (four dataset versions), an op key, and 300 subjects' erasure filed."""
    from ativo.config import load_settings
    from ativo.data.etl import run_interval
    from ativo.data.landing import simulate
    from ativo.serve.keys import create_key
    from ativo.store.objects import open_store

    home = tmp_path / name
    monkeypatch.setenv("ATIVO_HOME", str(home))
    monkeypatch.setenv("ATIVO_MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
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


def end_state(settings, spec) -> dict:
    """What a user can observe: lake bytes, every version's rows, the redaction map, the subject index."""
    from ativo.data.versioning import open_registry
    from ativo.erasure.purge import versions_of
    from ativo.store.db import dataset_redactions, get_engine, subject_index
    from ativo.store.objects import open_store

    store, engine = open_store(settings), get_engine(settings.db_url)
    registry = open_registry(settings)
    rid = spec.data_schema.record_id
    versions = {}
    for v in versions_of(engine, spec.name):
        frame = registry.read(v).sort_values(rid).reset_index(drop=True)
        versions[v.tag] = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    with engine.connect() as conn:
        redactions = sorted((r.old_md5, r.new_md5, r.rows_removed) for r in conn.execute(dataset_redactions.select()))
        index = conn.execute(subject_index.select()).all()
    lake = {k: hashlib.sha256(store.get_bytes(k)).hexdigest() for k in store.list(f"lake/{spec.name}")}
    old_left = [md5 for md5, _, _ in redactions if registry.object_locations(md5)]
    return {"versions": versions, "redactions": redactions, "index_rows": len(index), "lake": lake,
            "old_objects_left": old_left}  # fmt: skip


def test_a_purge_killed_midway_resumes_to_the_same_end_state(tmp_path, monkeypatch, spec, reference_dir):
    from ativo.erasure import requests as rq
    from ativo.store.db import dataset_redactions, get_engine

    # the reference: an uninterrupted purge
    ref_settings, ref_env = platform(tmp_path, "reference", monkeypatch, spec, reference_dir)
    gone = subjects(ref_settings, spec)
    out = ativo("erase", "--spec", spec.name, "--request-id", "R-1", *[a for s in gone for a in ("--subject", s)],
                "--process", env=ref_env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    reference = end_state(ref_settings, spec)
    assert len(reference["versions"]) == DAYS + 1 and reference["old_objects_left"] == []

    # the same, with the worker killed as soon as it has redacted its first historical object
    settings, env = platform(tmp_path, "killed", monkeypatch, spec, reference_dir)
    assert subjects(settings, spec) == gone
    engine = get_engine(settings.db_url)
    filed = ativo("erase", "--spec", spec.name, "--request-id", "R-1", *[a for s in gone for a in ("--subject", s)],
                  env=env)  # fmt: skip
    assert filed.returncode == 0 and json.loads(filed.stdout.splitlines()[0])["status"] == "received"
    worker = subprocess.Popen([sys.executable, "-m", "ativo.cli", "erasure", "run", "--spec", spec.name], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and worker.poll() is None:
        with engine.connect() as conn:
            if conn.execute(dataset_redactions.select().limit(1)).first():
                break
        time.sleep(0.01)
    assert worker.poll() is None, "the purge finished before it could be killed"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    batch = rq.get(engine, "R-1")["batch_id"]
    assert rq.step_result(engine, batch, "purge") is None  # killed inside the purge step
    assert rq.get(engine, "R-1")["status"] == "processing"

    again = ativo("erasure", "run", "--spec", spec.name, env=env)  # the retry resumes the batch
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["closed"]["closed"] is True
    assert end_state(settings, spec) == reference
    assert rq.get(engine, "R-1")["status"] == "closed"


def test_the_cli_refuses_a_caller_without_the_op_role(ativo_home):
    from ativo.config import load_settings
    from ativo.erasure import audit
    from ativo.serve.keys import create_key
    from ativo.store.db import get_engine

    keys = ativo_home / "serve" / "api_keys.json"
    predict = create_key(keys, "app", ("predict",))
    env = dict(os.environ)
    env.pop("ATIVO_OP_KEY", None)
    for args in ((), ("--key", predict), ("--key", "ak_not-a-key")):
        out = ativo("erase", "--spec", "adult_income", "--subject", "cust-1", *args, env=env)
        assert out.returncode == 2 and "need the 'op' role" in out.stderr, out.stderr
    engine = get_engine(load_settings().db_url)
    refused = audit.entries(engine, kind="erasure_refused")
    assert [r["payload"]["why"] for r in refused] == [
        "no key given (--key or ATIVO_OP_KEY)", "key 'app' lacks the role 'op'", "unknown key"]
    from ativo.erasure.requests import pending

    assert pending(engine, "adult_income") == []  # nothing was filed
    op = create_key(keys, "dpo", ("op",))
    out = ativo("erase", "--spec", "adult_income", "--subject", "cust-1", "--request-id", "R-9", "--key", op, env=env)
    assert out.returncode == 0 and json.loads(out.stdout.splitlines()[0])["request_id"] == "R-9"
    status = json.loads(ativo("erasure", "status", "R-9", env=env).stdout)
    assert status["status"] == "received" and status["subjects"] == 1 and status["actor"] == "key:dpo"


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
