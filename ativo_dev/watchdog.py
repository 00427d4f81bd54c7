"""The watchdog of the embedded platform: a dead component is restarted and on-call is paged, within seconds.

`make run` starts it beside the services (``python -m ativo_dev watch``). Every ``every`` seconds it checks each
service `make run` started (PostgreSQL, MLflow, the inference API, Airflow's API server, scheduler, dag processor and
triggerer, the alert sink): a process that is gone is started again the way it was started, and a page goes to the
on-call webhook (the ``ativo_oncall`` connection's) with the component, the old PID, the new one and the tail of its
log. Airflow's own health endpoint is read as well: a scheduler, dag processor or triggerer whose heartbeat has been
unhealthy for ``stale_s`` while its process lives is hung, and is restarted the same way.

A component that keeps dying is restarted with a growing delay (at most every ``max_backoff_s``) and paged each
time, so a crash loop is visible and does not burn the machine. Every restart is appended to
``var/run/restarts.jsonl``; `make status` shows them.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ativo import http
from ativo.config import Settings
from ativo_dev import supervisor

log = logging.getLogger("ativo.watchdog")

HEALTH_COMPONENTS = {
    "scheduler": "airflow-scheduler",
    "dag_processor": "airflow-dag-processor",
    "triggerer": "airflow-triggerer",
}


def restart_payload(
    component: str, reason: str, old_pid: int | None, new_pid: int | None, log_tail: str, restarts: int
) -> dict[str, Any]:
    """A Slack-compatible page: a platform component died (or hung) and was restarted."""
    fields = [
        {"title": "Component", "value": component, "short": True},
        {"title": "Restarts (last hour)", "value": str(restarts), "short": True},
        {"title": "Why", "value": reason[:500], "short": False},
        {"title": "PID", "value": f"{old_pid} → {new_pid}", "short": True},
        {"title": "Log (tail)", "value": log_tail[-1200:], "short": False},
    ]
    ok = new_pid is not None
    return {
        "text": f":{'warning' if ok else 'red_circle'}: Ativo {component} {reason}; "
        + (f"restarted (pid {new_pid})" if ok else "could not be restarted"),
        "attachments": [
            {"color": "warning" if ok else "danger", "fallback": f"{component} restarted", "fields": fields}
        ],
        "ativo": {
            "kind": "component_restarted",
            "component": component,
            "reason": reason[:500],
            "old_pid": old_pid,
            "new_pid": new_pid,
            "restarts_last_hour": restarts,
        },
    }


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - limit))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


class Watchdog:
    """Checks and restarts; :meth:`check_once` is one round (a test drives it with its own clock)."""

    def __init__(
        self,
        settings: Settings,
        *,
        stale_s: float = 90.0,
        max_backoff_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        page: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        self.settings = settings
        self.stale_s = stale_s
        self.max_backoff_s = max_backoff_s
        self.clock = clock
        self.page = page or self._post
        self.pids: dict[str, int] = {}
        self.history: dict[str, list[float]] = {}
        self.next_try: dict[str, float] = {}
        self.unhealthy_since: dict[str, float] = {}

    def _post(self, payload: dict[str, Any]) -> bool:
        from ativo.paging import oncall_url_from_env, post_webhook, with_runbook

        payload = with_runbook(payload, self.settings.link_url)  # component-restarted
        url = oncall_url_from_env(supervisor.platform_env(self.settings))
        if url is None:
            log.error("PAGE (no on-call webhook configured): %s", payload["text"])
            return False
        return post_webhook(url, payload)

    def watched(self) -> list[str]:
        """The services `make run` started (those with a command file), the watchdog aside."""
        run = supervisor.run_dir(self.settings)
        return [n for n in supervisor.SERVICES if n != "watchdog" and (run / f"{n}.cmd.json").exists()]

    def check_once(self) -> list[dict[str, Any]]:
        """One round: restart what is dead or hung; returns one record per restart."""
        out = []
        hung = self._hung()
        for name in self.watched():
            pid = supervisor.pid_of(self.settings, name)
            if pid is not None and name not in hung:
                self.pids[name] = pid
                continue
            if pid is not None:  # hung: end it, then start it again below
                self._end(name, pid)
                reason = hung[name]
            else:
                reason = "died" + (f" (pid {self.pids[name]})" if name in self.pids else "")
            rec = self._restart(name, reason, pid or self.pids.get(name))
            if rec:
                out.append(rec)
        return out

    def _end(self, name: str, pid: int) -> None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        supervisor.wait_until(lambda: supervisor.pid_of(self.settings, name) is None, 30, 0.2, f"{name} to end")

    def _restart(self, name: str, reason: str, old_pid: int | None) -> dict[str, Any] | None:
        now = self.clock()
        if now < self.next_try.get(name, 0.0):
            return None
        recent = [t for t in self.history.get(name, []) if now - t < 3600] + [now]
        self.history[name] = recent
        quick = [t for t in recent if now - t < 600]
        self.next_try[name] = now + min(self.max_backoff_s, 5.0 * 2 ** max(0, len(quick) - 2))
        try:
            new_pid = supervisor.restart(self.settings, name)
        except Exception as err:  # report it, keep watching the others
            log.exception("restarting %s failed", name)
            new_pid, reason = None, f"{reason}; restart failed: {err}"
        if new_pid is not None:
            self.pids[name] = new_pid
        self.unhealthy_since.pop(name, None)
        rec = {
            "at": time.time(),
            "component": name,
            "reason": reason,
            "old_pid": old_pid,
            "new_pid": new_pid,
            "restarts_last_hour": len(recent),
        }
        log_tail = _tail(self.settings.home / "logs" / f"{name}.log")
        rec["paged"] = self.page(restart_payload(name, reason, old_pid, new_pid, log_tail, len(recent)))
        with open(supervisor.run_dir(self.settings) / "restarts.jsonl", "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        log.warning("%s %s: restarted as pid %s (paged: %s)", name, reason, new_pid, rec["paged"])
        return rec

    def _hung(self) -> dict[str, str]:
        """Components whose process lives but whose heartbeat Airflow has called unhealthy for ``stale_s``."""
        try:
            health = http.get_json(
                f"{supervisor.url('airflow', self.settings)}/api/v2/monitor/health",
                timeout=5,
                attempts=1,
                retry_statuses=(),
            )
        except (http.HttpError, ValueError):
            return {}  # the API server itself is checked by its PID
        now = self.clock()
        out = {}
        for key, name in HEALTH_COMPONENTS.items():
            state = (health.get(key) or {}).get("status")
            if state == "unhealthy" and supervisor.pid_of(self.settings, name) is not None:
                since = self.unhealthy_since.setdefault(name, now)
                if now - since >= self.stale_s:
                    beat = (health.get(key) or {}).get(f"latest_{key}_heartbeat") or "never"
                    out[name] = f"hung (unhealthy for {now - since:.0f} s; last heartbeat {beat})"
            else:
                self.unhealthy_since.pop(name, None)
        return out

    def run(self, every: float = 5.0) -> None:
        """Check every ``every`` seconds until SIGTERM."""
        stop = {"now": False}
        signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
        log.info("watching %s every %.0f s", ", ".join(self.watched()), every)
        while not stop["now"]:
            try:
                self.check_once()
            except Exception:  # a round that failed must not end the watch
                log.exception("watch round failed")
            deadline = time.monotonic() + every
            while not stop["now"] and time.monotonic() < deadline:
                time.sleep(0.2)


def restarts(settings: Settings, limit: int = 5) -> list[dict[str, Any]]:
    """The last restarts the watchdog made."""
    path = supervisor.run_dir(settings) / "restarts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()[-limit:] if line.strip()]
