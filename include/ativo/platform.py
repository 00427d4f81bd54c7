"""The embedded platform behind `make run` / `make stop`: Airflow, MLflow, the inference API, an alert sink.

Processes are started in their own session with a PID file under ``var/run``; `down` ends exactly those.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ativo.config import PROJECT_ROOT, Settings

SERVICES = ("alert-sink", "mlflow", "serve", "airflow")


def port(service: str) -> int:
    """Loopback port of an embedded service (``ATIVO_<SERVICE>_PORT``: airflow, mlflow, serve, alert)."""
    defaults = {"airflow": "8080", "mlflow": "5000", "serve": "8000", "alert": "8099"}
    return int(os.environ.get(f"ATIVO_{service.upper()}_PORT", defaults[service]))


def url(service: str) -> str:
    """Loopback URL of an embedded service."""
    return f"http://127.0.0.1:{port(service)}"


def say(msg: str) -> None:
    """Progress line, flushed at once."""
    print(f"==> {msg}", flush=True)


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def run_dir(settings: Settings) -> Path:
    """Where PID files live."""
    return settings.home / "run"


def airflow_base_env(airflow_home: Path) -> dict[str, str]:
    """What every Airflow process of Ativo needs, the embedded platform's and the tests' alike.

    Its home, this repository's DAGs and plugins, no examples, and no library calling home.
    """
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "GX_ANALYTICS_ENABLED": "False",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }


def platform_env(settings: Settings) -> dict[str, str]:
    """Environment shared by every process of the embedded platform (Airflow reads the ATIVO_* settings too)."""
    home = settings.airflow_home
    env = dict(os.environ)
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
            **airflow_base_env(home),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "6",
            # Tasks fork from a forkserver that has already imported the heavy libraries (ativo.preload).
            "AIRFLOW__CORE__MP_START_METHOD": "forkserver",
            "AIRFLOW__CORE__MP_FORKSERVER_PRELOAD": "ativo.airflow.preload",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            # An idle scheduler loop sleeps this long; a freed pool slot waits for it (1 s by default).
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
            "AIRFLOW__API__PORT": str(port("airflow")),
            "AIRFLOW__API__BASE_URL": url("airflow"),
            "AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME": "7200",  # long training tasks (airflow#67939)
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_ATIVO_ONCALL": json.dumps(
                {"conn_type": "http", "extra": {"webhook_url": f"{url('alert')}/"}}
            ),
            "ATIVO_HOME": str(settings.home),
            "ATIVO_STORE_URI": settings.store_uri,
            "ATIVO_DB_URL": settings.db_url,
            "ATIVO_MLFLOW_TRACKING_URI": url("mlflow"),
            "ATIVO_REGISTRY_PATH": str(settings.registry_path),
            "ATIVO_DVC_REMOTE": settings.dvc_remote,
            "ATIVO_SPECS_DIR": str(settings.specs_dir),
            "ATIVO_REFERENCE_DIR": str(settings.reference_dir),
            "ATIVO_SERVE_URLS": url("serve"),
            # The server's job runner (eight huey consumers, ~2 GB) serves GenAI features Ativo does not use.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_TRACKING_URI": url("mlflow"),
        }
    )
    return env


def _pid(settings: Settings, name: str) -> int | None:
    path = run_dir(settings) / f"{name}.pid"
    if not path.exists():
        return None
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError, PermissionError):
        path.unlink(missing_ok=True)
        return None
    return pid


def _start(settings: Settings, name: str, cmd: list[str], env: dict[str, str]) -> int:
    existing = _pid(settings, name)
    if existing:
        say(f"{name} already running (pid {existing})")
        return existing
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    run_dir(settings).mkdir(parents=True, exist_ok=True)
    with open(logs / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (run_dir(settings) / f"{name}.pid").write_text(str(proc.pid))
    say(f"{name} started (pid {proc.pid}, log {logs / f'{name}.log'})")
    return proc.pid


def _wait_http(url: str, what: str, timeout: float, pid_check: tuple[Settings, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                if resp.status < 500:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if pid_check and _pid(*pid_check) is None:
            raise RuntimeError(
                f"{what} exited during start-up; see {pid_check[0].home / 'logs' / (pid_check[1] + '.log')}"
            )
        time.sleep(2)
    raise RuntimeError(f"{what} did not answer on {url} within {timeout:.0f}s")


def admin_password(settings: Settings) -> str:
    """The Airflow admin password (generated once, kept in var/airflow/passwords.json)."""
    path = settings.airflow_home / "passwords.json"
    if path.exists():
        return str(json.loads(path.read_text())["admin"])
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    path.write_text(json.dumps({"admin": password}))
    path.chmod(0o600)
    return password


class AirflowAPI:
    """The few REST v2 calls `make run` needs, with a bearer token from the simple auth manager."""

    def __init__(self, base: str, password: str) -> None:
        self.base = base
        self.password = password
        self.token: str | None = None

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, auth: bool = True) -> Any:
        headers = {"Content-Type": "application/json"}
        if auth:
            if self.token is None:
                self.token = self._call("POST", "/auth/token", {"username": "admin", "password": self.password}, False)[
                    "access_token"
                ]
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def get(self, path: str) -> Any:
        """GET an API path."""
        return self._call("GET", path)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST to an API path."""
        return self._call("POST", path, body)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        """PATCH an API path."""
        return self._call("PATCH", path, body)

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of a DAG."""
        return list(self.get(f"/api/v2/dags/{dag_id}/dagRuns?limit=200&order_by=logical_date")["dag_runs"])


def airflow_cli(settings: Settings, *args: str) -> str:
    """Run an `airflow` CLI command against the embedded platform; raises with its output on failure."""
    proc = subprocess.run([_bin("airflow"), *args], env=platform_env(settings), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"airflow {' '.join(args)} failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    return proc.stdout


def start_mlflow(settings: Settings, wait: bool = True) -> str:
    """Start the MLflow tracking server (SQLite backend, artifacts in the object store); returns its URL."""
    mlflow_dir = settings.home / "mlflow"
    mlflow_dir.mkdir(parents=True, exist_ok=True)
    _start(
        settings, "mlflow",
        [_bin("mlflow"), "server", "--host", "127.0.0.1", "--port", str(port("mlflow")), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{mlflow_dir / 'mlflow.db'}",
         "--default-artifact-root", f"{settings.store_uri}/mlflow/default"],
        platform_env(settings),
    )  # fmt: skip
    if wait:
        _wait_http(f"{url('mlflow')}/health", "MLflow", 180, (settings, "mlflow"))
    return url("mlflow")


def demo_key(settings: Settings) -> str:
    """The API key `make run` prints (role predict and feedback), created once and kept in var/serve/demo_key."""
    from ativo.serve.keys import create_key

    path = settings.home / "serve" / "demo_key"
    if path.exists():
        return path.read_text().strip()
    key = create_key(settings.home / "serve" / "api_keys.json", f"demo-{secrets.token_hex(3)}", ("predict", "feedback"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def start_serve(settings: Settings, spec_name: str) -> None:
    """Start the inference API for a spec on its loopback port (it follows the registry aliases by itself)."""
    demo_key(settings)
    _start(settings, "serve", [_bin("ativo"), "serve", "--spec", spec_name, "--port", str(port("serve"))],
           platform_env(settings))  # fmt: skip


def start_services(settings: Settings, before_airflow: Any = None, spec_name: str = "adult_income",
                   serve: bool = True) -> AirflowAPI:  # fmt: skip
    """Migrate Airflow's DB, create pools, start the alert sink, MLflow, the inference API and Airflow; wait for them.

    Args:
        settings: where things are.
        before_airflow: called after the migration and before Airflow's processes start, when nothing else
            writes to its SQLite DB (Airflow refuses backfill creation under concurrent access, airflow#66726).
        spec_name: the model the inference API serves.
        serve: start the inference API (benchmarks and tests of training leave it out: 2 cores are few).
    """
    env = platform_env(settings)
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    password = admin_password(settings)
    _start(
        settings,
        "alert-sink",
        [sys.executable, "-m", "ativo.alert_sink", str(port("alert")), str(settings.home / "logs" / "alerts.jsonl")],
        env,
    )
    start_mlflow(settings, wait=False)
    if serve:
        start_serve(settings, spec_name)
    if _pid(settings, "airflow") is None:
        say("migrating the Airflow metadata DB (SQLite) and creating pools")
        airflow_cli(settings, "db", "migrate")
        airflow_cli(settings, "pools", "import", str(PROJECT_ROOT / "deploy" / "airflow" / "pools.json"))
        if before_airflow is not None:
            before_airflow()
    _start(settings, "airflow", [_bin("airflow"), "standalone"], env)
    say("waiting for MLflow and Airflow to answer (about a minute on 2 cores)")
    _wait_http(f"{url('mlflow')}/health", "MLflow", 180, (settings, "mlflow"))
    _wait_http(f"{url('airflow')}/api/v2/monitor/health", "Airflow api-server", 300, (settings, "airflow"))
    if serve:
        _wait_http(f"{url('serve')}/metrics", "the inference API", 120, (settings, "serve"))
    return AirflowAPI(url("airflow"), password)


def _reap(pid: int) -> None:
    """Collect the exit status of ``pid`` if this process started it (a zombie still counts as a live group)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child (started by an earlier `ativo up`): init reaps it


def stop_services(settings: Settings) -> list[str]:
    """Stop every process this launcher started (by PID file, whole process group); returns their names."""
    stopped = []
    for name in reversed(SERVICES):
        pid = _pid(settings, name)
        if pid is None:
            continue
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            _reap(pid)
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _reap(pid)
        (run_dir(settings) / f"{name}.pid").unlink(missing_ok=True)
        stopped.append(name)
    return stopped


def status(settings: Settings) -> dict[str, int | None]:
    """PID of each service, None when it is not running."""
    return {name: _pid(settings, name) for name in SERVICES}


def _wait_for(pred: Any, what: str, timeout: float, every: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = pred()
        except (urllib.error.URLError, OSError, KeyError):
            value = None
        if value:
            return value
        time.sleep(every)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def lifecycle_window(days: int) -> tuple[dt.date, dt.date]:
    """First and last landed day: ``days`` days ending yesterday (UTC)."""
    today = dt.datetime.now(dt.UTC).date()
    return today - dt.timedelta(days=days), today - dt.timedelta(days=1)


def prepare_lifecycle(settings: Settings, spec_name: str, days: int, quarantine_day: int) -> None:
    """Land the batches and queue the ETL backfill over all of them, while Airflow's processes are not running.

    When the DAG is unpaused the scheduler also makes a run for the newest complete interval (catchup is off):
    that is the window's last day (a harmless, idempotent second run) or, past midnight UTC, a day that has not
    landed yet. Neither is needed for the window to complete.
    """
    from ativo.data.landing import simulate
    from ativo.spec import get_spec
    from ativo.store.objects import open_store

    spec = get_spec(spec_name, settings.specs_dir)
    marker = run_dir(settings) / f"lifecycle-{spec.name}.json"
    if marker.exists():
        done = json.loads(marker.read_text())
        say(f"the lifecycle already ran on this state ({done['start']} … {done['end']}); keeping it "
            "(`.venv/bin/ativo up --fresh` starts over)")  # fmt: skip
        return
    start, end = lifecycle_window(days)
    bad_day = start + dt.timedelta(days=quarantine_day)
    say(f"landing {days} daily batches {start} … {end} (the batch of {bad_day} is malformed)")
    simulate(spec, open_store(settings), settings.reference_dir, start, days, malformed={bad_day: "out_of_range"})
    say("parsing the DAGs and queueing the backfill (airflow dags reserialize / backfill create)")
    airflow_cli(settings, "dags", "reserialize")
    etl = f"{spec.name}__etl"
    airflow_cli(settings, "dags", "unpause", "--treat-dag-id-as-regex", "-y", f"^{spec.name}__(etl|train|deploy)$")
    airflow_cli(
        settings, "backfill", "create", "--dag-id", etl, "--from-date", str(start),
        "--to-date", str(end), "--max-active-runs", str(spec.schedule.max_active_runs),
        "--reprocess-behavior", "none",
    )  # fmt: skip
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"start": str(start), "end": str(end), "days": days}))


