"""The training claims: every latest dataset version is trained or superseded, never twice automatically."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert

from ativo.store.db import dataset_versions, get_engine
from ativo.train.claims import claim_of, plan_training, reconcile


@pytest.fixture
def engine(tmp_path):
    return get_engine(f"sqlite:///{tmp_path / 'ativo.db'}")


def add_version(engine, n: int, spec: str = "s") -> str:
    tag = f"{spec}-v{n:04d}"
    with engine.begin() as conn:
        conn.execute(
            insert(dataset_versions).values(
                spec=spec,
                version=n,
                tag=tag,
                git_rev="r",
                manifest_hash="m",
                rows=10 * n,
                partitions=[],
                created_at=dt.datetime.now(dt.UTC),
            )
        )
    return tag


def test_a_busy_train_dag_trains_the_latest_once_and_the_queued_duplicates_skip(engine):
    for n in range(1, 6):  # five versions land while training is busy: their events merge into queued runs
        add_version(engine, n)
    first = plan_training(engine, "s", "asset__1", requested=None, trigger="asset", event_tags=["s-v0002", "s-v0003"])
    assert first.tag == "s-v0005" and first.skip is None
    assert "covers s-v0002, s-v0003" in first.reason
    again = plan_training(engine, "s", "asset__2", requested=None, trigger="asset", event_tags=["s-v0005"])
    assert again.tag is None and "claimed by run asset__1" in again.skip and "not trained twice" in again.skip
    assert reconcile(engine, "s") is None  # nothing is missing
    # a retry of the same run keeps its claim
    assert plan_training(engine, "s", "asset__1", requested=None, trigger="asset").tag == "s-v0005"


def test_the_reconciler_finds_a_latest_version_nobody_trains(engine):
    add_version(engine, 1)
    plan_training(engine, "s", "run-a", requested=None, trigger="asset")
    add_version(engine, 2)  # its asset event was dropped
    todo = reconcile(engine, "s")
    assert todo["tag"] == "s-v0002" and todo["run_id"] == "reconcile__s-v0002"
    assert "has no training run" in todo["reason"]
    triggered = plan_training(
        engine, "s", "reconcile__s-v0002", requested=None, trigger="reconciler", reason=todo["reason"]
    )
    assert triggered.tag == "s-v0002"
    assert claim_of(engine, "s", "s-v0002")["trigger"] == "reconciler"
    assert reconcile(engine, "s") is None


def test_a_person_may_retrain_any_version(engine):
    add_version(engine, 1)
    add_version(engine, 2)
    plan_training(engine, "s", "auto", requested=None, trigger="asset")
    by_hand = plan_training(engine, "s", "manual__1", requested="s-v0002", trigger="manual")
    assert by_hand.tag == "s-v0002" and by_hand.skip is None  # claimed already, trained anyway: a person asked
    old = plan_training(engine, "s", "manual__2", requested="s-v0001", trigger="manual")
    assert old.tag == "s-v0001" and claim_of(engine, "s", "s-v0001")["dag_run_id"] == "manual__2"


def test_no_dataset_version_yet_skips_saying_so(engine):
    plan = plan_training(engine, "s", "r", requested=None, trigger="asset")
    assert plan.tag is None and plan.skip == "s has no dataset version yet"
    assert reconcile(engine, "s") is None


def test_a_failed_run_does_not_cover_its_version(engine):
    from ativo.train.claims import settle

    add_version(engine, 1)
    assert plan_training(engine, "s", "run-a", requested=None, trigger="asset").tag == "s-v0001"
    assert reconcile(engine, "s") is None  # run-a is training it
    settle(engine, "s", "run-a", "failed: no model version was registered (see register_best)")
    todo = reconcile(engine, "s")
    assert todo["run_id"] == "reconcile__s-v0001__2" and "attempt 2" in todo["reason"]
    retry = plan_training(engine, "s", todo["run_id"], requested=None, trigger="reconciler", reason=todo["reason"])
    assert retry.tag == "s-v0001" and retry.skip is None
    held = claim_of(engine, "s", "s-v0001")
    assert held["dag_run_id"] == "reconcile__s-v0001__2" and held["attempt"] == 2 and held["outcome"] is None
    settle(engine, "s", todo["run_id"], "registered version 4: challenger")
    settle(engine, "s", todo["run_id"], "failed: later words do not overwrite the first")
    assert claim_of(engine, "s", "s-v0001")["outcome"] == "registered version 4: challenger"
    assert reconcile(engine, "s") is None


def test_a_person_asking_for_a_version_that_does_not_exist_is_told(engine):
    from ativo.errors import DatasetVersionError

    add_version(engine, 1)
    with pytest.raises(DatasetVersionError, match="s has no dataset version 's-v0009' \\(the latest is s-v0001\\)"):
        plan_training(engine, "s", "manual__1", requested="s-v0009", trigger="manual")
    assert claim_of(engine, "s", "s-v0009") is None
