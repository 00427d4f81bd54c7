"""The watchdog restarts a dead or hung component and pages on-call (real processes; the hang via a real health
endpoint)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
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
