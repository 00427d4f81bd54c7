"""The demo lifecycle `make run` drives.

It lands a month of batches, backfills the ETL, waits for training and deployment, then asks the inference API for
a decision and traces it back to its data and code.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ativo import naming
from ativo.config import Settings
from ativo.http import HttpError, post_json
from ativo.orchestrator import AirflowAPI
from ativo.waiting import WaitTimeout, wait_until
from ativo_dev.supervisor import airflow_cli, demo_key, pid_of, platform_env, run_dir, say, url


def lifecycle_window(days: int) -> tuple[dt.date, dt.date]:
    """First and last landed day: ``days`` days ending yesterday (UTC)."""
    today = dt.datetime.now(dt.UTC).date()
    return today - dt.timedelta(days=days), today - dt.timedelta(days=1)


def prepare_lifecycle(settings: Settings, spec_names: list[str], days: int, quarantine_day: int) -> None:
    """Land every spec's batches and queue their ETL backfills, while Airflow's processes are not running.

    Each spec's four DAGs are unpaused (DAGs start paused). When a DAG is unpaused the scheduler also makes a run for
    the newest complete interval (catchup is off): that is the window's last day (a harmless, idempotent second run)
    or, past midnight UTC, a day that has not landed yet. Neither is needed for the window to complete.
    """
    from ativo.data.landing import simulate
    from ativo.naming import dag_ids, etl_dag_id
    from ativo.spec import get_spec
    from ativo.store.objects import open_store

    say("parsing the DAGs (airflow dags reserialize)")
    airflow_cli(settings, "dags", "reserialize")
    for spec_name in spec_names:
        spec = get_spec(spec_name, settings.specs_dir)
        marker = run_dir(settings) / f"lifecycle-{spec.name}.json"
        if marker.exists():
            done = json.loads(marker.read_text())
            say(
                f"{spec.name}: the lifecycle already ran on this state ({done['start']} … {done['end']}); keeping "
                "it (`make run FRESH=1` starts over)"
            )
            continue
        start, end = lifecycle_window(days)
        bad_day = start + dt.timedelta(days=quarantine_day)
        say(f"{spec.name}: landing {days} daily batches {start} … {end} (the batch of {bad_day} is malformed)")
        simulate(spec, open_store(settings), settings.reference_dir, start, days, malformed={bad_day: "out_of_range"})
        say(f"{spec.name}: unpausing its DAGs and queueing the ETL backfill")
        ids = "|".join(d.removeprefix(f"{spec.name}__") for d in dag_ids(spec.name))
        airflow_cli(settings, "dags", "unpause", "--treat-dag-id-as-regex", "-y", f"^{spec.name}__({ids})$")
        airflow_cli(
            settings,
            "backfill",
            "create",
            "--dag-id",
            etl_dag_id(spec.name),
            "--from-date",
            str(start),
            "--to-date",
            str(end),
            "--max-active-runs",
            str(spec.schedule.max_active_runs),
            "--reprocess-behavior",
            "none",
        )
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"start": str(start), "end": str(end), "days": days}))


def unpause_all(api: AirflowAPI, spec_names: list[str], wait_s: float = 180) -> None:
    """Unpause every DAG of the specs (DAGs start paused), waiting for the DAG processor to have parsed each."""
    from ativo.naming import dag_ids

    for dag_id in [d for name in spec_names for d in dag_ids(name)]:

        def unpaused(d: str = dag_id) -> bool:
            try:
                api.unpause(d)
            except HttpError as err:
                if err.status == 404:  # not parsed yet
                    return False
                raise
            return True

        wait_until(unpaused, wait_s, 3, f"the DAG processor to parse {dag_id}", retry_on=(HttpError,))


def watch_lifecycle(settings: Settings, api: AirflowAPI, spec_name: str, days: int) -> None:
    """Report ETL progress until every landed day has a finished run, then wait for training to register."""
    marker = run_dir(settings) / f"lifecycle-{spec_name}.json"
    window = json.loads(marker.read_text()) if marker.exists() else None
    if window:
        days = int(window["days"])
    etl = naming.etl_dag_id(spec_name)
    say(
        f"{spec_name}: running the ETL over {days} days; progress every 15s "
        f"(watch it at {url('airflow', settings)}/dags/{etl})"
    )
    last = ""

    def etl_finished() -> bool:
        nonlocal last
        if pid_of(settings, "airflow-scheduler") is None and pid_of(settings, "watchdog") is None:
            raise RuntimeError(f"Airflow's scheduler exited; see {settings.home / 'logs' / 'airflow-scheduler.log'}")
        try:
            runs = api.runs(etl)
        except HttpError as err:  # the API restarting, or too busy to answer
            say(f"Airflow API not answering ({err}); retrying")
            raise
        finished: dict[str, str] = {}  # day → its best finished state (a day may have a second, idempotent run)
        for r in runs:
            day = r["data_interval_start"][:10]
            in_window = window is None or window["start"] <= day <= window["end"]
            if in_window and r["state"] in ("success", "failed") and finished.get(day) != "success":
                finished[day] = r["state"]
        done, ok = len(finished), sum(v == "success" for v in finished.values())
        line = f"{spec_name}: ETL days: {done}/{days} finished ({ok} ok, {done - ok} failed)"
        if line != last:
            say(line)
            last = line
        return done >= days

    wait_until(
        etl_finished,
        1200,
        15,
        f"the ETL runs of all {days} days to finish (see {url('airflow', settings)})",
        retry_on=(HttpError,),
    )
    from ativo.config import load_settings
    from ativo.data.versioning import open_registry
    from ativo.naming import reconcile_dag_id
    from ativo.ops.summary import registered_models
    from ativo.spec import get_spec
    from ativo.store.db import get_engine

    live = load_settings(platform_env(settings))
    latest = open_registry(live).resolve(get_engine(live.db_url), spec_name).tag
    say(
        f"{spec_name}: waiting for training on the latest dataset version {latest} (the features Asset triggers it; "
        f"the reconciler {reconcile_dag_id(spec_name)} makes sure)"
    )
    spec = get_spec(spec_name, live.specs_dir)

    reconcile = reconcile_dag_id(spec_name)
    reconciled = False

    def trained_on_latest() -> bool:
        nonlocal reconciled
        if any(m["dataset_version"] == latest and m["gates"] for m in registered_models(spec, live)):
            return True  # trained on the latest version and judged by its gates
        if not reconciled:
            # The reconciler runs every few minutes on its own; run it now rather than wait for its schedule.
            api.post(f"/api/v2/dags/{reconcile}/dagRuns", {"logical_date": None})
            reconciled = True
        return False

    wait_until(
        trained_on_latest,
        1200,
        10,
        f"a model version of {spec_name} trained on {latest} and judged by its gates",
        retry_on=(OSError, KeyError),
    )


def sample_row(settings: Settings, spec_name: str) -> dict[str, Any]:
    """One real row of the reference data as a /predict body (a person the model has not necessarily seen)."""
    from ativo.serve.traffic import reference_rows
    from ativo.spec import get_spec

    spec = get_spec(spec_name, settings.specs_dir)
    return reference_rows(spec, settings.reference_dir, 1, seed=7)[0][0]


DEMO_ROWS = 6000
"""Rows the demo replays through the API after the lifecycle (with their labels)."""


def serve_sample(settings: Settings, spec_name: str, wait_s: float = 600) -> dict[str, Any] | None:
    """Wait for a champion on the inference API, then ask it for a decision with its explanation and trace it back.

    Returns None (saying why) when no version passed its gates, so nothing can be deployed.
    """
    from ativo.config import load_settings
    from ativo.deploy.steps import server_versions
    from ativo.ops.lineage import render, trace
    from ativo.ops.summary import registered_models
    from ativo.spec import get_spec

    live = load_settings(platform_env(settings))
    spec = get_spec(spec_name, live.specs_dir)
    if not any(m["gates"] == "passed" for m in registered_models(spec, live)):
        say("no model version passed its gates, so the deploy DAG has nothing to serve (see the model cards)")
        return None
    deploy = f"{url('airflow', settings)}/dags/{naming.deploy_dag_id(spec_name)}"
    say(f"{spec_name}: waiting for the deploy DAG to put a champion on the inference API ({deploy})")
    wait_until(
        lambda: (server_versions([url("serve", settings)], spec_name)[0] or {}).get("champion"),
        wait_s,
        5,
        f"a champion of {spec_name} on the inference API",
        retry_on=(OSError, KeyError),
    )
    body = sample_row(live, spec_name)
    base = f"{url('serve', settings)}/models/{spec_name}"
    answer = post_json(f"{base}/explain", body, timeout=30, headers={"Authorization": f"Bearer {demo_key(settings)}"})
    from ativo.model.registry import aliases
    from ativo.serve.traffic import replay

    # enough for a canary at 10 % to be judged: about 420 clean calls show a 1 % error limit held (see docs/serving.md)
    traffic = replay(base, demo_key(settings), spec, live.reference_dir, DEMO_ROWS)
    say(
        f"{spec_name}: replayed {traffic['rows']} reference rows through the API with their labels: {traffic['routes']}"
    )
    chain = None
    try:  # the API writes its log every 2 s
        chain = wait_until(
            lambda: render(trace(live, answer["prediction_id"], spec_name)),
            30,
            1,
            f"prediction {answer['prediction_id']} in the prediction log, to trace its lineage",
            retry_on=(Exception,),
        )
    except WaitTimeout as err:
        say(f"no lineage to show: {err}")
    return {
        "spec": spec_name,
        "base": base,
        "request": body,
        "answer": answer,
        "lineage": chain,
        "traffic": traffic,
        "aliases": aliases(spec, live),
        "window_minutes": spec.deploy.canary_window_minutes,
    }
