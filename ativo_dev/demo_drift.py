"""`make demo-drift`: watch the loop close on the running platform (after `make run`).

Drifted traffic goes through the inference API in two batches (``ativo traffic --drift`` does the same), the
MONITOR DAG judges each batch as a window (two drifted windows: ``monitor.sustain`` is met), its second run emits
the ``<spec>.drift`` Asset, the training DAG retrains on it, and the deploy DAG puts the new challenger on canary.
Every step is a real Airflow run, triggered through the REST API, and each is printed with its link.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from ativo.config import Settings, load_settings
from ativo.http import HttpError
from ativo.naming import deploy_dag_id, monitor_dag_id, train_dag_id
from ativo.orchestrator import AirflowAPI
from ativo.waiting import wait_until
from ativo_dev.supervisor import demo_key, platform_env, say, url

SHIFTS = ("age=+15", "hours_per_week=*1.3")
FLUSH_S = 4.0  # the API writes its prediction log every 2 s


def _get(api: AirflowAPI, path: str) -> Any:
    """GET, None while the API is unreachable or restarting (a refusal, 4xx, is raised: waiting cannot fix it)."""
    try:
        return api.get(path)
    except HttpError as err:
        if err.status is None or err.status >= 500:
            return None
        raise


def _run(api: AirflowAPI, dag_id: str, conf: dict[str, Any], note: str, wait_s: float = 900) -> dict[str, Any]:
    """Trigger ``dag_id`` with ``conf`` and wait until the run ends."""
    run = api.post(f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf, "note": note})
    run_id = run["dag_run_id"]

    def ended() -> dict[str, Any] | None:
        got = _get(api, f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        return got if got and got["state"] in ("success", "failed") else None

    return dict(wait_until(ended, wait_s, 2, f"run {run_id} of {dag_id} to end"))


def _decision(api: AirflowAPI, dag_id: str, run_id: str) -> dict[str, Any]:
    return dict(
        api.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/judge_window/xcomEntries/"
            "return_value?deserialize=true"
        )["value"]
    )


def demo(settings: Settings, spec_name: str, shifts: tuple[str, ...] = SHIFTS, rows: int = 1500) -> int:
    """Run the demo for ``spec_name``; returns the exit status."""
    from ativo.model.registry import aliases
    from ativo.serve.traffic import parse_shift, replay
    from ativo.spec import get_spec

    live = load_settings(platform_env(settings))
    spec = get_spec(spec_name, live.specs_dir)
    api = AirflowAPI.from_settings(live)
    airflow = url("airflow", settings)
    before = aliases(spec, live)
    if "champion" not in before:
        say(f"{spec_name} has no champion yet: run `make run` first (and let it finish)")
        return 1
    drift = [parse_shift(spec, s) for s in shifts]
    base = f"{url('serve', settings)}/models/{spec_name}"
    say(
        f"{spec_name}: champion v{before['champion']}; sending drifted traffic ({', '.join(map(str, drift))}) to "
        f"{base} in two windows of {rows} rows"
    )
    windows = []
    for i in range(max(2, spec.monitor.sustain)):
        start = dt.datetime.now(dt.UTC)
        replay(base, demo_key(settings), spec, live.reference_dir, rows, labels=True, drift=drift, seed=100 + i)
        time.sleep(FLUSH_S)
        end = dt.datetime.now(dt.UTC)
        windows.append((start, end))
        run = _run(
            api,
            monitor_dag_id(spec_name),
            {"start": start.isoformat(), "end": end.isoformat()},
            f"make demo-drift: window {i + 1} of drifted traffic ({', '.join(map(str, drift))})",
        )
        judged = _decision(api, monitor_dag_id(spec_name), run["dag_run_id"])
        d = judged["decision"]
        say(f"window {i + 1}: {judged['rows']} decisions; {'; '.join(judged['reasons'][:3]) or 'no drift'}")
        say(f"  decision: {d['action']}: {d['reason']}")
        say(
            f"  report: {judged['report_html_uri']}  run: {airflow}/dags/{monitor_dag_id(spec_name)}/runs/"
            f"{run['dag_run_id']}"
        )
        if d["action"] == "emitted":
            break
        if d["action"].startswith("held"):
            say(
                "the retraining is held back (see the reason); "
                + (
                    "on-call was paged"
                    if d["page"]
                    else "no page: a retraining just ran and the model does not degrade"
                )
                + f"; a run after the cooldown (monitor.cooldown_hours = {spec.monitor.cooldown_hours}) retrains"
            )
            return 0
    else:
        say("no drift episode was announced (see the decisions above)")
        return 0
    train = train_dag_id(spec_name)
    say(f"the {spec_name}.drift Asset triggers {train}: waiting for its run ({airflow}/dags/{train})")
    since = windows[0][0].strftime("%Y-%m-%dT%H:%M:%SZ")  # a "+" would need quoting in the query

    def retrained() -> dict[str, Any] | None:
        got = _get(api, f"/api/v2/dags/{train}/dagRuns?run_after_gte={since}&limit=20")
        done = [r for r in (got or {}).get("dag_runs", []) if r["state"] in ("success", "failed")]
        return done[-1] if done else None

    run = wait_until(retrained, 1800, 10, f"a run of {train} triggered by the drift")
    say(f"training run {run['dag_run_id']}: {run['state']}")
    after = aliases(spec, live)
    if after.get("challenger") and after.get("challenger") != before.get("challenger"):
        say(
            f"new challenger v{after['challenger']}; {deploy_dag_id(spec_name)} puts it on canary "
            f"({spec.deploy.canary_percent:g} % for {spec.deploy.canary_window_minutes:g} minutes), then promotes "
            f"or rolls back: {airflow}/dags/{deploy_dag_id(spec_name)}"
        )
    else:
        say(f"no new challenger (aliases: {after}); see the run's decide task and the model card")
    return 0
