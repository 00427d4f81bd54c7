"""ativo.airflow.failure: an expected failure is one logged line and a final (not retried) failure."""

from __future__ import annotations

import logging

import pytest

from ativo.airflow.failure import NO_RETRY_ON_EXPECTED_FAILURE, ExpectedFailure, fail


def test_fail_logs_the_reason_once_on_one_line_and_raises_it(caplog):
    with caplog.at_level(logging.ERROR, logger="ativo.task"), pytest.raises(ExpectedFailure) as raised:
        fail("budget 'risk-team' is spent:\n41.20 of 40.00 USD;  raise the limit")
    line = "budget 'risk-team' is spent: 41.20 of 40.00 USD; raise the limit"
    assert [r.getMessage() for r in caplog.records] == [line]
    assert str(raised.value) == line and raised.value.code == 1


@pytest.mark.parametrize(
    ("error", "action"),
    [(ExpectedFailure("quarantined"), "fail"), (ValueError("a bug"), "default"), (SystemExit(1), "default")],
    ids=["expected-fails-at-once", "bug-keeps-its-retries", "other-exit-keeps-its-retries"],
)
def test_only_an_expected_failure_skips_the_retries(error, action):
    decision = NO_RETRY_ON_EXPECTED_FAILURE.evaluate(error, try_number=1, max_tries=3)
    assert decision.action.value == action


def test_no_ativo_task_raises_airflow_fail_exception_directly():
    """Airflow prints a traceback for every AirflowFailException: an Ativo task ends an expected failure with fail()."""
    from pathlib import Path

    import ativo.airflow

    root = Path(ativo.airflow.__file__).parent
    offenders = [
        f"{path.relative_to(root)}:{n}"
        for path in sorted(root.rglob("*.py"))
        if path.name != "failure.py"  # it explains why
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "AirflowFailException" in line
    ]
    assert offenders == []
