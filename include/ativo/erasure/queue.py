"""Erasure requests from a message queue (SQS): the queue is a doorbell, the platform DB is the record.

A message body is JSON: ``{"spec": "...", "subjects": ["..."], "request_id": "...", "key": "<Ativo op key>"}``. The
ERASURE DAG's queue Asset is watched by Airflow's ``MessageQueueTrigger`` (``scheme="sqs"``), which leaves messages
in the queue; the DAG's first task files each one (:func:`file_messages`) and only then deletes it, so a triggerer
or worker that dies in between loses nothing: the message comes back and is filed again, idempotently (its request
id, else one derived from its message id).

Every field is checked before anything is stored: a body that is not a JSON object, a ``key`` that is not a string,
``subjects`` that is a string or holds a non-string or too short an id, a malformed ``request_id``. Such a message is
refused once, clearly (the field and the reason, never the value), audited with the offending values' keyed
pseudonyms only, and dead-lettered: deleted from the queue (redelivering it cannot help; the queue must not keep
subject ids or keys either) and listed in :attr:`Filed.dead_letter` by message id, field and reason. One bad message
never stops the others from being filed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from ativo.erasure.requests import (
    DEFAULT_MIN_SUBJECT_ID_LENGTH,
    ErasureRefused,
    InvalidRequest,
    file_request,
    invalid,
    refuse,
    request_id_for,
)
from ativo.serve.keys import ApiKeys


@dataclass
class Filed:
    """What became of a batch of messages."""

    acks: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # message ids refused (no op key) or invalid
    delete: list[dict[str, str]] = field(default_factory=list)  # {"Id", "ReceiptHandle"} of every message handled
    dead_letter: list[dict[str, str]] = field(default_factory=list)  # {"message_id", "field", "reason"}: no values


def file_messages(
    engine: Engine,
    spec: str,
    messages: list[dict[str, Any]],
    keys: ApiKeys,
    pepper: bytes,
    *,
    min_subject_length: int = DEFAULT_MIN_SUBJECT_ID_LENGTH,
) -> Filed:
    """File the erasure requests of queue messages for ``spec`` (messages for another spec are left alone).

    A message without a valid ``op`` key is refused and audited; one that is not a valid request is audited as
    invalid; both are dead-lettered (deleted: redelivering them cannot help). A valid one is filed, then deleted.

    Args:
        engine: the platform DB.
        spec: the spec whose messages this intake files.
        messages: SQS messages (``MessageId``, ``ReceiptHandle``, ``Body``).
        keys: the platform's API keys (the message's ``key`` must hold ``op``).
        pepper: the platform's pepper (pseudonyms for the audit log).
        min_subject_length: the spec's ``erasure.min_subject_id_length``.
    """
    out = Filed()
    for msg in messages:
        mid = str(msg.get("MessageId") or "?")
        handle = {"Id": mid, "ReceiptHandle": str(msg.get("ReceiptHandle") or "")}
        raw = msg.get("Body")
        try:
            body = json.loads(raw) if isinstance(raw, str | bytes) and raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            reason = 'is not a JSON object; send {"spec", "subjects": ["<id>", …], "request_id", "key"}'
            err = InvalidRequest(
                f"field '(body)': {reason}", field="(body)", reason=reason, hostile={"(body)": raw} if raw else None
            )
            invalid(engine, err, spec=spec, actor="queue", channel="queue", pepper=pepper, context={"message_id": mid})
            out.refused.append(mid)
            out.dead_letter.append({"message_id": mid, "field": err.field, "reason": err.reason})
            out.delete.append(handle)
            continue
        if body.get("spec") not in (None, spec):
            continue  # another spec's intake files it
        key = body.get("key")
        try:
            if key is not None and not isinstance(key, str):
                raise refuse(
                    engine,
                    spec=spec,
                    actor="queue",
                    channel="queue",
                    pepper=pepper,
                    hostile={"key": key},
                    why=f"message {mid}: field 'key' is not a string (send an Ativo key with the op role)",
                )
            caller = keys.check(key)
            if caller is None or "op" not in caller.roles:
                why = (
                    "no key in the message"
                    if not key
                    else ("unknown key" if caller is None else f"key {caller.name!r} lacks the role 'op'")
                )
                raise refuse(
                    engine,
                    spec=spec,
                    actor=caller.name if caller else "queue",
                    channel="queue",
                    why=f"message {mid}: {why}",
                    pepper=pepper,
                    hostile={"key": key} if key and caller is None else None,
                )
            ack = file_request(
                engine,
                spec=spec,
                subjects=body.get("subjects"),
                pepper=pepper,
                actor=f"key:{caller.name}",
                channel="queue",
                min_subject_length=min_subject_length,
                request_id=body.get("request_id") or request_id_for(f"sqs:{mid}"),
                context={"message_id": mid},
            )
            out.acks.append(ack.to_dict())
        except ErasureRefused as err:
            out.refused.append(mid)
            out.dead_letter.append({"message_id": mid, "field": "key", "reason": str(err)})
        except InvalidRequest as err:  # audited by file_request
            out.refused.append(mid)
            out.dead_letter.append({"message_id": mid, "field": err.field, "reason": err.reason or str(err)})
        out.delete.append(handle)
    return out
