"""A throw-away but real platform for benchmarks and tests.

Airflow (scheduler, dag processor, triggerer and API server; LocalExecutor, pools) and an MLflow server on free
loopback ports under
a home of their own, a search run on it, and the task instances read back through the REST API.

``dag.test()`` ignores pools and runs tasks one by one; this is what shows pool limits and real orchestration cost.
Used by ``bench/`` and the tests that need real servers (``tests.support``: test support, not part of the library).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ativo.airflow import POOLS_FILE
from ativo.config import Settings, load_settings
from ativo.http import HttpError
from ativo.waiting import WaitTimeout, wait_until
from ativo_dev import supervisor
from ativo_dev.supervisor import free_port

if TYPE_CHECKING:
    from ativo.spec import ModelSpec


@contextmanager
def isolated_platform(home: Path, database: str = "sqlite") -> Iterator[Settings]:
    """Point Ativo at ``home`` on free ports; yields its settings and stops whatever was started there on exit.

    Airflow's metadata DB is SQLite by default here (one test, one writer, a faster start); ``database="postgres"``
    gives it the embedded PostgreSQL, as `make run` does.
    """
    keys = (
        "ATIVO_HOME",
        "ATIVO_AIRFLOW_PORT",
        "ATIVO_MLFLOW_PORT",
        "ATIVO_ALERT_PORT",
        "ATIVO_SERVE_PORT",
        "ATIVO_PG_PORT",
        "ATIVO_EMBEDDED_DB",
        "ATIVO_MLFLOW_TRACKING_URI",
        "ATIVO_DB_URL",
        "ATIVO_STORE_URI",
        "ATIVO_REGISTRY_PATH",
        "ATIVO_DVC_REMOTE",
        "ATIVO_SERVE_URLS",
        "MLFLOW_TRACKING_URI",
    )
    saved = {k: os.environ.get(k) for k in keys}
    for k in keys[7:]:
        os.environ.pop(k, None)  # derived from ATIVO_HOME and the ports
    os.environ.update(
        ATIVO_HOME=str(home),
        ATIVO_AIRFLOW_PORT=str(free_port()),
        ATIVO_MLFLOW_PORT=str(free_port()),
        ATIVO_ALERT_PORT=str(free_port()),
        ATIVO_SERVE_PORT=str(free_port()),
        ATIVO_PG_PORT=str(free_port()),
        ATIVO_EMBEDDED_DB=database,
    )
    settings = load_settings()
    try:
        yield settings
    finally:
        supervisor.stop_services(settings)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def land_dataset(
    settings: Settings, spec_name: str, days: int = 1, etl_days: int | None = None, rows: int | None = None
) -> str:
    """Land data and run the ETL steps on it (outside Airflow); returns the dataset version's tag.

    Args:
        settings: where things are.
        spec_name: the spec.
        days: the reference data is landed over this many days.
        etl_days: only the first ones go through the ETL (all when None).
        rows: instead of the reference data, this many rows resampled from it (fresh ids), 16,000 a day.
    """
    from ativo.data.etl import run_interval
    from ativo.data.landing import simulate, synthesize, to_csv_bytes
    from ativo.spec import get_spec
    from ativo.store.objects import open_store
    from ativo.store.prefixes import landing_batch

    spec = get_spec(spec_name, settings.specs_dir)
    start = dt.date(2026, 1, 1)
    store = open_store(settings)
    if rows:
        df = synthesize(spec, settings.reference_dir, rows)
        days = -(-rows // 16_000)
        for i in range(days):
            batch = df.iloc[i * 16_000 : (i + 1) * 16_000].copy()
            day = start + dt.timedelta(days=i)
            batch[spec.data_schema.event_time] = day.isoformat()
            store.put_bytes(landing_batch(spec.name, day), to_csv_bytes(batch))
    else:
        simulate(spec, store, settings.reference_dir, start, days)
    tag = ""
    for i in range(etl_days or days):
        tag = run_interval(spec, settings, (start + dt.timedelta(days=i)).isoformat())["version"]["tag"]
    return tag


def _ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass
class AirflowSearch:
    """A finished training run on a real scheduler."""

    state: str
    wall_s: float  # from the trigger request to the DAG run's end: what its user waits
    triggered_at: dt.datetime
    task_instances: list[dict[str, Any]]
    registered: dict[str, Any] | None
    warm_up_s: float | None = None  # the one-trial warm-up run on the cold platform, when there was one

    def seconds_until(self, task_id: str) -> float | None:
        """From the trigger request to the end of ``task_id`` (``register_best``: the search without its gates)."""
        ends = [_ts(t.get("end_date")) for t in self.task_instances if t["task_id"] == task_id]
        end = max((e for e in ends if e is not None), default=None)
        return (end - self.triggered_at).total_seconds() if end else None

    def trials(self) -> list[dict[str, Any]]:
        """The mapped trial workers' task instances, by map index."""
        return sorted((t for t in self.task_instances if t["task_id"] == "trials"), key=lambda t: t["map_index"])

    def max_concurrent(self, task_id: str = "trials") -> int:
        """The most task instances of ``task_id`` that were running at the same moment (from start/end times)."""
        events: list[tuple[dt.datetime, int]] = []
        for t in self.task_instances:
            start, end = _ts(t.get("start_date")), _ts(t.get("end_date"))
            if t["task_id"] == task_id and start and end:
                events += [(start, 1), (end, -1)]
        running = peak = 0
        for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at the same instant
            running += step
            peak = max(peak, running)
        return peak


