"""Who may change state from the `ativo` command line: an op key of the platform's own key file, nobody else.

Every state-changing command is run without a key, with a key of the inference API's roles (``predict``,
``feedback``), with an op key from a key file the caller chose (``ATIVO_SERVE_KEYS``, ``--keys``), and with an op
key from a key file others may write: each is refused with exit status 1 and a message naming what is missing, the
refusal is audited without the key, and nothing changed. With an op key (``ATIVO_OP_KEY`` or ``--key``) each works
and records the key's identity, ``key:<name>``, as the actor. The first op key needs no key, for the owner of the
platform home, once.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SPEC = "adult_income"
LAND_DAY = "2026-01-01"

#: every state-changing command, as a caller types it (``{csv}`` is a delivery in the landing layout)
STATE_CHANGING = {
    "land": ["land", "{csv}", "--spec", SPEC, "--date", "2026-01-05"],
    "simulate": ["simulate", "--spec", SPEC, "--start", "2026-02-01", "--days", "1"],
    "unpause": ["unpause", "--spec", SPEC],
    "backfill": ["backfill", "--spec", SPEC, "--from", "2026-01-01", "--to", "2026-01-02"],
    "budget set": ["budget", "set", "risk", "--limit-usd", "40"],
    "api-key create": ["api-key", "create", "mallory", "--role", "op"],
    "api-key revoke": ["api-key", "revoke", "spare"],
    "promote": ["promote", "1", "--spec", SPEC, "--reason", "by hand"],
    "rollback": ["rollback", "--spec", SPEC, "--reason", "by hand"],
    "adopt-routing": ["adopt-routing", "--spec", SPEC, "--reason", "upgrade"],
    "monitor run": ["monitor", "run", "--spec", SPEC, "--hours", "1"],
    "erasure request": ["erasure", "request", "--spec", SPEC, "--subject", "cust-1", "--request-id", "R-1"],
    "erasure run": ["erasure", "run", "--spec", SPEC],
    "incident": ["incident", "20261124-0000", "--expected", "1", "--note", "wrongly refused"],
}
#: the commands that only read (or, for ``serve`` and ``traffic``, answer and call with the API's own keys)
READ_ONLY = {
    "fetch-data",
    "spec check",
    "spec schema",
    "summary",
    "budget status",
    "leases",
    "metrics",
    "serve",
    "api-key list",
    "deployments",
    "traffic",
    "monitor status",
    "lineage",
    "erasure status",
    "erasure receipt",
    "audit",
    "db current",
}
#: a step of the platform's own deployment, before any op key exists: it brings the schema to the installed code's
#: head, which every Ativo process does anyway as it opens the database (its help says so); the DB credential guards it
DEPLOYMENT = {"db upgrade"}


def _leaves(parser, prefix: str = "", *, hidden: bool = False) -> dict:
    """Every command, by its path; with ``hidden``, the old spellings ``--help`` no longer lists too."""
    import argparse

    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {prefix: parser}
    listed = {a.dest for a in subs[0]._choices_actions}
    return {
        leaf: p
        for name, sub in subs[0].choices.items()
        if hidden or name in listed
        for leaf, p in _leaves(sub, f"{prefix} {name}".strip(), hidden=hidden).items()
    }


def test_every_state_changing_command_asks_for_an_op_key_and_no_other_does():
    from ativo.cli import build_parser

    leaves = _leaves(build_parser())
    assert set(leaves) == set(STATE_CHANGING) | READ_ONLY | DEPLOYMENT
    guarded = {name for name, parser in leaves.items() if parser.get_default("op_only")}
    assert guarded == set(STATE_CHANGING)
    old = {name: p for name, p in _leaves(build_parser(), hidden=True).items() if name not in leaves}
    assert set(old) == {"erase"}  # the old spelling of `erasure request`, as guarded as the new one
    assert old["erase"].get_default("op_only") == leaves["erasure request"].get_default("op_only")


class Airflow:
    """Stands in for Airflow's REST API: what the CLI asked of it."""

    calls: list[tuple] = []

    @classmethod
    def from_settings(cls, settings):
        return cls()

    def unpause(self, dag_id):
        Airflow.calls.append(("unpause", dag_id))

    def create_backfill(self, dag_id, start, end, **kw):
        Airflow.calls.append(("backfill", dag_id, start, end))
        return {"id": 1}

    def post(self, path, body):
        Airflow.calls.append(("post", path))
        return {"dag_run_id": "manual"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory, small_boosters, reference_dir):
    """A home with keys (op ``ops``, predict+feedback ``app``, predict ``spare``), a budget, a champion (version 2,
    version 1 previous), one landed day, and a delivery file in the landing layout; its keys by name."""
    from ativo.compute.budget import Ledger
    from ativo.config import load_settings
    from ativo.data.landing import simulate
    from ativo.deploy.promotion import promote
    from ativo.serve.keys import create_key
    from ativo.spec import get_spec
    from ativo.store.db import get_engine
    from ativo.store.objects import open_store
    from tests.support.harness import register_booster

    root = tmp_path_factory.mktemp("authority")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ATIVO_HOME", str(root / "ativo"))
        mp.setenv("ATIVO_MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        settings = load_settings()
        spec = get_spec(SPEC, settings.specs_dir)
        keys = key_file(settings.home)
        made = {
            name: create_key(keys, name, roles)
            for name, roles in (("ops", ("op",)), ("app", ("predict", "feedback")), ("spare", ("predict",)))
        }
        Ledger(get_engine(settings.db_url), settings.prices).set_budget("risk", 10)
        for booster in (small_boosters["good"], small_boosters["good2"]):
            version = register_booster(settings, spec, booster, artifact_root=root / "art")
            promote(spec, settings, version, reason="set up", actor="test")
        store = open_store(settings)
        [batch] = simulate(spec, store, settings.reference_dir, __import__("datetime").date(2026, 1, 1), 1)
        csv = root / "delivery.csv"
        csv.write_bytes(store.get_bytes(batch.key))
    return {"root": root, "keys": made, "csv": csv}


@pytest.fixture
def home(platform, monkeypatch):
    """The platform's settings, with no op key in the environment and Airflow's API recorded."""
    from ativo.config import load_settings

    monkeypatch.setenv("ATIVO_HOME", str(platform["root"] / "ativo"))
    monkeypatch.setenv("ATIVO_MLFLOW_TRACKING_URI", f"sqlite:///{platform['root'] / 'mlflow.db'}")
    for var in ("ATIVO_OP_KEY", "ATIVO_API_KEY", "ATIVO_SERVE_KEYS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("ativo.orchestrator.AirflowAPI", Airflow)
    Airflow.calls = []
    return load_settings()


def key_file(home: Path) -> Path:
    """The platform's own key file, where the README says it is."""
    return home / "serve" / "api_keys.json"


def run(argv: list[str], capsys) -> tuple[int, str]:
    """``ativo ARGV`` in this process: its exit status and what it printed to stderr."""
    from ativo.cli import main

    try:
        code = main(argv)
    except SystemExit as stop:  # argparse: an option it does not know
        code = int(stop.code or 0)
    return code, capsys.readouterr().err


def state(settings) -> dict:
    """Everything a command could change: the platform DB (but the audit log), the files of the home, what serves."""
    from sqlalchemy import inspect

    from ativo.deploy.promotion import history
    from ativo.model.registry import aliases
    from ativo.spec import get_spec
    from ativo.store.db import get_engine

    engine = get_engine(settings.db_url)
    with engine.connect() as conn:
        tables = {
            name: sorted(map(repr, conn.exec_driver_sql(f'SELECT * FROM "{name}"').all()))
            for name in inspect(engine).get_table_names()
            if name != "audit_log"
        }
    files = {
        str(p.relative_to(settings.home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(settings.home.rglob("*"))
        if p.is_file() and not p.name.startswith("ativo.db")
    }  # the DB's tables are read above
    spec = get_spec(SPEC, settings.specs_dir)
    return {
        "tables": tables,
        "files": files,
        "aliases": aliases(spec, settings),
        "records": len(history(spec, settings)),
        "airflow": list(Airflow.calls),
    }


def audit_rows(settings) -> list[dict]:
    from ativo import audit
    from ativo.store.db import get_engine

    return audit.entries(get_engine(settings.db_url))


def argv_of(command: str, platform) -> list[str]:
    return [a.replace("{csv}", str(platform["csv"])) for a in STATE_CHANGING[command]]


def _callers_own_file(tmp_path, monkeypatch):
    from ativo.serve.keys import create_key

    mine = tmp_path / "mine.json"
    key = create_key(mine, "mine", ("op",))
    monkeypatch.setenv("ATIVO_SERVE_KEYS", str(mine))  # the file a server of the caller's would read
    return key, mine


def presenting(case: str, platform, tmp_path, monkeypatch) -> tuple[list[str], str | None, str | None, str]:
    """The options of a refused ``case``: (extra argv, the key presented, why it is refused, the actor audited)."""
    keys = platform["keys"]
    if case == "no key":
        return [], None, "no key given", "anonymous"
    if case == "user key":
        return ["--key", keys["app"]], keys["app"], "key 'app' lacks the role 'op'", "key:app"
    if case == "user key in ATIVO_OP_KEY":
        monkeypatch.setenv("ATIVO_OP_KEY", keys["spare"])
        return [], keys["spare"], "key 'spare' lacks the role 'op'", "key:spare"
    key, mine = _callers_own_file(tmp_path, monkeypatch)
    fingerprint = "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:12]
    if case == "op key of the caller's own file":
        return ["--key", key], key, "unknown key", fingerprint
    return ["--key", key, "--keys", str(mine)], key, None, fingerprint  # the file named on the command line


REFUSALS = ("no key", "user key", "user key in ATIVO_OP_KEY", "op key of the caller's own file", "op key with --keys")


@pytest.mark.parametrize("case", REFUSALS)
@pytest.mark.parametrize("command", list(STATE_CHANGING))
def test_a_state_change_without_an_op_key_of_the_platform_is_refused_and_changes_nothing(
    command, case, platform, home, tmp_path, monkeypatch, capsys
):
    extra, presented, why, actor = presenting(case, platform, tmp_path, monkeypatch)
    before, audited = state(home), len(audit_rows(home))
    code, err = run(argv_of(command, platform) + extra, capsys)
    assert code == (2 if why is None else 1), err  # bad usage, else a refusal
    assert state(home) == before  # nothing changed: DB, files, what serves, Airflow
    if why is None:  # no option lets a caller name the key file that counts
        assert "unrecognized arguments: --keys" in err
        return
    assert why in err and "op" in err and "ATIVO_OP_KEY" in err and "api-key create NAME --role op" in err, err
    [row] = audit_rows(home)[audited:]  # the refusal, audited once
    assert row["kind"] in ("cli_refused", "erasure_refused") and why in row["payload"]["why"]
    assert row["actor"] == actor  # the key's name, or its hash's prefix: never the key
    if presented:
        assert presented not in json.dumps([{**r, "at": str(r["at"])} for r in audit_rows(home)], default=str)
        assert presented not in err


def test_a_key_file_others_may_write_grants_nothing(platform, home, capsys):
    path = key_file(home.home)
    before = state(home)
    path.chmod(0o644)
    try:
        code, err = run(["budget", "set", "risk", "--limit-usd", "99", "--key", platform["keys"]["ops"]], capsys)
    finally:
        path.chmod(0o600)
    assert code == 1 and "open to other users" in err and state(home) == before


def _last_audit(settings, kind: str) -> dict:
    return [r for r in audit_rows(settings) if r["kind"] == kind][-1]


def test_with_an_op_key_each_command_works_and_records_the_key_as_actor(platform, home, monkeypatch, capsys):
    from ativo.compute.budget import Ledger
    from ativo.deploy.promotion import history
    from ativo.erasure import requests as rq
    from ativo.model.registry import aliases
    from ativo.serve.keys import read_keys
    from ativo.spec import get_spec
    from ativo.store.db import get_engine
    from ativo.store.objects import open_store

    monkeypatch.setenv("ATIVO_OP_KEY", platform["keys"]["ops"])
    engine, spec = get_engine(home.db_url), get_spec(SPEC, home.specs_dir)

    def ok(command: str, *more: str) -> None:
        code, err = run(argv_of(command, platform) + list(more), capsys)
        assert code == 0, (command, err)

    ok("budget set")
    assert Ledger(engine, home.prices).status("risk")["limit_usd"] == 40
    assert _last_audit(home, "cli_budget_set")["actor"] == "key:ops"

    ok("promote")
    assert aliases(spec, home)["champion"] == "1"
    assert (history(spec, home)[-1]["action"], history(spec, home)[-1]["actor"]) == ("promote", "key:ops")
    ok("rollback")
    assert aliases(spec, home)["champion"] == "2" and history(spec, home)[-1]["actor"] == "key:ops"

    ok("erasure request")
    assert rq.get(engine, "R-1")["actor"] == "key:ops"
    code, err = run(["erase", "--spec", SPEC, "--subject", "cust-2", "--request-id", "R-2"], capsys)  # old spelling
    assert code == 0 and "`ativo erase` is deprecated: use `ativo erasure request`" in err, err
    assert rq.get(engine, "R-2")["actor"] == "key:ops"

    ok("land")
    assert open_store(home).exists(f"landing/{SPEC}/2026-01-05.csv")
    assert _last_audit(home, "cli_land")["actor"] == "key:ops"
    ok("simulate")
    assert _last_audit(home, "cli_simulate")["actor"] == "key:ops"

    ok("unpause")
    ok("backfill")
    assert [c[0] for c in Airflow.calls].count("backfill") == 1
    assert _last_audit(home, "cli_backfill")["actor"] == "key:ops" and _last_audit(home, "cli_unpause")

    seen = {}
    monkeypatch.setattr(
        "ativo.monitor.run.monitor_window",
        lambda spec, settings, start, end, **kw: seen.setdefault("monitor", {"window": str(end)}),
    )
    ok("monitor run", "--json")
    assert "monitor" in seen and _last_audit(home, "cli_monitor_run")["actor"] == "key:ops"

    def record_incident(settings, prediction_id, expected, note, actor, spec_name=None):
        seen["incident"] = actor
        return {"created": False, "case": {"id": 1, "spec": SPEC, "prediction_id": prediction_id, "expected": 1}}

    monkeypatch.setattr("ativo.ops.incidents.record_incident", record_incident)
    ok("incident")
    assert seen["incident"] == "key:ops"  # the case and its audit row name the key

    monkeypatch.delenv("ATIVO_OP_KEY")  # the same key given with --key
    ok("api-key create", "--key", platform["keys"]["ops"])
    ok("api-key revoke", "--key", platform["keys"]["ops"])
    names = {k["name"]: k["roles"] for k in read_keys(key_file(home.home))}
    assert names.get("mallory") == ["op"] and "spare" not in names
    assert _last_audit(home, "cli_api_key_create")["actor"] == "key:ops"
    assert _last_audit(home, "cli_api_key_revoke")["payload"] == {"name": "spare"}
    assert all(platform["keys"]["ops"] not in json.dumps(r, default=str) for r in audit_rows(home))


def test_the_first_op_key_needs_no_key_only_for_the_owner_of_the_home_and_only_once(ativo_home, monkeypatch, capsys):
    from ativo.config import load_settings
    from ativo.serve.keys import read_keys

    monkeypatch.delenv("ATIVO_OP_KEY", raising=False)
    ativo_home.mkdir(parents=True)
    with monkeypatch.context() as someone_else:
        someone_else.setattr(os, "geteuid", lambda: ativo_home.stat().st_uid + 1)
        code, err = run(["api-key", "create", "intruder", "--role", "op"], capsys)
    assert code == 1 and f"only the owner of the platform home {ativo_home}" in err

    code, err = run(["api-key", "create", "app", "--role", "predict"], capsys)  # the bootstrap is for an op key only
    assert code == 1 and "no key given" in err
    code, err = run(["api-key", "create", "alice", "--role", "op"], capsys)
    assert code == 0 and "first op key" in err, err
    code, err = run(["api-key", "create", "bob", "--role", "op"], capsys)  # once
    assert code == 1 and "no key given" in err
    keys = key_file(ativo_home)
    assert [k["name"] for k in read_keys(keys)] == ["alice"] and keys.stat().st_mode & 0o777 == 0o600
    [created] = [r for r in audit_rows(load_settings()) if r["kind"] == "cli_api_key_create"]
    assert created["actor"].startswith("owner:") and created["payload"] == {"name": "alice", "role": ["op"]}


def test_the_op_key_in_the_environment_reaches_a_real_ativo_process(ativo_home, monkeypatch):
    from ativo.serve.keys import create_key

    key = create_key(key_file(ativo_home), "ops", ("op",))
    env = {k: v for k, v in os.environ.items() if k != "ATIVO_OP_KEY"}
    cmd = [sys.executable, "-m", "ativo.cli", "budget", "set", "risk", "--limit-usd", "5"]
    refused = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode == 1 and "needs an Ativo key with the op role" in refused.stderr
    done = subprocess.run(cmd, capture_output=True, text=True, env={**env, "ATIVO_OP_KEY": key}, timeout=120)
    assert done.returncode == 0 and "spent 0.00 of 5.00 USD" in done.stdout, done.stderr
    assert Path(key_file(ativo_home)).exists()
