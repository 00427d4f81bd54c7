"""The watchdog restarts a dead or hung component and pages on-call (real processes; the hang via a real health
endpoint)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@pytest.fixture
def platform(tmp_path, monkeypatch):
    from ativo.config import load_settings
    from ativo_dev import supervisor
    from tests.support.harness import free_port

    monkeypatch.setenv("ATIVO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ATIVO_AIRFLOW_PORT", str(free_port()))
    settings = load_settings()
    yield settings
    supervisor.stop_services(settings)


def start_sleeper(settings, name: str) -> int:
    from ativo_dev import supervisor

    return supervisor._start(
        settings,
        name,
        [sys.executable, "-c", "import time; time.sleep(600)"],
        supervisor.platform_env(settings),
        quiet=True,
    )


def test_a_killed_component_is_restarted_and_paged_and_a_crash_loop_backs_off(platform):
    from ativo_dev import supervisor
    from ativo_dev.watchdog import Watchdog, restarts

    pages: list[dict] = []
    now = [1000.0]
    dog = Watchdog(platform, clock=lambda: now[0], page=lambda p: pages.append(p) or True)
    pid = start_sleeper(platform, "airflow-scheduler")
    assert dog.check_once() == []  # alive: nothing to do
    os.killpg(pid, signal.SIGKILL)
    supervisor.wait_until(lambda: supervisor._group_gone(pid), 10, 0.05, "the sleeper to die")
    [rec] = dog.check_once()
    new = supervisor.pid_of(platform, "airflow-scheduler")
    assert rec["component"] == "airflow-scheduler" and rec["old_pid"] == pid and rec["new_pid"] == new != pid
    assert rec["paged"] is True and pages[0]["ativo"]["kind"] == "component_restarted"
    assert "died (pid" in pages[0]["text"] and f"pid {new}" in pages[0]["text"]
    assert restarts(platform)[-1]["new_pid"] == new  # make status shows it

    # it keeps dying: restarted again at once, then only after a growing delay (and paged each time)
    for _ in range(3):
        alive = supervisor.pid_of(platform, "airflow-scheduler")
        if alive:
            os.killpg(alive, signal.SIGKILL)
            supervisor.wait_until(lambda p=alive: supervisor._group_gone(p), 10, 0.05, "the sleeper to die")
        now[0] += 6  # restarts 5 s apart at first, then 10 s, 20 s, … (at most 5 min)
        dog.check_once()
    assert len(pages) == 3 and supervisor.pid_of(platform, "airflow-scheduler") is None  # the third: held back
    now[0] += 400
    assert dog.check_once() and supervisor.pid_of(platform, "airflow-scheduler") and len(pages) == 4


def test_a_stopped_platform_is_not_restarted(platform):
    from ativo_dev import supervisor
    from ativo_dev.watchdog import Watchdog

    start_sleeper(platform, "mlflow")
    supervisor.stop_services(platform)
    assert Watchdog(platform, page=lambda p: True).check_once() == []
    assert supervisor.pid_of(platform, "mlflow") is None


def test_a_hung_scheduler_is_restarted(platform):
    """Its process lives, but Airflow's health endpoint has called it unhealthy for longer than stale_s."""
    from ativo_dev import supervisor
    from ativo_dev.watchdog import Watchdog

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(
                {
                    "metadatabase": {"status": "healthy"},
                    "scheduler": {"status": "unhealthy", "latest_scheduler_heartbeat": "long ago"},
                }
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", platform.ports.airflow), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        now = [0.0]
        pages: list[dict] = []
        dog = Watchdog(platform, stale_s=60, clock=lambda: now[0], page=lambda p: pages.append(p) or True)
        pid = start_sleeper(platform, "airflow-scheduler")
        assert dog.check_once() == []  # unhealthy since now: not yet hung
        now[0] = 61
        [rec] = dog.check_once()
        assert rec["old_pid"] == pid and rec["new_pid"] != pid and "hung (unhealthy for 61 s" in rec["reason"]
        assert supervisor._group_gone(pid)
    finally:
        server.shutdown()


def test_a_killed_postgresql_its_parent_has_not_reaped_is_restarted(request):
    """The server is this process's child and stays a zombie while the watchdog, another process, restarts it:
    PostgreSQL would take the zombie's PID in its lock file for a live server and refuse every restart."""
    import shutil
    import tempfile
    from pathlib import Path

    from ativo_dev import pg, supervisor
    from ativo_dev.watchdog import restarts
    from tests.support.harness import isolated_platform

    home = Path(tempfile.mkdtemp(prefix="ativo-watchdog-"))
    home.chmod(0o711)  # the embedded PostgreSQL runs as an unprivileged user under root
    request.addfinalizer(lambda: shutil.rmtree(home, ignore_errors=True))
    with isolated_platform(home / "home", database="postgres") as settings:
        supervisor.start_postgres(settings)
        env = supervisor.platform_env(settings)
        path = os.pathsep.join(p for p in (str(supervisor.REPOSITORY), env.get("PYTHONPATH", "")) if p)
        watch = [sys.executable, "-m", "ativo_dev", "watch", "--every", "0.5"]
        supervisor._start(settings, "watchdog", watch, env, extra_env={"PYTHONPATH": path}, quiet=True)
        supervisor.wait_until(
            lambda: "watching" in (settings.home / "logs" / "watchdog.log").read_text(), 60, 0.1, "the watchdog"
        )
        time.sleep(1.5)  # a round or more: the watchdog knows the server's PID
        old = supervisor.pid_of(settings, "postgres")
        os.killpg(old, signal.SIGKILL)  # this process never reaps it: a zombie, as under a test or the launcher
        supervisor.wait_until(lambda: supervisor._zombie(old), 10, 0.05, "the killed server to be a zombie")

        def restarted() -> int | None:  # read without pid_of, which would reap the zombie (it is our child)
            try:
                new = int((settings.home / "run" / "postgres.pid").read_text())
            except (OSError, ValueError):
                return None
            return new if new != old and pg.ready(settings) else None

        new = supervisor.wait_until(restarted, 60, 0.2, "the watchdog to restart PostgreSQL")
        [rec] = supervisor.wait_until(lambda: restarts(settings), 30, 0.2, "the restart's record")  # after its page
        assert (rec["component"], rec["old_pid"], rec["new_pid"]) == ("postgres", old, new)
