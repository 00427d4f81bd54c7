"""A real scheduler (Airflow standalone, LocalExecutor) never runs more trials at once than the pool has slots.

dag.test() ignores pools, so this runs the training DAG on a throw-away platform and reads the task instances'
start and end times back from the REST API. It lives in the integration tier with the other tests that boot a whole
Airflow (api-server, scheduler, DAG processor, executor: about 80 s of two busy cores); it needs no outside service.
"""

from __future__ import annotations

import re


def test_real_scheduler_never_runs_more_trials_than_the_pool_has_slots(
    tmp_path, reference_dir, airflow_db_template, mlflow_db_template
):
    from tests.support.harness import isolated_platform, land_dataset, run_search_on_airflow

    with isolated_platform(tmp_path / "home") as settings:
        tag = land_dataset(settings, "adult_income", days=30, etl_days=2)  # about 3,000 rows: quick trials
        # up to the registration: the gates that follow hold no trial slot and are tested elsewhere
        run = run_search_on_airflow(
            settings,
            "adult_income",
            tag,
            n_trials=6,
            pool_slots=2,
            until="register_best",
            airflow_db=airflow_db_template,
            mlflow_db=mlflow_db_template,
        )
        log = (settings.home / "logs" / "airflow-scheduler.log").read_text(errors="replace")[-3000:]

    states = {t["task_id"]: t["state"] for t in run.task_instances if t["task_id"] != "trials"}
    assert states["plan_search"] == states["register_best"] == "success", (states, log)
    workers = run.trials()  # as many trial workers as the pool has slots, taking the six trials between them
    assert [t["map_index"] for t in workers] == [0, 1]
    assert all(t["state"] == "success" for t in workers), [t["state"] for t in workers]
    assert all(t["pool"] == "cpu_train" and t["pool_slots"] == 1 for t in workers)
    labels = " | ".join(t["rendered_map_index"] for t in workers)  # each named by the trials it ran, in the UI
    assert sorted(int(n) for n in re.findall(r"#(\d+)\b", labels)) == list(range(6)), labels
    assert all(len(t["rendered_map_index"]) <= 250 for t in workers)  # what Airflow's column holds
    # the pool was the limit: full (two at once) but never over
    assert run.max_concurrent("trials") == 2
    assert run.registered is not None and run.registered["dataset_version"] == tag
    assert run.registered["trials"]["complete"] + run.registered["trials"].get("pruned", 0) == 6
