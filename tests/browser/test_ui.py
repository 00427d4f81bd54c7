"""The platform as an on-call engineer sees it in a real browser (Debian's chromium under Playwright).

Screenshots land in var/screenshots/ for a reviewer: the DAG list, the trigger form, the mapped trials and the grid
of a training run, a failed task's log, the Ativo page (its top, its status strip, its quarantine at 1,024 px), the
audit view and a model card opened over HTTP. The README's pictures (docs/images/) are three of them: the grid, the
Ativo page and the model card.
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
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_platform.airflow}/dags/{dag_id}/runs/{run_id}")  # the grid, this run selected
    page.get_by_text("register_best", exact=True).filter(visible=True).first.wait_for()
    shot(page, "airflow-train-grid", full_page=False)
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
    page = login(browser, live_platform, "analyst", 1280, 900)
    page.goto(f"{live_platform.airflow}/plugin/ativo")
    frame = page.frame_locator("iframe").first
    frame.get_by_role("heading", name="Live versions").wait_for()
    shot(page, "ativo-page", full_page=False)  # the top of the page in Airflow's UI, as the README shows it
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
    page.context.close()


def live_aliases(live) -> dict[str, dict[str, str]]:
    """Per spec of the platform, its live aliases as the registry holds them (what the page must show)."""
    from ativo.model.registry import aliases
    from ativo.spec import load_specs

    return {spec.name: aliases(spec, live.settings) for spec in load_specs(live.settings.specs_dir)[0]}


def open_settled(page, live, url: str) -> dict[str, dict[str, str]]:
    """Open ``url`` while no alias moves; the registry's aliases then, the same before and after the page rendered.

    The run the trigger test started may put a challenger on canary at any moment: a page rendered across that
    move is opened again.
    """
    for _ in range(10):
        before = live_aliases(live)
        page.goto(url)
        if live_aliases(live) == before:
            return before
        time.sleep(3)
    raise AssertionError(f"the live aliases kept moving while {url} was opened")


def test_the_status_strip_names_each_live_champion_and_trial_and_the_monitor_its_champion(browser, live_platform):
    page = login(browser, live_platform, "analyst", 1280, 900)
    live = open_settled(page, live_platform, f"{live_platform.airflow}/ativo/")
    assert live, "the platform loads no spec"
    monitor = page.get_by_role("table").filter(has=page.get_by_role("columnheader", name="judged version"))
    for spec, aliases in live.items():
        card = page.locator(".strip .card").filter(has=page.get_by_role("link", name=spec, exact=True))
        box = card.bounding_box()
        assert box and box["y"] + box["height"] <= 900, box  # the first thing on the page, seen without scrolling
        text, champion = card.inner_text(), aliases.get("champion")
        assert re.search(rf"^champion\s+{f'version {champion}' if champion else 'none'}\s*$", text, re.M), text
        trial = next((a for a in ("canary", "shadow") if aliases.get(a)), None)
        said = rf"{trial} version {aliases[trial]}\b" if trial else r"none\s*$"  # the words the strip uses
        assert re.search(rf"^on trial\s+{said}", text, re.M), (aliases, text)
        # the monitor section names the champion that serves now, whichever version its last window judged
        row = monitor.get_by_role("row").filter(has=page.get_by_role("cell", name=spec, exact=True))
        assert row.get_by_role("cell").nth(1).inner_text().strip() == (champion or "none")
    shot(page, "ativo-status-strip", full_page=False)
    page.context.close()


WIDTHS = "el => ({scroll: el.scrollWidth, client: el.clientWidth})"


def test_the_quarantine_table_and_the_page_fit_in_1024_pixels(browser, live_platform):
    page = login(browser, live_platform, "analyst", 1024, 800)
    page.goto(f"{live_platform.airflow}/ativo/#quarantine")
    for where, frame in (("the page", page), ("the page in Airflow's UI", None)):
        if frame is None:  # as Airflow's UI shows it, narrower by its navigation bar
            page.goto(f"{live_platform.airflow}/plugin/ativo")
            frame = page.frame_locator("iframe").first
        table = frame.get_by_role("table").filter(has=frame.get_by_role("columnheader", name="reasons", exact=True))
        table.get_by_role("link", name="validation report").first.wait_for()  # the lifecycle's malformed day
        wrapper = table.locator("xpath=..").evaluate(WIDTHS)
        assert wrapper["scroll"] <= wrapper["client"], (where, "quarantine table", wrapper)
        whole = frame.locator("html").evaluate(WIDTHS)
        assert whole["scroll"] <= whole["client"] <= 1024, (where, whole)
        if where == "the page":
            shot(page, "ativo-quarantine-1024px", full_page=False)
    page.context.close()


def node_depth(item) -> int:
    """How many lists hold a list item (1: the outermost)."""
    return item.evaluate(
        "el => { let n = 0; for (let p = el; p; p = p.parentElement) n += p.tagName === 'UL'; return n }"
    )


def test_the_lineage_of_a_real_decision_is_a_tree_whose_links_open(browser, live_platform):
    from urllib.parse import unquote, urlsplit

    from ativo.http import request
    from ativo.naming import train_dag_id

    sample = live_platform.sample
    assert sample and sample.get("answer"), "the lifecycle served no decision to trace"
    prediction_id = sample["answer"]["prediction_id"]
    page = login(browser, live_platform, "analyst", 1280, 900)
    page.goto(f"{live_platform.airflow}/ativo/?prediction_id={prediction_id}#lineage")
    page.get_by_role("heading", name="Lineage of a decision").wait_for()
    assert "file://" not in page.content()  # nodes name versions and partitions, never host paths
    tree = page.locator("ul.tree")
    # a tree: each link of the chain nested in the one it came from, the decision outermost
    kinds = ["prediction", "model", "run", "dataset", "code", "gates"]
    assert [node_depth(tree.locator(f"li.node-{k}")) for k in kinds] == [1, 2, 3, 4, 5, 6]
    assert prediction_id in tree.get_by_role("listitem").first.inner_text()
    version = re.search(r"version (\d+)", tree.locator("li.node-model > b").inner_text()).group(1)
    shot(page, "ativo-lineage", full_page=False)

    def link(kind: str, name: str) -> str:
        """The address of the link ``name`` of the chain's ``kind`` node (its own links, not its children's)."""
        return tree.locator(f"li.node-{kind} > div").get_by_role("link", name=name, exact=True).evaluate("a => a.href")

    wanted = {
        "MLflow run": link("run", "MLflow run"),
        "training DAG run": link("run", "training DAG run"),
        "dataset version": link("dataset", "dataset version"),
        "model card": link("gates", "model card"),
    }
    every = tree.get_by_role("link").evaluate_all("as => as.map(a => [a.textContent, a.href])")
    assert set(wanted.values()) <= {href for _, href in every}
    for label, href in every:  # fetched directly: MLflow's UI is another server, on its own port
        answer = page.request.get(href)
        assert answer.status == 200, (label, href, answer.status)
    # and each names what the chain says: the run exists in MLflow, the DAG run in Airflow
    mlflow, _, fragment = wanted["MLflow run"].partition("/#/")
    _, experiment, _, run_id = fragment.split("/")
    run = request("GET", f"{mlflow}/api/2.0/mlflow/runs/get?run_id={run_id}", timeout=30).json()["run"]
    assert run["info"]["experiment_id"] == experiment
    dag_id, dag_run_id = (unquote(p) for p in urlsplit(wanted["training DAG run"]).path.split("/")[-3::2])
    assert dag_id == train_dag_id(SPEC)
    assert live_platform.api.get(f"/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}")["dag_run_id"] == dag_run_id
    page.goto(wanted["dataset version"])  # its days and the model versions trained on it, the decision's among them
    page.get_by_role("heading", name=re.compile(r"^Dataset version ")).wait_for()
    trained = page.get_by_role("table").filter(has=page.get_by_role("columnheader", name="model version"))
    trained.get_by_role("row").filter(has=page.get_by_role("cell", name=version, exact=True)).wait_for()
    shot(page, "ativo-dataset-version")

    page.goto(wanted["model card"])
    page.wait_for_load_state()
    assert "model card" in page.inner_text("body").lower()
    shot(page, "model-card-over-http")
    shot(page, "model-card", full_page=False)  # its top, as the README shows it
    page.context.close()


def test_no_page_under_ativo_shows_a_file_path(browser, live_platform):
    from html import unescape
    from urllib.parse import urldefrag, urljoin

    page = login(browser, live_platform, "analyst")
    home = f"{live_platform.airflow}/ativo/"
    sample = live_platform.sample or {}
    starts = [home] + ([f"{home}?prediction_id={sample['answer']['prediction_id']}"] if sample.get("answer") else [])
    opened: dict[str, tuple[int, str]] = {}

    def open_all(urls: list[str]) -> list[str]:
        """Open each page not opened yet; the pages under /ativo/ they link to."""
        found: list[str] = []
        for url in urls:
            if url in opened:
                continue
            answer = page.request.get(url)
            opened[url] = (answer.status, answer.text())
            for href in re.findall(r'href="([^"]*)"', opened[url][1]):
                target = urldefrag(urljoin(url, unescape(href))).url
                if target.startswith(home) and target not in opened and target not in found:
                    found.append(target)
        return found

    open_all(open_all(open_all(starts)))  # the pages, the pages they link to, and the pages those link to
    assert len(opened) >= 10, sorted(opened)  # runbooks, reports, the audit view, the dataset version, metrics
    assert [u for u, (status, _) in opened.items() if status != 200] == []
    assert [u for u, (_, text) in opened.items() if "file://" in text] == []
    page.context.close()


def test_the_audit_view_lists_a_refused_action_with_its_actor(browser, live_platform):
    page = login(browser, live_platform, "analyst", 1280, 900)
    refused = page.request.post(  # the analyst's buttons are disabled; the request is made by hand
        f"{live_platform.airflow}/ativo/actions/budget",
        form={"team": "risk", "limit_usd": "1000", "reason": "browser tier: an analyst raises a budget"},
        headers={"accept": "application/json"},
    )
    assert refused.status == 403 and "needs the op role" in refused.json()["detail"], refused.text()
    page.goto(f"{live_platform.airflow}/ativo/audit")
    page.get_by_text("chain intact").wait_for()

    refusal = (  # its kind, its actor and what was refused
        page.get_by_role("row")
        .filter(has=page.get_by_role("cell", name="page_refused", exact=True))
        .filter(has=page.get_by_role("cell", name="analyst", exact=True))
        .filter(has=page.get_by_role("cell", name="budget", exact=True))
        .first
    )
    refusal.wait_for()  # among the newest rows, unfiltered
    page.get_by_label("kind").fill("page_refused")
    page.get_by_label("actor").fill("analyst")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(lambda url: "kind=page_refused" in url and "actor=analyst" in url)
    refusal.wait_for()
    assert "role=user" in refusal.inner_text()  # and the role it had
    shot(page, "ativo-audit-refused", full_page=False)
    page.context.close()