FINISHED = ("success", "failed", "upstream_failed", "skipped")


def _trigger_and_wait(
    api: Any, dag_id: str, run_id: str, conf: dict[str, Any], timeout_s: float, until: str | None = None
) -> tuple[dict, float, dt.datetime]:
    """Trigger a run and wait for it to finish, or only for its task ``until`` to finish.

    Returns:
        (the run as the API reports it, seconds from the trigger to the end waited for, the trigger's time).
    """
    triggered = dt.datetime.now(dt.UTC)
    body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}

    def triggered_run() -> bool:
        # The run id is ours, so a retry is safe: 409 means an earlier attempt created it. A 500 is Airflow's
        # SQLite being written by the DAG processor or the scheduler at that moment ("Database error").
        try:
            api.post(f"/api/v2/dags/{dag_id}/dagRuns", body)
        except HttpError as err:
            if err.status == 409:
                return True
            if err.status is not None and err.status < 500:
                raise
            return False
        return True

    wait_until(triggered_run, 60, 0.5, f"Airflow to accept run {run_id!r} of {dag_id}")
    run: dict[str, Any] = {}
    task: dict[str, Any] = {}

    def finished() -> bool:
        nonlocal run, task
        run = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        if until is not None and run["state"] not in ("success", "failed"):
            try:
                task = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{until}")
            except OSError:
                return False  # not created yet
            return task.get("state") in FINISHED
        return run["state"] in ("success", "failed")

    what = f"{dag_id} run {run_id!r} to finish" if until is None else f"task {until} of {dag_id} run {run_id!r}"
    try:
        wait_until(finished, timeout_s, 1, what)
    except WaitTimeout as err:
        raise WaitTimeout(f"{err} (state {run.get('state')})") from None
    end = _ts(task["end_date"] if task.get("state") in FINISHED else run["end_date"])
    assert end is not None
    return run, (end - triggered).total_seconds(), triggered


