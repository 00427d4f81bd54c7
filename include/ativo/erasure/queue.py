"""Erasure requests from a message queue (SQS): the queue is a doorbell, the platform DB is the record.

A message body is JSON: ``{"spec": "...", "subjects": ["..."], "request_id": "...", "key": "<Ativo op key>"}``. The
ERASURE DAG's queue Asset is watched by Airflow's ``MessageQueueTrigger`` (``scheme="sqs"``), which leaves messages
in the queue; the DAG's first task files each one (:func:`file_messages`) and only then deletes it, so a triggerer
or worker that dies in between loses nothing: the message comes back and is filed again, idempotently (its request
id, else its message id).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from ativo.erasure import audit
from ativo.erasure.requests import ErasureRefused, InvalidRequest, file_request, refuse
from ativo.serve.keys import ApiKeys


@dataclass
class Filed:
    """What became of a batch of messages."""

    acks: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # message ids refused (no op key) or invalid
    delete: list[dict[str, str]] = field(default_factory=list)  # {"Id", "ReceiptHandle"} of every message handled


def file_messages(engine: Engine, spec: str, messages: list[dict[str, Any]], keys: ApiKeys, pepper: bytes) -> Filed:
    """File the erasure requests of queue messages for ``spec`` (messages for another spec are left alone).

    A message without a valid ``op`` key is refused and audited; one that is not a valid request is audited as
    invalid; both are deleted (redelivering them cannot help).
    """
    out = Filed()
    for msg in messages:
        mid = str(msg.get("MessageId") or "?")
        handle = {"Id": mid, "ReceiptHandle": str(msg.get("ReceiptHandle") or "")}
        try:
            body = json.loads(msg.get("Body") or "")
            if not isinstance(body, dict):
                raise ValueError("the body is not a JSON object")
        except ValueError as err:
            audit.append(engine, "erasure_invalid", "queue", spec, {"message_id": mid, "why": str(err)[:300]})
            out.refused.append(mid)
            out.delete.append(handle)
            continue
        if body.get("spec") not in (None, spec):
            continue
        caller = keys.check(body.get("key"))
        try:
            if caller is None or "op" not in caller.roles:
                why = "no key in the message" if not body.get("key") else (
                    "unknown key" if caller is None else f"key {caller.name!r} lacks the role 'op'")  # fmt: skip
                raise refuse(engine, spec=spec, actor=caller.name if caller else "queue", channel="queue",
                             why=f"message {mid}: {why}")  # fmt: skip
            ack = file_request(engine, spec=spec, subjects=body.get("subjects") or [], pepper=pepper,
                               actor=f"key:{caller.name}", channel="queue",
                               request_id=body.get("request_id") or f"sqs-{mid}")  # fmt: skip
            out.acks.append(ack.to_dict())
        except ErasureRefused:
            out.refused.append(mid)
        except InvalidRequest as err:
            audit.append(engine, "erasure_invalid", "queue", spec, {"message_id": mid, "why": str(err)[:300]})
            out.refused.append(mid)
        out.delete.append(handle)
    return out
