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


def test_an_unexpected_failure_is_one_line_naming_it_and_the_log_file_with_its_traceback(ativo_home, monkeypatch):
    monkeypatch.setenv("ATIVO_DB_URL", "postgresql+psycopg2://nobody@127.0.0.1:1/none")  # nothing listens there
    out = ativo("budget", "status")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    [line] = out.stderr.strip().splitlines()
    log = ativo_home / "logs" / "cli.log"
    assert line.startswith("error: OperationalError: ") and "Connection refused" in line
    assert f"`ativo budget status`; its traceback is in {log}" in line and "ATIVO_DEBUG=1" in line
    assert "Traceback (most recent call last)" in log.read_text() and log.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("ATIVO_DEBUG", "1")
    debug = ativo("budget", "status")
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``ativo ARGV`` in this process: its exit status, stdout and stderr."""
    from ativo.cli import main

    try:
        code = main(list(argv))
    except SystemExit as stop:  # argparse: bad usage
        code = int(stop.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_any_command_failing_unexpectedly_says_one_line_and_logs_the_traceback(ativo_home, monkeypatch, capsys):
    def broken(self, all_hosts=False):
        raise RuntimeError("the lease table vanished\nsecond line")

    monkeypatch.setattr("ativo.compute.leases.LeaseManager.list", broken)
    monkeypatch.delenv("ATIVO_DEBUG", raising=False)
    for argv in (["leases"], ["leases", "--json"]):
        code, out, err = cli(capsys, *argv)
        assert code == 1 and out == ""
        [line] = err.splitlines()  # exactly one line, the message's first
        log = ativo_home / "logs" / "cli.log"
        assert line.startswith("error: RuntimeError: the lease table vanished (an unexpected failure of `ativo leases`")
        assert str(log) in line
    text = log.read_text()
    assert text.count("Traceback (most recent call last)") == 2 and "in broken" in text
    assert "RuntimeError: the lease table vanished" in text and "`ativo leases` failed" in text


def test_a_refusal_exits_1_and_bad_usage_2(ativo_home, capsys):
    code, _, err = cli(capsys, "erasure", "status", "R-nobody-filed")
    assert code == 1 and err == "error: no erasure request 'R-nobody-filed'\n"
    code, _, err = cli(capsys, "budget", "status", "--jsonn")
    assert code == 2 and "unrecognized arguments: --jsonn" in err
    code, _, err = cli(capsys, "summary", "--spec", "no_such_spec")
    assert code == 2 and err.startswith("error: no model spec named 'no_such_spec'") and len(err.splitlines()) == 1
    code, _, err = cli(capsys, "traffic", "--spec", "adult_income", "--url", "http://127.0.0.1:9")  # no API key
    assert code == 2 and "give an API key with roles predict and feedback" in err
    code, _, err = cli(capsys, "monitor", "run", "--spec", "adult_income", "--end", "yesterday", "--key", "k")
    assert code == 1 and "unknown key" in err  # the key is checked first: a refusal


def test_spec_check_json(tmp_path, capsys):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: broken\n")
    code, out, _ = cli(capsys, "spec", "check", "--json")
    doc = json.loads(out)
    assert code == 0 and "adult_income" in doc["valid"] and doc["invalid"] == {}
    code, out, _ = cli(capsys, "spec", "check", str(bad), "--json")
    doc = json.loads(out)
    assert code == 1 and doc["valid"] == [] and doc["invalid"][str(bad)]


def test_spec_check_says_no_server_answers(monkeypatch, capsys):
    monkeypatch.setenv("ATIVO_SERVE_URLS", "http://127.0.0.1:9")  # nothing listens there
    code, out, _ = cli(capsys, "spec", "check", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["serving"]["adult_income"].startswith("no inference API answers at http://127.0.0.1:9")
    code, out, _ = cli(capsys, "spec", "check", "--offline", "--json")
    assert json.loads(out)["serving"] == {}


def test_leases_json(ativo_home, capsys):
    import datetime as dt

    from ativo.compute.leases import LeaseManager
    from ativo.config import load_settings
    from ativo.store.db import get_engine

    LeaseManager(get_engine(load_settings().db_url), devices=2, host="gpu-node-1", ttl=dt.timedelta(minutes=5)).acquire(
        "adult_income__train.trial[3]"
    )
    code, out, _ = cli(capsys, "leases", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["host"] == socket.gethostname()
    [lease] = doc["leases"]
    assert lease["host"] == "gpu-node-1" and lease["holder"] == "adult_income__train.trial[3]"
    assert lease["expired"] is False and dt.datetime.fromisoformat(lease["expires_at"]) > dt.datetime.now(dt.UTC)


def test_api_key_list_json_names_roles_never_hashes(ativo_home, op_key, capsys):
    from ativo.serve.keys import create_key

    app = create_key(ativo_home / "serve" / "api_keys.json", "checkout", ("predict", "feedback"))
    code, out, _ = cli(capsys, "api-key", "list", "--json")
    keys = {k["name"]: k for k in json.loads(out)["keys"]}
    assert code == 0 and sorted(keys["checkout"]["roles"]) == ["feedback", "predict"] and keys["ops"]["roles"] == ["op"]
    assert set(keys["checkout"]) == {"name", "roles", "created"} and app not in out and op_key not in out


def test_metrics_json_has_the_figures_of_the_text(ativo_home, capsys):
    from ativo.compute.budget import Ledger
    from ativo.config import load_settings
    from ativo.store.db import get_engine

    Ledger(get_engine(load_settings().db_url), {"cpu": 3.6}).set_budget("risk", limit_usd=40)
    code, out, _ = cli(capsys, "metrics", "--json")
    families = {f["name"]: f for f in json.loads(out)["metrics"]}
    [limit] = families["ativo_budget_limit_usd"]["samples"]
    assert code == 0 and limit == {"name": "ativo_budget_limit_usd", "labels": {"team": "risk"}, "value": 40.0}
    assert families["ativo_budget_limit_usd"]["type"] == "gauge"


def _filed(request_id: str) -> None:
    from ativo.config import load_settings
    from ativo.erasure.requests import file_request
    from ativo.hashing import platform_pepper
    from ativo.store.db import get_engine

    settings = load_settings()
    file_request(
        get_engine(settings.db_url),
        spec="adult_income",
        subjects=["cust-0123456789"],
        pepper=platform_pepper(settings),
        actor="key:dpo",
        channel="cli",
        request_id=request_id,
    )


def test_erasure_status_and_receipt_json(ativo_home, capsys):
    from ativo import audit
    from ativo.config import load_settings
    from ativo.store.db import get_engine

    _filed("R-7")
    code, out, _ = cli(capsys, "erasure", "status", "R-7", "--json")
    status = json.loads(out)
    assert code == 0 and status["status"] == "received" and status["subjects"] == 1 and status["actor"] == "key:dpo"
    code, out, err = cli(capsys, "erasure", "receipt", "R-7", "--json")
    assert code == 1 and out == "" and "has no receipt yet (status received)" in err
    # a receipt in the log that the request does not name (it is not closed): shown, and said not to verify
    receipt = {"spec": "adult_income", "request_id": "R-7", "subjects": 1}
    receipt["sha256"] = sha = audit.content_hash(receipt)
    audit.append(
        get_engine(load_settings().db_url),
        "erasure_receipt",
        "erasure",
        "R-7",
        {"receipt_sha256": sha, "receipt": receipt},
    )
    code, out, _ = cli(capsys, "erasure", "receipt", "R-7", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["receipt"] == receipt and doc["request_id"] == "R-7"
    assert doc["verified"] is False and doc["problems"] == ["the request names another receipt"]


def test_simulate_and_traffic_json_and_their_progress(ativo_home, op_key, reference_dir, monkeypatch, capsys):
    import ativo.cli

    code, out, err = cli(capsys, "simulate", "--spec", "adult_income", "--start", "2026-01-01", "--days", "2", "--json")
    doc = json.loads(out)
    assert code == 0 and [b["day"] for b in doc["batches"]] == ["2026-01-01", "2026-01-02"]
    assert doc["records"] == sum(b["rows"] for b in doc["batches"]) > 0 and "\x1b" not in err  # no bar: not a TTY

    def replay(url, key, spec, reference_dir, rows, *, on_progress=None, **kw):
        for done in range(0, rows + 1, 100):
            on_progress(done, rows)
        return {"rows": rows, "routes": {"champion v1": rows}, "labels": rows, "drift": []}

    monkeypatch.setattr("ativo.serve.traffic.replay", replay)
    argv = ["traffic", "--spec", "adult_income", "--rows", "300", "--key", "k", "--url", "http://127.0.0.1:9"]
    code, out, err = cli(capsys, *argv, "--json")
    assert code == 0 and json.loads(out)["routes"] == {"champion v1": 300} and err == ""
    monkeypatch.setattr(ativo.cli, "_stderr_is_terminal", lambda: True)  # a person watching
    code, out, err = cli(capsys, *argv)
    assert code == 0 and out == "300 rows answered by {'champion v1': 300}; 300 labels sent to /feedback\n"
    assert "sending 300 rows" in err and "300/300" in err  # the bar, drawn on stderr only
    code, out, err = cli(capsys, *argv, "--json")
    assert json.loads(out)["rows"] == 300 and err == ""  # never under --json


def test_old_spellings_still_work_with_a_notice(ativo_home, op_key, capsys):
    code, out, err = cli(
        capsys, "erase", "--spec", "adult_income", "--subject", "cust-0123456789", "--request-id", "R-8"
    )
    assert code == 0 and json.loads(out.splitlines()[0])["request_id"] == "R-8"
    assert err.splitlines()[0] == (
        "warning: `ativo erase` is deprecated: use `ativo erasure request` (the same arguments; the old spelling "
        "still works)"
    )
    code, out, _ = cli(capsys, "monitor", "--spec", "adult_income", "--json", "status", "--limit", "3")  # verb last
    assert code == 0 and json.loads(out) == {"runs": [], "open_episodes": []}