def run_search_on_airflow(
    settings: Settings,
    spec_name: str,
    dataset_tag: str,
    n_trials: int,
    *,
    pool_slots: int | None = None,
    warm_up: bool = False,
    warm_up_tag: str | None = None,
    timeout_s: float = 1200,
    until: str | None = None,
    airflow_db: Path | None = None,
    mlflow_db: Path | None = None,
) -> AirflowSearch:
    """Run ``<spec>__train`` once on a freshly started platform, with the dataset version and trial count pinned.

    Start it inside :func:`isolated_platform`, which stops it again. With ``warm_up``, a one-trial run goes first,
    so the timed run finds the executor's workers started and the libraries imported, as on a platform that has
    been up a while; it trains ``warm_up_tag`` (default: ``dataset_tag``): another dataset version than the timed
    run's keeps its one-trial model from being byte-identical to the timed search's best when trial 0 wins there,
    which ``register_best`` would refuse as a duplicate. With ``until`` (a task id, e.g. ``register_best``) it
    returns as soon as that task has finished, and the rest of the run (the gates) is failed, which ends its running
    tasks, so that the platform stops without waiting for them. ``airflow_db`` (a migrated Airflow metadata DB) and
    ``mlflow_db`` (an MLflow DB with MLflow's schema) are SQLite files to start from instead of creating them.
    Returns the run and its task instances.

    Airflow's triggerer and the watchdog are not started: the search defers no task, and a component that dies
    should fail the run, not be restarted under it.
    """
    dag_id = f"{spec_name}__train"
    # only this spec's DAGs: the others' (monitor, reconciler, ETL) would be parsed and scheduled beside the search
    only = settings.home / "specs-under-test"
    only.mkdir(parents=True, exist_ok=True)
    for path in settings.specs_dir.glob("*.yaml"):
        if path.stem == spec_name:
            (only / path.name).write_bytes(path.read_bytes())
    settings = settings.model_copy(update={"specs_dir": only})

    pools = POOLS_FILE
    if pool_slots is not None:  # the shipped pools with cpu_train resized: one `airflow` CLI start fewer
        doc = json.loads(pools.read_text())
        doc["cpu_train"]["slots"] = pool_slots
        pools = settings.home / "pools.json"
        pools.parent.mkdir(parents=True, exist_ok=True)
        pools.write_text(json.dumps(doc))
    # The DAG processor parses the DAG files at start (no `dags reserialize`); every DAG is created paused and the
    # training DAG alone is unpaused: the spec's other DAGs (the erasure batch, the monitor, the reconciler, a deploy
    # on the warm-up's challenger) never run beside the timed search on the same cores.
    api = supervisor.start_services(
        settings,
        serve=False,  # training only: no inference API
        pools=pools,
        throwaway=True,
        watchdog=False,
        airflow_env={"AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"},
        airflow_db=airflow_db,
        mlflow_db=mlflow_db,
        components=("airflow-api-server", "airflow-scheduler", "airflow-dag-processor"),
    )
    wait_until(
        lambda: api.get("/api/v2/monitor/health")["scheduler"]["status"] == "healthy",
        300,
        0.5,
        "the Airflow scheduler to report healthy",
    )
    wait_until(
        lambda: api.get(f"/api/v2/dags/{dag_id}"), 300, 0.5, f"the DAG processor to parse {dag_id}", retry_on=(OSError,)
    )

    def patched(path: str, body: dict[str, Any]) -> bool:
        try:
            api.patch(path, body)
        except HttpError as err:  # a 500 is Airflow's SQLite being written by another component at that moment
            if err.status is not None and err.status < 500:
                raise
            return False
        return True

    wait_until(
        functools.partial(patched, f"/api/v2/dags/{dag_id}", {"is_paused": False}),
        60,
        0.5,
        f"Airflow to unpause {dag_id}",
    )
    cold_s = None
    if warm_up:
        _, cold_s, _ = _trigger_and_wait(
            api, dag_id, "warm-up", {"dataset_version": warm_up_tag or dataset_tag, "n_trials": 1}, timeout_s
        )
    conf = {"dataset_version": dataset_tag, "n_trials": n_trials}
    run, wall, triggered = _trigger_and_wait(api, dag_id, "search", conf, timeout_s, until)
    tis = api.get(f"/api/v2/dags/{dag_id}/dagRuns/search/taskInstances?limit=1000")["task_instances"]
    registered = None
    try:
        registered = api.get(
            f"/api/v2/dags/{dag_id}/dagRuns/search/taskInstances/register_best/xcomEntries/"
            "return_value?deserialize=true"
        )["value"]
    except OSError:
        pass  # no registration (the run failed); the task instances say why
    if until is not None and run["state"] not in ("success", "failed"):
        # what follows ``until`` is not waited for: failing the run ends its running tasks (their supervisors see it
        # at their next heartbeat), so the scheduler stops without waiting for them to finish
        wait_until(
            functools.partial(patched, f"/api/v2/dags/{dag_id}/dagRuns/search", {"state": "failed"}),
            60,
            0.5,
            f"Airflow to end the rest of {dag_id} run 'search'",
        )
    return AirflowSearch(
        state=run["state"],
        wall_s=wall,
        triggered_at=triggered,
        task_instances=tis,
        registered=registered,
        warm_up_s=cold_s,
    )


