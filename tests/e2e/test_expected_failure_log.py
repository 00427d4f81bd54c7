"""An expected failure ends its task with one line: the reason once, first, and no traceback (dag.test()).

A rejected landing batch is quarantined and the ETL's ``validate`` fails. What on-call opens is that task's log:
the reason (why, the report, what next, the runbook) must be on one line, said once, and not pushed off-screen by
a stack of Airflow's own frames; the task is not retried (a retry cannot change the batch) and on-call is paged.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.test_search_budget import TEAM, search  # noqa: F401  # the fixture: a search within a budget

ROOT = Path(__file__).resolve().parents[2]
DAY = dt.date(2026, 3, 1)


RUN_ETL = """
import datetime as dt, json, sys
from airflow.dag_processing.dagbag import DagBag
etl = DagBag(dag_folder=sys.argv[1]).dags["adult_income__etl"]
run = etl.test(logical_date=dt.datetime.fromisoformat(sys.argv[2]))
ti = run.get_task_instance("validate")
print("RESULT " + json.dumps({"run": str(run.state), "validate": str(ti.state), "try_number": ti.try_number}))
"""


def run_etl_printing_its_log(day: dt.date) -> tuple[dict, list[str]]:
    """Run the ETL of ``day`` with dag.test() in a process of its own: (its outcome, every line it printed).

    A process of its own, as a worker's task is: Airflow sets up its logging once a process, and a test that ran
    before in this one may have pointed it at a capture that is gone.
    """
    logical = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    proc = subprocess.run(
        [sys.executable, "-c", RUN_ETL, str(ROOT / "dags"), logical.isoformat()],
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    result = [line for line in lines if line.startswith("RESULT ")]
    assert proc.returncode == 0 and result, "\n".join(lines[-40:])
    return json.loads(result[-1].removeprefix("RESULT ")), lines


def task_log(lines: list[str], task_id: str) -> list[str]:
    """The lines logged while dag.test() ran ``task_id``."""
    start = next(i for i, line in enumerate(lines) if f"[DAG TEST] starting task_id={task_id} " in line)
    end = next(i for i, line in enumerate(lines) if f"[DAG TEST] end task task_id={task_id} " in line)
    return lines[start : end + 1]


def test_a_quarantined_batch_fails_its_task_with_one_line_and_no_traceback(
    airflow_db, settings, spec, reference_dir, webhook, monkeypatch
):
    from ativo.data.landing import simulate
    from ativo.store.objects import open_store

    url, pages = webhook
    monkeypatch.setenv("AIRFLOW_CONN_ATIVO_ONCALL", json.dumps({"conn_type": "http", "extra": {"webhook_url": url}}))
    simulate(spec, open_store(settings), reference_dir, DAY, 1, malformed={DAY: "unknown_category"})
    outcome, printed = run_etl_printing_its_log(DAY)
    log = task_log(printed, "validate")

    assert outcome == {"run": "failed", "validate": "failed", "try_number": 1}, "an expected failure is not retried"
    # The reason (the failed check) is said once, on the line that also says where the report is and what to do.
    said = [line for line in log if "'Astronaut'" in line]
    assert len(said) == 1, said
    assert "rejected and quarantined" in said[0] and "| next: " in said[0] and "| runbook: " in said[0]
    # ... and it is the task's first error: nothing Airflow prints comes before it.
    errors = [line for line in log if "[error" in line]
    assert errors[0] == said[0]
    assert not any("Traceback (most recent call last)" in line for line in log), "\n".join(log)
    assert not any(line.startswith("  File ") for line in log)
    # on-call is paged with the reason, and the log says so without repeating it
    paged = [line for line in log if "on-call paged: adult_income__etl.validate failed" in line]
    assert len(paged) == 1 and "/ativo/runbooks/data-quarantined" in paged[0]
    assert any("adult_income__etl.validate" in p["text"] and "'Astronaut'" in json.dumps(p) for p in pages)


def test_a_training_run_whose_trials_the_budget_refused_says_so_in_its_note(search, monkeypatch):  # noqa: F811
    """Every trial refused by a spent budget: register_best fails (not retried) and the run's note names the budget."""
    from airflow.dag_processing.dagbag import DagBag

    from ativo.airflow import notifier

    _, ledger = search
    ledger.set_budget(TEAM, limit_usd=0.0)  # no room at all, policy "fail": every trial is refused
    notes: list[str] = []
    monkeypatch.setattr(notifier, "note_run", lambda dag_id, run_id, note: notes.append(note) or True)
    train = DagBag(dag_folder=str(ROOT / "dags")).dags["adult_income__train"]
    run = train.test(run_conf={"n_trials": 2})

    register = run.get_task_instance("register_best")
    assert str(register.state) == "failed" and register.try_number == 1, "retrying cannot make a trial complete"
    [note] = notes
    assert note.startswith("no new model version: failed: search ") and "no trial completed" in note, note
    assert f"refused: budget '{TEAM}' is spent:" in note, note
