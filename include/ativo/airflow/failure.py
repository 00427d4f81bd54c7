"""Ending a task as failed for an expected reason: one line in its log, no traceback, no retry.

Airflow 3.3's task runner logs every ``AirflowFailException`` (and every other ``Exception``) with
``log.exception("Task failed with exception")``: a stack of a dozen runner frames whose last line repeats the
message. Its one failure path that logs without a stack is ``SystemExit`` (``log.error("Task exited",
exit_code=...)``), which it retries like any error unless the task's ``retry_policy`` says otherwise. An expected
failure (a quarantined batch, a refused budget, a version that failed a check) is not a bug, and retrying cannot
help, so :func:`fail` logs the reason once, at ERROR, and raises :class:`ExpectedFailure` (a ``SystemExit``), and
:data:`NO_RETRY_ON_EXPECTED_FAILURE`, in every Ativo task's default arguments, fails it at once.

Raise it only at a task's top level: ``SystemExit`` passes through ``except Exception`` on its way out, so library
code that a caller may want to catch raises its own ``Exception`` instead.
"""

from __future__ import annotations

import logging
from typing import NoReturn

from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

log = logging.getLogger("ativo.task")


class ExpectedFailure(SystemExit):
    """A task ended for a reason that retrying cannot change; ``str()`` is the reason, the exit code is 1."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.code = 1  # Airflow logs "Task exited exit_code=1": the reason is already in the line before
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


NO_RETRY_ON_EXPECTED_FAILURE = ExceptionRetryPolicy(
    rules=[RetryRule(exception=ExpectedFailure, action=RetryAction.FAIL, reason="expected failure: not retried")]
)
"""The ``retry_policy`` of every Ativo task: an :class:`ExpectedFailure` fails it without a retry."""


def fail(reason: str) -> NoReturn:
    """End the running task as failed: log ``reason`` once (ERROR, one line) and raise :class:`ExpectedFailure`.

    The on-call notifier still runs (the task is FAILED) and pages with the reason; Airflow prints no traceback.

    Args:
        reason: what happened and what to do, on one line (newlines are replaced by spaces).

    Raises:
        ExpectedFailure: always.
    """
    line = " ".join(str(reason).split()) or "the task failed (no reason given)"
    log.error(line)
    raise ExpectedFailure(line)