def register_booster(
    settings: Settings,
    spec: ModelSpec,
    booster: Any,
    *,
    experiment: str = "ativo-serve",
    artifact_root: Path | None = None,
    tags: dict[str, str] | None = None,
    gated: bool | None = True,
    policy: dict[str, Any] | None = None,
) -> str:
    """Log a booster the way training does and register it through the registry's one writer; returns its version.

    Args:
        settings: the platform (registry, platform DB, key).
        spec: the spec whose model it is.
        booster: the trained booster.
        experiment: the MLflow experiment of its run.
        artifact_root: where that experiment keeps artifacts (a new experiment only).
        tags: extra version tags.
        gated: ``True`` records a *passing* gate verdict for exactly this file, without running the gates (a test
            of serving or deployment, not of the gates; the record says so); ``False`` a rejection by
            ``performance``; ``None`` none (an ungated version).
        policy: a per-group decision policy the verdict approves (logged on the run, like the fairness gate's).
    """
    import tempfile

    import mlflow
    from mlflow import MlflowClient

    from ativo.model.artifact import log_booster
    from ativo.model.registry import record_gates, register

    client = MlflowClient(settings.mlflow_tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    exp_id = (
        exp.experiment_id
        if exp
        else client.create_experiment(experiment, artifact_location=artifact_root.as_uri() if artifact_root else None)
    )
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    with mlflow.start_run(experiment_id=exp_id) as run:
        logged = log_booster(booster)
    run_id = run.info.run_id
    version = register(
        spec,
        settings,
        logged,
        {"ativo.mlflow_run_id": run_id, **(tags or {})},
        run_id=run_id,
        description="registered by the test harness",
    )
    if gated is None:
        return version
    report: dict[str, Any] = {
        "model_sha256": logged.sha256,
        "spec_hash": spec.content_hash(),
        "gate_hash": spec.gate_hash(),
        "passed": gated,
        "failed_gates": [] if gated else ["performance"],
        "gates": {} if gated else {"performance": {"reason": "rejected by the test harness"}},
        "note": "test harness: a verdict recorded without running the gates",
    }
    if policy:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "decision_policy.json").write_text(json.dumps(policy, indent=2, sort_keys=True))
            client.log_artifacts(run_id, tmp, artifact_path="gates")
        report["decision_policy_uri"] = f"runs:/{run_id}/gates/decision_policy.json"
        client.set_model_version_tag(
            spec.registered_model_name, version, "ativo.decision_policy_uri", report["decision_policy_uri"]
        )
    record_gates(spec, settings, version, report, policy)
    return version


@dataclass
class Server:
    """An `ativo serve` process on loopback."""

    proc: Any
    url: str
    key: str
    log: Path
    spec: str = "adult_income"  # the (first) spec it serves

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (a clean shutdown: in-flight requests finish, the log is flushed) and wait."""
        import signal
        import subprocess

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def start_server(
    settings: Settings,
    spec_name: str | tuple[str, ...] = "adult_income",
    *,
    port: int | None = None,
    key: str | None = None,
    args: tuple[str, ...] = (),
    wait_for: str | None = "champion",
    timeout: float = 90,
) -> Server:
    """Start ``ativo serve`` for the platform of ``settings`` and wait until it serves (``wait_for`` alias).

    A key with every role is created in ``<home>/serve/api_keys.json`` unless ``key`` is given. Several spec names
    start one server for all of them (it is ready when each serves ``wait_for``). The process is forked from a
    parent that has imported what a server imports (:mod:`tests.support.serve_fork`), or started with
    ``python -m ativo.cli serve`` where ``ATIVO_TEST_SERVE_COLD=1``.
    """
    import subprocess
    import sys

    from ativo.deploy.steps import server_versions
    from ativo.serve.keys import create_key, read_keys
    from tests.support import serve_fork

    keys = settings.home / "serve" / "api_keys.json"
    if key is None:
        name = f"harness-{len(read_keys(keys))}"
        key = create_key(keys, name, ("predict", "feedback"))
    port = port or free_port()
    env = dict(
        os.environ,
        ATIVO_HOME=str(settings.home),
        ATIVO_MLFLOW_TRACKING_URI=settings.mlflow_tracking_uri,
        ATIVO_STORE_URI=settings.store_uri,
    )
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"serve-{port}.log"
    names = (spec_name,) if isinstance(spec_name, str) else tuple(spec_name)
    argv = ["serve", *[a for n in names for a in ("--spec", n)], "--port", str(port), *args]
    proc: Any
    if os.environ.get("ATIVO_TEST_SERVE_COLD") == "1":
        with open(log, "ab") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ativo.cli", *argv], env=env, stdout=fh, stderr=subprocess.STDOUT
            )
    else:
        proc = serve_fork.spawn(argv, env, log)
    url = f"http://127.0.0.1:{port}"

    def serving() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"ativo serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
        seen = [server_versions([url], n, timeout=2)[0] for n in names]
        return all(v is not None and (wait_for is None or wait_for in v) for v in seen)

    try:
        wait_until(serving, timeout, 0.3, f"ativo serve on {url} to serve {wait_for!r}")
    except WaitTimeout as err:
        proc.kill()
        raise WaitTimeout(f"{err}: {log.read_text()[-2000:]}") from None
    return Server(proc, url, key, log, names[0])
