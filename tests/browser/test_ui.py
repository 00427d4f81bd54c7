"""The platform as an on-call engineer sees it in a real browser (Debian's chromium under Playwright).

Screenshots land in var/screenshots/ for a reviewer: the DAG list, the trigger form, the mapped trials, a failed
task's log, the Ativo page and a model card opened over HTTP.
"""

from __future__ import annotations

import json
import re
import time

from tests.browser.conftest import SPEC, login, shot


def test_every_dag_is_listed_without_import_errors(browser, live_platform):
    from ativo.naming import dag_ids

    assert live_platform.api.get("/api/v2/importErrors")["total_entries"] == 0
    page = login(browser, live_platform, "admin")
    page.goto(f"{live_platform.airflow}/dags")
    for dag_id in dag_ids(SPEC):
        page.get_by_role("link", name=dag_id, exact=True).wait_for()
    assert "Import Error" not in page.inner_text("body")
    shot(page, "airflow-dags")
    page.context.close()


def test_trigger_train_with_a_json_conf_and_see_the_trials_named_by_their_parameters(browser, live_platform):
    from ativo.naming import train_dag_id
    from ativo.waiting import wait_until

    dag_id, reason = train_dag_id(SPEC), f"browser tier {time.time():.0f}: a JSON conf from the trigger form"
    page = login(browser, live_platform, "operator")
    page.goto(f"{live_platform.airflow}/dags/{dag_id}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Advanced Options").click()
    editor = dialog.locator(".monaco-editor").first
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    conf = {"n_trials": 2, "reason": reason}
    page.keyboard.insert_text(json.dumps(conf))  # typed as one input: the editor's auto-closing adds nothing
    shot(page, "airflow-trigger-form")
    dialog.get_by_role("button", name="Trigger", exact=True).last.click()

    def triggered() -> dict | None:
        return next((r for r in live_platform.api.runs(dag_id) if (r.get("conf") or {}).get("reason") == reason), None)

    run = wait_until(triggered, 60, 1, "the run triggered from the form to exist", retry_on=(OSError,))
    run_id = run["dag_run_id"]
    assert run["conf"] == conf and run["run_type"] == "manual"
    run = wait_until(
        lambda: (
            (r := live_platform.api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"))["state"] in ("success", "failed")
            and r
        ),
        900,
        5,
        f"run {run_id} to finish",
    )
    tis = live_platform.api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?task_id=trials")
    labels = sorted(t["rendered_map_index"] for t in tis["task_instances"])
    # two trial workers (the pool's two slots), each named by the trials it ran: number and parameters
    trials = re.findall(r"#\d+ [^|]*eta=[\d.]+ [^|]*max_depth=\d+", " | ".join(labels))
    assert len(labels) == 2 and len(trials) == 2, labels

    page.goto(f"{live_platform.airflow}/dags/{dag_id}/runs/{run_id}/tasks/trials/mapped")
    for label in labels:  # the UI names each mapped worker by its trials, not by a bare index
        page.get_by_text(label).first.wait_for()
    shot(page, "airflow-mapped-trials")
    run = live_platform.api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
    assert run["note"] and any(v in run["note"] for v in ("passed every gate", "REJECTED", "no new model version")), (
        run["note"]
    )  # the run says its verdict in the grid, whatever it was
    page.context.close()


def test_a_rejected_batch_fails_with_one_line_a_report_link_and_the_next_step(browser, live_platform):
    from ativo.naming import etl_dag_id

    dag_id = etl_dag_id(SPEC)
    [failed] = [r for r in live_platform.api.runs(dag_id) if r["state"] == "failed"]
    page = login(browser, live_platform, "analyst")
    page.goto(f"{live_platform.airflow}/dags/{dag_id}/runs/{failed['dag_run_id']}/tasks/validate")
    line = page.get_by_text(re.compile(r"rejected and quarantined .* \| report: http")).first
    line.wait_for()
    text = line.inner_text()
    assert "| next: land a corrected batch" in text and "/ativo/runbooks/data-quarantined" in text
    body = page.inner_text("body")
    assert "file://" not in body
    assert "great_expectations" not in body  # no validation internals: the report says what failed
    shot(page, "airflow-failed-task-log")

    report = re.search(r"report: (http\S+)", text).group(1)
    page.goto(report)  # the validation report, over HTTP, behind the same login
    assert "age" in page.inner_text("body")
    page.context.close()


def test_the_ativo_page_shows_the_live_champion_and_the_spend(browser, live_platform):
    from ativo.model.registry import aliases
    from ativo.spec import get_spec

    champion = aliases(get_spec(SPEC, live_platform.settings.specs_dir), live_platform.settings)["champion"]
    page = login(browser, live_platform, "analyst")
    page.goto(f"{live_platform.airflow}/plugin/ativo")
    frame = page.frame_locator("iframe").first
    frame.get_by_role("heading", name="Live versions").wait_for()
    row = frame.locator("tr", has=frame.get_by_text("champion", exact=True)).first
    assert row.locator("td").nth(1).inner_text().strip() == champion
    spend = frame.locator("table", has=frame.get_by_text("limit USD", exact=True)).first.inner_text()
    assert re.search(r"risk\s+\d{4}-\d{2}\s+0\.\d{4}", spend), spend  # the team's month and its settled spend
    assert frame.get_by_text("needs the op role").first.is_visible()  # an analyst cannot act
    frame.get_by_text("no drift").or_(frame.get_by_text("drift", exact=True)).first.wait_for()
    # the newest searches' trial tables: one row per trial slot, its parameters, state and MLflow run
    frame.get_by_role("heading", name="Searches (trial tables)").wait_for()
    frame.locator("details").evaluate_all("els => els.forEach(d => { d.open = true })")  # folded below the rest
    trials = frame.locator("table", has=frame.get_by_text("valid AUC", exact=True)).first.inner_text()
    assert re.search(r"\d+\s+#\d+\s+[^\n]*eta=[\d.]+[^\n]*\s+(complete|pruned)", trials), trials
    shot(page, "ativo-page")

    sample = live_platform.sample
    if sample and sample.get("answer"):  # the lineage lookup of the lifecycle's own decision
        page.goto(f"{live_platform.airflow}/ativo/?prediction_id={sample['answer']['prediction_id']}#lineage")
        page.get_by_role("heading", name="Lineage of a decision").wait_for()
        assert sample["answer"]["prediction_id"] in page.inner_text("body")
        assert "file://" not in page.content()  # nodes name versions and partitions, never host paths
        page.get_by_role("link", name="model card").first.click()
        page.wait_for_load_state()
        assert "Model card" in page.inner_text("body") or "model card" in page.inner_text("body").lower()
        shot(page, "model-card-over-http")
    page.context.close()
