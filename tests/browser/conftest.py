"""The browser tier's platform: the embedded default as `make run` starts it, with its metrics pipeline.

One platform per session (it takes minutes): Airflow (with StatsD on), MLflow, the inference API and the alert sink,
the StatsD bridge reading ``deploy/statsd/mapping.yml``, and a real Prometheus on loopback that scrapes the inference
API, the api-server's ``/ativo/metrics`` and the bridge, with the alert rules of ``deploy/prometheus/rules``. The
lifecycle runs for one spec over a few days (one malformed day is quarantined), a champion is deployed, traffic is
replayed with labels, and one monitoring window is judged, so every page and dashboard has something to show.

Chromium is Debian's (``ativo_dev/system-packages.sh`` installs it); without it the tier is skipped, saying so,
unless ``ATIVO_REQUIRE_TOOLS=1`` (CI), which fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SPEC = "adult_income"
DAYS = 4
QUARANTINE_DAY = 1
CHROMIUM = os.environ.get("ATIVO_CHROMIUM", "/usr/bin/chromium")
REQUIRE = os.environ.get("ATIVO_REQUIRE_TOOLS") == "1"
SCREENSHOTS = ROOT / "var" / "screenshots"


def missing(what: str) -> None:
    if REQUIRE:
        pytest.fail(f"{what} (ATIVO_REQUIRE_TOOLS=1, so this fails instead of skipping)")
    pytest.skip(what)


@dataclass
class LivePlatform:
    settings: Any  # the platform's settings, as its processes see them
    airflow: str
    serve: str
    prometheus: str
    passwords: dict[str, str]
    api: Any  # ativo.orchestrator.AirflowAPI as admin
    sample: dict[str, Any] | None  # the lifecycle's sample decision (request, answer, lineage)

    def prom(self, query: str) -> dict[str, Any]:
        """One instant query against the platform's Prometheus."""
        from urllib.parse import quote

        from ativo.http import request

        resp = request("GET", f"{self.prometheus}/api/v1/query?query={quote(query)}", timeout=30)
        return dict(resp.json())

    def prom_api(self, path: str) -> dict[str, Any]:
        """A GET of Prometheus's HTTP API (``/api/v1/rules``, ``/api/v1/alerts``)."""
        from ativo.http import request

        return dict(request("GET", f"{self.prometheus}{path}", timeout=30).json())