def watch_lifecycle(settings: Settings, api: AirflowAPI, spec_name: str, days: int) -> None:
    """Report ETL progress until every landed day has a finished run, then wait for training to register."""
    marker = run_dir(settings) / f"lifecycle-{spec_name}.json"
    window = json.loads(marker.read_text()) if marker.exists() else None
    if window:
        days = int(window["days"])
    etl = f"{spec_name}__etl"
    say(f"running the ETL over {days} days; progress every 15s (watch it at {url('airflow')}/dags/{etl})")
    last = ""
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline:
        if _pid(settings, "airflow") is None:
            raise RuntimeError(f"Airflow exited; see {settings.home / 'logs' / 'airflow.log'}")
        try:
            runs = api.runs(etl)
        except (urllib.error.URLError, OSError) as err:
            say(f"Airflow API not answering ({err}); retrying")
            time.sleep(10)
            continue
        finished: dict[str, str] = {}  # day → its best finished state (a day may have a second, idempotent run)
        for r in runs:
            day = r["data_interval_start"][:10]
            in_window = window is None or window["start"] <= day <= window["end"]
            if in_window and r["state"] in ("success", "failed") and finished.get(day) != "success":
                finished[day] = r["state"]
        done, ok = len(finished), sum(v == "success" for v in finished.values())
        line = f"ETL days: {done}/{days} finished ({ok} ok, {done - ok} failed)"
        if line != last:
            say(line)
            last = line
        if done >= days:
            break
        time.sleep(15)
    else:
        raise RuntimeError(f"the ETL did not finish within 20 minutes; see {url('airflow')}")
    from ativo.config import load_settings
    from ativo.data.versioning import open_registry
    from ativo.spec import get_spec
    from ativo.store.db import get_engine
    from ativo.summary import registered_models

    live = load_settings(platform_env(settings))
    latest = open_registry(live).resolve(get_engine(live.db_url), spec_name).tag
    say(f"waiting for training on the latest dataset version {latest} (the features Asset triggers it)")
    spec = get_spec(spec_name, live.specs_dir)

    train = f"{spec_name}__train"
    triggered = False
    idle_since: float | None = None

    def trained_on_latest() -> bool:
        nonlocal triggered, idle_since
        if any(m["dataset_version"] == latest and m["gates"] for m in registered_models(spec, live)):
            return True  # trained on the latest version and judged by its gates
        busy = any(r["state"] in ("queued", "running") for r in api.runs(train))
        idle_since = None if busy else (idle_since or time.monotonic())
        if idle_since is not None and time.monotonic() - idle_since > 45 and not triggered:
            # Airflow can drop an asset event that arrives while the consumer's previous run is still queued;
            # make sure the newest version is trained on, pinned explicitly.
            say(f"no training run is pending for {latest}; triggering {train} with dataset_version={latest}")
            api.post(f"/api/v2/dags/{train}/dagRuns", {"logical_date": None, "conf": {"dataset_version": latest}})
            triggered = True
        return False

    _wait_for(trained_on_latest, f"a model version trained on {latest} and judged by its gates", 1200, every=10)


