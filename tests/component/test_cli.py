"""The `ativo` command line, run as a user would."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from tests.metrics_text import samples


def ativo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ativo.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def op_key(ativo_home, monkeypatch) -> str:
    """An op key in the platform's key file, in ATIVO_OP_KEY as an operator's shell has it."""
    from ativo.serve.keys import create_key

    key = create_key(ativo_home / "serve" / "api_keys.json", "ops", ("op",))
    monkeypatch.setenv("ATIVO_OP_KEY", key)
    return key


def test_budget_set_then_status(ativo_home, op_key):
    out = ativo("budget", "set", "risk", "--limit-usd", "40", "--erasure-reserve-usd", "5")
    assert out.returncode == 0, out.stderr
    assert "risk" in out.stdout and "spent 0.00 of 40.00 USD" in out.stdout and "erasure reserve 5.00" in out.stdout
    [row] = json.loads(ativo("budget", "status", "--json").stdout)
    assert row["team"] == "risk" and row["limit_usd"] == 40 and row["available_usd"] == 40


def test_bad_budget_is_refused_with_the_reason(ativo_home, op_key):
    out = ativo("budget", "set", "risk", "--limit-usd", "1", "--erasure-reserve-usd", "2")
    assert out.returncode == 2 and "above limit_usd" in out.stderr
    assert json.loads(ativo("budget", "status", "--json").stdout) == []  # nothing was stored


def test_leases_lists_holders(ativo_home, monkeypatch):
    import datetime as dt

    from ativo.compute.leases import LeaseManager
    from ativo.config import load_settings
    from ativo.store.db import get_engine

    LeaseManager(get_engine(load_settings().db_url), devices=2, host="gpu-node-1", ttl=dt.timedelta(minutes=5)).acquire(
        "adult_income__train.trial[3]"
    )
    out = ativo("leases")
    assert out.returncode == 0, out.stderr
    assert "gpu-node-1" in out.stdout and "gpu 0" in out.stdout and "adult_income__train.trial[3]" in out.stdout


def test_simulate_rejects_unknown_malformed_kind(ativo_home):
    out = ativo("simulate", "--start", "2026-01-01", "--days", "2", "--malformed", "2026-01-01:gibberish")
    assert out.returncode == 2 and "kind must be one of" in out.stderr


def test_metrics_show_the_same_figures_as_budget_status(ativo_home, monkeypatch):
    import datetime as dt

    from ativo.compute.budget import Ledger
    from ativo.compute.leases import LeaseManager
    from ativo.config import load_settings
    from ativo.store.db import get_engine

    settings = load_settings()
    engine = get_engine(settings.db_url)
    ledger = Ledger(engine, {"cpu": 3.6})
    ledger.set_budget("risk", limit_usd=40)
    ledger.settle(
        ledger.reserve(
            team="risk", spec="s", task_key="t", estimate_usd=1, resource="cpu", timeout=dt.timedelta(hours=1)
        ),
        seconds=1000,
    )  # 1.00 USD
    LeaseManager(engine, devices=1, host="gpu-node-1").acquire("trial-1")
    monkeypatch.setenv("ATIVO_GPU_COUNT", "3")  # this host's GPUs, as the command reads them
    out = ativo("metrics")
    assert out.returncode == 0, out.stderr
    team = {"team": "risk", "period": ledger.status("risk")["period"]}
    budget_and_leases = {
        k: v
        for k, v in samples(out.stdout).items()
        if k[0].startswith(("ativo_budget_", "ativo_gpu_")) and k[0] != "ativo_budget_alerts_sent"
    }
    assert budget_and_leases == pytest.approx(
        {
            ("ativo_budget_limit_usd", frozenset({"team": "risk"}.items())): 40.0,
            ("ativo_budget_spent_usd", frozenset(team.items())): 1.0,
            ("ativo_budget_reserved_usd", frozenset(team.items())): 0.0,
            ("ativo_budget_used_ratio", frozenset(team.items())): 0.025,
            ("ativo_gpu_devices", frozenset({"host": socket.gethostname()}.items())): 3.0,
            ("ativo_gpu_leases", frozenset({"host": "gpu-node-1", "state": "active"}.items())): 1.0,
        },
        rel=1e-9,
        abs=1e-12,
    )
    spend = frozenset({**team, "spec": "s", "resource": "cpu"}.items())
    assert samples(out.stdout)[("ativo_spend_usd", spend)] == pytest.approx(1.0)  # the same figure, by spec


def test_version_says_which_release_runs():
    from importlib.metadata import version

    out = ativo("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"ativo {version('ativo')}"


def test_an_unexpected_failure_is_one_line_naming_it_and_the_traceback_comes_on_demand(monkeypatch):
    monkeypatch.setenv("ATIVO_DB_URL", "postgresql+psycopg2://nobody@127.0.0.1:1/none")  # nothing listens there
    out = ativo("budget", "status")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("error: OperationalError: ") and "Connection refused" in line
    assert "ATIVO_DEBUG=1 shows the traceback" in line
    monkeypatch.setenv("ATIVO_DEBUG", "1")
    debug = ativo("budget", "status")
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