def _quick_spec(dest: Path) -> None:
    """The shipped spec with a 2-trial search, cheaper gates and a short canary (the platform is under test)."""
    dest.mkdir(parents=True)
    doc = yaml.safe_load((ROOT / "include" / "specs" / f"{SPEC}.yaml").read_text())
    doc["model"]["search"]["n_trials"] = 2
    gates = doc.setdefault("gates", {})
    gates.setdefault("robustness", {}).update(attack_samples=20, max_counterfactual_flip_rate=0.2)
    gates.setdefault("privacy", {}).update(samples=1000)
    doc.setdefault("deploy", {}).update(canary_window_minutes=1, min_canary_requests=50, min_labels=50)
    (dest / f"{SPEC}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def _start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "wb") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _prometheus_config(path: Path, *, serve: str, airflow: str, bridge: str) -> None:
    rules = sorted(str(p) for p in (ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
    doc = {
        "global": {
            "scrape_interval": "1s",
            "evaluation_interval": "1s",
            "external_labels": {"runbook_base": f"{airflow}/ativo/runbooks"},
        },
        "rule_files": rules,
        "scrape_configs": [
            {"job_name": "ativo-serve", "static_configs": [{"targets": [serve.removeprefix("http://")]}]},
            {
                "job_name": "ativo-platform",
                "metrics_path": "/ativo/metrics",
                "static_configs": [{"targets": [airflow.removeprefix("http://")]}],
            },
            {"job_name": "airflow-statsd", "static_configs": [{"targets": [bridge]}]},
        ],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture(scope="session")
def live_platform(reference_dir) -> Any:
    """The running platform (see the module docstring); stopped, with everything it started, at the end."""
    for tool in ("prometheus", "promtool"):
        if shutil.which(tool) is None:
            missing(f"{tool} is not installed: run ativo_dev/system-packages.sh (Debian's prometheus package)")
    from ativo.naming import train_dag_id
    from ativo.orchestrator import AirflowAPI
    from ativo.waiting import wait_until
    from ativo_dev import lifecycle, supervisor
    from tests.support.harness import free_port, isolated_platform

    home = Path(tempfile.mkdtemp(prefix="ativo-browser-"))
    home.chmod(0o711)  # the embedded PostgreSQL runs as an unprivileged user under root
    _quick_spec(home / "specs")
    udp, bridge_port, prom_port = free_port(), free_port(), free_port()
    env_keys = {
        "ATIVO_SPECS_DIR": str(home / "specs"),
        "ATIVO_REFERENCE_DIR": str(reference_dir),
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(udp),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
    }
    saved = {k: os.environ.get(k) for k in env_keys}
    os.environ.update(env_keys)
    procs: list[subprocess.Popen] = []
    logs = home / "logs"
    logs.mkdir()
    try:
        procs.append(
            _start(
                [
                    sys.executable,
                    "-m",
                    "ativo_dev.statsd_bridge",
                    "--mapping",
                    str(ROOT / "deploy" / "statsd" / "mapping.yml"),
                    "--udp",
                    f"127.0.0.1:{udp}",
                    "--http",
                    f"127.0.0.1:{bridge_port}",
                ],
                logs / "statsd-bridge.log",
            )
        )
        with isolated_platform(home / "home", database=supervisor.embedded_db()) as settings:
            airflow, serve = supervisor.url("airflow", settings), supervisor.url("serve", settings)
            prom = f"http://127.0.0.1:{prom_port}"
            _prometheus_config(home / "prometheus.yml", serve=serve, airflow=airflow, bridge=f"127.0.0.1:{bridge_port}")
            procs.append(
                _start(
                    [
                        "prometheus",
                        f"--config.file={home / 'prometheus.yml'}",
                        f"--storage.tsdb.path={home / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{prom_port}",
                        "--storage.tsdb.retention.time=1h",
                    ],
                    logs / "prometheus.log",
                )
            )

            def prepare() -> None:
                lifecycle.prepare_lifecycle(settings, [SPEC], DAYS, QUARANTINE_DAY)

            api = supervisor.start_services(settings, before_airflow=prepare, spec_names=[SPEC])
            live_env = supervisor.platform_env(settings)
            operator_env = {**live_env, "ATIVO_OP_KEY": supervisor.operator_key(settings)}  # for the CLI's changes
            # the spec's team gets a budget, as a team lead would set it (the page and dashboards show it used)
            subprocess.run(
                [sys.executable, "-m", "ativo.cli", "budget", "set", "risk", "--limit-usd", "25"],
                env=operator_env,
                check=True,
                capture_output=True,
                timeout=120,
            )
            lifecycle.unpause_all(api, [SPEC])
            lifecycle.watch_lifecycle(settings, api, SPEC, DAYS)
            sample = lifecycle.serve_sample(settings, SPEC)

            # one judged monitoring window, so the monitor's gauges and the page's monitor section have a value; the
            # servers flush the prediction log every few seconds, so a run right after the replay may find too few rows
            def judged() -> bool:
                out = subprocess.run(
                    [sys.executable, "-m", "ativo.cli", "monitor", "run", "--spec", SPEC, "--hours", "2"],
                    env=operator_env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                return out.returncode == 0 and "decision: not_judged" not in out.stdout

            wait_until(judged, 180, 5, "a judged monitoring window of the replayed traffic")
            wait_until(
                lambda: not any(r["state"] in ("queued", "running") for r in api.runs(train_dag_id(SPEC))),
                600,
                5,
                "the training runs to finish",
            )
            from ativo.config import load_settings

            passwords = json.loads((settings.airflow_home / "passwords.json").read_text())
            yield LivePlatform(
                settings=load_settings(live_env),
                airflow=airflow,
                serve=serve,
                prometheus=prom,
                passwords=passwords,
                api=AirflowAPI(airflow, passwords["admin"]),
                sample=sample,
            )
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        keep = os.environ.get("ATIVO_KEEP_BROWSER_HOME")
        if not keep:
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def browser() -> Any:
    """Debian's headless chromium under Playwright (no browser download)."""
    if not Path(CHROMIUM).exists():
        missing(f"{CHROMIUM} is not installed: run ativo_dev/system-packages.sh (Debian's chromium package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
            ],
        )
        yield chromium
        chromium.close()


def login(browser: Any, live: LivePlatform, user: str, width: int = 1440, height: int = 1000) -> Any:
    """A new page signed in to Airflow's UI as ``user`` (through the real login form), ``width`` pixels wide."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{live.airflow}/")
    page.wait_for_url("**/login**")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(live.passwords[user])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda u: "login" not in u)
    return page


def shot(page: Any, name: str, full_page: bool = True) -> Path:
    """A screenshot under var/screenshots/ for a reviewer to look at: the whole page, or what the window shows.

    The README's pictures are window-sized ones (``full_page=False``), copied into docs/images/.
    """
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    time.sleep(0.5)  # let the last render settle
    page.screenshot(path=str(path), full_page=full_page)
    return path
