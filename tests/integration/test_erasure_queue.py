"""Erasure requests through the queue: the ERASURE DAG's real MessageQueueTrigger (SQS, on a moto server on
loopback) hands the messages over without deleting them; the DAG's first task files them in the platform DB and only
then deletes them; a message with no op key is refused and audited; a message not filed comes back."""

from __future__ import annotations

import asyncio
import json

import pytest


def _fire(trigger) -> list[dict]:
    async def first():
        async for event in trigger.run():
            return event.payload["message_batch"]
        return []

    return asyncio.run(asyncio.wait_for(first(), 60))


def test_queue_messages_are_filed_before_they_leave_the_queue(s3_endpoint, ativo_home, monkeypatch):
    import boto3

    from ativo import audit
    from ativo.airflow.erasure import _file_queue_messages, build_erasure_dag
    from ativo.config import load_settings
    from ativo.erasure import requests as rq
    from ativo.serve.keys import create_key
    from ativo.spec import load_specs
    from ativo.store.db import get_engine

    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    sqs = boto3.client("sqs", endpoint_url=s3_endpoint, region_name="us-east-1")
    url = sqs.create_queue(QueueName="ativo-erasure")["QueueUrl"]
    monkeypatch.setenv("ATIVO_ERASURE_QUEUE_URL", url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_ATIVO_ERASURE_QUEUE",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
            }
        ),
    )
    settings = load_settings()
    op = create_key(settings.home / "serve" / "api_keys.json", "dpo", ("op",))
    predict = create_key(settings.home / "serve" / "api_keys.json", "app", ("predict",))
    bodies = [
        {"spec": "adult_income", "subjects": ["cust-1", "cust-2"], "request_id": "Q-1", "key": op},
        {"spec": "adult_income", "subjects": ["cust-3"], "key": predict},  # not op: refused
        {"spec": "compas_recidivism", "subjects": ["person-1"], "key": op},  # another spec's watcher takes it
    ]
    for b in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(b))

    spec = next(s for s in load_specs(settings.specs_dir)[0] if s.name == "adult_income")
    dag = build_erasure_dag(spec)
    [watcher] = dag.timetable.asset_condition.watchers  # the DAG is scheduled on the queue (and its cron)
    trigger = watcher.trigger.trigger  # the SQS trigger MessageQueueTrigger dispatches to (as the triggerer runs it)
    assert trigger.visibility_timeout == 300 and trigger.delete_message_on_reception is False
    trigger.visibility_timeout = 2  # production leaves 300 s for the DAG to file and delete a message
    messages = _fire(trigger)
    assert sorted(json.loads(m["Body"])["spec"] for m in messages) == ["adult_income", "adult_income"]

    # the triggerer delivered them but did not delete them: were the worker to die now, they would come back
    again = _fire(trigger)
    assert sorted(m["MessageId"] for m in again) == sorted(m["MessageId"] for m in messages)

    filed = _file_queue_messages(spec, again)
    assert filed == {
        "filed": ["Q-1"],
        "refused": [next(m["MessageId"] for m in again if json.loads(m["Body"])["key"] == predict)],
    }
    engine = get_engine(settings.db_url)
    req = rq.get(engine, "Q-1")
    assert req["channel"] == "queue" and req["actor"] == "key:dpo" and req["subjects"] == ["cust-1", "cust-2"]
    [refusal] = audit.entries(engine, kind="erasure_refused")
    assert refusal["actor"] == "app" and refusal["payload"]["channel"] == "queue"
    # filed and deleted: only the other spec's message is left in the queue
    left = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=3, VisibilityTimeout=0)
    assert [json.loads(m["Body"])["spec"] for m in left.get("Messages", [])] == ["compas_recidivism"]
    # a message delivered twice (its first delete lost) is one request
    assert _file_queue_messages(spec, again)["filed"] == ["Q-1"]
    assert [r["request_id"] for r in rq.pending(engine, "adult_income")] == ["Q-1"]


pytestmark = pytest.mark.timeout(180)
