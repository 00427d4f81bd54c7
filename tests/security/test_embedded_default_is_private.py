"""The embedded default (`make run`) on a shared machine: every server listens on 127.0.0.1 only, and what it keeps
under var/ (passwords, keys, the JWT secret, the platform DB, landed batches, the prediction log) is its owner's.

Unit-level: the supervisor starts the platform here with its processes replaced by a recorder (no server starts),
and the file modes are those its own functions and a real child process leave.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import sys
from pathlib import Path

import pytest

ANY_ADDRESS = ("0.0.0.0", "::", "[::]")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


class Recorder:
    """Stands in for subprocess.Popen in the supervisor: keeps each command, its environment and its umask."""

    calls: list[dict] = []

    def __init__(self, cmd, env=None, umask=-1, **kwargs):
        self.pid = 2**22 + len(Recorder.calls)  # above pid_max (at most 2**22 on Linux): never a live process
        Recorder.calls.append({"cmd": [str(a) for a in cmd], "env": env or {}, "umask": umask})


@pytest.fixture
def started(settings, monkeypatch):
    """The embedded platform as `make run DASK=1` starts it (SQLite metadata DB), with no process really started."""
    from ativo_dev import supervisor

    monkeypatch.setenv("ATIVO_EMBEDDED_DB", "sqlite")
    Recorder.calls = []
    monkeypatch.setattr(supervisor.subprocess, "Popen", Recorder)
    monkeypatch.setattr(supervisor, "airflow_running", lambda s: True)  # no migration: it would run Airflow's CLI
    monkeypatch.setattr(supervisor, "_wait_http", lambda *a, **k: None)
    monkeypatch.setattr(supervisor, "wait_until", lambda *a, **k: None)
    supervisor.start_services(settings, spec_names=["adult_income"], dask=True)
    by_pid = {2**22 + i: call for i, call in enumerate(Recorder.calls)}
    return {f.stem: by_pid[int(f.read_text())] for f in supervisor.run_dir(settings).glob("*.pid")}


def test_every_embedded_server_listens_on_loopback_only(started, settings, monkeypatch):
    from ativo_dev import pg, supervisor

    def flag(cmd: list[str], name: str) -> str | None:
        return cmd[cmd.index(name) + 1] if name in cmd else None

    # how each service of the platform binds; one that listens says 127.0.0.1 itself
    bound = {
        "airflow-api-server": lambda c: c["env"].get("AIRFLOW__API__HOST") == "127.0.0.1",
        # Airflow binds their log servers to every interface: they serve none (the API server reads the files)
        "airflow-scheduler": lambda c: "--skip-serve-logs" in c["cmd"],
        "airflow-triggerer": lambda c: "--skip-serve-logs" in c["cmd"],
        "airflow-dag-processor": lambda c: True,  # listens on nothing
        "watchdog": lambda c: True,  # listens on nothing
        "mlflow": lambda c: flag(c["cmd"], "--host") == "127.0.0.1",
        "serve": lambda c: flag(c["cmd"], "--host") == "127.0.0.1",
        "alert-sink": lambda c: c["cmd"][-1] == "127.0.0.1",  # python -m ativo.ops.alert_sink PORT FILE HOST
        # Dask's HTTP server (health, metrics) runs without the dashboard too: it gets a loopback address as well
        "dask-scheduler": lambda c: (
            flag(c["cmd"], "--host") == "127.0.0.1" and flag(c["cmd"], "--dashboard-address").startswith("127.0.0.1:")
        ),
        "dask-workers": lambda c: (
            flag(c["cmd"], "--host") == "127.0.0.1" and flag(c["cmd"], "--dashboard-address").startswith("127.0.0.1:")
        ),
    }
    assert set(started) == set(supervisor.SERVICES) - {"postgres"}, "a service started that this test does not know"
    for name, call in started.items():
        assert bound[name](call), f"{name} does not bind 127.0.0.1 only: {call['cmd']}"
        assert not set(ANY_ADDRESS) & set(call["cmd"]), f"{name} binds every interface: {call['cmd']}"
        assert call["env"].get("AIRFLOW__API__HOST") == "127.0.0.1", f"{name}: Airflow's API host is not loopback"

    # the variable is the one Airflow reads for the API server's address
    from airflow.configuration import conf

    monkeypatch.setenv("AIRFLOW__API__HOST", started["airflow-api-server"]["env"]["AIRFLOW__API__HOST"])
    assert conf.get("api", "host") == "127.0.0.1"
    # and the embedded PostgreSQL (started only with ATIVO_EMBEDDED_DB=postgres) listens on loopback alone
    monkeypatch.setattr(pg, "bin_dir", lambda settings=None: Path("/pg/bin"))
    command = pg.server_command(settings)
    assert [a for a in command if a.startswith("listen_addresses=")] == ["listen_addresses=127.0.0.1"]


def listening(pids: list[int]) -> set[tuple[str, int]]:
    """The TCP addresses the processes of these process groups listen on (their children included)."""
    import psutil

    out = set()
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) in pids:
                out |= {(c.laddr.ip, c.laddr.port) for c in proc.net_connections("inet") if c.status == "LISTEN"}
        except (psutil.Error, ProcessLookupError):
            continue
    return out


def test_the_alert_sink_and_the_dask_cluster_listen_on_loopback_only(settings, monkeypatch):
    """Real processes, the cheap ones: what they listen on, their HTTP servers included, is 127.0.0.1."""
    import socket

    from ativo.waiting import wait_until
    from ativo_dev import supervisor

    ports = {}
    for name in ("alert", "dask"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports[name] = s.getsockname()[1]
        monkeypatch.setenv(f"ATIVO_{name.upper()}_PORT", str(ports[name]))
    from ativo.config import load_settings

    settings = load_settings()
    env = supervisor.platform_env(settings)
    try:
        supervisor._start(
            settings,
            "alert-sink",
            [
                sys.executable,
                "-m",
                "ativo.ops.alert_sink",
                str(ports["alert"]),
                str(settings.home / "logs" / "alerts.jsonl"),
                supervisor.LOOPBACK,
            ],
            env,
            quiet=True,
        )
        supervisor.start_dask(settings, env, workers=1, memory_limit="512MiB")
        pids = [p for p in (supervisor.pid_of(settings, n) for n in ("alert-sink", *supervisor.DASK)) if p]
        assert len(pids) == 3
        # the scheduler (and its HTTP server), the alert sink, a nanny, its worker (and its HTTP server)
        wait_until(lambda: len(listening(pids)) >= 6, 60, 0.5, "the worker to listen")
        found = listening(pids)
        assert {ip for ip, _ in found} == {"127.0.0.1"}, sorted(found)
        assert ("127.0.0.1", ports["alert"]) in found and ("127.0.0.1", ports["dask"]) in found
    finally:
        supervisor.stop_services(settings)


def test_every_service_creates_its_files_private(started):
    from ativo_dev import supervisor

    assert {name: call["umask"] for name, call in started.items()} == dict.fromkeys(started, supervisor.PRIVATE_UMASK)


def test_a_service_process_writes_files_0600_and_directories_0700(settings):
    """A real child, as the supervisor starts one: the platform DB (with its WAL), a prediction-log partition."""
    from ativo_dev import supervisor

    store = settings.home / "store" / "predictions" / "adult_income"
    code = (
        f"import pathlib, sqlite3; db = sqlite3.connect({str(settings.home / 'ativo.db')!r}); "
        "db.execute('PRAGMA journal_mode=WAL'); db.execute('CREATE TABLE t (x)'); "
        f"db.commit(); p = pathlib.Path({str(store / 'day=2026-12-07')!r}); p.mkdir(parents=True); "
        "(p / 'part-0.parquet').write_bytes(b'rows'); import time; time.sleep(0.5); db.close()"
    )
    os.umask(old := os.umask(0o022))  # this process's umask stays whatever it was
    pid = supervisor._start(
        settings, "probe", [sys.executable, "-c", code], supervisor.platform_env(settings), quiet=True
    )
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, (settings.home / "logs" / "probe.log").read_text()
    assert mode(settings.home / "ativo.db") == 0o600
    assert mode(store / "day=2026-12-07" / "part-0.parquet") == 0o600
    assert mode(store / "day=2026-12-07") == mode(store) == 0o700
    assert os.umask(old) == old


def test_the_secret_files_of_the_platform_are_0600(settings):
    from ativo.hashing import platform_pepper
    from ativo.model.registry import key_file, signing_key
    from ativo_dev import pg, supervisor

    supervisor.protect_state(settings)
    supervisor.admin_password(settings)
    supervisor.demo_key(settings)
    supervisor.operator_key(settings)
    platform_pepper(settings)
    signing_key(settings)
    pg.password(settings)
    with supervisor.private_files():  # what start_services runs in its own process (landing the first batches)
        sqlite3.connect(settings.home / "ativo.db").close()
    home = settings.home
    files = [
        home / "airflow" / "passwords.json",
        home / "ativo.env",
        home / "serve" / "api_keys.json",
        home / "serve" / "demo_key",
        home / "serve" / "operator_key",
        home / "serve" / "subject_pepper",
        key_file(settings),
        home / "pg" / "password",
        home / "ativo.db",
    ]
    assert {str(f.relative_to(home)): mode(f) for f in files} == {str(f.relative_to(home)): 0o600 for f in files}
    for name in ("airflow", "serve", "logs"):
        assert mode(home / name) == 0o700, name
    # the embedded PostgreSQL's directory: private, but passable when the server runs as another user (under root)
    assert mode(home / "pg") == (0o711 if os.geteuid() == 0 else 0o700)


def test_state_an_earlier_version_left_readable_becomes_private(settings, tmp_path):
    from ativo_dev import supervisor

    home = settings.home
    for name in supervisor.PRIVATE_DIRS:
        (home / name).mkdir(parents=True, exist_ok=True)
        (home / name).chmod(0o755)
    for name in supervisor.PRIVATE_FILES:
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_text("secret")
        (home / name).chmod(0o644)
    outside = tmp_path / "elsewhere"
    outside.mkdir(mode=0o755)
    outside.chmod(0o755)
    (home / "cache").rmdir()
    (home / "cache").symlink_to(outside)  # a link is not followed
    supervisor.protect_state(settings)
    assert {n: mode(home / n) for n in supervisor.PRIVATE_FILES} == dict.fromkeys(supervisor.PRIVATE_FILES, 0o600)
    dirs = [n for n in supervisor.PRIVATE_DIRS if n != "cache"]
    assert {n: mode(home / n) for n in dirs} == dict.fromkeys(dirs, 0o700)
    assert mode(outside) == 0o755
    assert mode(home / "pg") == (0o711 if os.geteuid() == 0 else 0o700)