def sample_row(settings: Settings, spec_name: str) -> dict[str, Any]:
    """One real row of the reference data as a /predict body (a person the model has not necessarily seen)."""
    from ativo.serve.traffic import reference_rows
    from ativo.spec import get_spec

    spec = get_spec(spec_name, settings.specs_dir)
    return reference_rows(spec, settings.reference_dir, 1, seed=7)[0][0]


def serve_sample(settings: Settings, spec_name: str, wait_s: float = 600) -> dict[str, Any] | None:
    """Wait for a champion on the inference API, then ask it for a decision with its explanation and trace it back.

    Returns None (saying why) when no version passed its gates, so nothing can be deployed.
    """
    from ativo.config import load_settings
    from ativo.registry.deploy import server_versions
    from ativo.registry.lineage import render, trace
    from ativo.spec import get_spec
    from ativo.summary import registered_models

    live = load_settings(platform_env(settings))
    spec = get_spec(spec_name, live.specs_dir)
    if not any(m["gates"] == "passed" for m in registered_models(spec, live)):
        say("no model version passed its gates, so the deploy DAG has nothing to serve (see the model cards)")
        return None
    deploy = f"{url('airflow')}/dags/{spec_name}__deploy"
    say(f"waiting for the deploy DAG to put a champion on the inference API ({deploy})")
    _wait_for(lambda: (server_versions([url("serve")])[0] or {}).get("champion"), "a champion on the inference API",
              wait_s, every=5)  # fmt: skip
    body = sample_row(live, spec_name)
    req = urllib.request.Request(f"{url('serve')}/explain", data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {demo_key(settings)}",
                                          "Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as resp:
        answer = json.loads(resp.read())
    from ativo.registry.promotion import aliases
    from ativo.serve.traffic import replay

    traffic = replay(url("serve"), demo_key(settings), spec, live.reference_dir, 3000)
    say(f"replayed {traffic['rows']} reference rows through the API with their labels: {traffic['routes']}")
    chain = None
    deadline = time.monotonic() + 30
    while chain is None and time.monotonic() < deadline:  # the API writes its log every 2 s
        try:
            chain = render(trace(live, answer["prediction_id"], spec_name))
        except Exception:
            time.sleep(1)
    return {"request": body, "answer": answer, "lineage": chain, "traffic": traffic, "aliases": aliases(spec, live),
            "window_minutes": spec.deploy.canary_window_minutes}  # fmt: skip


def _sample_text(sample: dict[str, Any] | None, key: str) -> str:
    if sample is None:
        return "   (no champion serving: no model version passed its gates)"
    a = sample["answer"]
    top = ", ".join(f"{c['feature']} {c['contribution']:+.2f}" for c in a["explanation"]["contributions"][:4])
    lines = [
        f"   POST {url('serve')}/explain  (subject {sample['request']['subject_id']}):",
        f"     {a['label']} (score {a['score']:.3f}, threshold {a['threshold']}) from version {a['version']} "
        f"({a['route']}), prediction {a['prediction_id']}",
        f"     why (log-odds): {top}, …",
        f"   try it: curl -s -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\",
        f"             -d '{json.dumps({'features': sample['request']['features']})[:60]}…' {url('serve')}/predict",
    ]
    al = sample.get("aliases") or {}
    live = ", ".join(f"{k} v{v}" for k, v in sorted(al.items()) if k != "challenger")
    lines.append(f"   live versions: {live}; traffic replayed with labels: {sample['traffic']['routes']}")
    if "canary" in al or "shadow" in al:
        lines.append(f"   the deploy DAG watches v{al.get('canary') or al.get('shadow')} for "
                     f"{sample['window_minutes']:g} min on live figures, then promotes it or rolls it back "
                     "(.venv/bin/ativo deployments)")  # fmt: skip
    if sample.get("lineage"):
        lines.append(f"   .venv/bin/ativo lineage {a['prediction_id']}:")
        lines += ["     " + line for line in sample["lineage"].splitlines()]
    return "\n".join(lines)


def banner(settings: Settings, summary_text: str, sample: dict[str, Any] | None = None) -> str:
    """Where to look, printed at the end of `make run`."""
    pw = admin_password(settings)
    key = demo_key(settings)
    return f"""
================================================================================
 Ativo is running
   Airflow UI     {url("airflow")}      login: admin / {pw}
   MLflow UI      {url("mlflow")}      (experiments ativo/<spec>, registered models)
   Inference API  {url("serve")}      API key: {key}
                  (/predict /explain /feedback need it; /health /metrics do not)
   On-call pages  {settings.home / "logs" / "alerts.jsonl"}
   Object store   {settings.store_uri}
   Data registry  {settings.registry_path}   (git tags <spec>-vNNNN, DVC remote {settings.dvc_remote})
   Logs           {settings.home / "logs"}
 Results
{summary_text}
 Serving
{_sample_text(sample, key)}
 Stop everything with `make stop`.
================================================================================"""


def clear_state(settings: Settings) -> None:
    """Remove runtime state (used by `ativo up --fresh`)."""
    for name in ("store", "data-registry", "dvc-remote", "mlflow", "airflow", "run", "ativo.db", ".data-registry.lock"):
        path = settings.home / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
