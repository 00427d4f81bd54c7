"""Every DAG imports, is owned, retried, tagged and pages on-call; invalid specs fail loudly without hiding others."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ativo.airflow import POOLS_FILE

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["pandas", "numpy", "pyarrow", "xgboost", "sklearn", "mlflow", "great_expectations", "dvc", "sqlalchemy"]


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors_and_every_spec_has_its_dags(dagbag):
    assert dagbag.import_errors == {}
    assert {"adult_income__etl", "adult_income__train", "adult_income__deploy"} <= set(dagbag.dag_ids)


def test_every_dag_has_owner_retries_tags_docs_and_an_oncall_notifier(dagbag):
    from ativo.airflow.notifier import WebhookFailureNotifier

    for dag_id, dag in dagbag.dags.items():
        assert dag.tags and "ativo" in dag.tags, dag_id
        assert dag.doc_md and len(dag.doc_md) > 100, dag_id
        for t in dag.tasks:
            assert t.owner not in ("", "airflow"), f"{dag_id}.{t.task_id} has no real owner"
            assert t.retries >= 1, f"{dag_id}.{t.task_id} has no retries"
            callbacks = t.on_failure_callback if isinstance(t.on_failure_callback, list) else [t.on_failure_callback]
            assert any(isinstance(c, WebhookFailureNotifier) for c in callbacks), f"{dag_id}.{t.task_id}"


def test_etl_shape_partitions_by_day_and_announces_the_features_asset(dagbag):
    dag = dagbag.dags["adult_income__etl"]
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.task_dict["validate"].downstream_task_ids == {"write_features"}
    assert dag.task_dict["write_features"].downstream_task_ids == {"version_dataset"}
    outlets = dag.task_dict["version_dataset"].outlets
    assert [o.uri for o in outlets] == ["x-ativo://features/adult_income"]


def test_training_is_a_mapped_search_on_the_spec_pool_and_priority(dagbag):
    dag = dagbag.dags["adult_income__train"]
    # new data, or sustained drift, retrains
    assert [a.uri for a in dag.timetable.asset_condition.objects] == [
        "x-ativo://features/adult_income",
        "x-ativo://drift/adult_income",
    ]
    assert not dag.task_dict["plan_search"].upstream_task_ids  # it pins the dataset version itself
    assert dag.task_dict["plan_search"].downstream_task_ids == {"trials", "register_best"}
    trial = dag.task_dict["trials"]
    assert type(trial).__name__ == "MappedOperator"  # one task instance per trial worker (per pool slot)
    assert trial.pool == "cpu_train" and trial.pool_slots == 1 and trial.queue == "default"
    assert trial.priority_weight == 10 and str(trial.weight_rule).endswith("absolute")  # priority class "normal"
    assert "trials_label" in trial.map_index_template  # named by the trials it ran in the UI
    assert trial.downstream_task_ids == {"register_best"}
    assert dag.task_dict["register_best"].trigger_rule == "all_done"  # registers the best of whatever completed
    assert {"dataset_version", "n_trials"} <= set(dag.params)


def test_a_cuda_spec_sends_its_trials_to_the_gpu_queue(spec):
    from ativo.airflow.dags.train import build_train_dag

    gpu = spec.model_copy(update={"compute": spec.compute.model_copy(update={"device": "cuda", "pool": "gpu"})})
    trial = build_train_dag(gpu).task_dict["trials"]
    assert (trial.queue, trial.pool) == ("gpu", "gpu")  # the Celery workers on GPU hosts listen to `gpu`


def test_deploy_runs_on_the_challenger_asset_and_watches_without_holding_a_slot(dagbag):
    dag = dagbag.dags["adult_income__deploy"]
    assert [a.uri for a in dag.timetable.asset_condition.objects] == ["x-ativo://models/adult_income/challenger"]
    train = dagbag.dags["adult_income__train"]
    assert [o.uri for o in train.task_dict["announce_challenger"].outlets] == [
        "x-ativo://models/adult_income/challenger"
    ]
    # conclude is handed what each step returned (None for a step that failed), never a task id by name
    assert dag.task_dict["infra_check"].downstream_task_ids == {"start", "conclude"}
    assert dag.task_dict["start"].downstream_task_ids == {"watch", "conclude"}
    assert dag.task_dict["watch"].downstream_task_ids == {"conclude"}
    watch = dag.task_dict["watch"]
    assert watch.mode == "reschedule" and watch.poke_interval == 30  # the spec's watch_interval_seconds
    assert watch.timeout >= 30 * 60  # the canary window, and more
    assert dag.task_dict["conclude"].trigger_rule == "all_done"  # rolls back whatever happened upstream
    assert dag.max_active_runs == 1 and "version" in dag.params


def test_pools_named_by_specs_are_created_by_setup(dagbag):
    pools = json.loads(POOLS_FILE.read_text())
    used = {t.pool for d in dagbag.dags.values() for t in d.tasks} - {"default_pool"}
    assert used <= set(pools), f"pools used but never created: {used - set(pools)}"


def test_invalid_spec_fails_parsing_with_file_and_field_and_others_still_load(airflow_db, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    doc = yaml.safe_load((ROOT / "include" / "specs" / "adult_income.yaml").read_text())
    (tmp_path / "adult_income.yaml").write_text(yaml.safe_dump(doc))
    doc.update(name="broken_model")
    doc["schema"].pop("target")
    (tmp_path / "broken_model.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("ATIVO_SPECS_DIR", str(tmp_path))
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert list(bag.import_errors) == [str(ROOT / "dags" / "spec_check.py")]
    [message] = bag.import_errors.values()
    assert "broken_model.yaml" in message and "field 'schema.target': Field required" in message
    assert {"adult_income__etl", "adult_income__train"} <= set(bag.dag_ids)
    assert not any(d.startswith("broken_model") for d in bag.dag_ids)


def test_parsing_the_dags_imports_no_heavy_library(airflow_db):
    code = (
        "import sys, json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"before = set(sys.modules)\n"
        f"DagBag(dag_folder={str(ROOT / 'dags')!r})\n"
        f"heavy = {HEAVY!r}\n"
        "print(json.dumps(sorted(h for h in heavy if h in set(sys.modules) - before)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_a_trial_workers_name_fits_airflows_map_index_column():
    from ativo.airflow.compute import MAP_INDEX_MAX, workers_label

    label = "colsample_bytree=0.799 eta=0.263 max_depth=5 min_child_weight=0.798 subsample=0.893"
    two = workers_label("worker 1 of 2", [f"#{i} {label}" for i in range(2)])
    assert two == f"worker 1 of 2: #0 {label} | #1 {label}"  # the trials with their parameters, while they fit
    many = workers_label("worker 1 of 2", [f"#{i} {label}" for i in range(8)])
    assert many == "worker 1 of 2: 8 trials #0 #1 #2 #3 #4 #5 #6 #7"  # then their numbers
    assert len(workers_label("worker 1 of 2", [f"#{i} {label}" for i in range(400)])) == MAP_INDEX_MAX
    assert workers_label("worker 2 of 2", []) == "worker 2 of 2: no trial left to run"
